//! The client's proxy connections: one slot per configured proxy, each kept connected and
//! authorised with backoff; requests go to the first healthy slot in config order, so an
//! unreachable proxy is skipped and a recovered one takes over again.
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
use cocoon_net::{Connection, ConnectionHandle, Connector, Incoming, NetError, Shutdown};
use cocoon_proto::{codes, *};
use tokio::sync::mpsc;
use tracing::{debug, warn};

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

/// All proxy slots and the requests waiting on them.
pub(crate) struct ProxyPool {
    addresses: Vec<String>,
    slots: Mutex<Vec<Option<ConnectionHandle>>>,
    pending: Mutex<HashMap<[u8; 32], PendingRequest>>,
    connector: Connector,
    params: ClientParams,
    secret: String,
    max_reconnect: Duration,
    /// The chain (`[chain]`): contracts checked, deployed, registered and topped up.
    chain: Option<Arc<crate::chain::ClientChain>>,
    /// Our client contract at each slot's proxy, once a handshake found it (with `[chain]`).
    contracts: Mutex<Vec<Option<cocoon_ton::Address>>>,
    /// Why the last connection attempt failed, for the API's "no proxy" answer.
    last_error: Mutex<Option<String>>,
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
        addresses: Vec<String>,
        connector: Connector,
        owner_address: String,
        secret: String,
        max_reconnect: Duration,
        chain: Option<Arc<crate::chain::ClientChain>>,
    ) -> ProxyPool {
        let slots = Mutex::new(vec![None; addresses.len()]);
        let contracts = Mutex::new(vec![None; addresses.len()]);
        ProxyPool {
            addresses,
            slots,
            pending: Mutex::new(HashMap::new()),
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
            contracts,
            last_error: Mutex::new(None),
            streams: StreamStats::default(),
            payments: PaymentStats::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Option<ConnectionHandle>>> {
        // Slot updates are single assignments; a poisoned lock still holds valid slots.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<[u8; 32], PendingRequest>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first connected proxy in config order.
    pub fn pick(&self) -> Option<ConnectionHandle> {
        self.slots()
            .iter()
            .flatten()
            .find(|h| !h.is_closed())
            .cloned()
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
            .flatten()
            .filter(|h| !h.is_closed())
            .cloned()
            .collect()
    }

    /// (address, connected) per slot, for `/stats`.
    pub fn status(&self) -> Vec<(String, bool)> {
        let slots = self.slots();
        self.addresses
            .iter()
            .zip(slots.iter())
            .map(|(a, s)| (a.clone(), s.as_ref().is_some_and(|h| !h.is_closed())))
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.pending().len()
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
        let Some(request) = pending.get(&request_id) else {
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
        for (request_id, request) in pending.iter().filter(|(_, r)| r.connection == connection) {
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

    /// With `[chain]`: the wallet, what was deposited since start and the client contract at
    /// each proxy, for `/stats`.
    pub fn chain_status(&self) -> Option<serde_json::Value> {
        let chain = self.chain.as_ref()?;
        let contracts: Vec<Option<String>> = self
            .contracts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|c| c.as_ref().map(|a| a.to_hex()))
            .collect();
        Some(serde_json::json!({
            "wallet": chain.owner_address(),
            "deposited_nano": chain.deposited(),
            "client_contracts": contracts,
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
            let contracts: Vec<cocoon_ton::Address> = self
                .contracts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .flatten()
                .cloned()
                .collect();
            let charged = self.payments.charged_tokens.load(Ordering::Relaxed);
            for contract in contracts {
                chain.check_balance(&contract, charged).await;
            }
        }
    }

    /// Keeps slot `slot` connected until shutdown.
    pub async fn maintain(self: Arc<Self>, slot: usize, shutdown: Shutdown) {
        let pool = &*self;
        let address = self.addresses[slot].as_str();
        keep_connected(
            address,
            &shutdown,
            self.max_reconnect,
            move || async move {
                let result = async {
                    let connection = pool.connector.connect(address).await?;
                    pool.handshake(slot, &connection).await?;
                    Ok(connection)
                }
                .await;
                *pool.last_error.lock().unwrap_or_else(|p| p.into_inner()) = result
                    .as_ref()
                    .err()
                    .map(|e: &NetError| format!("{address}: {e}"));
                result
            },
            |connection| self.serve(slot, connection, &shutdown),
        )
        .await;
    }

    async fn handshake(&self, slot: usize, connection: &Connection) -> Result<(), NetError> {
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
                if let Some(known) = self
                    .contracts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(slot)
                {
                    *known = Some(prepared.contract);
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

    async fn serve(&self, slot: usize, connection: Connection, shutdown: &Shutdown) {
        let Connection {
            handle,
            mut incoming,
        } = connection;
        let _close = handle.close_on_drop();
        self.slots()[slot] = Some(handle.clone());
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
        self.slots()[slot] = None;
        self.fail_connection(handle.id(), &handle.close_reason().unwrap_or_default());
    }
}
