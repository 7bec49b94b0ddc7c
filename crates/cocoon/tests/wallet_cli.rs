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
