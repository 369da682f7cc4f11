//! The turmoil fabric carries a request to a handler and its answer back, and a partition
//! turns the same request into a timeout.

use fedlab::server::transport::{HttpHandler, Transport as _, TransportError};
use fedlab::sim::turmoil_fabric::{TurmoilTransport, serve};
use hyper::body::Bytes;
use hyper::{Request, Response};
use std::rc::Rc;
use std::time::Duration;

fn echo_handler() -> HttpHandler {
    Rc::new(|request: Request<Bytes>| {
        Box::pin(async move {
            let body = format!(
                "{} {} {}",
                request.method(),
                request.uri(),
                request.body().len()
            );
            Response::new(Bytes::from(body))
        })
    })
}

fn transport() -> TurmoilTransport {
    TurmoilTransport {
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn request_reaches_handler_and_answer_comes_back() {
    let mut sim = turmoil::Builder::new().rng_seed(7).build();
    sim.host("hs1.test", || async {
        serve(echo_handler()).await.map_err(Into::into)
    });
    sim.client("hs2.test", async {
        let request = Request::post("/_matrix/federation/v1/send/1").body(Bytes::from("abc"))?;
        let response = transport().send("hs1.test", request).await?;
        assert_eq!(
            response.body().as_ref(),
            b"POST /_matrix/federation/v1/send/1 3"
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn partition_times_out() {
    let mut sim = turmoil::Builder::new().rng_seed(7).build();
    sim.host("hs1.test", || async {
        serve(echo_handler()).await.map_err(Into::into)
    });
    sim.client("hs2.test", async {
        turmoil::partition("hs1.test", "hs2.test");
        let request = Request::get("/x").body(Bytes::new())?;
        let result = transport().send("hs1.test", request).await;
        assert!(
            matches!(
                result,
                Err(TransportError::TimedOut { .. } | TransportError::Unreachable { .. })
            ),
            "{result:?}"
        );
        Ok(())
    });
    sim.run().unwrap();
}
