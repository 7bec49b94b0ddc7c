//! The client on chain (`[chain]`), against a paid devnet: a client whose contract does not
//! exist deploys it (only when allowed), registers on chain (long authorisation) and is served
//! and charged; after its secret changes it puts the new hash on chain and registers once more,
//! and the next connection authorises short; it tops its contract up when low, never past
//! `max_top_up`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind};
use cocoon_client::{ChainConfig, ClientConfig, RunningClient};
use cocoon_net::ShutdownTrigger;
use cocoon_testkit::devchain::DevChain;
use cocoon_testkit::http::{get_json, TestHttp};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use cocoon_ton::cocoon::{ClientMessage, ClientPayload, ProxyMessage};
use cocoon_ton::ton::{TonNetwork, WalletMessage};
use cocoon_ton::{Address, Coins, Wallet};
use serde_json::json;

const TON: u128 = 1_000_000_000;

async fn paid_devnet(dir: &Path) -> Devnet {
    Devnet::builder()
        .mock(MockBackendConfig::default())
        .local_chain(
            dir,
            &dir.join("prices.toml"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
        .start()
        .await
        .expect("paid devnet starts")
}

fn client_config(devnet: &Devnet, key: &Path, secret: &str) -> ClientConfig {
    let dev = devnet.chain.as_ref().unwrap();
    let mut config = ClientConfig::new(
        vec![devnet.proxy.client_addr.to_string()],
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.max_reconnect_secs = 0.2;
    config.secret = secret.to_string();
    let mut chain = ChainConfig::local(dev.ton_dir(), key.to_path_buf());
    chain.allow_deploy = true;
    chain.top_up_amount = Coins::ton(2);
    chain.max_top_up = Coins::ton(5);
    chain.balance_check_secs = 0.1;
    config.chain = Some(chain);
    config
}

/// A worker on the devnet's chain: mock-model from `backend_url`, paid to `owner`, its node
/// wallet's key in `key`, allowed to deploy its worker contract.
fn chain_worker_config(
    dev: &DevChain,
    proxies: Vec<String>,
    backend_url: &str,
    owner: &Address,
    key: std::path::PathBuf,
) -> cocoon_worker::WorkerConfig {
    use cocoon_attest::{TeeConfig, TeeKind};
    let mut config = cocoon_worker::WorkerConfig::new(
        proxies,
        backend_url,
        "mock-model",
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.http_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.owner_address = owner.to_hex();
    config.max_reconnect_secs = 0.2;
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

/// Sends one owner operation to the devnet's root.
async fn root_op(dev: &DevChain, body: cocoon_ton::cocoon::RootMessage) {
    let message = WalletMessage {
        to: dev.cocoon.root_address().clone(),
        value: TON / 10,
        bounce: true,
        body: std::sync::Arc::new(body.to_cell().unwrap()),
        state_init: None,
    };
    dev.network.send(&dev.owner, &[message]).await.unwrap();
}

/// The root owner registers `entry` (`ip:port`, or `workers clients`).
async fn register_proxy(dev: &DevChain, query_id: u64, entry: &str) {
    root_op(
        dev,
        cocoon_ton::cocoon::RootMessage::RegisterProxy {
            query_id,
            entry: cocoon_ton::cocoon::ProxyEntry::new(entry).unwrap(),
        },
    )
    .await;
}

async fn start(config: ClientConfig) -> (RunningClient, ShutdownTrigger) {
    let (trigger, shutdown) = ShutdownTrigger::new();
    let client = cocoon_client::start(config, shutdown)
        .await
        .expect("the client starts");
    (client, trigger)
}

async fn chat_once(client: &RunningClient) -> (u16, serde_json::Value) {
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]});
    let answer = TestHttp::new()
        .post(client.api_addr, "/v1/chat/completions", &body)
        .await
        .unwrap();
    (answer.status, answer.json())
}

/// One chat request through the devnet's own client; it must be answered.
async fn devnet_chat_ok(devnet: &Devnet) {
    let answer = devnet
        .client_http()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// A chat request once the client's first connection attempt is over (served, or failed).
async fn chat(client: &RunningClient) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = chat_once(client).await;
        let waiting = status == 503 && body.to_string().contains("not connected to any proxy yet");
        if !waiting || tokio::time::Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Register payloads from `contract` in the proxy contract's history.
async fn registrations(dev: &DevChain, contract: &Address) -> usize {
    let proxy = dev.proxy_contract().unwrap();
    let mut count = 0;
    let mut after = 0;
    loop {
        let page = dev.network.transactions(&proxy, after, 100).await.unwrap();
        for tx in &page {
            after = tx.lt;
            if tx.source.as_ref() != Some(contract) {
                continue;
            }
            if let Ok(ProxyMessage::ClientRequest {
                payload: Some(ClientPayload::Register { .. }),
                ..
            }) = ProxyMessage::from_cell(&tx.body)
            {
                count += 1;
            }
        }
        if page.len() < 100 {
            return count;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_deploys_registers_is_served_and_keeps_its_secret_and_balance() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    let key = dir.path().join("new-client.key");
    let seed = cocoon_ton::keyfile::read_or_create(&key).unwrap();
    let wallet = Wallet::from_seed(&seed);
    dev.network.mint(wallet.address(), 50 * TON).unwrap();
    let contract = dev.client_contract(wallet.address()).unwrap();
    assert!(dev.cocoon.client(&contract).await.unwrap().is_none());

    // Not allowed to deploy: refused, with what to do, and nothing spent.
    let mut refused = client_config(&devnet, &key, "first secret");
    refused.chain.as_mut().unwrap().allow_deploy = false;
    let (client, trigger) = start(refused).await;
    let (status, body) = chat(&client).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("allow_deploy = true"), "{body}");
    trigger.kill();
    assert_eq!(dev.balance(wallet.address()).await.unwrap(), 50 * TON);
    assert!(dev.cocoon.client(&contract).await.unwrap().is_none());

    // Allowed: deploy with the first deposit, register (long), served, charged.
    let (client, trigger) = start(client_config(&devnet, &key, "first secret")).await;
    let (status, body) = chat(&client).await;
    assert_eq!(status, 200, "{body}");
    let tokens = body["usage"]["total_tokens"].as_u64().unwrap();
    let data = dev.cocoon.client(&contract).await.unwrap().unwrap();
    assert_eq!(registrations(dev, &contract).await, 1, "long authorisation");
    let price = dev.params.price_per_token.0;
    wait_until("the charge on chain", || async {
        dev.cocoon
            .client(&contract)
            .await
            .unwrap()
            .unwrap()
            .tokens_used
            == tokens
    })
    .await;
    let charged = dev.cocoon.client(&contract).await.unwrap().unwrap();
    assert_eq!(data.secret_hash, sha(b"first secret"));
    assert_eq!(charged.balance.0, 2 * TON - u128::from(tokens) * price);
    let stats = get_json(client.api_addr, "/stats").await;
    assert_eq!(stats["chain"]["deposited_nano"], 2 * TON as u64, "{stats}");
    assert_eq!(
        stats["chain"]["client_contracts"][0],
        contract.to_hex(),
        "{stats}"
    );
    trigger.kill();

    // A new secret: the hash on chain follows, one more registration; then short.
    let (client, trigger) = start(client_config(&devnet, &key, "second secret")).await;
    assert_eq!(chat(&client).await.0, 200);
    let data = dev.cocoon.client(&contract).await.unwrap().unwrap();
    assert_eq!(data.secret_hash, sha(b"second secret"));
    assert_eq!(registrations(dev, &contract).await, 2);
    trigger.kill();
    let (client, trigger) = start(client_config(&devnet, &key, "second secret")).await;
    assert_eq!(chat(&client).await.0, 200);
    assert_eq!(
        registrations(dev, &contract).await,
        2,
        "short authorisation: no register"
    );

    // Low: the owner takes everything above the stake out (once every charge is on chain);
    // this client process tops up 2 TON, again 2 TON, and a third time it may not: 6 TON would
    // pass its max_top_up of 5.
    let key_hex = contract.to_hex();
    wait_until("every charge on chain", || async {
        let ledger =
            devnet.proxy_stats().await["ledger"]["clients"][&key_hex]["charged_tokens"].clone();
        ledger.as_u64()
            == Some(
                dev.cocoon
                    .client(&contract)
                    .await
                    .unwrap()
                    .unwrap()
                    .tokens_used,
            )
    })
    .await;
    let withdraw = |query_id: u64| WalletMessage {
        to: contract.clone(),
        value: 7 * TON / 10,
        bounce: true,
        body: std::sync::Arc::new(
            ClientMessage::Withdraw {
                query_id,
                send_excesses_to: wallet.address().clone(),
            }
            .to_cell()
            .unwrap(),
        ),
        state_init: None,
    };
    dev.network.send(&wallet, &[withdraw(1)]).await.unwrap();
    let stake = data.stake.0;
    wait_until("a top-up", || async {
        dev.cocoon
            .client(&contract)
            .await
            .unwrap()
            .unwrap()
            .balance
            .0
            == stake + 2 * TON
    })
    .await;
    dev.network.send(&wallet, &[withdraw(2)]).await.unwrap();
    wait_until("a second top-up", || async {
        dev.cocoon
            .client(&contract)
            .await
            .unwrap()
            .unwrap()
            .balance
            .0
            == stake + 2 * TON
    })
    .await;
    dev.network.send(&wallet, &[withdraw(3)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        dev.cocoon
            .client(&contract)
            .await
            .unwrap()
            .unwrap()
            .balance
            .0,
        stake,
        "a third top-up would pass max_top_up (5 TON): none"
    );
    let stats = get_json(client.api_addr, "/stats").await;
    assert_eq!(stats["chain"]["deposited_nano"], 4 * TON as u64, "{stats}");
    trigger.kill();
    devnet.stop().await;
}

fn sha(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// A worker with `[chain]` at a proxy that never pays on its own: it deploys its worker
/// contract from its node wallet after `connectedToProxy`, serves, and submits the payout the
/// proxy signed for it (repacked with its node wallet as excess address); the contract pays the
/// owner exactly tokens × fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_deploys_its_contract_and_submits_its_payout() {
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
        .payout_threshold(u64::MAX)
        .start()
        .await
        .expect("paid devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let key = dir.path().join("node-wallet.key");
    let node = Wallet::from_seed(&cocoon_ton::keyfile::read_or_create(&key).unwrap());
    dev.network.mint(node.address(), 5 * TON).unwrap();
    let owner = Wallet::from_seed(&[77; 32]).address().clone();
    let contract = dev.worker_contract(&owner).unwrap();
    assert!(dev.cocoon.worker(&contract).await.unwrap().is_none());

    let backend = cocoon_testkit::MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let mut config = chain_worker_config(
        dev,
        vec![devnet.proxy.worker_addr.to_string()],
        &backend.url(),
        &owner,
        key,
    );
    config.payouts_dir = Some(dir.path().join("node-payouts"));
    config.payout_check_secs = 0.1;
    if let Some(chain) = &mut config.chain {
        chain.submit_payout_tokens = 1;
    }
    let (trigger, shutdown) = ShutdownTrigger::new();
    let _worker = cocoon_worker::start(config, shutdown).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "pay me"}]});
    let answer = loop {
        let answer = TestHttp::new()
            .post(devnet.client_addr(), "/v1/chat/completions", &body)
            .await
            .unwrap();
        if answer.status == 200 || tokio::time::Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(
        dev.cocoon.worker(&contract).await.unwrap().is_some(),
        "deployed"
    );
    wait_until("the worker's own payout on chain", || async {
        dev.cocoon.worker(&contract).await.unwrap().unwrap().tokens == tokens
    })
    .await;
    let fee = dev.params.worker_fee_per_token.0;
    assert_eq!(
        dev.balance(&owner).await.unwrap(),
        u128::from(tokens) * fee,
        "the owner got exactly tokens × fee"
    );
    trigger.kill();
    devnet.stop().await;
}

/// A client with `[chain]` and no configured proxies uses the root's registry, and trusts only
/// the proxy images the root lists: once the root drops the proxy's image, a new connection
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_finds_its_proxy_in_the_root_registry_and_trusts_only_listed_images() {
    use cocoon_ton::cocoon::root::HashList;
    use cocoon_ton::cocoon::RootMessage;
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    let key = cocoon_testkit::devchain::key_path(dir.path(), "client");
    let mut config = client_config(&devnet, &key, &dev.client_secret);
    config.proxies = Vec::new();
    config.chain.as_mut().unwrap().root_refresh_secs = 0.2;

    // Nothing registered yet: refused at start, saying so.
    let (_trigger, shutdown) = ShutdownTrigger::new();
    let refused = cocoon_client::start(config.clone(), shutdown)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("registers none"), "{refused}");

    let entry = format!("{} {}", devnet.proxy.worker_addr, devnet.proxy.client_addr);
    register_proxy(dev, 1, &entry).await;
    let (client, trigger) = start(config.clone()).await;
    let (status, body) = chat(&client).await;
    assert_eq!(status, 200, "{body}");
    let stats = get_json(client.api_addr, "/stats").await;
    assert_eq!(
        stats["connections"]["configured"][0]["address"],
        devnet.proxy.client_addr.to_string(),
        "{stats}"
    );
    let running = (client, trigger);

    // The root no longer lists the proxy's image: a new client does not trust it, and the
    // running one closes its connection at its next read of the root.
    let image = cocoon_attest::tdx::TdxMeasurements::zero().image_hash();
    root_op(
        dev,
        RootMessage::AddHash {
            query_id: 2,
            list: HashList::Proxy,
            hash: [7; 32],
        },
    )
    .await;
    root_op(
        dev,
        RootMessage::DelHash {
            query_id: 3,
            list: HashList::Proxy,
            hash: image,
        },
    )
    .await;
    let (client, trigger) = start(config).await;
    let (status, body) = chat(&client).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains(&cocoon_attest::hex(&image)),
        "the refusal names the image: {body}"
    );
    trigger.kill();
    wait_until("the running client to drop the proxy", || async {
        chat_once(&running.0).await.0 == 503
    })
    .await;

    // Allowed again: the running client connects again by itself.
    root_op(
        dev,
        RootMessage::AddHash {
            query_id: 4,
            list: HashList::Proxy,
            hash: image,
        },
    )
    .await;
    wait_until("the running client to trust the proxy again", || async {
        chat_once(&running.0).await.0 == 200
    })
    .await;
    running.1.kill();
    devnet.stop().await;
}

/// A client that takes its proxies from the root follows the registry while it runs: a proxy
/// registered later is connected without a restart (an unreachable one is swapped for it), and
/// an unregistered one is drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_follows_the_root_registry_live() {
    use cocoon_ton::cocoon::RootMessage;
    let dir = tempfile::tempdir().unwrap();
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    // A registered proxy nobody answers for.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    register_proxy(dev, 1, &dead.to_string()).await;
    let key = cocoon_testkit::devchain::key_path(dir.path(), "client");
    let mut config = client_config(&devnet, &key, &dev.client_secret);
    config.proxies = Vec::new();
    config.proxy_connections = 1;
    config.chain.as_mut().unwrap().root_refresh_secs = 0.2;
    let (client, trigger) = start(config).await;
    let (status, body) = chat_once(&client).await;
    assert_eq!(
        status, 503,
        "only an unreachable proxy is registered: {body}"
    );

    // The real proxy is registered: the client finds it at its next read of the root and,
    // keeping one connection, swaps the unreachable proxy for it.
    let entry = format!("{} {}", devnet.proxy.worker_addr, devnet.proxy.client_addr);
    register_proxy(dev, 2, &entry).await;
    let http = TestHttp::new();
    wait_until(
        "the client to serve through the newly registered proxy",
        || async { chat_once(&client).await.0 == 200 },
    )
    .await;
    // With [chain], /v1/models says what a token costs: the root's price at the coefficient.
    let models = get_json(client.api_addr, "/v1/models").await;
    let price = dev.params.price_per_token.0 as u64;
    assert_eq!(
        models["data"][0]["cocoon"]["price_per_token_nano"], price,
        "{models}"
    );
    let stats = get_json(client.api_addr, "/stats").await;
    let kept: Vec<&serde_json::Value> = stats["connections"]["configured"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["retiring"] == false)
        .collect();
    assert_eq!(kept.len(), 1, "one proxy kept: {stats}");
    assert_eq!(
        kept[0]["address"],
        devnet.proxy.client_addr.to_string(),
        "{stats}"
    );

    // Unregistered: drained, and no request goes there any more.
    root_op(
        dev,
        RootMessage::UnregisterProxy {
            query_id: 3,
            seqno: 2,
        },
    )
    .await;
    wait_until("the client to drain the unregistered proxy", || async {
        let stats = get_json(client.api_addr, "/stats").await;
        stats["connections"]["proxies"] == 0
    })
    .await;
    let answer = http
        .post(
            client.api_addr,
            "/v1/chat/completions",
            &json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text());
    trigger.kill();
    devnet.stop().await;
}

/// A worker with `[chain]` and no `proxies` serves the proxies the root registers and follows
/// the registry: registered later, the proxy gets the worker; unregistered, its link is drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_the_root_registry_live() {
    use cocoon_ton::cocoon::RootMessage;
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
        .start()
        .await
        .expect("paid devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let key = dir.path().join("node-wallet.key");
    let node = Wallet::from_seed(&cocoon_ton::keyfile::read_or_create(&key).unwrap());
    dev.network.mint(node.address(), 5 * TON).unwrap();
    let backend = cocoon_testkit::MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let owner = Wallet::from_seed(&[78; 32]).address().clone();
    let mut config = chain_worker_config(dev, Vec::new(), &backend.url(), &owner, key);
    if let Some(chain) = &mut config.chain {
        chain.root_refresh_secs = 0.2;
    }

    // Nothing registered: refused at start, saying so.
    let refused = cocoon_worker::start(config.clone(), ShutdownTrigger::new().1)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("registers none"), "{refused}");

    // A registered address nobody answers at; the worker starts and keeps dialling it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    register_proxy(dev, 1, &dead.to_string()).await;
    let (trigger, shutdown) = ShutdownTrigger::new();
    let worker = cocoon_worker::start(config, shutdown).await.unwrap();
    let workers = || async { devnet.proxy_stats().await["connections"]["workers"].clone() };
    assert_eq!(workers().await, 0);

    // The devnet's proxy is registered (workers' port first): the worker dials it live.
    let entry = format!("{} {}", devnet.proxy.worker_addr, devnet.proxy.client_addr);
    register_proxy(dev, 2, &entry).await;
    // Registered, and ready to take requests (handshake done, backend healthy).
    wait_until("the worker to be ready at the new proxy", || async {
        let stats = devnet.proxy_stats().await;
        stats["workers"][0]["ready"] == true && stats["workers"][0]["enabled"] == true
    })
    .await;
    assert_eq!(workers().await, 1);
    devnet_chat_ok(&devnet).await;
    let stats = get_json(worker.http_addr, "/stats").await;
    assert_eq!(stats["connections"]["configured"], 2, "{stats}");

    // The worker trusts the proxy images the root lists: the root drops this proxy's image,
    // and the worker closes its link (and is refused when it dials again) ...
    let image = cocoon_attest::tdx::TdxMeasurements::zero().image_hash();
    let hash_op = |query_id, add: bool| {
        let list = cocoon_ton::cocoon::root::HashList::Proxy;
        if add {
            RootMessage::AddHash {
                query_id,
                list,
                hash: image,
            }
        } else {
            RootMessage::DelHash {
                query_id,
                list,
                hash: image,
            }
        }
    };
    root_op(dev, hash_op(10, false)).await;
    wait_until(
        "the worker to leave the proxy whose image the root dropped",
        || async { workers().await == 0 },
    )
    .await;
    // ... and serves it again once the root allows the image again.
    root_op(dev, hash_op(11, true)).await;
    wait_until("the worker to trust the proxy again", || async {
        workers().await == 1
    })
    .await;

    // Unregistered: the link is drained and the proxy has no worker left.
    root_op(
        dev,
        RootMessage::UnregisterProxy {
            query_id: 3,
            seqno: 2,
        },
    )
    .await;
    wait_until("the worker to leave the unregistered proxy", || async {
        workers().await == 0
    })
    .await;
    let stats = get_json(worker.http_addr, "/stats").await;
    assert_eq!(stats["connections"]["configured"], 1, "{stats}");
    trigger.kill();
    devnet.stop().await;
}

/// A paid proxy serves only what the root allows of workers, followed live: the models (the
/// SHA-256 of the exact string a worker announces) and, when its config names none, the worker
/// images. A worker whose model or image the root drops loses its link and is refused when it
/// dials again; allowed again, it is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_proxy_serves_only_the_models_and_worker_images_the_root_allows() {
    use cocoon_ton::cocoon::root::HashList;
    use cocoon_ton::cocoon::RootMessage;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    // Settling every 100 ms: the proxy re-reads the root every 600 ms.
    let devnet = paid_devnet(dir.path()).await;
    let dev = devnet.chain.as_ref().unwrap();
    let workers = || async { devnet.proxy_stats().await["connections"]["workers"].clone() };
    let ready = || async {
        let stats = devnet.proxy_stats().await;
        stats["workers"][0]["ready"] == true && stats["workers"][0]["enabled"] == true
    };
    wait_until("the worker to be ready", ready).await;
    let model: [u8; 32] = sha2::Sha256::digest(b"mock-model").into();
    let image = cocoon_attest::tdx::TdxMeasurements::zero().image_hash();
    let mut query_id = 100;
    for (list, hash, what) in [
        (HashList::Model, model, "model"),
        (HashList::Worker, image, "worker image"),
    ] {
        query_id += 1;
        root_op(
            dev,
            RootMessage::DelHash {
                query_id,
                list,
                hash,
            },
        )
        .await;
        wait_until(
            &format!("the proxy to drop the worker whose {what} the root dropped"),
            || async { workers().await == 0 },
        )
        .await;
        // Dialling again is refused while the root does not allow it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(workers().await, 0, "refused again ({what})");
        query_id += 1;
        root_op(
            dev,
            RootMessage::AddHash {
                query_id,
                list,
                hash,
            },
        )
        .await;
        wait_until(&format!("the worker to be served again ({what})"), ready).await;
    }
    devnet_chat_ok(&devnet).await;
    devnet.stop().await;
}

/// A client with `[chain]` seals only to worker images the root allows, and follows the root
/// while it runs: an image dropped from `worker_hashes` is not sealed to from the client's next
/// read of the root (here the proxy keeps the worker: its own allow-list names the image), and
/// allowed again, it is sealed to again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_seals_only_to_the_worker_images_the_root_allows_now() {
    use cocoon_ton::cocoon::root::HashList;
    use cocoon_ton::cocoon::RootMessage;
    let dir = tempfile::tempdir().unwrap();
    let image = cocoon_attest::tdx::TdxMeasurements::zero().image_hash();
    let devnet = Devnet::builder()
        .mock(MockBackendConfig::default())
        .require_worker_image_hashes(vec![cocoon_attest::hex(&image)])
        .local_chain(
            dir.path(),
            &dir.path().join("prices.toml"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
        .start()
        .await
        .expect("paid devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let key = cocoon_testkit::devchain::key_path(dir.path(), "client");
    let mut config = client_config(&devnet, &key, &dev.client_secret);
    config.e2e = cocoon_client::E2e::Required;
    config.chain.as_mut().unwrap().root_refresh_secs = 0.2;
    let (client, trigger) = start(config).await;
    let (status, body) = chat(&client).await;
    assert_eq!(status, 200, "sealed to the allowed worker: {body}");

    root_op(
        dev,
        RootMessage::AddHash {
            query_id: 1,
            list: HashList::Worker,
            hash: [7; 32],
        },
    )
    .await;
    root_op(
        dev,
        RootMessage::DelHash {
            query_id: 2,
            list: HashList::Worker,
            hash: image,
        },
    )
    .await;
    wait_until(
        "the client to stop sealing to the dropped image",
        || async {
            let (status, body) = chat_once(&client).await;
            status == 503 && body["error"]["code"] == "no_sealing_worker"
        },
    )
    .await;

    root_op(
        dev,
        RootMessage::AddHash {
            query_id: 3,
            list: HashList::Worker,
            hash: image,
        },
    )
    .await;
    wait_until("the client to seal to the image allowed again", || async {
        chat_once(&client).await.0 == 200
    })
    .await;
    trigger.kill();
    devnet.stop().await;
}
