//! `cocoon wallet` against a devnet chain, as a user runs it.

use std::process::Output;

use cocoon_testkit::devchain::DevChain;
use support::stdout as ok;

mod support;

/// `cocoon wallet --data-dir DIR ARGS`.
fn cocoon(dir: &std::path::Path, args: &[&str]) -> Output {
    let dir = dir.to_str().expect("a UTF-8 path");
    let mut all = vec!["wallet", "--data-dir", dir];
    all.extend_from_slice(args);
    support::cocoon(&all)
}

#[tokio::test]
async fn wallet_moves_money_on_the_devnet_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let prices = data.join("prices.toml");
    let dev = DevChain::open(&data, &prices, 2, &["mock-model".to_string()])
        .await
        .unwrap();
    // Opening again reuses everything: same keys, no second deposit.
    let again = DevChain::open(&data, &prices, 2, &["mock-model".to_string()])
        .await
        .unwrap();
    assert_eq!(again.client.address(), dev.client.address());
    let status = ok(&cocoon(&data, &["status"]));
    assert!(
        status.contains("client     balance 10 TON  stake 0.1 TON  charged tokens 0  Normal"),
        "{status}"
    );
    assert!(status.contains("proxy      holds"), "{status}");
    assert_eq!(
        status
            .matches("paid tokens 0  earned 0 TON  Normal")
            .count(),
        2,
        "{status}"
    );
    let client_wallet = || async { dev.balance(dev.client.address()).await.unwrap() };
    let contract = dev.client_contract(dev.client.address()).unwrap();
    let client = || async { dev.cocoon.client(&contract).await.unwrap().unwrap() };
    let wallet_before = client_wallet().await;

    let text = ok(&cocoon(&data, &["top-up", "2.5"]));
    assert!(
        text.contains("sending the top-up of 2.5 TON: 3.2 TON"),
        "{text}"
    );
    assert_eq!(client().await.balance.0, 12_500_000_000);
    let text = ok(&cocoon(&data, &["increase-stake", "1"]));
    assert!(text.contains("stake 1 TON"), "{text}");
    let refused = cocoon(&data, &["increase-stake", "0.5"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exit code 1003"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let text = ok(&cocoon(&data, &["withdraw"]));
    assert!(text.contains("balance 1 TON  stake 1 TON"), "{text}");
    let refused = cocoon(&data, &["withdraw"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exit code 1001"),
        "nothing above the stake: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let text = ok(&cocoon(&data, &["close"]));
    assert!(text.contains("state Closing"), "{text}");
    assert!(text.contains("run `cocoon wallet close` again"), "{text}");
    let early = cocoon(&data, &["close"]);
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("close delay has not passed"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // The devnet process sees what the CLI did: the journal is shared. The client got back
    // what it withdrew (11.5 TON); all it spent beyond that is gas.
    // Net: −2.5 TON topped up, +11.5 TON withdrawn, less the gas of four operations.
    let after = client_wallet().await;
    let net = 9_000_000_000;
    assert!(
        after < wallet_before + net && after > wallet_before + net - 500_000_000,
        "wallet {wallet_before} -> {after}"
    );

    let bad = cocoon(&dir.path().join("nothing"), &["status"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("run `cocoon devnet` first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_submits_its_signed_payout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    // The proxy never pays on its own here: the worker has to submit its payout.
    let devnet = cocoon_testkit::Devnet::builder()
        .local_chain(
            &data,
            &data.join("prices.toml"),
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(200),
        )
        .payout_threshold(u64::MAX)
        .start()
        .await
        .unwrap();
    let none = cocoon(&data, &["payout"]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no signed payout yet"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    let answer = cocoon_testkit::http::TestHttp::new()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &serde_json::json!({"model": "mock-model", "messages": [{"role": "user", "content": "pay me"}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let tokens = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    let dev = devnet.chain.as_ref().unwrap();
    let contract = dev.worker_contract(dev.workers[0].address()).unwrap();
    let kept = cocoon_ton::payout::payout_path(&data.join("payouts"), &contract);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read(&kept)
        .ok()
        .and_then(|b| cocoon_ton::payout::parse_payout(&b, &contract).ok())
        .is_none_or(|m| cocoon_ton::payout::payout_tokens(&m) < tokens)
    {
        assert!(std::time::Instant::now() < deadline, "no payout kept");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = dev.balance(dev.workers[0].address()).await.unwrap();
    let paid = ok(&cocoon(&data, &["payout"]));
    assert!(
        paid.contains(&format!("for tokens up to {tokens}")),
        "{paid}"
    );
    let after = dev.balance(dev.workers[0].address()).await.unwrap();
    let fee = dev.params.worker_fee_per_token.0;
    // The worker paid the gas of its submission out of what it attached (0.5 TON, the rest
    // came back as excess) and received tokens × fee.
    let earned = u128::from(tokens) * fee;
    assert!(
        after + 100_000_000 > before + earned && after < before + earned,
        "wallet {before} -> {after}, earned {earned}"
    );
    let worker = dev.cocoon.worker(&contract).await.unwrap().unwrap();
    assert_eq!(worker.tokens, tokens);
    let again = ok(&cocoon(&data, &["payout"]));
    assert!(again.contains("nothing to pay"), "{again}");
    devnet.stop().await;
}

/// `cocoon wallet --config client.toml --contract ADDR` on any network a client's `[chain]`
/// names: the embedded one sends at once; over toncenter's API (a fake one over the same
/// network here) it says what it would spend and sends only with `--yes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_acts_on_a_configured_chain_and_asks_before_spending_real_ton() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let dev = DevChain::open(
        &data,
        &data.join("prices.toml"),
        1,
        &["mock-model".to_string()],
    )
    .await
    .unwrap();
    let contract = dev.client_contract(dev.client.address()).unwrap();
    let key = cocoon_testkit::devchain::key_path(&data, "client");
    let write = |name: &str, chain: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "proxies = [\"127.0.0.1:1\"]\n[proxy_policy]\npolicy = \"danger_fake_tdx\"\n[chain]\n{chain}\nwallet_key = {:?}\n",
            key.display().to_string()
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let local = write(
        "local.toml",
        &format!(
            "network = \"local\"\nlocal_dir = {:?}",
            dev.ton_dir().display().to_string()
        ),
    );
    let run = |config: &std::path::Path, args: &[&str]| {
        let config = config.to_str().unwrap().to_string();
        let contract = contract.to_string();
        let mut all = vec!["wallet", "--config", &config, "--contract", &contract];
        all.extend_from_slice(args);
        support::cocoon(&all)
    };
    let status = ok(&run(&local, &["status"]));
    assert!(status.contains("client     balance 10 TON"), "{status}");
    ok(&run(&local, &["top-up", "1"]));
    let balance = || async {
        dev.cocoon
            .client(&contract)
            .await
            .unwrap()
            .unwrap()
            .balance
            .0
    };
    assert_eq!(balance().await, 11_000_000_000);

    // Someone else's contract is refused.
    let stranger = dev
        .client_contract(dev.workers[0].address())
        .unwrap()
        .to_string();
    let config = local.to_str().unwrap();
    let refused = support::cocoon(&[
        "wallet",
        "--config",
        config,
        "--contract",
        &stranger,
        "status",
    ]);
    assert!(!refused.status.success());

    // Over toncenter: nothing is sent without --yes.
    let toncenter = cocoon_testkit::FakeToncenter::start(
        cocoon_tvm::LocalNetwork::open(dev.ton_dir()).unwrap(),
    )
    .await
    .unwrap();
    let api = write(
        "api.toml",
        &format!(
            "network = \"toncenter\"\ntoncenter_url = {:?}\nroot_address = {:?}",
            toncenter.url(),
            dev.cocoon.root_address().to_string()
        ),
    );
    let asked = tokio::task::spawn_blocking({
        let run_api = api.clone();
        let contract = contract.to_string();
        move || {
            let config = run_api.to_str().unwrap().to_string();
            support::cocoon(&[
                "wallet",
                "--config",
                &config,
                "--contract",
                &contract,
                "top-up",
                "2",
            ])
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(
        !asked.status.success() && stderr.contains("--yes"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&asked.stdout).contains("sending the top-up of 2 TON: 2.7 TON"));
    assert_eq!(balance().await, 11_000_000_000, "nothing sent");
    let sent = tokio::task::spawn_blocking({
        let contract = contract.to_string();
        move || {
            let config = api.to_str().unwrap().to_string();
            support::cocoon(&[
                "wallet",
                "--config",
                &config,
                "--contract",
                &contract,
                "--yes",
                "top-up",
                "2",
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("submitted"),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(balance().await, 13_000_000_000);
}

/// On a devnet with two proxies, `status` lists each proxy's contracts and `--proxy N` picks
/// whose client contract an action uses.
#[tokio::test]
async fn wallet_lists_and_acts_on_each_proxy_of_a_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let dev = DevChain::open_with_proxies(
        &data,
        &data.join("prices.toml"),
        2,
        1,
        &["mock-model".to_string()],
    )
    .await
    .unwrap();
    let status = ok(&cocoon(&data, &["status"]));
    assert_eq!(
        status
            .matches("client     balance 10 TON  stake 0.1 TON  charged tokens 0  Normal")
            .count(),
        2,
        "{status}"
    );
    assert!(status.contains("(proxy 1)"), "{status}");
    assert!(status.contains("proxy-1 "), "{status}");
    ok(&cocoon(&data, &["--proxy", "1", "top-up", "1"]));
    let mut balances = Vec::new();
    for index in 0..2 {
        let contract = dev.client_contract_at(index, dev.client.address()).unwrap();
        let data = dev.cocoon.client(&contract).await.unwrap().unwrap();
        balances.push(data.balance.0);
    }
    assert_eq!(
        balances,
        [10_000_000_000, 11_000_000_000],
        "only proxy 1's client contract got the top-up"
    );
    let none = cocoon(&data, &["--proxy", "2", "status"]);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("has no proxy 2"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}
