//! An embedded TON network: the contracts' compiled code runs on a real TVM (tycho-vm and
//! tycho-executor, pure Rust), with the fees, gas, exit codes and out-messages of TON.
//!
//! # What it is
//!
//! [`Network`] holds basechain accounts by address (code, data, balance, status, storage
//! stats) and executes messages on them with tycho's transaction executor. The caller owns
//! time: `now`, the logical time and the random seed are set from outside, and nothing reads a
//! clock or the network. The blockchain config is built in code with mainnet's gas, forwarding
//! and storage prices ([`mainnet_config`]), so fees are mainnet's to the nanoton.
//!
//! Everything crosses the boundary as plain data: cells as BOC bytes, addresses as
//! [`Address`], get-method stacks as [`StackValue`] (all `Send`; the VM's `Rc` stack stays
//! inside). The rest of the workspace uses tonlib-core cells; the BOC bytes are the bridge,
//! and the cell hashes agree on both sides.
//!
//! # Mirrored from @ton/sandbox, and why
//!
//! The contracts are tested in @ton/sandbox (`contracts/`), so the network behaves the way
//! the sandbox does wherever the sandbox chooses, so that one set of expectations holds for
//! both. `tests/parity.rs` replays `contracts/fixtures/traces.json` (written by the
//! sandbox) and requires every exit code, gas figure, fee, balance and out-message to be equal.
//!
//! - **Delivery order.** A send executes its message, then every internal out-message in a
//!   FIFO queue (breadth first, as the sandbox's `sendMessage`), bounces included, until no
//!   message is left. External out-messages are recorded and never delivered.
//! - **Logical time.** lt advances by [`LT_STEP`] (10⁶) before every transaction, as the
//!   sandbox's does.
//! - **Unknown addresses.** An address never seen is an existing `Uninit` account with no
//!   balance (the sandbox's empty shard account, not `account_none`). So a plain wallet
//!   address with no code accepts value, and a bounceable message to it bounces.
//! - **Storage of code-less accounts.** TON counts an uninit account's storage as no cells and
//!   8 bits per byte of its balance; tycho counts the account cell. The network rewrites the
//!   stats after each transaction, so plain wallets pay the sandbox's storage fee, not 19 times
//!   it.
//! - **Get-methods** run with TVM 12 (tycho-vm's own getter runner uses TVM 11, on which Tolk
//!   1.3 code fails with exit 6) and the sandbox's gas limit of 10⁷.
//! - **Injected messages** are free: an internal message from any address brings its value,
//!   as the sandbox's `internal()` does (the sender is not debited).
//!
//! # What differs
//!
//! - **State and transaction hashes.** TON v12 writes `storage_extra_info` into active
//!   accounts; tycho 0.3 writes `storage_extra_none`. Account cells, and so state and
//!   transaction hashes, differ from the sandbox's. Fees and stats do not. Nothing here exposes
//!   those hashes.
//! - **Basechain only.** Messages to other workchains are refused
//!   ([`Error::UnsupportedWorkchain`]); extra currencies and libraries are untested.
//! - **Rejected externals** are an error ([`Error::ExternalNotAccepted`], with the exit code),
//!   as the sandbox throws; no transaction is recorded, but the lt step is used up, as in the
//!   sandbox.
//!
//! # Guarantees
//!
//! - A send either returns its whole [`Trace`] or fails and changes nothing: accounts and lt
//!   (but for a rejected external's lt step) are rolled back on any error, including
//!   [`Error::TooManyTransactions`] (the bound on one trace, [`DEFAULT_MAX_TRANSACTIONS`]
//!   unless set), which is how a message loop ends.
//! - Bad input is an [`Error`], never a panic: malformed BOCs, a body that is not the expected
//!   cell, cell overflow, unknown or non-active accounts.
//! - Deterministic: the same sends at the same `now`, lt and seed give the same results.
//!   [`Network::snapshot`] writes everything (config included) as one BOC and
//!   [`Network::restore`] continues from it identically.
//!
//! # Durable
//!
//! [`LocalNetwork`] ([`durable`]) keeps a `Network` in a directory: a journal of its inputs
//! (each fdatasync'ed before the call returns), snapshots every N records, a torn last record
//! cut off on open, an exclusive file lock and catch-up around every call so several processes
//! share one network, and each account's recent transactions ([`History`]) for reading back.
//!
//! Execution is synchronous and CPU-bound (tens of microseconds per transaction in release
//! builds; `examples/throughput.rs` measures it), so a caller can run it under a lock.
//!
//! The versions of the tycho crates are pinned exactly: a new TON version (opcodes, fee rules)
//! needs a tycho release that follows it, and an upgrade must pass the parity fixtures again.

mod address;
mod config;
pub mod durable;
mod error;
mod network;
mod stack;
mod trace;

pub use address::Address;
pub use config::mainnet_config;
pub use durable::history::{AccountTransaction, History, OutSummary, DEFAULT_HISTORY_LIMIT};
pub use durable::{Clock, Genesis, LocalNetwork, Options};
pub use error::{Error, Result};
pub use network::{
    state_init, AccountInfo, GetMethodResult, InternalMessage, Network, DEFAULT_MAX_TRANSACTIONS,
    LT_STEP,
};
pub use num_bigint::BigInt;
pub use stack::{cell_hash, method_id, StackValue};
pub use trace::{AccountStatus, ComputeSkipReason, InMessage, OutMessage, Trace, Transaction};

/// Compile-time check: a network can be moved to and shared between threads (the devnet keeps
/// one behind a lock in an async server).
#[allow(dead_code)]
fn _assert_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Network>();
    send_sync::<Trace>();
    send_sync::<StackValue>();
    send_sync::<GetMethodResult>();
    send_sync::<LocalNetwork>();
    send_sync::<Error>();
}
