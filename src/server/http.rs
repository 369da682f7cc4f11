//! Incoming HTTP: route a request to its federation endpoint, check its X-Matrix signature, run
//! the endpoint, and write the answer (JSON, or a Matrix error with its status code).
//!
//! Invariants: every federation endpoint except the key endpoint runs only after the request's
//! signature verified against the origin's published key (else 401), or is one its signer
//! recorded in the run's request memo, which would verify, or carries a pending signature
//! whose facts are exactly the request's, which would verify too; a body that is not JSON gets
//! 400 before any endpoint code runs; nothing a peer sends can panic the server.

use crate::proto::signing::VerifyingKey;
use crate::proto::wire::paths::{self, Endpoint};
use crate::proto::wire::{ErrorCode, MatrixError, TransactionTexts};
use crate::proto::xmatrix::{HttpRequest, XMatrix};
use crate::server::Inner;
use crate::server::pending_signature::PendingSignature;
use crate::server::request_memo::SignedRequest;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode, header};
use serde_json::Value;
use std::rc::Rc;

/// Who a request says signed it: its `Authorization` header, or, on an in-memory fabric, the
/// pending signature its sender attached.
enum Claim<'a> {
    Header(XMatrix),
    Pending(&'a PendingSignature),
}

impl Claim<'_> {
    fn origin(&self) -> &str {
        match self {
            Self::Header(authorization) => authorization.origin(),
            Self::Pending(pending) => pending.origin(),
        }
    }

    fn key_id(&self) -> &str {
        match self {
            Self::Header(authorization) => authorization.key_id(),
            Self::Pending(pending) => pending.key_id(),
        }
    }
}

/// An authenticated federation request, ready for an endpoint.
pub(crate) struct Incoming {
    pub origin: String,
    pub endpoint: Endpoint,
    /// Percent-decoded path parameters, in template order.
    pub params: Vec<String>,
    /// Query pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The body as JSON, unless it was read as `transaction`.
    pub body: Option<Value>,
    /// A `/send` body of the plain shape, read with each PDU kept as its text.
    pub transaction: Option<TransactionTexts>,
}

/// The answer of an endpoint.
pub(crate) type EndpointResult = Result<Value, MatrixError>;

/// The answer of an endpoint that writes its JSON text itself (from PDU texts it holds, see
/// `history.rs`): the same bytes as the `Value` answer would be, without copying each PDU.
pub(crate) type TextResult = Result<String, MatrixError>;

/// A successful answer, either way.
enum Answer {
    Value(Value),
    Text(String),
}

impl Inner {
    pub(crate) async fn handle_http(self: Rc<Self>, request: Request<Bytes>) -> Response<Bytes> {
        self.metrics.borrow_mut().requests_received += 1;
        self.metrics.borrow_mut().request_bytes_received += request.body().len() as u64;
        let path = request.uri().path().to_owned();
        let Some((endpoint, params)) = paths::route(request.method().as_str(), &path) else {
            return error_response(MatrixError::new(
                ErrorCode::Unrecognized,
                format!("no endpoint {path}"),
            ));
        };
        if endpoint == paths::SERVER_KEYS {
            return bytes_response(StatusCode::OK, self.own_key_response());
        }
        let incoming = match self.authenticate(endpoint, params, &request).await {
            Ok(incoming) => incoming,
            Err(error) => return error_response(error),
        };
        self.heard_from(&incoming.origin);
        match self.clone().dispatch(incoming).await {
            Ok(Answer::Value(value)) => json_response(StatusCode::OK, &value),
            Ok(Answer::Text(text)) => text_response(StatusCode::OK, text),
            Err(error) => error_response(error),
        }
    }

    /// Checks the body and the X-Matrix signature.
    async fn authenticate(
        &self,
        endpoint: Endpoint,
        params: Vec<String>,
        request: &Request<Bytes>,
    ) -> Result<Incoming, MatrixError> {
        let (body, transaction) = self.read_body(endpoint, request.body())?;
        let unauthorized = |reason: String| {
            self.metrics.borrow_mut().requests_unauthorized += 1;
            MatrixError::new(ErrorCode::Unauthorized, reason)
        };
        let claim = match request.headers().get(header::AUTHORIZATION) {
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    unauthorized("the Authorization header is not visible ASCII".into())
                })?;
                Claim::Header(XMatrix::parse(text).map_err(|e| unauthorized(e.to_string()))?)
            }
            None => match request.extensions().get::<PendingSignature>() {
                Some(pending) => Claim::Pending(pending),
                None => return Err(unauthorized("missing X-Matrix Authorization header".into())),
            },
        };
        let method = request.method().as_str();
        let uri = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let key = self
            .request_key(claim.origin(), claim.key_id())
            .await
            .map_err(|e| unauthorized(e.to_string()))?;
        let ours = &self.config.name;
        let verify_in_full = || {
            // A transaction read as texts is parsed whole only for a full check.
            let parsed: Option<Value> = match (&body, &transaction) {
                (None, Some(_)) => serde_json::from_slice(request.body()).ok(),
                _ => None,
            };
            let signed = HttpRequest {
                method,
                uri,
                content: body.as_ref().or(parsed.as_ref()),
            };
            match &claim {
                Claim::Header(authorization) => authorization.verify(&signed, ours, &key),
                Claim::Pending(pending) => {
                    let authorization = pending.header().map_err(Clone::clone)?;
                    authorization.verify(&signed, ours, &key)
                }
            }
        };
        let vouched = match &claim {
            Claim::Header(authorization) => {
                // The destination is not covered by the signature: checked either way.
                authorization
                    .check_destination(ours)
                    .map_err(|e| unauthorized(e.to_string()))?;
                self.memo_vouches_for(authorization, method, uri, request.body(), &key)
            }
            Claim::Pending(pending) => {
                self.pending_vouched(pending, method, uri, request.body(), &key)
            }
        };
        if vouched {
            debug_assert_eq!(
                verify_in_full(),
                Ok(()),
                "a vouched-for request does not verify"
            );
        } else {
            verify_in_full().map_err(|e| unauthorized(e.to_string()))?;
        }
        Ok(Incoming {
            origin: claim.origin().to_owned(),
            endpoint,
            params,
            query: query_pairs(request.uri().query().unwrap_or("")),
            body,
            transaction,
        })
    }

    /// The body as JSON (none when empty), or, for a transaction of the plain shape, as its
    /// PDUs' texts (see `inbound/pdu_text.rs`); 400 for a body that is not JSON.
    fn read_body(
        &self,
        endpoint: Endpoint,
        bytes: &[u8],
    ) -> Result<(Option<Value>, Option<TransactionTexts>), MatrixError> {
        if bytes.is_empty() {
            return Ok((None, None));
        }
        if endpoint == paths::SEND_TRANSACTION
            && let Some(texts) = TransactionTexts::read(bytes)
        {
            return Ok((None, Some(texts)));
        }
        let parsed = serde_json::from_slice::<Value>(bytes).map_err(|e| {
            self.metrics.borrow_mut().requests_bad += 1;
            MatrixError::new(ErrorCode::NotJson, format!("body is not JSON: {e}"))
        })?;
        Ok((Some(parsed), None))
    }

    /// Whether the run's request memo (`request_memo.rs`) holds exactly this signature, made
    /// by its signer in this run: then verifying it would succeed.
    fn memo_vouches_for(
        &self,
        authorization: &XMatrix,
        method: &str,
        uri: &str,
        body: &[u8],
        key: &VerifyingKey,
    ) -> bool {
        let received = SignedRequest {
            origin: authorization.origin(),
            key_id: authorization.key_id(),
            public_key: key,
            destination: &self.config.name,
            method,
            uri,
            body,
            signature: authorization.signature(),
        };
        let memo = self.pdu_cache.as_ref().map(|cache| cache.request_memo());
        memo.is_some_and(|memo| memo.vouches_for(&received))
    }

    /// Whether a request that came with a pending signature instead of a header (see
    /// `pending_signature.rs`) is exactly what would be signed, with the key the sender would
    /// sign with: then its header would verify. Otherwise the caller signs it now and checks
    /// it in full, as if it had come with the request.
    fn pending_vouched(
        &self,
        pending: &PendingSignature,
        method: &str,
        uri: &str,
        body: &[u8],
        key: &VerifyingKey,
    ) -> bool {
        let vouched = pending.vouches_for(&self.config.name, key, method, uri, body);
        if let Some(cache) = &self.pdu_cache {
            cache.request_memo().count_deferred_check(vouched);
        }
        vouched
    }

    /// Runs the endpoint's handler.
    async fn dispatch(self: Rc<Self>, incoming: Incoming) -> Result<Answer, MatrixError> {
        let endpoint = incoming.endpoint;
        self.check_request_acl(&incoming)?;
        let text = |result: TextResult| result.map(Answer::Text);
        let value = |result: EndpointResult| result.map(Answer::Value);
        if endpoint == paths::SEND_TRANSACTION {
            text(self.on_send_transaction(incoming).await)
        } else if endpoint == paths::MAKE_JOIN {
            value(self.on_make_join(&incoming))
        } else if endpoint == paths::SEND_JOIN {
            text(self.on_send_join(incoming).await)
        } else if endpoint == paths::EVENT {
            text(self.on_event(&incoming))
        } else if endpoint == paths::STATE_IDS {
            value(self.on_state_ids(&incoming))
        } else if endpoint == paths::STATE {
            text(self.on_state(&incoming))
        } else if endpoint == paths::EVENT_AUTH {
            text(self.on_event_auth(&incoming))
        } else if endpoint == paths::BACKFILL {
            text(self.on_backfill(&incoming))
        } else if endpoint == paths::GET_MISSING_EVENTS {
            text(self.on_get_missing_events(&incoming))
        } else if endpoint == paths::MAKE_LEAVE {
            value(self.on_make_leave(&incoming))
        } else if endpoint == paths::SEND_LEAVE {
            value(self.on_send_leave(incoming).await)
        } else if endpoint == paths::INVITE {
            value(self.on_invite(incoming).await)
        } else {
            Err(MatrixError::new(
                ErrorCode::Unrecognized,
                format!(
                    "{} {} is not served by this server",
                    endpoint.method, endpoint.template
                ),
            ))
        }
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                paths::percent_decode(key).ok()?,
                paths::percent_decode(value).ok()?,
            ))
        })
        .collect()
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Bytes> {
    text_response(status, value.to_string())
}

/// A response whose body is JSON text written already.
fn text_response(status: StatusCode, text: String) -> Response<Bytes> {
    bytes_response(status, Bytes::from(text))
}

/// A response whose body is JSON text held already (this server's key response).
fn bytes_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn error_response(error: MatrixError) -> Response<Bytes> {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        &serde_json::to_value(&error).expect("errors serialize"),
    )
}
