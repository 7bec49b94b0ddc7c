//! AMD SEV-SNP evidence: a real published Milan report and AMD certificates (fixtures/snp,
//! from virtee/sev) verify against the pinned roots, and every tampering is refused with its
//! own error; the binding to a certificate's key and the allow-lists are tested with the
//! `danger` fake, whose report data we choose.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use cocoon_attest::cert::{build_identity_in, generate_identity, parse_certificate};
use cocoon_attest::policy::{danger, AllowLists, AttestError, AttestationPolicy, PeerMeasurements};
use cocoon_attest::provider::danger::{FakeSnp, FakeTdx, ReplaySnpEvidence};
use cocoon_attest::provider::{snp_evidence_from_tsm, ConfigFsTsmSnp, QuoteProvider};
use cocoon_attest::snp::{
    check_guest_policy, check_report_data, parse_report, snp_image_hash, CertificateTable,
    ProductLine, SnpError, SnpEvidence, SnpTcb, SnpVerifier, SNP_REPORT_LEN,
};
use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind, UserClaims};
use cocoon_net::policy::OID_SNP_EVIDENCE;
use cocoon_net::{Acceptor, Connector, NetError, PeerPolicy};
use proptest::prelude::*;
use rcgen::{KeyPair, PKCS_ED25519};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The published Milan report (the file is hex).
fn milan_report() -> Vec<u8> {
    let text = String::from_utf8(fixture("report_milan.hex")).expect("hex text");
    hex::decode(text.trim()).expect("valid hex")
}

fn milan_evidence() -> SnpEvidence {
    SnpEvidence::hardware(milan_report(), fixture("vcek_milan.der"))
}

fn all_lines() -> SnpVerifier {
    SnpVerifier::new(&ProductLine::ALL, None).expect("built-in roots")
}

fn milan_only() -> SnpVerifier {
    SnpVerifier::new(&[ProductLine::Milan], None).expect("built-in roots")
}

/// The DER of a built-in AMD certificate, for evidence that carries its own ASK/ARK.
fn builtin_der(pem: &[u8]) -> Vec<u8> {
    sev::certs::snp::Certificate::from_pem(pem)
        .and_then(|c| c.to_der())
        .expect("built-in certificate")
}

const MEASUREMENT_OFFSET: usize = 0x90;
const POLICY_OFFSET: usize = 0x08;
const SIGNATURE_OFFSET: usize = 0x2A0;

fn with_byte(mut report: Vec<u8>, offset: usize, xor: u8) -> SnpEvidence {
    report[offset] ^= xor;
    SnpEvidence::hardware(report, fixture("vcek_milan.der"))
}

#[test]
fn the_published_milan_report_verifies_against_the_pinned_chain() {
    let verified = all_lines().verify_evidence(&milan_evidence()).unwrap();
    assert_eq!(verified.product_line, ProductLine::Milan);
    let report = &verified.report;
    assert_eq!(report.version, 2);
    assert_eq!(report.policy, 0x3_0000, "SMT allowed, DEBUG off");
    assert_eq!(
        report.reported_tcb,
        SnpTcb {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115
        }
    );
    let raw = milan_report();
    assert_eq!(
        report.measurement[..],
        raw[MEASUREMENT_OFFSET..MEASUREMENT_OFFSET + 48]
    );
    assert_eq!(report.image_hash(), snp_image_hash(&report.measurement));
    // The binding step alone: the report vouches for its own report data and nothing else.
    check_report_data(report, &report.report_data).unwrap();
    assert_eq!(
        all_lines()
            .verify_bound(&milan_evidence(), &[0; 64])
            .unwrap_err(),
        SnpError::ReportDataMismatch
    );
    // The same evidence with AMD's ASK and ARK carried along, as a host's table supplies them.
    let carried = SnpEvidence {
        ask_der: Some(builtin_der(sev::certs::snp::builtin::milan::ASK)),
        ark_der: Some(builtin_der(sev::certs::snp::builtin::milan::ARK)),
        ..milan_evidence()
    };
    assert!(milan_only().verify_evidence(&carried).is_ok());
    // And through the encoding that goes into the certificate.
    let decoded = SnpEvidence::decode(&carried.encode().unwrap()).unwrap();
    assert_eq!(decoded, carried);
}

#[test]
fn a_flipped_byte_in_the_signed_body_is_a_bad_signature() {
    for offset in [
        MEASUREMENT_OFFSET,
        0x50,  /* report data */
        0x180, /* reported TCB */
    ] {
        assert_eq!(
            all_lines()
                .verify_evidence(&with_byte(milan_report(), offset, 0x01))
                .unwrap_err(),
            // A changed REPORTED_TCB no longer matches the VCEK: refused before the signature.
            if offset == 0x180 {
                SnpError::TcbMismatch {
                    vcek: SnpTcb {
                        fmc: None,
                        bootloader: 3,
                        tee: 0,
                        snp: 8,
                        microcode: 115,
                    },
                    report: SnpTcb {
                        fmc: None,
                        bootloader: 2,
                        tee: 0,
                        snp: 8,
                        microcode: 115,
                    },
                }
            } else {
                SnpError::BadSignature
            },
            "byte {offset:#x}"
        );
    }
}

#[test]
fn a_flipped_byte_in_the_signature_is_a_bad_signature() {
    for offset in [
        SIGNATURE_OFFSET,
        SIGNATURE_OFFSET + 20,
        SIGNATURE_OFFSET + 72 + 47,
    ] {
        assert_eq!(
            all_lines()
                .verify_evidence(&with_byte(milan_report(), offset, 0x80))
                .unwrap_err(),
            SnpError::BadSignature,
            "byte {offset:#x}"
        );
    }
    // Bytes of R beyond the 48 that P-384 uses are not signature: they must be zero.
    assert!(matches!(
        all_lines()
            .verify_evidence(&with_byte(milan_report(), SIGNATURE_OFFSET + 60, 1))
            .unwrap_err(),
        SnpError::SignatureMalformed(_)
    ));
}

#[test]
fn a_vcek_from_another_chain_is_refused() {
    let turin_vcek = SnpEvidence::hardware(milan_report(), fixture("vcek_turin.der"));
    // Only Milan pinned: the Turin VCEK is signed by no pinned ASK.
    assert_eq!(
        milan_only().verify_evidence(&turin_vcek).unwrap_err(),
        SnpError::VcekNotSignedByAsk
    );
    // Turin pinned too: a genuine VCEK, but of another chip and TCB than the report's.
    assert!(matches!(
        all_lines().verify_evidence(&turin_vcek).unwrap_err(),
        SnpError::TcbMismatch { .. }
    ));
}

#[test]
fn a_tampered_vcek_is_not_signed_by_the_ask() {
    let vcek = fixture("vcek_milan.der");
    // Byte 770 is the last of the hardware id (in the signed part), the last byte is in the
    // ASK's signature.
    for offset in [770, vcek.len() - 1] {
        let mut tampered = vcek.clone();
        tampered[offset] ^= 0x01;
        assert_eq!(
            all_lines()
                .verify_evidence(&SnpEvidence::hardware(milan_report(), tampered))
                .unwrap_err(),
            SnpError::VcekNotSignedByAsk,
            "byte {offset}"
        );
    }
    let mut garbage = vcek;
    garbage.truncate(100);
    assert!(matches!(
        all_lines()
            .verify_evidence(&SnpEvidence::hardware(milan_report(), garbage))
            .unwrap_err(),
        SnpError::CertificateMalformed { which: "VCEK", .. }
    ));
    assert_eq!(
        all_lines()
            .verify_evidence(&SnpEvidence::hardware(milan_report(), Vec::new()))
            .unwrap_err(),
        SnpError::VcekMissing
    );
}

#[test]
fn an_ask_not_signed_by_the_pinned_ark_is_refused() {
    // Genoa's genuine ASK, but only Milan's ARK is pinned.
    let foreign_ask = SnpEvidence {
        ask_der: Some(builtin_der(sev::certs::snp::builtin::genoa::ASK)),
        ..milan_evidence()
    };
    assert!(matches!(
        milan_only().verify_evidence(&foreign_ask).unwrap_err(),
        SnpError::AskNotSignedByArk(_)
    ));
    // An ASK signed by a pinned ARK that did not sign this VCEK.
    assert_eq!(
        all_lines().verify_evidence(&foreign_ask).unwrap_err(),
        SnpError::VcekNotSignedByAsk
    );
}

#[test]
fn an_ark_from_the_peer_is_only_accepted_when_pinned() {
    let genoa_ark = SnpEvidence {
        ark_der: Some(builtin_der(sev::certs::snp::builtin::genoa::ARK)),
        ..milan_evidence()
    };
    assert_eq!(
        milan_only().verify_evidence(&genoa_ark).unwrap_err(),
        SnpError::ArkNotPinned
    );
    // A self-made root is never pinned, however it signs: here Milan's ARK with one byte
    // changed.
    let mut forged = builtin_der(sev::certs::snp::builtin::milan::ARK);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged_ark = SnpEvidence {
        ark_der: Some(forged),
        ..milan_evidence()
    };
    assert_eq!(
        all_lines().verify_evidence(&forged_ark).unwrap_err(),
        SnpError::ArkNotPinned
    );
}

#[test]
fn a_debug_policy_is_refused() {
    // The policy check, on the parsed report with DEBUG (bit 19) set.
    let mut debug = milan_report();
    debug[POLICY_OFFSET + 2] |= 0x08;
    let parsed = parse_report(&debug).unwrap();
    assert_eq!(
        check_guest_policy(&parsed),
        Err(SnpError::DebugPolicy(0xB_0000))
    );
    check_guest_policy(&parse_report(&milan_report()).unwrap()).unwrap();
    // In a signed report the signature is checked first (documented order), so the flipped
    // bit shows as tampering.
    assert_eq!(
        all_lines()
            .verify_evidence(&SnpEvidence::hardware(
                debug.clone(),
                fixture("vcek_milan.der")
            ))
            .unwrap_err(),
        SnpError::BadSignature
    );
    // Where nothing is signed (the fake), the debug policy itself refuses, in a handshake's
    // path too.
    let mut fake = cocoon_attest::snp::danger::fake_evidence(&[1; 64], &[2; 48]);
    fake.report[POLICY_OFFSET + 2] |= 0x08;
    assert!(matches!(
        cocoon_attest::snp::danger::verify_fake(&fake),
        Err(SnpError::DebugPolicy(_))
    ));
    let now = SystemTime::now();
    let identity = generate_identity(&ReplaySnpEvidence(fake.encode().unwrap()), "w", now).unwrap();
    assert!(matches!(
        danger::fake_snp(AllowLists::default()).check(&identity.tls.cert_der, now),
        Err(AttestError::Snp(SnpError::DebugPolicy(_)))
    ));
}

#[test]
fn a_minimum_tcb_above_the_reported_one_is_refused() {
    let reported = SnpTcb {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    let exact = SnpVerifier::new(&ProductLine::ALL, Some(reported)).unwrap();
    assert!(exact.verify_evidence(&milan_evidence()).is_ok());
    let newer = SnpTcb { snp: 9, ..reported };
    let strict = SnpVerifier::new(&ProductLine::ALL, Some(newer)).unwrap();
    assert_eq!(
        strict.verify_evidence(&milan_evidence()).unwrap_err(),
        SnpError::TcbTooLow {
            reported,
            minimum: newer
        }
    );
}

#[test]
fn malformed_reports_and_evidence_are_refused_without_panicking() {
    let report = milan_report();
    for len in [0, 1, SNP_REPORT_LEN - 1, SNP_REPORT_LEN + 1, 4096] {
        let mut bytes = report.clone();
        bytes.resize(len, 0);
        assert_eq!(
            parse_report(&bytes).unwrap_err(),
            SnpError::ReportLength(len)
        );
    }
    for version in [0u32, 1, 6, u32::MAX] {
        let mut bytes = report.clone();
        bytes[..4].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            parse_report(&bytes).unwrap_err(),
            SnpError::UnsupportedReportVersion(version)
        );
    }
    // A reserved byte the `sev` parser reads past (inside REPORTED_TCB) is caught by the
    // re-encoding; one it checks itself (the reserved tail of the signed part) by the parser.
    let mut tcb_reserved = report.clone();
    tcb_reserved[0x182] ^= 0x10;
    assert_eq!(
        parse_report(&tcb_reserved).unwrap_err(),
        SnpError::NonCanonicalReport
    );
    let mut tail_reserved = report.clone();
    tail_reserved[0x2A0 - 1] ^= 0x10;
    assert!(matches!(
        parse_report(&tail_reserved).unwrap_err(),
        SnpError::ReportMalformed(reason) if reason.contains("zero")
    ));
    // Another signature algorithm than ECDSA P-384 (SIGNATURE_ALGO at 0x34).
    let mut algorithm = report.clone();
    algorithm[0x34] = 2;
    assert_eq!(
        all_lines()
            .verify_evidence(&SnpEvidence::hardware(algorithm, fixture("vcek_milan.der")))
            .unwrap_err(),
        SnpError::UnsupportedSignatureAlgorithm(2)
    );
    // A VLEK-signed report (KEY_INFO.SIGNING_KEY = 1) is not for the VCEK.
    let mut vlek = report.clone();
    vlek[0x48] |= 1 << 2;
    assert_eq!(
        all_lines()
            .verify_evidence(&SnpEvidence::hardware(vlek, fixture("vcek_milan.der")))
            .unwrap_err(),
        SnpError::UnsupportedSigningKey(1)
    );
    let encoded = milan_evidence().encode().unwrap();
    for cut in [0, 1, 2, 3, 100, encoded.len() - 1] {
        assert!(
            SnpEvidence::decode(&encoded[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut oversized = encoded;
    oversized.extend_from_slice(&[0; 10]);
    assert!(matches!(
        SnpEvidence::decode(&oversized),
        Err(SnpError::EvidenceMalformed(_))
    ));
}

#[test]
fn fake_snp_certificates_bind_the_key_and_pass_the_allow_lists() {
    let now = SystemTime::now();
    let measurement = [0x5a; 48];
    let identity = generate_identity(&FakeSnp::new(Some(measurement)), "w", now).unwrap();
    let cert = &identity.tls.cert_der;
    assert!(identity.quote.is_none());
    assert!(identity.snp_evidence.is_some());
    let facts = parse_certificate(cert, now).unwrap();
    assert!(
        facts.quote.is_none(),
        "SNP evidence is not in the TDX extension"
    );
    let evidence = SnpEvidence::decode(facts.snp_evidence.as_deref().unwrap()).unwrap();
    let report = cocoon_attest::snp::danger::verify_fake(&evidence).unwrap();
    assert_eq!(
        report.report_data,
        UserClaims::for_key(identity.tls.public_key).report_data()
    );

    let peer = danger::fake_snp(AllowLists {
        image_hashes: vec![snp_image_hash(&measurement)],
        snp_measurements: vec![measurement],
        ..AllowLists::default()
    })
    .check(cert, now)
    .unwrap();
    assert_eq!(peer.image_hash, snp_image_hash(&measurement));
    assert_eq!(peer.measurements, PeerMeasurements::Snp(measurement));
    assert_eq!(peer.tcb_status, "fake");
    assert_eq!(peer.public_key, identity.tls.public_key);

    let refused = |allow: AllowLists| danger::fake_snp(allow).check(cert, now).unwrap_err();
    assert!(matches!(
        refused(AllowLists {
            image_hashes: vec![[0; 32]],
            ..AllowLists::default()
        }),
        AttestError::ImageHashNotAllowed(_)
    ));
    assert!(matches!(
        refused(AllowLists {
            snp_measurements: vec![[0; 48]],
            ..AllowLists::default()
        }),
        AttestError::SnpMeasurementNotAllowed(_)
    ));
    assert!(matches!(
        refused(AllowLists {
            mrtd: vec![[0; 48]],
            ..AllowLists::default()
        }),
        AttestError::MrtdNotAllowed(_)
    ));
}

#[test]
fn each_policy_refuses_the_other_tee_and_the_fake() {
    let now = SystemTime::now();
    let fake_snp = generate_identity(&FakeSnp::new(None), "w", now).unwrap();
    let fake_tdx = generate_identity(&FakeTdx::new(None), "w", now).unwrap();
    let real = AttestationPolicy::sev_snp(all_lines(), AllowLists::default());
    assert!(matches!(
        real.check(&fake_snp.tls.cert_der, now),
        Err(AttestError::Snp(SnpError::FakeEvidenceRefused))
    ));
    assert!(matches!(
        real.check(&fake_tdx.tls.cert_der, now),
        Err(AttestError::MissingSnpEvidence)
    ));
    assert!(matches!(
        danger::fake_snp(AllowLists::default()).check(&fake_tdx.tls.cert_der, now),
        Err(AttestError::MissingSnpEvidence)
    ));
    assert!(matches!(
        danger::fake_tdx(AllowLists::default()).check(&fake_snp.tls.cert_der, now),
        Err(AttestError::MissingQuote)
    ));
    // Real evidence is never taken by the fake policy.
    let replayed = generate_identity(
        &ReplaySnpEvidence(milan_evidence().encode().unwrap()),
        "w",
        now,
    )
    .unwrap();
    assert!(matches!(
        danger::fake_snp(AllowLists::default()).check(&replayed.tls.cert_der, now),
        Err(AttestError::Snp(SnpError::NotFakeEvidence))
    ));
    // The `any` policy accepts the certificate: the SNP extension is a known one.
    assert!(cocoon_net::policy::danger::AcceptAnySelfSigned
        .verify_peer(&fake_snp.tls.cert_der, now)
        .is_ok());
}

#[test]
fn a_real_report_moved_into_a_certificate_is_refused_only_for_its_binding() {
    let now = SystemTime::now();
    let identity = generate_identity(
        &ReplaySnpEvidence(milan_evidence().encode().unwrap()),
        "thief",
        now,
    )
    .unwrap();
    let policy = AttestationPolicy::sev_snp(all_lines(), AllowLists::default());
    // Chain, TCB, signature and policy all pass; the report vouches for another key.
    assert!(matches!(
        policy.check(&identity.tls.cert_der, now),
        Err(AttestError::ReportDataMismatch)
    ));
    // Fake evidence made for one key, in another key's certificate: the same refusal.
    let other_key = UserClaims::for_key([9; 32]).report_data();
    let moved = FakeSnp::new(None).quote(&other_key).unwrap();
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let cert = build_identity_in(key, moved, OID_SNP_EVIDENCE, "w", now, Vec::new()).unwrap();
    assert!(matches!(
        danger::fake_snp(AllowLists::default()).check(&cert.tls.cert_der, now),
        Err(AttestError::ReportDataMismatch)
    ));
}

#[test]
fn the_configfs_blobs_become_evidence_with_the_hosts_certificates() {
    let report = milan_report();
    let vcek = fixture("vcek_milan.der");
    let table = CertificateTable {
        vcek: Some(vcek.clone()),
        ask: Some(builtin_der(sev::certs::snp::builtin::milan::ASK)),
        ark: None,
    };
    let bytes = snp_evidence_from_tsm(report.clone(), &table.encode(), None).unwrap();
    let evidence = SnpEvidence::decode(&bytes).unwrap();
    assert_eq!(evidence.vcek_der, vcek);
    assert!(milan_only().verify_evidence(&evidence).is_ok());
    // No table: the configured VCEK file stands in; neither: refused at the source.
    let bytes = snp_evidence_from_tsm(report.clone(), &[], Some(&vcek)).unwrap();
    assert!(all_lines()
        .verify_evidence(&SnpEvidence::decode(&bytes).unwrap())
        .is_ok());
    assert!(matches!(
        snp_evidence_from_tsm(report, &[], None),
        Err(AttestError::TeeUnavailable(_))
    ));
    let missing = std::env::temp_dir().join("cocoon-no-such-tsm-dir");
    assert!(matches!(
        ConfigFsTsmSnp::new(&missing, None),
        Err(AttestError::TeeUnavailable(_))
    ));
}

#[test]
fn config_tables_for_snp() {
    let fake = TeeConfig {
        danger_fake_snp_measurement: Some("ab".repeat(48)),
        ..TeeConfig::of(TeeKind::DangerFakeSnp)
    };
    assert!(fake.problems().is_empty());
    let identity = fake.identity("w").unwrap();
    assert!(identity.snp_evidence.is_some());
    let misplaced = TeeConfig {
        danger_fake_snp_measurement: Some("ab".repeat(48)),
        ..TeeConfig::of(TeeKind::DangerFake)
    };
    assert_eq!(misplaced.problems().len(), 1);

    let table = |json: &str| -> PeerPolicyConfig { serde_json::from_str(json).unwrap() };
    let open = table(r#"{"policy": "sev_snp"}"#);
    assert_eq!(open.problems("worker_policy").len(), 1, "no allow-list");
    assert!(open.build().is_err());
    let opted_in = table(r#"{"policy": "sev_snp", "danger_accept_any_snp_image": true}"#);
    assert!(opted_in.problems("worker_policy").is_empty());
    let listed = table(&format!(
        r#"{{"policy": "sev_snp", "snp_measurements": ["{}"], "snp_product_lines": ["milan", "genoa"],
            "snp_minimum_tcb": {{"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}}}}"#,
        "cd".repeat(48)
    ));
    assert!(
        listed.problems("worker_policy").is_empty(),
        "{:?}",
        listed.problems("w")
    );
    let built = listed.build().unwrap();
    assert_eq!(built.policy.name(), "sev_snp");
    assert_eq!(TeeKind::proven_by_policy("sev_snp"), TeeKind::SevSnp);
    assert_eq!(
        TeeKind::proven_by_policy("danger_fake_snp"),
        TeeKind::DangerFakeSnp
    );
    // TDX lists under an SNP policy, and SNP keys under a TDX-less policy, are mistakes.
    let mixed = table(&format!(
        r#"{{"policy": "danger_fake_snp", "mrtd": ["{}"], "snp_minimum_tcb": {{"bootloader": 0, "tee": 0, "snp": 0, "microcode": 0}}}}"#,
        "cd".repeat(48)
    ));
    assert_eq!(mixed.problems("worker_policy").len(), 2);
    let fake_tdx = table(&format!(
        r#"{{"policy": "danger_fake_tdx", "snp_measurements": ["{}"]}}"#,
        "cd".repeat(48)
    ));
    assert_eq!(fake_tdx.problems("worker_policy").len(), 1);
    let no_lines = table(
        r#"{"policy": "sev_snp", "danger_accept_any_snp_image": true, "snp_product_lines": []}"#,
    );
    assert_eq!(no_lines.problems("worker_policy").len(), 1);
    let fake_policy = PeerPolicyConfig::of(PolicyKind::DangerFakeSnp);
    assert!(fake_policy.problems("worker_policy").is_empty());
    assert_eq!(
        fake_policy.build().unwrap().policy.name(),
        "danger_fake_snp"
    );
}

/// One TLS handshake over loopback; the server's view of the client.
async fn handshake(
    server_cert: &cocoon_attest::RaTlsIdentity,
    server_policy: Arc<dyn PeerPolicy>,
    client_cert: &cocoon_attest::RaTlsIdentity,
    client_policy: Arc<dyn PeerPolicy>,
) -> Result<cocoon_net::PeerIdentity, NetError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let acceptor = Acceptor::new(&server_cert.tls, server_policy, 4).unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        acceptor
            .accept(socket)
            .await
            .map(|c| c.handle.peer().clone())
    });
    let connector = Connector::new(&client_cert.tls, client_policy, 8).unwrap();
    let client = connector.connect(&address).await;
    let server = server.await.unwrap();
    client?;
    server
}

#[tokio::test]
async fn snp_peers_handshake_through_the_transport_beside_tdx_ones() {
    let now = SystemTime::now();
    let proxy = generate_identity(&FakeTdx::new(None), "cocoon-proxy", now).unwrap();
    let worker = generate_identity(&FakeSnp::new(Some([7; 48])), "cocoon-worker", now).unwrap();
    // A TDX proxy and an SNP worker, each demanding the other's kind.
    let snp = || -> Arc<dyn PeerPolicy> { Arc::new(danger::fake_snp(AllowLists::default())) };
    let tdx = || -> Arc<dyn PeerPolicy> { Arc::new(danger::fake_tdx(AllowLists::default())) };
    let seen = handshake(&proxy, snp(), &worker, tdx()).await.unwrap();
    assert_eq!(seen.image_hash, Some(snp_image_hash(&[7; 48])));
    assert_eq!(seen.policy, "danger_fake_snp");
    assert_eq!(
        TeeKind::proven_by_policy(seen.policy),
        TeeKind::DangerFakeSnp
    );
    // The real policy never takes the fake worker.
    let real: Arc<dyn PeerPolicy> = Arc::new(AttestationPolicy::sev_snp(
        all_lines(),
        AllowLists::default(),
    ));
    assert!(handshake(&proxy, real, &worker, tdx()).await.is_err());
    // A worker that demands SNP refuses the TDX proxy.
    assert!(handshake(&proxy, snp(), &worker, snp()).await.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_evidence_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        if let Ok(evidence) = SnpEvidence::decode(&bytes) {
            let _ = all_lines().verify_evidence(&evidence);
        }
        let _ = parse_report(&bytes);
    }

    #[test]
    fn arbitrary_reports_never_panic(
        body in proptest::collection::vec(any::<u8>(), SNP_REPORT_LEN),
        version in 0u32..8,
    ) {
        let mut report = body;
        report[..4].copy_from_slice(&version.to_le_bytes());
        if let Ok(parsed) = parse_report(&report) {
            let _ = check_guest_policy(&parsed);
        }
        let _ = all_lines().verify_evidence(&SnpEvidence::hardware(report, fixture("vcek_milan.der")));
    }

    #[test]
    fn any_changed_byte_of_the_real_report_is_refused(offset in 0usize..SNP_REPORT_LEN, xor in 1u8..=255) {
        let evidence = with_byte(milan_report(), offset, xor);
        prop_assert!(all_lines().verify_evidence(&evidence).is_err());
    }
}
