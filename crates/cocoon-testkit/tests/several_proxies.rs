//! A devnet with several proxies on one chain: each registered in the root, requests spread
//! over them, and the books of every proxy balance on chain to the nano-TON.

use std::time::Duration;

use cocoon_devnet::devchain::CLIENT_DEPOSIT;
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxies_share_the_load_and_each_settles_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::builder()
        .proxies(3)
        .workers(2)
        .mock(MockBackendConfig::default())
        .local_chain(
            dir.path(),
            &dir.path().join("prices.toml"),
            Duration::from_millis(100),
            Duration::from_millis(200),
        )
        .register_proxies(true)
        .start()
        .await
        .expect("the devnet starts");
    let dev = devnet.chain.as_ref().unwrap();
    let proxies: Vec<&cocoon_proxy::RunningProxy> = std::iter::once(&devnet.proxy)
        .chain(devnet.more_proxies.iter().map(|p| &p.proxy))
        .collect();
    assert_eq!(proxies.len(), 3);

    // The root lists them, workers' port first.
    let root = dev.cocoon.root().await.unwrap();
    let registered: Vec<String> = root
        .registered_proxies
        .values()
        .map(|e| e.text().to_string())
        .collect();
    let expected: Vec<String> = proxies
        .iter()
        .map(|p| format!("{} {}", p.worker_addr, p.client_addr))
        .collect();
    assert_eq!(registered, expected);

    // Six running at once: two through each proxy (the least busy is chosen). The backends
    // hold every answer, and each request is sent once the ones before it are running at a
    // proxy, so every choice sees the load the earlier ones put there.
    for worker in &devnet.workers {
        worker.backend.as_ref().unwrap().hold_answers(true);
    }
    let http = devnet.client_http();
    let address = devnet.client_addr();
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]});
    let in_flight =
        |stats: &serde_json::Value| stats["requests"]["in_flight"].as_u64().unwrap_or(0);
    let running = || async {
        let mut each = Vec::new();
        for proxy in &proxies {
            each.push(in_flight(
                &cocoon_testkit::http::get_json(proxy.http_addr, "/stats").await,
            ));
        }
        each
    };
    let mut requests = Vec::new();
    for sent in 1..=6u64 {
        let (http, body) = (http.clone(), body.clone());
        requests.push(tokio::spawn(async move {
            http.post(address, "/v1/chat/completions", &body)
                .await
                .unwrap()
                .status
        }));
        wait_until("the request to run at a proxy", || async {
            running().await.iter().sum::<u64>() == sent
        })
        .await;
    }
    assert_eq!(running().await, vec![2, 2, 2]);
    for worker in &devnet.workers {
        worker.backend.as_ref().unwrap().hold_answers(false);
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    for proxy in &proxies {
        let stats = cocoon_testkit::http::get_json(proxy.http_addr, "/stats").await;
        assert_eq!(stats["requests"]["total"], 2, "{stats}");
    }

    // Each proxy's books on chain: what its client contract paid is what its workers' contracts
    // were paid plus what its own contract kept.
    let (price, fee) = (
        dev.params.price_per_token.0,
        dev.params.worker_fee_per_token.0,
    );
    for index in 0..3 {
        let client = dev.client_contract_at(index, dev.client.address()).unwrap();
        let workers: Vec<_> = dev
            .workers
            .iter()
            .map(|w| dev.worker_contract_at(index, w.address()).unwrap())
            .collect();
        let proxy = dev.proxy_contract_at(index).unwrap();
        wait_until("this proxy's charge and payouts on chain", || async {
            let used = dev
                .cocoon
                .client(&client)
                .await
                .unwrap()
                .unwrap()
                .tokens_used;
            let mut paid = 0;
            for worker in &workers {
                paid += dev.cocoon.worker(worker).await.unwrap().unwrap().tokens;
            }
            used > 0 && paid == used
        })
        .await;
        let contract = dev.cocoon.client(&client).await.unwrap().unwrap();
        let t = u128::from(contract.tokens_used);
        assert_eq!(
            contract.balance.0,
            CLIENT_DEPOSIT.0 - t * price,
            "proxy {index}: the client paid tokens × price"
        );
        let commission = dev.cocoon.proxy(&proxy).await.unwrap().unwrap().balance.0;
        assert_eq!(
            commission,
            t * (price - fee),
            "proxy {index}: it kept tokens × (price − fee), the workers got the rest"
        );
    }
    devnet.stop().await;
}
