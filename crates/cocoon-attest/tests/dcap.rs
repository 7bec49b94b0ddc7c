//! DCAP verification against real Intel TDX quotes and collateral (dcap-qvl's samples, see
//! `fixtures/NOTICE.md`): the samples verify at a fixed time inside their collateral's
//! validity, every tampering is refused with its specific error, and the cache behaves.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cocoon_attest::dcap::{
    root_key_id, CollateralSource, DcapError, DcapVerifier, TcbPolicy, INTEL_ROOT_KEY_ID,
};
use cocoon_attest::tdx::{parse_tdx_quote, QuoteError, TdxMeasurements};
use dcap_qvl::QuoteCollateralV3;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// `tdx_quote` (v4): collateral valid 2025-06-19T10:32:27Z (QE identity issued) to
/// 2025-07-19T10:00:35Z (PCK CRL next update).
const NOW_V4: u64 = 1_751_328_000; // 2025-07-01T00:00:00Z
/// `tdx_quote_outdated` (v5, TD 1.5): valid 2026-02-18T10:58:51Z to 2026-03-20T10:41:15Z.
const NOW_OUTDATED: u64 = 1_772_323_200; // 2026-03-01T00:00:00Z
/// `tdx_quote_td15ex` (v5, TD 1.5ex): valid 2026-10-08T00:28:26Z to 2026-11-06T23:45:11Z.
const NOW_TD15EX: u64 = 1_792_454_400; // 2026-10-20T00:00:00Z

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

fn collateral(name: &str) -> QuoteCollateralV3 {
    serde_json::from_slice(&fixture(&format!("{name}_collateral.json"))).unwrap()
}

fn verifier(name: &str, tcb: TcbPolicy) -> DcapVerifier {
    DcapVerifier::new(CollateralSource::Fixed(collateral(name)), tcb)
}

fn accept(statuses: &[&str]) -> TcbPolicy {
    TcbPolicy {
        accepted_statuses: statuses.iter().map(|s| s.to_string()).collect(),
        allowed_advisory_ids: None,
    }
}

/// The image hash computed from the quote bytes directly, independent of `TdxMeasurements`:
/// the TD report body starts after the 48-byte header (and a 6-byte body descriptor in v5);
/// MRTD sits at offset 136 of it, followed by MRCONFIGID, MROWNER, MROWNERCONFIG and RTMR0..3.
fn independent_image_hash(raw: &[u8]) -> [u8; 32] {
    let body = if raw[0] == 5 { 48 + 6 } else { 48 };
    let registers = &raw[body + 136..body + 136 + 8 * 48];
    let mut hasher = Sha256::new();
    hasher.update(registers);
    hasher.update([0u8; 64]);
    hasher.finalize().into()
}

fn describe(name: &str, verified: &cocoon_attest::dcap::VerifiedQuote) {
    let m = &verified.quote.measurements;
    println!("{name}: version {}", verified.quote.version);
    println!("  mrtd        {}", hex::encode(m.mrtd));
    for (i, r) in m.rtmr.iter().enumerate() {
        println!("  rtmr{i}       {}", hex::encode(r));
    }
    println!("  report_data {}", hex::encode(verified.quote.report_data));
    println!(
        "  tcb         {} {:?}",
        verified.tcb_status, verified.advisory_ids
    );
    println!("  image_hash  {}", hex::encode(verified.image_hash));
    println!(
        "  valid_until {}",
        verified
            .valid_until
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
}

/// The measurements, report data and image hash a sample must show.
struct Expected {
    mrtd: &'static str,
    rtmr: [&'static str; 4],
    report_data: &'static str,
    image_hash: &'static str,
}

fn assert_facts(verified: &cocoon_attest::dcap::VerifiedQuote, raw: &[u8], expected: &Expected) {
    let m = &verified.quote.measurements;
    assert_eq!(hex::encode(m.mrtd), expected.mrtd);
    for (register, expected) in m.rtmr.iter().zip(expected.rtmr) {
        assert_eq!(hex::encode(register), expected);
    }
    assert_eq!(
        hex::encode(verified.quote.report_data),
        expected.report_data
    );
    // Computed three ways: from the raw bytes here, by `TdxMeasurements`, and hard-coded.
    assert_eq!(verified.image_hash, independent_image_hash(raw));
    assert_eq!(verified.image_hash, m.image_hash());
    assert_eq!(hex::encode(verified.image_hash), expected.image_hash);
    // Parsing alone gives the same facts.
    assert_eq!(parse_tdx_quote(raw).unwrap(), verified.quote);
}

const ZERO48: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn v4_sample_verifies() {
    let raw = fixture("tdx_quote");
    let verified = verifier("tdx_quote", TcbPolicy::default())
        .verify(&raw, at(NOW_V4))
        .unwrap();
    describe("tdx_quote", &verified);
    assert_eq!(verified.quote.version, 4);
    assert_eq!(verified.quote.tee_type, 0x81);
    assert_eq!(verified.tcb_status, "UpToDate");
    assert!(verified.advisory_ids.is_empty());
    // The PCK CRL's nextUpdate, 2025-07-19T10:00:35Z, is the first piece to expire.
    assert_eq!(verified.valid_until, at(1_752_919_235));
    assert_facts(
        &verified,
        &raw,
        &Expected {
            mrtd: "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
            rtmr: [
                "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0",
                "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378",
                "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132",
                ZERO48,
            ],
            report_data: "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20",
            image_hash: "b260fa9168ca9f28e7f15f128a45ac31c419705b31a60feac30b322ee06bc752",
        },
    );
}

#[test]
fn v5_td15ex_sample_verifies() {
    let raw = fixture("tdx_quote_td15ex");
    let verified = verifier("tdx_quote_td15ex", TcbPolicy::default())
        .verify(&raw, at(NOW_TD15EX))
        .unwrap();
    describe("tdx_quote_td15ex", &verified);
    assert_eq!(verified.quote.version, 5);
    assert_eq!(verified.tcb_status, "UpToDate");
    assert_facts(
        &verified,
        &raw,
        &Expected {
            mrtd: "2a674327c50218dba880066b349b8d559d749ed68dce33fd651c184a877d084b07a9e583767a7ad5da13ed91deec2b70",
            rtmr: [
                "0345d2a146eec673fb3861a4d88c5093ef0934b142884294377628cf09fb21bfa979acec61e79f925f5fccaad0827165",
                "3484cd07ba093cede0938303617d6da58f3c6a895ddd5461b3bdd0b29f40e869d4c92642867b44bd3619451bd78ff2d0",
                "83b7a9a35ed613c17a8b9d36a49f28b095f54daa78b328c93eef10ae3e21094c1411467e3371157c4cde5e0beb72dcb8",
                "556d4986cae57e7e3756b6471e4951be6f5f1b4e70942c72325223d6af239da90f1484eeb627727e6d2c0755393b5fdf",
            ],
            report_data: "2945321c99222c3622a14cf7feaab073e799be14b5f3e73cd2e6cad64e5f062463ad204f33f0a39e47d098330db88ca5b5d0a7afce540dfe4c4fe4a377190731",
            image_hash: "828898d0193ff4cbc40f8a6510c9c70136035d828c8525de40ec3ed71b52ca4f",
        },
    );
}

#[test]
fn v5_td15_outdated_sample_parses_and_is_refused_as_unsupported_tcb() {
    // This TD 1.5 sample's platform is below every TCB level of its collateral, so
    // dcap-qvl cannot assign even OutOfDate; no policy can accept it. Its facts still parse.
    let raw = fixture("tdx_quote_outdated");
    let parsed = parse_tdx_quote(&raw).unwrap();
    assert_eq!(parsed.version, 5);
    let m = &parsed.measurements;
    println!("tdx_quote_outdated: mrtd {}", hex::encode(m.mrtd));
    for (i, r) in m.rtmr.iter().enumerate() {
        println!("  rtmr{i} {}", hex::encode(r));
    }
    println!("  report_data {}", hex::encode(parsed.report_data));
    println!("  image_hash {}", hex::encode(m.image_hash()));
    assert_eq!(
        hex::encode(m.mrtd),
        "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd"
    );
    for register in m.rtmr {
        assert_eq!(hex::encode(register), ZERO48);
    }
    assert_eq!(
        hex::encode(parsed.report_data),
        "d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce47728\
         0000000000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(
        hex::encode(m.image_hash()),
        "571b21ee55a24c3adab8b2ff2973b1fce7de566dedbacc3b31e7bb82fe168913"
    );
    assert_eq!(m.image_hash(), independent_image_hash(&raw));

    for tcb in [TcbPolicy::default(), accept(&["UpToDate", "OutOfDate"])] {
        let err = verifier("tdx_quote_outdated", tcb)
            .verify(&raw, at(NOW_OUTDATED))
            .unwrap_err();
        assert!(matches!(err, DcapError::TcbNotSupported(_)), "{err}");
    }
}

#[test]
fn verified_quote_serializes_as_hex() {
    let raw = fixture("tdx_quote");
    let verified = verifier("tdx_quote", TcbPolicy::default())
        .verify(&raw, at(NOW_V4))
        .unwrap();
    let json = serde_json::to_value(&verified).unwrap();
    assert_eq!(json["image_hash"], hex::encode(verified.image_hash));
    assert_eq!(
        json["quote"]["measurements"]["mrtd"],
        hex::encode(verified.quote.measurements.mrtd)
    );
    assert_eq!(
        json["quote"]["report_data"],
        hex::encode(verified.quote.report_data)
    );
    assert_eq!(json["valid_until"], 1_752_919_235u64);
}

// ---- tamper matrix ----

/// Offsets in the v4 sample: the TD report body is bytes 48..632 (MRTD at 184, report data
/// at 568); the auth data length is at 632 and the quote's ECDSA signature at 636..700.
const MRTD_BYTE: usize = 48 + 136 + 5;
const REPORT_DATA_BYTE: usize = 48 + 520 + 7;
const SIGNATURE_BYTE: usize = 636 + 10;

fn flipped(raw: &[u8], offset: usize) -> Vec<u8> {
    let mut tampered = raw.to_vec();
    tampered[offset] ^= 0x01;
    tampered
}

#[test]
fn flipped_byte_in_the_td_report_is_refused() {
    let raw = fixture("tdx_quote");
    let verifier = verifier("tdx_quote", TcbPolicy::default());
    for offset in [MRTD_BYTE, REPORT_DATA_BYTE] {
        let err = verifier
            .verify(&flipped(&raw, offset), at(NOW_V4))
            .unwrap_err();
        assert!(
            matches!(err, DcapError::SignatureInvalid(_)),
            "offset {offset}: {err}"
        );
    }
    // The untouched quote still verifies: the refusals were about the flip.
    verifier.verify(&raw, at(NOW_V4)).unwrap();
}

#[test]
fn flipped_byte_in_the_signature_is_refused() {
    let raw = fixture("tdx_quote");
    let err = verifier("tdx_quote", TcbPolicy::default())
        .verify(&flipped(&raw, SIGNATURE_BYTE), at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::SignatureInvalid(_)), "{err}");
}

#[test]
fn flipped_byte_in_the_v5_report_is_refused() {
    let raw = fixture("tdx_quote_td15ex");
    // v5: 6-byte body descriptor after the header, then the TD report.
    let err = verifier("tdx_quote_td15ex", TcbPolicy::default())
        .verify(&flipped(&raw, 54 + 136 + 1), at(NOW_TD15EX))
        .unwrap_err();
    assert!(matches!(err, DcapError::SignatureInvalid(_)), "{err}");
}

#[test]
fn tampered_collateral_is_refused() {
    let raw = fixture("tdx_quote");
    let mut collateral = collateral("tdx_quote");
    collateral.tcb_info_signature[3] ^= 0x01;
    let err = DcapVerifier::new(CollateralSource::Fixed(collateral), TcbPolicy::default())
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::SignatureInvalid(_)), "{err}");
}

#[test]
fn expired_collateral_is_refused() {
    let raw = fixture("tdx_quote");
    // A day after the PCK CRL's nextUpdate (2025-07-19T10:00:35Z).
    let now = at(1_752_919_235 + 86_400);
    let err = verifier("tdx_quote", TcbPolicy::default())
        .verify(&raw, now)
        .unwrap_err();
    match &err {
        DcapError::CollateralExpired {
            piece,
            expired_at,
            now: reported_now,
        } => {
            assert_eq!(piece, "PCK CRL");
            assert_eq!(*expired_at, at(1_752_919_235));
            assert_eq!(*reported_now, now);
        }
        other => panic!("expected CollateralExpired, got {other}"),
    }
    println!("{err}");
}

#[test]
fn collateral_from_the_future_is_refused() {
    let raw = fixture("tdx_quote");
    // 2025-06-01, before the TCB info was issued.
    let err = verifier("tdx_quote", TcbPolicy::default())
        .verify(&raw, at(1_748_736_000))
        .unwrap_err();
    assert!(
        matches!(err, DcapError::CollateralNotYetValid { .. }),
        "{err}"
    );
}

#[test]
fn tcb_status_outside_the_policy_is_refused() {
    let raw = fixture("tdx_quote");
    let err = verifier("tdx_quote", accept(&[]))
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    match err {
        DcapError::TcbStatusNotAccepted { status, accepted } => {
            assert_eq!(status, "UpToDate");
            assert!(accepted.is_empty());
        }
        other => panic!("expected TcbStatusNotAccepted, got {other}"),
    }

    // A policy for out-of-date platforms only refuses an up-to-date v5 quote.
    let raw = fixture("tdx_quote_td15ex");
    let err = verifier("tdx_quote_td15ex", accept(&["OutOfDate"]))
        .verify(&raw, at(NOW_TD15EX))
        .unwrap_err();
    match err {
        DcapError::TcbStatusNotAccepted { status, accepted } => {
            assert_eq!(status, "UpToDate");
            assert_eq!(accepted, ["OutOfDate"]);
        }
        other => panic!("expected TcbStatusNotAccepted, got {other}"),
    }
}

#[test]
fn advisory_allow_list_is_applied_to_verified_quotes() {
    // None of the TDX samples that verify carries advisory ids (the refusal itself is
    // unit-tested in `dcap::tests::advisory_allow_list`), so here: an empty allow-list
    // accepts an advisory-free quote, and an allow-list never rescues a refused status.
    let tcb = TcbPolicy {
        allowed_advisory_ids: Some(Vec::new()),
        ..TcbPolicy::default()
    };
    let verified = verifier("tdx_quote", tcb)
        .verify(&fixture("tdx_quote"), at(NOW_V4))
        .unwrap();
    assert!(verified.advisory_ids.is_empty());

    let tcb = TcbPolicy {
        accepted_statuses: Vec::new(),
        allowed_advisory_ids: Some(vec!["INTEL-SA-00837".to_string()]),
    };
    let err = verifier("tdx_quote", tcb)
        .verify(&fixture("tdx_quote"), at(NOW_V4))
        .unwrap_err();
    assert!(
        matches!(err, DcapError::TcbStatusNotAccepted { .. }),
        "{err}"
    );
}

#[test]
fn root_key_id_is_sha384_of_intels_root_public_key() {
    let id = root_key_id(&fixture("intel_sgx_root_ca.der")).unwrap();
    assert_eq!(id, INTEL_ROOT_KEY_ID);
    assert_eq!(
        hex::encode(id),
        "46e403bd34f05a3f2817ab9badcaacc7ffc98e0f261008cd30dae936cace18d5dcf58eef31463613de1570d516200993"
    );
}

#[test]
fn root_key_allow_list_without_intel_is_refused() {
    let raw = fixture("tdx_quote");
    let err = verifier("tdx_quote", TcbPolicy::default())
        .with_allowed_root_key_ids(vec![[0x11; 48]])
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::RootKeyNotAllowed), "{err}");

    // Listing Intel's id explicitly (among others) accepts it again.
    verifier("tdx_quote", TcbPolicy::default())
        .with_allowed_root_key_ids(vec![[0x11; 48], INTEL_ROOT_KEY_ID])
        .verify(&raw, at(NOW_V4))
        .unwrap();
}

#[test]
fn custom_root_is_refused_unless_allow_listed() {
    let raw = fixture("tdx_quote");
    let other_root = rcgen::generate_simple_self_signed(vec!["not-intel".to_string()])
        .unwrap()
        .cert
        .der()
        .to_vec();
    let other_id = root_key_id(&other_root).unwrap();

    // Default allow-list: only Intel's id, so the custom root is refused before anything.
    let err = verifier("tdx_quote", TcbPolicy::default())
        .with_root_ca(other_root.clone())
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::RootKeyNotAllowed), "{err}");

    // Allowed, it is used — and Intel's quote does not chain to it.
    let err = verifier("tdx_quote", TcbPolicy::default())
        .with_root_ca(other_root)
        .with_allowed_root_key_ids(vec![other_id])
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::SignatureInvalid(_)), "{err}");

    // Intel's own root passed explicitly behaves like the built-in one.
    verifier("tdx_quote", TcbPolicy::default())
        .with_root_ca(fixture("intel_sgx_root_ca.der"))
        .verify(&raw, at(NOW_V4))
        .unwrap();

    let err = verifier("tdx_quote", TcbPolicy::default())
        .with_root_ca(b"not a certificate".to_vec())
        .verify(&raw, at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::InvalidRootCa(_)), "{err}");
}

#[test]
fn garbage_truncated_and_sgx_quotes_are_quote_errors() {
    let verifier = verifier("tdx_quote", TcbPolicy::default());
    let raw = fixture("tdx_quote");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"certainly not a quote".repeat(10)),
        ("header only", raw[..48].to_vec()),
        ("half a report", raw[..300].to_vec()),
        ("no auth data", raw[..632].to_vec()),
        ("truncated auth data", raw[..raw.len() - 100].to_vec()),
        // The sample is zero-padded after its 4936 bytes of quote; cut into the quote proper.
        ("one byte short", raw[..4935].to_vec()),
        ("sgx", fixture("sgx_quote")),
    ];
    // The padding itself is not part of the quote and may go.
    verifier.verify(&raw[..4936], at(NOW_V4)).unwrap();
    for (name, bytes) in cases {
        let err = verifier.verify(&bytes, at(NOW_V4)).unwrap_err();
        assert!(matches!(err, DcapError::Quote(_)), "{name}: {err}");
        assert!(parse_tdx_quote(&bytes).is_err(), "{name}");
    }
    assert_eq!(
        parse_tdx_quote(&fixture("sgx_quote")),
        Err(QuoteError::NotTdx(0))
    );
    let mut v3 = raw.clone();
    v3[0] = 3;
    assert_eq!(parse_tdx_quote(&v3), Err(QuoteError::UnsupportedVersion(3)));
}

#[test]
fn no_collateral_for_another_platform() {
    // The outdated sample's collateral is for FMSPC 90C06F000000, the v4 quote's is B0C06F000000.
    let err = verifier("tdx_quote_outdated", TcbPolicy::default())
        .verify(&fixture("tdx_quote"), at(NOW_V4))
        .unwrap_err();
    assert!(matches!(err, DcapError::NoCollateral(_)), "{err}");
}

// ---- cache ----

#[test]
fn second_verification_is_a_cache_hit() {
    let raw = fixture("tdx_quote");
    let verifier = verifier("tdx_quote", TcbPolicy::default());
    let first = verifier.verify(&raw, at(NOW_V4)).unwrap();
    assert_eq!(verifier.cache_stats(), (0, 1));
    let second = verifier.verify(&raw, at(NOW_V4 + 60)).unwrap();
    assert_eq!(verifier.cache_stats(), (1, 1));
    assert_eq!(first.image_hash, second.image_hash);
    assert_eq!(first.valid_until, second.valid_until);

    // A different quote is a miss.
    verifier
        .verify(&flipped(&raw, MRTD_BYTE), at(NOW_V4))
        .unwrap_err();
    assert_eq!(verifier.cache_stats(), (1, 2));
}

#[test]
fn cache_entry_is_not_used_past_valid_until() {
    let raw = fixture("tdx_quote");
    let verifier = verifier("tdx_quote", TcbPolicy::default());
    let verified = verifier.verify(&raw, at(NOW_V4)).unwrap();
    let valid_until = verified.valid_until;

    // At valid_until the entry is stale: this is a miss, and full verification refuses it.
    let err = verifier
        .verify(&raw, valid_until + Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(err, DcapError::CollateralExpired { .. }), "{err}");
    assert_eq!(verifier.cache_stats(), (0, 2));

    // The stale entry was dropped and failures are not stored: going back in time is a miss.
    verifier.verify(&raw, at(NOW_V4)).unwrap();
    assert_eq!(verifier.cache_stats(), (0, 3));
    verifier.verify(&raw, at(NOW_V4)).unwrap();
    assert_eq!(verifier.cache_stats(), (1, 3));
}

#[test]
fn cache_entry_is_not_used_before_the_collateral_was_issued() {
    let raw = fixture("tdx_quote");
    let verifier = verifier("tdx_quote", TcbPolicy::default());
    verifier.verify(&raw, at(NOW_V4)).unwrap();
    let err = verifier.verify(&raw, at(1_748_736_000)).unwrap_err();
    assert!(
        matches!(err, DcapError::CollateralNotYetValid { .. }),
        "{err}"
    );
    assert_eq!(verifier.cache_stats(), (0, 2));
}

#[test]
fn failures_are_not_cached_and_capacity_zero_disables_the_cache() {
    let raw = fixture("tdx_quote");
    let refusing = verifier("tdx_quote", accept(&[]));
    for _ in 0..2 {
        refusing.verify(&raw, at(NOW_V4)).unwrap_err();
    }
    assert_eq!(refusing.cache_stats(), (0, 2));

    let uncached = verifier("tdx_quote", TcbPolicy::default()).with_cache_capacity(0);
    for _ in 0..2 {
        uncached.verify(&raw, at(NOW_V4)).unwrap();
    }
    assert_eq!(uncached.cache_stats(), (0, 2));
}

// ---- collateral directory ----

fn copy_into(dir: &std::path::Path, name: &str) {
    let file = format!("{name}_collateral.json");
    std::fs::copy(fixture_path(&file), dir.join(&file)).unwrap();
}

#[test]
fn directory_source_picks_collateral_by_fmspc_and_date() {
    let dir = tempfile::tempdir().unwrap();
    // tdx_quote and tdx_quote_td15ex share FMSPC B0C06F000000 with collateral from different
    // months; tdx_quote_outdated is another platform.
    for name in ["tdx_quote", "tdx_quote_td15ex", "tdx_quote_outdated"] {
        copy_into(dir.path(), name);
    }
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let verifier = DcapVerifier::new(
        CollateralSource::Directory(dir.path().to_path_buf()),
        TcbPolicy::default(),
    );
    verifier.verify(&fixture("tdx_quote"), at(NOW_V4)).unwrap();
    verifier
        .verify(&fixture("tdx_quote_td15ex"), at(NOW_TD15EX))
        .unwrap();
    // Its own platform's collateral is found (the refusal is about its TCB, not collateral).
    let err = verifier
        .verify(&fixture("tdx_quote_outdated"), at(NOW_OUTDATED))
        .unwrap_err();
    assert!(matches!(err, DcapError::TcbNotSupported(_)), "{err}");
}

#[test]
fn directory_source_notices_new_and_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = DcapVerifier::new(
        CollateralSource::Directory(dir.path().to_path_buf()),
        TcbPolicy::default(),
    );
    let raw = fixture("tdx_quote");

    let err = verifier.verify(&raw, at(NOW_V4)).unwrap_err();
    assert!(matches!(err, DcapError::NoCollateral(_)), "{err}");

    // A broken file is skipped, not fatal.
    let path = dir.path().join("platform.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = verifier.verify(&raw, at(NOW_V4)).unwrap_err();
    assert!(matches!(err, DcapError::NoCollateral(_)), "{err}");

    // The same file, now valid (different length, so seen as changed whatever the mtime).
    std::fs::write(&path, fixture("tdx_quote_collateral.json")).unwrap();
    verifier.verify(&raw, at(NOW_V4)).unwrap();

    // Replaced by another platform's collateral: the cache is cleared and the quote refused.
    std::fs::write(&path, fixture("tdx_quote_outdated_collateral.json")).unwrap();
    verifier
        .verify(&fixture("tdx_quote_outdated"), at(NOW_OUTDATED))
        .unwrap_err();
    let err = verifier.verify(&raw, at(NOW_V4)).unwrap_err();
    assert!(matches!(err, DcapError::NoCollateral(_)), "{err}");

    let missing = DcapVerifier::new(
        CollateralSource::Directory(dir.path().join("missing")),
        TcbPolicy::default(),
    );
    let err = missing.verify(&raw, at(NOW_V4)).unwrap_err();
    assert!(matches!(err, DcapError::NoCollateral(_)), "{err}");
}

// ---- no panics on attacker input ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let _ = parse_tdx_quote(&bytes);
        let verifier = verifier("tdx_quote", TcbPolicy::default());
        prop_assert!(verifier.verify(&bytes, at(NOW_V4)).is_err());
    }

    #[test]
    fn random_tdx_headers_never_panic(
        version in prop_oneof![Just(4u16), Just(5u16)],
        body_type in 0u16..6,
        tail in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        // Valid-looking headers push the decoder past the header checks into the body.
        let mut bytes = fixture("tdx_quote")[..48].to_vec();
        bytes[..2].copy_from_slice(&version.to_le_bytes());
        if version == 5 {
            bytes.extend_from_slice(&body_type.to_le_bytes());
            bytes.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        }
        bytes.extend_from_slice(&tail);
        let _ = parse_tdx_quote(&bytes);
    }

    #[test]
    fn single_byte_mutations_never_panic_nor_change_the_facts(
        offset in 0usize..5006,
        xor in 1u8..=255,
    ) {
        let raw = fixture("tdx_quote");
        let offset = offset % raw.len();
        let mut mutated = raw.clone();
        mutated[offset] ^= xor;
        let _ = parse_tdx_quote(&mutated);
        let verifier = verifier("tdx_quote", TcbPolicy::default()).with_cache_capacity(0);
        // A mutation may land in bytes no signature covers (e.g. a PEM terminator); then it
        // may verify, but must not change anything the quote says.
        if let Ok(verified) = verifier.verify(&mutated, at(NOW_V4)) {
            prop_assert_eq!(verified.quote, parse_tdx_quote(&raw).unwrap());
        }
    }
}

#[test]
fn measurements_from_a_parsed_quote_round_trip() {
    let parsed = parse_tdx_quote(&fixture("tdx_quote")).unwrap();
    let bytes = parsed.measurements.to_bytes();
    assert_eq!(
        TdxMeasurements::from_bytes(&bytes),
        Some(parsed.measurements)
    );
}
