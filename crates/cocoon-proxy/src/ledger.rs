//! The seam where money will be accounted: reserve before running, charge what the worker
//! reported after, release on failure.
//!
//! This issue keeps the books in memory ([`MemoryLedger`]); the durable, signed ledger with TON
//! payments replaces it behind the same trait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cocoon_proto::TokensUsed;
use serde::Serialize;

/// Why a reservation was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The client cannot cover the reservation.
    #[error("insufficient balance: {available} tokens available, {requested} requested")]
    InsufficientBalance {
        /// Tokens the client could still pay for.
        available: u64,
        /// Tokens asked for.
        requested: u64,
    },
}

/// Tokens held for a running request.
#[derive(Debug)]
#[must_use = "a reservation must be charged or released"]
pub struct Reservation {
    id: u64,
    client: Arc<str>,
    tokens: u64,
}

impl Reservation {
    /// The client the reservation belongs to.
    pub fn client(&self) -> &str {
        &self.client
    }
}

/// Per-client totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientAccount {
    /// Tokens currently reserved by running requests.
    pub reserved_tokens: u64,
    /// Tokens charged for finished requests.
    pub charged_tokens: u64,
    /// Finished requests.
    pub requests: u64,
}

/// Per-worker totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerAccount {
    /// Tokens the worker earned.
    pub earned_tokens: u64,
    /// Requests the worker completed.
    pub requests: u64,
}

/// Everything the ledger knows, for `/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LedgerSnapshot {
    /// By client key.
    pub clients: HashMap<String, ClientAccount>,
    /// By worker key.
    pub workers: HashMap<String, WorkerAccount>,
}

/// Accounts of a proxy.
pub trait Ledger: Send + Sync + 'static {
    /// Holds `tokens` of `client`'s balance for a request about to run.
    fn reserve(&self, client: &str, tokens: u64) -> Result<Reservation, LedgerError>;
    /// Charges `used` tokens to the reservation's client, credits `worker`, releases the rest.
    fn charge(&self, reservation: Reservation, worker: &str, used: &TokensUsed);
    /// Releases a reservation without charging (the request failed before any answer).
    fn release(&self, reservation: Reservation);
    /// Current totals.
    fn snapshot(&self) -> LedgerSnapshot;
}

/// In-memory ledger: every client has unlimited credit; totals are kept for `/stats` and tests.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    next_id: AtomicU64,
    books: Mutex<LedgerSnapshot>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    fn books(&self) -> std::sync::MutexGuard<'_, LedgerSnapshot> {
        // Every update below is complete before it can panic, so a poisoned lock holds
        // consistent books.
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The billable count of a usage report.
pub fn billable_tokens(used: &TokensUsed) -> u64 {
    u64::try_from(used.total_tokens_used).unwrap_or(0)
}

impl Ledger for MemoryLedger {
    fn reserve(&self, client: &str, tokens: u64) -> Result<Reservation, LedgerError> {
        let mut books = self.books();
        let account = books.clients.entry(client.to_string()).or_default();
        account.reserved_tokens += tokens;
        Ok(Reservation {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client: client.into(),
            tokens,
        })
    }

    fn charge(&self, reservation: Reservation, worker: &str, used: &TokensUsed) {
        let tokens = billable_tokens(used);
        let mut books = self.books();
        let account = books
            .clients
            .entry(reservation.client.to_string())
            .or_default();
        account.reserved_tokens = account.reserved_tokens.saturating_sub(reservation.tokens);
        account.charged_tokens += tokens;
        account.requests += 1;
        let worker = books.workers.entry(worker.to_string()).or_default();
        worker.earned_tokens += tokens;
        worker.requests += 1;
        tracing::trace!(reservation = reservation.id, tokens, "charged");
    }

    fn release(&self, reservation: Reservation) {
        let mut books = self.books();
        let account = books
            .clients
            .entry(reservation.client.to_string())
            .or_default();
        account.reserved_tokens = account.reserved_tokens.saturating_sub(reservation.tokens);
    }

    fn snapshot(&self) -> LedgerSnapshot {
        self.books().clone()
    }
}
