//! Report-data and image-hash vectors computed outside our code: what a TDX quote's or an
//! SEV-SNP report's REPORT_DATA must be for a certificate, and where our parsers find it.
//!
//! The rules (facts page, RA-TLS): REPORT_DATA = SHA-512(user claims), and the reference's
//! claims are the certificate's raw 32-byte Ed25519 key; our optional claims fields follow it
//! as `tag ‖ 32 bytes` in increasing tag order (1 HPKE key, 2 GPU evidence hash, 3 model hash
//! = SHA-256 of the model name, 4 weights digest; see `claims.rs`). The TDX image hash is
//! SHA-256(MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0..3 ‖ 64 zero bytes).
//!
//! The literals come from Python 3 (hashlib), run once; offsets are those of Intel's TDX quote
//! (48-byte header; a v5 quote adds a 2-byte body type and a 4-byte body size; in the TD report
//! body MRTD is at 136, the seven registers after it follow, REPORTDATA is at 520) and AMD's
//! SNP report (REPORT_DATA at 0x50, MEASUREMENT at 0x90):
//!
//! ```text
//! pk = bytes.fromhex(RFC8032_TEST1_PUBLIC_KEY)          # RFC 8032 section 7.1, TEST 1
//! sha512(pk)                                            # bare claims
//! sha512(pk[:31] + bytes([pk[31] ^ 1]))                 # another key's
//! mh = sha256(b"Qwen/Qwen3-8B")
//! sha512(pk + b"\x01" + b"\x11" * 32 + b"\x02" + b"\x22" * 32 + b"\x03" + mh + b"\x04" + b"\x44" * 32)
//! q = open("tdx_quote", "rb").read(); body = 48 if q[0] == 4 else 54
//! q[body + 520:body + 584]; sha256(q[body + 136:body + 520] + bytes(64))
//! r = bytes.fromhex(open("snp/report_milan.hex").read()); r[0x50:0x90]; sha256(r[0x90:0xc0])
//! sha256(bytes(448))                                    # the fake TEE's image hash
//! ```

use std::path::PathBuf;
use std::time::SystemTime;

use cocoon_attest::cert::build_identity;
use cocoon_attest::policy::{danger, AllowLists, AttestError};
use cocoon_attest::snp::{check_report_data, parse_report, SnpError};
use cocoon_attest::tdx::{parse_tdx_quote, TdxMeasurements};
use cocoon_attest::{model_hash, UserClaims};
use rcgen::KeyPair;

/// RFC 8032 section 7.1, TEST 1: the secret key (seed) and its public key.
const RFC8032_TEST1_SECRET_KEY: &str =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_TEST1_PUBLIC_KEY: &str =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// SHA-512 of the bare claims of the TEST 1 key.
const BARE_REPORT_DATA: &str = "0e02a50225b4baaa18a0470ed9bfc7dc032f1724e819e47a23c4f2c32f750609\
                                4709688293c479c0534defd3a98b4302187806511b83f12ab575d4144770a9c3";
/// SHA-512 of the bare claims of the TEST 1 key with its last bit flipped.
const FLIPPED_KEY_REPORT_DATA: &str = "1c1b38d3c29114fa5872d59ce67d3a5b0574c89e2cab9b43f228b4797907bd5e\
                                       d24855a07672ea1085fca88a373f06fb5a3bac808045aa4d178733e3cc2b5415";
/// SHA-256 of `Qwen/Qwen3-8B`.
const QWEN_MODEL_HASH: &str = "a82fd547628efc95bba6ce4fbe5c4c21fdfe5b815eca823db15d1df4837b1167";
/// SHA-512 of the claims with all four optional fields (see the script).
const FULL_REPORT_DATA: &str = "456713ceb55f5a019f5ace030d549acd6525d21b6363c7769affb35690409ad7\
                                d50ffd763486f37e6da51380f2a6ab0f97d3043628d09529515fc53e05e4a755";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn bytes<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text)
        .expect("hex literal")
        .try_into()
        .expect("literal length")
}

fn test1_key() -> [u8; 32] {
    bytes(RFC8032_TEST1_PUBLIC_KEY)
}

#[test]
fn claims_hash_to_the_report_data_computed_outside() {
    let bare = UserClaims::for_key(test1_key());
    assert_eq!(
        bare.serialize(),
        test1_key(),
        "the reference's claims: the key"
    );
    assert_eq!(bare.report_data(), bytes::<64>(BARE_REPORT_DATA));

    let mut flipped_key = test1_key();
    flipped_key[31] ^= 1;
    let flipped = UserClaims::for_key(flipped_key).report_data();
    assert_eq!(flipped, bytes::<64>(FLIPPED_KEY_REPORT_DATA));
    assert_ne!(flipped, bytes::<64>(BARE_REPORT_DATA));

    assert_eq!(model_hash("Qwen/Qwen3-8B"), bytes::<32>(QWEN_MODEL_HASH));
    let full = UserClaims {
        public_key: test1_key(),
        hpke_public_key: Some([0x11; 32]),
        gpu_evidence_hash: Some([0x22; 32]),
        model_hash: Some(bytes(QWEN_MODEL_HASH)),
        weights_digest: Some([0x44; 32]),
    };
    assert_eq!(full.serialize().len(), 164);
    assert_eq!(full.report_data(), bytes::<64>(FULL_REPORT_DATA));
}

/// A certificate for the TEST 1 key whose fake quote (the reference's `fake_tdx` form: the 64
/// bytes of report data alone) is the literal above is accepted; the same certificate with the
/// flipped key's report data, or the full claims', must be refused.
#[test]
fn a_certificate_binds_exactly_its_own_report_data() {
    let now = SystemTime::now();
    let mut pkcs8 = hex::decode("302e020100300506032b657004220420").expect("PKCS#8 Ed25519 prefix");
    pkcs8.extend_from_slice(&hex::decode(RFC8032_TEST1_SECRET_KEY).unwrap());
    let key = || KeyPair::try_from(&pkcs8[..]).expect("RFC 8032 key");

    let good = build_identity(
        key(),
        Some(hex::decode(BARE_REPORT_DATA).unwrap()),
        "vectors",
        now,
        Vec::new(),
    )
    .unwrap();
    assert_eq!(good.tls.public_key, test1_key(), "RFC 8032 key derivation");
    let peer = danger::fake_tdx(AllowLists::default())
        .check(&good.tls.cert_der, now)
        .expect("its own report data");
    assert_eq!(peer.public_key, test1_key());

    for wrong in [FLIPPED_KEY_REPORT_DATA, FULL_REPORT_DATA] {
        let bad = build_identity(
            key(),
            Some(hex::decode(wrong).unwrap()),
            "vectors",
            now,
            Vec::new(),
        )
        .unwrap();
        assert!(
            matches!(
                danger::fake_tdx(AllowLists::default()).check(&bad.tls.cert_der, now),
                Err(AttestError::ReportDataMismatch)
            ),
            "{wrong}"
        );
    }
}

#[test]
fn tdx_quotes_yield_the_report_data_and_image_hash_at_intels_offsets() {
    let cases = [
        (
            "tdx_quote",
            4,
            "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9\
             eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20",
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407\
             de03ae6dc5f87f27428b2538873118b7",
            "b260fa9168ca9f28e7f15f128a45ac31c419705b31a60feac30b322ee06bc752",
        ),
        (
            "tdx_quote_td15ex",
            5,
            "2945321c99222c3622a14cf7feaab073e799be14b5f3e73cd2e6cad64e5f0624\
             63ad204f33f0a39e47d098330db88ca5b5d0a7afce540dfe4c4fe4a377190731",
            "2a674327c50218dba880066b349b8d559d749ed68dce33fd651c184a877d084b\
             07a9e583767a7ad5da13ed91deec2b70",
            "828898d0193ff4cbc40f8a6510c9c70136035d828c8525de40ec3ed71b52ca4f",
        ),
    ];
    for (name, version, report_data, mrtd, image_hash) in cases {
        let quote = parse_tdx_quote(&fixture(name)).expect(name);
        assert_eq!(quote.version, version, "{name}");
        assert_eq!(quote.report_data, bytes::<64>(report_data), "{name}");
        assert_eq!(quote.measurements.mrtd, bytes::<48>(mrtd), "{name}");
        assert_eq!(
            quote.measurements.image_hash(),
            bytes::<32>(image_hash),
            "{name}"
        );
    }
    // The fake TEE's image: all registers zero, then the 64 zero bytes.
    assert_eq!(
        TdxMeasurements::zero().image_hash(),
        bytes::<32>("5c55c8f4db4010ba9203d83536d0609856af8c847ac039e37e7dde8fbd574b61"),
        "SHA-256 of 448 zero bytes"
    );
}

#[test]
fn the_snp_report_yields_its_report_data_and_binds_nothing_else() {
    let text = String::from_utf8(fixture("snp/report_milan.hex")).expect("hex text");
    let report = parse_report(&hex::decode(text.trim()).expect("hex")).expect("report");
    let report_data: [u8; 64] = bytes(
        "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c64581\
         0b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
    );
    assert_eq!(report.report_data, report_data);
    assert_eq!(
        report.measurement,
        bytes::<48>(
            "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d\
             3e1a0dc39b2c60bd95b9c480cd81841f"
        )
    );
    assert_eq!(
        report.image_hash(),
        bytes::<32>("a0fa662360ee3db0fda7d5e222c4d5e5423126c2bb1e854d5baad8bdf7c6d3e5")
    );
    assert_eq!(check_report_data(&report, &report_data), Ok(()));
    assert_eq!(
        check_report_data(&report, &bytes(BARE_REPORT_DATA)),
        Err(SnpError::ReportDataMismatch)
    );
}
