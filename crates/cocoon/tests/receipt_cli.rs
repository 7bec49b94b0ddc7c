//! `cocoon receipt verify` as an app's operator runs it, on a receipt a devnet's sealed request
//! returned in `X-Cocoon-Receipt`.

mod support;

use cocoon_attest::receipt::Receipt;
use cocoon_testkit::Devnet;
use http::Method;
use support::{cocoon, stdout};

/// A sealed request through a devnet: its receipt's and charge's base64 and the tokens the
/// usage reports.
async fn a_receipt(devnet: &Devnet) -> (String, String, u64) {
    let body = serde_json::json!({"model": "mock-model", "messages": [{"role": "user", "content": "a receipt please"}]});
    let answer = devnet
        .client_http()
        .request(
            Method::POST,
            devnet.client_addr(),
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("x-cocoon-receipt-check"), Some("ok"));
    let total = answer.json()["usage"]["total_tokens"].as_u64().unwrap();
    (
        answer.header("x-cocoon-receipt").unwrap().to_owned(),
        answer.header("x-cocoon-charge").unwrap().to_owned(),
        total,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devnet_receipt_verifies_and_a_changed_one_or_an_over_charge_is_refused() {
    let devnet = Devnet::builder().start().await.unwrap();
    let (receipt, charge, total) = a_receipt(&devnet).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receipt.b64");
    std::fs::write(&file, &receipt).unwrap();
    let config = dir.path().join("client.toml");
    std::fs::write(&config, toml::to_string(&devnet.client_config).unwrap()).unwrap();
    let file = file.to_str().unwrap();

    let text = stdout(&cocoon(&[
        "receipt",
        "verify",
        file,
        "--config",
        config.to_str().unwrap(),
        "--charged",
        &total.to_string(),
    ]));
    assert!(text.contains("signature        valid"), "{text}");
    assert!(text.contains("model            mock-model"), "{text}");
    assert!(
        text.contains(&format!("total {total} (as billed)")),
        "{text}"
    );
    assert!(text.contains("covered by the receipt"), "{text}");
    assert!(text.contains("acceptable       yes"), "{text}");
    assert!(text.contains("bound to key     yes"), "{text}");

    // With the proxy's signed charge: covered. A charge for another request's receipt is not.
    let text = stdout(&cocoon(&["receipt", "verify", file, "--charge", &charge]));
    assert!(text.contains("against receipt  covered"), "{text}");
    let (other_receipt, _, _) = a_receipt(&devnet).await;
    let mismatch = cocoon(&["receipt", "verify", &other_receipt, "--charge", &charge]);
    assert!(!mismatch.status.success());
    let text = String::from_utf8_lossy(&mismatch.stdout);
    assert!(text.contains("against receipt  REFUSED"), "{text}");

    // The base64 given directly works the same; an over-charge is refused.
    let over = cocoon(&[
        "receipt",
        "verify",
        &receipt,
        "--charged",
        &(total + 1).to_string(),
    ]);
    assert!(!over.status.success());
    let text = String::from_utf8_lossy(&over.stdout);
    assert!(text.contains("OVER-CHARGED"), "{text}");

    // One more token written into the receipt breaks its signature.
    let mut changed = Receipt::from_base64(&receipt).unwrap();
    changed.body.tokens.total += 1;
    let changed = cocoon(&["receipt", "verify", &changed.to_base64()]);
    assert!(!changed.status.success());
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(text.contains("signature        REFUSED"), "{text}");

    // Not a receipt at all: a clear error, no panic.
    let garbage = cocoon(&["receipt", "verify", "bm90IGEgcmVjZWlwdA=="]);
    assert!(!garbage.status.success());
    let text = String::from_utf8_lossy(&garbage.stderr);
    assert!(text.contains("malformed receipt"), "{text}");
}
