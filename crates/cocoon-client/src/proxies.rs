//! The client's proxy connections: one slot per proxy it keeps, each kept connected and
//! authorised with backoff. A `proxies` list is kept whole; proxies taken from the root's
//! registry are a random `proxy_connections` of them, followed live (`follow_root`): new ones
//! connected, removed ones drained, one that cannot be reached swapped for another. Each
//! request goes where it should wait least — (requests running + 1) × the proxy's recent time
//! to first answer — so load spreads, a slow or distant proxy is avoided, and an unreachable
//! one is skipped.
//!
//! Answers are routed to waiting requests by request id. When a connection drops, every request
//! on it ends with a synthetic error so no HTTP caller hangs.
//!
//! Routing never blocks: one proxy connection carries many requests, so it must not wait for any
//! one of them. Each request's queue (answers routed but not yet taken by its HTTP body) is
//! counted in bytes; a request whose app stops reading is cut off at [`MAX_QUEUED_PER_STREAM`]
//! instead of growing without bound or slowing the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cocoon_net::reconnect::{keep_connected, next_incoming};
use cocoon_net::{
    Connection, ConnectionHandle, Connector, Incoming, NetError, OwnedTasks, Shutdown,
    ShutdownTrigger,
};
use cocoon_proto::{codes, *};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a long authorisation may take: the proxy waits up to 300 s for the register
/// transaction (the C++ client's timeout), plus a margin.
const LONG_AUTH_TIMEOUT: Duration = Duration::from_secs(310);

/// Bytes of answers one request may have queued in the client (routed from the proxy connection
/// but not yet taken by its HTTP body) before the stream is cut off as a slow reader. LLM answers
/// are small and arrive at tokens per second, so an app that reads at all never gets near this;
/// only one that stopped reading does (its TCP window is full and hyper stops polling the body).
/// Without a cap such a stream would buffer everything a worker streams, megabytes, forever;
/// blocking the proxy connection instead would stall every other request on it. One answer is
/// always accepted into an empty queue, whatever its size, so a large non-streamed answer (one
/// packet, at most 16 MiB) is never mistaken for a slow reader.
pub(crate) const MAX_QUEUED_PER_STREAM: usize = 4 << 20;

/// What the routing side and the HTTP body of one request share.
#[derive(Debug, Default)]
struct StreamQueue {
    /// Bytes routed to the request and not yet received by its body.
    queued: AtomicUsize,
    /// Set when the request was cut off as a slow reader.
    cut: AtomicBool,
}

struct PendingRequest {
    connection: u64,
    sender: mpsc::UnboundedSender<ClientQueryAnswer>,
    queue: Arc<StreamQueue>,
    /// For logs only: the app's `request_guid` or the request id's first bytes.
    log_id: String,
}

/// Bytes an answer holds while it waits in a request's queue (its payload; the fixed fields are
/// noise beside it).
fn queued_size(answer: &ClientQueryAnswer) -> usize {
    match answer {
        ClientQueryAnswer::Answer(a) => a.answer.len(),
        ClientQueryAnswer::Part(p) => p.answer.len(),
        ClientQueryAnswer::Error(e) => e.error.len(),
    }
}

/// The receiving end of one request's answers, as the HTTP handler and body see it.
pub(crate) struct Answers {
    receiver: mpsc::UnboundedReceiver<ClientQueryAnswer>,
    queue: Arc<StreamQueue>,
}

impl Answers {
    /// The next answer; `None` once the routing entry is gone (connection lost, or the request
    /// was cut off — see [`Answers::was_cut`]).
    pub async fn recv(&mut self) -> Option<ClientQueryAnswer> {
        if self.was_cut() {
            // Whatever is still queued is stale; dropping it frees the memory now.
            self.receiver.close();
            while self.receiver.try_recv().is_ok() {}
            return None;
        }
        let answer = self.receiver.recv().await?;
        self.queue
            .queued
            .fetch_sub(queued_size(&answer), Ordering::Relaxed);
        Some(answer)
    }

    /// Whether the request was cut off because its reader fell [`MAX_QUEUED_PER_STREAM`] behind.
    pub fn was_cut(&self) -> bool {
        self.queue.cut.load(Ordering::Relaxed)
    }
}

/// What paid proxies reported of this client's payments, for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PaymentStats {
    /// Requests a paid proxy reported the cost of (`proxy.clientRequestPayment`).
    pub billed_requests: AtomicU64,
    /// The tokens those reports charged.
    pub billed_tokens: AtomicU64,
    /// The largest count of charged tokens a proxy reported (its books, durable).
    pub charged_tokens: AtomicU64,
}

/// Slow-reader counters for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    /// Streams cut off because their queue passed [`MAX_QUEUED_PER_STREAM`].
    pub cut_slow_reader: AtomicU64,
    /// The most bytes any one request has had queued since start.
    pub queued_peak_bytes: AtomicU64,
}

/// A registered proxy that cannot be reached this many times in a row is swapped for another
/// registered one, when there is another.
const FAILURES_BEFORE_SWAP: u32 = 3;
/// How long a proxy that left the set (unregistered, or swapped out) keeps its connection for
/// the requests still running on it.
const RETIRE_GRACE: Duration = Duration::from_secs(120);

/// One proxy the client keeps connected.
struct Slot {
    id: u64,
    address: String,
    handle: Option<ConnectionHandle>,
    /// Our client contract at this proxy, once a handshake found it (with `[chain]`).
    contract: Option<cocoon_ton::Address>,
    /// Ends this slot alone: drain stops reconnecting, kill ends the connection.
    trigger: ShutdownTrigger,
    /// Left the set: takes no new requests, closes once its requests ended.
    retiring: bool,
    /// Connection attempts that failed in a row.
    failures: u32,
    /// Recent time from sending a request to its first answer through this proxy, seconds
    /// (moving average), and when it was last measured; `None` until the first answer.
    latency: Option<(f64, std::time::Instant)>,
}

/// Weight of the newest sample in a proxy's moving-average latency.
const LATENCY_WEIGHT: f64 = 0.2;
/// A latency not measured again for this long is forgotten, so a proxy once slow (one long
/// answer, a bad minute) is tried again instead of being avoided for good.
const LATENCY_TTL: Duration = Duration::from_secs(30);

/// The proxies to choose from and how many to keep connected.
#[derive(Clone, Debug, Default)]
struct Members {
    all: Vec<String>,
    target: usize,
}

/// Requests waiting for answers, and how many run on each connection.
#[derive(Default)]
struct PendingTable {
    requests: HashMap<[u8; 32], PendingRequest>,
    per_connection: HashMap<u64, usize>,
}

impl PendingTable {
    fn insert(&mut self, request_id: [u8; 32], request: PendingRequest) {
        let connection = request.connection;
        if let Some(old) = self.requests.insert(request_id, request) {
            self.release(old.connection);
        }
        *self.per_connection.entry(connection).or_default() += 1;
    }

    fn remove(&mut self, request_id: &[u8; 32]) -> Option<PendingRequest> {
        let request = self.requests.remove(request_id)?;
        self.release(request.connection);
        Some(request)
    }

    fn release(&mut self, connection: u64) {
        if let Some(count) = self.per_connection.get_mut(&connection) {
            *count -= 1;
            if *count == 0 {
                self.per_connection.remove(&connection);
            }
        }
    }

    fn load(&self, connection: u64) -> usize {
        self.per_connection.get(&connection).copied().unwrap_or(0)
    }
}

/// All proxy slots and the requests waiting on them.
pub(crate) struct ProxyPool {
    slots: Mutex<Vec<Slot>>,
    next_slot: AtomicU64,
    members: Mutex<Members>,
    pending: Mutex<PendingTable>,
    connector: Connector,
    params: ClientParams,
    secret: String,
    max_reconnect: Duration,
    /// The chain (`[chain]`): contracts checked, deployed, registered and topped up.
    chain: Option<Arc<crate::chain::ClientChain>>,
    /// Why the last connection attempt failed, for the API's "no proxy" answer.
    last_error: Mutex<Option<String>>,
    /// The slots' tasks: they end with the client's task (which holds their abort guard), even
    /// when it is aborted.
    pub tasks: Arc<OwnedTasks>,
    pub streams: StreamStats,
    pub payments: PaymentStats,
}

/// Removes a request's routing entry when its HTTP response is done or dropped.
pub(crate) struct PendingGuard {
    pool: Arc<ProxyPool>,
    request_id: [u8; 32],
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pool.pending().remove(&self.request_id);
    }
}

impl ProxyPool {
    pub fn new(
        connector: Connector,
        owner_address: String,
        secret: String,
        max_reconnect: Duration,
        chain: Option<Arc<crate::chain::ClientChain>>,
    ) -> ProxyPool {
        ProxyPool {
            slots: Mutex::new(Vec::new()),
            next_slot: AtomicU64::new(0),
            members: Mutex::new(Members::default()),
            pending: Mutex::new(PendingTable::default()),
            connector,
            params: ClientParams {
                client_owner_address: owner_address,
                is_test: Some(true),
                proto_version: Some(ProtoVersionRange {
                    min: codes::MIN_PROTO_VERSION,
                    max: codes::PROTO_VERSION,
                }),
            },
            secret,
            max_reconnect,
            chain,
            last_error: Mutex::new(None),
            tasks: Arc::default(),
            streams: StreamStats::default(),
            payments: PaymentStats::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        // Slot updates are single assignments; a poisoned lock still holds valid slots.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, PendingTable> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot_mut(slots: &mut [Slot], id: u64) -> Option<&mut Slot> {
        slots.iter_mut().find(|slot| slot.id == id)
    }

    /// The connected proxy a request waits least at, among those still in the set and not on
    /// a connection in `tried`: the lowest (requests running + 1) × its recent time to first
    /// answer, so load spreads and a slow or distant proxy is avoided. A proxy not measured yet,
    /// or not for [`LATENCY_TTL`], counts as instant (it gets tried); ties go to the least
    /// busy, then at random.
    pub fn pick(&self, tried: &[u64]) -> Option<ConnectionHandle> {
        let slots = self.slots();
        let pending = self.pending();
        let live: Vec<(&ConnectionHandle, f64, usize)> = slots
            .iter()
            .filter(|slot| !slot.retiring)
            .filter_map(|slot| slot.handle.as_ref().map(|h| (h, slot.latency)))
            .filter(|(handle, _)| !handle.is_closed() && !tried.contains(&handle.id()))
            .map(|(handle, latency)| {
                let load = pending.load(handle.id());
                let latency = latency
                    .filter(|(_, at)| at.elapsed() < LATENCY_TTL)
                    .map_or(0.0, |(seconds, _)| seconds);
                (handle, (load + 1) as f64 * latency, load)
            })
            .collect();
        if live.is_empty() {
            return None;
        }
        let start = rand::random::<usize>() % live.len();
        live.iter()
            .cycle()
            .skip(start)
            .take(live.len())
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)))
            .map(|(handle, _, _)| (*handle).clone())
    }

    /// Records how long a request took to its first answer through `connection`.
    pub fn observe_latency(&self, connection: u64, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let mut slots = self.slots();
        if let Some(slot) = slots
            .iter_mut()
            .find(|slot| slot.handle.as_ref().is_some_and(|h| h.id() == connection))
        {
            let now = std::time::Instant::now();
            slot.latency = Some(match slot.latency {
                Some((old, at)) if at.elapsed() < LATENCY_TTL => {
                    (old + LATENCY_WEIGHT * (seconds - old), now)
                }
                _ => (seconds, now),
            });
        }
    }

    /// Why the last connection attempt failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every connected proxy.
    pub fn connected(&self) -> Vec<ConnectionHandle> {
        self.slots()
            .iter()
            .filter_map(|slot| slot.handle.as_ref())
            .filter(|h| !h.is_closed())
            .cloned()
            .collect()
    }

    /// Each proxy slot for the dashboard (`/stats` `proxies`): address, whether connected or
    /// retiring, requests running on it, its recent time to first answer, our contract there.
    pub fn proxies_json(&self) -> Vec<serde_json::Value> {
        // Slots before pending, as `pick` takes them.
        let slots = self.slots();
        let pending = self.pending();
        slots
            .iter()
            .map(|slot| {
                let live = slot.handle.as_ref().filter(|h| !h.is_closed());
                serde_json::json!({
                    "address": slot.address,
                    "connected": live.is_some(),
                    "retiring": slot.retiring,
                    "running": live.map_or(0, |h| pending.load(h.id())),
                    "latency_ms": slot
                        .latency
                        .filter(|(_, at)| at.elapsed() < LATENCY_TTL)
                        .map(|(seconds, _)| seconds * 1000.0),
                    "failures": slot.failures,
                    "contract": slot.contract.as_ref().map(|a| a.to_hex()),
                })
            })
            .collect()
    }

    /// (address, connected, retiring) per slot, for `/stats`.
    pub fn status(&self) -> Vec<(String, bool, bool)> {
        self.slots()
            .iter()
            .map(|slot| {
                (
                    slot.address.clone(),
                    slot.handle.as_ref().is_some_and(|h| !h.is_closed()),
                    slot.retiring,
                )
            })
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.pending().requests.len()
    }

    /// Sets the proxies to choose from and how many of them to keep connected (`usize::MAX`:
    /// all), then connects and drains to match.
    pub fn set_members(self: &Arc<Self>, all: Vec<String>, target: usize, shutdown: &Shutdown) {
        *self.members.lock().unwrap_or_else(|p| p.into_inner()) = Members { all, target };
        self.reconcile(shutdown);
    }

    /// Brings the slots in line with the members: proxies that left are drained, one that
    /// keeps failing is swapped for a spare member, and the set is filled up to the target
    /// with members chosen at random.
    pub fn reconcile(self: &Arc<Self>, shutdown: &Shutdown) {
        let members = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut slots = self.slots();
        let mut retire = Vec::new();
        for slot in slots.iter_mut().filter(|slot| !slot.retiring) {
            if !members.all.contains(&slot.address) {
                info!(proxy = %slot.address, "proxy left the root's registry; draining it");
                retire.push(slot.id);
            }
        }
        let in_use = |slots: &[Slot], address: &str| slots.iter().any(|s| s.address == address);
        let mut spare: Vec<String> = members
            .all
            .iter()
            .filter(|address| !in_use(&slots, address))
            .cloned()
            .collect();
        for slot in slots.iter_mut().filter(|slot| !slot.retiring) {
            if spare.len() > retire.len()
                && slot.failures >= FAILURES_BEFORE_SWAP
                && slot.handle.is_none()
                && !retire.contains(&slot.id)
            {
                info!(proxy = %slot.address, failures = slot.failures, "proxy unreachable; swapping it for another registered one");
                retire.push(slot.id);
            }
        }
        for id in &retire {
            if let Some(slot) = Self::slot_mut(&mut slots, *id) {
                slot.retiring = true;
                slot.trigger.drain();
            }
        }
        let active = slots.iter().filter(|slot| !slot.retiring).count();
        let wanted = members.target.min(members.all.len());
        let mut added = Vec::new();
        for _ in active..wanted {
            if spare.is_empty() {
                break;
            }
            let address = spare.swap_remove(rand::random::<usize>() % spare.len());
            let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
            let (trigger, slot_shutdown) = shutdown.child();
            slots.push(Slot {
                id,
                address: address.clone(),
                handle: None,
                contract: None,
                trigger,
                retiring: false,
                failures: 0,
                latency: None,
            });
            added.push((id, address, slot_shutdown));
        }
        drop(slots);
        for id in retire {
            self.tasks.spawn(self.clone().retire(id));
        }
        for (id, address, slot_shutdown) in added {
            self.tasks
                .spawn(self.clone().maintain(id, address, slot_shutdown));
        }
    }

    /// Ends a slot that left the set once its requests are done (at most [`RETIRE_GRACE`]).
    async fn retire(self: Arc<Self>, id: u64) {
        let until = tokio::time::Instant::now() + RETIRE_GRACE;
        loop {
            let connection = {
                let slots = self.slots();
                let Some(slot) = slots.iter().find(|slot| slot.id == id) else {
                    return;
                };
                slot.handle.as_ref().map(|h| h.id())
            };
            let busy = connection.is_some_and(|c| self.pending().load(c) > 0);
            if !busy || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut slots = self.slots();
        if let Some(index) = slots.iter().position(|slot| slot.id == id) {
            let slot = slots.swap_remove(index);
            slot.trigger.kill();
            info!(proxy = %slot.address, "proxy drained and closed");
        }
    }

    /// Registers a request before it is sent, so no answer can arrive unrouted. `log_id` names
    /// it in logs.
    pub fn register(
        self: &Arc<Self>,
        request_id: [u8; 32],
        connection: u64,
        log_id: String,
    ) -> (Answers, PendingGuard) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = Arc::new(StreamQueue::default());
        self.pending().insert(
            request_id,
            PendingRequest {
                connection,
                sender,
                queue: queue.clone(),
                log_id,
            },
        );
        (
            Answers { receiver, queue },
            PendingGuard {
                pool: self.clone(),
                request_id,
            },
        )
    }

    fn route(&self, answer: ClientQueryAnswer) {
        let request_id = match &answer {
            ClientQueryAnswer::Answer(a) => a.request_id,
            ClientQueryAnswer::Part(p) => p.request_id,
            ClientQueryAnswer::Error(e) => e.request_id,
        };
        let mut pending = self.pending();
        let Some(request) = pending.requests.get(&request_id) else {
            debug!("answer for a request nobody waits for (client went away or was cut off)");
            return;
        };
        let size = queued_size(&answer);
        let before = request.queue.queued.fetch_add(size, Ordering::Relaxed);
        let after = before + size;
        if before > 0 && after > MAX_QUEUED_PER_STREAM {
            // The app stopped reading. Never wait for it (that would stall every request on this
            // connection) and never buffer more: end this stream alone.
            request.queue.cut.store(true, Ordering::Relaxed);
            warn!(
                request = %request.log_id,
                queued_bytes = before,
                answer_bytes = size,
                limit_bytes = MAX_QUEUED_PER_STREAM,
                "app is not reading its stream; cutting it off (later answers are dropped)"
            );
            // Dropping the entry drops the sender: the body's next poll sees the cut, and
            // answers arriving later for this id are dropped as unrouted.
            pending.remove(&request_id);
            drop(pending);
            self.streams.cut_slow_reader.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if request.sender.send(answer).is_ok()
            && after as u64 > self.streams.queued_peak_bytes.load(Ordering::Relaxed)
        {
            self.streams
                .queued_peak_bytes
                .fetch_max(after as u64, Ordering::Relaxed);
        }
    }

    fn fail_connection(&self, connection: u64, reason: &str) {
        let pending = self.pending();
        for (request_id, request) in pending
            .requests
            .iter()
            .filter(|(_, r)| r.connection == connection)
        {
            let error = ClientQueryAnswer::Error(ClientQueryAnswerErrorEx {
                request_id: *request_id,
                error_code: codes::UPSTREAM_FAILED,
                error: format!("connection to proxy lost: {reason}"),
                final_info: None,
            });
            // Counted like any answer (the body subtracts it when taken), but never refused:
            // it is small and ends the stream.
            request
                .queue
                .queued
                .fetch_add(queued_size(&error), Ordering::Relaxed);
            let _ = request.sender.send(error);
        }
    }

    /// With `[chain]`: the root's price per token (nano-TON, at coefficient 1.0×).
    pub fn price_per_token(&self) -> Option<u128> {
        self.chain.as_ref().map(|chain| chain.price_per_token())
    }

    fn contracts(&self) -> Vec<cocoon_ton::Address> {
        self.slots()
            .iter()
            .filter_map(|slot| slot.contract.clone())
            .collect()
    }

    /// With `[chain]`: the wallet, what was deposited since start and the client contract at
    /// each proxy, for `/stats`.
    pub fn chain_status(&self) -> Option<serde_json::Value> {
        let chain = self.chain.as_ref()?;
        let contracts: Vec<Option<String>> = self
            .slots()
            .iter()
            .map(|slot| slot.contract.as_ref().map(|a| a.to_hex()))
            .collect();
        let charged = self.payments.charged_tokens.load(Ordering::Relaxed);
        let seen: Vec<serde_json::Value> = self
            .contracts()
            .iter()
            .map(|contract| chain.contract_json(contract, charged))
            .collect();
        Some(serde_json::json!({
            "wallet": chain.owner_address(),
            "deposited_nano": chain.deposited(),
            "client_contracts": contracts,
            "price_per_token_nano": chain.price_per_token(),
            "contracts": seen,
        }))
    }

    /// With `[chain]`: checks every known client contract's balance every
    /// `balance_check_secs` and tops it up when low, until shutdown.
    pub async fn keep_funded(self: Arc<Self>, every: Duration, shutdown: Shutdown) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.draining() => return,
            }
            let charged = self.payments.charged_tokens.load(Ordering::Relaxed);
            for contract in self.contracts() {
                chain.check_balance(&contract, charged).await;
            }
        }
    }

    /// With `[chain]`: reads the root every `every` and, when its version grew, connects newly
    /// registered proxies and drains removed ones (`members`: the proxies came from the root)
    /// and replaces the allowed proxy images (`images`: they came from the root), closing
    /// connections to proxies whose image it no longer allows; in between, swaps out proxies
    /// that keep failing. Until shutdown.
    pub async fn follow_root(
        self: Arc<Self>,
        every: Duration,
        shutdown: Shutdown,
        members: bool,
        images: Option<cocoon_attest::LiveImageHashes>,
        worker_images: Option<cocoon_attest::LiveImageHashes>,
    ) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let mut version = chain.root_version;
        let mut next_read = tokio::time::Instant::now() + every;
        let tick = every.min(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.draining() => return,
            }
            if tokio::time::Instant::now() >= next_read {
                next_read = tokio::time::Instant::now() + every;
                match chain.registry().await {
                    Ok(registry) if registry.version != version => {
                        info!(
                            from = version,
                            to = registry.version,
                            proxies = ?registry.proxies,
                            "the root changed; following its registry"
                        );
                        version = registry.version;
                        if let Some(images) = &images {
                            images.replace_and_close(
                                registry.proxy_hashes,
                                self.connected(),
                                "proxy",
                            );
                        }
                        // Sealing lists checked against the old worker images are checked
                        // again on their next use (their generation changed).
                        if let Some(workers) = &worker_images {
                            if workers.get() != registry.worker_hashes {
                                info!(
                                    worker_images = registry.worker_hashes.len(),
                                    "the root's worker images changed; sealing follows them"
                                );
                                workers.set(registry.worker_hashes);
                            }
                        }
                        if !members {
                            continue;
                        }
                        let target = self
                            .members
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .target;
                        if registry.proxies.is_empty() {
                            warn!("the root registers no proxy now; keeping the connected ones");
                        } else {
                            self.set_members(registry.proxies, target, &shutdown);
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        warn!(%error, "cannot read the root; keeping the proxies we have")
                    }
                }
            }
            self.reconcile(&shutdown);
        }
    }

    /// Keeps slot `id` connected to `address` until its shutdown (the client's, or its own when
    /// it leaves the set).
    async fn maintain(self: Arc<Self>, id: u64, address: String, shutdown: Shutdown) {
        let pool = &*self;
        let address = address.as_str();
        keep_connected(
            address,
            &shutdown,
            self.max_reconnect,
            move || async move {
                let result = async {
                    let connection = pool.connector.connect(address).await?;
                    pool.handshake(id, &connection).await?;
                    Ok(connection)
                }
                .await;
                if let Some(slot) = Self::slot_mut(&mut pool.slots(), id) {
                    slot.failures = if result.is_ok() {
                        0
                    } else {
                        slot.failures.saturating_add(1)
                    };
                }
                *pool.last_error.lock().unwrap_or_else(|p| p.into_inner()) = result
                    .as_ref()
                    .err()
                    .map(|e: &NetError| format!("{address}: {e}"));
                result
            },
            |connection| self.serve(id, connection, &shutdown),
        )
        .await;
    }

    async fn handshake(&self, id: u64, connection: &Connection) -> Result<(), NetError> {
        let handle = &connection.handle;
        let connect = ClientConnectToProxy {
            params: self.params.clone(),
            min_config_version: 0,
        };
        let answer = handle.query(&connect.to_bytes(), QUERY_TIMEOUT).await?;
        let connected = ClientConnectedToProxy::from_bytes(&answer)
            .map_err(|e| NetError::Closed(format!("bad connectedToProxy: {e}")))?;
        if connected.params.proto_version.unwrap_or(0) < codes::MIN_PROTO_VERSION {
            return Err(NetError::Closed(
                "proxy speaks a protocol version below 1".into(),
            ));
        }
        let (offered_hash, nonce) = match connected.auth {
            ProxyConnectionAuth::Short { secret_hash, nonce } => (Some(secret_hash), nonce),
            ProxyConnectionAuth::Long { nonce } => (None, nonce),
        };
        let short = match &self.chain {
            Some(chain) => {
                let prepared = chain
                    .prepare(
                        &connected.params,
                        &connected.client_sc_address,
                        offered_hash,
                    )
                    .await
                    .map_err(NetError::Closed)?;
                if !prepared.short {
                    // The register payload carries the TL long's 64 bits as u64.
                    chain
                        .register(&prepared.contract, nonce as u64)
                        .await
                        .map_err(NetError::Closed)?;
                }
                if let Some(slot) = Self::slot_mut(&mut self.slots(), id) {
                    slot.contract = Some(prepared.contract);
                }
                prepared.short
            }
            None if offered_hash.is_some() => true,
            None => {
                return Err(NetError::Closed(format!(
                    "client contract {} holds no secret hash for this client (not deployed, or none set): the proxy asks it to register on chain (long authorisation), which needs a [chain] table in the client config",
                    connected.client_sc_address
                )))
            }
        };
        let (authorize, timeout) = if short {
            (
                ClientToProxyQuery::AuthorizeShort(ClientAuthorizeWithProxyShort {
                    data: self.secret.as_bytes().to_vec(),
                }),
                QUERY_TIMEOUT,
            )
        } else {
            (
                ClientToProxyQuery::AuthorizeLong(ClientAuthorizeWithProxyLong {}),
                LONG_AUTH_TIMEOUT,
            )
        };
        let answer = handle.query(&authorize.to_bytes(), timeout).await?;
        match AuthorizationWithProxy::from_bytes(&answer) {
            Ok(AuthorizationWithProxy::Success { .. }) => Ok(()),
            Ok(AuthorizationWithProxy::Failed { error_code, error }) => Err(NetError::Remote {
                code: error_code,
                message: error,
            }),
            Err(error) => Err(NetError::Closed(format!(
                "bad authorization answer: {error}"
            ))),
        }
    }

    async fn serve(&self, id: u64, connection: Connection, shutdown: &Shutdown) {
        let Connection {
            handle,
            mut incoming,
        } = connection;
        let _close = handle.close_on_drop();
        if let Some(slot) = Self::slot_mut(&mut self.slots(), id) {
            slot.handle = Some(handle.clone());
        }
        while let Some(message) = next_incoming(&mut incoming, shutdown).await {
            match message {
                Incoming::Packet(data) => match ProxyToClientMessage::from_bytes(&data) {
                    Ok(ProxyToClientMessage::Answer(answer)) => self.route(answer),
                    Ok(ProxyToClientMessage::RequestPayment(payment)) => {
                        let stats = &self.payments;
                        stats.billed_requests.fetch_add(1, Ordering::Relaxed);
                        let tokens = u64::try_from(payment.request_tokens).unwrap_or(0);
                        stats.billed_tokens.fetch_add(tokens, Ordering::Relaxed);
                        let charged = u64::try_from(payment.db_tokens).unwrap_or(0);
                        stats.charged_tokens.fetch_max(charged, Ordering::Relaxed);
                    }
                    // A newer signed charge alone: this client does not submit charges itself.
                    Ok(ProxyToClientMessage::SignedPayment(_)) => {}
                    Err(error) => {
                        warn!(%error, bytes = data.len(), "malformed packet from proxy; dropping connection");
                        break;
                    }
                },
                Incoming::Query(query) => {
                    let _ = query.fail(codes::BAD_REQUEST, "clients answer no queries");
                }
            }
        }
        handle.close("client stopped reading");
        if let Some(slot) = Self::slot_mut(&mut self.slots(), id) {
            slot.handle = None;
        }
        self.fail_connection(handle.id(), &handle.close_reason().unwrap_or_default());
    }
}
