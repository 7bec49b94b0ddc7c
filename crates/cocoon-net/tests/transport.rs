//! End-to-end tests of established connections over loopback TCP: packets and queries both
//! ways, closing, keepalive, and letting go of stuck peers and stuck daemons.
//!
//! Every wait is wrapped in a generous deadline so that a bug shows up as a failed test rather
//! than a hung one; nothing asserts how fast anything is.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cocoon_net::{ConnectionHandle, Incoming, NetError};
use cocoon_proto::session::SessionConfig;
use tokio::sync::mpsc;

use support::*;

// ---------------------------------------------------------------------------------------------
// Packets and queries
// ---------------------------------------------------------------------------------------------

/// Payload sizes: the TL length-prefix edges first, one 1 MiB packet in the middle, then a
/// spread up to 70 KiB (every fourth packet large, the rest small, to keep the test quick).
fn packet_size(index: usize) -> usize {
    const EDGES: [usize; 14] = [
        0,
        1,
        3,
        4,
        5,
        252,
        253,
        254,
        255,
        256,
        65_535,
        65_536,
        70 * 1024 - 1,
        70 * 1024,
    ];
    if index == 500 {
        1 << 20
    } else if let Some(size) = EDGES.get(index) {
        *size
    } else if index.is_multiple_of(4) {
        (index * 7919) % (70 * 1024 + 1)
    } else {
        (index * 131) % 2048
    }
}

fn packet_content(direction: u8, index: usize) -> Vec<u8> {
    (0..packet_size(index))
        .map(|offset| (offset as u8) ^ (index as u8).wrapping_mul(31) ^ direction)
        .collect()
}

const PACKET_COUNT: usize = 1000;

async fn send_and_check_packets(
    sender: ConnectionHandle,
    receiver: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    direction: u8,
) {
    let sending = tokio::spawn(async move {
        for index in 0..PACKET_COUNT {
            sender
                .send_packet(&packet_content(direction, index))
                .expect("queueing a packet");
            if index.is_multiple_of(64) {
                // Let the writer run now and then, as a real sender would.
                tokio::task::yield_now().await;
            }
        }
    });
    for index in 0..PACKET_COUNT {
        let data = within("receiving packets", receiver.recv())
            .await
            .expect("connection stays open");
        assert_eq!(data.len(), packet_size(index), "size of packet {index}");
        assert!(
            data == packet_content(direction, index),
            "content of packet {index} (direction {direction})"
        );
    }
    sending.await.expect("sender task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_carries_packets_and_queries_both_ways() {
    let (client, server, client_identity, server_identity) = connected_pair().await;

    assert_eq!(client.handle.peer().public_key, server_identity.public_key);
    assert_eq!(server.handle.peer().public_key, client_identity.public_key);
    assert_eq!(client.handle.peer().policy, "any");
    assert_eq!(client.handle.peer().image_hash, None);
    assert!(client.handle.remote_addr().ip().is_loopback());
    assert!(server.handle.remote_addr().ip().is_loopback());
    assert_ne!(client.handle.id(), server.handle.id());

    let client_handle = client.handle.clone();
    let server_handle = server.handle.clone();
    let mut client_packets = serve(client.incoming);
    let mut server_packets = serve(server.incoming);

    // Both directions at once.
    tokio::join!(
        send_and_check_packets(client_handle.clone(), &mut server_packets, 1),
        send_and_check_packets(server_handle.clone(), &mut client_packets, 2),
    );

    // A query and its answer, both directions.
    let answer = within("query", client_handle.query(b"hello", QUERY_TIMEOUT))
        .await
        .expect("answered");
    assert_eq!(answer, b"re:hello");
    let answer = within("query", server_handle.query(b"", QUERY_TIMEOUT))
        .await
        .expect("answered");
    assert_eq!(answer, b"re:");
    let big = vec![7u8; 300_000];
    let answer = within("big query", client_handle.query(&big, QUERY_TIMEOUT))
        .await
        .expect("answered");
    assert_eq!(answer.len(), big.len() + 3);

    // A query that fails.
    let error = within(
        "failing query",
        client_handle.query(b"fail me", QUERY_TIMEOUT),
    )
    .await
    .expect_err("fails");
    match error {
        NetError::Remote { code, message } => {
            assert_eq!(code, 42);
            assert_eq!(message, "refused fail me");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }

    // Many concurrent queries from several tasks, each matched to its own answer.
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let handle = if task.is_multiple_of(2) {
            client_handle.clone()
        } else {
            server_handle.clone()
        };
        tasks.push(tokio::spawn(async move {
            for round in 0..25 {
                let fail = round % 5 == 4;
                let request = if fail {
                    format!("fail {task}/{round}")
                } else {
                    format!("task {task} round {round} {}", "x".repeat(round * 97))
                };
                let result = handle.query(request.as_bytes(), QUERY_TIMEOUT).await;
                if fail {
                    match result {
                        Err(NetError::Remote { code: 42, message }) => {
                            assert_eq!(message, format!("refused {request}"));
                        }
                        other => panic!("{request}: expected remote error, got {other:?}"),
                    }
                } else {
                    let answer = result.expect("answered");
                    assert_eq!(answer, format!("re:{request}").into_bytes());
                }
            }
        }));
    }
    for task in tasks {
        within("concurrent queries", task)
            .await
            .expect("query task");
    }

    assert!(client_handle.stats().bytes_sent.load(Ordering::Relaxed) > 1 << 20);
    assert!(server_handle.stats().bytes_received.load(Ordering::Relaxed) > 1 << 20);
    assert!(!client_handle.is_closed());
    assert!(!server_handle.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_sent_before_the_first_read_are_not_lost() {
    let (client, server, _, _) = connected_pair().await;
    // Queue everything before anybody reads the other side.
    for index in 0..100u32 {
        client
            .handle
            .send_packet(&index.to_le_bytes())
            .expect("queued");
    }
    let mut incoming = server.incoming;
    for index in 0..100u32 {
        match within("packet", incoming.recv()).await {
            Some(Incoming::Packet(data)) => assert_eq!(data, index.to_le_bytes()),
            other => panic!("expected packet {index}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_query_times_out_and_the_connection_survives() {
    let (client, server, _, _) = connected_pair().await;
    let mut server_incoming = server.incoming;
    let error = within(
        "query timeout",
        client
            .handle
            .query(b"nobody answers", Duration::from_millis(200)),
    )
    .await
    .expect_err("times out");
    assert!(matches!(error, NetError::Timeout), "{error:?}");
    // The query did arrive; answering it late is harmless (the answer is dropped).
    let Some(Incoming::Query(query)) = within("query arrives", server_incoming.recv()).await else {
        panic!("expected the query");
    };
    assert_eq!(query.data, b"nobody answers");
    query.answer(b"too late").expect("answer queued");
    // The connection still works.
    let _client_packets = serve(client.incoming);
    let answer = tokio::spawn({
        let handle = server.handle.clone();
        async move { handle.query(b"still there?", QUERY_TIMEOUT).await }
    });
    assert_eq!(
        within("query after timeout", answer)
            .await
            .expect("task")
            .expect("answered"),
        b"re:still there?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_packet_is_refused_locally_and_the_connection_survives() {
    let (client, server, _, _) = connected_pair().await;
    let oversized = vec![0u8; (16 << 20) + 1];
    let error = client
        .handle
        .send_packet(&oversized)
        .expect_err("too large");
    assert!(matches!(error, NetError::Session(_)), "{error:?}");
    client.handle.send_packet(b"small").expect("queued");
    let mut incoming = server.incoming;
    match within("packet", incoming.recv()).await {
        Some(Incoming::Packet(data)) => assert_eq!(data, b"small"),
        other => panic!("expected the small packet, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_ends_the_other() {
    let (client, server, _, _) = connected_pair().await;
    let mut client_incoming = client.incoming;
    let mut server_incoming = server.incoming;

    // The server asks something the client will never answer.
    let pending = tokio::spawn({
        let handle = server.handle.clone();
        async move { handle.query(b"are you there?", QUERY_TIMEOUT).await }
    });
    let Some(Incoming::Query(query)) = within("query arrives", client_incoming.recv()).await else {
        panic!("expected the server's query");
    };

    client.handle.close("test is done");
    assert!(client.handle.is_closed());
    assert_eq!(
        client.handle.close_reason().as_deref(),
        Some("test is done")
    );

    // The server notices: its pending query fails, its incoming stream ends, `closed` resolves.
    let result = within("pending query", pending).await.expect("task");
    assert!(
        matches!(result, Err(NetError::Closed(_))),
        "pending query: {result:?}"
    );
    assert!(within("server incoming ends", server_incoming.recv())
        .await
        .is_none());
    within("server closed", server.handle.closed()).await;
    assert!(server.handle.is_closed());
    assert!(server.handle.close_reason().is_some());

    // The client's own side is finished too.
    within("client closed", client.handle.closed()).await;
    assert!(within("client incoming ends", client_incoming.recv())
        .await
        .is_none());

    // Nothing can be sent any more, from either side.
    assert!(matches!(query.answer(b"late"), Err(NetError::Closed(_))));
    match client.handle.send_packet(b"after close") {
        Err(NetError::Closed(reason)) => assert_eq!(reason, "test is done"),
        other => panic!("send after close: {other:?}"),
    }
    assert!(matches!(
        client.handle.query(b"after close", QUERY_TIMEOUT).await,
        Err(NetError::Closed(_))
    ));
    assert!(matches!(
        server.handle.send_packet(b"after close"),
        Err(NetError::Closed(_))
    ));

    // Closing twice keeps the first reason.
    client.handle.close("second reason");
    assert_eq!(
        client.handle.close_reason().as_deref(),
        Some("test is done")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_close_guard_closes_the_connection() {
    let (client, server, _, _) = connected_pair().await;
    let guard = client.handle.close_on_drop();
    assert!(!client.handle.is_closed());
    drop(guard);
    within("client closed", client.handle.closed()).await;
    within("server closed", server.handle.closed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_incoming_stream_does_not_wedge_the_sender() {
    // A daemon that stops reading: the peer's packets can no longer be delivered, and the
    // connection closes rather than buffering forever.
    let (client, server, _, _) = connected_pair().await;
    drop(server.incoming);
    client.handle.send_packet(b"into the void").expect("queued");
    within("server closed", server.handle.closed()).await;
    within("client closed", client.handle.closed()).await;
}

// ---------------------------------------------------------------------------------------------
// Keepalive
// ---------------------------------------------------------------------------------------------

// The clock is paused and held (`hold_the_clock`): the sockets are real, but only the test moves
// time, one step at a time, after what was due at the last step has arrived.

#[tokio::test(start_paused = true)]
async fn pings_keep_an_idle_connection_open() {
    let _hold = hold_the_clock();
    let ping_interval = Duration::from_millis(200);
    let connector = connector(&identity(), any_policy()).with_session_config(SessionConfig {
        idle_timeout_ms: 1_000,
        ping_interval_ms: Some(200),
    });
    let acceptor = acceptor(&identity(), any_policy()).with_session_config(SessionConfig {
        idle_timeout_ms: 1_200,
        ping_interval_ms: None,
    });
    let (listener, address) = listener().await;
    let accepting = async {
        let (tcp, _) = listener.accept().await.expect("accepting tcp");
        acceptor.accept(tcp).await
    };
    let (client, server) = within_real_time("handshake", async {
        tokio::join!(connector.connect(&address), accepting)
    })
    .await;
    let (client, server) = (client.expect("client"), server.expect("server"));
    let _client_packets = serve(client.incoming);
    let _server_packets = serve(server.incoming);
    let received =
        |handle: &ConnectionHandle| handle.stats().bytes_received.load(Ordering::Relaxed);

    // Fifteen ping intervals, three of the client's idle timeouts and more than two of the
    // server's, with no application traffic at all: each interval a ping goes out and its pong
    // comes back, and that alone keeps both sides open.
    for step in 1..=15 {
        let (server_before, client_before) = (received(&server.handle), received(&client.handle));
        tokio::time::advance(ping_interval).await;
        until_real_time(&format!("ping and pong of interval {step}"), || {
            received(&server.handle) > server_before && received(&client.handle) > client_before
        })
        .await;
        assert!(
            !client.handle.is_closed(),
            "client closed at interval {step}: {:?}",
            client.handle.close_reason()
        );
        assert!(
            !server.handle.is_closed(),
            "server closed at interval {step}: {:?}",
            server.handle.close_reason()
        );
    }
    let answer = within_real_time("query", client.handle.query(b"ping?", QUERY_TIMEOUT))
        .await
        .expect("still works");
    assert_eq!(answer, b"re:ping?");
}

#[tokio::test(start_paused = true)]
async fn a_server_closes_a_peer_that_never_pings() {
    let _hold = hold_the_clock();
    let connector = connector(&identity(), any_policy()).with_session_config(SessionConfig {
        idle_timeout_ms: 600_000,
        ping_interval_ms: None,
    });
    let acceptor = acceptor(&identity(), any_policy()).with_session_config(SessionConfig {
        idle_timeout_ms: 500,
        ping_interval_ms: None,
    });
    let (listener, address) = listener().await;
    let accepting = async {
        let (tcp, _) = listener.accept().await.expect("accepting tcp");
        acceptor.accept(tcp).await
    };
    let (client, server) = within_real_time("handshake", async {
        tokio::join!(connector.connect(&address), accepting)
    })
    .await;
    let (client, server) = (client.expect("client"), server.expect("server"));
    let _client_packets = serve(client.incoming);
    let _server_packets = serve(server.incoming);

    // The client's last bytes (its `tcp.connect`) arrived at the start: the server keeps it
    // 500 ms and not a millisecond less.
    tokio::time::advance(Duration::from_millis(499)).await;
    settle().await;
    assert!(
        !server.handle.is_closed(),
        "closed early: {:?}",
        server.handle.close_reason()
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    within_real_time("server closes an idle peer", server.handle.closed()).await;
    let reason = server.handle.close_reason().expect("a reason");
    assert!(reason.contains("idle timeout"), "reason: {reason}");
    within_real_time("client sees the server go", client.handle.closed()).await;
}

// ---------------------------------------------------------------------------------------------
// Stuck daemons: a closed connection must let go of its tasks and socket (stuck peers:
// `limits.rs`)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_whose_daemon_stopped_reading_ends_its_tasks() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let (client, server, _, _) = connected_pair().await;
    // The daemon keeps `incoming` but stops reading it; the peer fills the queue until the
    // reader task waits for room.
    let _unread = server.incoming;
    let client_packets = serve(client.incoming);
    for index in 0..2_000u32 {
        client
            .handle
            .send_packet(&index.to_le_bytes())
            .expect("queued");
    }
    // Every frame is at least 16 bytes and the queue holds 1024 packets, so the reader has read
    // at least 1025 frames by the time it blocks on a full queue. How many more it reads
    // depends on how the socket chunks the stream, so wait only for what is certain.
    within("server receives a queue-full of packets", async {
        while server.handle.stats().bytes_received.load(Ordering::Relaxed) < 1_025 * 16 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.handle.close("daemon gave up");
    within("client sees the close", client.handle.closed()).await;
    drop(client_packets);
    drop(client.handle);
    wait_for_tasks_to_exit(baseline).await;
}
