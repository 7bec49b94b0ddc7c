//! The client embedded in an app's process (`cocoon_client::Client`): the same proxies, the
//! same answers as over the HTTP API, with no socket of its own. Answers are checked against
//! the mock backend's deterministic rules and against the devnet's own HTTP client.

use std::time::Duration;

use cocoon_client::Client;
use cocoon_net::shutdown::ShutdownTrigger;
use cocoon_testkit::mock_backend::{
    mock_completion_text, mock_completion_tokens, mock_prompt_tokens,
};
use cocoon_testkit::{Devnet, MockBackendConfig};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn question() -> Value {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "three little words"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_client_chats_streams_and_answers_errors_like_the_api() {
    let devnet = Devnet::builder().start().await.unwrap();
    let mock = MockBackendConfig::default();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let mut config = devnet.client_config.clone();
    // Nothing is bound: an address that cannot be listened on proves it.
    config.listen = "192.0.2.1:9".parse().unwrap();
    let client = Client::start(config, shutdown).await.unwrap();
    client
        .wait_for_proxy(Duration::from_secs(20))
        .await
        .unwrap();

    let models = client.models().await.unwrap();
    assert_eq!(models["data"][0]["id"], "mock-model", "{models}");

    let body = question();
    let completion = mock_completion_tokens(&mock, &body);
    let expected = mock_completion_text(&mock, completion);
    let answer = client.chat(body.clone()).await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        expected.as_str()
    );
    assert_eq!(answer["usage"]["prompt_tokens"], mock_prompt_tokens(&body));
    assert_eq!(answer["usage"]["completion_tokens"], completion);

    let mut streamed = json!(body);
    streamed["stream_options"] = json!({"include_usage": true});
    let mut stream = client.chat_stream(streamed).await.unwrap();
    let (mut text, mut usage, mut chunks) = (String::new(), Value::Null, 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    assert_eq!(text, expected);
    assert!(
        chunks as u64 > completion,
        "one chunk per token, then the end and usage"
    );
    assert_eq!(usage["completion_tokens"], completion);

    let reply = client
        .response(json!({"model": "mock-model", "input": "three little words"}))
        .await
        .unwrap();
    assert_eq!(reply["status"], "completed");
    assert_eq!(reply["output"][0]["content"][0]["text"], expected.as_str());

    let missing = client
        .chat(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status, missing.code.as_str()),
        (404, "model_not_found"),
        "{missing}"
    );
    let bad = client.chat(json!({"messages": []})).await.unwrap_err();
    assert_eq!(
        (bad.status, bad.code.as_str()),
        (400, "missing_model"),
        "{bad}"
    );

    trigger.drain();
}
