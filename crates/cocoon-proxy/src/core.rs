//! The proxy's heart: the worker registry, worker selection, and the life of each request
//! (assign → relay → finish, with one retry when a worker fails before its first answer byte).
//!
//! All routing state sits under one short-held mutex; nothing is awaited while it is held.
//! Messages are encoded after the lock is released. Worker selection does not scan the
//! workers: each model keeps its available workers ordered by expected wait, so a pick is the
//! first entry that suits the client (at 1,000 workers a scan per request was 16 % of the
//! proxy's CPU).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cocoon_net::metrics::{unix_time_f64, TokenCounters};
use cocoon_net::ConnectionHandle;
use cocoon_proto::{codes, *};

use crate::billing::{self, Billed, Progress};
use crate::ledger::{Books, Charged, Reservation};
use crate::payments::Payments;

/// A request is tried on at most this many workers, and only while no answer byte reached the
/// client (after that, replaying would duplicate output).
const MAX_ATTEMPTS: u32 = 2;
/// Weight of the newest latency sample in a worker's decaying mean.
const LATENCY_DECAY: f64 = 0.2;
/// Starting latency estimate for a new worker, in seconds.
pub(crate) const INITIAL_LATENCY_SECS: f64 = 0.5;
/// How long a request that ended for its client (timed out, client gone) waits for its
/// worker's last message after a `proxy.cancelQuery` before the worker's slot is freed anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// How often a paid request that is relaying records its progress in the ledger, so a crash
/// loses at most this much of its bill (see [`Router::expire`]).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// One connected worker (one connection; a worker with several proxies has one entry each).
#[derive(Debug)]
pub(crate) struct WorkerEntry {
    pub handle: ConnectionHandle,
    /// Shared with the requests it runs, which bill it even after its link is gone.
    pub owner: Arc<str>,
    pub model: String,
    pub coefficient: i32,
    /// Per-connection cap: ceil(max_active_requests / proxy_cnt).
    pub max_active: u32,
    pub running: u32,
    /// The worker finished its handshake.
    pub ready: bool,
    /// The worker says it can serve (backend up).
    pub enabled: bool,
    pub avg_latency_secs: f64,
    pub served: u64,
    pub failed: u64,
    pub tokens: u64,
    /// Tokens charged for this connection's answers (adjusted, as the ledger credits them).
    pub earned_tokens: u64,
    /// Usage reports above the request's reservation (capped).
    pub overreported: u64,
    /// The worker stops a request on `proxy.cancelQuery`.
    pub supports_cancel: bool,
    /// The HPKE key its attested claims carry: it takes sealed requests.
    pub sealing_key: Option<[u8; 32]>,
    /// Its certificate, handed to clients that seal requests (they verify it themselves).
    pub certificate: cocoon_net::PeerCertificate,
}

/// Most workers listed to a client for sealing: each entry is a certificate (a few KiB with
/// its quote), and a client needs only a few to choose from.
pub(crate) const MAX_SEALING_WORKERS: usize = 16;

/// A request as a client sent it, before it is bounded and placed.
struct Start {
    model: String,
    max_coefficient: i32,
    timeout: f64,
    request_id: [u8; 32],
    enable_debug: bool,
    /// The `http.request`, or the sealed bytes.
    query: Vec<u8>,
    /// A sealed request's clear half and the certificate key of the worker it is sealed for.
    sealed: Option<(SealedJob, [u8; 32])>,
}

/// The clear half of a sealed request (the sealed bytes are the entry's `query`).
struct SealedJob {
    endpoint: String,
    /// The completion tokens reserved: the worker holds the body to them.
    max_tokens: i32,
    /// The client's declared prompt estimate (the worker refuses one below its body's), never
    /// above the sealed size's.
    prompt_estimate: u64,
}

/// One request in flight.
struct RequestEntry {
    client: ConnectionHandle,
    client_request_id: [u8; 32],
    model: String,
    query: Arc<Vec<u8>>,
    max_coefficient: i32,
    timeout_secs: f64,
    deadline: Instant,
    worker: u64,
    /// The owner of `worker`: the ledger's key for what it earns, kept here because a worker
    /// whose link broke mid-answer is gone from the worker table when the request is billed.
    worker_owner: Arc<str>,
    tried: Vec<u64>,
    relayed_any: bool,
    reservation: Option<Reservation>,
    /// Adjusted tokens reserved: no charge exceeds it.
    reserved: u64,
    /// The coefficient `reserved` was priced at: a retry goes only to workers asking no more.
    reserved_coefficient: i32,
    /// What reached the client so far.
    progress: Progress,
    /// When the request's progress was last checkpointed in the ledger, and at how many tokens.
    checkpointed: (Instant, u64),
    /// The request is over for its client (timed out, client gone) and was billed; the entry
    /// only holds the worker's slot until the worker ends it or `deadline` passes.
    ended: bool,
    started: Instant,
    start_time: f64,
    enable_debug: bool,
    /// A request sealed to one worker: it goes to that worker only and is never retried
    /// elsewhere (no other worker can open it).
    sealed: Option<SealedJob>,
}

/// How to bill a request that ends.
#[derive(Clone, Copy)]
enum Bill<'a> {
    /// Nothing reached the client: release the reservation.
    Nothing,
    /// The worker's report of a complete answer.
    Report(&'a TokensUsed),
    /// An answer cut short: the worker's report if it made one, else the estimate of what was
    /// relayed (see [`billing`]).
    Cut(&'a TokensUsed),
}

#[derive(Default)]
struct State {
    workers: HashMap<u64, WorkerEntry>,
    /// Per model, the workers that can take a request now (ready, enabled, below their cap),
    /// best first. Kept in step with `workers` by [`State::with_worker`].
    available: HashMap<String, BTreeSet<Rank>>,
    /// Keyed by the request id the *worker* sees (fresh per attempt).
    requests: HashMap<[u8; 32], RequestEntry>,
}

/// A worker's place in its model's order: least `running × decaying mean latency` first, ties
/// to the faster, then the less used, then the older connection.
#[derive(Clone, Copy, Debug)]
struct Rank {
    expected_wait: f64,
    latency: f64,
    served: u64,
    id: u64,
}

impl Rank {
    /// Where `worker` ranks, or None when it cannot take a request now.
    fn of(id: u64, worker: &WorkerEntry) -> Option<Rank> {
        (worker.ready && worker.enabled && worker.running < worker.max_active).then_some(Rank {
            expected_wait: worker.running as f64 * worker.avg_latency_secs,
            latency: worker.avg_latency_secs,
            served: worker.served,
            id,
        })
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Rank {}
impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Rank {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.expected_wait
            .total_cmp(&other.expected_wait)
            .then(self.latency.total_cmp(&other.latency))
            .then(self.served.cmp(&other.served))
            .then(self.id.cmp(&other.id))
    }
}

impl State {
    /// The only way a registered worker changes: re-files it in its model's order afterwards.
    fn with_worker<R>(&mut self, id: u64, change: impl FnOnce(&mut WorkerEntry) -> R) -> Option<R> {
        let worker = self.workers.get_mut(&id)?;
        let before = Rank::of(id, worker);
        let result = change(worker);
        let after = Rank::of(id, worker);
        if before != after {
            let model = worker.model.as_str();
            if let Some(rank) = before {
                if let Some(ranks) = self.available.get_mut(model) {
                    ranks.remove(&rank);
                }
            }
            if let Some(rank) = after {
                match self.available.get_mut(model) {
                    Some(ranks) => {
                        ranks.insert(rank);
                    }
                    None => {
                        self.available
                            .insert(model.to_owned(), BTreeSet::from([rank]));
                    }
                }
            }
        }
        Some(result)
    }

    fn insert_worker(&mut self, id: u64, entry: WorkerEntry) {
        self.remove_worker(id);
        let model = entry.model.clone();
        let rank = Rank::of(id, &entry);
        self.workers.insert(id, entry);
        if let Some(rank) = rank {
            self.available.entry(model).or_default().insert(rank);
        }
    }

    fn remove_worker(&mut self, id: u64) {
        let Some(worker) = self.workers.remove(&id) else {
            return;
        };
        if let Some(rank) = Rank::of(id, &worker) {
            if let Some(ranks) = self.available.get_mut(&worker.model) {
                ranks.remove(&rank);
                if ranks.is_empty() {
                    self.available.remove(&worker.model);
                }
            }
        }
    }
}

/// Counters for `/metrics` and `/stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub timed_out: AtomicU64,
    /// Sealed answers relayed with their worker's receipt, and receipts dropped because they
    /// did not match the worker or its report.
    pub receipts: AtomicU64,
    pub receipts_refused: AtomicU64,
    pub client_connections: AtomicU64,
    pub tokens: TokenCounters,
}

/// Shared proxy state.
pub(crate) struct Router {
    state: Mutex<State>,
    pub ledger: Arc<Books>,
    /// The chain side of a paid proxy.
    pub payments: Option<Arc<crate::payments::Payments>>,
    pub counters: Counters,
    pub max_request_timeout_secs: f64,
    /// Models that are known even without a live worker (503 rather than 404).
    known_models: Vec<String>,
    /// The root's price multipliers (1.0× without payments), for reservations.
    multipliers: Multipliers,
    /// The version of the root's allow-lists the workers were last checked against.
    rules_seen: AtomicU64,
    /// A test's tampering with sealed requests ([`crate::danger`]); `None` outside tests.
    danger_tamper: Option<crate::danger::Tamper>,
    /// The key of this proxy's current certificate, which signs its charges of sealed requests
    /// (replaced on renewal).
    charge_signer: std::sync::RwLock<Option<Arc<cocoon_attest::receipt::ReceiptSigner>>>,
}

/// What to send after the lock is released.
pub(crate) enum Outgoing {
    ToClient(ConnectionHandle, ClientQueryAnswer),
    ToWorker(ConnectionHandle, ProxyToWorkerMessage),
    Cancel(ConnectionHandle, ProxyCancelQuery),
    /// A request's last message, held until its charge is durable: a client never sees the end
    /// of an answer the ledger could forget.
    AfterCharge(ConnectionHandle, ClientQueryAnswer, ChargeWait),
}

/// A paid request's charge on its way to the disk, and whom to tell what it cost once it is
/// there (`proxy.clientRequestPayment` after the last part, `proxy.workerRequestPayment`), as
/// the reference proxy does after every request.
pub(crate) struct ChargeWait {
    pending: cocoon_ledger::Pending,
    client_key: String,
    worker: Option<(ConnectionHandle, String)>,
    worker_request_id: [u8; 32],
    tokens: u64,
}

/// Sends a message; a closed peer's are dropped. Returns the refusal when the peer's queue is
/// full (a client not reading its answers), which fails only the request it belonged to.
fn send(handle: &ConnectionHandle, bytes: &[u8]) -> Result<(), cocoon_net::NetError> {
    match handle.send_packet(bytes) {
        Err(error @ cocoon_net::NetError::Backpressure { .. }) => Err(error),
        Err(error) => {
            tracing::debug!(connection = handle.id(), %error, "dropping message for a closed peer");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// Sends what a critical section produced. Returns the client messages refused for
/// backpressure that were not a request's last (the caller ends those requests).
fn send_all(
    payments: Option<&Arc<Payments>>,
    outgoing: Vec<Outgoing>,
) -> Vec<(ConnectionHandle, [u8; 32], cocoon_net::NetError)> {
    let mut refused = Vec::new();
    for message in outgoing {
        match message {
            Outgoing::ToClient(handle, answer) => {
                if let Err(error) = send(&handle, &answer.to_bytes()) {
                    if answer.final_info().is_none() {
                        refused.push((handle, *answer.request_id(), error));
                    }
                }
            }
            Outgoing::ToWorker(handle, message) => {
                if let Err(error) = send(&handle, &message.to_bytes()) {
                    tracing::warn!(connection = handle.id(), %error, "a request could not be queued for its worker");
                }
            }
            Outgoing::Cancel(handle, cancel) => {
                let _ = send(&handle, &cancel.to_bytes());
            }
            Outgoing::AfterCharge(handle, answer, mut wait) => {
                // A task of its own waits for the charge. At light load it commits the charge
                // itself (`commit_now`) when it first runs, right after this task yields, on
                // this thread; so this task, which reads a worker's answers for every request
                // on that worker, is never held for a flush.
                let payments = payments.cloned();
                tokio::spawn(async move {
                    let result = match wait.pending.commit_now() {
                        Some(result) => result,
                        None => (&mut wait.pending).await,
                    };
                    after_charge(payments.as_ref(), &handle, &answer, &wait, result);
                });
            }
        }
    }
    refused
}

/// Sends a paid request's last message once its charge is durable, and tells the client and
/// the worker what it cost; if the charge could not be recorded, an error instead.
fn after_charge(
    payments: Option<&Arc<Payments>>,
    handle: &ConnectionHandle,
    answer: &ClientQueryAnswer,
    wait: &ChargeWait,
    result: Result<cocoon_ledger::Receipt, cocoon_ledger::LedgerError>,
) {
    let request_id = *answer.request_id();
    match result {
        Ok(_) => {
            if let Err(error) = send(handle, &answer.to_bytes()) {
                tracing::warn!(connection = handle.id(), %error, "a request's last message could not be queued");
            }
            if let Some(payments) = payments {
                tell_payment(
                    payments,
                    (handle, &wait.client_key, request_id),
                    wait.worker
                        .as_ref()
                        .map(|(h, k)| (h, k.as_str(), wait.worker_request_id)),
                    wait.tokens,
                );
            }
        }
        Err(error) => {
            // Not durable, so not billed: the client gets an error instead of an end it would
            // not be charged for.
            tracing::error!(%error, "a charge could not be recorded");
            let failed = error_answer(
                request_id,
                codes::INTERNAL,
                "the proxy could not record the charge".into(),
                TokensUsed::default(),
            );
            let _ = send(handle, &failed.to_bytes());
        }
    }
}

/// Tells the client (`proxy.clientRequestPayment`, after the last part, in the same write) and
/// the worker (`proxy.workerRequestPayment`, at most once a second) of a finished paid request
/// what it cost and where their payments stand (the numbers are durable: the charge is).
fn tell_payment(
    payments: &Payments,
    (client, client_key, client_request_id): (&ConnectionHandle, &str, [u8; 32]),
    worker: Option<(&ConnectionHandle, &str, [u8; 32])>,
    tokens: u64,
) {
    let request_tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
    let status = payments.client_status(client_key);
    let to_client = ProxyClientRequestPayment {
        request_id: client_request_id,
        signed_payment: status.signed_payment,
        db_tokens: status.db_tokens,
        max_tokens: status.max_tokens,
        request_tokens,
    };
    let _ = send(client, &to_client.to_bytes());
    // The worker's copy is informational (it polls `worker.updatePaymentStatus` too) and costs
    // it a wake-up: at most one a second per worker, so a busy worker is not woken per request.
    let worker = worker.filter(|(_, key, _)| payments.worker_notice_due(key));
    if let Some((handle, worker_key, worker_request_id)) = worker {
        let status = payments.worker_status(worker_key);
        let to_worker = ProxyWorkerRequestPayment {
            request_id: worker_request_id,
            signed_payment: status.signed_payment,
            db_tokens: status.db_tokens,
            max_tokens: status.max_tokens,
            request_tokens,
            // The reference names the client's wallet here; the books key clients by their
            // contract and no worker reads the field, so it stays empty.
            request_client_owner: String::new(),
        };
        let _ = send(handle, &to_worker.to_bytes());
    }
}

fn short_id(id: &[u8; 32]) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn error_answer(
    request_id: [u8; 32],
    code: i32,
    message: String,
    tokens: TokensUsed,
) -> ClientQueryAnswer {
    ClientQueryAnswer::Error(ClientQueryAnswerErrorEx {
        request_id,
        error_code: code,
        error: message,
        final_info: Some(ClientQueryFinalInfo {
            tokens_used: tokens,
            debug: None,
            timings: None,
            receipt: None,
            charge: None,
        }),
    })
}

impl Router {
    pub fn new(
        ledger: Arc<Books>,
        payments: Option<Arc<crate::payments::Payments>>,
        max_request_timeout_secs: f64,
        known_models: Vec<String>,
    ) -> Router {
        let multipliers = payments
            .as_ref()
            .map_or(Multipliers::ONE, |payments| payments.multipliers());
        Router {
            state: Mutex::new(State::default()),
            multipliers,
            ledger,
            payments,
            counters: Counters::default(),
            max_request_timeout_secs,
            known_models,
            rules_seen: AtomicU64::new(0),
            danger_tamper: None,
            charge_signer: std::sync::RwLock::new(None),
        }
    }

    /// Signs charges with `identity`'s key from now on (at start and after each renewal).
    pub fn use_identity(&self, identity: &cocoon_net::TlsIdentity) {
        match cocoon_attest::receipt::ReceiptSigner::new(identity) {
            Ok(signer) => {
                *self
                    .charge_signer
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(signer))
            }
            Err(error) => tracing::error!(%error, "charges cannot be signed with this certificate"),
        }
    }

    /// This proxy's signed charge of `told` tokens for a sealed request whose worker's receipt
    /// is `receipt`.
    fn signed_charge(
        &self,
        client_request_id: [u8; 32],
        receipt: &[u8],
        told: &TokensUsed,
    ) -> Option<Vec<u8>> {
        use cocoon_attest::receipt::{ChargeBody, ReceiptTokens};
        let signer = self
            .charge_signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let charge = signer.sign(ChargeBody {
            proxy_key: [0; 32],
            client_request_id,
            receipt_hash: <sha2::Sha256 as sha2::Digest>::digest(receipt).into(),
            tokens: ReceiptTokens::from_categories(
                told.categories(),
                u64::try_from(told.total_tokens_used).unwrap_or(0),
            ),
            charged_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        Some(charge.to_bytes())
    }

    /// Installs a test's tampering with sealed requests ([`crate::danger`]).
    pub fn with_danger_tamper(mut self, tamper: Option<crate::danger::Tamper>) -> Router {
        self.danger_tamper = tamper;
        self
    }

    /// Sends what a critical section produced (after the lock is released), and ends alone
    /// each request whose client refused a part for backpressure: a client that does not read
    /// (or one part larger than its connection may queue) fails that request, never the link.
    fn deliver(&self, mut outgoing: Vec<Outgoing>) {
        if let Some(tamper) = &self.danger_tamper {
            outgoing = crate::danger::tamper_outgoing(tamper.as_ref(), outgoing);
        }
        let refused = send_all(self.payments.as_ref(), outgoing);
        if refused.is_empty() {
            return;
        }
        let mut outgoing = Vec::new();
        {
            let mut state = self.lock();
            for (client, client_request_id, error) in refused {
                let found = state
                    .requests
                    .iter()
                    .find(|(_, r)| {
                        r.client.id() == client.id()
                            && r.client_request_id == client_request_id
                            && !r.ended
                    })
                    .map(|(k, _)| *k);
                let Some(worker_request_id) = found else {
                    continue;
                };
                let (code, message) = match &error {
                    cocoon_net::NetError::Backpressure { size, limit, .. } if size > limit => (
                        codes::TOO_LARGE,
                        format!("an answer part of {size} bytes exceeds what the connection may queue ({limit})"),
                    ),
                    _ => (
                        codes::NO_WORKER_AVAILABLE,
                        format!("the answer could not be queued for the client: {error}"),
                    ),
                };
                tracing::info!(request = %short_id(&client_request_id), code, "request ended: its client does not take its answer");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Some((pending, billed)) = self.cut(
                    &mut state,
                    worker_request_id,
                    Some(CANCEL_GRACE),
                    &mut outgoing,
                ) {
                    outgoing.push(Self::final_message(
                        client,
                        error_answer(client_request_id, code, message, billed),
                        pending,
                    ));
                }
            }
        }
        // Whatever this round refuses is dropped: the requests are over.
        let _ = send_all(self.payments.as_ref(), outgoing);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- workers ----

    pub fn add_worker(&self, id: u64, entry: WorkerEntry) {
        self.lock().insert_worker(id, entry);
    }

    pub fn update_worker(&self, id: u64, update: impl FnOnce(&mut WorkerEntry)) {
        self.lock().with_worker(id, update);
    }

    /// On a paid proxy, after the root's allowed models or worker images changed: closes the
    /// links of workers whose model or attested image the root no longer allows (what they
    /// run is retried or failed as for any lost worker).
    pub fn enforce_root_rules(&self) {
        let Some(payments) = &self.payments else {
            return;
        };
        let version = payments.rules.version();
        if self.rules_seen.swap(version, Ordering::Relaxed) == version {
            return;
        }
        let images = &payments.rules.worker_images;
        let workers: Vec<(ConnectionHandle, String)> = self
            .lock()
            .workers
            .values()
            .map(|w| (w.handle.clone(), w.model.clone()))
            .collect();
        for (handle, model) in workers {
            let why = if !payments.rules.allows_model(&model) {
                "the root no longer allows its model"
            } else if payments.rules.follows_images()
                && handle
                    .peer()
                    .image_hash
                    .is_some_and(|image| !images.contains(&image))
            {
                "the root no longer allows its image"
            } else {
                continue;
            };
            tracing::warn!(connection = handle.id(), model = %model, "{why}; closing the worker's link");
            handle.close(why);
        }
    }

    /// Forgets a worker and fails or retries what it was running.
    pub fn remove_worker(&self, id: u64, reason: &str) {
        let mut outgoing = Vec::new();
        {
            let mut state = self.lock();
            state.remove_worker(id);
            let orphaned: Vec<[u8; 32]> = state
                .requests
                .iter()
                .filter(|(_, r)| r.worker == id)
                .map(|(k, _)| *k)
                .collect();
            for request_id in orphaned {
                self.attempt_failed(
                    &mut state,
                    request_id,
                    codes::UPSTREAM_FAILED,
                    format!("worker disconnected: {reason}"),
                    TokensUsed::default(),
                    &mut outgoing,
                );
            }
        }
        self.deliver(outgoing);
    }

    /// Models with at least one ready, enabled worker, for `client.getWorkerTypesV2`.
    pub fn worker_types(&self) -> ClientWorkerTypesV2 {
        let state = self.lock();
        let mut by_model: HashMap<&str, Vec<ClientWorkerInstanceV2>> = HashMap::new();
        for worker in state.workers.values().filter(|w| w.ready && w.enabled) {
            by_model
                .entry(worker.model.as_str())
                .or_default()
                .push(ClientWorkerInstanceV2 {
                    coefficient: worker.coefficient,
                    active_requests: worker.running as i32,
                    max_active_requests: worker.max_active as i32,
                });
        }
        let mut types: Vec<ClientWorkerTypeV2> = by_model
            .into_iter()
            .map(|(name, workers)| ClientWorkerTypeV2 {
                name: name.to_string(),
                workers,
            })
            .collect();
        types.sort_by(|a, b| a.name.cmp(&b.name));
        ClientWorkerTypesV2 { types }
    }

    /// The workers of `model` that take sealed requests, for a client to verify and seal to:
    /// those that can take a request now first (best first), then the other live ones; at
    /// most [`MAX_SEALING_WORKERS`].
    pub fn sealing_workers(&self, model: &str) -> ClientSealingWorkers {
        let state = self.lock();
        let listed = |worker: &WorkerEntry| ClientSealingWorker {
            certificate: worker.certificate.der().to_vec(),
            coefficient: worker.coefficient,
        };
        let seals = |worker: &&WorkerEntry| {
            worker.sealing_key.is_some() && !worker.certificate.der().is_empty()
        };
        let mut ids: Vec<u64> = state
            .available
            .get(model)
            .map(|ranks| ranks.iter().map(|rank| rank.id).collect())
            .unwrap_or_default();
        let mut rest: Vec<u64> = state
            .workers
            .iter()
            .filter(|(id, w)| w.ready && w.enabled && w.model == model && !ids.contains(id))
            .map(|(id, _)| *id)
            .collect();
        rest.sort_unstable();
        ids.extend(rest);
        let workers = ids
            .iter()
            .filter_map(|id| state.workers.get(id))
            .filter(seals)
            .take(MAX_SEALING_WORKERS)
            .map(listed)
            .collect();
        drop(state);
        let mut listed = ClientSealingWorkers { workers };
        if let Some(tamper) = &self.danger_tamper {
            tamper.sealing_workers(model, &mut listed);
        }
        listed
    }

    /// A JSON view of the workers for `/stats`.
    pub fn workers_json(&self) -> Vec<serde_json::Value> {
        let fee = self.payments.as_ref().map(|p| p.worker_fee_per_token());
        let state = self.lock();
        let mut workers: Vec<_> = state
            .workers
            .iter()
            .map(|(id, w)| {
                serde_json::json!({
                    "connection": id,
                    "remote": w.handle.remote_addr().to_string(),
                    "image_hash": w.handle.peer().image_hash.map(|h| cocoon_attest::hex(&h)),
                    "attestation_policy": w.handle.peer().policy,
                    "tee": cocoon_attest::TeeKind::proven_by_policy(w.handle.peer().policy),
                    "owner": w.owner.as_ref(),
                    "model": w.model,
                    "coefficient": w.coefficient,
                    "ready": w.ready,
                    "enabled": w.enabled,
                    "running": w.running,
                    "max_active": w.max_active,
                    "avg_latency_ms": w.avg_latency_secs * 1000.0,
                    "served": w.served,
                    "failed": w.failed,
                    "tokens": w.tokens,
                    "earned_tokens": w.earned_tokens,
                    "earned_nano": fee.map(|fee| u128::from(w.earned_tokens).saturating_mul(fee)),
                    "overreported": w.overreported,
                    "supports_cancel": w.supports_cancel,
                })
            })
            .collect();
        workers.sort_by_key(|w| w["connection"].as_u64());
        workers
    }

    pub fn in_flight(&self) -> usize {
        self.lock().requests.len()
    }

    pub fn worker_count(&self) -> usize {
        self.lock().workers.len()
    }

    /// Least expected wait among eligible workers: running × decaying mean latency; ties go to
    /// the faster, then the less used worker. Walks the model's order from the best and takes
    /// the first worker the client accepts (coefficient) and that was not tried yet.
    fn pick_worker(
        &self,
        state: &State,
        model: &str,
        max_coefficient: i32,
        exclude: &[u64],
    ) -> Result<u64, (i32, String)> {
        let suitable = state.available.get(model).and_then(|ranks| {
            ranks.iter().map(|rank| rank.id).find(|id| {
                !exclude.contains(id)
                    && state
                        .workers
                        .get(id)
                        .is_some_and(|worker| worker.coefficient <= max_coefficient)
            })
        });
        if let Some(id) = suitable {
            return Ok(id);
        }
        // The refusal's reason: only here is it worth looking at every worker.
        let any_for_model = state
            .workers
            .values()
            .any(|worker| worker.ready && worker.model == model);
        if any_for_model || self.known_models.iter().any(|m| m == model) {
            Err((
                codes::NO_WORKER_AVAILABLE,
                format!("no worker for model '{model}' can take a request now (all busy, disabled or above max_coefficient {max_coefficient})"),
            ))
        } else {
            Err((
                codes::MODEL_NOT_FOUND,
                format!("model '{model}' is not served by any worker"),
            ))
        }
    }

    // ---- requests ----

    /// A client asked to run a query: bound it, pick a worker, reserve what it may cost there.
    pub fn start_request(
        &self,
        client: &ConnectionHandle,
        client_key: &Arc<str>,
        query: ClientRunQueryEx,
    ) {
        let bound = billing::bound(&query.query, query.max_tokens);
        self.start(
            client,
            client_key,
            Start {
                model: query.model_name,
                max_coefficient: query.max_coefficient,
                timeout: query.timeout,
                request_id: query.request_id,
                enable_debug: query.enable_debug.unwrap_or(false),
                query: query.query,
                sealed: None,
            },
            bound,
        );
    }

    /// A client sent a request sealed to one worker: bound it by its clear fields and send it
    /// to that worker, if it can take it.
    pub fn start_sealed_request(
        &self,
        client: &ConnectionHandle,
        client_key: &Arc<str>,
        mut query: ClientRunSealedQuery,
    ) {
        if let Some(tamper) = &self.danger_tamper {
            tamper.client_sealed_query(&mut query);
        }
        let bound = billing::sealed_bound(&query.endpoint, query.sealed.len(), query.max_tokens);
        let max_tokens = i32::try_from(bound.max_tokens).unwrap_or(i32::MAX);
        let prompt_estimate = u64::try_from(query.prompt_estimate)
            .unwrap_or(0)
            .min(billing::sealed_prompt_ceiling(query.sealed.len()));
        self.start(
            client,
            client_key,
            Start {
                model: query.model_name,
                max_coefficient: query.max_coefficient,
                timeout: query.timeout,
                request_id: query.request_id,
                enable_debug: query.enable_debug.unwrap_or(false),
                query: query.sealed,
                sealed: Some((
                    SealedJob {
                        prompt_estimate,
                        endpoint: query.endpoint,
                        max_tokens,
                    },
                    query.worker_key,
                )),
            },
            Ok(bound),
        );
    }

    /// The worker a sealed request names, if it can take it now: serving `model`, available,
    /// asking no more than `max_coefficient`, and taking sealed requests with the key the
    /// client sealed for (its certificate key identifies it).
    fn pick_sealed_worker(
        &self,
        state: &State,
        model: &str,
        max_coefficient: i32,
        worker_key: &[u8; 32],
    ) -> Result<u64, (i32, String)> {
        let found = state.available.get(model).and_then(|ranks| {
            ranks.iter().map(|rank| rank.id).find(|id| {
                state.workers.get(id).is_some_and(|worker| {
                    worker.sealing_key.is_some() && worker.handle.peer().public_key == *worker_key
                })
            })
        });
        match found {
            Some(id) if state.workers.get(&id).is_some_and(|w| w.coefficient <= max_coefficient) => Ok(id),
            Some(_) => Err((
                codes::NO_WORKER_AVAILABLE,
                format!("the worker this request is sealed to asks more than max_coefficient {max_coefficient}"),
            )),
            None => Err((
                codes::NO_WORKER_AVAILABLE,
                format!("the worker this request is sealed to is not available for model '{model}' now (busy, disabled or gone): seal it to another"),
            )),
        }
    }

    fn start(
        &self,
        client: &ConnectionHandle,
        client_key: &Arc<str>,
        start: Start,
        bound: Result<billing::Bound, billing::Refused>,
    ) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let request_id = start.request_id;
        let refuse = |code: i32, message: String| {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(request = %short_id(&request_id), code, "request refused");
            let _ = send(
                client,
                &error_answer(request_id, code, message, TokensUsed::default()).to_bytes(),
            );
        };
        let timeout_secs = if start.timeout.is_finite() && start.timeout > 0.0 {
            start.timeout.min(self.max_request_timeout_secs)
        } else {
            self.max_request_timeout_secs
        };
        if self
            .payments
            .as_ref()
            .is_some_and(|payments| payments.is_closing(client_key))
        {
            return refuse(
                codes::PAYMENT_REQUIRED,
                "the client contract is closing: no new requests".into(),
            );
        }
        let bound = match bound {
            Ok(bound) => bound,
            Err(billing::Refused(message)) => return refuse(codes::BAD_REQUEST, message),
        };
        let mut outgoing = Vec::new();
        {
            let mut state = self.lock();
            let picked = match &start.sealed {
                None => self.pick_worker(&state, &start.model, start.max_coefficient, &[]),
                Some((_, worker_key)) => {
                    self.pick_sealed_worker(&state, &start.model, start.max_coefficient, worker_key)
                }
            };
            let (worker_id, coefficient) = match picked {
                Ok(id) => (id, state.workers.get(&id).map_or(0, |w| w.coefficient)),
                Err((code, message)) => {
                    drop(state);
                    return refuse(code, message);
                }
            };
            let reserved =
                bound.reserve(u32::try_from(coefficient).unwrap_or(0), &self.multipliers);
            let reservation = match self.ledger.reserve(client_key, reserved) {
                Ok(reservation) => reservation,
                Err(error) => {
                    drop(state);
                    return refuse(codes::PAYMENT_REQUIRED, error.to_string());
                }
            };
            let entry = RequestEntry {
                client: client.clone(),
                client_request_id: request_id,
                model: start.model,
                query: Arc::new(bound.rewritten.unwrap_or(start.query)),
                max_coefficient: start.max_coefficient,
                timeout_secs,
                deadline: Instant::now() + Duration::from_secs_f64(timeout_secs),
                worker: worker_id,
                worker_owner: Arc::from(""),
                tried: vec![worker_id],
                relayed_any: false,
                reservation: Some(reservation),
                reserved,
                reserved_coefficient: coefficient,
                progress: Progress::default(),
                checkpointed: (Instant::now(), 0),
                ended: false,
                started: Instant::now(),
                start_time: unix_time_f64(),
                enable_debug: start.enable_debug,
                sealed: start.sealed.map(|(job, _)| job),
            };
            tracing::debug!(request = %short_id(&entry.client_request_id), model = %entry.model, bytes = entry.query.len(), sealed = entry.sealed.is_some(), reserved, worker = worker_id, "request assigned");
            Self::assign(&mut state, entry, worker_id, &mut outgoing);
        }
        self.deliver(outgoing);
    }

    /// Sends a request to `worker_id` under a fresh worker-side request id.
    fn assign(
        state: &mut State,
        mut entry: RequestEntry,
        worker_id: u64,
        outgoing: &mut Vec<Outgoing>,
    ) {
        let worker_request_id: [u8; 32] = rand::random();
        let Some((handle, coefficient, owner)) = state.with_worker(worker_id, |worker| {
            worker.running += 1;
            (
                worker.handle.clone(),
                worker.coefficient,
                worker.owner.clone(),
            )
        }) else {
            return;
        };
        entry.worker_owner = owner;
        let remaining = entry
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        // The worker gets slightly less time so its own timeout fires first and we relay a
        // precise error instead of a generic one.
        let timeout = remaining * 0.95;
        let message = match &entry.sealed {
            None => ProxyToWorkerMessage::RunQuery(ProxyRunQueryEx {
                query: entry.query.as_ref().clone(),
                signed_payment: SignedPayment::Empty,
                coefficient: coefficient as i64,
                timeout,
                request_id: worker_request_id,
                enable_debug: entry.enable_debug.then_some(true),
            }),
            Some(job) => ProxyToWorkerMessage::RunSealed(ProxyRunSealedQuery {
                endpoint: job.endpoint.clone(),
                sealed: entry.query.as_ref().clone(),
                // The client's id: the sealing binds it, so the worker opens with it.
                client_request_id: entry.client_request_id,
                prompt_estimate: i64::try_from(job.prompt_estimate).unwrap_or(i64::MAX),
                max_tokens: job.max_tokens,
                signed_payment: SignedPayment::Empty,
                coefficient: coefficient as i64,
                timeout,
                request_id: worker_request_id,
                enable_debug: entry.enable_debug.then_some(true),
            }),
        };
        outgoing.push(Outgoing::ToWorker(handle, message));
        state.requests.insert(worker_request_id, entry);
    }

    /// The worker's attempt failed: retry elsewhere if nothing was relayed yet, else end the
    /// request with an error.
    fn attempt_failed(
        &self,
        state: &mut State,
        worker_request_id: [u8; 32],
        code: i32,
        message: String,
        tokens: TokensUsed,
        outgoing: &mut Vec<Outgoing>,
    ) {
        let Some(mut entry) = state.requests.remove(&worker_request_id) else {
            return;
        };
        state.with_worker(entry.worker, |worker| {
            worker.running = worker.running.saturating_sub(1);
            worker.failed += 1;
        });
        if entry.ended {
            return;
        }
        // A timed-out attempt used up the request's time; another worker could not do better.
        let retryable = !entry.relayed_any
            && entry.sealed.is_none()
            && code != codes::TIMEOUT
            && (entry.tried.len() as u32) < MAX_ATTEMPTS
            && Instant::now() < entry.deadline;
        if retryable {
            // Only a worker asking no more than what was reserved for.
            let max_coefficient = entry.max_coefficient.min(entry.reserved_coefficient);
            if let Ok(next) = self.pick_worker(state, &entry.model, max_coefficient, &entry.tried) {
                tracing::info!(request = %short_id(&entry.client_request_id), from = entry.worker, to = next, code, "retrying on another worker");
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                entry.worker = next;
                entry.tried.push(next);
                Self::assign(state, entry, next, outgoing);
                return;
            }
        }
        tracing::info!(request = %short_id(&entry.client_request_id), code, "request failed");
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        // A request that failed before any answer byte reached the client costs it nothing;
        // one that broke off mid-answer pays for what it delivered.
        let bill = if entry.relayed_any {
            Bill::Cut(&tokens)
        } else {
            Bill::Nothing
        };
        let (pending, billed) = self.settle(state, &mut entry, worker_request_id, bill);
        outgoing.push(Self::final_message(
            entry.client.clone(),
            error_answer(entry.client_request_id, code, message, billed),
            pending,
        ));
    }

    /// Ends a request for its client without its worker's last word (a timeout, a client that
    /// went away): bills what was relayed, tells the worker to stop when it can be told, and
    /// keeps the entry only to hold the worker's slot until the worker ends the request or
    /// `grace` passes.
    fn cut(
        &self,
        state: &mut State,
        worker_request_id: [u8; 32],
        grace: Option<Duration>,
        outgoing: &mut Vec<Outgoing>,
    ) -> Option<(Option<ChargeWait>, TokensUsed)> {
        let mut entry = state.requests.remove(&worker_request_id)?;
        if entry.ended {
            state.requests.insert(worker_request_id, entry);
            return None;
        }
        let no_report = TokensUsed::default();
        let bill = if entry.relayed_any {
            Bill::Cut(&no_report)
        } else {
            Bill::Nothing
        };
        let settled = self.settle(state, &mut entry, worker_request_id, bill);
        entry.ended = true;
        let cancellable = state
            .workers
            .get(&entry.worker)
            .filter(|worker| worker.supports_cancel)
            .map(|worker| worker.handle.clone());
        if let Some(handle) = cancellable {
            outgoing.push(Outgoing::Cancel(
                handle,
                ProxyCancelQuery {
                    request_id: worker_request_id,
                },
            ));
            if let Some(grace) = grace {
                entry.deadline = Instant::now() + grace;
            }
        } else if grace.is_some() {
            // Told nothing, the worker runs to its own timeout (95 % of the request's).
            entry.deadline = entry.deadline.max(Instant::now() + CANCEL_GRACE);
        }
        state.requests.insert(worker_request_id, entry);
        Some(settled)
    }

    /// Charges or releases the reservation as `bill` says and counts the billed tokens. Returns
    /// what the charge must wait for (see [`Outgoing::AfterCharge`]) and the usage to tell the
    /// client. No charge exceeds the reservation: a larger report is capped and counted against
    /// the worker.
    fn settle(
        &self,
        state: &mut State,
        entry: &mut RequestEntry,
        worker_request_id: [u8; 32],
        bill: Bill<'_>,
    ) -> (Option<ChargeWait>, TokensUsed) {
        let (billed, told) = match bill {
            Bill::Nothing => (None, TokensUsed::default()),
            Bill::Report(report) => {
                let billed = billing::bill_report(report, entry.reserved);
                if billed.capped {
                    tracing::warn!(
                        request = %short_id(&entry.client_request_id),
                        worker = entry.worker,
                        reported = report.billable(),
                        reserved = entry.reserved,
                        "the worker reported more tokens than the request could use; billed the reservation"
                    );
                    state.with_worker(entry.worker, |worker| worker.overreported += 1);
                }
                (Some(billed), billing::told(report, billed))
            }
            Bill::Cut(report) if report.billable() > 0 => {
                let billed = billing::bill_report(report, entry.reserved);
                (Some(billed), billing::told(report, billed))
            }
            Bill::Cut(_) => {
                let estimate = self.estimate(entry);
                let billed = Billed {
                    tokens: estimate.billable().min(entry.reserved),
                    capped: false,
                };
                tracing::info!(request = %short_id(&entry.client_request_id), tokens = billed.tokens, events = entry.progress.events, bytes = entry.progress.bytes, "answer cut short; billing the estimate of what was relayed");
                (Some(billed), billing::told(&estimate, billed))
            }
        };
        self.counters.tokens.add(&told);
        let Some(reservation) = entry.reservation.take() else {
            return (None, told);
        };
        let tokens = billed.map_or(0, |b| b.tokens);
        // A request with a progress checkpoint is always charged (if only 0 tokens), so the
        // ledger does not take it for one a crash cut short.
        if tokens == 0 && entry.checkpointed.1 == 0 {
            self.ledger.release(reservation);
            return (None, told);
        }
        // Only a paid charge waits, and only then is the key needed (see `tell_payment`).
        let client_key = if self.ledger.is_paid() {
            reservation.client_key().to_owned()
        } else {
            String::new()
        };
        if let Some(worker) = state.workers.get_mut(&entry.worker) {
            worker.earned_tokens = worker.earned_tokens.saturating_add(tokens);
        }
        let worker = state.workers.get(&entry.worker);
        let worker_key: &str = &entry.worker_owner;
        let pending = match self
            .ledger
            .charge(reservation, worker_key, tokens, worker_request_id)
        {
            Charged::Done => None,
            Charged::Pending(pending) => Some(ChargeWait {
                pending,
                client_key,
                worker: worker.map(|w| (w.handle.clone(), w.owner.to_string())),
                worker_request_id,
                tokens,
            }),
        };
        (pending, told)
    }

    /// The documented estimate of what a request delivered so far, adjusted (see [`billing`]).
    fn estimate(&self, entry: &RequestEntry) -> TokensUsed {
        let coefficient = u32::try_from(entry.reserved_coefficient).unwrap_or(0);
        entry
            .progress
            .estimate(match &entry.sealed {
                None => billing::prompt_estimate(&entry.query),
                Some(job) => job.prompt_estimate,
            })
            .adjusted(coefficient, &self.multipliers)
    }

    /// The client's last message for a request, held back until its charge is durable.
    fn final_message(
        client: ConnectionHandle,
        answer: ClientQueryAnswer,
        pending: Option<ChargeWait>,
    ) -> Outgoing {
        match pending {
            Some(wait) => Outgoing::AfterCharge(client, answer, wait),
            None => Outgoing::ToClient(client, answer),
        }
    }

    /// A worker sent an answer, a part or an error for one of its requests.
    pub fn on_worker_answer(&self, worker_id: u64, answer: ProxyQueryAnswer) {
        let mut outgoing = Vec::with_capacity(1);
        {
            let mut state = self.lock();
            let request_id = match &answer {
                ProxyQueryAnswer::Answer(a) => a.request_id,
                ProxyQueryAnswer::Part(p) => p.request_id,
                ProxyQueryAnswer::Error(e) => e.request_id,
            };
            match state.requests.get(&request_id) {
                Some(entry) if entry.worker == worker_id && entry.ended => {
                    // The request is over for its client; the worker's last message frees
                    // its slot, and nothing more is relayed or billed.
                    let last = match &answer {
                        ProxyQueryAnswer::Error(_) => true,
                        ProxyQueryAnswer::Answer(a) => a.final_info.is_some(),
                        ProxyQueryAnswer::Part(p) => p.final_info.is_some(),
                    };
                    if last {
                        state.requests.remove(&request_id);
                        state.with_worker(worker_id, |worker| {
                            worker.running = worker.running.saturating_sub(1);
                        });
                    }
                    return;
                }
                Some(entry) if entry.worker == worker_id => {}
                // Late answers for re-assigned requests, or another worker's ids.
                _ => return,
            }
            match answer {
                ProxyQueryAnswer::Error(error) => {
                    let tokens = error
                        .final_info
                        .as_ref()
                        .map(|f| f.tokens_used)
                        .unwrap_or_default();
                    self.attempt_failed(
                        &mut state,
                        request_id,
                        error.error_code,
                        error.error,
                        tokens,
                        &mut outgoing,
                    );
                }
                ProxyQueryAnswer::Answer(ProxyQueryAnswerEx {
                    answer, final_info, ..
                }) => {
                    self.relay(
                        &mut state,
                        request_id,
                        worker_id,
                        answer,
                        final_info,
                        true,
                        &mut outgoing,
                    );
                }
                ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
                    answer, final_info, ..
                }) => {
                    self.relay(
                        &mut state,
                        request_id,
                        worker_id,
                        answer,
                        final_info,
                        false,
                        &mut outgoing,
                    );
                }
            }
        }
        self.deliver(outgoing);
    }

    #[allow(clippy::too_many_arguments)]
    fn relay(
        &self,
        state: &mut State,
        request_id: [u8; 32],
        worker_id: u64,
        answer: Vec<u8>,
        final_info: Option<ProxyQueryFinalInfo>,
        is_head: bool,
        outgoing: &mut Vec<Outgoing>,
    ) {
        let is_final = final_info.is_some();
        let client_final = if let Some(info) = final_info {
            let Some(mut entry) = state.requests.remove(&request_id) else {
                return;
            };
            let elapsed = entry.started.elapsed().as_secs_f64();
            let tokens = info.tokens_used;
            let mut client_info = ClientQueryFinalInfo {
                tokens_used: tokens,
                debug: entry.enable_debug.then(|| FinalInfoDebug {
                    worker_debug: info.worker_debug.clone().unwrap_or_default(),
                    proxy_debug: format!(
                        "{{\"worker_connection\":{worker_id},\"attempts\":{}}}",
                        entry.tried.len()
                    ),
                }),
                timings: Some(ClientTimings {
                    proxy_start_time: entry.start_time,
                    proxy_end_time: unix_time_f64(),
                    worker_start_time: info
                        .timings
                        .as_ref()
                        .map(|t| t.worker_start_time)
                        .unwrap_or(0.0),
                    worker_end_time: info
                        .timings
                        .as_ref()
                        .map(|t| t.worker_end_time)
                        .unwrap_or(0.0),
                }),
                receipt: None,
                charge: None,
            };
            if entry.sealed.is_some() {
                client_info.receipt = self.relayed_receipt(state, &entry, worker_id, &info);
            }
            let (pending, told) = self.settle(state, &mut entry, request_id, Bill::Report(&tokens));
            client_info.tokens_used = told;
            if let Some(receipt) = &client_info.receipt {
                client_info.charge = self.signed_charge(entry.client_request_id, receipt, &told);
            }
            state.with_worker(worker_id, |worker| {
                worker.running = worker.running.saturating_sub(1);
                worker.served += 1;
                worker.tokens = worker.tokens.saturating_add(told.billable());
                worker.avg_latency_secs =
                    worker.avg_latency_secs * (1.0 - LATENCY_DECAY) + elapsed * LATENCY_DECAY;
            });
            self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(request = %short_id(&entry.client_request_id), tokens = told.billable(), elapsed_ms = elapsed * 1000.0, "request finished");
            Some((entry.client, entry.client_request_id, client_info, pending))
        } else {
            None
        };
        let (client, client_request_id, final_info, pending) = match client_final {
            Some((client, id, info, pending)) => (client, id, Some(info), pending),
            None => {
                let Some(entry) = state.requests.get_mut(&request_id) else {
                    return;
                };
                entry.relayed_any = true;
                if entry.sealed.is_some() {
                    entry.progress.relayed_sealed(&answer);
                } else {
                    entry.progress.relayed(&answer);
                }
                (entry.client.clone(), entry.client_request_id, None, None)
            }
        };
        debug_assert!(is_final == final_info.is_some());
        let message = if is_head {
            ClientQueryAnswer::Answer(ClientQueryAnswerEx {
                request_id: client_request_id,
                answer,
                final_info,
            })
        } else {
            ClientQueryAnswer::Part(ClientQueryAnswerPartEx {
                request_id: client_request_id,
                answer,
                final_info,
            })
        };
        outgoing.push(Self::final_message(client, message, pending));
    }

    /// The receipt of a sealed answer, relayed when it names this worker and the tokens it
    /// reported (the proxy bills the report, the client holds the charge to the receipt). A
    /// worker renews its certificate hourly: a receipt with another certificate must carry the
    /// same sealing key.
    fn relayed_receipt(
        &self,
        state: &State,
        entry: &RequestEntry,
        worker_id: u64,
        info: &ProxyQueryFinalInfo,
    ) -> Option<Vec<u8>> {
        let bytes = info.receipt.as_ref()?;
        let worker = state.workers.get(&worker_id)?;
        let problem = match cocoon_attest::receipt::Receipt::from_bytes(bytes) {
            Err(error) => Some(error.to_string()),
            Ok(receipt) => {
                let t = &info.tokens_used;
                let signed = &receipt.body.tokens;
                let same_worker = receipt.certificate == worker.certificate.der()
                    || cocoon_attest::sealing_key_of(&receipt.certificate, receipt.signed_at())
                        .is_some_and(|key| Some(key) == worker.sealing_key);
                if !same_worker {
                    Some("its certificate is not this worker's".into())
                } else if receipt.body.client_request_id != entry.client_request_id {
                    Some("it is for another request".into())
                } else if *signed
                    != cocoon_attest::receipt::ReceiptTokens::from_categories(
                        t.categories(),
                        u64::try_from(t.total_tokens_used).unwrap_or(u64::MAX),
                    )
                {
                    Some(format!(
                        "it signs {} tokens where the worker reported {}",
                        signed.total, t.total_tokens_used
                    ))
                } else {
                    None
                }
            }
        };
        match problem {
            None => {
                self.counters.receipts.fetch_add(1, Ordering::Relaxed);
                Some(bytes.clone())
            }
            Some(problem) => {
                self.counters
                    .receipts_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(request = %short_id(&entry.client_request_id), worker = worker_id, %problem, "dropped a worker's receipt");
                None
            }
        }
    }

    /// Ends requests whose deadline passed (billing what they relayed and telling their
    /// workers to stop), and frees the slots of ended requests whose workers never finished.
    /// Called periodically.
    pub fn expire(&self, now: Instant) {
        let mut outgoing = Vec::new();
        let mut checkpoints = Vec::new();
        {
            let mut state = self.lock();
            if self.ledger.is_paid() {
                for (request_id, entry) in state.requests.iter_mut() {
                    if entry.ended
                        || !entry.relayed_any
                        || now.saturating_duration_since(entry.checkpointed.0) < CHECKPOINT_EVERY
                    {
                        continue;
                    }
                    let tokens = self.estimate(entry).billable().min(entry.reserved);
                    entry.checkpointed.0 = now;
                    if tokens <= entry.checkpointed.1 {
                        continue;
                    }
                    entry.checkpointed.1 = tokens;
                    let Some(reservation) = entry.reservation.as_ref() else {
                        continue;
                    };
                    checkpoints.push((
                        *request_id,
                        reservation.client_key().to_owned(),
                        entry.worker_owner.to_string(),
                        tokens,
                    ));
                }
            }
            let expired: Vec<[u8; 32]> = state
                .requests
                .iter()
                .filter(|(_, r)| r.deadline <= now)
                .map(|(k, _)| *k)
                .collect();
            for request_id in expired {
                let Some(entry) = state.requests.get(&request_id) else {
                    continue;
                };
                let worker = entry.worker;
                if entry.ended {
                    state.requests.remove(&request_id);
                    state.with_worker(worker, |worker| {
                        worker.running = worker.running.saturating_sub(1);
                    });
                    continue;
                }
                let (client, client_request_id, timeout_secs) = (
                    entry.client.clone(),
                    entry.client_request_id,
                    entry.timeout_secs,
                );
                state.with_worker(worker, |worker| worker.failed += 1);
                self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(request = %short_id(&client_request_id), timeout_secs, "request timed out");
                let Some((pending, billed)) =
                    self.cut(&mut state, request_id, Some(CANCEL_GRACE), &mut outgoing)
                else {
                    continue;
                };
                outgoing.push(Self::final_message(
                    client,
                    error_answer(
                        client_request_id,
                        codes::TIMEOUT,
                        format!("request timed out after {timeout_secs:.1} s"),
                        billed,
                    ),
                    pending,
                ));
            }
        }
        for (request_id, client, worker, tokens) in checkpoints {
            self.ledger.progress(request_id, &client, &worker, tokens);
        }
        self.deliver(outgoing);
    }

    /// Ends the requests of a client that went away: what they relayed is billed, their
    /// workers are told to stop, and each worker's slot stays taken until it has (a worker's
    /// late answers are not relayed).
    pub fn client_gone(&self, client_connection: u64) {
        let mut outgoing = Vec::new();
        {
            let mut state = self.lock();
            let gone: Vec<[u8; 32]> = state
                .requests
                .iter()
                .filter(|(_, r)| r.client.id() == client_connection && !r.ended)
                .map(|(k, _)| *k)
                .collect();
            for request_id in gone {
                // Nobody is left to tell, but the charge is recorded all the same.
                if let Some((Some(wait), _)) =
                    self.cut(&mut state, request_id, Some(CANCEL_GRACE), &mut outgoing)
                {
                    tokio::spawn(async move {
                        if let Err(error) = wait.pending.await {
                            tracing::error!(%error, "a charge could not be recorded");
                        }
                    });
                }
            }
        }
        self.deliver(outgoing);
    }
}
