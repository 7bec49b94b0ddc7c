//! A paid proxy process under load, killed with SIGKILL at random points and restarted, 20
//! times. Afterwards the books must balance to the nano-TON: what the client contract paid is
//! what the worker received plus the proxy's commission, every charge is for one request id
//! only, no reservation is left, and every answer a client received in full was charged.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_ledger::{Ledger, LedgerConfig, Record};
use cocoon_net::ShutdownTrigger;
use cocoon_proxy::payments::PaymentsConfig;
use cocoon_proxy::ProxyConfig;
use cocoon_testkit::devchain::{key_path, load_key, DevChain, CLIENT_DEPOSIT};
use cocoon_testkit::http::{get_json, TestHttp};
use cocoon_testkit::scripted_backend::{Script, ScriptedBackend};
use cocoon_testkit::{MockBackend, MockBackendConfig};
use serde_json::json;

const KILLS: usize = 20;
const LOAD_TASKS: usize = 4;

/// A free port for a listener that is killed and started again on the same port. Taken below
/// the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by default): a port from
/// `bind(…:0)` is free again while its proxy is down, and any other test's `bind(…:0)` or
/// outgoing connection may take it then, so the restarted proxy could not listen (seen once
/// in a full parallel run: "cannot listen on 127.0.0.1:43229 (http): Address already in use").
/// Nothing is handed ports below that range unless it names them.
fn free_port() -> SocketAddr {
    let (low, _) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut parts = range.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    let (from, to) = (low.saturating_sub(12_000).max(10_000), low);
    assert!(from < to, "no room below the ephemeral port range ({low})");
    for _ in 0..1000 {
        let port = from + (rand::random::<u16>() % (to - from));
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
    panic!("no free port in {from}..{to}");
}

/// The proxy process, killed when dropped (a failed assertion must not leave it running).
struct ProxyProcess(Child);

impl ProxyProcess {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_proxy(config: &Path, log: &Path) -> ProxyProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_cocoon"))
        .arg("proxy")
        .arg("--config")
        .arg(config)
        .env("COCOON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(ProxyProcess)
        .expect("start the proxy")
}

async fn wait_for_http(address: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy did not come up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A paid proxy as its own process on a devnet chain, with a worker (forwarding to
/// `backend`) and a client in this process that reconnect on their own after every kill.
struct PaidSetup {
    dev: DevChain,
    proxy: ProxyConfig,
    proxy_toml: std::path::PathBuf,
    proxy_log: std::path::PathBuf,
    child: ProxyProcess,
    api: SocketAddr,
    worker_trigger: ShutdownTrigger,
    client_trigger: ShutdownTrigger,
    _worker: cocoon_worker::RunningWorker,
    _client: cocoon_client::RunningClient,
}

async fn paid_setup(data: &Path, backend: &str, model: &str) -> PaidSetup {
    let dev = DevChain::open(
        data,
        &data.join("prices.toml"),
        1,
        std::slice::from_ref(&model.to_string()),
    )
    .await
    .unwrap();
    let mut proxy = ProxyConfig::new(
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    proxy.client_listen = free_port();
    proxy.worker_listen = free_port();
    proxy.http_listen = free_port();
    proxy.pow_difficulty = 4;
    proxy.grace_period_secs = 1.0;
    proxy.models = vec![model.to_string()];
    let mut payments = PaymentsConfig::local(
        dev.ton_dir(),
        data.join("proxy.ledger"),
        key_path(data, "proxy-signer"),
        key_path(data, "proxy"),
    );
    payments.charge_threshold = cocoon_ton::Coins(1);
    payments.payout_threshold = cocoon_ton::Coins(1);
    payments.settle_interval_secs = 0.05;
    payments.commit_interval_secs = 0.1;
    proxy.payments = Some(payments);
    let proxy_toml = data.join("proxy.toml");
    std::fs::write(&proxy_toml, toml::to_string(&proxy).unwrap()).unwrap();
    let proxy_log = data.join("proxy.log");
    let child = spawn_proxy(&proxy_toml, &proxy_log);
    wait_for_http(proxy.http_listen).await;

    let mut worker = cocoon_worker::WorkerConfig::new(
        vec![proxy.worker_listen.to_string()],
        backend,
        model,
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    worker.http_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    worker.max_reconnect_secs = 0.2;
    worker.backend_check_secs = 0.2;
    worker.owner_address = dev.workers[0].address().to_hex();
    let (worker_trigger, worker_shutdown) = ShutdownTrigger::new();
    let worker = cocoon_worker::start(worker, worker_shutdown).await.unwrap();
    let mut client = cocoon_client::ClientConfig::new(
        vec![proxy.client_listen.to_string()],
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    client.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    client.max_reconnect_secs = 0.2;
    client.owner_address = dev.client.address().to_hex();
    client.secret = dev.client_secret.clone();
    let (client_trigger, client_shutdown) = ShutdownTrigger::new();
    let client = cocoon_client::start(client, client_shutdown).await.unwrap();
    PaidSetup {
        dev,
        proxy,
        proxy_toml,
        proxy_log,
        child,
        api: client.api_addr,
        worker_trigger,
        client_trigger,
        _worker: worker,
        _client: client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_killed_twenty_times_under_load_keeps_exact_books() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let model = "mock-model".to_string();
    let backend = MockBackend::start(MockBackendConfig {
        chunk_delay: Duration::from_millis(3),
        ..MockBackendConfig::default()
    })
    .await
    .unwrap();
    let PaidSetup {
        dev,
        proxy,
        proxy_toml,
        proxy_log,
        mut child,
        api,
        worker_trigger,
        client_trigger,
        _worker,
        _client,
    } = paid_setup(data, &backend.url(), &model).await;
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let worker_funds = dev.balance(dev.workers[0].address()).await.unwrap();
    let worker_funds_lt =
        cocoon_ton::ton::TonNetwork::account(dev.network.as_ref(), dev.workers[0].address())
            .await
            .unwrap()
            .last_lt;

    // Load: the same prompt over and over, so every request costs the same tokens.
    let body = json!({"model": model, "max_tokens": 16, "timeout": 10,
        "messages": [{"role": "user", "content": "count for me"}]});
    let succeeded = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let tokens_per_request = Arc::new(AtomicU64::new(0));
    // The newest refusal the load saw, for the message of a failed wait.
    let last_refusal = Arc::new(std::sync::Mutex::new(String::new()));
    let (stop_load, load_stopped) = tokio::sync::watch::channel(false);
    let mut load = Vec::new();
    for _ in 0..LOAD_TASKS {
        let (body, succeeded, attempted, per, refusal) = (
            body.clone(),
            succeeded.clone(),
            attempted.clone(),
            tokens_per_request.clone(),
            last_refusal.clone(),
        );
        let stopped = load_stopped.clone();
        load.push(tokio::spawn(async move {
            let http = TestHttp::new();
            while !*stopped.borrow() {
                attempted.fetch_add(1, Ordering::Relaxed);
                match http.post(api, "/v1/chat/completions", &body).await {
                    Ok(answer) if answer.status == 200 => {
                        let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
                        let before = per.swap(tokens, Ordering::Relaxed);
                        assert!(before == 0 || before == tokens, "token counts differ");
                        succeeded.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        let why = match other {
                            Ok(answer) => format!(
                                "HTTP {}: {}",
                                answer.status,
                                String::from_utf8_lossy(&answer.body)
                            ),
                            Err(error) => format!("no answer: {error}"),
                        };
                        *refusal.lock().unwrap() = why;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }

    for kill in 0..KILLS {
        let before = succeeded.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        // Let some requests through, then kill at a random moment.
        while succeeded.load(Ordering::Relaxed) < before + 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request got through after restart {kill}; the last refusal: {}; proxy log:\n{}",
                last_refusal.lock().unwrap(),
                std::fs::read_to_string(&proxy_log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 150)).await;
        child.kill();
        child = spawn_proxy(&proxy_toml, &proxy_log);
        wait_for_http(proxy.http_listen).await;
    }
    stop_load.send(true).unwrap();
    for task in load {
        task.await.unwrap();
    }
    let per = u128::from(tokens_per_request.load(Ordering::Relaxed));
    let succeeded = u128::from(succeeded.load(Ordering::Relaxed));
    let attempted = u128::from(attempted.load(Ordering::Relaxed));
    assert!(per > 0 && succeeded >= 2 * KILLS as u128);

    // Let the last proxy settle everything on chain.
    let client_contract = dev.client_contract(dev.client.address()).unwrap();
    let worker_contract = dev.worker_contract(dev.workers[0].address()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ledger = loop {
        let ledger = get_json(proxy.http_listen, "/stats").await["ledger"].clone();
        let charged = ledger["clients"][client_contract.to_hex()]["charged_tokens"].as_u64();
        let earned = ledger["workers"][worker_contract.to_hex()]["earned_tokens"].as_u64();
        let on_chain = dev.cocoon.client(&client_contract).await.unwrap().unwrap();
        let paid = dev.cocoon.worker(&worker_contract).await.unwrap().unwrap();
        if charged == Some(on_chain.tokens_used) && earned == Some(paid.tokens) {
            break ledger;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {ledger}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let account = &ledger["clients"][client_contract.to_hex()];
    assert_eq!(account["reserved_tokens"], 0, "no reservation leaked");
    let charged = u128::from(account["charged_tokens"].as_u64().unwrap());
    assert_eq!(charged % per, 0, "only whole requests are charged");
    let charged_requests = charged / per;
    assert!(
        succeeded <= charged_requests && charged_requests <= attempted,
        "every answer delivered in full was charged, and nothing more than was asked: \
         {succeeded} succeeded, {charged_requests} charged, {attempted} attempted"
    );

    // The chain: client paid = worker received + commission, to the nano-TON.
    let on_chain = dev.cocoon.client(&client_contract).await.unwrap().unwrap();
    let proxy_state = dev
        .cocoon
        .proxy(&dev.proxy_contract().unwrap())
        .await
        .unwrap()
        .unwrap();
    let worker_wallet = dev.balance(dev.workers[0].address()).await.unwrap();
    let client_paid = CLIENT_DEPOSIT.0 - on_chain.balance.0;
    // What the proxy contract paid to the worker's wallet, and the storage fees the wallet
    // paid meanwhile (a wallet pays storage on every transaction, a few nano-TON here).
    let (mut worker_received, mut wallet_fees) = (0u128, 0u128);
    let proxy_contract = dev.proxy_contract().unwrap();
    let mut after = worker_funds_lt;
    loop {
        let page = cocoon_ton::ton::TonNetwork::transactions(
            dev.network.as_ref(),
            dev.workers[0].address(),
            after,
            100,
        )
        .await
        .unwrap();
        for tx in &page {
            after = tx.lt;
            wallet_fees += tx.total_fees;
            if tx.source.as_ref() == Some(&proxy_contract) {
                worker_received += tx.value;
            }
        }
        if page.len() < 100 {
            break;
        }
    }
    assert_eq!(
        worker_wallet,
        worker_funds + worker_received - wallet_fees,
        "the worker's wallet holds what it was paid, less its storage fees"
    );
    // The proxy contract's commission: its part of every payout.
    let commission = proxy_state.balance.0;
    assert_eq!(client_paid, charged * price);
    assert_eq!(worker_received, charged * fee);
    assert_eq!(client_paid, worker_received + commission);
    assert_eq!(commission, charged * (price - fee));

    // Stop everything, then read the ledger itself: one charge per request id.
    client_trigger.kill();
    worker_trigger.kill();
    child.kill();
    let seed = load_key(data, "proxy-signer").unwrap();
    let ledger = Ledger::open(
        data.join("proxy.ledger"),
        LedgerConfig::new(seed, price, fee),
    )
    .expect("the ledger survives every kill");
    let mut ids = std::collections::HashSet::new();
    let mut charges = 0u128;
    let mut from = 1;
    loop {
        let records = ledger.records(from, 10_000).unwrap();
        let Some(last) = records.last() else { break };
        from = last.seqno + 1;
        for stored in &records {
            if let Record::Charge(charge) = &stored.record {
                assert!(ids.insert(charge.request_id), "request charged twice");
                assert_eq!(u128::from(charge.tokens), per);
                charges += 1;
            }
        }
    }
    assert_eq!(charges, charged_requests);
    eprintln!(
        "{KILLS} kills: {attempted} requests sent, {succeeded} answered in full, {charged_requests} charged ({per} tokens each); client paid {client_paid} nano-TON = worker {worker_received} + commission {commission}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_a_crash_cuts_short_is_charged_its_last_checkpoint() {
    // Before, a proxy killed while an answer streamed lost its reservation with it: the parts
    // the client had received were never billed, and the worker was never paid for them.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Stream {
            parts: 100,
            delay: Duration::from_millis(50),
        },
    )
    .await
    .unwrap();
    let mut setup = paid_setup(data, &backend.url(), "mock-model").await;
    let body = json!({"model": "mock-model", "stream": true, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "a long answer please"}]});
    // The worker and the client connect on their own: until then, 503.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        let stream = TestHttp::new()
            .post_stream(setup.api, "/v1/chat/completions", &body)
            .await
            .unwrap();
        if stream.status == 200 {
            break stream;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Two seconds of parts: at least one checkpoint (every second) is in the ledger.
    let mut received = 0;
    while received < 40 {
        let chunk = stream.next_chunk().await.expect("the stream runs");
        received += String::from_utf8_lossy(&chunk).matches("part").count();
    }
    setup.child.kill();
    drop(stream);
    setup.child = spawn_proxy(&setup.proxy_toml, &setup.proxy_log);
    wait_for_http(setup.proxy.http_listen).await;
    let client_contract = setup
        .dev
        .client_contract(setup.dev.client.address())
        .unwrap();
    let ledger = get_json(setup.proxy.http_listen, "/stats").await["ledger"].clone();
    let charged = ledger["clients"][client_contract.to_hex()]["charged_tokens"]
        .as_u64()
        .unwrap_or(0);
    // The prompt's estimate plus a token per part relayed by the last checkpoint (a second
    // or less before the kill), never the whole answer.
    assert!(
        (20..100).contains(&charged),
        "charged {charged} after {received} parts: {ledger}"
    );
    // It settles on chain like any charge.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while setup
        .dev
        .cocoon
        .client(&client_contract)
        .await
        .unwrap()
        .unwrap()
        .tokens_used
        != charged
    {
        assert!(tokio::time::Instant::now() < deadline, "not settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.client_trigger.kill();
    setup.worker_trigger.kill();
}
