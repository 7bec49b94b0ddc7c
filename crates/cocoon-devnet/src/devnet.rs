//! An in-process devnet: one proxy, N workers, one client, on loopback, started by a small
//! builder. Tests use it with ephemeral ports; `cocoon devnet` uses it with the real ports.
//!
//! ```no_run
//! # async fn demo() {
//! let devnet = cocoon_devnet::Devnet::builder().workers(2).start().await.unwrap();
//! println!("{}", devnet.client_base_url());
//! devnet.stop().await;
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_client::{ClientConfig, RunningClient};
use cocoon_net::ShutdownTrigger;
use cocoon_proxy::payments::PaymentsConfig;
use cocoon_proxy::{ProxyConfig, RunningProxy};
use cocoon_worker::{Backend, RunningWorker, WorkerConfig};

use crate::devchain::{key_path, DevChain, PAYOUTS_DIR};
use crate::http::{get_json as http_get_json, get_json_with, TestHttp};
use crate::mock_backend::{MockBackend, MockBackendConfig};

/// Where the workers' backend comes from.
#[derive(Clone, Debug)]
enum BackendChoice {
    /// One mock backend per worker (so tests can slow or break one).
    MockPerWorker(MockBackendConfig),
    /// An external OpenAI-compatible server shared by all workers; one worker per model it
    /// lists.
    Url(String),
}

/// Configures a devnet before starting it.
#[derive(Clone, Debug)]
pub struct DevnetBuilder {
    proxies: usize,
    register_proxies: bool,
    workers: usize,
    backend: BackendChoice,
    client_listen: SocketAddr,
    pow_difficulty: i32,
    backend_check: Duration,
    max_active_requests: u32,
    grace_period: Duration,
    worker_fake_mrtd: Option<String>,
    worker_weights_file: Option<std::path::PathBuf>,
    required_worker_image_hashes: Vec<String>,
    /// Fake GPUs per worker, attested beside the fake CPU quote (0: none).
    fake_gpus: usize,
    wait_for_workers: bool,
    chain: Option<ChainSetup>,
    client_settings: Option<fn(&mut ClientConfig)>,
    e2e: Option<cocoon_client::E2e>,
    worker_settings: Option<fn(&mut WorkerConfig)>,
    danger_tamper: Option<DangerTamperHook>,
}

/// A test's tampering proxy ([`DevnetBuilder::danger_tamper`]).
#[derive(Clone)]
struct DangerTamperHook(std::sync::Arc<dyn cocoon_proxy::danger::DangerTamper>);

impl std::fmt::Debug for DangerTamperHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DangerTamperHook")
    }
}

/// A devnet that is paid on a local chain (see [`DevnetBuilder::local_chain`]).
#[derive(Clone, Debug)]
struct ChainSetup {
    dir: PathBuf,
    prices: PathBuf,
    threshold_tokens: u64,
    payout_threshold_tokens: u64,
    settle_interval: Duration,
    commit_interval: Duration,
    /// Reach the chain through this toncenter v2 API (a `FakeToncenter` over the devnet's
    /// network) instead of opening its directory.
    toncenter: Option<String>,
}

/// One worker of a devnet.
pub struct DevnetWorker {
    /// Its config as started.
    pub config: WorkerConfig,
    /// Where its `/stats` is served.
    pub http_addr: SocketAddr,
    /// Its own mock backend, when the devnet uses mocks.
    pub backend: Option<MockBackend>,
    trigger: ShutdownTrigger,
    running: Option<RunningWorker>,
}

impl DevnetWorker {
    /// Kills the worker now, as a crash would: links drop, running requests vanish.
    pub fn kill(&mut self) {
        self.trigger.kill();
    }

    /// Whether it was killed or stopped.
    pub fn is_stopped(&self) -> bool {
        self.running.is_none() || self.trigger.subscribe().is_killed()
    }

    /// Fetches its `/stats` JSON.
    pub async fn stats(&self) -> serde_json::Value {
        http_get_json(self.http_addr, "/stats").await
    }
}

/// A proxy of a devnet beyond the first.
pub struct DevnetProxy {
    /// Its addresses.
    pub proxy: RunningProxy,
    /// Its config as started (real ports).
    pub config: ProxyConfig,
    trigger: ShutdownTrigger,
}

/// A running devnet. Dropping it kills everything; [`Devnet::stop`] drains gracefully.
pub struct Devnet {
    /// The proxy's addresses.
    pub proxy: RunningProxy,
    /// The proxy's config as started (real ports).
    pub proxy_config: ProxyConfig,
    /// The workers.
    pub workers: Vec<DevnetWorker>,
    /// The client.
    pub client: RunningClient,
    /// The client's config as started (real ports).
    pub client_config: ClientConfig,
    /// The local chain and its parties, when the devnet is paid.
    pub chain: Option<DevChain>,
    /// The proxies beyond the first ([`DevnetBuilder::proxies`]).
    pub more_proxies: Vec<DevnetProxy>,
    proxy_trigger: ShutdownTrigger,
    client_trigger: ShutdownTrigger,
}

impl Default for DevnetBuilder {
    fn default() -> Self {
        DevnetBuilder {
            proxies: 1,
            register_proxies: false,
            workers: 1,
            backend: BackendChoice::MockPerWorker(MockBackendConfig::default()),
            client_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Low enough that tests connect instantly, high enough that the gate is exercised.
            pow_difficulty: 8,
            backend_check: Duration::from_millis(100),
            max_active_requests: 64,
            grace_period: Duration::from_secs(5),
            worker_fake_mrtd: None,
            worker_weights_file: None,
            required_worker_image_hashes: Vec::new(),
            fake_gpus: 0,
            wait_for_workers: true,
            chain: None,
            client_settings: None,
            e2e: None,
            worker_settings: None,
            danger_tamper: None,
        }
    }
}

impl DevnetBuilder {
    /// Number of workers (each with its own mock backend when mocks are used).
    /// Proxies to start (at least one). Every worker serves all of them and the client keeps
    /// all of them connected; with a chain each has its own operator, signing key, contract,
    /// ledger (`proxy.ledger`, `proxy-N.ledger`) and the client's and workers' contracts.
    pub fn proxies(mut self, proxies: usize) -> Self {
        self.proxies = proxies.max(1);
        self
    }

    /// With a chain: register the proxies' endpoints in the root once they listen (what
    /// `cocoon devnet` does, so that nodes with `[chain]` and no `proxies` find them).
    pub fn register_proxies(mut self, register: bool) -> Self {
        self.register_proxies = register;
        self
    }

    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The mock backends' behaviour.
    pub fn mock(mut self, config: MockBackendConfig) -> Self {
        self.backend = BackendChoice::MockPerWorker(config);
        self
    }

    /// Use an external backend instead of mocks: one worker per model it lists.
    pub fn backend_url(mut self, url: &str) -> Self {
        self.backend = BackendChoice::Url(url.to_string());
        self
    }

    /// The client API address (port 0 = ephemeral).
    pub fn client_listen(mut self, address: SocketAddr) -> Self {
        self.client_listen = address;
        self
    }

    /// Proof-of-work bits the proxy demands.
    pub fn pow_difficulty(mut self, bits: i32) -> Self {
        self.pow_difficulty = bits;
        self
    }

    /// How often workers probe their backend.
    pub fn backend_check(mut self, every: Duration) -> Self {
        self.backend_check = every;
        self
    }

    /// Per-worker concurrency cap.
    pub fn max_active_requests(mut self, max: u32) -> Self {
        self.max_active_requests = max;
        self
    }

    /// Drain grace period of every daemon.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Gives every worker's fake TEE this MRTD (96 hex digits), changing its image hash.
    pub fn worker_fake_mrtd(mut self, mrtd: &str) -> Self {
        self.worker_fake_mrtd = Some(mrtd.to_string());
        self
    }

    /// Tells every worker the weights file its backend serves (the built-in engine's GGUF): its
    /// SHA-256 goes into the workers' attested claims.
    pub fn worker_weights_file(mut self, path: &std::path::Path) -> Self {
        self.worker_weights_file = Some(path.to_path_buf());
        self
    }

    /// Gives every worker `count` fake GPUs (1 to 8; `danger_fake_gpu`), their evidence bound
    /// into its claims, and makes the proxy and the client (before sealing) demand them.
    pub fn fake_gpus(mut self, count: usize) -> Self {
        self.fake_gpus = count;
        self
    }

    /// Makes the proxy accept only workers with one of these image hashes (64 hex digits).
    pub fn require_worker_image_hashes(mut self, hashes: Vec<String>) -> Self {
        self.required_worker_image_hashes = hashes;
        self
    }

    /// Pays the devnet on the embedded chain in `dir` (created and deployed by
    /// [`DevChain::open`], prices from `prices`): the proxy keeps its ledger in
    /// `dir/proxy.ledger`, signs charges and payouts as soon as one token is owed, and checks
    /// every `settle_interval`; it commits its ledger head every `commit_interval`.
    pub fn local_chain(
        mut self,
        dir: &Path,
        prices: &Path,
        settle_interval: Duration,
        commit_interval: Duration,
    ) -> Self {
        self.chain = Some(ChainSetup {
            dir: dir.to_path_buf(),
            prices: prices.to_path_buf(),
            threshold_tokens: 1,
            payout_threshold_tokens: 1,
            settle_interval,
            commit_interval,
            toncenter: None,
        });
        self
    }

    /// With [`DevnetBuilder::local_chain`]: the proxy and the client reach the chain through
    /// the toncenter v2 API at `url` (a `FakeToncenter` serving the devnet's network, started
    /// by the test after [`DevChain::open`]), as on a real network; the devnet's setup still
    /// opens the directory.
    pub fn toncenter(mut self, url: &str) -> Self {
        if let Some(setup) = &mut self.chain {
            setup.toncenter = Some(url.to_string());
        }
        self
    }

    /// Tokens a client may owe before the proxy charges its contract (with
    /// [`DevnetBuilder::local_chain`]; default 1).
    pub fn charge_threshold(mut self, tokens: u64) -> Self {
        if let Some(setup) = &mut self.chain {
            setup.threshold_tokens = tokens;
        }
        self
    }

    /// Tokens a worker may be owed before the proxy pays it on its own (with
    /// [`DevnetBuilder::local_chain`]; default 1). Workers keep their signed payouts in
    /// `dir/payouts/` either way.
    pub fn payout_threshold(mut self, tokens: u64) -> Self {
        if let Some(setup) = &mut self.chain {
            setup.payout_threshold_tokens = tokens;
        }
        self
    }

    /// Whether the client seals requests to the worker (its `e2e`; default `preferred`).
    pub fn e2e(mut self, e2e: cocoon_client::E2e) -> Self {
        self.e2e = Some(e2e);
        self
    }

    /// Changes the client's config before it starts (its API settings: `api_token`,
    /// `allowed_hosts`, read timeouts…). The devnet's own helpers send the token.
    pub fn client_settings(mut self, settings: fn(&mut ClientConfig)) -> Self {
        self.client_settings = Some(settings);
        self
    }

    /// Changes every worker's config before it starts (e.g. `admin_token`).
    pub fn worker_settings(mut self, settings: fn(&mut WorkerConfig)) -> Self {
        self.worker_settings = Some(settings);
        self
    }

    /// **Tests only:** the first proxy tampers with sealed requests as `tamper` says (see
    /// `cocoon_proxy::danger`), so tests can play a malicious proxy on the wire. A proxy
    /// restarted by [`Devnet::restart_proxy`] is honest.
    pub fn danger_tamper(
        mut self,
        tamper: std::sync::Arc<dyn cocoon_proxy::danger::DangerTamper>,
    ) -> Self {
        self.danger_tamper = Some(DangerTamperHook(tamper));
        self
    }

    /// Whether `start` waits for every worker to be ready (off when a test expects a worker
    /// to be refused).
    pub fn wait_for_workers(mut self, wait: bool) -> Self {
        self.wait_for_workers = wait;
        self
    }

    /// Starts proxy, workers and client, and waits until every worker is registered and the
    /// client is connected. Every hop is attested with the fake TEE.
    pub async fn start(self) -> Result<Devnet, String> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let grace = self.grace_period.as_secs_f64();
        let mut backends: Vec<(String, String, Option<MockBackend>)> = Vec::new();
        match &self.backend {
            BackendChoice::MockPerWorker(mock) => {
                for _ in 0..self.workers {
                    let backend = MockBackend::start(mock.clone())
                        .await
                        .map_err(|e| format!("mock backend: {e}"))?;
                    let model = mock.models.first().cloned().unwrap_or_default();
                    backends.push((backend.url(), model, Some(backend)));
                }
            }
            BackendChoice::Url(url) => {
                let models = Backend::new(url, None)
                    .models()
                    .await
                    .map_err(|e| format!("backend {url}: {e}"))?;
                if models.is_empty() {
                    return Err(format!("backend {url} lists no models at /v1/models"));
                }
                for model in models.into_iter().take(self.workers.max(1)) {
                    backends.push((url.clone(), model, None));
                }
            }
        }
        // The models the root allows: what the workers serve, and with the mock every model it
        // answers for (a test may start its workers itself, outside the devnet).
        let mut models: Vec<String> = backends.iter().map(|b| b.1.clone()).collect();
        if let BackendChoice::MockPerWorker(mock) = &self.backend {
            models.extend(mock.models.iter().cloned());
        }
        models.sort();
        models.dedup();
        let chain = match &self.chain {
            Some(setup) => Some(
                DevChain::open_with_proxies(
                    &setup.dir,
                    &setup.prices,
                    self.proxies,
                    backends.len(),
                    &models,
                )
                .await
                .map_err(|e| format!("devnet chain: {e}"))?,
            ),
            None => None,
        };
        let mut worker_policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
        worker_policy.image_hashes = self.required_worker_image_hashes.clone();
        if self.fake_gpus > 0 {
            worker_policy.gpu = Some(cocoon_attest::GpuPolicyKind::DangerFakeGpu);
        }
        let mut proxy_config = ProxyConfig::new(TeeConfig::of(TeeKind::DangerFake), worker_policy);
        if let BackendChoice::MockPerWorker(mock) = &self.backend {
            proxy_config.models = mock.models.clone();
        }
        proxy_config.client_listen = loopback;
        proxy_config.worker_listen = loopback;
        proxy_config.http_listen = loopback;
        proxy_config.pow_difficulty = self.pow_difficulty;
        proxy_config.grace_period_secs = grace;
        let base_proxy_config = proxy_config;
        let mut started = Vec::new();
        for index in 0..self.proxies {
            let mut proxy_config = base_proxy_config.clone();
            if let (Some(setup), Some(chain)) = (&self.chain, &chain) {
                let name = crate::devchain::proxy_key_name(index);
                let ledger = if index == 0 {
                    "proxy.ledger".to_string()
                } else {
                    format!("{name}.ledger")
                };
                let mut payments = PaymentsConfig::local(
                    chain.ton_dir(),
                    setup.dir.join(ledger),
                    key_path(&setup.dir, &format!("{name}-signer")),
                    key_path(&setup.dir, &name),
                );
                if let Some(url) = &setup.toncenter {
                    payments.chain = cocoon_proxy::payments::ChainKind::Toncenter;
                    payments.local_chain_dir = None;
                    payments.toncenter_url = Some(url.clone());
                    payments.root_address = Some(chain.cocoon.root_address().to_string());
                }
                // The builder counts in tokens; the config in TON.
                payments.charge_threshold = cocoon_ton::Coins(
                    u128::from(setup.threshold_tokens) * chain.params.price_per_token.0,
                );
                payments.payout_threshold = cocoon_ton::Coins(
                    u128::from(setup.payout_threshold_tokens) * chain.params.worker_fee_per_token.0,
                );
                payments.settle_interval_secs = setup.settle_interval.as_secs_f64();
                payments.commit_interval_secs = setup.commit_interval.as_secs_f64();
                proxy_config.payments = Some(payments);
            }
            let (trigger, shutdown) = ShutdownTrigger::new();
            let proxy = match (&self.danger_tamper, started.is_empty()) {
                (Some(DangerTamperHook(tamper)), true) => {
                    cocoon_proxy::danger::start_tampering(
                        proxy_config.clone(),
                        shutdown,
                        tamper.clone(),
                    )
                    .await
                }
                _ => cocoon_proxy::start(proxy_config.clone(), shutdown).await,
            }
            .map_err(|e| e.to_string())?;
            proxy_config.client_listen = proxy.client_addr;
            proxy_config.worker_listen = proxy.worker_addr;
            proxy_config.http_listen = proxy.http_addr;
            started.push(DevnetProxy {
                proxy,
                config: proxy_config,
                trigger,
            });
        }
        if let (true, Some(chain)) = (self.register_proxies, &chain) {
            let entries: Vec<String> = started
                .iter()
                .map(|p| format!("{} {}", p.proxy.worker_addr, p.proxy.client_addr))
                .collect();
            chain
                .register_proxies(&entries)
                .await
                .map_err(|e| format!("registering the proxies in the root: {e}"))?;
        }
        let worker_addrs: Vec<String> = started
            .iter()
            .map(|p| p.proxy.worker_addr.to_string())
            .collect();
        let client_addrs: Vec<String> = started
            .iter()
            .map(|p| p.proxy.client_addr.to_string())
            .collect();
        let mut started = started.into_iter();
        let DevnetProxy {
            proxy,
            config: proxy_config,
            trigger: proxy_trigger,
        } = started.next().expect("at least one proxy");
        let more_proxies: Vec<DevnetProxy> = started.collect();

        let mut workers = Vec::new();
        for (index, (url, model, backend)) in backends.into_iter().enumerate() {
            let mut tee = TeeConfig::of(TeeKind::DangerFake);
            tee.danger_fake_mrtd = self.worker_fake_mrtd.clone();
            if self.fake_gpus > 0 {
                tee.gpu = cocoon_attest::GpuKind::DangerFakeGpu;
                tee.danger_fake_gpu_count = Some(self.fake_gpus);
            }
            let mut config = WorkerConfig::new(
                worker_addrs.clone(),
                &url,
                &model,
                tee,
                PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
            );
            config.http_listen = loopback;
            config.backend_check_secs = self.backend_check.as_secs_f64();
            config.max_active_requests = self.max_active_requests;
            config.grace_period_secs = grace;
            config.max_reconnect_secs = 1.0;
            config.weights_file = self.worker_weights_file.clone();
            if let (Some(chain), Some(setup)) = (&chain, &self.chain) {
                config.owner_address = chain.workers[index].address().to_hex();
                config.payouts_dir = Some(setup.dir.join(PAYOUTS_DIR));
                config.payout_check_secs = setup.settle_interval.as_secs_f64();
                config.root_prices = Some((
                    u64::try_from(chain.params.price_per_token.0).unwrap_or(u64::MAX),
                    chain.params.multipliers(),
                ));
            }
            if let Some(settings) = self.worker_settings {
                settings(&mut config);
            }
            let (trigger, shutdown) = ShutdownTrigger::new();
            let running = cocoon_worker::start(config.clone(), shutdown)
                .await
                .map_err(|e| e.to_string())?;
            config.http_listen = running.http_addr;
            workers.push(DevnetWorker {
                config,
                http_addr: running.http_addr,
                backend,
                trigger,
                running: Some(running),
            });
        }

        let mut client_config = ClientConfig::new(
            client_addrs,
            PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
        );
        client_config.listen = self.client_listen;
        client_config.grace_period_secs = grace;
        client_config.max_reconnect_secs = 1.0;
        if let (Some(chain), Some(setup)) = (&chain, &self.chain) {
            client_config.owner_address = chain.client.address().to_hex();
            client_config.secret = chain.client_secret.clone();
            // The client on chain as a real one: it checks the proxy's contract against the
            // root, keeps its secret hash, and tops its contract up (5 TON at a time, at most
            // 50 TON per run) when it runs low.
            let mut on_chain =
                cocoon_client::ChainConfig::local(chain.ton_dir(), key_path(&setup.dir, "client"));
            if let Some(url) = &setup.toncenter {
                on_chain.network = cocoon_client::NetworkKind::Toncenter;
                on_chain.local_dir = None;
                on_chain.toncenter_url = Some(url.clone());
                on_chain.root_address = Some(chain.cocoon.root_address().to_string());
            }
            on_chain.allow_deploy = true;
            on_chain.top_up_amount = cocoon_ton::Coins::ton(5);
            on_chain.max_top_up = cocoon_ton::Coins::ton(50);
            client_config.chain = Some(on_chain);
        }
        if let Some(e2e) = self.e2e {
            client_config.e2e = e2e;
        }
        if self.fake_gpus > 0 {
            // The client demands the GPUs too, before it seals a request to a worker.
            let mut policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
            policy.gpu = Some(cocoon_attest::GpuPolicyKind::DangerFakeGpu);
            client_config.worker_policy = Some(policy);
        }
        if let Some(settings) = self.client_settings {
            settings(&mut client_config);
        }
        let (client_trigger, client_shutdown) = ShutdownTrigger::new();
        let client = cocoon_client::start(client_config.clone(), client_shutdown)
            .await
            .map_err(|e| e.to_string())?;
        client_config.listen = client.api_addr;
        let devnet = Devnet {
            proxy,
            proxy_config,
            workers,
            client,
            client_config,
            proxy_trigger,
            client_trigger,
            chain,
            more_proxies,
        };
        if self.wait_for_workers {
            devnet.wait_ready(Duration::from_secs(30)).await?;
        } else {
            devnet
                .wait_client_connected(Duration::from_secs(30))
                .await?;
        }
        Ok(devnet)
    }
}

impl Devnet {
    /// A builder with one mock-backed worker.
    pub fn builder() -> DevnetBuilder {
        DevnetBuilder::default()
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:10000/v1`.
    pub fn client_base_url(&self) -> String {
        self.client.base_url()
    }

    /// The client's API address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client.api_addr
    }

    /// Fetches the proxy's `/stats`.
    pub async fn proxy_stats(&self) -> serde_json::Value {
        http_get_json(self.proxy.http_addr, "/stats").await
    }

    /// Fetches the client's `/stats`.
    pub async fn client_stats(&self) -> serde_json::Value {
        get_json_with(&self.client_http(), self.client.api_addr, "/stats").await
    }

    /// An HTTP client for the client's API, sending its `api_token` when it has one.
    pub fn client_http(&self) -> TestHttp {
        TestHttp::new().with_bearer(self.client_config.api_token.as_deref())
    }

    /// Waits until every live worker is ready at the proxy and `/v1/models` lists its model.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        let expected: std::collections::BTreeSet<String> = self
            .workers
            .iter()
            .filter(|w| !w.is_stopped())
            .map(|w| w.config.model.clone())
            .collect();
        loop {
            let models =
                get_json_with(&self.client_http(), self.client.api_addr, "/v1/models").await;
            let listed: std::collections::BTreeSet<String> = models["data"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|m| m["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            // Every live worker ready at every proxy.
            let mut ready = usize::MAX;
            let proxies = std::iter::once(self.proxy.http_addr)
                .chain(self.more_proxies.iter().map(|p| p.proxy.http_addr));
            for address in proxies {
                let stats = http_get_json(address, "/stats").await;
                let here = stats["workers"]
                    .as_array()
                    .map(|w| {
                        w.iter()
                            .filter(|w| w["ready"] == true && w["enabled"] == true)
                            .count()
                    })
                    .unwrap_or(0);
                ready = ready.min(here);
            }
            if expected.is_subset(&listed)
                && ready >= self.workers.iter().filter(|w| !w.is_stopped()).count()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "devnet not ready after {limit:?}: models {listed:?}, {ready} workers ready"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the client is connected to the proxy.
    pub async fn wait_client_connected(&self, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        let all = 1 + self.more_proxies.len();
        while self.client_stats().await["connections"]["proxies"] != all {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("client not connected after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Asks every daemon to drain and waits until all stopped.
    pub async fn stop(mut self) {
        self.client_trigger.drain();
        self.proxy_trigger.drain();
        for proxy in &self.more_proxies {
            proxy.trigger.drain();
        }
        for worker in &self.workers {
            worker.trigger.drain();
        }
        for worker in &mut self.workers {
            if let Some(mut running) = worker.running.take() {
                running.wait().await;
            }
        }
        self.client.wait().await;
        self.proxy.wait().await;
        for proxy in &mut self.more_proxies {
            proxy.proxy.wait().await;
        }
    }

    /// Kills the proxy as a crash would and waits until it is gone.
    pub async fn kill_proxy(&mut self) {
        self.proxy_trigger.kill();
        self.proxy.wait().await;
    }

    /// Starts a fresh proxy on the same ports, e.g. after [`Devnet::kill_proxy`]; workers and
    /// the client find it again on their own.
    pub async fn restart_proxy(&mut self) -> Result<(), String> {
        let (trigger, shutdown) = ShutdownTrigger::new();
        self.proxy = cocoon_proxy::start(self.proxy_config.clone(), shutdown)
            .await
            .map_err(|e| e.to_string())?;
        self.proxy_trigger = trigger;
        Ok(())
    }

    /// Asks every daemon to drain without waiting (for signal handlers).
    pub fn drain(&self) {
        self.client_trigger.drain();
        self.proxy_trigger.drain();
        for proxy in &self.more_proxies {
            proxy.trigger.drain();
        }
        for worker in &self.workers {
            worker.trigger.drain();
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.client_trigger.kill();
        self.proxy_trigger.kill();
        for proxy in &self.more_proxies {
            proxy.trigger.kill();
        }
        for worker in &self.workers {
            worker.trigger.kill();
        }
    }
}
