//! The COCOON proxy as a library: accepts workers and clients, picks a worker per request,
//! relays the answer stream, and keeps the books (through the [`ledger::Ledger`] seam).
//!
//! Entry point: [`start`] binds every port (so callers learn the real addresses, which tests
//! need for ephemeral ports) and returns a [`RunningProxy`]; [`RunningProxy::wait`] resolves
//! when the proxy has stopped after a drain or kill on its [`Shutdown`].

pub mod billing;
mod config;
mod core;
pub mod danger;
pub mod ledger;
pub mod payments;
mod peers;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use cocoon_net::metrics::PrometheusText;
use cocoon_net::shutdown::wait_for_drain;
use cocoon_net::{Acceptor, ConnectionCaps, LimitCounters, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub use crate::config::*;
use crate::core::Router;
use crate::ledger::{Books, MemoryLedger};
use crate::payments::Payments;
use crate::peers::{hex, ProxyIdentity};

/// How often deadlines are checked. Timeouts are seconds long, so 100 ms is precise enough
/// and costs nothing.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How long a stopping proxy waits for its HTTP connections (`/stats`, `/metrics`) to finish
/// the request they are on; a reader slower than this does not hold the proxy up.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Failures that stop a proxy from starting.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The config has problems (one per line).
    #[error("invalid proxy config:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// A port could not be bound.
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS identity or configuration failure.
    #[error(transparent)]
    Net(#[from] cocoon_net::NetError),
    /// This proxy's attestation could not be produced, or a policy could not be built.
    #[error(transparent)]
    Attest(#[from] cocoon_attest::AttestError),
    /// The chain, the ledger or the keys of `[payments]`.
    #[error("payments: {0}")]
    Payments(#[from] payments::PaymentsError),
}

/// A started proxy.
pub struct RunningProxy {
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where workers connect.
    pub worker_addr: SocketAddr,
    /// Where `/metrics` and `/stats` are served.
    pub http_addr: SocketAddr,
    /// The proxy's TLS public key.
    pub public_key: [u8; 32],
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    /// Resolves when the proxy stopped.
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

struct Shared {
    router: Arc<Router>,
    started: Instant,
    public_key: [u8; 32],
    policy: &'static str,
    /// This proxy's own evidence (`[tee]`).
    tee: cocoon_attest::TeeKind,
    clients: PortLimits,
    workers: PortLimits,
}

/// One port's connection caps and what its connections' limits refused or cut, for `/stats`.
#[derive(Clone)]
struct PortLimits {
    caps: Arc<ConnectionCaps>,
    counters: Arc<LimitCounters>,
}

impl PortLimits {
    fn json(&self) -> serde_json::Value {
        let caps = self.caps.snapshot();
        let counters = self.counters.snapshot();
        serde_json::json!({
            "open": caps.open,
            "refused_connections": caps.refused_total_cap + caps.refused_per_source_cap,
            "refused_total_cap": caps.refused_total_cap,
            "refused_per_ip_cap": caps.refused_per_source_cap,
            "auth_timeouts": counters.auth_timeouts,
            "refused_by_policy": counters.refused_by_policy,
            "stalled_peers_cut": counters.stalled_peers_cut,
            "refused_sends": counters.refused_sends,
            "max_queued_output_bytes": counters.max_queued_output_bytes,
        })
    }
}

async fn bind(what: &'static str, address: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ProxyError::Bind {
            what,
            address,
            source,
        })
}

/// Checks the config, opens the ledger and the chain (with `[payments]`), binds every port and
/// starts serving.
pub async fn start(config: ProxyConfig, shutdown: Shutdown) -> Result<RunningProxy, ProxyError> {
    start_with(config, shutdown, None).await
}

/// [`start`], with a test's tampering ([`danger::start_tampering`]) or none.
async fn start_with(
    config: ProxyConfig,
    shutdown: Shutdown,
    danger_tamper: Option<danger::Tamper>,
) -> Result<RunningProxy, ProxyError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ProxyError::Config(problems));
    }
    // The chain and the ledger first: a paid proxy that cannot be paid says so before anything
    // else.
    let payments = match &config.payments {
        Some(payments) => Some(Arc::new(Payments::open(payments).await?)),
        None => None,
    };
    let identity = config.tee.identity("cocoon-proxy")?;
    // A paid proxy trusts the worker images the root lists, unless its config says so itself
    // (as clients and workers do for proxy images); followed at every re-read of the root.
    let mut worker_policy = config.worker_policy.clone();
    let live_images = match &payments {
        Some(payments) => {
            let live = worker_policy
                .follow_root_images(
                    payments.rules.worker_images.clone(),
                    "the root allows no worker image (its worker_hashes is empty): the root owner adds one with `cocoon root add-worker-hash`, or set worker_policy.image_hashes to trust images yourself",
                )
                .map_err(|why| ProxyError::Config(vec![why]))?;
            if live.is_some() {
                payments.rules.follow_images();
            }
            live
        }
        None => None,
    };
    let built = worker_policy.build_following(live_images)?;
    let policy_name = built.policy.name();
    let collateral_fetcher = built.fetcher;
    let limits = config.connection_limits();
    let worker_acceptor =
        Acceptor::new(&identity.tls, built.policy, config.pow_difficulty)?.with_limits(limits);
    let client_acceptor = Acceptor::new(
        &identity.tls,
        Arc::new(cocoon_net::policy::UnattestedClients),
        config.pow_difficulty,
    )?
    .with_limits(limits);
    // Each port its own caps, so a flood on the client port cannot lock workers out.
    let client_limits = PortLimits {
        caps: ConnectionCaps::new(config.max_connections, config.max_connections_per_ip),
        counters: client_acceptor.counters().clone(),
    };
    let worker_limits = PortLimits {
        caps: ConnectionCaps::new(config.max_connections, config.max_connections_per_ip),
        counters: worker_acceptor.counters().clone(),
    };
    let max_free_identities = config.max_free_identities_per_connection;
    if payments.is_none() {
        warn!("no [payments] in the config: every client is served for FREE and no worker is paid");
    }
    let ledger = Arc::new(match &payments {
        Some(payments) => Books::Paid(payments.ledger.clone()),
        None => Books::Free(MemoryLedger::new()),
    });
    let identity = identity.tls;
    let client_listener = bind("clients", config.client_listen).await?;
    let worker_listener = bind("workers", config.worker_listen).await?;
    let http_listener = bind("http", config.http_listen).await?;
    let client_addr = client_listener
        .local_addr()
        .map_err(cocoon_net::NetError::Io)?;
    let worker_addr = worker_listener
        .local_addr()
        .map_err(cocoon_net::NetError::Io)?;
    let http_addr = http_listener
        .local_addr()
        .map_err(cocoon_net::NetError::Io)?;
    let router = Arc::new(
        Router::new(
            ledger,
            payments.clone(),
            config.max_request_timeout_secs,
            config.models.clone(),
        )
        .with_danger_tamper(danger_tamper),
    );
    router.use_identity(&identity);
    let shared = Arc::new(Shared {
        router: router.clone(),
        started: Instant::now(),
        public_key: identity.public_key,
        policy: policy_name,
        tee: config.tee.kind,
        clients: client_limits.clone(),
        workers: worker_limits.clone(),
    });
    let proxy_identity = Arc::new(ProxyIdentity {
        // A paid proxy names the key its contracts hold (peers derive its contract from it and
        // check signed payments with it); a free one its TLS key.
        public_key: payments
            .as_ref()
            .map_or(identity.public_key, |p| p.signer_public_key()),
        owner_address: payments
            .as_ref()
            .map(|p| p.owner_address().to_hex())
            .unwrap_or_default(),
        sc_address: payments
            .as_ref()
            .map(|p| p.proxy_contract.to_hex())
            .unwrap_or_default(),
    });
    info!(%client_addr, %worker_addr, %http_addr, policy = policy_name, pow_bits = config.pow_difficulty, key = %hex(&identity.public_key[..8]), "proxy listening");
    let grace = config.grace_period();
    let tee = config.tee.clone();
    let task = tokio::spawn(async move {
        // Follows `shutdown`, and is killed by this task once the drain is over, so that every
        // peer (each holds the books) has ended before this task does: the ledger is then
        // closed and its file free for a restart.
        let (end_peers, peer_shutdown) = shutdown.child();
        // The HTTP server ends last, and gracefully: each of its connections holds the books
        // (through `shared`) in a task of its own, which aborting the server would leave behind.
        let (end_http, http_shutdown) = shutdown.child();
        let mut http = JoinSet::new();
        http.spawn(serve_http(http_listener, shared.clone(), http_shutdown));
        let mut tasks = JoinSet::new();
        tasks.spawn(expire_loop(router.clone(), shutdown.clone()));
        if let Some(payments) = payments.clone() {
            tasks.spawn(payments.run(shutdown.clone()));
        }
        if let Some(fetcher) = collateral_fetcher {
            tasks.spawn(fetcher.run(shutdown.clone()));
        }
        let renewal_acceptors = (
            worker_acceptor.clone(),
            client_acceptor.clone(),
            router.clone(),
        );
        tasks.spawn(cocoon_attest::renewal::keep_renewed(
            tee,
            "cocoon-proxy",
            cocoon_attest::ClaimsExtras::default(),
            cocoon_attest::renewal::RENEW_EVERY,
            shutdown.clone(),
            move |identity| {
                renewal_acceptors.0.renew_identity(identity)?;
                renewal_acceptors.1.renew_identity(identity)?;
                renewal_acceptors.2.use_identity(identity);
                Ok(())
            },
        ));
        let mut peer_loops = JoinSet::new();
        peer_loops.spawn(accept_loop(
            (client_listener, client_limits.caps),
            client_acceptor,
            router.clone(),
            proxy_identity.clone(),
            peer_shutdown.clone(),
            PeerKind::Client {
                max_free_identities,
            },
        ));
        peer_loops.spawn(accept_loop(
            (worker_listener, worker_limits.caps),
            worker_acceptor,
            router.clone(),
            proxy_identity,
            peer_shutdown,
            PeerKind::Worker,
        ));
        shutdown.draining().await;
        wait_for_drain(&shutdown, grace, || router.in_flight()).await;
        if let Some(payments) = &payments {
            // What is owed above the thresholds is settled and the head left on chain.
            tokio::select! {
                _ = payments.round() => {}
                _ = shutdown.killed() => {}
            }
        }
        tasks.shutdown().await;
        end_peers.kill();
        while peer_loops.join_next().await.is_some() {}
        end_http.kill();
        if tokio::time::timeout(HTTP_CLOSE_GRACE, http.join_next())
            .await
            .is_err()
        {
            warn!("an HTTP connection outlived the proxy's grace; closing the server anyway");
            http.shutdown().await;
        }
        drop(router);
        drop(payments);
        info!("proxy stopped");
    });
    Ok(RunningProxy {
        client_addr,
        worker_addr,
        http_addr,
        public_key: identity.public_key,
        task: Some(task),
    })
}

#[derive(Clone, Copy, Debug)]
enum PeerKind {
    Client {
        /// Identities one connection may present to a free proxy.
        max_free_identities: usize,
    },
    Worker,
}

/// Accepts one port's peers: each socket takes a place under the port's caps first (a refused
/// one is closed at once, before any PoW or TLS work) and keeps it until its connection ends.
async fn accept_loop(
    (listener, caps): (TcpListener, Arc<ConnectionCaps>),
    acceptor: Acceptor,
    router: Arc<Router>,
    identity: Arc<ProxyIdentity>,
    shutdown: Shutdown,
    kind: PeerKind,
) {
    // Peers live in this set, so stopping the loop (proxy stopped) ends them too.
    let mut peers = JoinSet::new();
    loop {
        let accepted: std::io::Result<(TcpStream, SocketAddr)> = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.draining() => break,
            Some(_) = peers.join_next(), if !peers.is_empty() => continue,
        };
        let (socket, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match caps.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                drop(socket);
                // A flood must not flood the log too: the first refusal, then every power of
                // two.
                let refused = caps.refused();
                if refused.is_power_of_two() {
                    warn!(%remote, ?kind, %refusal, refused, "connection refused: over the cap");
                } else {
                    debug!(%remote, ?kind, %refusal, refused, "connection refused: over the cap");
                }
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let identity = identity.clone();
        let shutdown = shutdown.clone();
        peers.spawn(async move {
            let _permit = permit;
            let connection = match acceptor.accept(socket).await {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%remote, ?kind, %error, "handshake failed");
                    return;
                }
            };
            match kind {
                PeerKind::Client {
                    max_free_identities,
                } => {
                    router
                        .counters
                        .client_connections
                        .fetch_add(1, Ordering::Relaxed);
                    peers::serve_client(router, identity, connection, shutdown, max_free_identities)
                        .await
                }
                PeerKind::Worker => {
                    peers::serve_worker(router, identity, connection, shutdown).await
                }
            }
        });
    }
    drop(listener);
    // Established peers keep serving in-flight requests until the proxy task ends.
    while peers.join_next().await.is_some() {}
}

async fn expire_loop(router: Arc<Router>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                router.expire(Instant::now());
                router.enforce_root_rules();
            }
            _ = shutdown.killed() => return,
        }
    }
}

async fn serve_http(listener: TcpListener, shared: Arc<Shared>, shutdown: Shutdown) {
    let app = axum::Router::new()
        .route("/", get(dashboard))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let result = axum::serve(listener.tap_io(|tcp| cocoon_net::tcp::tune(tcp)), app)
        .with_graceful_shutdown(async move { shutdown.killed().await })
        .await;
    if let Err(error) = result {
        warn!(%error, "http server failed");
    }
}

/// The operator dashboard: a static page (`dashboard.html`) that draws `/stats`.
static DASHBOARD: std::sync::LazyLock<cocoon_net::dashboard::Dashboard> =
    std::sync::LazyLock::new(|| {
        cocoon_net::dashboard::Dashboard::new(include_str!("dashboard.html"))
    });

async fn dashboard() -> impl IntoResponse {
    DASHBOARD.response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let router = &shared.router;
    let c = &router.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    axum::Json(serde_json::json!({
        "role": "proxy",
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "public_key": hex(&shared.public_key),
        "worker_policy": shared.policy,
        "tee": shared.tee,
        "client_policy": "unattested_clients",
        "connections": { "clients": load(&c.client_connections), "workers": router.worker_count() },
        "limits": { "clients": shared.clients.json(), "workers": shared.workers.json() },
        "requests": {
            "total": load(&c.requests),
            "in_flight": router.in_flight(),
            "succeeded": load(&c.succeeded),
            "failed": load(&c.failed),
            "retried": load(&c.retried),
            "timed_out": load(&c.timed_out),
            "receipts_relayed": load(&c.receipts),
            "receipts_refused": load(&c.receipts_refused),
        },
        "tokens": c.tokens.totals(),
        "workers": router.workers_json(),
        "ledger": router.ledger.snapshot(),
        "ledger_writer": router.ledger.writer_stats().map(|w| serde_json::json!({
            "commits": w.batches,
            "records": w.records,
            "records_per_commit": if w.batches == 0 { 0.0 } else { w.records as f64 / w.batches as f64 },
            "delayed_commits": w.delayed,
            "caller_commits": w.by_caller,
            "caller_commit_pauses": w.caller_pauses,
            "flush_ms_mean": if w.batches == 0 { 0.0 } else { w.flush_micros as f64 / w.batches as f64 / 1000.0 },
            "flush_ms_max": w.flush_max_micros as f64 / 1000.0,
            "slow_flushes": w.slow_flushes,
        })),
        "chain": router.payments.as_ref().map(|p| p.chain_json()),
    }))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let router = &shared.router;
    let c = &router.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut text = PrometheusText::new();
    text.gauge(
        "cocoon_proxy_uptime_seconds",
        "Seconds since start.",
        shared.started.elapsed().as_secs_f64(),
    )
    .gauge(
        "cocoon_proxy_client_connections",
        "Connected clients.",
        load(&c.client_connections) as f64,
    )
    .gauge(
        "cocoon_proxy_worker_connections",
        "Connected workers.",
        router.worker_count() as f64,
    )
    .counter(
        "cocoon_proxy_client_connections_refused_total",
        "Client sockets refused at accept: over the connection caps.",
        shared.clients.caps.refused(),
    )
    .counter(
        "cocoon_proxy_worker_connections_refused_total",
        "Worker sockets refused at accept: over the connection caps.",
        shared.workers.caps.refused(),
    )
    .counter(
        "cocoon_proxy_requests_total",
        "Requests received from clients.",
        load(&c.requests),
    )
    .counter(
        "cocoon_proxy_requests_succeeded_total",
        "Requests answered in full.",
        load(&c.succeeded),
    )
    .counter(
        "cocoon_proxy_requests_failed_total",
        "Requests that ended with an error.",
        load(&c.failed),
    )
    .counter(
        "cocoon_proxy_requests_retried_total",
        "Requests moved to another worker.",
        load(&c.retried),
    )
    .counter(
        "cocoon_proxy_requests_timed_out_total",
        "Requests that hit their timeout.",
        load(&c.timed_out),
    )
    .counter(
        "cocoon_proxy_receipts_relayed_total",
        "Sealed answers relayed with their worker's signed receipt.",
        load(&c.receipts),
    )
    .counter(
        "cocoon_proxy_receipts_refused_total",
        "Worker receipts dropped: another worker's, another request's, or tokens unlike the report.",
        load(&c.receipts_refused),
    )
    .gauge(
        "cocoon_proxy_requests_in_flight",
        "Requests running now.",
        router.in_flight() as f64,
    );
    if let Some(writer) = router.ledger.writer_stats() {
        text.counter(
            "cocoon_proxy_ledger_commits_total",
            "Ledger commits (one write, one fdatasync and one signature each).",
            writer.batches,
        )
        .counter(
            "cocoon_proxy_ledger_records_total",
            "Ledger records committed.",
            writer.records,
        )
        .counter(
            "cocoon_proxy_ledger_delayed_commits_total",
            "Commits held open up to the commit delay for more records, many requests running.",
            writer.delayed,
        )
        .counter(
            "cocoon_proxy_ledger_caller_commits_total",
            "Commits made by the request that waited for them, no other request running.",
            writer.by_caller,
        )
        .counter(
            "cocoon_proxy_ledger_flush_microseconds_total",
            "Time spent writing and syncing ledger commits; over commits, one flush's cost.",
            writer.flush_micros,
        )
        .counter(
            "cocoon_proxy_ledger_slow_flushes_total",
            "Ledger commits whose write and sync took over 10 ms: the disk stalled, and paid answers waited.",
            writer.slow_flushes,
        );
    }
    c.tokens.write_prometheus(
        &mut text,
        "cocoon_proxy_tokens_total",
        "Tokens reported by workers, by kind.",
    );
    let workers = router.workers_json();
    let per_worker = |field: &str| -> Vec<(Vec<(&str, String)>, f64)> {
        workers
            .iter()
            .map(|w| {
                (
                    vec![
                        ("connection", w["connection"].to_string()),
                        ("model", w["model"].as_str().unwrap_or_default().to_string()),
                    ],
                    w[field].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    };
    text.labelled(
        "cocoon_proxy_worker_running",
        "gauge",
        "Requests running on each worker.",
        &per_worker("running"),
    )
    .labelled(
        "cocoon_proxy_worker_latency_seconds",
        "gauge",
        "Decaying mean request latency per worker.",
        &per_worker("avg_latency_ms")
            .into_iter()
            .map(|(l, v)| (l, v / 1000.0))
            .collect::<Vec<_>>(),
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text.finish(),
    )
}
