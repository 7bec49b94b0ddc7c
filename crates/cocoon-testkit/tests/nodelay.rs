//! Guard: every TCP socket the daemons accept or dial has `TCP_NODELAY` set.
//!
//! Without it a small write that follows an unacknowledged one waits for the peer's delayed
//! ACK (~40 ms): that made every answer on a reused connection 44 ms slower and nobody noticed.
//! This is not a timed test: it runs a network, keeps every kind of connection open (the app's
//! keep-alive connection, the TLS links, the worker's backend connections, the stats servers),
//! and reads the option back from the kernel for every established socket in the process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cocoon_testkit::http::TestHttp;
use cocoon_testkit::sockets::{established_tcp_sockets, TcpSocket};
use cocoon_testkit::{Devnet, MockBackendConfig};
use serde_json::json;

/// Names the listening ports of a running network, so a failure says whose socket it was.
struct Roles(BTreeMap<u16, &'static str>);

impl Roles {
    fn of(devnet: &Devnet) -> Roles {
        let mut roles = BTreeMap::new();
        roles.insert(devnet.client_addr().port(), "client API");
        roles.insert(devnet.proxy.client_addr.port(), "proxy client port");
        roles.insert(devnet.proxy.worker_addr.port(), "proxy worker port");
        roles.insert(devnet.proxy.http_addr.port(), "proxy stats");
        for worker in &devnet.workers {
            roles.insert(worker.http_addr.port(), "worker stats");
            if let Some(backend) = &worker.backend {
                roles.insert(backend.addr().port(), "backend");
            }
        }
        Roles(roles)
    }

    fn describe(&self, socket: &TcpSocket) -> String {
        let name = |address: &SocketAddr| self.0.get(&address.port()).copied().unwrap_or("?");
        if self.0.contains_key(&socket.local.port()) {
            format!(
                "accepted by {} ({} <- {})",
                name(&socket.local),
                socket.local,
                socket.remote
            )
        } else {
            format!(
                "dialled to {} ({} -> {})",
                name(&socket.remote),
                socket.local,
                socket.remote
            )
        }
    }
}

/// Asserts every established socket has TCP_NODELAY, and that each of `accepted` (ports
/// something listens on) has at least one accepted and one dialled socket in the list, so the
/// check cannot pass by finding nothing.
fn assert_all_nodelay(roles: &Roles, accepted: &[(u16, &str)]) {
    let sockets = established_tcp_sockets().expect("list this process's sockets");
    for (port, what) in accepted {
        assert!(
            sockets.iter().any(|s| s.local.port() == *port),
            "no accepted socket of {what} (port {port}) is open; the test lost its connection"
        );
        assert!(
            sockets.iter().any(|s| s.remote.port() == *port),
            "no dialled socket to {what} (port {port}) is open; the test lost its connection"
        );
    }
    let missing: Vec<String> = sockets
        .iter()
        .filter(|s| !s.nodelay)
        .map(|s| roles.describe(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} sockets lack TCP_NODELAY:\n  {}",
        missing.len(),
        sockets.len(),
        missing.join("\n  ")
    );
}

/// One test, not two: tests in one binary share the process, and each check looks at every
/// socket in it, so two networks at once would blur whose socket a failure names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_the_daemons_accept_or_dial_has_nodelay() {
    a_paid_network_with_a_stream_in_flight().await;
    a_network_in_front_of_the_built_in_engine().await;
}

async fn a_paid_network_with_a_stream_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    // A slow stream keeps the worker's streaming backend connection open while we look.
    let mock = MockBackendConfig {
        chunk_count: 40,
        chunk_delay: Duration::from_millis(50),
        ..MockBackendConfig::default()
    };
    let devnet = Devnet::builder()
        .mock(mock)
        .local_chain(
            dir.path(),
            &dir.path().join("prices.toml"),
            Duration::from_secs(1),
            Duration::from_secs(10),
        )
        .start()
        .await
        .unwrap();
    let http = TestHttp::new();
    let api = devnet.client_addr();
    let chat = |stream| json!({"model": "mock-model", "stream": stream, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]});

    // Keep-alive connections to every HTTP server the daemons run (the pool keeps them open).
    let answer = http
        .post(api, "/v1/chat/completions", &chat(false))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(http.get(api, "/v1/models").await.unwrap().status, 200);
    assert_eq!(
        http.get(devnet.proxy.http_addr, "/stats")
            .await
            .unwrap()
            .status,
        200
    );
    let worker_stats = devnet.workers[0].http_addr;
    assert_eq!(http.get(worker_stats, "/stats").await.unwrap().status, 200);

    // A stream in flight: its app connection and its backend connection are open now.
    let streaming = TestHttp::new();
    let mut long = chat(true);
    long["max_tokens"] = json!(40);
    let mut stream = streaming
        .post_stream(api, "/v1/chat/completions", &long)
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    assert!(stream.next_chunk().await.is_some(), "the stream started");

    let roles = Roles::of(&devnet);
    let backend = devnet.workers[0].backend.as_ref().unwrap().addr().port();
    assert_all_nodelay(
        &roles,
        &[
            (api.port(), "the client API"),
            (devnet.proxy.client_addr.port(), "the proxy's client port"),
            (devnet.proxy.worker_addr.port(), "the proxy's worker port"),
            (devnet.proxy.http_addr.port(), "the proxy's stats server"),
            (worker_stats.port(), "the worker's stats server"),
            (backend, "the backend"),
        ],
    );

    while stream.next_chunk().await.is_some() {}
    drop((http, streaming));
    devnet.stop().await;
}

async fn a_network_in_front_of_the_built_in_engine() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cocoon-engine/tests/fixtures/tiny-llama.gguf");
    let engine = Arc::new(cocoon_engine::Engine::load_with_threads(&model, 1).unwrap());
    let server = cocoon_engine::server::serve(engine, "127.0.0.1:0".parse().unwrap(), 2)
        .await
        .unwrap();
    let devnet = Devnet::builder()
        .backend_url(&server.url())
        .start()
        .await
        .unwrap();
    let http = TestHttp::new();
    let body = json!({"model": server.model, "prompt": "hi", "max_tokens": 2});
    let answer = http
        .post(devnet.client_addr(), "/v1/completions", &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut roles = Roles::of(&devnet);
    roles.0.insert(server.addr.port(), "built-in engine");
    // The worker's pooled keep-alive connection to the engine is still open.
    assert_all_nodelay(&roles, &[(server.addr.port(), "the built-in engine")]);
    devnet.stop().await;
}
