//! The daemons on a real network's API: a paid devnet whose proxy and client reach the chain
//! only through toncenter's v2 API (`FakeToncenter`, with the embedded TVM underneath, so what
//! they send really executes from real wallet-v4r2 contracts that pay their own fees). A chat
//! request is charged to the client contract, the worker is paid, the proxy's commission and
//! its save-state commit land, to the nano-TON; a new client deploys its contract and
//! registers (long authorisation) through the API too.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind};
use cocoon_client::{ChainConfig, ClientConfig, NetworkKind};
use cocoon_net::ShutdownTrigger;
use cocoon_testkit::devchain::{DevChain, CLIENT_DEPOSIT};
use cocoon_testkit::http::TestHttp;
use cocoon_testkit::{wait_until, Devnet, FakeToncenter, MockBackendConfig};
use cocoon_ton::Coins;
use serde_json::json;

const SETTLE: Duration = Duration::from_millis(200);

fn chat() -> serde_json::Value {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "over the API"}]})
}

async fn devnet_over(dir: &Path, url: &str) -> Devnet {
    Devnet::builder()
        .mock(MockBackendConfig::default())
        .local_chain(dir, &dir.join("prices.toml"), SETTLE, SETTLE * 2)
        .toncenter(url)
        .start()
        .await
        .expect("the devnet starts over toncenter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_devnet_through_the_toncenter_api_moves_exact_money() {
    let dir = tempfile::tempdir().unwrap();
    let models = ["mock-model".to_string()];
    let dev = DevChain::open(dir.path(), &dir.path().join("prices.toml"), 1, &models)
        .await
        .unwrap();
    let toncenter = FakeToncenter::start(
        cocoon_tvm::LocalNetwork::open(dev.ton_dir()).expect("the devnet's network"),
    )
    .await
    .unwrap();
    let devnet = devnet_over(dir.path(), &toncenter.url()).await;
    assert_eq!(
        devnet.proxy_config.payments.as_ref().unwrap().chain,
        cocoon_proxy::payments::ChainKind::Toncenter
    );
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    let worker_wallet = dev.balance(dev.workers[0].address()).await.unwrap();

    let answer = TestHttp::new()
        .post(devnet.client_addr(), "/v1/chat/completions", &chat())
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();

    let client_contract = dev.client_contract(dev.client.address()).unwrap();
    let worker_contract = dev.worker_contract(dev.workers[0].address()).unwrap();
    wait_until("charge, payout and a commit through the API", || async {
        let client = dev.cocoon.client(&client_contract).await.unwrap().unwrap();
        let worker = dev.cocoon.worker(&worker_contract).await.unwrap().unwrap();
        let commits = dev.proxy_commits().await.unwrap();
        client.tokens_used == tokens && worker.tokens == tokens && !commits.is_empty()
    })
    .await;
    let t = u128::from(tokens);
    let client = dev.cocoon.client(&client_contract).await.unwrap().unwrap();
    assert_eq!(client.balance.0, CLIENT_DEPOSIT.0 - t * price);
    let proxy = dev
        .cocoon
        .proxy(&dev.proxy_contract().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proxy.balance.0, t * (price - fee), "commission");
    // The worker's wallet is still code-less (it sent nothing): it got tokens × fee, less the
    // storage it paid on receipt (a few nano-TON at most).
    let now = dev.balance(dev.workers[0].address()).await.unwrap();
    assert!(
        now <= worker_wallet + t * fee && now + 1_000 > worker_wallet + t * fee,
        "{worker_wallet} -> {now}, earned {}",
        t * fee
    );
    // The proxy's wallet is a real wallet v4r2 now, deployed by its first external.
    let proxy_wallet =
        cocoon_ton::ton::TonNetwork::account(dev.network.as_ref(), dev.proxy.address())
            .await
            .unwrap();
    assert_eq!(proxy_wallet.status, cocoon_ton::ton::Status::Active);

    // A new client, on the API alone: deploys, registers (long), is served.
    let key = dir.path().join("api-client.key");
    let seed = cocoon_ton::keyfile::read_or_create(&key).unwrap();
    let wallet = cocoon_ton::Wallet::from_seed(&seed);
    toncenter
        .fund(wallet.address(), 20 * 1_000_000_000)
        .unwrap();
    let mut config = ClientConfig::new(
        vec![devnet.proxy.client_addr.to_string()],
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.max_reconnect_secs = 0.2;
    config.secret = "api secret".into();
    let mut chain = ChainConfig::local(dir.path().join("unused"), key.clone());
    chain.network = NetworkKind::Toncenter;
    chain.local_dir = None;
    chain.toncenter_url = Some(toncenter.url());
    chain.root_address = Some(dev.cocoon.root_address().to_string());
    chain.allow_deploy = true;
    chain.top_up_amount = Coins::ton(2);
    chain.max_top_up = Coins::ton(2);
    config.chain = Some(chain);
    let (trigger, shutdown) = ShutdownTrigger::new();
    let client = cocoon_client::start(config, shutdown).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = TestHttp::new()
            .post(client.api_addr, "/v1/chat/completions", &chat())
            .await
            .unwrap();
        if answer.status == 200 || tokio::time::Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.status, 200, "{}", answer.text());
    let contract = dev.client_contract(wallet.address()).unwrap();
    let data = dev.cocoon.client(&contract).await.unwrap().unwrap();
    assert_eq!(
        data.balance.0 + u128::from(data.tokens_used) * price,
        2 * 1_000_000_000
    );
    trigger.kill();
    devnet.stop().await;
}
