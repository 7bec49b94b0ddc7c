//! The COCOON worker as a library: dials its proxies, serves their requests through an
//! OpenAI-compatible backend, streams answers back part by part, and reports exact usage.
//!
//! Entry point: [`start`] returns a [`RunningWorker`]; it stops on its [`Shutdown`].

mod admin;
mod backend;
mod chain;
mod config;
mod link;
pub mod model_identity;
mod request;
mod sealing;
pub mod usage;
pub mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use cocoon_net::metrics::{PrometheusText, TokenCounters};
use cocoon_net::shutdown::wait_for_drain;
use cocoon_net::{ConnectionHandle, Connector, OwnedTasks, Shutdown, ShutdownTrigger};
use cocoon_proto::*;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use crate::backend::{Backend, BackendError};
pub use crate::config::*;

/// Failures that stop a worker from starting.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The config has problems (one per line).
    #[error("invalid worker config:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// The HTTP port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS identity or configuration failure.
    #[error(transparent)]
    Net(#[from] cocoon_net::NetError),
    /// This worker's attestation could not be produced, or its policy could not be built.
    #[error(transparent)]
    Attest(#[from] cocoon_attest::AttestError),
    /// `[chain]`: the network, the root or the node wallet's key.
    #[error("chain: {0}")]
    Chain(String),
    /// The weights file could not be hashed for the attested claims.
    #[error(transparent)]
    Weights(#[from] model_identity::WeightsError),
}

/// Counters for `/metrics` and `/stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub requests: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub rejected_busy: AtomicU64,
    pub in_flight: AtomicU64,
    pub tokens: TokenCounters,
}

/// How to stop each running request, by (link id, request id).
pub(crate) type Cancels = HashMap<(u64, [u8; 32]), tokio::sync::oneshot::Sender<()>>;

/// State shared by the worker's tasks.
pub(crate) struct WorkerShared {
    pub config: WorkerConfig,
    pub backend: Backend,
    pub connector: Connector,
    pub shutdown: Shutdown,
    pub backend_healthy: AtomicBool,
    /// Disabled by its operator (`POST /admin/disable`): proxies send it nothing new.
    pub operator_disabled: AtomicBool,
    /// The price coefficient now (1000 = 1.0×): the config's, until the operator changes it
    /// (`POST /admin/coefficient`).
    pub coefficient: std::sync::atomic::AtomicI32,
    pub links: Mutex<HashMap<usize, ConnectionHandle>>,
    /// What this worker knows of its payments, per worker contract (one per paid proxy); kept
    /// across reconnects so a proxy that forgot earnings is told at the next handshake.
    pub standings: Mutex<HashMap<String, link::Standing>>,
    pub stats: Stats,
    pub started: Instant,
    /// `[chain]`: contracts checked and deployed, payouts submitted.
    pub chain: Option<Arc<chain::WorkerChain>>,
    /// Running requests a proxy may cancel (`proxy.cancelQuery`), by (link, request id).
    pub cancels: Mutex<Cancels>,
    /// The proxies this worker dials, by slot.
    pub proxy_slots: Mutex<Vec<ProxySlot>>,
    next_slot: AtomicUsize,
    /// The links' tasks: they end with the worker's task (which holds their abort guard), even
    /// when it is aborted.
    link_tasks: Arc<OwnedTasks>,
    /// The key of sealed requests, when the worker takes them.
    pub sealing: Option<sealing::Sealing>,
    /// What the worker's attested claims carry beyond its key (sealing key, model identity).
    pub claims: cocoon_attest::ClaimsExtras,
    /// DER of the certificate presented now (replaced on renewal), for `GET /certificate`.
    pub certificate: Mutex<Vec<u8>>,
}

/// One proxy the worker dials.
pub(crate) struct ProxySlot {
    pub slot: usize,
    pub address: String,
    /// Ends this link alone: drain stops redialling, kill ends the link.
    trigger: ShutdownTrigger,
    /// Left the root's registry: closed once its requests ended.
    retiring: bool,
}

/// How long a proxy that left the registry keeps its link for the requests still running on it.
const RETIRE_GRACE: Duration = Duration::from_secs(120);

/// Decrements the in-flight count when a request task ends, however it ends.
struct InFlight(Arc<WorkerShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WorkerShared {
    /// Proxies this worker serves now (what it announces as `proxy_cnt`).
    pub fn proxy_count(&self) -> usize {
        self.proxy_slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|slot| !slot.retiring)
            .count()
            .max(1)
    }

    /// The address of link slot `slot`, for `/stats`.
    fn slot_address(&self, slot: usize) -> Option<String> {
        self.proxy_slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.slot == slot)
            .map(|s| s.address.clone())
    }

    /// Dials every proxy in `addresses` not dialled yet, and drains those no longer in it.
    fn set_proxies(self: &Arc<Self>, addresses: &[String]) {
        let mut slots = self.proxy_slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut retire = Vec::new();
        for slot in slots.iter_mut().filter(|s| !s.retiring) {
            if !addresses.contains(&slot.address) {
                info!(proxy = %slot.address, "proxy left the root's registry; draining its link");
                slot.retiring = true;
                slot.trigger.drain();
                retire.push(slot.slot);
            }
        }
        let mut added = Vec::new();
        for address in addresses {
            if slots.iter().any(|s| !s.retiring && &s.address == address) {
                continue;
            }
            let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
            let (trigger, shutdown) = self.shutdown.child();
            slots.push(ProxySlot {
                slot,
                address: address.clone(),
                trigger,
                retiring: false,
            });
            added.push((slot, address.clone(), shutdown));
        }
        drop(slots);
        for slot in retire {
            self.link_tasks.spawn(self.clone().retire(slot));
        }
        for (slot, address, shutdown) in added {
            self.link_tasks
                .spawn(link::maintain_link(self.clone(), slot, address, shutdown));
        }
    }

    /// Closes the link of a proxy that left the registry once the requests it sent ended (at
    /// most [`RETIRE_GRACE`]).
    async fn retire(self: Arc<Self>, slot: usize) {
        let until = tokio::time::Instant::now() + RETIRE_GRACE;
        loop {
            let link = self
                .links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&slot)
                .map(|h| h.id());
            let busy = link.is_some_and(|id| {
                self.cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .any(|(l, _)| *l == id)
            });
            if !busy || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut slots = self.proxy_slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = slots.iter().position(|s| s.slot == slot) {
            let removed = slots.swap_remove(index);
            removed.trigger.kill();
            info!(proxy = %removed.address, "proxy link drained and closed");
        }
    }

    /// With `[chain]`: reads the root every `every`; when its version grew, dials the newly
    /// registered proxies and drains the removed ones (`members`: the proxies came from the
    /// root), and replaces the allowed proxy images (`images`: they came from the root),
    /// closing links to proxies whose image it no longer allows.
    async fn follow_root(
        self: Arc<Self>,
        every: Duration,
        members: bool,
        images: Option<cocoon_attest::LiveImageHashes>,
    ) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let mut version = chain.registry.version;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.draining() => return,
            }
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
                        let links: Vec<ConnectionHandle> = self
                            .links
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .values()
                            .cloned()
                            .collect();
                        images.replace_and_close(registry.proxy_hashes, links, "proxy");
                    }
                    if !members {
                        continue;
                    }
                    if registry.proxies.is_empty() {
                        warn!("the root registers no proxy now; keeping the links we have");
                    } else {
                        self.set_proxies(&registry.proxies);
                    }
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "cannot read the root; keeping the links we have"),
            }
        }
    }

    /// Starts a request unless the worker is full, draining or its backend is down; refusals go
    /// back as errors so the proxy can retry elsewhere.
    pub fn admit(self: &Arc<Self>, link: &ConnectionHandle, query: request::Job) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let refusal = if self.shutdown.is_draining() {
            Some((codes::SHUTTING_DOWN, "worker is shutting down"))
        } else if self.stats.in_flight.load(Ordering::Relaxed)
            >= self.config.max_active_requests as u64
        {
            Some((
                codes::NO_WORKER_AVAILABLE,
                "worker is at max_active_requests",
            ))
        } else if !self.backend_healthy.load(Ordering::Relaxed) {
            Some((codes::NO_WORKER_AVAILABLE, "worker's backend is down"))
        } else if self.operator_disabled.load(Ordering::Relaxed) {
            Some((
                codes::NO_WORKER_AVAILABLE,
                "worker is disabled by its operator",
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
            let error = ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
                request_id: query.request_id(),
                error_code: code,
                error: message.into(),
                final_info: Some(ProxyQueryFinalInfo {
                    tokens_used: TokensUsed::default(),
                    worker_debug: None,
                    timings: None,
                    receipt: None,
                }),
            });
            let _ = link.send_packet(&error.to_bytes());
            return;
        }
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(self.clone());
        let shared = self.clone();
        let link = link.clone();
        let key = (link.id(), query.request_id());
        let (cancel, cancelled) = tokio::sync::oneshot::channel();
        self.lock_cancels().insert(key, cancel);
        // Request tasks end with their request (bounded by its timeout), and a killed link
        // makes their next send fail, so none outlives the worker for long. A cancel drops the
        // request's future, which closes the backend stream, so the backend stops generating.
        tokio::spawn(async move {
            let _guard = guard;
            tokio::select! {
                _ = request::run_request(shared.clone(), link.clone(), query) => {}
                Ok(()) = cancelled => {
                    tracing::debug!(request = %request::short_id(&key.1), "request cancelled by the proxy");
                    shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let end = ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
                        request_id: key.1,
                        error_code: codes::CANCELLED,
                        error: "cancelled by the proxy".into(),
                        final_info: Some(ProxyQueryFinalInfo {
                            tokens_used: TokensUsed::default(),
                            worker_debug: None,
                            timings: None,
                            receipt: None,
                        }),
                    });
                    let _ = link.send_packet(&end.to_bytes());
                }
                _ = shared.shutdown.killed() => {}
            }
            shared.lock_cancels().remove(&key);
        });
    }

    fn lock_cancels(&self) -> std::sync::MutexGuard<'_, Cancels> {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A proxy cancelled one of its requests: stop it (nothing happens if it already ended).
    pub fn cancel(&self, link: &ConnectionHandle, request_id: [u8; 32]) {
        if let Some(cancel) = self.lock_cancels().remove(&(link.id(), request_id)) {
            let _ = cancel.send(());
        }
    }
}

impl WorkerShared {
    /// Whether the worker takes requests: its backend is up and its operator has not disabled
    /// it.
    pub(crate) fn serving(&self) -> bool {
        self.backend_healthy.load(Ordering::Relaxed)
            && !self.operator_disabled.load(Ordering::Relaxed)
    }

    /// Tells every connected proxy whether the worker takes requests.
    pub(crate) fn announce_serving(&self) {
        let serving = self.serving();
        for link in self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            announce_health(link, serving);
        }
    }
}

/// Tells one proxy whether we can serve.
pub(crate) fn announce_health(link: &ConnectionHandle, healthy: bool) {
    let message = WorkerEnabledDisabled {
        disabled: i32::from(!healthy),
    };
    let _ = link.send_packet(&message.to_bytes());
}

/// A started worker.
pub struct RunningWorker {
    /// Where `/metrics` and `/stats` are served.
    pub http_addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningWorker {
    /// Resolves when the worker stopped.
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Checks the config, binds the HTTP port, and starts dialing proxies.
pub async fn start(config: WorkerConfig, shutdown: Shutdown) -> Result<RunningWorker, WorkerError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(WorkerError::Config(problems));
    }
    let sealing = config.sealed_requests.then(sealing::Sealing::generate);
    let sealing_key = sealing.as_ref().map(sealing::Sealing::public_key);
    let weights = model_identity::weights_digest(&config).await?;
    let extras = model_identity::claims_extras(&config, sealing_key, weights);
    info!(
        model = %config.model,
        model_hash = %cocoon_attest::hex(&cocoon_attest::model_hash(&config.model)),
        weights_digest = %weights.map(|d| cocoon_attest::hex(&d)).unwrap_or_else(|| "none".into()),
        "model identity in the attested claims"
    );
    let identity = config.tee.identity_with_extras("cocoon-worker", &extras)?;
    if let Some(sealing) = &sealing {
        sealing.use_identity(&identity.tls);
    }
    let chain = match &config.chain {
        Some(chain_config) => Some(Arc::new(
            chain::WorkerChain::open(chain_config)
                .await
                .map_err(WorkerError::Chain)?,
        )),
        None => None,
    };
    let mut config = config;
    // The root says which proxy images may be trusted, unless the config says so itself (as
    // the client does); followed while the worker runs.
    let live_hashes = match &chain {
        Some(chain) => config
            .proxy_policy
            .follow_root_images(
                cocoon_attest::LiveImageHashes::new(chain.registry.proxy_hashes.clone()),
                "the root allows no proxy image (its proxy_hashes is empty): set proxy_policy.image_hashes to trust images yourself",
            )
            .map_err(WorkerError::Chain)?,
        None => None,
    };
    let built = config.proxy_policy.build_following(live_hashes.clone())?;
    let collateral_fetcher = built.fetcher;
    let connector = Connector::new(&identity.tls, built.policy, config.max_pow_difficulty)?;
    let listener = TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| WorkerError::Bind {
            address: config.http_listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(cocoon_net::NetError::Io)?;
    let backend = Backend::new(&config.backend_url, config.backend_api_key.clone());
    let shared = Arc::new(WorkerShared {
        chain,
        backend,
        connector,
        shutdown: shutdown.clone(),
        backend_healthy: AtomicBool::new(false),
        operator_disabled: AtomicBool::new(false),
        coefficient: std::sync::atomic::AtomicI32::new(config.coefficient),
        links: Mutex::new(HashMap::new()),
        standings: Mutex::new(HashMap::new()),
        cancels: Mutex::new(HashMap::new()),
        proxy_slots: Mutex::new(Vec::new()),
        next_slot: AtomicUsize::new(0),
        link_tasks: Arc::default(),
        sealing,
        claims: extras,
        certificate: Mutex::new(identity.tls.cert_der.clone()),
        stats: Stats::default(),
        started: Instant::now(),
        config,
    });
    // With `[chain]` and no `proxies`: the root's registered proxies, followed while it runs.
    let from_root = shared.config.proxies.is_empty();
    let proxies = match (&shared.chain, from_root) {
        (Some(chain), true) if chain.registry.proxies.is_empty() => {
            return Err(WorkerError::Chain(
                "no proxies configured and the root registers none: set proxies".into(),
            ))
        }
        (Some(chain), true) => chain.registry.proxies.clone(),
        _ => shared.config.proxies.clone(),
    };
    info!(model = %shared.config.model, backend = %shared.backend.url(), ?proxies, from_root, %http_addr, "worker starting");
    // Know the backend's state before registering, so proxies never route to a dead one.
    check_backend(&shared).await;
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(serve_http(listener, shared.clone()));
        tasks.spawn(health_loop(shared.clone()));
        if let Some(fetcher) = collateral_fetcher {
            tasks.spawn(fetcher.run(shutdown.clone()));
        }
        let renewed = shared.clone();
        tasks.spawn(cocoon_attest::renewal::keep_renewed(
            shared.config.tee.clone(),
            "cocoon-worker",
            extras,
            cocoon_attest::renewal::RENEW_EVERY,
            shutdown.clone(),
            move |identity| {
                renewed.connector.renew_identity(identity)?;
                if let Some(sealing) = &renewed.sealing {
                    sealing.use_identity(identity);
                }
                *renewed
                    .certificate
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = identity.cert_der.clone();
                Ok(())
            },
        ));
        let _link_tasks = shared.link_tasks.abort_on_drop();
        shared.set_proxies(&proxies);
        if let Some(chain) = &shared.config.chain {
            if from_root || live_hashes.is_some() {
                tasks.spawn(shared.clone().follow_root(
                    Duration::from_secs_f64(chain.root_refresh_secs),
                    from_root,
                    live_hashes,
                ));
            }
        }
        shutdown.draining().await;
        let grace = Duration::from_secs_f64(shared.config.grace_period_secs);
        wait_for_drain(&shutdown, grace, || {
            shared.stats.in_flight.load(Ordering::Relaxed) as usize
        })
        .await;
        for link in shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            link.close("worker stopped");
        }
        tasks.shutdown().await;
        info!("worker stopped");
    });
    Ok(RunningWorker {
        http_addr,
        task: Some(task),
    })
}

async fn check_backend(shared: &WorkerShared) {
    let healthy = match shared.backend.models().await {
        Ok(models) if models.iter().any(|m| m == &shared.config.model) => true,
        Ok(models) => {
            warn!(model = %shared.config.model, ?models, "backend does not list our model");
            false
        }
        Err(error) => {
            warn!(%error, "backend health check failed");
            false
        }
    };
    let was_serving = shared.serving();
    let was = shared.backend_healthy.swap(healthy, Ordering::Relaxed);
    if was != healthy {
        info!(healthy, "backend health changed");
        if shared.serving() != was_serving {
            shared.announce_serving();
        }
    }
}

async fn health_loop(shared: Arc<WorkerShared>) {
    let mut tick = tokio::time::interval(shared.config.backend_check());
    loop {
        tokio::select! {
            _ = tick.tick() => check_backend(&shared).await,
            _ = shared.shutdown.draining() => return,
        }
    }
}

async fn serve_http(listener: TcpListener, shared: Arc<WorkerShared>) {
    let shutdown = shared.shutdown.clone();
    let app = axum::Router::new()
        .route("/", get(dashboard))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/certificate", get(certificate))
        .merge(admin::routes())
        .with_state(shared);
    let result = axum::serve(listener.tap_io(|tcp| cocoon_net::tcp::tune(tcp)), app)
        .with_graceful_shutdown(async move { shutdown.killed().await })
        .await;
    if let Err(error) = result {
        warn!(%error, "http server failed");
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The operator dashboard: a static page (`dashboard.html`) that draws `/stats`.
static DASHBOARD: std::sync::LazyLock<cocoon_net::dashboard::Dashboard> =
    std::sync::LazyLock::new(|| {
        cocoon_net::dashboard::Dashboard::new(include_str!("dashboard.html"))
    });

async fn dashboard() -> impl IntoResponse {
    DASHBOARD.response()
}

/// The RA-TLS certificate the worker presents now (DER; `cocoon attest inspect` reads it). It
/// is public: every proxy sees it, and clients are sent it to verify sealing workers.
async fn certificate(State(shared): State<Arc<WorkerShared>>) -> impl IntoResponse {
    let der = shared
        .certificate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ([(http::header::CONTENT_TYPE, "application/pkix-cert")], der)
}

async fn stats(State(shared): State<Arc<WorkerShared>>) -> impl IntoResponse {
    let s = &shared.stats;
    let proxies: Vec<serde_json::Value> = shared
        .links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(slot, link)| {
            serde_json::json!({
                "address": shared.slot_address(*slot),
                "remote": link.remote_addr().to_string(),
                "bytes_sent": load(&link.stats().bytes_sent),
                "bytes_received": load(&link.stats().bytes_received),
            })
        })
        .collect();
    let chain = shared.chain.as_deref();
    // Totals over the worker contracts (one per paid proxy), for the dashboard.
    let (mut earned, mut durable, mut signed, mut paid) = (0u64, 0u64, 0u64, None::<u64>);
    let payments: serde_json::Map<String, serde_json::Value> = shared
        .standings
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(contract, standing)| {
            let mut entry = standing.to_json();
            let tokens = |count: i64| u64::try_from(count).unwrap_or(0);
            earned = earned.saturating_add(tokens(standing.max_tokens));
            durable = durable.saturating_add(tokens(standing.db_tokens));
            signed = signed.saturating_add(tokens(standing.signed_tokens));
            if let Some((tokens, checked)) = chain.and_then(|chain| chain.paid(contract)) {
                paid = Some(paid.unwrap_or(0).saturating_add(tokens));
                entry["paid_tokens"] = tokens.into();
                entry["paid_checked_secs_ago"] = checked.into();
            }
            (contract.clone(), entry)
        })
        .collect();
    let fee = chain.map(|chain| chain.worker_fee_per_token());
    let nano = |tokens: u64| fee.map(|fee| u128::from(tokens).saturating_mul(fee));
    axum::Json(serde_json::json!({
        "role": "worker",
        "payments": payments,
        "earnings": {
            "worker_fee_per_token_nano": fee,
            "earned_tokens": earned,
            "durable_tokens": durable,
            "signed_payout_tokens": signed,
            "paid_tokens": paid,
            "earned_nano": nano(earned),
            "paid_nano": paid.and_then(nano),
        },
        "tee": shared.config.tee.kind,
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "model": shared.config.model,
        "attested_claims": {
            "model_hash": shared.claims.model_hash.map(|h| cocoon_attest::hex(&h)),
            "weights_digest": shared.claims.weights_digest.map(|d| cocoon_attest::hex(&d)),
            "sealing_key": shared.claims.sealing_key.map(|k| cocoon_attest::hex(&k)),
        },
        "coefficient": shared.coefficient.load(Ordering::Relaxed),
        "enabled": shared.serving(),
        "operator_disabled": shared.operator_disabled.load(Ordering::Relaxed),
        "backend": { "url": shared.backend.url(), "healthy": shared.backend_healthy.load(Ordering::Relaxed) },
        "connections": { "proxies": proxies.len(), "configured": shared.proxy_count(), "links": proxies },
        "requests": {
            "total": load(&s.requests),
            "in_flight": load(&s.in_flight),
            "max_active": shared.config.max_active_requests,
            "succeeded": load(&s.succeeded),
            "failed": load(&s.failed),
            "refused": load(&s.rejected_busy),
        },
        "tokens": s.tokens.totals(),
    }))
}

async fn metrics(State(shared): State<Arc<WorkerShared>>) -> impl IntoResponse {
    let s = &shared.stats;
    let mut text = PrometheusText::new();
    text.gauge(
        "cocoon_worker_uptime_seconds",
        "Seconds since start.",
        shared.started.elapsed().as_secs_f64(),
    )
    .gauge(
        "cocoon_worker_backend_healthy",
        "1 when the backend answers /v1/models with our model.",
        f64::from(u8::from(shared.backend_healthy.load(Ordering::Relaxed))),
    )
    .gauge(
        "cocoon_worker_proxy_connections",
        "Registered proxy links.",
        shared.links.lock().unwrap_or_else(|p| p.into_inner()).len() as f64,
    )
    .counter(
        "cocoon_worker_requests_total",
        "Requests received from proxies.",
        load(&s.requests),
    )
    .counter(
        "cocoon_worker_requests_succeeded_total",
        "Requests answered in full.",
        load(&s.succeeded),
    )
    .counter(
        "cocoon_worker_requests_failed_total",
        "Requests that ended with an error.",
        load(&s.failed),
    )
    .counter(
        "cocoon_worker_requests_refused_total",
        "Requests refused (busy, draining, backend down).",
        load(&s.rejected_busy),
    )
    .gauge(
        "cocoon_worker_requests_in_flight",
        "Requests running now.",
        load(&s.in_flight) as f64,
    );
    s.tokens.write_prometheus(
        &mut text,
        "cocoon_worker_tokens_total",
        "Tokens counted from backend usage, by kind.",
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text.finish(),
    )
}
