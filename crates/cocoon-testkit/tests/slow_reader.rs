//! A slow reader hurts only itself: an app that asks for a large stream and then reads nothing
//! is cut off by the client daemon at its per-stream limit, while other apps' requests on the
//! same proxy connection complete in full. No timing is asserted; the timeouts only guard
//! against hangs.

use std::time::Duration;

use cocoon_testkit::http::{sse_events, TestHttp};
use cocoon_testkit::mock_backend::{mock_completion_text, mock_completion_tokens};
use cocoon_testkit::{Devnet, MockBackendConfig};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// Only a hang takes this long.
const HANG_GUARD: Duration = Duration::from_secs(120);

async fn poll_client(devnet: &Devnet, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let stats = devnet.client_stats().await;
        if check(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a streaming request on a raw socket with a small receive buffer, then never reads.
async fn stalled_app(devnet: &Devnet) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    // Set before connecting, so the advertised window stays small.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(devnet.client_addr()).await.unwrap();
    let body = json!({
        "model": "mock-model",
        "stream": true,
        "messages": [{"role": "user", "content": "tell me everything"}],
    })
    .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// One normal app request, read promptly; checks the whole answer.
async fn normal_request(
    http: TestHttp,
    devnet_addr: std::net::SocketAddr,
    mock: MockBackendConfig,
    i: u64,
) {
    let stream = i.is_multiple_of(2);
    let body = json!({
        "model": "mock-model",
        "stream": stream,
        "max_tokens": 2 + i % 5,
        "messages": [{"role": "user", "content": format!("question {i}")}],
    });
    let expected = mock_completion_text(&mock, mock_completion_tokens(&mock, &body));
    let answer = tokio::time::timeout(
        HANG_GUARD,
        http.post(devnet_addr, "/v1/chat/completions", &body),
    )
    .await
    .expect("normal request hung")
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text: String = if stream {
        assert!(
            answer.text().ends_with("data: [DONE]\n\n"),
            "stream {i} incomplete"
        );
        sse_events(&answer.body)
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    } else {
        answer.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(text.len(), expected.len(), "request {i}: answer length");
    assert!(text == expected, "request {i}: answer differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_cut_off_and_nobody_else_notices() {
    // 2048 tokens of 16 KiB: a 32 MiB stream, far beyond the client's per-stream limit, sent
    // slowly enough (1 ms a token) that the other apps run while it is in flight. The other
    // apps ask for a few tokens each.
    let mock = MockBackendConfig {
        chunk_count: 2048,
        chunk_size: 16 << 10,
        chunk_delay: Duration::from_millis(1),
        ..MockBackendConfig::default()
    };
    let devnet = Devnet::builder()
        .workers(2)
        .mock(mock.clone())
        .start()
        .await
        .unwrap();
    let address = devnet.client_addr();

    let stalled = stalled_app(&devnet).await;
    // The stalled request is registered (and its answer is flowing) before the others start.
    poll_client(&devnet, "the stalled request to start", |s| {
        s["requests"]["in_flight"].as_u64() >= Some(1)
            || s["streams"]["cut_slow_reader"].as_u64() >= Some(1)
    })
    .await;

    let http = TestHttp::new();
    let mut apps = Vec::new();
    for app in 0..6u64 {
        let http = http.clone();
        let mock = mock.clone();
        apps.push(tokio::spawn(async move {
            for round in 0..4u64 {
                normal_request(http.clone(), address, mock.clone(), app * 10 + round).await;
            }
        }));
    }
    for app in apps {
        app.await.unwrap();
    }

    let stats = poll_client(&devnet, "the stalled stream to be cut", |s| {
        s["streams"]["cut_slow_reader"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(stats["streams"]["cut_slow_reader"], 1, "{stats}");
    let limit = stats["streams"]["queue_limit_bytes"].as_u64().unwrap();
    let peak = stats["streams"]["queued_peak_bytes"].as_u64().unwrap();
    assert!(
        peak <= limit,
        "a queue held {peak} bytes, over the {limit} limit"
    );
    assert!(
        peak > limit / 2,
        "the stalled stream should have filled its queue to near the limit before the cut: {peak}"
    );
    assert_eq!(
        stats["connections"]["proxies"], 1,
        "the proxy connection survived"
    );

    // The connection still serves everyone after the cut.
    for i in 100..104 {
        normal_request(http.clone(), address, mock.clone(), i).await;
    }
    let stats = devnet.client_stats().await;
    assert_eq!(stats["streams"]["cut_slow_reader"], 1, "{stats}");
    let metrics = http.get(address, "/metrics").await.unwrap().text();
    assert!(
        metrics.contains("cocoon_client_streams_cut_slow_reader_total 1"),
        "{metrics}"
    );

    drop(stalled);
    devnet.stop().await;
}
