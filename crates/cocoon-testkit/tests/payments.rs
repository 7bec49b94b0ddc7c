//! Money end to end on the devnet's chain (the deployed contracts on the embedded TVM): a chat
//! request through a paid devnet moves nano-TON from the client contract to the worker's wallet
//! with the proxy keeping the commission; a failed request costs nothing; a restored (older)
//! ledger file is refused at start.

use std::path::Path;
use std::time::Duration;

use cocoon_testkit::devchain::CLIENT_DEPOSIT;
use cocoon_testkit::http::{sse_events, TestHttp};
use cocoon_testkit::scripted_backend::{Script, ScriptedBackend};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_millis(100);
const COMMIT: Duration = Duration::from_millis(200);

async fn paid_devnet(dir: &Path) -> Devnet {
    Devnet::builder()
        .mock(MockBackendConfig::default())
        .local_chain(dir, &dir.join("prices.toml"), SETTLE, COMMIT)
        .start()
        .await
        .expect("paid devnet starts")
}

fn chat(content: &str, stream: bool) -> Value {
    let mut body = json!({"model": "mock-model", "stream": stream, "messages": [{"role": "user", "content": content}]});
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// (client contract tokens_used, client contract balance, worker wallet, proxy commission,
/// worker contract tokens, newest committed seqno)
async fn on_chain(devnet: &Devnet) -> (u64, u128, u128, u128, u64, i32) {
    let dev = devnet.chain.as_ref().expect("paid devnet");
    let cocoon = &dev.cocoon;
    let client = cocoon
        .client(&dev.client_contract(dev.client.address()).unwrap())
        .await
        .unwrap()
        .expect("client contract");
    let proxy = cocoon
        .proxy(&dev.proxy_contract().unwrap())
        .await
        .unwrap()
        .expect("proxy contract");
    let worker = cocoon
        .worker(&dev.worker_contract(dev.workers[0].address()).unwrap())
        .await
        .unwrap()
        .expect("worker contract");
    let wallet = dev.balance(dev.workers[0].address()).await.unwrap();
    let seqno = dev.proxy_commits().await.unwrap().last().map_or(0, |c| c.0);
    (
        client.tokens_used,
        client.balance.0,
        wallet,
        proxy.balance.0,
        worker.tokens,
        seqno,
    )
}

/// Waits until the proxy's settle loop has run two whole rounds from now: whatever was owed
/// when this was called has been sent by then, so "nothing on chain" means nothing was sent,
/// not that the loop has not come round yet.
async fn two_settle_rounds(devnet: &Devnet) {
    let rounds = |stats: Value| {
        stats["chain"]["settle_rounds"]
            .as_u64()
            .expect("settle_rounds")
    };
    let before = rounds(devnet.proxy_stats().await);
    wait_until("two settle rounds", || async {
        rounds(devnet.proxy_stats().await) >= before + 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_request_moves_nano_ton_and_a_failed_one_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let (_, _, wallet_before, _, _, _) = on_chain(&devnet).await;
    let http = TestHttp::new();
    let plain = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hello there", false),
        )
        .await
        .unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text());
    let mut tokens = plain.json()["usage"]["total_tokens"].as_u64().unwrap();
    let streamed = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("and a stream", true),
        )
        .await
        .unwrap();
    assert_eq!(streamed.status, 200);
    let usage = sse_events(streamed.text().as_bytes())
        .into_iter()
        .find_map(|event| event.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("the stream reports usage");
    tokens += usage["total_tokens"].as_u64().unwrap();
    assert!(tokens > 0);

    wait_until("the charge and the payout on chain", || async {
        let (used, _, _, _, paid, seqno) = on_chain(&devnet).await;
        used == tokens && paid == tokens && seqno > 0
    })
    .await;
    let (used, balance, wallet, commission, paid, _) = on_chain(&devnet).await;
    let t = u128::from(tokens);
    assert_eq!((used, paid), (tokens, tokens));
    assert_eq!(
        balance,
        CLIENT_DEPOSIT.0 - t * price,
        "client paid tokens × price"
    );
    assert_eq!(wallet, wallet_before + t * fee, "worker got tokens × fee");
    assert_eq!(
        commission,
        t * (price - fee),
        "the proxy contract's commission"
    );
    let stats = devnet.proxy_stats().await;
    assert_eq!(
        stats["ledger"]["commission_nano"].as_u64(),
        Some(u64::try_from(t * (price - fee)).unwrap()),
        "the proxy keeps tokens × (price − fee): {}",
        stats["ledger"]
    );
    // One request at a time: the ledger was idle at each charge, so its waiting caller
    // committed it itself (no hand-off to the writer thread and back).
    let writer = &stats["ledger_writer"];
    assert!(
        writer["caller_commits"].as_u64().is_some_and(|n| n >= 2)
            && writer["caller_commits"].as_u64() <= writer["commits"].as_u64(),
        "{writer}"
    );
    // Each commit's flush is timed, and none of these few took anywhere near 10 s.
    let (mean, max) = (
        writer["flush_ms_mean"].as_f64(),
        writer["flush_ms_max"].as_f64(),
    );
    assert!(
        mean.zip(max)
            .is_some_and(|(mean, max)| 0.0 <= mean && mean <= max && max < 10_000.0),
        "{writer}"
    );
    assert!(writer["slow_flushes"].as_u64().is_some(), "{writer}");

    // After each request the proxy told the client what it cost (proxy.clientRequestPayment)
    // and the worker what it earned (proxy.workerRequestPayment), in the numbers of its books.
    wait_until(
        "the client and the worker told of both requests",
        || async {
            let client = devnet.client_stats().await;
            let worker = devnet.workers[0].stats().await;
            client["payments"]["billed_requests"] == 2
                && worker["payments"]
                    .as_object()
                    .and_then(|m| m.values().next())
                    .is_some_and(|s| s["max_tokens"] == tokens)
        },
    )
    .await;
    let client = devnet.client_stats().await;
    assert_eq!(client["payments"]["billed_tokens"], tokens, "{client}");
    assert_eq!(client["payments"]["charged_tokens"], tokens, "{client}");
    let worker = devnet.workers[0].stats().await;
    let standing = worker["payments"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(standing["db_tokens"], tokens, "{worker}");
    // Everything earned is signed once the worker asked for its status (every payout check).
    wait_until(
        "the worker holds a payout signed for all it earned",
        || async {
            let worker = devnet.workers[0].stats().await;
            worker["payments"]
                .as_object()
                .and_then(|m| m.values().next())
                .is_some_and(|s| s["signed_tokens"] == tokens)
        },
    )
    .await;

    // A request whose worker fails before answering is not charged.
    devnet.workers[0].backend.as_ref().unwrap().set_down(true);
    let failed = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("this fails", false),
        )
        .await
        .unwrap();
    assert!(failed.status >= 500, "{} {}", failed.status, failed.text());
    two_settle_rounds(&devnet).await;
    let ledger = &devnet.proxy_stats().await["ledger"];
    let client = ledger["clients"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(client["charged_tokens"].as_u64(), Some(tokens), "{ledger}");
    assert_eq!(client["reserved_tokens"].as_u64(), Some(0), "{ledger}");
    assert_eq!(on_chain(&devnet).await.0, tokens);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_ledger_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = paid_devnet(dir.path()).await;
    // Wait for the first commit, keep a copy of the ledger as it was, then move on.
    wait_until("a first commit", || async { on_chain(&devnet).await.5 > 0 }).await;
    devnet.kill_proxy().await;
    let ledger = dir.path().join("proxy.ledger");
    let old = dir.path().join("old.ledger");
    std::fs::copy(&ledger, &old).unwrap();
    devnet
        .restart_proxy()
        .await
        .expect("the same ledger restarts");
    devnet
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("ready after restart");
    let http = TestHttp::new();
    let answer = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("one more", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let before = on_chain(&devnet).await.5;
    wait_until("a later commit", || async {
        on_chain(&devnet).await.5 > before
    })
    .await;
    devnet.kill_proxy().await;
    std::fs::copy(&old, &ledger).unwrap();
    let refused = devnet
        .restart_proxy()
        .await
        .expect_err("an old ledger must be refused");
    assert!(
        refused.contains("refusing to run") && refused.contains("rolled back"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_wrong_secret_or_no_contract_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let http = TestHttp::new();
    let stranger = cocoon_ton::Wallet::from_seed(&[42; 32]).address().to_hex();
    let owner = devnet.client_config.owner_address.clone();
    for (owner, secret, why) in [
        (
            owner,
            "not the secret".to_string(),
            "does not match the client contract",
        ),
        (stranger, String::new(), "needs a [chain] table"),
    ] {
        // A client that claims an owner without holding its wallet (no [chain]).
        let mut config = devnet.client_config.clone();
        config.chain = None;
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.owner_address = owner;
        config.secret = secret;
        let (_trigger, shutdown) = cocoon_net::ShutdownTrigger::new();
        let client = cocoon_client::start(config, shutdown).await.unwrap();
        let ask = || async {
            http.post(
                client.api_addr,
                "/v1/chat/completions",
                &chat("free lunch?", false),
            )
            .await
            .unwrap()
        };
        // Until its first attempt the client only says it is not connected yet; then it says
        // why the proxy refused it.
        wait_until("the client's attempt to be refused", || async {
            ask().await.text().contains(why)
        })
        .await;
        let answer = ask().await;
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert!(answer.text().contains(why), "{}", answer.text());
        let stats = http.get(client.api_addr, "/stats").await.unwrap().json();
        assert_eq!(stats["connections"]["proxies"], 0, "{stats}");
    }
    // Nothing was charged to anyone.
    let ledger = &devnet.proxy_stats().await["ledger"];
    assert_eq!(ledger["charged_nano"], 0, "{ledger}");
    devnet.stop().await;
}

/// The payment status queries as a C++ worker uses them, against a paid proxy, from a raw
/// worker connection with the devnet worker's identity and owner: a payout signed even before
/// anything was earned (a C++ worker drops a proxy that sends `signedPaymentEmpty` here), error
/// 1 when the worker claims more than the books hold, 0 to the extended comparison that follows,
/// and `updatePaymentStatus` only after registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_status_queries_behave_as_a_cpp_worker_expects() {
    use cocoon_proto::*;
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let config = &devnet.workers[0].config;
    let identity = config.tee.identity("raw-worker").unwrap();
    let built = config.proxy_policy.build().unwrap();
    let connector =
        cocoon_net::Connector::new(&identity.tls, built.policy, config.max_pow_difficulty).unwrap();
    let connection = connector.connect(&config.proxies[0]).await.unwrap();
    let handle = connection.handle.clone();
    let timeout = Duration::from_secs(10);
    let query = |bytes: Vec<u8>| {
        let handle = handle.clone();
        async move { handle.query(&bytes, timeout).await }
    };

    let early = query(WorkerUpdatePaymentStatus {}.to_bytes()).await;
    assert!(early.is_err(), "status before registration: {early:?}");

    let params = WorkerParams {
        worker_owner_address: config.owner_address.clone(),
        model: config.model.clone(),
        coefficient: config.coefficient,
        limits: None,
        supports_cancel: false,
        proto_version: Some(ProtoVersionRange {
            min: codes::MIN_PROTO_VERSION,
            max: codes::PROTO_VERSION,
        }),
    };
    let connected = query(WorkerConnectToProxy { params }.to_bytes())
        .await
        .unwrap();
    let connected = WorkerConnectedToProxy::from_bytes(&connected).unwrap();
    assert!(!connected.worker_sc_address.is_empty());

    let honest = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: 0,
        max_tokens: 0,
    };
    let answer = query(honest.to_bytes()).await.unwrap();
    let result = WorkerCompareBalanceWithProxyResult::from_bytes(&answer).unwrap();
    assert_eq!(result.error_code, 0);
    assert_eq!((result.tokens_committed_to_db, result.max_tokens), (0, 0));
    let SignedPayment::Signed { data } = &result.signed_payment else {
        panic!("a paid proxy signs a payout even for 0 tokens");
    };
    let contract: cocoon_ton::Address = connected.worker_sc_address.parse().unwrap();
    let payout =
        cocoon_ton::payout::parse_payout(data, &contract).expect("a payout for this contract");
    assert_eq!(cocoon_ton::payout::payout_tokens(&payout), 0);

    let claims_more = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: 5,
        max_tokens: 7,
    };
    let answer = query(claims_more.to_bytes()).await.unwrap();
    let result = WorkerCompareBalanceWithProxyResult::from_bytes(&answer).unwrap();
    assert_eq!(result.error_code, 1, "the worker knows more than the books");
    assert_eq!(result.max_tokens, 0, "the books are not changed by a claim");
    let extended = WorkerExtendedCompareBalanceWithProxy {
        tokens_committed_to_db: 5,
        other: Vec::new(),
    };
    let answer = query(extended.to_bytes()).await.unwrap();
    let result = WorkerExtendedCompareBalanceWithProxyResult::from_bytes(&answer).unwrap();
    assert_eq!(result.error_code, 0);

    let answer = query(WorkerUpdatePaymentStatus {}.to_bytes())
        .await
        .unwrap();
    let status = WorkerPaymentStatus::from_bytes(&answer).unwrap();
    assert!(matches!(
        status.signed_payment,
        SignedPayment::Signed { .. }
    ));
    assert_eq!((status.db_tokens, status.max_tokens), (0, 0));
    handle.close("test done");
    devnet.stop().await;
}

/// A payout the proxy signed for its worker (handed over on the worker's payment-status polls,
/// recorded in the ledger) but that nobody put on chain is sent by the proxy's settle loop once
/// it is over the payout threshold, even though the ledger already counts it as signed: a
/// recorded signature is never left off chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_payout_nobody_sent_is_sent_by_the_settle_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = Devnet::builder()
        .mock(MockBackendConfig::default())
        .local_chain(dir.path(), &dir.path().join("prices.toml"), SETTLE, COMMIT)
        .payout_threshold(u64::MAX)
        .start()
        .await
        .expect("paid devnet starts");
    let answer = TestHttp::new()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("earn", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    let contract = {
        let dev = devnet.chain.as_ref().unwrap();
        dev.worker_contract(dev.workers[0].address()).unwrap()
    };
    let worker_key = contract.to_hex();
    wait_until("the worker's payout signed in the ledger", || async {
        devnet.proxy_stats().await["ledger"]["workers"][&worker_key]["paid_tokens"] == tokens
    })
    .await;
    two_settle_rounds(&devnet).await;
    assert_eq!(
        on_chain(&devnet).await.4,
        0,
        "above the threshold nothing is sent"
    );

    // The same ledger under a threshold the signed payout is over.
    devnet.kill_proxy().await;
    devnet
        .proxy_config
        .payments
        .as_mut()
        .unwrap()
        .payout_threshold = cocoon_ton::Coins(1);
    devnet.restart_proxy().await.expect("restarts");
    wait_until("the signed payout on chain", || async {
        on_chain(&devnet).await.4 == tokens
    })
    .await;
    assert!(contract.to_hex() == worker_key);
    devnet.stop().await;
}

/// The root's owner changes the price: every contract address moves (params version + 1). The
/// running proxy notices within six settle rounds (`/stats` chain.root_params_changed) and keeps
/// serving the clients it has; a restart is refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_params_change_on_the_root_is_noticed_and_refused_at_restart() {
    use cocoon_ton::cocoon::RootMessage;
    use cocoon_ton::ton::{TonNetwork, WalletMessage};
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    assert_eq!(
        devnet.proxy_stats().await["chain"]["root_params_changed"],
        false
    );
    let body = RootMessage::ChangePrice {
        query_id: 7,
        price_per_token: cocoon_ton::Coins(40),
        worker_fee_per_token: cocoon_ton::Coins(30),
    }
    .to_cell()
    .unwrap();
    let sent = dev
        .network
        .send(
            &dev.owner,
            &[WalletMessage {
                to: dev.cocoon.root_address().clone(),
                value: 100_000_000,
                bounce: true,
                body: std::sync::Arc::new(body),
                state_init: None,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(sent, cocoon_ton::ton::SendOutcome::Executed(_)));
    assert_eq!(dev.cocoon.root().await.unwrap().params.params_version, 2);
    wait_until("the proxy notices", || async {
        devnet.proxy_stats().await["chain"]["root_params_changed"] == true
    })
    .await;
    // Still serving its clients on the old contracts.
    let answer = TestHttp::new()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("still here", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let old = dev.proxy_contract().unwrap().to_string();
    devnet.kill_proxy().await;
    let refused = devnet
        .restart_proxy()
        .await
        .expect_err("the contract the new params derive does not exist");
    assert!(
        refused.contains("no proxy contract") && refused.contains("params are at version 2"),
        "{refused}"
    );
    devnet
        .proxy_config
        .payments
        .as_mut()
        .unwrap()
        .proxy_contract = Some(old);
    let refused = devnet
        .restart_proxy()
        .await
        .expect_err("a proxy whose contract the root no longer derives is refused");
    assert!(
        refused.contains("the root's params changed (version 1 → 2)")
            && refused.contains("docs/payments.md"),
        "{refused}"
    );
}

/// A paid devnet whose worker forwards to `backend`.
async fn paid_devnet_on(dir: &Path, backend: &ScriptedBackend) -> Devnet {
    Devnet::builder()
        .backend_url(&backend.url())
        .local_chain(dir, &dir.join("prices.toml"), SETTLE, COMMIT)
        .start()
        .await
        .expect("paid devnet starts")
}

/// The only client's account in the proxy's books.
async fn client_account(devnet: &Devnet) -> Value {
    let ledger = &devnet.proxy_stats().await["ledger"];
    ledger["clients"]
        .as_object()
        .and_then(|clients| clients.values().next())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits for the proxy's books to settle on chain, then checks that what left the client
/// contract is exactly what the worker contract was paid plus the proxy's commission, to the
/// nano-TON, and returns the tokens charged.
async fn settled_exactly(devnet: &Devnet, wallet_before: u128) -> u64 {
    let dev = devnet.chain.as_ref().unwrap();
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let charged = client_account(devnet).await["charged_tokens"]
        .as_u64()
        .unwrap();
    wait_until("the charge and the payout on chain", || async {
        let (used, _, _, _, paid, _) = on_chain(devnet).await;
        used == charged && paid == charged
    })
    .await;
    let (_, balance, wallet, commission, _, _) = on_chain(devnet).await;
    let t = u128::from(charged);
    assert_eq!(
        balance,
        CLIENT_DEPOSIT.0 - t * price,
        "client paid tokens × price"
    );
    assert_eq!(wallet, wallet_before + t * fee, "worker got tokens × fee");
    assert_eq!(commission, t * (price - fee), "the proxy kept the rest");
    charged
}

fn short_chat(max_tokens: u64) -> Value {
    json!({"model": "mock-model", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_beyond_what_a_request_could_use_are_capped() {
    // The audit's attack: a `max_tokens: 1` request answered with a usage of 100,000,000
    // tokens got the client charged 2 TON. The backend here claims that in `total_tokens` and
    // in its counts, and in a count that wraps an i64 sum.
    let dir = tempfile::tempdir().unwrap();
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Json {
            content: "ok".into(),
            usage: json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 100_000_000}),
        },
    )
    .await
    .unwrap();
    let devnet = paid_devnet_on(dir.path(), &backend).await;
    let (_, _, wallet_before, _, _, _) = on_chain(&devnet).await;
    let http = TestHttp::new();
    let answer = http
        .post(devnet.client_addr(), "/v1/chat/completions", &short_chat(1))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A lying total is not believed: the counts are 5 + 1. (The body reaches the app as the
    // backend wrote it; the charge is what the proxy's books say.)
    assert_eq!(client_account(&devnet).await["charged_tokens"], 6);

    // Counts beyond the bound (and one that would wrap a sum) are cut to the reservation:
    // the body's bytes, the template's allowance and max_tokens. The request is sealed, so the
    // proxy sees the body's bytes only as its padded size.
    let body = short_chat(1);
    let request = cocoon_proto::HttpRequest {
        method: "POST".into(),
        url: "/v1/chat/completions".into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![cocoon_proto::HttpHeader {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        payload: serde_json::to_vec(&body).unwrap(),
    };
    use cocoon_proto::tl::TlBoxed as _;
    let padded =
        cocoon_attest::sealed::Padding::requests().request_bucket(12 + request.to_bytes().len());
    let bound = cocoon_proxy::billing::sealed_bound(
        "/v1/chat/completions",
        padded + cocoon_attest::sealed::REQUEST_OVERHEAD,
        1,
    )
    .raw_tokens();
    for usage in [
        json!({"prompt_tokens": 100_000_000, "completion_tokens": 1}),
        json!({"prompt_tokens": i64::MAX, "completion_tokens": i64::MAX}),
    ] {
        backend.set_script(Script::Json {
            content: "ok".into(),
            usage,
        });
        let before = client_account(&devnet).await["charged_tokens"]
            .as_u64()
            .unwrap();
        let answer = http
            .post(devnet.client_addr(), "/v1/chat/completions", &body)
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let charged = client_account(&devnet).await["charged_tokens"]
            .as_u64()
            .unwrap();
        let billed = charged - before;
        assert!(
            billed > 0 && billed <= bound + 64,
            "charged {billed}, at most the bound {bound} (+ the client's own fields)"
        );
    }
    let workers = devnet.proxy_stats().await["workers"].clone();
    assert_eq!(
        workers[0]["overreported"], 2,
        "counted against the worker: {workers}"
    );
    // And the money adds up on chain.
    settled_exactly(&devnet, wallet_before).await;
    devnet.stop().await;
}

/// A backend streaming 300 parts, 100 ms apart, behind a paid devnet in `dir`.
async fn long_stream_devnet(dir: &std::path::Path) -> (ScriptedBackend, Devnet) {
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Stream {
            parts: 300,
            delay: Duration::from_millis(100),
        },
    )
    .await
    .unwrap();
    let devnet = paid_devnet_on(dir, &backend).await;
    (backend, devnet)
}

/// Starts a streamed request and reads until at least three parts arrived; returns the stream
/// and the parts received.
async fn stream_three_parts(devnet: &Devnet) -> (cocoon_testkit::http::HttpStream, usize) {
    let mut body = short_chat(1000);
    body["stream"] = json!(true);
    let mut stream = TestHttp::new()
        .post_stream(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap();
    let mut received = 0;
    while received < 3 {
        let chunk = stream.next_chunk().await.expect("the stream runs");
        received += String::from_utf8_lossy(&chunk).matches("part").count();
    }
    (stream, received)
}

/// Waits until the proxy billed a cut stream (nothing reserved, something charged); returns
/// the tokens charged.
async fn billed_after_cut(devnet: &Devnet) -> u64 {
    wait_until("the proxy billed the cut stream", || async {
        let account = client_account(devnet).await;
        account["reserved_tokens"] == 0 && account["charged_tokens"].as_u64() > Some(0)
    })
    .await;
    client_account(devnet).await["charged_tokens"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_costs_only_what_it_delivered_and_is_paid_for_it() {
    // R2: the client pays for the parts it got, the worker is paid for them, nothing more.
    let dir = tempfile::tempdir().unwrap();
    let (_backend, mut devnet) = long_stream_devnet(dir.path()).await;
    let (_, _, wallet_before, _, _, _) = on_chain(&devnet).await;
    let (mut stream, mut received) = stream_three_parts(&devnet).await;
    devnet.workers[0].kill();
    let rest = stream.rest().await;
    received += String::from_utf8_lossy(&rest).matches("part").count();
    assert!(
        String::from_utf8_lossy(&rest).contains("error"),
        "the stream ends with an error event: {}",
        String::from_utf8_lossy(&rest)
    );
    let charged = billed_after_cut(&devnet).await;
    assert!(
        charged >= received as u64 && charged < 300,
        "charged {charged} for {received} delivered parts of 300"
    );
    // Client paid = worker earned + commission, to the nano-TON: the worker whose link broke
    // is paid for what it delivered (before, its earnings went to an "unknown-worker" key
    // that nobody could be paid from).
    assert_eq!(settled_exactly(&devnet, wallet_before).await, charged);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_its_timeout_is_billed_for_what_it_delivered() {
    // The audit: 10 parts 0.5 s apart with `"timeout": 4.6` → 9 parts received, nothing billed.
    let dir = tempfile::tempdir().unwrap();
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Stream {
            parts: 10,
            delay: Duration::from_millis(500),
        },
    )
    .await
    .unwrap();
    let devnet = paid_devnet_on(dir.path(), &backend).await;
    let (_, _, wallet_before, _, _, _) = on_chain(&devnet).await;
    let mut body = short_chat(100);
    body["stream"] = json!(true);
    body["timeout"] = json!(4.6);
    let answer = TestHttp::new()
        .post(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap();
    let parts = answer.text().matches("part").count();
    assert!((7..10).contains(&parts), "{parts} parts: {}", answer.text());
    let account = client_account(&devnet).await;
    assert_eq!(account["reserved_tokens"], 0, "{account}");
    let charged = account["charged_tokens"].as_u64().unwrap();
    assert!(
        charged >= parts as u64,
        "a token per delivered part at least: charged {charged} for {parts} parts"
    );
    // The worker was told the bound: its copy asks for max_tokens 100.
    assert_eq!(backend.bodies()[0]["max_tokens"], 100);
    assert_eq!(settled_exactly(&devnet, wallet_before).await, charged);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_counts_the_prompt_and_every_choice_against_the_stake() {
    // Honest `max_tokens: 1` requests with large prompts were admitted against a balance for
    // one token. The devnet's client has a 0.1 TON stake: 5,000,000 tokens at 20 nano-TON.
    let dir = tempfile::tempdir().unwrap();
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Json {
            content: "ok".into(),
            usage: json!({"prompt_tokens": 5, "completion_tokens": 1}),
        },
    )
    .await
    .unwrap();
    let devnet = paid_devnet_on(dir.path(), &backend).await;
    let http = TestHttp::new();
    let stake_tokens = 5_000_000u64;
    // A body without max_tokens reaches the worker with the default bound set.
    let answer = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(backend.bodies()[0]["max_tokens"], 4096);
    // max_tokens × n beyond the stake is refused before it runs, whatever the balance.
    let mut many = short_chat(stake_tokens / 100);
    many["n"] = json!(128);
    let refused = http
        .post(devnet.client_addr(), "/v1/chat/completions", &many)
        .await
        .unwrap();
    assert_eq!(refused.status, 402, "{}", refused.text());
    // So is a prompt whose bytes alone exceed it (one byte per token at most).
    let big = "x".repeat(stake_tokens as usize + 1);
    let refused = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &json!({"model": "mock-model", "max_tokens": 1, "messages": [{"role": "user", "content": big}]}),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 402, "{}", refused.text());
    assert_eq!(backend.bodies().len(), 1, "neither reached the backend");
    let account = client_account(&devnet).await;
    assert_eq!(account["reserved_tokens"], 0, "{account}");
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_stream_is_billed_and_its_worker_stops() {
    // Before, the proxy released the reservation (billing nothing), counted the worker's slot
    // free and left the worker generating for nobody.
    let dir = tempfile::tempdir().unwrap();
    let (backend, mut devnet) = long_stream_devnet(dir.path()).await;
    let (_stream, received) = stream_three_parts(&devnet).await;
    assert_eq!(backend.open_streams(), 1);
    devnet.client.abort();
    let charged = billed_after_cut(&devnet).await;
    assert!(
        charged >= received as u64,
        "charged {charged} for {received}+ parts"
    );
    assert!(charged < 300, "not the whole answer: {charged}");
    // The worker was told to stop: it dropped the backend stream and ended the request, so the
    // proxy counts its slot free again.
    wait_until("the worker stopped generating", || async {
        backend.open_streams() == 0 && devnet.proxy_stats().await["workers"][0]["running"] == 0
    })
    .await;
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_client_gets_its_final_charge_with_the_refund_grant() {
    // Before, nothing answered a client's close: what it owed stayed uncharged until the owner
    // forced the refund after the delay, and the proxy paid its worker from its own funds.
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::builder()
        .mock(MockBackendConfig::default())
        .local_chain(dir.path(), &dir.path().join("prices.toml"), SETTLE, COMMIT)
        .charge_threshold(u64::MAX)
        .start()
        .await
        .expect("paid devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let price = dev.params.price_per_token.0;
    let http = TestHttp::new();
    let answer = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("owe me", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let owed = client_account(&devnet).await["charged_tokens"]
        .as_u64()
        .unwrap();
    assert!(owed > 0);
    two_settle_rounds(&devnet).await;
    assert_eq!(
        on_chain(&devnet).await.0,
        0,
        "nothing charged yet: the threshold is high"
    );

    // The owner closes its contract.
    let contract = dev.client_contract(dev.client.address()).unwrap();
    let close = cocoon_ton::ton::WalletMessage {
        to: contract.clone(),
        value: 7 * cocoon_ton::coins::NANO_PER_TON / 10,
        bounce: true,
        body: std::sync::Arc::new(
            cocoon_ton::cocoon::ClientMessage::RequestRefund {
                query_id: 7,
                send_excesses_to: dev.client.address().clone(),
            }
            .to_cell()
            .unwrap(),
        ),
        state_init: None,
    };
    cocoon_ton::ton::TonNetwork::send(dev.network.as_ref(), &dev.client, &[close])
        .await
        .unwrap();
    wait_until(
        "the refund grant closes the contract with the final charge",
        || async {
            let state = dev.cocoon.client(&contract).await.unwrap().unwrap();
            state.state == cocoon_ton::cocoon::State::Closed && state.tokens_used == owed
        },
    )
    .await;
    let proxy = dev
        .cocoon
        .proxy(&dev.proxy_contract().unwrap())
        .await
        .unwrap()
        .unwrap();
    let fee = dev.params.worker_fee_per_token.0;
    assert_eq!(
        proxy.balance.0,
        u128::from(owed) * (price - fee),
        "the commission"
    );
    // A closed client is not served.
    let refused = http
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("more", false),
        )
        .await
        .unwrap();
    assert_ne!(refused.status, 200, "{}", refused.text());
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_packet_limit_fails_fast_and_costs_nothing() {
    // Before, the worker sent a non-streamed answer as one packet; over the 16 MiB packet limit
    // the link refused it, nothing reached the proxy, and the client got a 504 after its
    // timeout.
    let dir = tempfile::tempdir().unwrap();
    let backend = ScriptedBackend::start(
        "mock-model",
        Script::Json {
            content: "y".repeat(20 << 20),
            usage: json!({"prompt_tokens": 5, "completion_tokens": 7}),
        },
    )
    .await
    .unwrap();
    let devnet = paid_devnet_on(dir.path(), &backend).await;
    let started = std::time::Instant::now();
    let answer = TestHttp::new()
        .post(devnet.client_addr(), "/v1/chat/completions", &short_chat(7))
        .await
        .unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(answer.text().contains("stream"), "{}", answer.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait for a timeout"
    );
    let account = client_account(&devnet).await;
    assert_eq!(account["charged_tokens"], 0, "{account}");
    assert_eq!(account["reserved_tokens"], 0, "{account}");
    devnet.stop().await;
}
