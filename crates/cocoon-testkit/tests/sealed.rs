//! Sealed requests through a whole devnet (issue 14): the client verifies the worker's
//! certificate itself, seals the request to the HPKE key in its claims, the proxy routes it by
//! the clear fields, and the answer comes back sealed. What the app sees is the same answer
//! with the same usage, and `X-Cocoon-E2E` says whether it was sealed.

use cocoon_attest::receipt::{ChargeStatement, Receipt};
use cocoon_client::E2e;
use cocoon_testkit::mock_backend::{
    mock_completion_text, mock_completion_tokens, mock_prompt_tokens,
};
use cocoon_testkit::{Devnet, MockBackendConfig};
use http::Method;
use serde_json::{json, Value};

fn question(stream: bool) -> Value {
    let mut body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "seal these words"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn post_chat(devnet: &Devnet, body: Vec<u8>) -> cocoon_testkit::http::HttpAnswer {
    devnet
        .client_http()
        .request(
            Method::POST,
            devnet.client_addr(),
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap()
}

/// The text, usage and receipt event (`cocoon_receipt`, `cocoon_receipt_check`) of an SSE
/// answer; the receipt event must come before `[DONE]`.
fn read_stream_with_receipt(text: &str) -> (String, Value, Value) {
    let (mut content, mut usage, mut receipt) = (String::new(), Value::Null, Value::Null);
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            assert!(
                !receipt.is_null() || usage.is_null(),
                "the receipt event comes before [DONE]"
            );
            continue;
        }
        let event: Value = serde_json::from_str(data).unwrap();
        assert!(event["error"].is_null(), "error event: {event}");
        if event.get("cocoon_receipt_check").is_some() {
            // In the usage chunk: the stream still ends with usage, as apps expect.
            assert_eq!(event["choices"], json!([]), "{event}");
            assert!(!event["usage"].is_null(), "{event}");
            receipt = event.clone();
        }
        if let Some(piece) = event["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
        if !event["usage"].is_null() {
            usage = event["usage"].clone();
        }
    }
    (content, usage, receipt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_sealed_to_the_verified_worker_with_exact_usage() {
    let devnet = Devnet::builder()
        .client_settings(|client| client.e2e = E2e::Preferred)
        .start()
        .await
        .unwrap();
    let mock = MockBackendConfig::default();
    for stream in [false, true] {
        let body = question(stream);
        let answer = post_chat(&devnet, body.to_string().into_bytes()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("x-cocoon-e2e"), Some("on"), "stream {stream}");
        let completion = mock_completion_tokens(&mock, &body);
        let (content, usage, receipt, charge) = if stream {
            let (content, usage, event) = read_stream_with_receipt(&answer.text());
            assert_eq!(event["cocoon_receipt_check"], "ok", "{event}");
            (
                content,
                usage,
                event["cocoon_receipt"].as_str().unwrap().to_owned(),
                event["cocoon_charge"].as_str().unwrap().to_owned(),
            )
        } else {
            assert_eq!(answer.header("x-cocoon-receipt-check"), Some("ok"));
            let json = answer.json();
            (
                json["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                json["usage"].clone(),
                answer.header("x-cocoon-receipt").unwrap().to_owned(),
                answer.header("x-cocoon-charge").unwrap().to_owned(),
            )
        };
        // The worker's signed receipt, as the app gets it: it verifies on its own and states
        // the request's model and usage.
        let receipt = Receipt::from_base64(&receipt).unwrap();
        receipt.verify_signature().unwrap();
        assert_eq!(receipt.body.model, "mock-model");
        assert_eq!(receipt.body.client_request_id, request_id(&answer));
        assert_eq!(usage["total_tokens"], receipt.body.tokens.total, "{usage}");
        assert_eq!(receipt.body.tokens.completion, completion);
        // The proxy's signed charge names that receipt and states what the app was billed,
        // signed by the proxy the client is connected to.
        let charge = ChargeStatement::from_base64(&charge).unwrap();
        charge
            .check_against(&receipt, receipt.body.tokens.total, None)
            .unwrap();
        assert_eq!(charge.body.proxy_key, devnet.proxy.public_key);
        assert_eq!(
            content,
            mock_completion_text(&mock, completion),
            "stream {stream}"
        );
        assert_eq!(usage["prompt_tokens"], mock_prompt_tokens(&body), "{usage}");
        assert_eq!(usage["completion_tokens"], completion, "{usage}");
    }
    let stats = devnet.proxy_stats().await;
    assert_eq!(stats["requests"]["succeeded"], 2, "{stats}");
    assert_eq!(stats["requests"]["receipts_relayed"], 2, "{stats}");
    let stats = devnet.client_stats().await;
    assert_eq!(
        stats["receipts"],
        json!({"valid": 2, "refused": 0, "missing": 0, "over_charged": 0}),
        "{stats}"
    );
    // A stream that does not ask for usage gets no extra event (apps that read
    // `choices[0]` of every chunk keep working); the receipt is still checked.
    let mut body = question(true);
    body.as_object_mut().unwrap().remove("stream_options");
    let answer = post_chat(&devnet, body.to_string().into_bytes()).await;
    assert!(
        !answer.text().contains("cocoon_receipt"),
        "{}",
        answer.text()
    );
    let stats = devnet.client_stats().await;
    assert_eq!(stats["receipts"]["valid"], 3, "{stats}");
}

/// The request id the client gave a request (`X-Cocoon-Request-Id`).
fn request_id(answer: &cocoon_testkit::http::HttpAnswer) -> [u8; 32] {
    let hex = answer.header("x-cocoon-request-id").unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_sealing_without_a_capable_worker_is_a_clear_503_and_off_is_in_the_clear() {
    let devnet = Devnet::builder()
        .worker_settings(|worker| worker.sealed_requests = false)
        .client_settings(|client| client.e2e = E2e::Required)
        .start()
        .await
        .unwrap();
    let body = question(false).to_string().into_bytes();
    let answer = post_chat(&devnet, body.clone()).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(
        answer.json()["error"]["code"],
        "no_sealing_worker",
        "{}",
        answer.text()
    );

    let devnet = Devnet::builder()
        .client_settings(|client| client.e2e = E2e::Off)
        .start()
        .await
        .unwrap();
    let answer = post_chat(&devnet, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("x-cocoon-e2e"), Some("off"));
}

/// A devnet whose workers have fake GPUs: each worker's certificate carries their evidence,
/// bound into its claims; the proxy admits it and the client seals to it while both demand
/// GPUs (a peer without them is refused by such a policy: cocoon-attest's tests/gpu.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devnet_with_fake_gpus_attests_them_and_demands_them() {
    let devnet = Devnet::builder()
        .fake_gpus(2)
        .e2e(E2e::Required)
        .start()
        .await
        .unwrap();
    let answer = post_chat(&devnet, question(false).to_string().into_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("x-cocoon-e2e"), Some("on"));
    // The worker's certificate, as it presents it: two GPUs in its evidence.
    let certificate = devnet
        .client_http()
        .request(
            Method::GET,
            devnet.workers[0].http_addr,
            "/certificate",
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(certificate.status, 200);
    let facts =
        cocoon_attest::parse_certificate(&certificate.body, std::time::SystemTime::now()).unwrap();
    let evidence =
        cocoon_attest::gpu::GpuEvidence::decode(facts.gpu_evidence.as_deref().unwrap()).unwrap();
    assert_eq!(evidence.gpus.len(), 2);
}
