//! The proxy's durable, signed, rollback-detecting ledger: the live truth about money.
//!
//! A [`Ledger`] keeps, per client, the last synced on-chain balance, what this proxy charged
//! and signed, and what running requests hold; per worker, what it earned and what was signed
//! for payout. Every change is a [`Record`] appended to a log file, with a seqno and a
//! SHA-256 hash chain; every committed batch carries the proxy's Ed25519 signature over the
//! `(seqno, hash)` of its last record. One committer at a time (a writer thread, or at light
//! load the caller itself) commits everything queued as one frame, one write and one
//! `fdatasync` (group commit), so one sync serves many charges.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use cocoon_ledger::{Ledger, LedgerConfig};
//! let ledger = Ledger::open("proxy.ledger", LedgerConfig::new([7; 32], 20, 19))?;
//! let (chain_seqno, chain_hash) = (0, [0; 32]); // read from the proxy contract
//! ledger.check_chain_commit(chain_seqno, chain_hash)?;
//! ledger.sync_client("alice", 1_000_000, 10_000, 0).await?;
//! let reservation = ledger.reserve("alice", 500)?;
//! // ... run the request ...
//! let receipt = ledger.charge(reservation, "worker-1", 420, [1; 32]).await?;
//! # let _ = receipt; Ok(()) }
//! ```
//!
//! The design, the file format and the crash argument are in `docs/ledger.md`.
//!
//! **Architecture invariant:** records are only appended, never changed; every change to the
//! books is one record, and the books are nothing but the records added up.

mod accounts;
pub mod bench;
mod chain;
mod error;
mod ledger;
mod legacy;
mod record;
mod store;
mod writer;

pub use accounts::{available_nano, ClientAccount, LedgerSnapshot, WorkerAccount};
pub use chain::{batch_message, genesis_hash, next_hash, verify_batch, PublicKey, Signature};
pub use error::{CorruptReason, LedgerError, OpenError, RollbackError};
pub use ledger::{
    ChargeReceipt, Durability, Ledger, LedgerConfig, Pending, Receipt, Reservation, WriterStats,
    DEFAULT_CALLER_COMMIT_PAUSE, DEFAULT_COMMIT_DELAY, DEFAULT_COMMIT_SIBLINGS, DEFAULT_MAX_BATCH,
    SLOW_FLUSH,
};
pub use record::{Charge, DecodeError, Progress, Record, MAX_KEY_LEN, RECORD_VERSION};
pub use store::{Head, StoredRecord};

#[cfg(test)]
mod tests;
