//! NVIDIA GPU evidence: NVIDIA's published Hopper sample (fixtures/gpu, from NVIDIA/nvtrust)
//! verifies against the pinned device identity root, and every tampering is refused with its
//! own error; the binding to a certificate (claims hash, nonce from the key) is tested with
//! the `danger` fake GPUs, whose nonce we choose, and with the sample, whose nonce we cannot.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cocoon_attest::cert::{build_identity_parts, generate_identity_with_gpus};
use cocoon_attest::claims::UserClaims;
use cocoon_attest::gpu::nvml::chain_from_pem;
use cocoon_attest::gpu::{
    check_evidence_hash, evidence_hash, gpu_nonce, parse_report, GpuAttestation, GpuError,
    GpuEvidence, GpuEvidenceKind, GpuMeasurementPolicy, GpuVerifier,
};
use cocoon_attest::policy::{danger, AllowLists, AttestError, AttestationPolicy, GpuRequirement};
use cocoon_attest::provider::danger::{FakeGpus, FakeTdx, ReplayGpuEvidence};
use cocoon_attest::provider::{GpuEvidenceSource, QuoteProvider};
use cocoon_attest::{GpuKind, GpuPolicyKind, PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_net::policy::OID_TDX_QUOTE;
use cocoon_net::{Acceptor, Connector, NetError, PeerPolicy};
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gpu")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The published Hopper attestation report (the file is hex): request and response.
fn sample_report() -> Vec<u8> {
    let text = String::from_utf8(fixture("hopperAttestationReport.txt")).expect("hex text");
    hex::decode(text.trim()).expect("valid hex")
}

/// The published certificate chain, DER, leaf first.
fn sample_chain() -> Vec<Vec<u8>> {
    chain_from_pem(&fixture("hopperCertChain.txt")).expect("PEM chain")
}

fn sample() -> GpuAttestation {
    GpuAttestation {
        report: sample_report(),
        chain: sample_chain(),
    }
}

/// The nonce the sample's request carries (bytes 4..36 of the report, as published).
const SAMPLE_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
/// SHA-256 of the sample's measurement record (computed independently with Python's hashlib
/// over bytes 45..3565 of the report).
const SAMPLE_MEASUREMENTS_HASH: &str =
    "6b0929e38902b75f06ba1f0031736823fbe439452a099f9c253ead3a49b30f79";

fn sample_nonce() -> [u8; 32] {
    hex::decode(SAMPLE_NONCE).unwrap().try_into().unwrap()
}

/// A time inside every sample certificate's validity (2026-01-01).
fn sample_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn verifier() -> GpuVerifier {
    GpuVerifier::new().expect("the pinned root is usable")
}

fn verify(attestation: &GpuAttestation) -> Result<cocoon_attest::gpu::GpuReport, GpuError> {
    verifier().verify_gpu(0, attestation, &sample_nonce(), sample_now())
}

fn with_report_byte(offset: usize, xor: u8) -> GpuAttestation {
    let mut attestation = sample();
    attestation.report[offset] ^= xor;
    attestation
}

/// A P-384 CA named like NVIDIA's root, and a leaf it issues, as an attacker can make them.
fn forged_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "NVIDIA Device Identity CA");
    name.push(DnType::OrganizationName, "NVIDIA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    CertifiedIssuer::self_signed(params, key).unwrap()
}

fn forged_leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    algorithm: &'static rcgen::SignatureAlgorithm,
) -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "GH100 A01 GSP FMC LF");
    params.distinguished_name = name;
    let key = KeyPair::generate_for(algorithm).unwrap();
    params.signed_by(&key, ca).unwrap().der().to_vec()
}

#[test]
fn the_published_hopper_sample_verifies_against_the_pinned_root() {
    let chain = sample_chain();
    assert_eq!(
        chain.len(),
        5,
        "leaf, BROM, GH100 identity, provisioner ICA, root"
    );
    assert_eq!(
        chain[4],
        verifier().root_der(),
        "the sample's chain ends at the root we pinned"
    );
    let report = verify(&sample()).expect("the sample verifies");
    assert_eq!(report.spdm_version, 0x11);
    assert_eq!(report.requester_nonce, sample_nonce());
    assert_eq!(
        hex::encode(report.responder_nonce),
        "b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985"
    );
    assert_eq!(report.measurements.len(), 64);
    for (n, block) in report.measurements.iter().enumerate() {
        assert_eq!(usize::from(block.index), n + 1);
        assert_eq!(block.value.len(), 48, "SHA-384 digests");
    }
    assert_eq!(report.opaque_data.len(), 422);
    assert_eq!(
        hex::encode(report.measurements_hash()),
        SAMPLE_MEASUREMENTS_HASH
    );
    // The whole evidence, as a node would carry it, verifies too.
    let evidence = GpuEvidence {
        kind: GpuEvidenceKind::Nvidia,
        gpus: vec![sample(), sample()],
    };
    let decoded = GpuEvidence::decode(&evidence.encode().unwrap()).unwrap();
    assert_eq!(
        verifier()
            .verify_evidence(&decoded, &sample_nonce(), sample_now())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_flipped_byte_in_the_response_is_a_bad_signature() {
    // A measurement value, the responder nonce, the opaque data, and the request's nonce: all
    // signed.
    for offset in [37 + 8 + 7, 37 + 8 + 3520 + 5, 37 + 8 + 3520 + 34 + 10, 10] {
        assert_eq!(
            verify(&with_report_byte(offset, 0x01)),
            Err(GpuError::BadSignature(0)),
            "offset {offset}"
        );
    }
}

#[test]
fn a_flipped_byte_in_the_signature_is_a_bad_signature() {
    let len = sample_report().len();
    for offset in [len - 96, len - 49, len - 1] {
        assert_eq!(
            verify(&with_report_byte(offset, 0x80)),
            Err(GpuError::BadSignature(0)),
            "offset {offset}"
        );
    }
}

#[test]
fn a_chain_not_ending_at_the_pinned_root_is_refused() {
    // Without the root.
    let mut cut = sample();
    cut.chain.pop();
    assert_eq!(verify(&cut), Err(GpuError::ChainNotToPinnedRoot(0)));
    // With a forged root of the same name.
    let ca = forged_ca();
    let mut forged = sample();
    *forged.chain.last_mut().unwrap() = ca.der().to_vec();
    assert_eq!(verify(&forged), Err(GpuError::ChainNotToPinnedRoot(0)));
    // A verifier pinned elsewhere refuses NVIDIA's chain.
    let elsewhere = GpuVerifier::with_root_pem(ca.pem().as_bytes()).unwrap();
    assert_eq!(
        elsewhere.verify_gpu(0, &sample(), &sample_nonce(), sample_now()),
        Err(GpuError::ChainNotToPinnedRoot(0))
    );
    // A chain of one: the root alone, whose key did not sign the report.
    let root_only = GpuAttestation {
        report: sample_report(),
        chain: vec![verifier().root_der().to_vec()],
    };
    assert_eq!(verify(&root_only), Err(GpuError::BadSignature(0)));
    // No chain at all.
    let none = GpuAttestation {
        report: sample_report(),
        chain: vec![],
    };
    assert_eq!(verify(&none), Err(GpuError::ChainMissing(0)));
}

#[test]
fn a_swapped_leaf_is_refused() {
    // A leaf of the attacker's, named like NVIDIA's, in front of NVIDIA's chain.
    let ca = forged_ca();
    let mut foreign = sample();
    foreign.chain[0] = forged_leaf(&ca, &PKCS_ECDSA_P384_SHA384);
    assert_eq!(
        verify(&foreign),
        Err(GpuError::CertificateNotSignedByIssuer { gpu: 0, index: 0 })
    );
    // A genuine NVIDIA certificate of this GPU as the leaf (the chain without its leaf): the
    // chain holds, but that key did not sign the report.
    let mut other_key = sample();
    other_key.chain.remove(0);
    assert_eq!(verify(&other_key), Err(GpuError::BadSignature(0)));
    // A non-CA leaf in the middle: the leaf put where its issuer belongs.
    let mut not_ca = sample();
    not_ca.chain.insert(1, sample_chain()[0].clone());
    assert_eq!(
        verify(&not_ca),
        Err(GpuError::IssuerNotCa { gpu: 0, index: 1 })
    );
}

#[test]
fn a_leaf_with_another_key_type_is_refused() {
    let ca = forged_ca();
    let pinned_to_forgery = GpuVerifier::with_root_pem(ca.pem().as_bytes()).unwrap();
    let p256 = GpuAttestation {
        report: sample_report(),
        chain: vec![forged_leaf(&ca, &PKCS_ECDSA_P256_SHA256), ca.der().to_vec()],
    };
    assert_eq!(
        pinned_to_forgery.verify_gpu(0, &p256, &sample_nonce(), SystemTime::now()),
        Err(GpuError::LeafKeyNotP384(0))
    );
    // A P-384 leaf of that root passes the chain and fails the signature.
    let p384 = GpuAttestation {
        report: sample_report(),
        chain: vec![forged_leaf(&ca, &PKCS_ECDSA_P384_SHA384), ca.der().to_vec()],
    };
    assert_eq!(
        pinned_to_forgery.verify_gpu(0, &p384, &sample_nonce(), SystemTime::now()),
        Err(GpuError::BadSignature(0))
    );
}

#[test]
fn certificates_are_checked_at_the_given_time() {
    // 2019: before every sample certificate's notBefore.
    let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_546_300_800);
    assert_eq!(
        verifier().verify_gpu(0, &sample(), &sample_nonce(), before),
        Err(GpuError::CertificateNotValidNow { gpu: 0, index: 0 })
    );
}

#[test]
fn a_wrong_nonce_is_refused() {
    assert_eq!(
        verifier().verify_gpu(0, &sample(), &[0; 32], sample_now()),
        Err(GpuError::NonceMismatch(0))
    );
    assert_eq!(
        verifier().verify_gpu(3, &sample(), &gpu_nonce(&[1; 32]), sample_now()),
        Err(GpuError::NonceMismatch(3))
    );
}

#[test]
fn measurements_are_checked_against_the_allow_list() {
    let report = verify(&sample()).unwrap();
    let listed = GpuMeasurementPolicy {
        allowed: vec![report.measurements_hash()],
        danger_accept_any: false,
    };
    assert_eq!(listed.check(0, &report), Ok(()));
    let other = GpuMeasurementPolicy {
        allowed: vec![[0xAB; 32]],
        danger_accept_any: false,
    };
    assert_eq!(
        other.check(2, &report),
        Err(GpuError::MeasurementsNotAllowed {
            gpu: 2,
            hash: SAMPLE_MEASUREMENTS_HASH.into()
        })
    );
    assert!(
        GpuMeasurementPolicy::default().check(0, &report).is_err(),
        "an empty list allows nothing"
    );
    let any = GpuMeasurementPolicy {
        allowed: vec![],
        danger_accept_any: true,
    };
    assert_eq!(any.check(0, &report), Ok(()));
}

#[test]
fn malformed_reports_are_refused_with_their_own_errors() {
    let report = sample_report();
    let mut spdm_1_2 = report.clone();
    spdm_1_2[0] = 0x12;
    assert_eq!(
        parse_report(0, &spdm_1_2),
        Err(GpuError::UnsupportedSpdmVersion {
            gpu: 0,
            version: 0x12
        })
    );
    let mut unsigned = report.clone();
    unsigned[2] = 0;
    assert!(matches!(
        parse_report(0, &unsigned),
        Err(GpuError::ReportMalformed { reason, .. }) if reason.contains("no signature")
    ));
    let mut no_blocks = report.clone();
    no_blocks[37 + 4] = 0;
    assert_eq!(
        parse_report(1, &no_blocks),
        Err(GpuError::NoMeasurements(1))
    );
    let mut not_dmtf = report.clone();
    not_dmtf[37 + 8 + 1] = 2;
    assert!(matches!(
        parse_report(0, &not_dmtf),
        Err(GpuError::ReportMalformed { reason, .. }) if reason.contains("not DMTF")
    ));
    let mut longer = report.clone();
    longer.push(0);
    assert!(matches!(
        parse_report(0, &longer),
        Err(GpuError::ReportMalformed { .. })
    ));
    for cut in 0..report.len() {
        assert!(parse_report(0, &report[..cut]).is_err(), "cut at {cut}");
    }
    let mut garbage_chain = sample();
    garbage_chain.chain[2] = vec![0x30, 0x03, 1, 2, 3];
    assert!(matches!(
        verify(&garbage_chain),
        Err(GpuError::CertificateMalformed {
            gpu: 0,
            index: 2,
            ..
        })
    ));
}

// ---- binding to a certificate ----

fn fake_gpu_policy(allowed: Vec<[u8; 32]>) -> AttestationPolicy {
    danger::fake_tdx(AllowLists::default()).with_gpus(danger::fake_gpus(GpuMeasurementPolicy {
        danger_accept_any: allowed.is_empty(),
        allowed,
    }))
}

fn nvidia_gpu_policy() -> AttestationPolicy {
    danger::fake_tdx(AllowLists::default()).with_gpus(GpuRequirement::nvidia(
        verifier(),
        GpuMeasurementPolicy {
            allowed: vec![],
            danger_accept_any: true,
        },
    ))
}

fn gpu_error(result: Result<cocoon_attest::policy::AttestedPeer, AttestError>) -> GpuError {
    match result {
        Err(AttestError::Gpu(error)) => error,
        other => panic!("expected a GPU refusal, got {other:?}"),
    }
}

#[test]
fn fake_gpu_certificates_bind_the_key_and_pass_the_allow_lists() {
    let now = SystemTime::now();
    let gpus = FakeGpus::new(2, b"fake firmware".to_vec());
    let identity =
        generate_identity_with_gpus(&FakeTdx::new(None), Some(&gpus), "worker", now).unwrap();
    let extension = identity.gpu_evidence.clone().expect("GPU evidence");
    let peer = fake_gpu_policy(vec![])
        .check(&identity.tls.cert_der, now)
        .expect("fake GPUs accepted by the fake policy");
    assert_eq!(peer.gpus.len(), 2);
    let measured = peer.gpus[0].measurements_hash;
    // The claims carry the evidence hash, and the GPUs answered the key's nonce.
    let facts = cocoon_attest::parse_certificate(&identity.tls.cert_der, now).unwrap();
    let claims = UserClaims::parse(facts.user_claims.as_deref().unwrap()).unwrap();
    assert_eq!(claims.gpu_evidence_hash, Some(evidence_hash(&extension)));
    assert_eq!(
        peer.gpus[1].report.requester_nonce,
        gpu_nonce(&identity.tls.public_key)
    );
    // Allow-lists: listed passes, other refused with the GPU's hash.
    assert!(fake_gpu_policy(vec![measured])
        .check(&identity.tls.cert_der, now)
        .is_ok());
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![[1; 32]]).check(&identity.tls.cert_der, now)),
        GpuError::MeasurementsNotAllowed {
            gpu: 0,
            hash: hex::encode(measured)
        }
    );
    // The real policy never accepts the fake, and a policy without GPUs ignores them.
    assert_eq!(
        gpu_error(nvidia_gpu_policy().check(&identity.tls.cert_der, now)),
        GpuError::FakeEvidenceRefused
    );
    assert!(danger::fake_tdx(AllowLists::default())
        .check(&identity.tls.cert_der, now)
        .is_ok());
    // A certificate without GPU evidence fails a policy that demands it.
    let bare = generate_identity_with_gpus(&FakeTdx::new(None), None, "cpu-only", now).unwrap();
    assert!(bare.gpu_evidence.is_none());
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![]).check(&bare.tls.cert_der, now)),
        GpuError::MissingEvidence
    );
    // Claims without a GPU field are the reference's bare key.
    let bare_facts = cocoon_attest::parse_certificate(&bare.tls.cert_der, now).unwrap();
    assert_eq!(
        bare_facts.user_claims.as_deref(),
        Some(&bare.tls.public_key[..])
    );
}

/// A certificate for a new key whose fake TDX quote vouches for `claims_hash` as the GPU
/// evidence hash, carrying `extension` as its GPU evidence.
fn certificate_claiming(claims_hash: Option<[u8; 32]>, extension: Vec<u8>) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let public_key: [u8; 32] = key.public_key_raw().try_into().unwrap();
    let claims = UserClaims {
        gpu_evidence_hash: claims_hash,
        ..UserClaims::for_key(public_key)
    };
    let quote = FakeTdx::new(None).quote(&claims.report_data()).unwrap();
    build_identity_parts(
        key,
        quote,
        OID_TDX_QUOTE,
        claims,
        Some(extension),
        "thief",
        SystemTime::now(),
        Vec::new(),
    )
    .unwrap()
    .tls
    .cert_der
}

#[test]
fn gpu_evidence_spliced_from_another_machine_is_refused() {
    let now = SystemTime::now();
    let gpus = FakeGpus::new(1, b"fake firmware".to_vec());
    let victim =
        generate_identity_with_gpus(&FakeTdx::new(None), Some(&gpus), "victim", now).unwrap();
    let stolen = victim.gpu_evidence.clone().unwrap();
    // The thief's quote vouches for its own GPUs' evidence; the victim's is in the extension.
    let own = gpus.evidence(&gpu_nonce(&[0x77; 32])).unwrap();
    let spliced = certificate_claiming(Some(evidence_hash(&own)), stolen.clone());
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![]).check(&spliced, now)),
        GpuError::EvidenceHashMismatch
    );
    // The thief's claims carry no GPU hash at all.
    let unclaimed = certificate_claiming(None, stolen.clone());
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![]).check(&unclaimed, now)),
        GpuError::ClaimsLackEvidenceHash
    );
    // The thief's quote vouches for the stolen evidence itself: the GPUs answered the
    // victim's key's nonce, not the thief's.
    let restamped = certificate_claiming(Some(evidence_hash(&stolen)), stolen);
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![]).check(&restamped, now)),
        GpuError::NonceMismatch(0)
    );
    // The same with NVIDIA's real signed sample: chain and signature hold, the nonce does not.
    let sample_evidence = GpuEvidence {
        kind: GpuEvidenceKind::Nvidia,
        gpus: vec![sample()],
    }
    .encode()
    .unwrap();
    let replayed = generate_identity_with_gpus(
        &FakeTdx::new(None),
        Some(&ReplayGpuEvidence(sample_evidence.clone())),
        "replayer",
        now,
    )
    .unwrap();
    assert_eq!(
        gpu_error(nvidia_gpu_policy().check(&replayed.tls.cert_der, now)),
        GpuError::NonceMismatch(0)
    );
    assert_eq!(
        gpu_error(fake_gpu_policy(vec![]).check(&replayed.tls.cert_der, now)),
        GpuError::NotFakeEvidence
    );
    assert_eq!(
        check_evidence_hash(&sample_evidence, Some(&[0; 32])),
        Err(GpuError::EvidenceHashMismatch)
    );
}

#[test]
fn config_tables_for_gpus() {
    // [tee]: gpu needs a CPU TEE; the fake's keys only with the fake.
    let mut tee = TeeConfig::of(TeeKind::DangerFake);
    tee.gpu = GpuKind::DangerFakeGpu;
    tee.danger_fake_gpu_count = Some(2);
    assert!(tee.problems().is_empty(), "{:?}", tee.problems());
    let identity = tee.identity("w").unwrap();
    assert!(identity.gpu_evidence.is_some());
    let mut no_cpu = tee.clone();
    no_cpu.kind = TeeKind::None;
    assert_eq!(no_cpu.problems().len(), 1);
    let mut too_many = tee.clone();
    too_many.danger_fake_gpu_count = Some(9);
    assert_eq!(too_many.problems().len(), 1);
    let mut stray = TeeConfig::of(TeeKind::DangerFake);
    stray.danger_fake_gpu_measurement = Some("ab".into());
    stray.nvml_library = Some("libnvidia-ml.so.1".into());
    assert_eq!(stray.problems().len(), 2, "{:?}", stray.problems());
    // gpu = nvidia without the driver: a clear error at startup, naming the library.
    let mut nvidia = TeeConfig::of(TeeKind::DangerFake);
    nvidia.gpu = GpuKind::Nvidia;
    nvidia.nvml_library = Some("/nonexistent/libnvidia-ml.so.1".into());
    assert!(nvidia.problems().is_empty());
    match nvidia.identity("w") {
        Err(AttestError::TeeUnavailable(message)) => {
            assert!(
                message.contains("/nonexistent/libnvidia-ml.so.1"),
                "{message}"
            )
        }
        other => panic!("expected TeeUnavailable, got {other:?}"),
    }
    // An existing [tee] table without gpu keys still parses, as before.
    let old: TeeConfig = serde_json::from_str(r#"{"kind": "danger_fake"}"#).unwrap();
    assert_eq!(old.gpu, GpuKind::None);

    // Peer policies.
    let mut fake = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
    fake.gpu = Some(GpuPolicyKind::DangerFakeGpu);
    assert!(fake.problems("worker_policy").is_empty());
    let built = fake.build().unwrap().policy;
    assert!(built
        .verify_peer(&identity.tls.cert_der, SystemTime::now())
        .is_ok());
    let mut open_nvidia = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
    open_nvidia.gpu = Some(GpuPolicyKind::Nvidia);
    let problems = open_nvidia.problems("worker_policy");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("worker_policy.danger_accept_any_gpu_measurements = true"));
    open_nvidia.danger_accept_any_gpu_measurements = true;
    assert!(open_nvidia.problems("worker_policy").is_empty());
    // The real policy refuses the fake GPUs at the handshake's policy check.
    assert!(open_nvidia
        .build()
        .unwrap()
        .policy
        .verify_peer(&identity.tls.cert_der, SystemTime::now())
        .is_err());
    let mut listed = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
    listed.gpu = Some(GpuPolicyKind::Nvidia);
    listed.gpu_measurements = vec![SAMPLE_MEASUREMENTS_HASH.into()];
    assert!(listed.problems("p").is_empty());
    listed.gpu_measurements = vec!["zz".into()];
    assert_eq!(listed.problems("p").len(), 1);
    let mut without_gpu = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx);
    without_gpu.gpu_measurements = vec![SAMPLE_MEASUREMENTS_HASH.into()];
    assert_eq!(without_gpu.problems("p").len(), 1);
    let mut any = PeerPolicyConfig::of(PolicyKind::DangerAny);
    any.gpu = Some(GpuPolicyKind::DangerFakeGpu);
    assert_eq!(any.problems("p").len(), 1);
}

/// One TLS handshake over loopback; the server's view of the client.
async fn handshake(
    server: &cocoon_attest::RaTlsIdentity,
    server_policy: Arc<dyn PeerPolicy>,
    client: &cocoon_attest::RaTlsIdentity,
) -> Result<cocoon_net::PeerIdentity, NetError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let acceptor = Acceptor::new(&server.tls, server_policy, 4).unwrap();
    let accepted = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        acceptor
            .accept(socket)
            .await
            .map(|c| c.handle.peer().clone())
    });
    let client_policy: Arc<dyn PeerPolicy> = Arc::new(danger::fake_tdx(AllowLists::default()));
    let connector = Connector::new(&client.tls, client_policy, 8).unwrap();
    let connected = connector.connect(&address).await;
    let accepted = accepted.await.unwrap();
    connected?;
    accepted
}

#[tokio::test]
async fn a_worker_with_gpus_handshakes_through_the_transport() {
    let now = SystemTime::now();
    let proxy =
        generate_identity_with_gpus(&FakeTdx::new(None), None, "cocoon-proxy", now).unwrap();
    let gpus = FakeGpus::new(1, b"fake firmware".to_vec());
    let worker =
        generate_identity_with_gpus(&FakeTdx::new(None), Some(&gpus), "cocoon-worker", now)
            .unwrap();
    let seen = handshake(&proxy, Arc::new(fake_gpu_policy(vec![])), &worker)
        .await
        .expect("the fake GPU policy takes the fake worker");
    assert_eq!(seen.public_key, worker.tls.public_key);
    // The real GPU policy never takes it; a worker without GPUs fails a GPU policy.
    assert!(handshake(&proxy, Arc::new(nvidia_gpu_policy()), &worker)
        .await
        .is_err());
    assert!(handshake(&proxy, Arc::new(fake_gpu_policy(vec![])), &proxy)
        .await
        .is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_evidence_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = GpuEvidence::decode(&bytes);
        let _ = parse_report(0, &bytes);
        let _ = check_evidence_hash(&bytes, None);
    }

    #[test]
    fn any_cut_or_changed_byte_of_the_sample_is_refused(
        offset in 0usize..4117,
        xor in 1u8..=255,
        cut in 0usize..4117,
    ) {
        let changed = with_report_byte(offset, xor);
        prop_assert!(verify(&changed).is_err());
        let mut short = sample();
        short.report.truncate(cut);
        prop_assert!(verify(&short).is_err());
        let mut chain = sample();
        let certificate = offset % chain.chain.len();
        let at = offset % chain.chain[certificate].len();
        chain.chain[certificate][at] ^= xor;
        let _ = verify(&chain);
    }
}
