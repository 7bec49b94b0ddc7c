//! Hostile input: arbitrary bytes never panic any decoder, and specific malformations give the
//! specific errors.

use cocoon_proto::frame::{FrameDecoder, FrameEncoder, FrameError, MAX_PACKET_LEN};
use cocoon_proto::pow::{PowChallenge, PowResponse};
use cocoon_proto::session::{Session, SessionConfig};
use cocoon_proto::tl::{write_bytes, write_i32, write_u32, BOOL_TRUE};
use cocoon_proto::*;
use proptest::prelude::*;

/// Decodes `data` as every boxed type; none may panic.
fn decode_everything(data: &[u8]) {
    let _ = TcpPacket::from_bytes(data);
    let _ = TokensUsed::from_bytes(data);
    let _ = HttpRequest::from_bytes(data);
    let _ = HttpResponse::from_bytes(data);
    let _ = WorkerParams::from_bytes(data);
    let _ = ProxyParams::from_bytes(data);
    let _ = ClientParams::from_bytes(data);
    let _ = SignedPayment::from_bytes(data);
    let _ = ProxyConnectionAuth::from_bytes(data);
    let _ = AuthorizationWithProxy::from_bytes(data);
    let _ = ClientConnectedToProxy::from_bytes(data);
    let _ = ClientToProxyQuery::from_bytes(data);
    let _ = ClientRunQueryEx::from_bytes(data);
    let _ = ClientQueryAnswer::from_bytes(data);
    let _ = ClientWorkerTypesV2::from_bytes(data);
    let _ = ProxyRunQueryEx::from_bytes(data);
    let _ = ProxyQueryAnswer::from_bytes(data);
    let _ = ProxyClientRequestPayment::from_bytes(data);
    let _ = ProxyWorkerRequestPayment::from_bytes(data);
    let _ = WorkerToProxyQuery::from_bytes(data);
    let _ = WorkerToProxyMessage::from_bytes(data);
    let _ = WorkerConnectedToProxy::from_bytes(data);
    let _ = WorkerCompareBalanceWithProxyResult::from_bytes(data);
    let _ = WorkerExtendedCompareBalanceWithProxyResult::from_bytes(data);
    let _ = WorkerPaymentStatus::from_bytes(data);
    let _ = ClientPaymentStatus::from_bytes(data);
    let _ = ClientRefundAnswer::from_bytes(data);
    let _ = ProxyToClientMessage::from_bytes(data);
    let _ = ProxyToWorkerMessage::from_bytes(data);
    let _ = PowChallenge::from_bytes(data);
    let _ = PowResponse::from_bytes(data);
    let _ = ClientToProxyPacket::from_bytes(data);
    let _ = ClientSealingWorkers::from_bytes(data);
    let _ = ClientRunSealedQuery::from_bytes(data);
    let _ = ProxyRunSealedQuery::from_bytes(data);
}

/// Valid encodings whose mutations make good fuzz seeds.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        TcpPacket::QueryError(TcpQueryError {
            id: 1,
            code: 2,
            message: "x".repeat(300),
        })
        .to_bytes(),
        ClientWorkerTypesV2 {
            types: vec![ClientWorkerTypeV2 {
                name: "m".into(),
                workers: vec![ClientWorkerInstanceV2::default(); 3],
            }],
        }
        .to_bytes(),
        ClientQueryAnswer::Part(ClientQueryAnswerPartEx {
            request_id: [1; 32],
            answer: vec![7; 20],
            final_info: Some(ClientQueryFinalInfo {
                debug: Some(FinalInfoDebug::default()),
                timings: Some(ClientTimings::default()),
                ..ClientQueryFinalInfo::default()
            }),
        })
        .to_bytes(),
        WorkerParams {
            worker_owner_address: "a".into(),
            model: "b".into(),
            coefficient: 1,
            limits: Some(WorkerLimits {
                is_test: false,
                proxy_cnt: 1,
                max_active_requests: 1,
            }),
            supports_cancel: false,
            proto_version: None,
        }
        .to_bytes(),
    ]
}

/// Every constructor id a peer can send: a body behind one of these gets past dispatch into the
/// field decoders, where random bytes after a random id almost never get.
fn constructors() -> Vec<u32> {
    let mut ids = Vec::new();
    for list in [
        TcpPacket::CONSTRUCTORS,
        ClientToProxyQuery::CONSTRUCTORS,
        ClientQueryAnswer::CONSTRUCTORS,
        ProxyQueryAnswer::CONSTRUCTORS,
        WorkerToProxyQuery::CONSTRUCTORS,
        ClientRefundAnswer::CONSTRUCTORS,
    ] {
        ids.extend_from_slice(list);
    }
    ids.extend([
        HttpRequest::CONSTRUCTOR,
        HttpResponse::CONSTRUCTOR,
        TokensUsed::CONSTRUCTOR,
        WorkerParams::CONSTRUCTOR,
        ProxyParams::CONSTRUCTOR,
        ClientParams::CONSTRUCTOR,
        SignedPayment::SIGNED_CONSTRUCTOR,
        SignedPayment::EMPTY_CONSTRUCTOR,
        ProxyConnectionAuth::SHORT_CONSTRUCTOR,
        ProxyConnectionAuth::LONG_CONSTRUCTOR,
        AuthorizationWithProxy::SUCCESS_CONSTRUCTOR,
        AuthorizationWithProxy::FAILED_CONSTRUCTOR,
        ClientConnectedToProxy::CONSTRUCTOR,
        ClientRunQueryEx::CONSTRUCTOR,
        ClientRunSealedQuery::CONSTRUCTOR,
        ClientWorkerTypesV2::CONSTRUCTOR,
        ClientSealingWorkers::CONSTRUCTOR,
        ClientPaymentStatus::CONSTRUCTOR,
        ProxyRunQueryEx::CONSTRUCTOR,
        ProxyRunSealedQuery::CONSTRUCTOR,
        ProxyCancelQuery::CONSTRUCTOR,
        ProxyClientRequestPayment::CONSTRUCTOR,
        ProxyWorkerRequestPayment::CONSTRUCTOR,
        WorkerConnectedToProxy::CONSTRUCTOR,
        WorkerProxyHandshakeCompleted::CONSTRUCTOR,
        WorkerCompareBalanceWithProxyResult::CONSTRUCTOR,
        WorkerExtendedCompareBalanceWithProxyResult::CONSTRUCTOR,
        WorkerPaymentStatus::CONSTRUCTOR,
        WorkerEnabledDisabled::CONSTRUCTOR,
        WorkerNewCoefficient::CONSTRUCTOR,
    ]);
    ids
}

/// A valid constructor id followed by a random body, often with TL-shaped pieces in it (short
/// strings, small counts, `boolTrue`, nested valid ids).
fn constructor_then_body() -> impl Strategy<Value = Vec<u8>> {
    let ids = constructors();
    let count = ids.len();
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        (0u8..40).prop_map(|len| {
            let mut out = vec![len];
            out.extend(std::iter::repeat_n(b'a', usize::from(len)));
            out.resize(usize::from(len + 1).div_ceil(4) * 4, 0);
            out
        }),
        (0i32..4).prop_map(|n| n.to_le_bytes().to_vec()),
        Just(BOOL_TRUE.to_le_bytes().to_vec()),
        (0..count).prop_map({
            let ids = ids.clone();
            move |i| ids[i].to_le_bytes().to_vec()
        }),
    ];
    (0..count, prop::collection::vec(piece, 0..12)).prop_map(move |(i, pieces)| {
        let mut out = ids[i].to_le_bytes().to_vec();
        out.extend(pieces.concat());
        out
    })
}

/// Frames with valid lengths and in-order seqnos around the payloads, sometimes with one header
/// field or the seqno broken.
fn framed(payloads: Vec<Vec<u8>>, break_at: Option<(usize, u8)>) -> Vec<u8> {
    let mut encoder = FrameEncoder::new();
    let mut wire = Vec::new();
    for payload in &payloads {
        encoder.encode(payload, &mut wire).unwrap();
    }
    if let Some((at, value)) = break_at {
        if !wire.is_empty() {
            let index = at % wire.len();
            wire[index] = value;
        }
    }
    wire
}

/// Many cases: each is microseconds, and these are the decoders any peer reaches first.
fn many() -> ProptestConfig {
    ProptestConfig::with_cases(4096)
}

proptest! {
    #![proptest_config(many())]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
        decode_everything(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        seed in 0usize..4,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut data = seeds()[seed].clone();
        for (position, value) in flips {
            let index = position % data.len();
            data[index] = value;
        }
        data.truncate(cut % (data.len() + 1));
        decode_everything(&data);
    }

    #[test]
    fn frame_decoder_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut decoder = FrameDecoder::new();
        decoder.push(&data);
        for _ in 0..10 {
            if !matches!(decoder.next_frame(), Ok(Some(_))) {
                break;
            }
        }
    }

    #[test]
    fn sessions_never_panic(data in prop::collection::vec(any::<u8>(), 0..200), client in any::<bool>()) {
        let mut session = if client {
            Session::client(SessionConfig::client_default(), 0, 7)
        } else {
            Session::server(SessionConfig::server_default(), 0)
        };
        let _ = session.receive(1, &data);
        while session.poll_event().is_some() {}
    }

    #[test]
    fn connected_session_never_panics(payload in prop::collection::vec(any::<u8>(), 4..100)) {
        let mut server = Session::server(SessionConfig::server_default(), 0);
        let mut encoder = FrameEncoder::new();
        let mut wire = Vec::new();
        encoder.encode(&TcpConnect { id: 1 }.to_bytes(), &mut wire).unwrap();
        encoder.encode(&payload, &mut wire).unwrap();
        let _ = server.receive(1, &wire);
    }

    #[test]
    fn valid_constructors_with_random_bodies_never_panic(data in constructor_then_body()) {
        decode_everything(&data);
    }

    #[test]
    fn valid_frames_decode_and_broken_ones_are_refused(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 4..64), 1..6),
        break_at in prop::option::of((any::<usize>(), any::<u8>())),
        step in 1usize..40,
    ) {
        let wire = framed(payloads.clone(), break_at);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        let mut failed = false;
        for piece in wire.chunks(step) {
            decoder.push(piece);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(_) => { failed = true; break; }
                }
            }
            if failed { break; }
        }
        if break_at.is_none() {
            prop_assert!(!failed);
            prop_assert_eq!(frames, payloads);
        } else {
            // Whatever one broken byte does, what came out is a prefix of what went in (a
            // broken payload byte changes that frame only).
            prop_assert!(frames.len() <= payloads.len());
        }
    }

    #[test]
    fn connected_sessions_with_valid_packets_never_panic(
        packets in prop::collection::vec(constructor_then_body(), 1..6),
        client in any::<bool>(),
    ) {
        let mut session = if client {
            Session::client(SessionConfig::client_default(), 0, 7)
        } else {
            Session::server(SessionConfig::server_default(), 0)
        };
        let first = if client {
            TcpPacket::from(TcpConnected { id: 7 }).to_bytes()
        } else {
            TcpPacket::from(TcpConnect { id: 1 }).to_bytes()
        };
        let mut payloads = vec![first];
        payloads.extend(packets.into_iter().map(|body| {
            TcpPacket::from(TcpQuery { id: 3, data: body }).to_bytes()
        }));
        let wire = framed(payloads, None);
        let _ = session.receive(1, &wire);
        while session.poll_event().is_some() {}
    }
}

#[test]
fn truncated_input_is_eof() {
    let bytes = TcpQuery {
        id: 5,
        data: vec![1, 2, 3, 4, 5],
    }
    .to_bytes();
    for len in 0..bytes.len() {
        let error = TcpPacket::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(error, TlError::UnexpectedEof { .. } | TlError::TooLong(_)),
            "{len}: {error:?}"
        );
    }
}

#[test]
fn non_zero_padding_is_rejected() {
    let mut bytes = TcpPacketData { data: vec![9] }.to_bytes();
    assert_eq!(bytes.len(), 8);
    bytes[7] = 1;
    assert_eq!(TcpPacket::from_bytes(&bytes), Err(TlError::BadPadding));
}

#[test]
fn length_beyond_the_input_is_rejected() {
    let mut bytes = Vec::new();
    write_u32(&mut bytes, TcpPacketData::CONSTRUCTOR);
    bytes.extend_from_slice(&[254, 0xff, 0xff, 0x00]);
    bytes.extend_from_slice(&[0; 16]);
    assert_eq!(TcpPacket::from_bytes(&bytes), Err(TlError::TooLong(0xffff)));
}

#[test]
fn bad_bool_is_rejected() {
    let mut bytes = Vec::new();
    write_u32(&mut bytes, WorkerProxyHandshakeComplete::CONSTRUCTOR);
    write_u32(&mut bytes, BOOL_TRUE ^ 1);
    assert_eq!(
        WorkerToProxyQuery::from_bytes(&bytes),
        Err(TlError::BadBool(BOOL_TRUE ^ 1))
    );
    bytes[4..].copy_from_slice(&BOOL_TRUE.to_le_bytes());
    assert!(WorkerToProxyQuery::from_bytes(&bytes).is_ok());
}

#[test]
fn unknown_constructor_is_rejected() {
    let bytes = 0xdeadbeef_u32.to_le_bytes();
    assert_eq!(
        TcpPacket::from_bytes(&bytes),
        Err(TlError::UnknownConstructor {
            type_name: "TcpPacket",
            found: 0xdeadbeef
        })
    );
    assert!(matches!(
        TcpPing::from_bytes(&bytes),
        Err(TlError::UnknownConstructor { .. })
    ));
    // A valid message of another hop is still unknown here.
    let other = ClientGetWorkerTypesV2 {}.to_bytes();
    assert!(matches!(
        WorkerToProxyQuery::from_bytes(&other),
        Err(TlError::UnknownConstructor { .. })
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = TcpPing { id: 1 }.to_bytes();
    bytes.extend_from_slice(&[0; 4]);
    assert_eq!(
        TcpPacket::from_bytes(&bytes),
        Err(TlError::TrailingBytes(4))
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut bytes = Vec::new();
    write_u32(&mut bytes, TcpQueryError::CONSTRUCTOR);
    bytes.extend_from_slice(&[0; 12]);
    write_bytes(&mut bytes, &[0xff, 0xfe]);
    assert_eq!(TcpPacket::from_bytes(&bytes), Err(TlError::InvalidUtf8));
}

#[test]
fn hostile_vector_counts_are_rejected_without_allocating() {
    let mut bytes = Vec::new();
    write_u32(&mut bytes, ClientWorkerTypesV2::CONSTRUCTOR);
    write_i32(&mut bytes, i32::MAX);
    assert_eq!(
        ClientWorkerTypesV2::from_bytes(&bytes),
        Err(TlError::TooLong(i32::MAX as usize))
    );
    bytes.truncate(4);
    write_i32(&mut bytes, -1);
    assert_eq!(
        ClientWorkerTypesV2::from_bytes(&bytes),
        Err(TlError::NegativeLength(-1))
    );
}

#[test]
fn frame_length_limits() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&3u32.to_le_bytes());
    assert_eq!(decoder.next_frame(), Err(FrameError::TooSmall(3)));

    let mut decoder = FrameDecoder::new();
    decoder.push(&(MAX_PACKET_LEN as u32 + 1).to_le_bytes());
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::TooLarge(MAX_PACKET_LEN + 1))
    );

    // Exactly 16 MiB is allowed: the header alone is accepted and nothing is reserved for it.
    let mut decoder = FrameDecoder::new();
    decoder.push(&(MAX_PACKET_LEN as u32).to_le_bytes());
    decoder.push(&0i32.to_le_bytes());
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered(), 8);

    let mut encoder = FrameEncoder::new();
    let mut out = Vec::new();
    assert_eq!(
        encoder.encode(&[0; 3], &mut out),
        Err(FrameError::TooSmall(3))
    );
    assert_eq!(
        encoder.encode(&vec![0; MAX_PACKET_LEN + 1], &mut out),
        Err(FrameError::TooLarge(MAX_PACKET_LEN + 1))
    );
    assert!(out.is_empty());
    encoder.encode(&vec![0; MAX_PACKET_LEN], &mut out).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&out);
    assert_eq!(decoder.next_frame().unwrap().unwrap().len(), MAX_PACKET_LEN);
}

#[test]
fn seqno_gap_is_rejected() {
    let mut wire = Vec::new();
    for seqno in [0i32, 1, 3] {
        wire.extend_from_slice(&4u32.to_le_bytes());
        wire.extend_from_slice(&seqno.to_le_bytes());
        wire.extend_from_slice(&[0; 4]);
    }
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    assert!(decoder.next_frame().unwrap().is_some());
    assert!(decoder.next_frame().unwrap().is_some());
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::BadSeqno {
            expected: 2,
            got: 3
        })
    );
    // Errors are sticky.
    assert!(decoder.next_frame().is_err());
}

#[test]
fn pow_messages_of_wrong_shape_are_rejected() {
    assert!(PowChallenge::from_bytes(&[]).is_err());
    assert!(PowChallenge::from_bytes(&[0; 24]).is_err());
    assert!(PowResponse::from_bytes(&[0; 13]).is_err());
    let mut response = PowResponse { nonce: 3 }.to_bytes();
    response[0] ^= 1;
    assert!(PowResponse::from_bytes(&response).is_err());
}
