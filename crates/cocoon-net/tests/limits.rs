//! What a peer can make a connection hold, and for how long: bounded output queues (a ping
//! flood from a peer that never reads, sends to a stuck peer, one oversized answer), the write
//! stall that cuts a peer that never reads, and the authentication deadline.
//!
//! Every wait polls with a generous deadline, so a bug shows up as a failed test rather than a
//! hung one; nothing asserts how fast anything is.

mod support;

use std::time::Duration;

use cocoon_net::limits::{
    ConnectionLimits, DEFAULT_MAX_QUEUED_OUTPUT, UNAUTHENTICATED_MAX_QUEUED_OUTPUT,
};
use cocoon_net::{Incoming, NetError, ANSWER_REFUSED_CODE};
use cocoon_proto::session::SessionConfig;
use tokio::io::AsyncWriteExt;

use support::*;

/// What one read can add above the cap before the reader pauses: the pongs for one 16 KiB read
/// of pings (a pong is as long as its ping), plus a frame split across reads.
const ONE_READ_OF_PONGS: usize = (16 << 10) + 64;
/// Pings a flooding peer tries to send: far more than the kernel's socket buffers on both sides
/// (a few MiB each on loopback) plus any cap below, so an unbounded queue would show.
const FLOOD_BYTES: usize = 32 << 20;

fn limits(max_queued_output: usize, stall: Duration, auth: Option<Duration>) -> ConnectionLimits {
    ConnectionLimits {
        max_queued_output,
        write_stall_timeout: stall,
        auth_timeout: auth,
    }
}

/// Floods `stream` with pings in the background until the connection breaks.
fn flood_pings(
    mut stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> tokio::task::JoinHandle<()> {
    let flood = ping_frames(FLOOD_BYTES / 20);
    tokio::spawn(async move {
        // Ends with an error once the server cuts the connection.
        let _ = stream.write_all(&flood).await;
        let _ = stream.flush().await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_peer_that_never_reads_stays_bounded_and_is_cut() {
    const CAP: usize = 256 << 10;
    let acceptor =
        acceptor(&identity(), any_policy()).with_limits(limits(CAP, Duration::from_secs(2), None));
    let (stream, server) = never_reading_client(&acceptor).await;
    let _server_packets = serve(server.incoming);
    let flood = flood_pings(stream);

    within("the flooding peer is cut", server.handle.closed()).await;
    let reason = server.handle.close_reason().expect("a reason");
    assert!(reason.contains("does not read"), "reason: {reason}");
    let counters = acceptor.counters().snapshot();
    assert_eq!(counters.stalled_peers_cut, 1);
    let most = server.handle.max_queued_output();
    assert_eq!(counters.max_queued_output_bytes, most as u64);
    // The flood did fill the queue (the bound was exercised), and the queue stopped there.
    assert!(most > CAP, "the flood queued only {most} bytes");
    assert!(
        most <= CAP + ONE_READ_OF_PONGS,
        "{most} bytes queued, cap {CAP}"
    );
    within("the flooder sees the cut", flood)
        .await
        .expect("task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_pings_faster_than_it_reads_is_slowed_not_cut_and_gets_every_pong() {
    const CAP: usize = 64 << 10;
    const PINGS: usize = 200_000;
    let acceptor =
        acceptor(&identity(), any_policy()).with_limits(limits(CAP, Duration::from_secs(10), None));
    let (stream, server) = never_reading_client(&acceptor).await;
    let _server_packets = serve(server.incoming);
    let pings = ping_frames(PINGS);
    // A pong is as long as its ping; the first frame (`tcp.connect`) gets none.
    let expected = pings.len() - ping_frames(0).len();
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let flood = tokio::spawn(async move {
        write_half
            .write_all(&pings)
            .await
            .expect("the flood is taken");
        write_half.flush().await.expect("flushed");
        write_half
    });
    // Reads far slower than it pings, so the server's queue fills and its reader pauses; each
    // read lets it go on.
    let mut received = 0;
    let mut buffer = vec![0u8; 4096];
    within("every pong arrives", async {
        while received < expected {
            let n = tokio::io::AsyncReadExt::read(&mut read_half, &mut buffer)
                .await
                .expect("reading pongs");
            assert!(
                n > 0,
                "the server closed after {received} of {expected} bytes"
            );
            received += n;
            if received % (64 << 10) < 4096 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    })
    .await;
    assert_eq!(received, expected);
    within("the flood was sent", flood).await.expect("task");
    assert!(
        server.handle.close_reason().is_none(),
        "the slow reader was cut"
    );
    let most = server.handle.max_queued_output();
    assert!(
        most > CAP,
        "the queue never reached its cap ({most} bytes): nothing paused"
    );
    assert!(
        most <= CAP + ONE_READ_OF_PONGS,
        "{most} bytes queued, cap {CAP}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_before_authentication_stays_under_the_small_cap_and_hits_the_deadline() {
    // The defaults a proxy runs with, but a short deadline.
    let acceptor = acceptor(&identity(), any_policy()).with_limits(ConnectionLimits {
        auth_timeout: Some(Duration::from_secs(2)),
        ..ConnectionLimits::default()
    });
    let (stream, server) = never_reading_client(&acceptor).await;
    let _server_packets = serve(server.incoming);
    let flood = flood_pings(stream);

    within("the unauthenticated peer is cut", server.handle.closed()).await;
    let reason = server.handle.close_reason().expect("a reason");
    assert!(reason.contains("not authenticated"), "reason: {reason}");
    assert_eq!(acceptor.counters().snapshot().auth_timeouts, 1);
    let most = server.handle.max_queued_output();
    assert!(
        most <= UNAUTHENTICATED_MAX_QUEUED_OUTPUT + ONE_READ_OF_PONGS,
        "{most} bytes queued for an unauthenticated peer"
    );
    assert!(most < DEFAULT_MAX_QUEUED_OUTPUT);
    within("the flooder sees the cut", flood)
        .await
        .expect("task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_peer_that_never_reads_are_refused_then_the_peer_is_cut() {
    const CAP: usize = 8 << 20;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let acceptor =
        acceptor(&identity(), any_policy()).with_limits(limits(CAP, Duration::from_secs(3), None));
    let (stuck_client, server) = never_reading_client(&acceptor).await;

    let packet = vec![0u8; 1 << 20];
    let mut refusal = None;
    for _ in 0..1_000 {
        if let Err(error) = server.handle.send_packet(&packet) {
            refusal = Some(error);
            break;
        }
    }
    match refusal {
        Some(NetError::Backpressure {
            queued,
            size,
            limit,
        }) => {
            assert_eq!(limit, CAP);
            assert!(queued <= CAP && queued + size > CAP, "queued {queued}");
        }
        other => panic!("expected a refused send, got {other:?}"),
    }
    // The refusal is the caller's alone: the connection is still up...
    assert!(
        !server.handle.is_closed(),
        "closed: {:?}",
        server.handle.close_reason()
    );
    assert!(server.handle.queued_output() <= CAP);
    // ...until the peer has taken nothing for the stall timeout.
    within("the stuck peer is cut", server.handle.closed()).await;
    let reason = server.handle.close_reason().expect("a reason");
    assert!(reason.contains("does not read"), "reason: {reason}");
    let counters = acceptor.counters().snapshot();
    assert_eq!(counters.stalled_peers_cut, 1);
    assert!(counters.refused_sends >= 1);
    // The writer must not stay blocked on a socket the peer never drains.
    drop(server);
    drop(stuck_client);
    wait_for_tasks_to_exit(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_oversized_answer_fails_only_its_own_query() {
    const CAP: usize = 1 << 20;
    let server_acceptor =
        acceptor(&identity(), any_policy()).with_limits(limits(CAP, Duration::from_secs(30), None));
    let (client, server) = establish(&connector(&identity(), any_policy()), &server_acceptor).await;
    let (client, server) = (client.expect("client"), server.expect("server"));
    let _client_packets = serve(client.incoming);
    // The server's daemon: a 2 MiB answer to "big", an echo to anything else.
    let (refusals, mut refused) = tokio::sync::mpsc::unbounded_channel();
    let mut server_incoming = server.incoming;
    tokio::spawn(async move {
        while let Some(Incoming::Query(query)) = server_incoming.recv().await {
            if query.data == b"big" {
                let _ = refusals.send(query.answer(&vec![7u8; 2 << 20]));
            } else {
                let mut answer = b"re:".to_vec();
                answer.extend_from_slice(&query.data);
                let _ = query.answer(&answer);
            }
        }
    });

    let (big, small) = tokio::join!(
        client.handle.query(b"big", QUERY_TIMEOUT),
        client.handle.query(b"small", QUERY_TIMEOUT),
    );
    match big {
        Err(NetError::Remote { code, message }) => {
            assert_eq!(code, ANSWER_REFUSED_CODE);
            assert!(message.contains("refused"), "{message}");
        }
        other => panic!("the oversized answer: {other:?}"),
    }
    assert_eq!(small.expect("the other query is answered"), b"re:small");
    match within("the server's refusal", refused.recv()).await {
        Some(Err(NetError::Backpressure { limit, .. })) => assert_eq!(limit, CAP),
        other => panic!("the server's answer call: {other:?}"),
    }
    // The link is untouched.
    assert_eq!(
        within(
            "a later query",
            client.handle.query(b"later", QUERY_TIMEOUT)
        )
        .await
        .expect("answered"),
        b"re:later"
    );
    assert!(!server.handle.is_closed() && !client.handle.is_closed());
    assert_eq!(server_acceptor.counters().snapshot().refused_sends, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_authenticates_is_closed_at_its_deadline_pings_or_not() {
    let acceptor = acceptor(&identity(), any_policy()).with_limits(ConnectionLimits {
        auth_timeout: Some(Duration::from_millis(500)),
        ..ConnectionLimits::default()
    });
    // The client pings far more often than the deadline.
    let connector = connector(&identity(), any_policy()).with_session_config(SessionConfig {
        idle_timeout_ms: 60_000,
        ping_interval_ms: Some(50),
    });
    let (client_ok, server_ok) = establish(&connector, &acceptor).await;
    let (client_ok, server_ok) = (client_ok.expect("client"), server_ok.expect("server"));
    assert!(!server_ok.handle.is_authenticated());
    server_ok.handle.mark_authenticated();
    let (client_idle, server_idle) = establish(&connector, &acceptor).await;
    let (client_idle, server_idle) = (client_idle.expect("client"), server_idle.expect("server"));
    let _packets = [
        serve(client_ok.incoming),
        serve(server_ok.incoming),
        serve(client_idle.incoming),
        serve(server_idle.incoming),
    ];

    within(
        "the unauthenticated connection closes",
        server_idle.handle.closed(),
    )
    .await;
    let reason = server_idle.handle.close_reason().expect("a reason");
    assert!(reason.contains("not authenticated"), "reason: {reason}");
    within("its client sees it", client_idle.handle.closed()).await;
    assert_eq!(acceptor.counters().snapshot().auth_timeouts, 1);
    // Pings did reach the server meanwhile; they kept nothing alive.
    assert!(
        server_idle
            .handle
            .stats()
            .bytes_received
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // The authenticated one was accepted first, so its deadline passed before the other's.
    assert!(
        !server_ok.handle.is_closed(),
        "closed: {:?}",
        server_ok.handle.close_reason()
    );
    assert_eq!(
        within(
            "query",
            client_ok.handle.query(b"still here", QUERY_TIMEOUT)
        )
        .await
        .expect("answered"),
        b"re:still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_deadline_holds_until_its_new_time() {
    let acceptor = acceptor(&identity(), any_policy()).with_limits(ConnectionLimits {
        auth_timeout: Some(Duration::from_millis(200)),
        ..ConnectionLimits::default()
    });
    let connector = connector(&identity(), any_policy());
    let (client_slow, server_slow) = establish(&connector, &acceptor).await;
    let (client_slow, server_slow) = (client_slow.expect("client"), server_slow.expect("server"));
    // Deferred far beyond the original deadline, e.g. for an authorisation waiting on chain.
    server_slow.handle.defer_auth_deadline(GENEROUS * 4);
    let (client_idle, server_idle) = establish(&connector, &acceptor).await;
    let (client_idle, server_idle) = (client_idle.expect("client"), server_idle.expect("server"));
    let _packets = [
        serve(client_slow.incoming),
        serve(server_slow.incoming),
        serve(client_idle.incoming),
        serve(server_idle.incoming),
    ];
    within("the other connection closes", server_idle.handle.closed()).await;
    assert!(
        !server_slow.handle.is_closed(),
        "closed: {:?}",
        server_slow.handle.close_reason()
    );
}
