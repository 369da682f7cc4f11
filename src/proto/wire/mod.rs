//! The federation wire types: the JSON bodies that homeservers exchange over the server-server
//! API, the error body, and the endpoint paths.
//!
//! Every type derives `Serialize` and `Deserialize` and follows the current Matrix server-server
//! API field by field. Unknown fields from peers are accepted and dropped (the spec lets servers
//! add fields); missing required fields are errors. PDUs stay raw JSON objects ([`RawPdu`])
//! because their shape depends on the room version, which only the caller knows; EDUs arrive as
//! [`RawEdu`] so that one malformed or unknown EDU never spoils the transaction that carries it,
//! and [`RawEdu::parse`] gives the typed [`Edu`].
//!
//! Nothing here does I/O or reads a clock: timestamps are fields the caller fills in.

mod edu;
mod error;
mod history;
mod membership;
pub mod paths;
mod transaction;

pub use edu::{
    DIRECT_TO_DEVICE_MESSAGE_ID_CHARS_MAX, DeviceListUpdateContent, DirectToDeviceContent, Edu,
    EduError, PresenceContent, PresenceState, PresenceUpdate, RawEdu, ReadReceipt, ReadReceiptData,
    ReceiptContent, RoomReceipts, TypingContent,
};
pub use error::{BodyError, ErrorCode, MatrixError, ResponseError, parse_json_body};
pub use history::{
    BackfillQuery, BackfillResponse, EventAuthResponse, EventResponse,
    GET_MISSING_EVENTS_LIMIT_DEFAULT, GetMissingEventsRequest, GetMissingEventsResponse,
    PduTransaction, StateIdsResponse, StateQuery, StateResponse, text,
};
pub use membership::{
    InviteRequest, InviteResponse, MakeJoinQuery, MakeMembershipResponse, SendJoinQuery,
    SendJoinResponse, SendLeaveResponse, TemplateError,
};
pub use transaction::{
    PduProcessingResult, SendTransactionResponse, TRANSACTION_EDUS_MAX, TRANSACTION_PDUS_MAX,
    Transaction, TransactionError, TransactionTexts,
};

/// A PDU as it travels: a JSON object whose fields depend on the room version.
pub type RawPdu = serde_json::Map<String, serde_json::Value>;
