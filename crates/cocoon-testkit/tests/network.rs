//! End to end in one process: HTTP → client → proxy → worker → mock backend, over real TCP,
//! PoW and TLS. Token counts are checked against the mock's deterministic rules.

use std::time::Duration;

use cocoon_testkit::http::{sse_events, TestHttp};
use cocoon_testkit::mock_backend::{
    mock_completion_text, mock_completion_tokens, mock_prompt_tokens,
};
use cocoon_testkit::{wait_until, Devnet, MockBackendConfig};
use serde_json::{json, Value};

fn chat(content: &str, stream: bool) -> Value {
    json!({"model": "mock-model", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// Index of the worker currently running a request.
async fn busy_worker(devnet: &Devnet) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = futures_stats(devnet).await;
        if let Some(index) = stats
            .iter()
            .position(|s| s["requests"]["in_flight"].as_u64() == Some(1))
        {
            return index;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no worker picked up the request"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Holds or releases the answers of worker `index`'s mock backend.
fn hold_answers(devnet: &Devnet, index: usize, hold: bool) {
    devnet.workers[index]
        .backend
        .as_ref()
        .expect("a mock backend")
        .hold_answers(hold);
}

async fn futures_stats(devnet: &Devnet) -> Vec<Value> {
    let mut all = Vec::new();
    for worker in &devnet.workers {
        all.push(worker.stats().await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_streaming_and_not_have_exact_usage() {
    let mock = MockBackendConfig::default();
    let devnet = Devnet::builder()
        .workers(2)
        .mock(mock.clone())
        .start()
        .await
        .unwrap();
    let http = TestHttp::new();
    let address = devnet.client_addr();
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let http = http.clone();
        let mock = mock.clone();
        tasks.push(tokio::spawn(async move {
            let words = "word ".repeat(1 + (i as usize % 7));
            let stream = i % 2 == 0;
            let completions = i % 4 == 1;
            let mut body = if completions {
                json!({"model": "mock-model", "prompt": words, "stream": stream})
            } else {
                chat(&words, stream)
            };
            if i % 3 == 0 {
                body["max_tokens"] = json!(1 + i % 5);
            }
            if stream && i % 8 == 0 {
                body["stream_options"] = json!({"include_usage": true});
            }
            let path = if completions {
                "/v1/completions"
            } else {
                "/v1/chat/completions"
            };
            let answer = http.post(address, path, &body).await.unwrap();
            assert_eq!(answer.status, 200, "{}", answer.text());
            let prompt = mock_prompt_tokens(&body);
            let completion = mock_completion_tokens(&mock, &body);
            let expected_text = mock_completion_text(&mock, completion);
            if stream {
                assert_eq!(answer.header("content-type"), Some("text/event-stream"));
                let events = sse_events(&answer.body);
                let text: String = events
                    .iter()
                    .filter_map(|e| {
                        let choice = &e["choices"][0];
                        choice["delta"]["content"]
                            .as_str()
                            .or(choice["text"].as_str())
                            .map(str::to_string)
                    })
                    .collect();
                assert_eq!(text, expected_text);
                let usage: Vec<&Value> = events
                    .iter()
                    .filter(|e| !e["usage"].is_null())
                    .map(|e| &e["usage"])
                    .collect();
                if body["stream_options"]["include_usage"] == true {
                    assert_eq!(usage.len(), 1, "exactly one usage chunk when asked");
                    assert_eq!(usage[0]["prompt_tokens"], prompt);
                    assert_eq!(usage[0]["completion_tokens"], completion);
                } else {
                    assert!(
                        usage.is_empty(),
                        "no usage chunk unless asked: {}",
                        answer.text()
                    );
                }
                assert!(answer.text().ends_with("data: [DONE]\n\n"));
            } else {
                let json = answer.json();
                assert_eq!(json["usage"]["prompt_tokens"], prompt);
                assert_eq!(json["usage"]["completion_tokens"], completion);
                let text = json["choices"][0]["message"]["content"]
                    .as_str()
                    .or(json["choices"][0]["text"].as_str())
                    .unwrap();
                assert_eq!(text, expected_text);
            }
            prompt + completion
        }));
    }
    let mut expected_total = 0;
    for task in tasks {
        expected_total += task.await.unwrap();
    }
    let proxy = devnet.proxy_stats().await;
    assert_eq!(proxy["requests"]["succeeded"], 40);
    assert_eq!(proxy["requests"]["in_flight"], 0);
    assert_eq!(
        proxy["tokens"]["total"], expected_total,
        "proxy counted every token, streamed or not"
    );
    let worker_total: u64 = futures_stats(&devnet)
        .await
        .iter()
        .map(|s| s["tokens"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(worker_total, expected_total);
    let ledger = &proxy["ledger"];
    let charged: u64 = ledger["clients"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["charged_tokens"].as_u64().unwrap())
        .sum();
    let earned: u64 = ledger["workers"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w["earned_tokens"].as_u64().unwrap())
        .sum();
    let reserved: u64 = ledger["clients"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["reserved_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(
        (charged, earned, reserved),
        (expected_total, expected_total, 0)
    );
    let client = devnet.client_stats().await;
    assert_eq!(client["tokens"]["total"], expected_total);
    // Both workers served: the proxy spreads load.
    for stats in futures_stats(&devnet).await {
        assert!(
            stats["requests"]["succeeded"].as_u64().unwrap() > 0,
            "{stats}"
        );
    }
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_arrives_chunk_by_chunk() {
    let mock = MockBackendConfig {
        chunk_delay: Duration::from_millis(150),
        ..MockBackendConfig::default()
    };
    let devnet = Devnet::builder().mock(mock).start().await.unwrap();
    let http = TestHttp::new();
    let mut stream = http
        .post_stream(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hi", true),
        )
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    // The first content arrives while the backend is still producing: count chunks that
    // arrive before the stream ends, each carrying at most a couple of events.
    let mut chunks = 0;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        chunks += 1;
        body.extend_from_slice(&chunk);
    }
    assert!(
        chunks >= 8,
        "expected the 8 delayed tokens in separate chunks, got {chunks}"
    );
    assert_eq!(
        sse_events(&body).len(),
        1 + 8 + 1,
        "role chunk, 8 tokens, finish chunk"
    );
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_shaped_with_the_right_status() {
    let devnet = Devnet::builder().start().await.unwrap();
    let http = TestHttp::new();
    let address = devnet.client_addr();

    let models = http.get(address, "/v1/models").await.unwrap();
    assert_eq!(models.status, 200);
    assert_eq!(models.header("content-type"), Some("application/json"));
    assert_eq!(models.json()["data"][0]["id"], "mock-model");

    let mut unknown_model = chat("hi", false);
    unknown_model["model"] = json!("no-such-model");
    let answer = http
        .post(address, "/v1/chat/completions", &unknown_model)
        .await
        .unwrap();
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "model_not_found");

    let mut unknown_field = chat("hi", false);
    unknown_field["bogus_field"] = json!(1);
    let answer = http
        .post(address, "/v1/chat/completions", &unknown_field)
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("bogus_field"));

    let answer = http
        .post_bytes(address, "/v1/chat/completions", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");

    let answer = http
        .post_bytes(address, "/v1/chat/completions", b"[1, 2]".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json()["error"]["message"],
        "request body must be a JSON object"
    );

    let mut bad_extra = chat("hi", false);
    bad_extra["timeout"] = json!("soon");
    let answer = http
        .post(address, "/v1/chat/completions", &bad_extra)
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["code"], "invalid_extra");

    let mut cheap = chat("hi", false);
    cheap["max_coefficient"] = json!(500);
    let answer = http
        .post(address, "/v1/chat/completions", &cheap)
        .await
        .unwrap();
    assert_eq!(
        answer.status, 503,
        "worker coefficient 1000 is above the client's 500"
    );

    // Extras are consumed by the client, never forwarded (the worker would refuse them).
    let mut extras = chat("hi", false);
    extras["max_coefficient"] = json!(4000);
    extras["timeout"] = json!(30);
    extras["request_guid"] = json!("guid-1");
    let answer = http
        .post(address, "/v1/chat/completions", &extras)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    for header in [
        "x-cocoon-client-start",
        "x-cocoon-client-end",
        "x-cocoon-proxy-start",
        "x-cocoon-proxy-end",
        "x-cocoon-worker-start",
        "x-cocoon-worker-end",
    ] {
        let value: f64 = answer
            .header(header)
            .unwrap_or_else(|| panic!("{header} missing"))
            .parse()
            .unwrap();
        assert!(value > 1.0e9, "{header} is a unix timestamp");
    }

    let mut huge = chat("hi", false);
    huge["messages"][0]["content"] = json!("x".repeat(16 << 20));
    let answer = http
        .post(address, "/v1/chat/completions", &huge)
        .await
        .unwrap();
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["error"]["code"], "request_too_large");

    // The 413 was sent before the body was read, so the server closes that connection; a
    // pooled client may still pick it for the next request and fail to send on it. A fresh
    // client, as an app retrying after a refused upload would, sees the server as it is.
    let http = TestHttp::new();
    let answer = http.get(address, "/v2/nothing").await.unwrap();
    assert_eq!(answer.status, 404);
    assert!(answer.json()["error"]["message"].as_str().is_some());

    let metrics = http.get(address, "/metrics").await.unwrap();
    assert!(metrics.text().contains("cocoon_client_requests_total"));
    let proxy_metrics = http.get(devnet.proxy.http_addr, "/metrics").await.unwrap();
    assert!(proxy_metrics.text().contains("cocoon_proxy_requests_total"));
    let worker_metrics = http
        .get(devnet.workers[0].http_addr, "/metrics")
        .await
        .unwrap();
    assert!(worker_metrics
        .text()
        .contains("cocoon_worker_tokens_total{kind=\"total\"}"));
    devnet.stop().await;
}

/// A worker killed before its answer's first byte: the request is sent again to the other
/// worker, by the proxy in the clear, by the client when it was sealed (the proxy cannot move a
/// sealed request: no other worker can open it). The app sees one plain 200 either way.
async fn worker_killed_before_first_byte(e2e: fn(&mut cocoon_client::ClientConfig)) -> Value {
    let mut devnet = Devnet::builder()
        .workers(2)
        .client_settings(e2e)
        .start()
        .await
        .unwrap();
    // Both backends hold their answers: the request stays before its first byte at whichever
    // worker gets it for as long as the test needs, however slow the machine.
    hold_answers(&devnet, 0, true);
    hold_answers(&devnet, 1, true);
    let http = TestHttp::new();
    let address = devnet.client_addr();
    let request = tokio::spawn(async move {
        http.post(
            address,
            "/v1/chat/completions",
            &chat("one two three", false),
        )
        .await
        .unwrap()
    });
    let busy = busy_worker(&devnet).await;
    hold_answers(&devnet, 1 - busy, false);
    devnet.workers[busy].kill();
    let answer = request.await.unwrap();
    assert_eq!(
        answer.status,
        200,
        "retried transparently: {}",
        answer.text()
    );
    assert_eq!(answer.json()["usage"]["prompt_tokens"], 3);
    // The killed worker's abandoned call lets go too, so stopping does not wait on it.
    hold_answers(&devnet, busy, false);
    let proxy = devnet.proxy_stats().await;
    assert_eq!(proxy["requests"]["succeeded"], 1);
    let other = 1 - busy;
    assert_eq!(
        devnet.workers[other].stats().await["requests"]["succeeded"],
        1
    );
    devnet.stop().await;
    json!({"e2e": answer.header("x-cocoon-e2e"), "requests": proxy["requests"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_before_first_byte_is_retried_on_another() {
    let seen = worker_killed_before_first_byte(|c| c.e2e = cocoon_client::E2e::Off).await;
    assert_eq!(seen["e2e"], "off");
    assert_eq!(seen["requests"]["retried"], 1, "the proxy retried: {seen}");
    assert_eq!(seen["requests"]["total"], 1, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_request_whose_worker_dies_before_answering_is_sealed_to_another() {
    let seen = worker_killed_before_first_byte(|c| c.e2e = cocoon_client::E2e::Required).await;
    assert_eq!(seen["e2e"], "on");
    assert_eq!(seen["requests"]["retried"], 0, "the proxy cannot: {seen}");
    assert_eq!(
        seen["requests"]["total"], 2,
        "the client sent it again: {seen}"
    );
    assert_eq!(seen["requests"]["failed"], 1, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_after_first_byte_ends_the_stream_with_an_error() {
    let mock = MockBackendConfig {
        chunk_delay: Duration::from_millis(200),
        ..MockBackendConfig::default()
    };
    let mut devnet = Devnet::builder()
        .workers(2)
        .mock(mock)
        .start()
        .await
        .unwrap();
    let http = TestHttp::new();
    let mut stream = http
        .post_stream(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hi", true),
        )
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    let first = stream.next_chunk().await.expect("first chunk");
    assert!(!first.is_empty());
    let busy = busy_worker(&devnet).await;
    devnet.workers[busy].kill();
    let rest = stream.rest().await;
    let events = sse_events(&rest);
    let error = events
        .iter()
        .find(|e| !e["error"].is_null())
        .unwrap_or_else(|| panic!("no error event in {}", String::from_utf8_lossy(&rest)));
    assert_eq!(error["error"]["code"], 502);
    let proxy = devnet.proxy_stats().await;
    assert_eq!(
        proxy["requests"]["retried"], 0,
        "no replay once bytes reached the app"
    );
    assert_eq!(proxy["requests"]["failed"], 1);
    assert_eq!(
        proxy["ledger"]["clients"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["reserved_tokens"],
        0
    );
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_disables_the_worker_and_clients_get_503() {
    let devnet = Devnet::builder().start().await.unwrap();
    let http = TestHttp::new();
    let address = devnet.client_addr();
    let backend = devnet.workers[0].backend.as_ref().unwrap();
    backend.set_down(true);
    wait_until("the proxy to see the worker disabled", || async {
        devnet.proxy_stats().await["workers"][0]["enabled"] == false
    })
    .await;
    let answer = http
        .post(address, "/v1/chat/completions", &chat("hi", false))
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "no_worker_available");
    assert_eq!(
        http.get(address, "/v1/models").await.unwrap().json()["data"],
        json!([]),
        "a disabled worker's model is not listed"
    );
    backend.set_down(false);
    wait_until("the worker to come back", || async {
        devnet.proxy_stats().await["workers"][0]["enabled"] == true
    })
    .await;
    let answer = http
        .post(address, "/v1/chat/completions", &chat("hi", false))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_gives_504() {
    let mock = MockBackendConfig {
        headers_delay: Duration::from_secs(3),
        ..MockBackendConfig::default()
    };
    let devnet = Devnet::builder().mock(mock).start().await.unwrap();
    let http = TestHttp::new();
    let mut body = chat("hi", false);
    body["timeout"] = json!(0.5);
    let answer = http
        .post(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "timeout");
    devnet.stop().await;
}

/// A second client, like `base`'s but over `proxies`, started and connected to `connected` of
/// them.
async fn client_over(
    base: &Devnet,
    proxies: Vec<String>,
    connected: usize,
) -> (cocoon_client::RunningClient, cocoon_net::ShutdownTrigger) {
    let mut config = base.client_config.clone();
    config.proxies = proxies;
    config.listen = "127.0.0.1:0".parse().unwrap();
    let (trigger, shutdown) = cocoon_net::ShutdownTrigger::new();
    let client = cocoon_client::start(config, shutdown).await.unwrap();
    let (http, address) = (TestHttp::new(), client.api_addr);
    wait_until("the client to connect to its proxies", || async {
        http.get(address, "/stats")
            .await
            .map(|a| a.json()["connections"]["proxies"] == connected)
            .unwrap_or(false)
    })
    .await;
    (client, trigger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_to_the_next_proxy() {
    let devnet = Devnet::builder().start().await.unwrap();
    // A port nobody listens on, first in the list.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxies = vec![dead.to_string(), devnet.proxy.client_addr.to_string()];
    let (mut client, trigger) = client_over(&devnet, proxies, 1).await;
    let http = TestHttp::new();
    let address = client.api_addr;
    let answer = http
        .post(address, "/v1/chat/completions", &chat("hi", false))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    trigger.drain();
    client.wait().await;
    devnet.stop().await;
}

/// Two proxies: requests spread over both, and one whose proxy dies before its answer began
/// is sent again through the other; the app sees only the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_proxies_and_move_when_one_dies_before_answering() {
    let mut first = Devnet::builder().start().await.unwrap();
    let mut second = Devnet::builder().start().await.unwrap();
    let proxies = vec![
        first.proxy.client_addr.to_string(),
        second.proxy.client_addr.to_string(),
    ];
    let (mut client, trigger) = client_over(&first, proxies, 2).await;
    let address = client.api_addr;
    let http = TestHttp::new();
    // The models are the union over both proxies, with what they offer.
    let models = http.get(address, "/v1/models").await.unwrap().json();
    let model = &models["data"][0];
    assert_eq!(model["id"], "mock-model", "{models}");
    assert_eq!(model["cocoon"]["proxies"], 2, "{models}");
    assert_eq!(model["cocoon"]["workers"], 2, "{models}");
    assert_eq!(model["cocoon"]["max_active_requests"], 128, "{models}");
    assert_eq!(model["cocoon"]["min_coefficient"], 1000, "{models}");
    // Both backends hold their answers until released, so requests stay running at their
    // proxy as long as the test needs.
    let hold = |devnet: &Devnet, hold: bool| hold_answers(devnet, 0, hold);
    let running = |stats: Value| stats["requests"]["in_flight"].as_u64().unwrap_or(0);
    let send = || {
        let http = http.clone();
        tokio::spawn(async move {
            http.post(address, "/v1/chat/completions", &chat("hi", false))
                .await
                .unwrap()
        })
    };
    // Four, each sent once the ones before run at a proxy: the least busy is chosen, so two
    // each.
    hold(&first, true);
    hold(&second, true);
    let mut requests = Vec::new();
    for sent in 1..=4 {
        requests.push(send());
        wait_until("the request to run at a proxy", || async {
            running(first.proxy_stats().await) + running(second.proxy_stats().await) == sent
        })
        .await;
    }
    let placed = (
        running(first.proxy_stats().await),
        running(second.proxy_stats().await),
    );
    assert_eq!(placed, (2, 2));
    hold(&first, false);
    hold(&second, false);
    for request in requests {
        assert_eq!(request.await.unwrap().status, 200);
    }
    let total = |stats: Value| stats["requests"]["total"].as_u64().unwrap();
    let spread = (
        total(first.proxy_stats().await),
        total(second.proxy_stats().await),
    );
    assert_eq!(spread, (2, 2));

    // One request; the proxy it went to dies before the backend answers.
    hold(&first, true);
    hold(&second, true);
    let request = send();
    wait_until("the request to reach a proxy", || async {
        running(first.proxy_stats().await) + running(second.proxy_stats().await) == 1
    })
    .await;
    let on_first = running(first.proxy_stats().await) == 1;
    let (dying, survivor) = if on_first {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    hold(survivor, false);
    dying.kill_proxy().await;
    let answer = request.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    hold(dying, false);
    assert_eq!(
        total(survivor.proxy_stats().await),
        3,
        "it was sent again there"
    );
    trigger.drain();
    client.wait().await;
    first.stop().await;
}

/// Of two proxies, the one that answers slowly is avoided once measured: the client sends each
/// request where it expects the shortest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_moves_away_from_a_slow_proxy() {
    let slow = Devnet::builder()
        .mock(MockBackendConfig {
            headers_delay: Duration::from_millis(300),
            ..MockBackendConfig::default()
        })
        .start()
        .await
        .unwrap();
    let fast = Devnet::builder().start().await.unwrap();
    let proxies = vec![
        slow.proxy.client_addr.to_string(),
        fast.proxy.client_addr.to_string(),
    ];
    let (mut client, trigger) = client_over(&fast, proxies, 2).await;
    let address = client.api_addr;
    let http = TestHttp::new();
    for _ in 0..10 {
        let answer = http
            .post(address, "/v1/chat/completions", &chat("hi", false))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    let total = |stats: Value| stats["requests"]["total"].as_u64().unwrap();
    let (to_slow, to_fast) = (
        total(slow.proxy_stats().await),
        total(fast.proxy_stats().await),
    );
    assert_eq!(to_slow + to_fast, 10);
    // At most one request goes to each proxy before both are measured; then the fast one wins.
    assert!(
        to_slow <= 1,
        "{to_slow} to the slow proxy, {to_fast} to the fast one"
    );
    trigger.drain();
    client.wait().await;
    slow.stop().await;
    fast.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_streams() {
    let mock = MockBackendConfig {
        chunk_delay: Duration::from_millis(100),
        ..MockBackendConfig::default()
    };
    let devnet = Devnet::builder().mock(mock.clone()).start().await.unwrap();
    let http = TestHttp::new();
    let mut stream = http
        .post_stream(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hi", true),
        )
        .await
        .unwrap();
    let first = stream.next_chunk().await.unwrap();
    devnet.drain();
    let mut body = first.to_vec();
    body.extend(stream.rest().await);
    let text: String = sse_events(&body)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        text,
        mock_completion_text(&mock, 8),
        "the in-flight stream finished during the drain"
    );
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"));
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_clients_reconnect_when_the_proxy_comes_back() {
    let mut devnet = Devnet::builder().start().await.unwrap();
    let http = TestHttp::new();
    let address = devnet.client_addr();
    assert_eq!(
        http.post(address, "/v1/chat/completions", &chat("hi", false))
            .await
            .unwrap()
            .status,
        200
    );
    devnet.kill_proxy().await;
    let answer = http
        .post(address, "/v1/chat/completions", &chat("hi", false))
        .await
        .unwrap();
    assert!(
        answer.status == 502 || answer.status == 503,
        "no proxy: {} {}",
        answer.status,
        answer.text()
    );
    devnet.restart_proxy().await.unwrap();
    wait_until("worker and client to reconnect", || async {
        http.post(address, "/v1/chat/completions", &chat("hi", false))
            .await
            .map(|a| a.status == 200)
            .unwrap_or(false)
    })
    .await;
    let stats = devnet.proxy_stats().await;
    assert_eq!(stats["connections"]["workers"], 1);
    assert_eq!(stats["connections"]["clients"], 1);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_an_unapproved_image_is_refused_and_clients_get_503() {
    let approved = {
        let mut m = cocoon_attest::tdx::TdxMeasurements::zero();
        m.mrtd = [0xaa; 48];
        cocoon_attest::hex(&m.image_hash())
    };
    let devnet = Devnet::builder()
        .worker_fake_mrtd(&"bb".repeat(48))
        .require_worker_image_hashes(vec![approved])
        .wait_for_workers(false)
        .start()
        .await
        .unwrap();
    // The worker did try, and the proxy's policy refused it: a 503 before that would only
    // say the worker had not connected yet.
    wait_until("the proxy to refuse the worker's image", || async {
        devnet.proxy_stats().await["limits"]["workers"]["refused_by_policy"]
            .as_u64()
            .is_some_and(|refused| refused >= 1)
    })
    .await;
    let answer = TestHttp::new()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hi", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "no_worker_available");
    let proxy = devnet.proxy_stats().await;
    assert_eq!(
        proxy["connections"]["workers"], 0,
        "the worker never got past the handshake"
    );
    assert_eq!(proxy["worker_policy"], "danger_fake_tdx");
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_image_is_served_and_its_hash_is_reported() {
    let mrtd = "aa".repeat(48);
    let expected = {
        let mut m = cocoon_attest::tdx::TdxMeasurements::zero();
        m.mrtd = [0xaa; 48];
        cocoon_attest::hex(&m.image_hash())
    };
    let devnet = Devnet::builder()
        .worker_fake_mrtd(&mrtd)
        .require_worker_image_hashes(vec![expected.clone()])
        .start()
        .await
        .unwrap();
    let answer = TestHttp::new()
        .post(
            devnet.client_addr(),
            "/v1/chat/completions",
            &chat("hi", false),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let proxy = devnet.proxy_stats().await;
    assert_eq!(proxy["workers"][0]["image_hash"], expected);
    assert_eq!(
        proxy["limits"]["workers"]["refused_by_policy"], 0,
        "{proxy}"
    );
    devnet.stop().await;
}
