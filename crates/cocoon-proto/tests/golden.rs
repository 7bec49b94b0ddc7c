//! Golden tests: constructor ids and declarations against the reference's published schema
//! (literals in [`reference_schema`]), and exact wire bytes.

use cocoon_proto::tl::{crc32, write_bytes, write_string};
use cocoon_proto::*;

mod reference_schema;

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

/// Every constructor we share with the reference has the reference's id and, word for word,
/// its declaration: a slip in our hand-typed schema text changes our id and fails here.
#[test]
fn shared_constructors_match_the_reference_schema() {
    let shared = reference_schema::shared();
    assert_eq!(shared.len(), 58, "rows of the shared table");
    for row in &shared {
        let (our_id, our_line) = row.ours;
        assert!(
            row.reference_line.starts_with(&format!("{} ", row.name)),
            "{}: the row's line names another constructor",
            row.name
        );
        assert_eq!(
            our_id, row.reference_id,
            "{}: our id {our_id:08x}, the reference's {:08x}",
            row.name, row.reference_id
        );
        assert_eq!(our_line, row.reference_line, "{}: declaration", row.name);
        // The table itself: an id the reference does not pin is the CRC32 of its line.
        let pinned = reference_schema::PINNED_BY_THE_REFERENCE.contains(&row.name);
        assert_eq!(
            crc32(row.reference_line.as_bytes()) == row.reference_id,
            !pinned,
            "{}: the table's id and line disagree",
            row.name
        );
    }
}

/// Our own constructors are pinned too, are the CRC32 of their declaration, and are absent
/// from the reference's schema, by name and by id.
#[test]
fn extensions_are_pinned_and_unknown_to_the_reference() {
    let extensions = reference_schema::extensions();
    assert_eq!(extensions.len(), 6, "rows of the extension table");
    let shared = reference_schema::shared();
    let reference_names: Vec<&str> = shared
        .iter()
        .map(|row| row.name)
        .chain(
            reference_schema::REFERENCE_ONLY
                .iter()
                .map(|&(name, _)| name),
        )
        .collect();
    let reference_ids: Vec<u32> = shared
        .iter()
        .map(|row| row.reference_id)
        .chain(reference_schema::REFERENCE_ONLY.iter().map(|&(_, id)| id))
        .collect();
    // The reference's schema has 111 declarations; `vector` is the one left out.
    assert_eq!(reference_names.len(), 110);
    for row in &extensions {
        let (our_id, our_line) = row.ours;
        assert!(
            row.line.starts_with(&format!("{} ", row.name)),
            "{}",
            row.name
        );
        assert_eq!(
            our_id, row.id,
            "{}: {our_id:08x} != {:08x}",
            row.name, row.id
        );
        assert_eq!(our_line, row.line, "{}: declaration", row.name);
        assert_eq!(crc32(row.line.as_bytes()), row.id, "{}", row.name);
        assert!(!reference_names.contains(&row.name), "{}", row.name);
        assert!(!reference_ids.contains(&row.id), "{}", row.name);
    }
}

/// The two messages of the proof-of-work gate are not in `cocoon_api.tl`: the reference
/// declares them, with pinned ids, in a comment of `tee/cocoon/pow.h` (and the facts page).
#[test]
fn pow_ids_match_the_reference() {
    assert_eq!(
        pow::POW_CHALLENGE_CONSTRUCTOR,
        0x418e1291,
        "cocoon.powSimple"
    );
    assert_eq!(
        pow::POW_RESPONSE_CONSTRUCTOR,
        0x01827319,
        "cocoon.powSimpleResponse"
    );
}

/// Every id any of our dispatch enums decodes is in one of the tables above, and no two of
/// our constructors share an id: a constructor added without a pin fails here.
#[test]
fn every_decoded_constructor_is_pinned() {
    let mut pinned: Vec<u32> = reference_schema::shared()
        .iter()
        .map(|row| row.reference_id)
        .chain(reference_schema::extensions().iter().map(|row| row.id))
        .collect();
    let decoded = [
        TcpPacket::CONSTRUCTORS,
        ClientToProxyQuery::CONSTRUCTORS,
        ClientQueryAnswer::CONSTRUCTORS,
        ClientRefundAnswer::CONSTRUCTORS,
        ProxyQueryAnswer::CONSTRUCTORS,
        WorkerToProxyQuery::CONSTRUCTORS,
    ];
    for id in decoded.concat() {
        assert!(
            pinned.contains(&id),
            "{id:08x} is decoded but pinned nowhere"
        );
    }
    let count = pinned.len();
    pinned.sort_unstable();
    pinned.dedup();
    assert_eq!(pinned.len(), count, "two constructors share an id");
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
