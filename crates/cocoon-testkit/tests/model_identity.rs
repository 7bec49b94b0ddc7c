//! A devnet worker's attested model identity (issue 14): its certificate's claims carry the
//! hash of the model it announces and the digest of the weights file it was given, `/stats` and
//! `/certificate` show them, the proxy registers it (the claimed model is the announced one),
//! and the client seals requests to it.

use cocoon_testkit::Devnet;
use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devnet_worker_carries_its_model_hash_and_weights_digest() {
    let mut weights = tempfile::NamedTempFile::new().unwrap();
    weights.write_all(b"GGUF and some tensors").unwrap();
    weights.flush().unwrap();
    let devnet = Devnet::builder()
        .worker_weights_file(weights.path())
        .start()
        .await
        .unwrap();
    let worker = &devnet.workers[0];
    let model = worker.config.model.clone();
    let expected_weights = cocoon_attest::hex(&Sha256::digest(b"GGUF and some tensors"));
    let expected_model = cocoon_attest::hex(&cocoon_attest::model_hash(&model));

    let http = devnet.client_http();
    let certificate = http.get(worker.http_addr, "/certificate").await.unwrap();
    assert_eq!(certificate.status, 200);
    let claims = cocoon_attest::claims_of(&certificate.body, std::time::SystemTime::now())
        .expect("the worker's certificate and claims parse");
    assert_eq!(
        claims.model_hash.map(|h| cocoon_attest::hex(&h)),
        Some(expected_model.clone())
    );
    assert_eq!(
        claims.weights_digest.map(|d| cocoon_attest::hex(&d)),
        Some(expected_weights.clone())
    );
    // The fake quote vouches for exactly these claims.
    let policy = cocoon_attest::policy::danger::fake_tdx(cocoon_attest::policy::AllowLists {
        model_hashes: vec![cocoon_attest::model_hash(&model)],
        require_weights_digest: true,
        ..Default::default()
    });
    let peer = policy
        .check(&certificate.body, std::time::SystemTime::now())
        .unwrap();
    assert_eq!(peer.model_hash, claims.model_hash);

    let stats = cocoon_testkit::http::get_json(worker.http_addr, "/stats").await;
    assert_eq!(
        stats["attested_claims"]["model_hash"], expected_model,
        "{stats}"
    );
    assert_eq!(
        stats["attested_claims"]["weights_digest"], expected_weights,
        "{stats}"
    );

    // The proxy took the worker (its claimed model is the one it announces) and the client
    // seals to it (the claimed model is the request's).
    let body = json!({"model": model, "messages": [{"role": "user", "content": "who are you"}]});
    let answer = http
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
    assert_eq!(answer.header("x-cocoon-e2e"), Some("on"));
    devnet.stop().await;
}
