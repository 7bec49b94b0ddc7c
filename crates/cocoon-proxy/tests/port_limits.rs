//! The proxy's ports hold under abuse: a raw-socket flood from one source is refused at the
//! per-source cap (before any PoW) while a legitimate client still connects, and a connection
//! that never authorises is closed at the deadline, pings or not. The numbers come from the
//! proxy's own `/stats`.
//!
//! Loopback only; every wait polls with a generous deadline, so a bug shows up as a failed test
//! rather than a hung one, and nothing asserts how fast anything is.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_net::{Connection, Connector, ShutdownTrigger};
use cocoon_proto::session::SessionConfig;
use cocoon_proto::*;
use cocoon_proxy::{ProxyConfig, RunningProxy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Only a hang takes this long.
const HANG_GUARD: Duration = Duration::from_secs(60);
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const POW_BITS: i32 = 8;

/// Fails the test when `future` hangs: the guard is real time, so it also holds on a paused
/// clock.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(HANG_GUARD);
        let _ = expired.send(());
    });
    tokio::select! {
        value = future => value,
        _ = expiry => panic!("{what}: nothing happened within {HANG_GUARD:?}"),
    }
}

/// Keeps tokio's paused clock where it is until dropped: on a current-thread runtime the clock
/// does not jump to the next timer while a blocking task runs, so handshakes take what real
/// time they need and only `tokio::time::advance` moves the clock.
struct ClockHold(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn hold_the_clock() -> ClockHold {
    let (hold, released) = std::sync::mpsc::channel::<()>();
    // Ends when the sender is dropped (`recv` fails).
    tokio::task::spawn_blocking(move || released.recv());
    ClockHold(hold)
}

/// Waits a little real time without blocking the runtime or moving a paused clock.
async fn pause_a_moment() {
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)))
        .await
        .expect("sleeping");
}

/// A free proxy on loopback ports with the fake TEE, after `adjust`.
async fn start_proxy(adjust: impl FnOnce(&mut ProxyConfig)) -> (RunningProxy, ShutdownTrigger) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = ProxyConfig::new(
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.client_listen = loopback;
    config.worker_listen = loopback;
    config.http_listen = loopback;
    config.pow_difficulty = POW_BITS;
    config.grace_period_secs = 0.0;
    adjust(&mut config);
    let (trigger, shutdown) = ShutdownTrigger::new();
    let proxy = cocoon_proxy::start(config, shutdown)
        .await
        .expect("proxy starts");
    (proxy, trigger)
}

/// The proxy's `/stats`, over a plain HTTP/1.1 request.
async fn stats(proxy: &RunningProxy) -> Value {
    let mut tcp = TcpStream::connect(proxy.http_addr).await.expect("http");
    tcp.write_all(b"GET /stats HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.expect("response");
    let text = String::from_utf8(response).expect("utf-8");
    let (_, body) = text.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).expect("JSON stats")
}

/// Polls `/stats` until `check` holds.
async fn stats_until(proxy: &RunningProxy, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    within(what, async {
        loop {
            let stats = stats(proxy).await;
            if check(&stats) {
                return stats;
            }
            pause_a_moment().await;
        }
    })
    .await
}

/// A client connector (no TEE) that trusts the devnet's fake attestation.
fn client_connector() -> Connector {
    let identity = TeeConfig::none()
        .identity("test-client")
        .expect("client identity");
    let policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx)
        .build()
        .expect("policy")
        .policy;
    Connector::new(&identity.tls, policy, 28).expect("connector")
}

/// `connectToProxy` then a short authorisation, as a client daemon does on a free proxy.
async fn authorize(connection: &Connection, owner: &str) {
    let connect = ClientConnectToProxy {
        params: ClientParams {
            client_owner_address: owner.into(),
            is_test: Some(true),
            proto_version: Some(ProtoVersionRange {
                min: codes::MIN_PROTO_VERSION,
                max: codes::PROTO_VERSION,
            }),
        },
        min_config_version: 0,
    };
    let answer = within(
        "connectToProxy",
        connection.handle.query(&connect.to_bytes(), QUERY_TIMEOUT),
    )
    .await
    .expect("connected");
    ClientConnectedToProxy::from_bytes(&answer).expect("connectedToProxy");
    let authorize = ClientToProxyQuery::AuthorizeShort(ClientAuthorizeWithProxyShort {
        data: b"free".to_vec(),
    });
    let answer = within(
        "authorize",
        connection
            .handle
            .query(&authorize.to_bytes(), QUERY_TIMEOUT),
    )
    .await
    .expect("answered");
    assert!(matches!(
        AuthorizationWithProxy::from_bytes(&answer).expect("authorization"),
        AuthorizationWithProxy::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_socket_flood_beyond_the_per_source_cap_is_refused_while_a_client_still_connects() {
    const PER_IP: usize = 4;
    const FLOOD: usize = 20;
    let (proxy, _trigger) = start_proxy(|config| config.max_connections_per_ip = PER_IP).await;

    // Raw sockets from another loopback address, which never even answer the PoW.
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
            .expect("binding 127.0.0.2");
        flood.push(
            socket
                .connect(proxy.client_addr)
                .await
                .expect("tcp connect"),
        );
    }
    stats_until(&proxy, "the flood is refused", |stats| {
        stats["limits"]["clients"]["refused_per_ip_cap"] == (FLOOD - PER_IP) as u64
    })
    .await;
    // The admitted ones were sent a PoW challenge; the refused ones were closed unread.
    let mut challenged = 0;
    for tcp in &mut flood {
        let mut challenge = [0u8; pow::POW_CHALLENGE_LEN];
        if within("a flood socket", tcp.read_exact(&mut challenge))
            .await
            .is_ok()
        {
            challenged += 1;
        }
    }
    assert_eq!(challenged, PER_IP);

    // A client from another address is not affected.
    let connection = within(
        "a legitimate client",
        client_connector().connect(&proxy.client_addr.to_string()),
    )
    .await
    .expect("the client connects");
    authorize(&connection, "legitimate-client").await;
    let stats = stats(&proxy).await;
    let clients = &stats["limits"]["clients"];
    assert_eq!(clients["open"], (PER_IP + 1) as u64, "{stats}");
    assert_eq!(clients["refused_connections"], (FLOOD - PER_IP) as u64);
    assert_eq!(clients["refused_total_cap"], 0);
    // The worker port has caps of its own.
    assert_eq!(stats["limits"]["workers"]["refused_connections"], 0);
}

/// The clock is paused and held: the handshakes and the authorisation take what real time they
/// take, then the test moves the clock in ping intervals up to the deadline.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_authorizes_is_closed_after_the_deadline() {
    let (proxy, _trigger) = start_proxy(|config| config.auth_timeout_secs = 1.0).await;
    let _hold = hold_the_clock();
    // Both ping far more often than the deadline.
    let ping_interval = Duration::from_millis(100);
    let connector = client_connector().with_session_config(SessionConfig {
        idle_timeout_ms: 60_000,
        ping_interval_ms: Some(100),
    });
    let address = proxy.client_addr.to_string();
    let authorized = within("client", connector.connect(&address))
        .await
        .expect("connects");
    authorize(&authorized, "honest-client").await;
    let silent = within("client", connector.connect(&address))
        .await
        .expect("connects");
    // It may even ask what the proxy serves: that is not authorisation.
    let types = within(
        "getWorkerTypesV2",
        silent.handle.query(
            &ClientToProxyQuery::GetWorkerTypesV2(ClientGetWorkerTypesV2 {}).to_bytes(),
            QUERY_TIMEOUT,
        ),
    )
    .await;
    assert!(types.is_ok(), "{types:?}");

    // Nine ping intervals: each time the silent client pings and the proxy answers, and the
    // connection stays; 999 ms after the accept it is still there.
    let received = || silent.handle.stats().bytes_received.load(Ordering::Relaxed);
    for step in 1..=9 {
        let before = received();
        tokio::time::advance(ping_interval).await;
        within(&format!("the pong of interval {step}"), async {
            while received() == before {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            !silent.handle.is_closed(),
            "cut at {step}00 ms: {:?}",
            silent.handle.close_reason()
        );
    }
    tokio::time::advance(Duration::from_millis(99)).await;
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    assert!(
        !silent.handle.is_closed(),
        "cut before the deadline: {:?}",
        silent.handle.close_reason()
    );
    // At the deadline it goes.
    tokio::time::advance(Duration::from_millis(1)).await;
    within("the silent client is cut", silent.handle.closed()).await;
    let stats = stats_until(&proxy, "the timeout is counted", |stats| {
        stats["limits"]["clients"]["auth_timeouts"] == 1
    })
    .await;
    assert_eq!(stats["limits"]["clients"]["open"], 1, "{stats}");
    // The authorised client connected first, so its deadline passed first: it stays.
    assert!(
        !authorized.handle.is_closed(),
        "closed: {:?}",
        authorized.handle.close_reason()
    );
    let again = within(
        "a query after the deadline",
        authorized.handle.query(
            &ClientToProxyQuery::GetWorkerTypesV2(ClientGetWorkerTypesV2 {}).to_bytes(),
            QUERY_TIMEOUT,
        ),
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_proxy_bounds_the_identities_of_one_connection_and_their_length() {
    let (proxy, _trigger) =
        start_proxy(|config| config.max_free_identities_per_connection = 2).await;
    let connection = within(
        "client",
        client_connector().connect(&proxy.client_addr.to_string()),
    )
    .await
    .expect("connects");
    let connect = |owner: String| ClientConnectToProxy {
        params: ClientParams {
            client_owner_address: owner,
            is_test: Some(true),
            proto_version: Some(ProtoVersionRange {
                min: codes::MIN_PROTO_VERSION,
                max: codes::PROTO_VERSION,
            }),
        },
        min_config_version: 0,
    };
    let ask = |owner: String| {
        let bytes = connect(owner).to_bytes();
        let handle = connection.handle.clone();
        async move { within("connectToProxy", handle.query(&bytes, QUERY_TIMEOUT)).await }
    };
    ask("first".into()).await.expect("one identity");
    ask("second".into()).await.expect("two identities");
    ask("first".into()).await.expect("one seen before");
    match ask("third".into()).await {
        Err(cocoon_net::NetError::Remote { code, message }) => {
            assert_eq!(code, codes::BAD_REQUEST);
            assert!(message.contains("identities"), "{message}");
        }
        other => panic!("a third identity: {other:?}"),
    }
    match ask("x".repeat(257)).await {
        Err(cocoon_net::NetError::Remote { code, message }) => {
            assert_eq!(code, codes::BAD_REQUEST);
            assert!(message.contains("257 bytes"), "{message}");
        }
        other => panic!("a long owner: {other:?}"),
    }
    // The connection itself is fine.
    authorize(&connection, "second").await;
}
