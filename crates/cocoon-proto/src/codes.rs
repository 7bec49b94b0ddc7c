//! Error codes carried in `queryAnswerErrorEx` and `tcp.queryError` between our daemons.
//!
//! They reuse HTTP status numbers so the client can turn a proxy's verdict into the HTTP
//! status an OpenAI SDK expects without a translation table.

/// The request itself is invalid (bad body, unsupported protocol version).
pub const BAD_REQUEST: i32 = 400;
/// The client cannot pay for the request.
pub const PAYMENT_REQUIRED: i32 = 402;
/// No worker serves the requested model.
pub const MODEL_NOT_FOUND: i32 = 404;
/// The proxy itself failed (e.g. its ledger could not record a charge).
pub const INTERNAL: i32 = 500;
/// The worker or its backend failed.
pub const UPSTREAM_FAILED: i32 = 502;
/// Workers exist for the model but none can take the request now.
pub const NO_WORKER_AVAILABLE: i32 = 503;
/// The request did not finish within its timeout.
pub const TIMEOUT: i32 = 504;
/// The request was cancelled: its client went away or ran out of time (nginx's 499).
pub const CANCELLED: i32 = 499;
/// An answer or request is larger than the limit of the hop that refused it.
pub const TOO_LARGE: i32 = 413;
/// The daemon is shutting down.
pub const SHUTTING_DOWN: i32 = 503;

/// The protocol version we speak (answers with the `Ex` messages).
pub const PROTO_VERSION: i32 = 2;
/// The lowest protocol version we accept from a peer: `Ex` messages need at least 1.
pub const MIN_PROTO_VERSION: i32 = 1;
