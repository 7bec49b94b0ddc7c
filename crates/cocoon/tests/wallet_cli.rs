//! `cocoon wallet` against a devnet chain, as a user runs it.

use std::process::Output;

use cocoon_testkit::devchain::DevChain;
use cocoon_ton::Chain;
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
        status.contains("client     balance 10 TON  stake 0.1 TON  charged tokens 0  running"),
        "{status}"
    );
    assert!(
        status.contains("open clients 1  open workers 2"),
        "{status}"
    );
    assert!(
        status.contains("client                     90 TON"),
        "{status}"
    );

    ok(&cocoon(&data, &["top-up", "2.5"]));
    ok(&cocoon(&data, &["increase-stake", "1"]));
    let refused = cocoon(&data, &["withdraw", "12"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("below_stake"));
    ok(&cocoon(&data, &["withdraw", "1.5"]));
    let text = ok(&cocoon(&data, &["close"]));
    assert!(text.contains("paid 10 TON"), "{text}");
    assert!(text.contains("state closing"), "{text}");
    let early = cocoon(&data, &["close"]);
    assert!(String::from_utf8_lossy(&early.stderr).contains("too_early"));

    // The devnet process sees what the CLI did: the journal is shared.
    let c = dev
        .chain
        .client(&dev.client_contract(dev.client.address()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.balance, 1_000_000_000);
    assert_eq!(
        dev.chain
            .balance(dev.client.address())
            .await
            .unwrap()
            .as_nano(),
        99_000_000_000
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
    let contract = dev.worker_contract(dev.workers[0].address());
    let kept = cocoon_ton::payout::payout_path(&data.join("payouts"), &contract);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read(&kept)
        .ok()
        .and_then(|b| cocoon_ton::payout::parse_payout(&b, &contract).ok())
        .is_none_or(|m| m.payload.tokens < tokens)
    {
        assert!(std::time::Instant::now() < deadline, "no payout kept");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = dev.chain.balance(dev.workers[0].address()).await.unwrap();
    let paid = ok(&cocoon(&data, &["payout"]));
    assert!(
        paid.contains(&format!("for tokens up to {tokens}")),
        "{paid}"
    );
    let after = dev.chain.balance(dev.workers[0].address()).await.unwrap();
    let fee = u128::from(dev.params.worker_fee_per_token);
    assert_eq!(after.0 - before.0, u128::from(tokens) * fee);
    let again = ok(&cocoon(&data, &["payout"]));
    assert!(again.contains("nothing to pay"), "{again}");
    devnet.stop().await;
}
