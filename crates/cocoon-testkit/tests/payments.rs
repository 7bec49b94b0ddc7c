//! Money end to end on the local chain: a chat request through a paid devnet moves nano-TON from
//! the client contract to the worker's wallet with the proxy keeping the commission; a failed
//! request costs nothing; a restored (older) ledger file is refused at start.

use std::path::Path;
use std::time::Duration;

use cocoon_testkit::devchain::{CLIENT_DEPOSIT, WORKER_FUNDS};
use cocoon_testkit::http::{sse_events, TestHttp};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use cocoon_ton::Chain;
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

/// (client contract tokens_used, client contract balance, worker wallet, proxy earned, proxy
/// paid_out, proxy committed seqno)
async fn on_chain(devnet: &Devnet) -> (u64, u128, u128, u128, u128, u64) {
    let dev = devnet.chain.as_ref().expect("paid devnet");
    let chain = &dev.chain;
    let client = chain
        .client(&dev.client_contract(dev.client.address()))
        .await
        .unwrap()
        .expect("client contract");
    let proxy = chain
        .proxy(&dev.proxy_contract())
        .await
        .unwrap()
        .expect("proxy contract");
    let worker = chain.balance(dev.workers[0].address()).await.unwrap();
    (
        client.tokens_used,
        client.balance,
        worker.0,
        proxy.earned,
        proxy.paid_out,
        proxy.seqno,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_request_moves_nano_ton_and_a_failed_one_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    let (price, fee) = (
        u128::from(dev.params.price_per_token),
        u128::from(dev.params.worker_fee_per_token),
    );
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
        let (used, _, wallet, _, paid_out, seqno) = on_chain(&devnet).await;
        used == tokens
            && paid_out == u128::from(tokens) * fee
            && wallet > WORKER_FUNDS.0
            && seqno > 0
    })
    .await;
    let (used, balance, wallet, earned, paid_out, _) = on_chain(&devnet).await;
    let t = u128::from(tokens);
    assert_eq!(used, tokens);
    assert_eq!(
        balance,
        CLIENT_DEPOSIT.0 - t * price,
        "client paid tokens × price"
    );
    assert_eq!(wallet, WORKER_FUNDS.0 + t * fee, "worker got tokens × fee");
    assert_eq!(earned, t * price);
    assert_eq!(paid_out, t * fee);
    let stats = devnet.proxy_stats().await;
    assert_eq!(
        stats["ledger"]["commission_nano"].as_u64(),
        Some(u64::try_from(t * (price - fee)).unwrap()),
        "the proxy keeps tokens × (price − fee): {}",
        stats["ledger"]
    );

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
    tokio::time::sleep(SETTLE * 5).await;
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
        (stranger, String::new(), "no client contract"),
    ] {
        let mut config = devnet.client_config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.owner_address = owner;
        config.secret = secret;
        let (_trigger, shutdown) = cocoon_net::ShutdownTrigger::new();
        let client = cocoon_client::start(config, shutdown).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = http.get(client.api_addr, "/stats").await.unwrap().json();
        assert_eq!(stats["connections"]["proxies"], 0, "{stats}");
        let answer = http
            .post(
                client.api_addr,
                "/v1/chat/completions",
                &chat("free lunch?", false),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert!(answer.text().contains(why), "{}", answer.text());
    }
    // Nothing was charged to anyone.
    let ledger = &devnet.proxy_stats().await["ledger"];
    assert_eq!(ledger["charged_nano"], 0, "{ledger}");
    devnet.stop().await;
}
