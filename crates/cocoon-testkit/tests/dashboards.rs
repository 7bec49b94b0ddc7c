//! The operator dashboards: every daemon's HTTP port answers `GET /` with its page and the
//! headers that keep it to its own code, and after one paid request each `/stats` carries what
//! its page shows (per-worker earnings and attestation, ledger and chain commit state, the
//! worker's earnings and payouts, the client's proxies, balance and spending), with no secret
//! in it. (tests/e2e/test_dashboards.py renders the pages in headless Chromium.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_net::ShutdownTrigger;
use cocoon_testkit::devchain::{DevChain, CLIENT_DEPOSIT};
use cocoon_testkit::http::{get_json, TestHttp};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use cocoon_ton::{Address, Wallet};
use serde_json::{json, Value};

const TON: u128 = 1_000_000_000;
/// What the request asks: it must never show up in any `/stats`.
const PROMPT: &str = "a prompt nobody else may read";

/// A worker on the devnet's chain (so it knows its fee and reads what it was paid), paid to
/// `owner`, its node wallet's key in `key`.
fn chain_worker(
    dev: &DevChain,
    proxy: SocketAddr,
    backend_url: &str,
    owner: &Address,
    dir: &Path,
) -> cocoon_worker::WorkerConfig {
    let key = dir.join("node-wallet.key");
    let node = Wallet::from_seed(&cocoon_ton::keyfile::read_or_create(&key).unwrap());
    dev.network.mint(node.address(), 5 * TON).unwrap();
    let mut config = cocoon_worker::WorkerConfig::new(
        vec![proxy.to_string()],
        backend_url,
        "mock-model",
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.http_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.owner_address = owner.to_hex();
    config.max_reconnect_secs = 0.2;
    config.payouts_dir = Some(dir.join("payouts"));
    config.payout_check_secs = 0.1;
    config.chain = Some(cocoon_worker::WorkerChainConfig {
        network: cocoon_ton::ton::NetworkKind::Local,
        local_dir: Some(dev.ton_dir()),
        toncenter_url: None,
        toncenter_api_key: None,
        root_address: None,
        wallet_key: key,
        allow_deploy: true,
        submit_payout_tokens: 0,
        root_refresh_secs: 45.0,
    });
    config
}

/// `GET /` answers the role's page with its security headers.
async fn assert_dashboard(address: SocketAddr, title: &str) {
    let page = TestHttp::new().get(address, "/").await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text();
    assert!(html.contains(&format!("<title>{title}</title>")), "{title}");
    assert!(html.contains("fetch(\"/stats\""), "the page reads /stats");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    assert!(!html.contains("innerHTML"), "text goes in as text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_serves_its_dashboard_and_stats_carry_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::builder()
        .mock(MockBackendConfig::default())
        .workers(0)
        .local_chain(
            dir.path(),
            &dir.path().join("prices.toml"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
        .client_settings(|config| {
            if let Some(chain) = &mut config.chain {
                chain.balance_check_secs = 0.1;
            }
        })
        .start()
        .await
        .expect("paid devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let backend = cocoon_testkit::MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let owner = Wallet::from_seed(&[91; 32]).address().clone();
    let worker_contract = dev.worker_contract(&owner).unwrap().to_hex();
    let config = chain_worker(
        dev,
        devnet.proxy.worker_addr,
        &backend.url(),
        &owner,
        dir.path(),
    );
    let (_worker_trigger, shutdown) = ShutdownTrigger::new();
    let worker = cocoon_worker::start(config, shutdown).await.unwrap();
    wait_until("the worker to serve", || async {
        let stats = devnet.proxy_stats().await;
        stats["workers"][0]["ready"] == true && stats["workers"][0]["enabled"] == true
    })
    .await;

    assert_dashboard(devnet.proxy.http_addr, "Cocoon proxy").await;
    assert_dashboard(worker.http_addr, "Cocoon worker").await;
    assert_dashboard(devnet.client_addr(), "Cocoon client").await;
    // The client's other unknown paths are still the API's JSON 404.
    let missing = TestHttp::new()
        .get(devnet.client_addr(), "/nothing-here")
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_object(), "{}", missing.text());

    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": PROMPT}]});
    let answer = TestHttp::new()
        .post(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    let (earned, charged) = (u128::from(tokens) * fee, u128::from(tokens) * price);
    let nano = |value: &Value| value.as_u64().map(u128::from);

    // The proxy: the worker's earnings and attestation; the ledger committed to the chain.
    wait_until("the proxy's books on chain", || async {
        let chain = &devnet.proxy_stats().await["chain"];
        chain["uncommitted_records"] == 0
            && chain["charges_sent"].as_u64() >= Some(1)
            && chain["payouts_sent"].as_u64() >= Some(1)
            && chain["last_commit_secs_ago"].is_f64()
    })
    .await;
    let proxy = devnet.proxy_stats().await;
    let listed = &proxy["workers"][0];
    assert_eq!(listed["served"], 1, "{proxy}");
    assert_eq!(listed["earned_tokens"], tokens, "{proxy}");
    assert_eq!(nano(&listed["earned_nano"]), Some(earned), "{proxy}");
    assert_eq!(listed["tee"], "danger_fake");
    assert_eq!(listed["attestation_policy"], "danger_fake_tdx");
    assert_eq!(listed["image_hash"].as_str().map(str::len), Some(64));
    assert_eq!(proxy["tee"], "danger_fake");
    let chain = &proxy["chain"];
    assert_eq!(
        chain["committed_seqno"], proxy["ledger"]["seqno"],
        "{proxy}"
    );
    assert!(chain["settle_rounds"].as_u64() > Some(0), "{proxy}");
    assert!(chain["last_settle_secs_ago"].is_f64(), "{proxy}");
    assert_eq!(nano(&chain["price_per_token_nano"]), Some(price));
    assert_eq!(nano(&chain["worker_fee_per_token_nano"]), Some(fee));

    // The worker: what it earned, the payout it holds, and what the chain paid it.
    wait_until("the worker to see its payout on chain", || async {
        get_json(worker.http_addr, "/stats").await["earnings"]["paid_tokens"] == tokens
    })
    .await;
    let stats = get_json(worker.http_addr, "/stats").await;
    let earnings = &stats["earnings"];
    assert_eq!(earnings["earned_tokens"], tokens, "{stats}");
    assert_eq!(earnings["durable_tokens"], tokens, "{stats}");
    assert_eq!(earnings["signed_payout_tokens"], tokens, "{stats}");
    assert_eq!(nano(&earnings["worker_fee_per_token_nano"]), Some(fee));
    assert_eq!(nano(&earnings["earned_nano"]), Some(earned), "{stats}");
    assert_eq!(nano(&earnings["paid_nano"]), Some(earned), "{stats}");
    assert_eq!(stats["payments"][&worker_contract]["paid_tokens"], tokens);
    assert_eq!(stats["tee"], "danger_fake");
    assert_eq!(stats["requests"]["succeeded"], 1);

    // The client: its proxy, what it spent, and its contract's balance once charged on chain.
    wait_until("the client to read its charged contract", || async {
        let stats = devnet.client_stats().await;
        stats["chain"]["contracts"][0]["tokens_used_on_chain"] == tokens
    })
    .await;
    let client = devnet.client_stats().await;
    assert_eq!(nano(&client["payments"]["spent_nano"]), Some(charged));
    let contract = &client["chain"]["contracts"][0];
    assert_eq!(
        nano(&contract["balance_nano"]),
        Some(CLIENT_DEPOSIT.0 - charged)
    );
    assert_eq!(contract["owed_nano"], 0, "{client}");
    assert_eq!(contract["state"], "normal");
    let used = &client["proxies"][0];
    assert_eq!(used["connected"], true, "{client}");
    assert_eq!(
        used["address"].as_str(),
        Some(devnet.proxy.client_addr.to_string().as_str())
    );
    assert_eq!(used["contract"], contract["address"]);

    // Nothing secret or private in any of it.
    for stats in [&proxy, &stats, &client] {
        let text = stats.to_string();
        assert!(!text.contains(PROMPT), "the prompt leaked: {text}");
        assert!(
            !text.contains(&dev.client_secret),
            "the client's secret leaked"
        );
    }
}
