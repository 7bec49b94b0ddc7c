//! A client and a server session wired together in memory with a fake clock.

use cocoon_proto::frame::{FrameEncoder, MAX_PACKET_LEN};
use cocoon_proto::session::{Session, SessionConfig, SessionError, SessionEvent};
use cocoon_proto::*;

const CONNECT_ID: i64 = 0x1234;

/// Moves everything `from` has queued into `to`.
fn pump(from: &mut Session, to: &mut Session, now_ms: u64) -> Result<(), SessionError> {
    let mut wire = Vec::new();
    from.take_output(&mut wire);
    to.receive(now_ms, &wire)
}

fn events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn connected_pair() -> (Session, Session) {
    let mut client = Session::client(SessionConfig::client_default(), 0, CONNECT_ID);
    let mut server = Session::server(SessionConfig::server_default(), 0);
    assert!(!client.is_ready() && !server.is_ready());
    pump(&mut client, &mut server, 0).unwrap();
    assert_eq!(events(&mut server), vec![SessionEvent::Connected]);
    assert!(server.is_ready());
    pump(&mut server, &mut client, 0).unwrap();
    assert_eq!(events(&mut client), vec![SessionEvent::Connected]);
    assert!(client.is_ready());
    (client, server)
}

#[test]
fn handshake_connects_both_sides() {
    let (client, server) = connected_pair();
    assert_eq!(client.pending_output(), 0);
    assert_eq!(server.pending_output(), 0);
}

#[test]
fn handshake_bytes_are_framed_tcp_connect() {
    let mut client = Session::client(SessionConfig::client_default(), 0, 1);
    let mut wire = Vec::new();
    client.take_output(&mut wire);
    let mut expected = Vec::new();
    FrameEncoder::new()
        .encode(&TcpConnect { id: 1 }.to_bytes(), &mut expected)
        .unwrap();
    assert_eq!(wire, expected);
    assert_eq!(&wire[..8], &[12, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn packets_flow_both_ways() {
    let (mut client, mut server) = connected_pair();
    client.send_packet(b"to server").unwrap();
    server.send_packet(b"to client").unwrap();
    server.send_packet(b"").unwrap();
    pump(&mut client, &mut server, 1).unwrap();
    pump(&mut server, &mut client, 1).unwrap();
    assert_eq!(
        events(&mut server),
        vec![SessionEvent::Packet(b"to server".to_vec())]
    );
    assert_eq!(
        events(&mut client),
        vec![
            SessionEvent::Packet(b"to client".to_vec()),
            SessionEvent::Packet(Vec::new())
        ]
    );
}

#[test]
fn queries_get_answers_and_errors() {
    let (mut client, mut server) = connected_pair();
    let first = client.send_query(b"one").unwrap();
    let second = client.send_query(b"two").unwrap();
    assert_eq!((first, second), (1, 2));
    pump(&mut client, &mut server, 1).unwrap();
    assert_eq!(
        events(&mut server),
        vec![
            SessionEvent::Query {
                id: 1,
                data: b"one".to_vec()
            },
            SessionEvent::Query {
                id: 2,
                data: b"two".to_vec()
            },
        ]
    );
    server.send_query_answer(first, b"ONE").unwrap();
    server
        .send_query_error(second, 404, "no such thing")
        .unwrap();
    pump(&mut server, &mut client, 2).unwrap();
    assert_eq!(
        events(&mut client),
        vec![
            SessionEvent::QueryAnswer {
                id: 1,
                data: b"ONE".to_vec()
            },
            SessionEvent::QueryError {
                id: 2,
                code: 404,
                message: "no such thing".into()
            },
        ]
    );
}

#[test]
fn client_may_pipeline_before_connected() {
    let mut client = Session::client(SessionConfig::client_default(), 0, CONNECT_ID);
    let mut server = Session::server(SessionConfig::server_default(), 0);
    let id = client.send_query(b"early").unwrap();
    client.send_packet(b"also early").unwrap();
    pump(&mut client, &mut server, 0).unwrap();
    assert_eq!(
        events(&mut server),
        vec![
            SessionEvent::Connected,
            SessionEvent::Query {
                id,
                data: b"early".to_vec()
            },
            SessionEvent::Packet(b"also early".to_vec()),
        ]
    );
}

#[test]
fn byte_by_byte_delivery_works() {
    let (mut client, mut server) = connected_pair();
    client.send_packet(&[5; 300]).unwrap();
    client.send_query(&[6; 7]).unwrap();
    let mut wire = Vec::new();
    client.take_output(&mut wire);
    for byte in wire {
        server.receive(1, &[byte]).unwrap();
    }
    assert_eq!(
        events(&mut server),
        vec![
            SessionEvent::Packet(vec![5; 300]),
            SessionEvent::Query {
                id: 1,
                data: vec![6; 7]
            },
        ]
    );
}

#[test]
fn client_pings_every_ten_seconds_and_pongs_keep_it_alive() {
    let (mut client, mut server) = connected_pair();
    assert_eq!(client.poll_timeout(), Some(10_000));
    client.handle_timeout(9_999).unwrap();
    assert_eq!(client.pending_output(), 0);

    let mut now = 0;
    for _ in 0..30 {
        now = client.poll_timeout().unwrap();
        assert_eq!(now % 10_000, 0, "pings come every 10 s");
        client.handle_timeout(now).unwrap();
        assert!(client.pending_output() > 0, "a ping is queued at {now}");
        pump(&mut client, &mut server, now).unwrap();
        // The server answers with a pong and surfaces nothing.
        assert_eq!(events(&mut server), vec![]);
        assert!(server.pending_output() > 0);
        pump(&mut server, &mut client, now).unwrap();
        assert_eq!(events(&mut client), vec![]);
        server.handle_timeout(now).unwrap();
    }
    assert_eq!(now, 300_000);
    assert!(client.is_ready() && server.is_ready());
}

#[test]
fn client_times_out_when_pongs_stop() {
    let (mut client, _server) = connected_pair();
    client.handle_timeout(10_000).unwrap();
    assert_eq!(client.poll_timeout(), Some(20_000));
    assert_eq!(
        client.handle_timeout(20_000),
        Err(SessionError::IdleTimeout)
    );
    assert!(client.is_closed());
    assert_eq!(client.send_packet(b"x"), Err(SessionError::Closed));
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn server_times_out_after_sixty_silent_seconds() {
    let (_client, mut server) = connected_pair();
    assert_eq!(server.poll_timeout(), Some(60_000));
    server.handle_timeout(59_999).unwrap();
    assert_eq!(server.pending_output(), 0, "servers do not ping");
    assert_eq!(
        server.handle_timeout(60_000),
        Err(SessionError::IdleTimeout)
    );
    assert!(server.is_closed());
}

#[test]
fn traffic_resets_the_idle_timer() {
    let (mut client, mut server) = connected_pair();
    client.send_packet(b"hi").unwrap();
    pump(&mut client, &mut server, 50_000).unwrap();
    assert_eq!(server.poll_timeout(), Some(110_000));
    server.handle_timeout(100_000).unwrap();
}

#[test]
fn server_cannot_send_before_connect() {
    let mut server = Session::server(SessionConfig::server_default(), 0);
    assert_eq!(server.send_packet(b"x"), Err(SessionError::NotReady));
    assert_eq!(server.send_query(b"x"), Err(SessionError::NotReady));
    assert_eq!(
        server.send_query_answer(1, b"x"),
        Err(SessionError::NotReady)
    );
    assert_eq!(
        server.send_query_error(1, 1, "x"),
        Err(SessionError::NotReady)
    );
    assert_eq!(server.pending_output(), 0);
}

#[test]
fn first_packet_must_be_the_handshake() {
    let mut server = Session::server(SessionConfig::server_default(), 0);
    let mut wire = Vec::new();
    FrameEncoder::new()
        .encode(&TcpPing { id: 1 }.to_bytes(), &mut wire)
        .unwrap();
    assert_eq!(
        server.receive(0, &wire),
        Err(SessionError::HandshakeExpected {
            found: TcpPing::CONSTRUCTOR
        })
    );
    assert!(server.is_closed());
    assert_eq!(server.receive(0, &wire), Err(SessionError::Closed));

    // A client expects tcp.connected, not another tcp.connect.
    let mut client = Session::client(SessionConfig::client_default(), 0, 5);
    let mut wire = Vec::new();
    FrameEncoder::new()
        .encode(&TcpConnect { id: 5 }.to_bytes(), &mut wire)
        .unwrap();
    assert_eq!(
        client.receive(0, &wire),
        Err(SessionError::HandshakeExpected {
            found: TcpConnect::CONSTRUCTOR
        })
    );
}

#[test]
fn connected_must_echo_the_connect_id() {
    let mut client = Session::client(SessionConfig::client_default(), 0, 5);
    let mut wire = Vec::new();
    FrameEncoder::new()
        .encode(&TcpConnected { id: 6 }.to_bytes(), &mut wire)
        .unwrap();
    assert_eq!(
        client.receive(0, &wire),
        Err(SessionError::HandshakeIdMismatch {
            expected: 5,
            got: 6
        })
    );
}

#[test]
fn second_handshake_is_a_violation() {
    let (_client, mut server) = connected_pair();
    let mut wire = Vec::new();
    let mut encoder = FrameEncoder::new();
    // The server has already seen seqno 0 (the connect); continue the client's numbering.
    encoder.encode(&[0; 4], &mut Vec::new()).unwrap();
    encoder
        .encode(&TcpConnect { id: 1 }.to_bytes(), &mut wire)
        .unwrap();
    assert_eq!(
        server.receive(1, &wire),
        Err(SessionError::UnexpectedHandshake)
    );
}

#[test]
fn garbage_after_handshake_closes_the_session() {
    let (_client, mut server) = connected_pair();
    let mut wire = Vec::new();
    let mut encoder = FrameEncoder::new();
    encoder.encode(&[0; 4], &mut Vec::new()).unwrap();
    encoder.encode(&[1, 2, 3, 4], &mut wire).unwrap();
    assert!(matches!(
        server.receive(1, &wire),
        Err(SessionError::Tl(TlError::UnknownConstructor { .. }))
    ));
    assert!(server.is_closed());
}

#[test]
fn oversized_packets_are_refused_without_side_effects() {
    let (mut client, mut server) = connected_pair();
    let big = vec![0u8; MAX_PACKET_LEN];
    assert!(matches!(
        client.send_packet(&big),
        Err(SessionError::PacketTooLarge(_))
    ));
    assert!(matches!(
        client.send_query(&big),
        Err(SessionError::PacketTooLarge(_))
    ));
    assert_eq!(client.pending_output(), 0);
    // The largest packet that fits still goes through, and numbering is intact.
    let fits = vec![1u8; MAX_PACKET_LEN - 8];
    client.send_packet(&fits).unwrap();
    client.send_packet(b"after").unwrap();
    pump(&mut client, &mut server, 1).unwrap();
    let received = events(&mut server);
    assert_eq!(received.len(), 2);
    assert_eq!(received[1], SessionEvent::Packet(b"after".to_vec()));
}

#[test]
fn take_output_appends_to_a_non_empty_buffer() {
    let (mut client, _server) = connected_pair();
    client.send_packet(b"abcd").unwrap();
    let mut out = vec![0xaa];
    client.take_output(&mut out);
    assert_eq!(out[0], 0xaa);
    assert_eq!(out.len(), 1 + 8 + 4 + 8);
    assert_eq!(client.pending_output(), 0);
}
