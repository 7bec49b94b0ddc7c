//! Who may spend the client's stake through its API: a web page's cross-site or DNS-rebound
//! requests are refused before anything is forwarded, apps on loopback are served, an
//! `api_token` admits its bearers from anywhere, and connections that trickle headers or
//! bodies are closed. No timing is asserted; the timeouts only guard against hangs.

use std::net::SocketAddr;
use std::time::Duration;

use cocoon_testkit::http::{HttpAnswer, TestHttp};
use cocoon_testkit::Devnet;
use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "test-token-0123456789abcdef";
/// Only a hang takes this long.
const HANG_GUARD: Duration = Duration::from_secs(20);

fn chat_body() -> Vec<u8> {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "hello"}]})
        .to_string()
        .into_bytes()
}

async fn chat(
    http: &TestHttp,
    address: SocketAddr,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpAnswer {
    http.request(Method::POST, address, "/v1/chat/completions", headers, body)
        .await
        .unwrap()
}

fn error_code(answer: &HttpAnswer) -> String {
    answer.json()["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an OpenAI error: {}", answer.text()))
        .to_owned()
}

async fn proxy_requests(devnet: &Devnet) -> u64 {
    devnet.proxy_stats().await["requests"]["total"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_rebound_requests_are_refused_and_nothing_is_forwarded() {
    let devnet = Devnet::builder().start().await.unwrap();
    let address = devnet.client_addr();
    let http = TestHttp::new();
    let json = ("content-type", "application/json");

    // What a web page can send without a CORS preflight: a text/plain "simple" POST.
    let cross_site = chat(
        &http,
        address,
        &[
            ("content-type", "text/plain"),
            ("origin", "http://evil.example"),
        ],
        chat_body(),
    )
    .await;
    assert_eq!(cross_site.status, 403, "{}", cross_site.text());
    assert_eq!(error_code(&cross_site), "origin_not_allowed");
    let json_cross_site = chat(
        &http,
        address,
        &[json, ("origin", "https://evil.example")],
        chat_body(),
    )
    .await;
    assert_eq!(json_cross_site.status, 403);
    // DNS rebinding: the page's own name, now resolving to 127.0.0.1, in `Host`.
    let rebound = chat(
        &http,
        address,
        &[json, ("host", "evil.example:10000")],
        chat_body(),
    )
    .await;
    assert_eq!(rebound.status, 421, "{}", rebound.text());
    assert_eq!(error_code(&rebound), "host_not_allowed");
    let rebound_get = http
        .request(
            Method::GET,
            address,
            "/v1/models",
            &[("host", "evil.example")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(rebound_get.status, 421);
    // Not JSON, even from loopback.
    let form = chat(
        &http,
        address,
        &[("content-type", "application/x-www-form-urlencoded")],
        chat_body(),
    )
    .await;
    assert_eq!(form.status, 415, "{}", form.text());
    assert_eq!(error_code(&form), "unsupported_media_type");

    let client = devnet.client_stats().await;
    assert_eq!(client["requests"]["refused"], 5, "{client}");
    assert_eq!(client["requests"]["total"], 0, "no handler ran: {client}");
    assert_eq!(
        proxy_requests(&devnet).await,
        0,
        "nothing reached the proxy"
    );
    let backend = devnet.workers[0].backend.as_ref().unwrap();
    assert_eq!(backend.requests_served(), 0, "nothing reached the backend");

    // An app on loopback, as the OpenAI SDKs send it (JSON, Host 127.0.0.1:PORT, no Origin;
    // a localhost page's Origin passes too).
    let served = chat(&http, address, &[json], chat_body()).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let local_page = chat(
        &http,
        address,
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("origin", "http://localhost:3000"),
            ("host", &format!("localhost:{}", address.port())),
        ],
        chat_body(),
    )
    .await;
    assert_eq!(local_page.status, 200, "{}", local_page.text());
    assert_eq!(proxy_requests(&devnet).await, 2);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_only_its_bearers_are_served_from_anywhere() {
    let devnet = Devnet::builder()
        .client_settings(|config| config.api_token = Some(TOKEN.into()))
        .start()
        .await
        .unwrap();
    let address = devnet.client_addr();
    let json = ("content-type", "application/json");
    let foreign = [
        json,
        ("host", "cocoon.example.com"),
        ("origin", "https://chat.example.com"),
    ];

    let with_token = chat(&devnet.client_http(), address, &foreign, chat_body()).await;
    assert_eq!(with_token.status, 200, "{}", with_token.text());

    let anonymous = TestHttp::new();
    let missing = chat(&anonymous, address, &[json], chat_body()).await;
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert_eq!(error_code(&missing), "invalid_api_key");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = TestHttp::new().with_bearer(Some("test-token-0123456789abcdeX"));
    assert_eq!(
        chat(&wrong, address, &foreign, chat_body()).await.status,
        401
    );
    let stats = anonymous.get(address, "/stats").await.unwrap();
    assert_eq!(stats.status, 401, "every path needs the token");

    assert_eq!(
        proxy_requests(&devnet).await,
        1,
        "only the bearer's request ran"
    );
    devnet.stop().await;
}

/// Reads until the peer closes; what it sent before.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the client kept a stalled connection open");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_trickle_headers_or_bodies_are_closed() {
    let devnet = Devnet::builder()
        .client_settings(|config| {
            config.header_read_timeout_secs = 0.5;
            config.body_read_timeout_secs = 0.5;
        })
        .start()
        .await
        .unwrap();
    let address = devnet.client_addr();

    // Slowloris: half the headers, then silence.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains(" 200 "), "{answer}");

    // All headers, a tenth of the body, then silence.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // The API still serves everyone else.
    let served = TestHttp::new()
        .post_bytes(address, "/v1/chat/completions", chat_body())
        .await
        .unwrap();
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(proxy_requests(&devnet).await, 1);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_guid_with_a_newline_is_served() {
    // What reaches the log is checked in `cocoon-client`'s `log_safe` test; here the request
    // itself must go through untouched by the escaping.
    let devnet = Devnet::builder().start().await.unwrap();
    let mut body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]});
    body["request_guid"] = json!("guid\n2025-01-01T00:00:00Z  INFO forged line");
    let answer = TestHttp::new()
        .post(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    devnet.stop().await;
}
