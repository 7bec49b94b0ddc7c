//! Golden tests: constructor ids against the reference's table, and exact wire bytes.

use cocoon_proto::tl::{crc32, write_bytes, write_string};
use cocoon_proto::*;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn constructor_ids_match_the_reference() {
    let table: &[(&str, u32, u32)] = &[
        ("tcp.ping", TcpPing::CONSTRUCTOR, 0xbbe9627c),
        ("tcp.pong", TcpPong::CONSTRUCTOR, 0x0bd4302c),
        ("tcp.packet", TcpPacketData::CONSTRUCTOR, 0x9c17baf8),
        ("tcp.query", TcpQuery::CONSTRUCTOR, 0x3af51908),
        ("tcp.queryAnswer", TcpQueryAnswer::CONSTRUCTOR, 0xc048c311),
        ("tcp.queryError", TcpQueryError::CONSTRUCTOR, 0x4cd2f602),
        ("tcp.connect", TcpConnect::CONSTRUCTOR, 0xa57c4261),
        ("tcp.connected", TcpConnected::CONSTRUCTOR, 0x636d41d6),
        (
            "client.runQueryEx",
            ClientRunQueryEx::CONSTRUCTOR,
            0xf54cb74b,
        ),
        (
            "client.queryAnswerEx",
            ClientQueryAnswerEx::CONSTRUCTOR,
            0xcd524720,
        ),
        (
            "client.queryAnswerPartEx",
            ClientQueryAnswerPartEx::CONSTRUCTOR,
            0xc07bfaec,
        ),
        (
            "client.queryAnswerErrorEx",
            ClientQueryAnswerErrorEx::CONSTRUCTOR,
            0x072562a8,
        ),
        ("proxy.runQueryEx", ProxyRunQueryEx::CONSTRUCTOR, 0xc805e7e2),
        (
            "proxy.queryAnswerEx",
            ProxyQueryAnswerEx::CONSTRUCTOR,
            0x1ce574e8,
        ),
        (
            "proxy.queryAnswerPartEx",
            ProxyQueryAnswerPartEx::CONSTRUCTOR,
            0x6d85b50f,
        ),
        (
            "proxy.queryAnswerErrorEx",
            ProxyQueryAnswerErrorEx::CONSTRUCTOR,
            0x8f7fb0a7,
        ),
        (
            "proxy.signedPayment",
            SignedPayment::SIGNED_CONSTRUCTOR,
            0x02998182,
        ),
        (
            "proxy.signedPaymentEmpty",
            SignedPayment::EMPTY_CONSTRUCTOR,
            0xb347ce64,
        ),
        (
            "proxy.clientRequestPayment",
            ProxyClientRequestPayment::CONSTRUCTOR,
            0xc6bcf127,
        ),
        (
            "proxy.workerRequestPayment",
            ProxyWorkerRequestPayment::CONSTRUCTOR,
            0x1436c0d5,
        ),
        ("http.request", HttpRequest::CONSTRUCTOR, 0x47492de5),
        ("http.response", HttpResponse::CONSTRUCTOR, 0x1cd0c42b),
        ("tokensUsed", TokensUsed::CONSTRUCTOR, 0x70c5b15c),
        ("worker.params", WorkerParams::CONSTRUCTOR, 0x869c73ed),
        ("proxy.params", ProxyParams::CONSTRUCTOR, 0xd5c5609f),
        ("client.params", ClientParams::CONSTRUCTOR, 0x40fdca64),
        (
            "client.workerInstanceV2",
            ClientWorkerInstanceV2::CONSTRUCTOR,
            0x3ea93d00,
        ),
        // The handshake and payment-status ids, from the facts page's table (§12).
        (
            "client.connectToProxy",
            ClientConnectToProxy::CONSTRUCTOR,
            0xff5fa0f4,
        ),
        (
            "client.connectedToProxy",
            ClientConnectedToProxy::CONSTRUCTOR,
            0x95317ad1,
        ),
        (
            "client.proxyConnectionAuthShort",
            ProxyConnectionAuth::SHORT_CONSTRUCTOR,
            0xd6ffc5af,
        ),
        (
            "client.proxyConnectionAuthLong",
            ProxyConnectionAuth::LONG_CONSTRUCTOR,
            0x417bf016,
        ),
        (
            "client.authorizeWithProxyShort",
            ClientAuthorizeWithProxyShort::CONSTRUCTOR,
            0x6c276723,
        ),
        (
            "client.authorizeWithProxyLong",
            ClientAuthorizeWithProxyLong::CONSTRUCTOR,
            0xd3474303,
        ),
        (
            "client.authorizationWithProxySuccess",
            AuthorizationWithProxy::SUCCESS_CONSTRUCTOR,
            0x75d5ac34,
        ),
        (
            "client.authorizationWithProxyFailed",
            AuthorizationWithProxy::FAILED_CONSTRUCTOR,
            0x60551c96,
        ),
        (
            "client.updatePaymentStatus",
            ClientUpdatePaymentStatus::CONSTRUCTOR,
            0x9ed1c697,
        ),
        (
            "client.paymentStatus",
            ClientPaymentStatus::CONSTRUCTOR,
            0xaa8a0ecc,
        ),
        (
            "client.requestRefund",
            ClientRequestRefund::CONSTRUCTOR,
            0x238d863d,
        ),
        ("client.refund", ClientRefund::CONSTRUCTOR, 0x83aabead),
        (
            "client.refundRejected",
            ClientRefundRejected::CONSTRUCTOR,
            0xcf9d9957,
        ),
        (
            "worker.connectToProxy",
            WorkerConnectToProxy::CONSTRUCTOR,
            0xcc484c5d,
        ),
        (
            "worker.connectedToProxy",
            WorkerConnectedToProxy::CONSTRUCTOR,
            0x66bc82ee,
        ),
        (
            "worker.compareBalanceWithProxy",
            WorkerCompareBalanceWithProxy::CONSTRUCTOR,
            0xdb386501,
        ),
        (
            "worker.compareBalanceWithProxyResult",
            WorkerCompareBalanceWithProxyResult::CONSTRUCTOR,
            0x9054c411,
        ),
        (
            "worker.extendedCompareBalanceWithProxy",
            WorkerExtendedCompareBalanceWithProxy::CONSTRUCTOR,
            0xf8dd9914,
        ),
        (
            "worker.extendedCompareBalanceWithProxyResult",
            WorkerExtendedCompareBalanceWithProxyResult::CONSTRUCTOR,
            0x0c10973e,
        ),
        (
            "worker.updatePaymentStatus",
            WorkerUpdatePaymentStatus::CONSTRUCTOR,
            0xdc70a524,
        ),
        (
            "worker.paymentStatus",
            WorkerPaymentStatus::CONSTRUCTOR,
            0xa88bd701,
        ),
    ];
    for &(name, ours, reference) in table {
        assert_eq!(ours, reference, "{name}: {ours:08x} != {reference:08x}");
    }
}

/// Ids not pinned by the schema must be the CRC32 of the declaration we carry, and every
/// declaration must name the constructor it belongs to.
#[test]
fn computed_ids_come_from_the_schema_text() {
    fn check<T: TlObject>(name: &str) {
        assert!(T::SCHEMA.starts_with(name), "{} vs {name}", T::SCHEMA);
        assert!(!T::SCHEMA.contains("  ") && !T::SCHEMA.contains('('));
        assert_eq!(T::CONSTRUCTOR, crc32(T::SCHEMA.as_bytes()), "{name}");
    }
    check::<TcpPing>("tcp.ping ");
    check::<TcpQueryError>("tcp.queryError ");
    check::<ClientConnectToProxy>("client.connectToProxy ");
    check::<ClientConnectedToProxy>("client.connectedToProxy ");
    check::<ClientAuthorizeWithProxyShort>("client.authorizeWithProxyShort ");
    check::<ClientAuthorizeWithProxyLong>("client.authorizeWithProxyLong ");
    check::<ClientQueryFinalInfo>("client.queryFinalInfo ");
    check::<ClientGetWorkerTypesV2>("client.getWorkerTypesV2 ");
    check::<ClientWorkerTypeV2>("client.workerTypeV2 ");
    check::<ClientWorkerTypesV2>("client.workerTypesV2 ");
    check::<ProxyQueryFinalInfo>("proxy.queryFinalInfo ");
    check::<HttpHeader>("http.header ");
    check::<WorkerConnectToProxy>("worker.connectToProxy ");
    check::<WorkerConnectedToProxy>("worker.connectedToProxy ");
    check::<WorkerCompareBalanceWithProxy>("worker.compareBalanceWithProxy ");
    check::<WorkerCompareBalanceWithProxyResult>("worker.compareBalanceWithProxyResult ");
    check::<WorkerProxyHandshakeComplete>("worker.proxyHandshakeComplete ");
    check::<WorkerProxyHandshakeCompleted>("worker.proxyHandshakeCompleted ");
    check::<WorkerEnabledDisabled>("worker.enabledDisabled ");
    check::<WorkerNewCoefficient>("worker.newCoefficient ");
    assert_eq!(
        ProxyConnectionAuth::SHORT_CONSTRUCTOR,
        crc32(ProxyConnectionAuth::SHORT_SCHEMA.as_bytes())
    );
    assert_eq!(
        AuthorizationWithProxy::FAILED_CONSTRUCTOR,
        crc32(AuthorizationWithProxy::FAILED_SCHEMA.as_bytes())
    );
}

#[test]
fn tcp_ping_bytes() {
    assert_eq!(
        TcpPing {
            id: 0x0102030405060708
        }
        .to_bytes(),
        hex("7c62e9bb 08070605 04030201")
    );
}

#[test]
fn string_padding_around_the_long_prefix() {
    let mut short = Vec::new();
    write_string(&mut short, &"a".repeat(253));
    assert_eq!(short.len(), 256);
    assert_eq!(short[0], 253);
    assert_eq!(&short[254..], &[0, 0]);

    let mut long = Vec::new();
    write_string(&mut long, &"a".repeat(254));
    assert_eq!(long.len(), 260);
    assert_eq!(&long[..4], &hex("fefe0000"));
    assert_eq!(&long[258..], &[0, 0]);

    let mut empty = Vec::new();
    write_bytes(&mut empty, b"");
    assert_eq!(empty, hex("00000000"));

    let mut three = Vec::new();
    write_bytes(&mut three, b"abc");
    assert_eq!(three, hex("03616263"));
}

#[test]
fn http_request_bytes() {
    let request = HttpRequest {
        method: "GET".into(),
        url: "/v1/models".into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![HttpHeader {
            name: "Host".into(),
            value: "x".into(),
        }],
        payload: Vec::new(),
    };
    let expected = hex("e52d4947
         03474554
         0a2f7631 2f6d6f64 656c7300
         08485454 502f312e 31000000
         01000000
         04486f73 74000000 01780000
         00000000");
    assert_eq!(request.to_bytes(), expected);
    assert_eq!(HttpRequest::from_bytes(&expected).unwrap(), request);
}

#[test]
fn query_answer_with_and_without_final_info() {
    let answer = ClientQueryAnswerEx {
        request_id: [0x11; 32],
        answer: b"hi".to_vec(),
        final_info: None,
    };
    let mut expected = hex("204752cd");
    expected.extend_from_slice(&[0x11; 32]);
    expected.extend_from_slice(&hex("02686900 00000000"));
    assert_eq!(answer.to_bytes(), expected);

    let with_info = ClientQueryAnswerEx {
        final_info: Some(ClientQueryFinalInfo {
            tokens_used: TokensUsed {
                total_tokens_used: 5,
                ..TokensUsed::default()
            },
            debug: None,
            timings: None,
            receipt: None,
            charge: None,
        }),
        ..answer
    };
    let bytes = with_info.to_bytes();
    // flags word has bit 0, then the bare queryFinalInfo: its own flags, then five longs.
    assert_eq!(&bytes[40..48], &hex("01000000 00000000"));
    assert_eq!(bytes.len(), 48 + 40);
    assert_eq!(bytes[48 + 32], 5);
}

#[test]
fn worker_params_flags() {
    let params = WorkerParams {
        worker_owner_address: "o".into(),
        model: "m".into(),
        coefficient: 1000,
        limits: Some(WorkerLimits {
            is_test: true,
            proxy_cnt: 2,
            max_active_requests: 10,
        }),
        supports_cancel: false,
        proto_version: Some(ProtoVersionRange { min: 0, max: 2 }),
    };
    let expected = hex("ed739c86 03000000 016f0000 016d0000 e8030000
         b5757299 02000000 0a000000 00000000 02000000");
    assert_eq!(params.to_bytes(), expected);
    assert_eq!(WorkerParams::from_bytes(&expected).unwrap(), params);
}

#[test]
fn pow_challenge_bytes() {
    let challenge = pow::PowChallenge {
        difficulty_bits: 20,
        salt: [0xab; 16],
    };
    let mut expected = hex("91128e41 14000000");
    expected.extend_from_slice(&[0xab; 16]);
    assert_eq!(challenge.to_bytes().to_vec(), expected);
    assert_eq!(
        pow::PowResponse { nonce: 1 }.to_bytes().to_vec(),
        hex("19738201 01000000 00000000")
    );
}
