//! Where money is accounted: reserve before running, charge what the worker reported after,
//! release on failure.
//!
//! [`Books::Paid`] is the durable, signed [`cocoon_ledger::Ledger`] of a proxy with
//! `[payments]`: a charge is only told to the client once it is on disk. [`Books::Free`] is a
//! proxy without payments: it serves everyone and only counts ([`MemoryLedger`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Tokens held for a running request of a free proxy.
#[derive(Debug)]
#[must_use = "a reservation must be charged or released"]
pub struct FreeReservation {
    id: u64,
    client: Arc<str>,
    tokens: u64,
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

/// The books of a free proxy: every client has unlimited credit; totals are kept for `/stats`
/// and tests.
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

impl MemoryLedger {
    fn reserve(&self, client: &str, tokens: u64) -> FreeReservation {
        let mut books = self.books();
        let account = books.clients.entry(client.to_string()).or_default();
        account.reserved_tokens = account.reserved_tokens.saturating_add(tokens);
        FreeReservation {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client: client.into(),
            tokens,
        }
    }

    fn charge(&self, reservation: FreeReservation, worker: &str, tokens: u64) {
        let mut books = self.books();
        let account = books
            .clients
            .entry(reservation.client.to_string())
            .or_default();
        account.reserved_tokens = account.reserved_tokens.saturating_sub(reservation.tokens);
        account.charged_tokens = account.charged_tokens.saturating_add(tokens);
        account.requests += 1;
        let worker = books.workers.entry(worker.to_string()).or_default();
        worker.earned_tokens = worker.earned_tokens.saturating_add(tokens);
        worker.requests += 1;
        tracing::trace!(reservation = reservation.id, tokens, "charged");
    }

    fn release(&self, reservation: FreeReservation) {
        let mut books = self.books();
        let account = books
            .clients
            .entry(reservation.client.to_string())
            .or_default();
        account.reserved_tokens = account.reserved_tokens.saturating_sub(reservation.tokens);
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        self.books().clone()
    }
}

/// Why a request could not reserve its tokens.
pub type ReserveError = cocoon_ledger::LedgerError;

/// Tokens held for a running request.
#[derive(Debug)]
#[must_use = "a reservation must be charged or released"]
pub enum Reservation {
    /// Of a free proxy.
    Free(FreeReservation),
    /// Of a paid proxy (dropping it releases the tokens).
    Paid(cocoon_ledger::Reservation),
}

impl Reservation {
    /// The client whose tokens are held: its key in the books.
    pub fn client_key(&self) -> &str {
        match self {
            Reservation::Free(r) => &r.client,
            Reservation::Paid(r) => r.client(),
        }
    }
}

/// What became of a charge.
#[must_use = "a paid charge is only durable once its Pending resolves"]
pub enum Charged {
    /// Counted (free proxy): nothing to wait for.
    Done,
    /// On its way to the disk: tell the client once it resolves.
    Pending(cocoon_ledger::Pending),
}

/// The proxy's books.
pub enum Books {
    /// No payments: everyone is served and only counted.
    Free(MemoryLedger),
    /// The durable ledger of a proxy with `[payments]`.
    Paid(Arc<cocoon_ledger::Ledger>),
}

impl Books {
    /// Holds `tokens` of `client`'s balance for a request about to run.
    pub fn reserve(&self, client: &str, tokens: u64) -> Result<Reservation, ReserveError> {
        match self {
            Books::Free(books) => Ok(Reservation::Free(books.reserve(client, tokens))),
            Books::Paid(ledger) => ledger.reserve(client, tokens).map(Reservation::Paid),
        }
    }

    /// Charges `tokens` for `request_id` to the reservation's client and credits `worker`.
    pub fn charge(
        &self,
        reservation: Reservation,
        worker: &str,
        tokens: u64,
        request_id: [u8; 32],
    ) -> Charged {
        match (self, reservation) {
            (Books::Free(books), Reservation::Free(r)) => {
                books.charge(r, worker, tokens);
                Charged::Done
            }
            (Books::Paid(ledger), Reservation::Paid(r)) => {
                Charged::Pending(ledger.charge(r, worker, tokens, request_id))
            }
            // A reservation always comes from the books it is charged to.
            (_, reservation) => {
                tracing::error!(?reservation, "reservation charged to other books; released");
                Charged::Done
            }
        }
    }

    /// Records that a running request delivered work worth `tokens` so far (paid books only;
    /// see [`cocoon_ledger::Ledger::progress`]). Not awaited.
    pub fn progress(&self, request_id: [u8; 32], client: &str, worker: &str, tokens: u64) {
        if let Books::Paid(ledger) = self {
            drop(ledger.progress(request_id, client, worker, tokens));
        }
    }

    /// Releases a reservation without charging.
    pub fn release(&self, reservation: Reservation) {
        match (self, reservation) {
            (Books::Free(books), Reservation::Free(r)) => books.release(r),
            (_, reservation) => drop(reservation),
        }
    }

    /// Current totals, for `/stats`.
    pub fn snapshot(&self) -> serde_json::Value {
        let value = match self {
            Books::Free(books) => serde_json::to_value(books.snapshot()),
            Books::Paid(ledger) => serde_json::to_value(ledger.snapshot()),
        };
        value.unwrap_or_default()
    }

    /// How a paid proxy's ledger writer has grouped records into commits (`None` when free).
    pub fn writer_stats(&self) -> Option<cocoon_ledger::WriterStats> {
        match self {
            Books::Free(_) => None,
            Books::Paid(ledger) => Some(ledger.writer_stats()),
        }
    }

    /// Whether charges cost money.
    pub fn is_paid(&self) -> bool {
        matches!(self, Books::Paid(_))
    }
}
