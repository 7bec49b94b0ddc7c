//! End-to-end tests of the mock OpenAI backend over real HTTP/1.1 on loopback.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_testkit::mock_backend::{
    mock_completion_text, mock_completion_tokens, mock_prompt_tokens, mock_token_text, MockBackend,
    MockBackendConfig,
};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    client: &HttpClient,
    backend: &MockBackend,
    method: Method,
    path: &str,
    body: &str,
) -> http::Response<Incoming> {
    let request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", backend.url()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    client.request(request).await.unwrap()
}

async fn post_json(
    client: &HttpClient,
    backend: &MockBackend,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let response = send(client, backend, Method::POST, path, &body.to_string()).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Reads a streaming response frame by frame, checking that each frame is exactly one event.
async fn read_events(response: http::Response<Incoming>) -> Vec<String> {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let text = std::str::from_utf8(&data).unwrap();
        let payload = text
            .strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("frame is not one SSE event: {text:?}"));
        assert!(
            !payload.contains("\n\n"),
            "two events in one frame: {text:?}"
        );
        events.push(payload.to_owned());
    }
    events
}

fn chat_body(content: &str) -> Value {
    json!({"model": "mock-model", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": content}
    ]})
}

#[tokio::test]
async fn lists_models() {
    let config = MockBackendConfig {
        models: vec!["alpha".into(), "beta".into()],
        ..MockBackendConfig::default()
    };
    let backend = MockBackend::start(config).await.unwrap();
    assert!(backend.url().starts_with("http://127.0.0.1:"));
    let client = client();
    let response = send(&client, &backend, Method::GET, "/v1/models", "").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let list: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        list,
        json!({"object": "list", "data": [
            {"id": "alpha", "object": "model", "created": 0, "owned_by": "cocoon-mock"},
            {"id": "beta", "object": "model", "created": 0, "owned_by": "cocoon-mock"}
        ]})
    );
    backend.stop().await;
}

#[tokio::test]
async fn chat_completion_follows_the_rules() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let config = MockBackendConfig::default();
    let client = client();
    let body = chat_body("What is the answer?");
    let (status, answer) = post_json(&client, &backend, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);

    let prompt_tokens = mock_prompt_tokens(&body);
    let completion_tokens = mock_completion_tokens(&config, &body);
    assert_eq!((prompt_tokens, completion_tokens), (7, 8));
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["created"].as_u64().unwrap() > 0);
    assert_eq!(answer["model"], "mock-model");
    assert_eq!(
        answer["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": mock_completion_text(&config, completion_tokens)},
            "finish_reason": "stop"
        }])
    );
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15})
    );
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "t0 t0 t1 t1 t2 t2 t3 t3 t4 t4 t5 t5 t6 t6 t7 t7 "
    );
    assert_eq!(backend.requests_served(), 1);
    backend.stop().await;
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_reason_length() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let config = MockBackendConfig::default();
    let client = client();
    let mut body = chat_body("hi");
    body["max_tokens"] = json!(3);
    let (status, answer) = post_json(&client, &backend, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        mock_completion_text(&config, 3)
    );
    assert_eq!(answer["usage"]["completion_tokens"], 3);

    // A limit at or above chunk_count does not cut anything.
    body["max_tokens"] = json!(8);
    let (_, answer) = post_json(&client, &backend, "/v1/chat/completions", &body).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");

    // Streaming obeys the same limit.
    body["max_completion_tokens"] = json!(2);
    body["stream"] = json!(true);
    let response = send(
        &client,
        &backend,
        Method::POST,
        "/v1/chat/completions",
        &body.to_string(),
    )
    .await;
    let events = read_events(response).await;
    // role, 2 tokens, finish, [DONE]
    assert_eq!(events.len(), 5);
    let finish: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    backend.stop().await;
}

async fn stream_chat(include_usage: Option<bool>) {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let config = MockBackendConfig::default();
    let client = client();
    let mut body = chat_body("stream me something");
    body["stream"] = json!(true);
    if let Some(include_usage) = include_usage {
        body["stream_options"] = json!({"include_usage": include_usage});
    }
    let response = send(
        &client,
        &backend,
        Method::POST,
        "/v1/chat/completions",
        &body.to_string(),
    )
    .await;
    let events = read_events(response).await;
    let with_usage = include_usage == Some(true);
    // role chunk + one per token + finish chunk (+ usage) + [DONE]
    let expected = 1 + config.chunk_count + 1 + usize::from(with_usage) + 1;
    assert_eq!(events.len(), expected, "{events:#?}");
    assert_eq!(events.last().unwrap(), "[DONE]");

    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-mock-"));
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "mock-model");
    }
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])
    );
    let mut text = String::new();
    for (index, chunk) in chunks[1..=config.chunk_count].iter().enumerate() {
        assert_eq!(
            chunk["choices"],
            json!([{"index": 0, "delta": {"content": mock_token_text(&config, index)}, "finish_reason": null}])
        );
        text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap());
    }
    assert_eq!(
        text,
        mock_completion_text(&config, config.chunk_count as u64)
    );
    let finish = &chunks[config.chunk_count + 1];
    assert_eq!(
        finish["choices"],
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    );
    assert!(finish.get("usage").is_none());
    if with_usage {
        let usage = &chunks[config.chunk_count + 2];
        assert_eq!(usage["choices"], json!([]));
        let prompt_tokens = mock_prompt_tokens(&body);
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": prompt_tokens, "completion_tokens": 8, "total_tokens": prompt_tokens + 8})
        );
    }
    assert!(chunks.iter().filter(|c| c.get("usage").is_some()).count() == usize::from(with_usage));
    assert_eq!(backend.requests_served(), 1);
    backend.stop().await;
}

#[tokio::test]
async fn chat_stream_without_usage() {
    stream_chat(None).await;
}

#[tokio::test]
async fn chat_stream_with_include_usage_false() {
    stream_chat(Some(false)).await;
}

#[tokio::test]
async fn chat_stream_with_usage() {
    stream_chat(Some(true)).await;
}

#[tokio::test]
async fn text_completions_whole_and_streamed() {
    let config = MockBackendConfig {
        chunk_count: 4,
        chunk_size: 3,
        ..MockBackendConfig::default()
    };
    let backend = MockBackend::start(config.clone()).await.unwrap();
    let client = client();
    let body = json!({"model": "mock-model", "prompt": ["one two", "three"]});
    let (status, answer) = post_json(&client, &backend, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(
        answer["choices"],
        json!([{"index": 0, "text": "t0 t1 t2 t3 ", "finish_reason": "stop"}])
    );
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );

    let body = json!({"model": "mock-model", "prompt": "a b", "stream": true, "max_tokens": 2,
        "stream_options": {"include_usage": true}});
    let response = send(
        &client,
        &backend,
        Method::POST,
        "/v1/completions",
        &body.to_string(),
    )
    .await;
    let events = read_events(response).await;
    // 2 tokens, finish, usage, [DONE]; no role chunk for text completions
    assert_eq!(events.len(), 5, "{events:#?}");
    let chunks: Vec<Value> = events[..4]
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    for (index, chunk) in chunks[..2].iter().enumerate() {
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(
            chunk["choices"],
            json!([{"index": 0, "text": mock_token_text(&config, index), "finish_reason": null}])
        );
    }
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["choices"][0]["text"], "");
    assert_eq!(chunks[3]["choices"], json!([]));
    assert_eq!(
        chunks[3]["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
    );
    assert_eq!(events[4], "[DONE]");
    assert_eq!(backend.requests_served(), 2);
    backend.stop().await;
}

#[tokio::test]
async fn set_down_answers_503_until_set_up_again() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let client = client();
    backend.set_down(true);
    let response = send(&client, &backend, Method::GET, "/v1/models", "").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(error["error"]["message"].is_string());
    let (status, error) =
        post_json(&client, &backend, "/v1/chat/completions", &chat_body("hi")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error["error"]["type"].is_string());
    assert_eq!(backend.requests_served(), 0);

    backend.set_down(false);
    let response = send(&client, &backend, Method::GET, "/v1/models", "").await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = post_json(&client, &backend, "/v1/chat/completions", &chat_body("hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backend.requests_served(), 1);
    backend.stop().await;
}

#[tokio::test]
async fn unknown_model_is_404() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let client = client();
    let mut body = chat_body("hi");
    body["model"] = json!("gpt-17");
    let (status, error) = post_json(&client, &backend, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "model_not_found");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-17"));
    let (status, _) = post_json(
        &client,
        &backend,
        "/v1/completions",
        &json!({"model": "nope", "prompt": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    backend.stop().await;
}

#[tokio::test]
async fn malformed_body_is_400() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let client = client();
    for (path, body) in [
        ("/v1/chat/completions", "{\"model\": "),
        ("/v1/completions", "not json"),
        ("/v1/chat/completions", "[1, 2]"),
    ] {
        let response = send(&client, &backend, Method::POST, path, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let error: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(error["error"]["message"].is_string());
        assert!(error["error"]["code"].is_string());
    }
    // The connection stays usable after errors.
    let (status, _) = post_json(&client, &backend, "/v1/chat/completions", &chat_body("x")).await;
    assert_eq!(status, StatusCode::OK);
    backend.stop().await;
}

#[tokio::test]
async fn chunk_delay_spaces_token_chunks() {
    let chunk_delay = Duration::from_millis(30);
    let config = MockBackendConfig {
        chunk_count: 4,
        chunk_delay,
        ..MockBackendConfig::default()
    };
    let backend = MockBackend::start(config.clone()).await.unwrap();
    let client = client();
    let mut body = chat_body("slowly");
    body["stream"] = json!(true);
    let started = Instant::now();
    let response = send(
        &client,
        &backend,
        Method::POST,
        "/v1/chat/completions",
        &body.to_string(),
    )
    .await;
    let mut body = response.into_body();
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push((Instant::now(), data));
        }
    }
    // role, 4 tokens, finish, [DONE]: each in its own frame, in order.
    assert_eq!(arrivals.len(), 7);
    for (index, (_, data)) in arrivals[1..5].iter().enumerate() {
        let text = std::str::from_utf8(data).unwrap();
        assert!(text.contains(&format!(
            "\"content\":\"{}\"",
            mock_token_text(&config, index)
        )));
    }
    assert!(arrivals.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    // A lower bound only: the server sleeps at least chunk_delay between the four tokens, so
    // the last one cannot arrive sooner than three delays after the request was sent.
    assert!(arrivals[4].0 - started >= chunk_delay * 3);
    backend.stop().await;
}

#[tokio::test]
async fn client_leaving_mid_stream_stops_generation() {
    let config = MockBackendConfig {
        chunk_count: 1000,
        chunk_delay: Duration::from_millis(5),
        ..MockBackendConfig::default()
    };
    let backend = MockBackend::start(config).await.unwrap();
    let client = client();
    let mut body = chat_body("long");
    body["stream"] = json!(true);
    let response = send(
        &client,
        &backend,
        Method::POST,
        "/v1/chat/completions",
        &body.to_string(),
    )
    .await;
    let mut body = response.into_body();
    // Read the role chunk and a token, then hang up.
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    drop(body);
    drop(client);
    // The abandoned stream is never counted and the server keeps serving.
    let client = self::client();
    let (status, _) = post_json(&client, &backend, "/v1/chat/completions", &chat_body("x")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backend.requests_served(), 1);
    backend.stop().await;
}

#[tokio::test]
async fn headers_delay_and_keep_alive() {
    let config = MockBackendConfig {
        headers_delay: Duration::from_millis(20),
        ..MockBackendConfig::default()
    };
    let backend = MockBackend::start(config).await.unwrap();
    let client = client();
    let started = Instant::now();
    for _ in 0..3 {
        let (status, _) =
            post_json(&client, &backend, "/v1/chat/completions", &chat_body("x")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(backend.requests_served(), 3);
    backend.stop().await;
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let client = client();
    let response = send(&client, &backend, Method::GET, "/v2/nothing", "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = send(&client, &backend, Method::GET, "/v1/chat/completions", "").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = send(&client, &backend, Method::GET, "/health", "").await;
    assert_eq!(response.status(), StatusCode::OK);
    backend.stop().await;
}

#[tokio::test]
async fn drop_stops_the_server() {
    let backend = MockBackend::start(MockBackendConfig::default())
        .await
        .unwrap();
    let addr = backend.addr();
    drop(backend);
    // Give the aborted task a moment to release the socket, then expect refusals.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
}
