//! Errors, one enum per kind of operation: running ([`LedgerError`]), opening ([`OpenError`])
//! and checking the chain's commit ([`RollbackError`]).

use std::sync::Arc;

use crate::record::DecodeError;

/// Why an operation on an open ledger was refused. A refused operation changes nothing.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The client's balance cannot cover the reservation.
    #[error(
        "insufficient balance of {client}: {available_tokens} tokens available, {requested_tokens} requested"
    )]
    InsufficientBalance {
        /// Client key.
        client: String,
        /// Tokens the client could still pay for.
        available_tokens: u64,
        /// Tokens asked for.
        requested_tokens: u64,
    },
    /// This request id was charged before; the second charge is refused.
    #[error("request {} was already charged", hex::encode(request_id))]
    DuplicateCharge {
        /// The request id.
        request_id: [u8; 32],
    },
    /// A signed charge or payout lower than one already signed.
    #[error("{account}: {requested} tokens is below the {signed} already signed")]
    NotIncreasing {
        /// Client or worker key.
        account: String,
        /// Highest count signed so far.
        signed: u64,
        /// Count asked for.
        requested: u64,
    },
    /// A signed charge above what the client was charged, or a payout above what the worker
    /// earned: the proxy never signs for tokens it has not accounted.
    #[error("{account}: cannot sign {requested} tokens, only {accounted} accounted")]
    ExceedsAccounted {
        /// Client or worker key.
        account: String,
        /// Tokens charged (client) or earned (worker).
        accounted: u64,
        /// Count asked for.
        requested: u64,
    },
    /// A client or worker key that is empty or longer than [`crate::MAX_KEY_LEN`] bytes.
    #[error("invalid account key ({len} bytes; 1 to 256 allowed)")]
    InvalidKey {
        /// The key's length in bytes.
        len: usize,
    },
    /// A worker fee above the price: the proxy's commission would be negative.
    #[error("worker fee {worker_fee_per_token} above price {price_per_token} per token")]
    FeeAbovePrice {
        /// Nano-TON per token charged.
        price_per_token: u128,
        /// Nano-TON per token credited.
        worker_fee_per_token: u128,
    },
    /// An amount would overflow its counter.
    #[error("amount overflow")]
    Overflow,
    /// The reservation belongs to another ledger.
    #[error("reservation from another ledger")]
    ForeignReservation,
    /// The ledger no longer accepts records: it was closed, or a commit failed. After a failed
    /// commit the in-memory books may hold records that never reached the disk, so the ledger
    /// stops until it is opened again from the file.
    #[error("ledger unavailable: {reason}")]
    Unavailable {
        /// What stopped it.
        reason: Arc<str>,
    },
    /// Reading the file failed.
    #[error("ledger storage: {0}")]
    Storage(Arc<str>),
}

/// Why [`crate::Ledger::open`] refused a file. Every variant names what was found, so an
/// operator can tell a damaged disk from a foreign or forged file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration is unusable (for example `max_batch` is 0).
    #[error("invalid ledger configuration: {0}")]
    InvalidConfig(String),
    /// The signing key seed was rejected.
    #[error("invalid signing key")]
    InvalidKey,
    /// The file could not be created, read, written or synced.
    #[error("ledger file: {0}")]
    Storage(#[from] std::io::Error),
    /// The writer thread could not be started.
    #[error("starting the ledger writer: {0}")]
    Thread(std::io::Error),
    /// The file is not a ledger of a version this build reads.
    #[error("unsupported ledger format: {0}")]
    UnsupportedFormat(String),
    /// The file belongs to another proxy key.
    #[error(
        "ledger was written by key {}, but the configured key is {}",
        hex::encode(file_key),
        hex::encode(configured_key)
    )]
    WrongKey {
        /// The public key recorded in the file.
        file_key: [u8; 32],
        /// The public key of the configured seed.
        configured_key: [u8; 32],
    },
    /// A record is damaged: a seqno gap, bytes that do not decode, or a hash that does not
    /// match the chain.
    #[error("ledger corrupt at seqno {seqno}: {reason}")]
    Corrupt {
        /// The first bad record.
        seqno: u64,
        /// What is wrong with it.
        reason: CorruptReason,
    },
    /// A batch signature does not verify: the records were altered, or signed by another key.
    #[error("bad signature on the batch ending at seqno {seqno}")]
    BadSignature {
        /// The record carrying the signature.
        seqno: u64,
    },
    /// The last record carries no signature, so the end of the file is not vouched for.
    #[error("the last record (seqno {seqno}) is not signed: the file was truncated or altered")]
    UnsignedHead {
        /// The last record.
        seqno: u64,
    },
    /// A record breaks the ledger's rules (for example a duplicate request id). Records are
    /// checked before they are written, so this means a forged or buggy history.
    #[error("record {seqno} breaks the ledger rules: {source}")]
    InvalidRecord {
        /// The record.
        seqno: u64,
        /// The rule it breaks.
        source: LedgerError,
    },
}

/// What is wrong with a damaged record.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// Seqnos are not consecutive.
    #[error("expected seqno {expected}")]
    Gap {
        /// The seqno that should have come next.
        expected: u64,
    },
    /// The stored value is too short to hold a hash and a record.
    #[error("stored value too short")]
    Short,
    /// The record does not decode.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The seqno inside the record differs from its position.
    #[error("record says seqno {0}")]
    SeqnoMismatch(u64),
    /// The stored chain hash differs from the one recomputed from the records.
    #[error("chain hash mismatch")]
    HashMismatch,
    /// A signature stored for a record that does not exist.
    #[error("signature without a record")]
    DanglingSignature,
    /// A frame of the log is malformed, or damaged with more data after it (a torn last
    /// frame followed by nothing but zeros is cut off instead).
    #[error("frame at offset {offset}: {problem}")]
    Frame {
        /// Where the frame starts in the file.
        offset: u64,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Why the chain's last committed state does not match this ledger. Either way the proxy must
/// not start: it would sign from books that are not the ones the chain has seen.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// The chain has a commit beyond this file's end: this is an old copy of the ledger.
    #[error(
        "ledger rolled back: local head is seqno {local_seqno}, the chain has committed seqno {chain_seqno}"
    )]
    RolledBack {
        /// This file's last seqno.
        local_seqno: u64,
        /// The seqno the chain holds.
        chain_seqno: u64,
    },
    /// The chain's hash at its seqno differs from this file's: the file is a clone that went
    /// another way.
    #[error(
        "ledger forked at seqno {seqno}: local hash {}, chain hash {}",
        hex::encode(local_hash),
        hex::encode(chain_hash)
    )]
    Forked {
        /// The chain's seqno.
        seqno: u64,
        /// This file's hash there.
        local_hash: [u8; 32],
        /// The chain's hash.
        chain_hash: [u8; 32],
    },
    /// The file could not be read.
    #[error("ledger storage: {0}")]
    Storage(Arc<str>),
}

/// An I/O error, as the shared text carried by [`LedgerError::Storage`].
pub(crate) fn storage(error: std::io::Error) -> Arc<str> {
    error.to_string().into()
}
