//! The COCOON client as a library: an OpenAI-compatible HTTP API on localhost whose requests
//! travel to proxies over attested COCOON connections.
//!
//! Entry points: [`start`] binds the API port and returns a [`RunningClient`]; [`Client`] is the
//! same client embedded in an app's process, called directly (chat, streams, embeddings,
//! responses) with no HTTP in between. Both stop on their [`Shutdown`].

mod api;
mod chain;
mod config;
mod embedded;
mod guard;
mod proxies;
mod responses;
mod sealing;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use cocoon_attest::TeeConfig;
use cocoon_net::metrics::{PrometheusText, TokenCounters};
use cocoon_net::shutdown::wait_for_drain;
use cocoon_net::{Connector, Shutdown};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};

pub use crate::config::*;
pub use crate::embedded::{ApiError, ChatStream, Client};
use crate::proxies::ProxyPool;
pub use crate::sealing::E2e;

/// The app-facing readers, for the fuzz targets (`cocoon-fuzz`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// What the API reads from a chat or completions body before it picks a proxy: the body it
    /// would forward, or why it refuses it.
    pub fn app_body(body: &[u8]) -> Result<Vec<u8>, String> {
        crate::api::read_app_body(
            body,
            crate::config::DEFAULT_MAX_COEFFICIENT,
            crate::config::DEFAULT_TIMEOUT_SECS,
        )
        .map(|app| app.payload)
        .map_err(|refused| refused.message())
    }

    /// A Responses API body translated to the chat completion request it becomes, and whether
    /// it streams; or why it is refused.
    pub fn responses_body(body: &[u8]) -> Result<(serde_json::Value, bool), String> {
        crate::responses::translate_body(body)
    }
}

/// Request bodies above this are refused: a packet carries at most 16 MiB.
pub(crate) const MAX_BODY: usize = 15 << 20;

/// Failures that stop a client from starting.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The config has problems (one per line).
    #[error("invalid client config:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// The API port could not be bound.
    #[error("cannot listen on {address}: {source} (is another client running? use --client-port or `listen` to pick another port)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS identity or configuration failure.
    #[error(transparent)]
    Net(#[from] cocoon_net::NetError),
    /// The client's certificate could not be built, or its policy could not be built.
    #[error(transparent)]
    Attest(#[from] cocoon_attest::AttestError),
    /// `[chain]`: the network, the root or the wallet key.
    #[error("chain: {0}")]
    Chain(String),
}

/// Counters for `/metrics` and `/stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub requests: AtomicU64,
    pub failed: AtomicU64,
    pub failed_streams: AtomicU64,
    /// Requests refused before any handler ran (`guard.rs`).
    pub refused: AtomicU64,
    pub tokens: TokenCounters,
    /// Sealed answers by how their worker's receipt checked out.
    pub receipts_valid: AtomicU64,
    pub receipts_refused: AtomicU64,
    pub receipts_missing: AtomicU64,
    /// Receipts refused because the proxy charged more than they state.
    pub over_charged: AtomicU64,
}

impl Stats {
    /// Counts a sealed answer's receipt check, and logs a refused or missing one.
    pub fn count_receipt(&self, check: &sealing::ReceiptCheck, request: &str) {
        match &check.outcome {
            Ok(()) => {
                self.receipts_valid.fetch_add(1, Ordering::Relaxed);
            }
            Err(Some(error)) => {
                self.receipts_refused.fetch_add(1, Ordering::Relaxed);
                if matches!(
                    error,
                    cocoon_attest::receipt::ReceiptError::OverCharged { .. }
                ) {
                    self.over_charged.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(%request, %error, "a sealed answer's receipt was refused");
            }
            Err(None) => {
                self.receipts_missing.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%request, "a sealed answer came without its worker's receipt");
            }
        }
    }
}

/// State shared by the API handlers.
pub(crate) struct ClientShared {
    pub config: ClientConfig,
    pub guard: guard::ApiGuard,
    pub pool: Arc<ProxyPool>,
    pub stats: Stats,
    pub started: Instant,
    /// Sealing requests to workers (`e2e`).
    pub sealer: sealing::Sealer,
}

/// A started client.
pub struct RunningClient {
    /// Where the OpenAI-compatible API listens.
    pub api_addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningClient {
    /// The base URL for OpenAI SDKs.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.api_addr)
    }

    /// Resolves when the client stopped.
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the client at once, as if its process were killed: no drain, its connections to
    /// proxies close. (Tests use it to show what a proxy does when a client vanishes.)
    pub fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        warn!("cors_origins contains \"*\": any web page can use this client's API and spend its stake");
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::CONTENT_TYPE,
                axum::http::header::AUTHORIZATION,
            ]),
    )
}

/// Checks the config, binds the API port, and starts connecting to proxies.
pub async fn start(config: ClientConfig, shutdown: Shutdown) -> Result<RunningClient, ClientError> {
    let (_, api_addr, task) = launch(config, shutdown, true).await?;
    Ok(RunningClient {
        api_addr: api_addr.expect("an API was asked for"),
        task: Some(task),
    })
}

/// Starts the client: proxies, chain and identity renewal, and with `api` the HTTP API on
/// `config.listen`. Returns its state, where the API listens, and the task that runs it all.
pub(crate) async fn launch(
    mut config: ClientConfig,
    shutdown: Shutdown,
    api: bool,
) -> Result<
    (
        Arc<ClientShared>,
        Option<SocketAddr>,
        tokio::task::JoinHandle<()>,
    ),
    ClientError,
> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ClientError::Config(problems));
    }
    // Proxies taken from the root's registry, and proxy images it allows, are followed while
    // the client runs.
    let mut from_root = false;
    let mut live_hashes = None;
    // Workers are checked by this client before it seals to them: by `worker_policy`, or the
    // proxy policy's checks as configured (taken before the proxy images from the root fill
    // it in: workers run other images than proxies).
    let mut worker_policy = config
        .worker_policy
        .clone()
        .unwrap_or_else(|| config.proxy_policy.clone());
    let chain = match &config.chain {
        Some(chain_config) => {
            let chain = chain::ClientChain::open(chain_config, &config.secret)
                .await
                .map_err(ClientError::Chain)?;
            let owner = chain.owner_address();
            if !config.owner_address.is_empty()
                && config.owner_address.parse::<cocoon_ton::Address>().ok()
                    != owner.parse::<cocoon_ton::Address>().ok()
            {
                return Err(ClientError::Config(vec![format!(
                    "owner_address {} is not the address of chain.wallet_key's wallet ({owner}): leave it empty",
                    config.owner_address
                )]));
            }
            config.owner_address = owner;
            if config.proxies.is_empty() {
                from_root = true;
                if chain.registered_proxies.is_empty() {
                    return Err(ClientError::Chain(
                        "no proxies configured and the root registers none: set proxies".into(),
                    ));
                }
                info!(proxies = ?chain.registered_proxies, "proxies from the root's registry");
                config.proxies = chain.registered_proxies.clone();
            }
            // The root says which proxy images may be trusted, unless the config says so itself;
            // followed while the client runs: the root may allow other images later.
            live_hashes = config
                .proxy_policy
                .follow_root_images(
                    cocoon_attest::LiveImageHashes::new(chain.proxy_hashes.clone()),
                    "the root allows no proxy image (its proxy_hashes is empty): set proxy_policy.image_hashes to trust images yourself",
                )
                .map_err(ClientError::Chain)?;
            Some(Arc::new(chain))
        }
        None => None,
    };
    // Clients are not TEEs: their certificate carries no quote, but it is short-lived like
    // every RA-TLS certificate and renewed the same way.
    let identity = TeeConfig::none().identity("cocoon-client")?;
    let built = config.proxy_policy.build_following(live_hashes.clone())?;
    // With `[chain]` and no image allow-list of its own, the worker policy follows the root's
    // `worker_hashes` while the client runs. An empty root list allows no worker (requests go
    // in the clear with `e2e = "preferred"`) until the root allows one.
    let worker_images = match &chain {
        Some(chain) => {
            let root = cocoon_attest::LiveImageHashes::new(chain.worker_hashes.clone());
            match worker_policy.follow_root_images(
                root.clone(),
                "the root allows no worker image (its worker_hashes is empty): no worker is sealed to until it allows one, or set worker_policy.image_hashes to trust images yourself",
            ) {
                Ok(live) => live,
                Err(why) => {
                    warn!("{why}");
                    Some(root)
                }
            }
        }
        None => None,
    };
    let sealer = sealing::Sealer::new(
        config.e2e,
        worker_policy.build_following(worker_images.clone())?.policy,
        config.request_padding,
    )
    .following(worker_images.clone());
    let sealer = sealer.with_proxy_policy(built.policy.clone());
    let collateral_fetcher = built.fetcher;
    let connector = Connector::new(&identity.tls, built.policy, config.max_pow_difficulty)?;
    let listener = if api {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ClientError::Bind {
                    address: config.listen,
                    source,
                })?;
        let api_addr = listener.local_addr().map_err(cocoon_net::NetError::Io)?;
        if !api_addr.ip().is_loopback() && config.api_token.is_none() {
            warn!(%api_addr, "the API listens beyond loopback without api_token: requests are served only under a loopback Host or allowed_hosts, and anyone who can send one spends your stake; set api_token");
        }
        Some((listener, api_addr))
    } else {
        None
    };
    let api_addr = listener.as_ref().map(|(_, addr)| *addr);
    let connector_for_renewal = connector.clone();
    let pool = Arc::new(ProxyPool::new(
        connector,
        config.owner_address.clone(),
        config.secret.clone(),
        Duration::from_secs_f64(config.max_reconnect_secs),
        chain.clone(),
    ));
    let shared = Arc::new(ClientShared {
        guard: guard::ApiGuard::new(&config),
        pool: pool.clone(),
        stats: Stats::default(),
        started: Instant::now(),
        config,
        sealer,
    });
    let mut app = axum::Router::new()
        .route("/v1/models", get(api::models))
        .route("/v1/chat/completions", post(api::completion))
        .route("/v1/completions", post(api::completion))
        .route("/v1/embeddings", post(api::completion))
        .route("/v1/responses", post(responses::responses))
        .route("/", get(dashboard))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .fallback(api::not_found)
        // The completion handler enforces MAX_BODY itself, with an OpenAI-shaped error.
        .layer(DefaultBodyLimit::disable())
        // Inside CORS: a preflight is answered by the CORS layer and never carries a token.
        .layer(guard::GuardLayer(shared.clone()))
        .with_state(shared.clone());
    if let Some(cors) = cors(&shared.config.cors_origins) {
        app = app.layer(cors);
    }
    match api_addr {
        Some(api_addr) => {
            info!(%api_addr, proxies = ?shared.config.proxies, "client API listening")
        }
        None => info!(proxies = ?shared.config.proxies, "client embedded (no HTTP API)"),
    }
    let task_shared = shared.clone();
    let task = tokio::spawn(async move {
        let shared = task_shared;
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(fetcher) = collateral_fetcher {
            tasks.spawn(fetcher.run(shutdown.clone()));
        }
        let renewal_connector = connector_for_renewal;
        tasks.spawn(cocoon_attest::renewal::keep_renewed(
            TeeConfig::none(),
            "cocoon-client",
            cocoon_attest::ClaimsExtras::default(),
            cocoon_attest::renewal::RENEW_EVERY,
            shutdown.clone(),
            move |identity| renewal_connector.renew_identity(identity),
        ));
        let target = if from_root {
            shared.config.proxy_connections
        } else {
            usize::MAX
        };
        let _pool_tasks = pool.tasks.abort_on_drop();
        pool.set_members(shared.config.proxies.clone(), target, &shutdown);
        if let Some(chain) = &shared.config.chain {
            if from_root || live_hashes.is_some() || worker_images.is_some() {
                tasks.spawn(pool.clone().follow_root(
                    Duration::from_secs_f64(chain.root_refresh_secs),
                    shutdown.clone(),
                    from_root,
                    live_hashes,
                    worker_images,
                ));
            }
        }
        if let Some(chain) = &shared.config.chain {
            tasks.spawn(pool.clone().keep_funded(
                Duration::from_secs_f64(chain.balance_check_secs),
                shutdown.clone(),
            ));
        }
        let grace = Duration::from_secs_f64(shared.config.grace_period_secs);
        let drain_shutdown = shutdown.clone();
        let drain_pool = pool.clone();
        let drained = async move {
            drain_shutdown.draining().await;
            wait_for_drain(&drain_shutdown, grace, || drain_pool.in_flight()).await;
        };
        // Stop accepting at once; in-flight responses finish while `drained` waits.
        let serve = async {
            if let Some((listener, _)) = listener {
                serve::serve(
                    listener,
                    app,
                    Duration::from_secs_f64(shared.config.header_read_timeout_secs),
                    shutdown.clone(),
                )
                .await;
            }
        };
        tokio::select! {
            _ = async { tokio::join!(serve, drained) } => {}
            _ = shutdown.killed() => {}
        }
        tasks.shutdown().await;
        info!("client stopped");
    });
    Ok((shared, api_addr, task))
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

async fn stats(State(shared): State<Arc<ClientShared>>) -> impl IntoResponse {
    let s = &shared.stats;
    let price = shared.pool.price_per_token();
    let proxies: Vec<serde_json::Value> = shared
        .pool
        .status()
        .into_iter()
        .map(|(address, connected, retiring)| serde_json::json!({"address": address, "connected": connected, "retiring": retiring}))
        .collect();
    axum::Json(serde_json::json!({
        "role": "client",
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "connections": { "proxies": shared.pool.connected().len(), "configured": proxies },
        "requests": {
            "total": load(&s.requests),
            "in_flight": shared.pool.in_flight(),
            "failed": load(&s.failed),
            "failed_streams": load(&s.failed_streams),
            "refused": load(&s.refused),
        },
        "receipts": {
            "valid": load(&s.receipts_valid),
            "refused": load(&s.receipts_refused),
            "missing": load(&s.receipts_missing),
            "over_charged": load(&s.over_charged),
        },
        "streams": {
            "cut_slow_reader": load(&shared.pool.streams.cut_slow_reader),
            "queued_peak_bytes": load(&shared.pool.streams.queued_peak_bytes),
            "queue_limit_bytes": proxies::MAX_QUEUED_PER_STREAM,
        },
        "payments": {
            "billed_requests": load(&shared.pool.payments.billed_requests),
            "billed_tokens": load(&shared.pool.payments.billed_tokens),
            "charged_tokens": load(&shared.pool.payments.charged_tokens),
            "spent_nano": price.map(|price| u128::from(load(&shared.pool.payments.charged_tokens)).saturating_mul(price)),
        },
        "proxies": shared.pool.proxies_json(),
        "tokens": s.tokens.totals(),
        "chain": shared.pool.chain_status(),
    }))
}

async fn metrics(State(shared): State<Arc<ClientShared>>) -> impl IntoResponse {
    let s = &shared.stats;
    let mut text = PrometheusText::new();
    text.gauge(
        "cocoon_client_uptime_seconds",
        "Seconds since start.",
        shared.started.elapsed().as_secs_f64(),
    )
    .gauge(
        "cocoon_client_proxy_connections",
        "Connected proxies.",
        shared.pool.connected().len() as f64,
    )
    .counter(
        "cocoon_client_requests_total",
        "API completion requests.",
        load(&s.requests),
    )
    .counter(
        "cocoon_client_requests_failed_total",
        "Requests answered with an error status.",
        load(&s.failed),
    )
    .counter(
        "cocoon_client_requests_refused_total",
        "API requests refused before any handler ran (token, Host, Origin, Content-Type).",
        load(&s.refused),
    )
    .counter(
        "cocoon_client_receipts_valid_total",
        "Sealed answers whose worker's signed receipt verified and covered the charge.",
        load(&s.receipts_valid),
    )
    .counter(
        "cocoon_client_receipts_refused_total",
        "Sealed answers whose receipt was refused (forged, another request's or answer's, or below the charge).",
        load(&s.receipts_refused),
    )
    .counter(
        "cocoon_client_receipts_missing_total",
        "Sealed answers that came without a receipt.",
        load(&s.receipts_missing),
    )
    .counter(
        "cocoon_client_over_charged_total",
        "Sealed answers the proxy charged more tokens for than the worker's receipt states.",
        load(&s.over_charged),
    )
    .counter(
        "cocoon_client_streams_failed_total",
        "Streams that ended with an error event.",
        load(&s.failed_streams),
    )
    .counter(
        "cocoon_client_streams_cut_slow_reader_total",
        "Streams cut off because the app left too many answer bytes unread.",
        load(&shared.pool.streams.cut_slow_reader),
    )
    .gauge(
        "cocoon_client_stream_queued_peak_bytes",
        "The most answer bytes one request has had waiting for its app since start.",
        load(&shared.pool.streams.queued_peak_bytes) as f64,
    )
    .gauge(
        "cocoon_client_requests_in_flight",
        "Requests waiting for answers.",
        shared.pool.in_flight() as f64,
    );
    s.tokens.write_prometheus(
        &mut text,
        "cocoon_client_tokens_total",
        "Tokens paid for, by kind.",
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text.finish(),
    )
}
