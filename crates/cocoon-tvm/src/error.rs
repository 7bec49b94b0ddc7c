//! The one error type of the crate: every way a call can fail, none of them a panic.

use std::path::PathBuf;

use crate::Address;

/// What went wrong. A failed [`crate::Network::send_internal`] or
/// [`crate::Network::send_external`] leaves the network exactly as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that should hold a bag of cells do not (bad magic, truncated, not exactly one
    /// root, …). `what` says which input.
    #[error("{what}: not a valid BOC: {source}")]
    BadBoc {
        what: &'static str,
        #[source]
        source: tycho_types::boc::de::Error,
    },
    /// A cell could not be built or read: overflow (more than 1023 bits or 4 references),
    /// underflow, or a cell that does not have the expected layout (a body that is not a
    /// `StateInit`, an account that does not parse).
    #[error("cell: {0}")]
    Cell(#[from] tycho_types::error::Error),
    /// An address string is not `workchain:64-hex-digits`.
    #[error("bad address {0:?}: expected workchain:hex (64 hex digits)")]
    BadAddress(String),
    /// Only the basechain (workchain 0) is simulated; a message to another workchain, or an
    /// address in another form (`addr_var`), cannot be delivered.
    #[error("address {0} is outside the basechain; only workchain 0 is simulated")]
    UnsupportedWorkchain(String),
    /// A get-method was called on an account that has no code (never deployed, or frozen).
    #[error("account {0} is not active (no code to run)")]
    AccountNotActive(Address),
    /// The account a get-method ran on does not have the method, or the method could not start.
    /// (A method that *runs* and throws is not an error: its exit code is in the result.)
    #[error("get-method {method:?} on {account}: {reason}")]
    GetMethod {
        account: Address,
        method: String,
        reason: String,
    },
    /// The contract did not accept the external message (it threw before `ACCEPT`, or has no
    /// code): no transaction exists, as on a real network. `exit_code` is the compute phase's.
    #[error("external message to {account} not accepted (exit code {exit_code:?})")]
    ExternalNotAccepted {
        account: Address,
        exit_code: Option<i32>,
    },
    /// One send produced more transactions than the network allows (a message loop, or a trace
    /// larger than the configured bound). Nothing of the send was kept.
    #[error("more than {limit} transactions in one trace: a message loop?")]
    TooManyTransactions { limit: usize },
    /// The executor failed in a way that is not a contract's exit code (an internal
    /// inconsistency, or a message the executor refuses).
    #[error("executor: {0}")]
    Executor(String),
    /// The blockchain config could not be built or parsed.
    #[error("config: {0}")]
    Config(String),
    /// A stack value cannot cross the boundary (a continuation, or a nested value too deep).
    #[error("stack value not supported: {0}")]
    UnsupportedStackValue(&'static str),
    /// Snapshot bytes that are a valid BOC but not a snapshot of this format.
    #[error("not a cocoon-tvm snapshot: {0}")]
    BadSnapshot(&'static str),
    /// A file of a [`crate::LocalNetwork`] could not be read, written or locked.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of a [`crate::LocalNetwork`] is damaged (not a torn last record, which is cut off
    /// silently, being a call that never returned): `offset` is where the damage starts, in
    /// bytes from the start of the file.
    #[error("{} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A journal record that checks does not do on replay what it did when it was written
    /// (another executor version, or a journal edited by hand).
    #[error("{}: the record at byte {offset} does not replay: {reason}", path.display())]
    Replay {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// [`crate::LocalNetwork::create`] on a directory that already holds a network.
    #[error("{} already exists", .0.display())]
    AlreadyExists(PathBuf),
    /// An input too large to journal (or empty), refused before it ran.
    #[error("a journal record of {size} bytes (the limit is {limit})")]
    RecordTooLarge { size: usize, limit: usize },
    /// A wallet cannot pay for what it sends ([`crate::LocalNetwork::transfer`]); nothing ran.
    #[error("{account} holds {balance} nanoton, {needed} are needed")]
    InsufficientBalance {
        account: Address,
        balance: u128,
        needed: u128,
    },
    /// A local network's time may not go backwards.
    #[error("time may not go backwards: the network is at {now}, {requested} was asked")]
    TimeBackwards { now: u32, requested: u32 },
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
