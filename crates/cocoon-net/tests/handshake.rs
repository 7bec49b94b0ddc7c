//! End-to-end tests of connection establishment over loopback TCP: the proof-of-work gate,
//! peer policies, the TLS parameters the acceptor insists on (probed with a hand-made rustls
//! client), and handshake deadlines.
//!
//! Every wait is wrapped in a generous deadline so that a bug shows up as a failed test rather
//! than a hung one; nothing asserts how fast anything is.

mod support;

use std::sync::Arc;
use std::time::Duration;

use cocoon_net::{Acceptor, Connector, NetError, PeerPolicy, PolicyError};
use cocoon_proto::pow::PowResponse;
use cocoon_proto::session::SessionEvent;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

// ---------------------------------------------------------------------------------------------
// Proof of work
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_refuses_a_challenge_above_its_limit() {
    let server_identity = identity();
    let acceptor = Acceptor::new(&server_identity, any_policy(), 12).expect("acceptor");
    let connector = Connector::new(&identity(), any_policy(), 11).expect("connector");
    let (client, server) = establish(&connector, &acceptor).await;
    match client {
        Err(NetError::PowTooHard { difficulty, max }) => {
            assert_eq!(difficulty, 12);
            assert_eq!(max, 11);
        }
        other => panic!("expected PowTooHard, got {other:?}"),
    }
    // The client hung up instead of answering.
    let error = server.expect_err("server sees the client leave");
    assert!(matches!(error, NetError::Io(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_rejects_a_wrong_nonce_and_closes() {
    let acceptor = acceptor(&identity(), any_policy());
    let (listener, address) = listener().await;
    let client = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(&address).await.expect("tcp connect");
        let challenge = read_challenge(&mut tcp).await;
        let wrong = (0i64..)
            .find(|nonce| !challenge.verify(*nonce))
            .expect("some nonce fails");
        tcp.write_all(&PowResponse { nonce: wrong }.to_bytes())
            .await
            .expect("sending nonce");
        assert!(
            peer_closed(&mut tcp).await,
            "server closes after a bad nonce"
        );
    });
    let (tcp, _) = listener.accept().await.expect("accept");
    let result = within("accept", acceptor.accept(tcp)).await;
    assert!(
        matches!(result, Err(NetError::PowRejected)),
        "expected PowRejected, got {result:?}"
    );
    within("client", client).await.expect("client task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_survives_garbage_instead_of_a_pow_answer() {
    let acceptor = acceptor(&identity(), any_policy());
    let (listener, address) = listener().await;
    let garbages: Vec<Vec<u8>> = vec![
        // Right length, wrong constructor.
        b"GET / HTTP/1".to_vec(),
        // A TLS ClientHello-looking start, longer than a response.
        vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0xaa, 0xbb,
        ],
        // Too short, then hang up.
        vec![0x19, 0x73],
        // Nothing at all, then hang up.
        vec![],
    ];
    for garbage in garbages {
        let address = address.clone();
        let sent = garbage.clone();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(&address).await.expect("tcp connect");
            let _ = read_challenge(&mut tcp).await;
            tcp.write_all(&sent).await.expect("sending garbage");
            if sent.len() < 12 {
                tcp.shutdown().await.expect("half-close");
            }
            assert!(peer_closed(&mut tcp).await, "server closes on garbage");
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let result = within("accept", acceptor.accept(tcp)).await;
        match result {
            Err(NetError::Pow(_)) if garbage.len() >= 12 => {}
            Err(NetError::Io(_)) if garbage.len() < 12 => {}
            other => panic!("garbage {garbage:?}: unexpected result {other:?}"),
        }
        within("client", client).await.expect("client task");
    }
    // The acceptor still serves honest clients afterwards.
    let connector = connector(&identity(), any_policy());
    let (client, server) = tokio::join!(connector.connect(&address), async {
        let (tcp, _) = listener.accept().await.expect("accept");
        acceptor.accept(tcp).await
    });
    client.expect("honest client connects");
    server.expect("honest client accepted");
}

// ---------------------------------------------------------------------------------------------
// Peer policies
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_policy_that_refuses_everyone_fails_both_sides() {
    let (client, server) = establish(
        &connector(&identity(), any_policy()),
        &acceptor(&identity(), Arc::new(RefuseEveryone)),
    )
    .await;
    let client_error = client.expect_err("client is refused");
    assert_connection_failure(&client_error, "client");
    let server_error = server.expect_err("server refuses");
    assert_eq!(
        policy_refusal(&server_error),
        Some(PolicyError::Refused("nobody is welcome".into())),
        "server error: {server_error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_policy_that_refuses_everyone_fails_both_sides() {
    let (client, server) = establish(
        &connector(&identity(), Arc::new(RefuseEveryone)),
        &acceptor(&identity(), any_policy()),
    )
    .await;
    let client_error = client.expect_err("client refuses");
    assert_eq!(
        policy_refusal(&client_error),
        Some(PolicyError::Refused("nobody is welcome".into())),
        "client error: {client_error:?}"
    );
    let server_error = server.expect_err("server is refused");
    assert_connection_failure(&server_error, "server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_policy_admits_only_its_key() {
    let server_identity = identity();
    let welcome = identity();
    let stranger = identity();
    let acceptor = acceptor(&server_identity, Arc::new(AllowOnly(welcome.public_key)));
    let server_pin: Arc<dyn PeerPolicy> = Arc::new(AllowOnly(server_identity.public_key));

    let (client, server) = establish(&connector(&welcome, server_pin.clone()), &acceptor).await;
    let client = client.expect("welcome client connects");
    let server = server.expect("welcome client accepted");
    assert_eq!(server.handle.peer().public_key, welcome.public_key);
    assert_eq!(server.handle.peer().policy, "allow-only");
    assert_eq!(client.handle.peer().public_key, server_identity.public_key);
    assert_eq!(client.handle.peer().policy, "allow-only");

    let (client, server) = establish(&connector(&stranger, server_pin), &acceptor).await;
    assert_connection_failure(&client.expect_err("stranger refused"), "stranger");
    let server_error = server.expect_err("stranger refused");
    assert_eq!(
        policy_refusal(&server_error),
        Some(PolicyError::Refused("key is not on the allow-list".into())),
        "server error: {server_error:?}"
    );

    // A client pinned to some other server key refuses this server.
    let wrong_pin: Arc<dyn PeerPolicy> = Arc::new(AllowOnly(stranger.public_key));
    let (client, _server) = establish(&connector(&welcome, wrong_pin), &acceptor).await;
    let client_error = client.expect_err("client refuses an unpinned server");
    assert_eq!(
        policy_refusal(&client_error),
        Some(PolicyError::Refused("key is not on the allow-list".into())),
        "client error: {client_error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_policy_refuses_are_refused_on_the_wire() {
    let server_identity = identity();
    let acceptor = acceptor(&server_identity, any_policy());

    let expired = custom_identity(|params| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let (client, server) = establish(&connector(&expired, any_policy()), &acceptor).await;
    assert_connection_failure(&client.expect_err("expired client refused"), "client");
    let server_error = server.expect_err("expired client refused");
    assert_eq!(
        policy_refusal(&server_error),
        Some(PolicyError::Expired),
        "{server_error:?}"
    );

    let critical = custom_identity(|params| {
        let mut extension =
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 59_999, 1], vec![5, 0]);
        extension.set_criticality(true);
        params.custom_extensions.push(extension);
    });
    let (client, server) = establish(&connector(&critical, any_policy()), &acceptor).await;
    assert_connection_failure(&client.expect_err("critical extension refused"), "client");
    let server_error = server.expect_err("critical extension refused");
    assert_eq!(
        policy_refusal(&server_error),
        Some(PolicyError::UnknownCriticalExtension(
            "1.3.6.1.4.1.59999.1".into()
        )),
        "{server_error:?}"
    );

    // The same extension, not critical, is fine.
    let harmless = custom_identity(|params| {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 59_999, 1],
                vec![5, 0],
            ));
    });
    let (client, server) = establish(&connector(&harmless, any_policy()), &acceptor).await;
    client.expect("non-critical extension accepted");
    assert_eq!(
        server.expect("accepted").handle.peer().public_key,
        harmless.public_key
    );
}

// ---------------------------------------------------------------------------------------------
// TLS parameters, with a hand-made client
// ---------------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_tls13_client_interoperates() {
    // The control for the refusals below: the same hand-made client, with the parameters the
    // acceptor wants, gets all the way through.
    let client_identity = identity();
    let config = hand_made_client_config(
        &[&rustls::version::TLS13],
        vec![rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
        &client_identity,
    );
    let (client, server) = hand_made_handshake(config).await;
    let (mut stream, mut session) = client.expect("hand-made client connects");
    let server = server.expect("acceptor accepts the hand-made client");
    assert_eq!(server.handle.peer().public_key, client_identity.public_key);
    assert_eq!(
        stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The server sends a packet; the hand-made session decodes it.
    server
        .handle
        .send_packet(b"hello, stranger")
        .expect("queued");
    let mut buffer = vec![0u8; 4096];
    let event = within("packet to the hand-made client", async {
        loop {
            if let Some(event) = session.poll_event() {
                return event;
            }
            let n = stream.read(&mut buffer).await.expect("reading");
            assert_ne!(n, 0, "server hung up");
            session.receive(0, &buffer[..n]).expect("valid frames");
        }
    })
    .await;
    assert_eq!(event, SessionEvent::Packet(b"hello, stranger".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_only_client_cannot_connect() {
    let config = hand_made_client_config(
        &[&rustls::version::TLS12],
        rustls::crypto::ring::default_provider().cipher_suites,
        &identity(),
    );
    let (client, server) = hand_made_handshake(config).await;
    // The server refuses the hello and says why.
    let client_error = NetError::Io(client.expect_err("TLS 1.2 refused"));
    assert!(
        matches!(
            tls_error(&client_error),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
            ))
        ),
        "client error: {client_error:?}"
    );
    let server_error = server.expect_err("TLS 1.2 refused");
    assert!(
        matches!(
            tls_error(&server_error),
            Some(rustls::Error::PeerIncompatible(_))
        ),
        "server error: {server_error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_only_chacha_cannot_connect() {
    let config = hand_made_client_config(
        &[&rustls::version::TLS13],
        vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
        &identity(),
    );
    let (client, server) = hand_made_handshake(config).await;
    let client_error = NetError::Io(client.expect_err("no common cipher suite"));
    assert!(
        matches!(
            tls_error(&client_error),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))
        ),
        "client error: {client_error:?}"
    );
    let server_error = server.expect_err("no common cipher suite");
    assert!(
        matches!(
            tls_error(&server_error),
            Some(rustls::Error::PeerIncompatible(_))
        ),
        "server error: {server_error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Handshake deadlines
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_hits_the_handshake_timeout() {
    let mut acceptor = acceptor(&identity(), any_policy());
    acceptor.handshake_timeout = Duration::from_millis(300);
    let (listener, address) = listener().await;

    // Connects and says nothing at all.
    let silent = TcpStream::connect(&address).await.expect("tcp connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    let result = within("accept", acceptor.accept(tcp)).await;
    assert!(matches!(result, Err(NetError::Timeout)), "{result:?}");
    drop(silent);

    // Solves the PoW, then never starts TLS.
    let mut half_way = TcpStream::connect(&address).await.expect("tcp connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    let (_, result) = tokio::join!(solve_pow_by_hand(&mut half_way), acceptor.accept(tcp));
    assert!(matches!(result, Err(NetError::Timeout)), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_hits_the_connect_timeout() {
    let mut connector = connector(&identity(), any_policy());
    connector.handshake_timeout = Duration::from_millis(300);
    let (listener, address) = listener().await;
    // Accepts TCP and never sends a challenge; holds the socket until the test ends.
    let holder = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(GENEROUS).await;
        drop(tcp);
    });
    let result = within("connect", connector.connect(&address)).await;
    assert!(matches!(result, Err(NetError::Timeout)), "{result:?}");
    holder.abort();
}

/// The clock is paused and held (`hold_the_clock`): PoW and TLS take the real time they take
/// without the deadline moving, then the test moves the clock to just before the deadline and
/// onto it.
#[tokio::test(start_paused = true)]
async fn a_client_that_stalls_after_tls_is_cut_off_at_the_handshake_deadline() {
    let _hold = hold_the_clock();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let mut acceptor = acceptor(&identity(), any_policy());
    acceptor.handshake_timeout = Duration::from_millis(500);
    let (listener, address) = listener().await;
    let client_identity = identity();
    let config = hand_made_client_config(
        &[&rustls::version::TLS13],
        rustls::crypto::ring::default_provider().cipher_suites,
        &client_identity,
    );
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        acceptor.accept(tcp).await
    });
    // Completes PoW and TLS, then never sends `tcp.connect`.
    let mut stalled = within_real_time("PoW and TLS", async {
        let mut tcp = TcpStream::connect(&address).await.expect("tcp connect");
        solve_pow_by_hand(&mut tcp).await;
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("tls handshake")
    })
    .await;
    tokio::time::advance(Duration::from_millis(499)).await;
    settle().await;
    assert!(
        !server.is_finished(),
        "the server gave up before its deadline"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let result = within_real_time("the deadline", server)
        .await
        .expect("server task");
    assert!(matches!(result, Err(NetError::Timeout)), "{result:?}");
    // The half-made connection must not outlive the deadline: its socket closes and its
    // tasks exit, rather than lingering until the session's idle timeout.
    let mut byte = [0u8; 1];
    let read = within_real_time("server drops the stalled client", stalled.read(&mut byte)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    until_real_time("connection tasks exit", || {
        metrics.num_alive_tasks() <= baseline
    })
    .await;
}
