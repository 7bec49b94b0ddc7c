//! RA-TLS certificates and the attestation policies: what is accepted, and a specific refusal
//! for every way a certificate can fail to prove what it claims.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cocoon_attest::cert::{
    build_identity, critical_extension, generate_identity, parse_certificate,
};
use cocoon_attest::dcap::{CollateralSource, DcapVerifier, TcbPolicy};
use cocoon_attest::policy::{danger, AllowLists, AttestError, AttestationPolicy};
use cocoon_attest::provider::danger::{FakeTdx, ReplayQuote};
use cocoon_attest::provider::NoTee;
use cocoon_attest::tdx::{parse_tdx_quote, TdxMeasurements};
use cocoon_attest::UserClaims;
use cocoon_net::{Acceptor, Connector, NetError, PeerPolicy, PolicyError};
use rcgen::{KeyPair, PKCS_ED25519};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Inside the v4 sample's collateral validity window (TCB info 2025-06-19 .. 2025-07-19).
fn sample_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_751_328_000) // 2025-07-01
}

fn sample_quote() -> Vec<u8> {
    std::fs::read(fixtures().join("tdx_quote")).expect("fixture tdx_quote")
}

fn tdx_policy(allow: AllowLists) -> AttestationPolicy {
    let verifier = DcapVerifier::new(
        CollateralSource::Directory(fixtures()),
        TcbPolicy::default(),
    );
    AttestationPolicy::tdx(verifier, allow)
}

fn mrtd(byte: u8) -> TdxMeasurements {
    let mut m = TdxMeasurements::zero();
    m.mrtd = [byte; 48];
    m
}

#[test]
fn fake_certificates_bind_the_key_and_report_their_image_hash() {
    let now = SystemTime::now();
    let identity = generate_identity(&FakeTdx::new(None), "cocoon-test", now).unwrap();
    let facts = parse_certificate(&identity.tls.cert_der, now).unwrap();
    assert_eq!(facts.public_key, identity.tls.public_key);
    let quote = facts.quote.clone().expect("quote extension");
    assert_eq!(
        quote.len(),
        64,
        "the reference's fake quote is the bare report data"
    );
    assert_eq!(
        quote,
        UserClaims::for_key(facts.public_key).report_data().to_vec()
    );
    assert_eq!(
        facts.user_claims.as_deref(),
        Some(&facts.public_key[..]),
        "claims are the raw key"
    );
    assert!(
        facts.not_after - facts.not_before >= 24 * 3600,
        "one day of validity"
    );

    let peer = danger::fake_tdx(AllowLists::default())
        .check(&identity.tls.cert_der, now)
        .unwrap();
    assert_eq!(peer.image_hash, TdxMeasurements::zero().image_hash());
    assert_eq!(peer.tcb_status, "fake");
}

#[test]
fn allow_lists_refuse_other_images_and_mrtds() {
    let now = SystemTime::now();
    let identity = generate_identity(&FakeTdx::new(Some(mrtd(0xaa))), "w", now).unwrap();
    let cert = &identity.tls.cert_der;
    let accept = AllowLists {
        image_hashes: vec![mrtd(0xaa).image_hash()],
        ..AllowLists::default()
    };
    assert_eq!(
        danger::fake_tdx(accept)
            .check(cert, now)
            .unwrap()
            .image_hash,
        mrtd(0xaa).image_hash()
    );

    let wrong_image = AllowLists {
        image_hashes: vec![mrtd(0xbb).image_hash()],
        ..AllowLists::default()
    };
    assert!(matches!(
        danger::fake_tdx(wrong_image).check(cert, now),
        Err(AttestError::ImageHashNotAllowed(_))
    ));
    let wrong_mrtd = AllowLists {
        mrtd: vec![[0xbb; 48]],
        ..AllowLists::default()
    };
    assert!(matches!(
        danger::fake_tdx(wrong_mrtd).check(cert, now),
        Err(AttestError::MrtdNotAllowed(_))
    ));
    let wrong_rtmr = AllowLists {
        rtmr_sets: vec![[[1; 48]; 4]],
        ..AllowLists::default()
    };
    assert!(matches!(
        danger::fake_tdx(wrong_rtmr).check(cert, now),
        Err(AttestError::RtmrNotAllowed)
    ));
}

#[test]
fn a_live_image_list_is_followed_as_it_changes_and_empty_allows_nothing() {
    let now = SystemTime::now();
    let identity = generate_identity(&FakeTdx::new(Some(mrtd(0xaa))), "w", now).unwrap();
    let cert = &identity.tls.cert_der;
    let live = cocoon_attest::LiveImageHashes::new(vec![mrtd(0xaa).image_hash()]);
    let policy = danger::fake_tdx(AllowLists {
        // The live list stands instead of the configured one.
        image_hashes: vec![mrtd(0xbb).image_hash()],
        live_image_hashes: Some(live.clone()),
        ..AllowLists::default()
    });
    assert!(policy.check(cert, now).is_ok());
    live.set(vec![mrtd(0xbb).image_hash()]);
    assert!(matches!(
        policy.check(cert, now),
        Err(AttestError::ImageHashNotAllowed(_))
    ));
    live.set(Vec::new());
    assert!(
        matches!(
            policy.check(cert, now),
            Err(AttestError::ImageHashNotAllowed(_))
        ),
        "an empty live list allows nothing"
    );
    live.set(vec![mrtd(0xaa).image_hash()]);
    assert!(policy.check(cert, now).is_ok());
}

#[test]
fn a_quote_moved_onto_another_key_is_refused() {
    let now = SystemTime::now();
    let original = generate_identity(&FakeTdx::new(None), "a", now).unwrap();
    let stolen = original.quote.clone().unwrap();
    let thief = generate_identity(&ReplayQuote(stolen), "b", now).unwrap();
    assert!(matches!(
        danger::fake_tdx(AllowLists::default()).check(&thief.tls.cert_der, now),
        Err(AttestError::ReportDataMismatch)
    ));
}

#[test]
fn an_unknown_critical_extension_is_refused_by_every_policy() {
    let now = SystemTime::now();
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let claims = UserClaims::for_key(key.public_key_raw().try_into().unwrap());
    let quote = claims.report_data().to_vec();
    let extra = vec![critical_extension("1.3.6.1.4.1.99999.7", vec![0x05, 0x00])];
    let cert = build_identity(key, Some(quote), "odd", now, extra)
        .unwrap()
        .tls
        .cert_der;
    let refused = |result: Result<_, AttestError>| matches!(result, Err(AttestError::Rejected(PolicyError::UnknownCriticalExtension(ref oid))) if oid == "1.3.6.1.4.1.99999.7");
    assert!(refused(
        danger::fake_tdx(AllowLists::default()).check(&cert, now)
    ));
    assert!(refused(tdx_policy(AllowLists::default()).check(&cert, now)));
    assert!(matches!(
        danger::any().verify_peer(&cert, now),
        Err(PolicyError::UnknownCriticalExtension(_))
    ));
}

#[test]
fn an_expired_certificate_is_refused() {
    let issued = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    let cert = generate_identity(&FakeTdx::new(None), "old", issued)
        .unwrap()
        .tls
        .cert_der;
    assert!(matches!(
        danger::fake_tdx(AllowLists::default()).check(&cert, SystemTime::now()),
        Err(AttestError::Rejected(PolicyError::Expired))
    ));
}

#[test]
fn the_tdx_policy_refuses_missing_and_fake_quotes() {
    let now = sample_now();
    let policy = tdx_policy(AllowLists::default());
    let plain = generate_identity(&NoTee, "client", now)
        .unwrap()
        .tls
        .cert_der;
    assert!(matches!(
        policy.check(&plain, now),
        Err(AttestError::MissingQuote)
    ));
    for measurements in [None, Some(mrtd(1))] {
        let fake = generate_identity(&FakeTdx::new(measurements), "fake", now)
            .unwrap()
            .tls
            .cert_der;
        assert!(matches!(
            policy.check(&fake, now),
            Err(AttestError::FakeQuoteRefused)
        ));
    }
    // And the fake policy never takes a real quote.
    let real = generate_identity(&ReplayQuote(sample_quote()), "real", now)
        .unwrap()
        .tls
        .cert_der;
    assert!(matches!(
        danger::fake_tdx(AllowLists::default()).check(&real, now),
        Err(AttestError::NotAFakeQuote(_))
    ));
}

#[test]
fn a_genuine_quote_on_our_certificate_verifies_but_is_not_bound_to_our_key() {
    // The sample quote is real and DCAP-valid at `sample_now`, but its report data was made
    // for someone else's claims: exactly a replayed quote.
    let now = sample_now();
    let cert = generate_identity(&ReplayQuote(sample_quote()), "replay", now)
        .unwrap()
        .tls
        .cert_der;
    assert!(matches!(
        tdx_policy(AllowLists::default()).check(&cert, now),
        Err(AttestError::ReportDataMismatch)
    ));
}

#[test]
fn a_flipped_quote_byte_in_a_certificate_is_refused() {
    let now = sample_now();
    let mut quote = sample_quote();
    let parsed = parse_tdx_quote(&quote).unwrap();
    // A byte of MRTD, inside the signed TD report (header 48 bytes, MRTD at 136 in the body).
    let offset = 48 + 136;
    assert_eq!(quote[offset], parsed.measurements.mrtd[0]);
    quote[offset] ^= 1;
    let cert = generate_identity(&ReplayQuote(quote), "tampered", now)
        .unwrap()
        .tls
        .cert_der;
    assert!(matches!(
        tdx_policy(AllowLists::default()).check(&cert, now),
        Err(AttestError::Dcap(_))
    ));
}

/// Both sides of one handshake over loopback: (client, server).
async fn handshake(
    server_cert: &cocoon_attest::RaTlsIdentity,
    server_policy: Arc<dyn PeerPolicy>,
    client_cert: &cocoon_attest::RaTlsIdentity,
    client_policy: Arc<dyn PeerPolicy>,
) -> (
    Result<cocoon_net::PeerIdentity, NetError>,
    Result<cocoon_net::PeerIdentity, NetError>,
) {
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
    let client = connector
        .connect(&address)
        .await
        .map(|c| c.handle.peer().clone());
    (client, server.await.unwrap())
}

#[tokio::test]
async fn attested_handshakes_through_the_transport() {
    let now = SystemTime::now();
    let proxy = generate_identity(&FakeTdx::new(None), "cocoon-proxy", now).unwrap();
    let worker = generate_identity(&FakeTdx::new(Some(mrtd(7))), "cocoon-worker", now).unwrap();
    let fake = || -> Arc<dyn PeerPolicy> { Arc::new(danger::fake_tdx(AllowLists::default())) };
    let (worker_side, proxy_side) = handshake(&proxy, fake(), &worker, fake()).await;
    worker_side.unwrap();
    let seen = proxy_side.unwrap();
    assert_eq!(
        seen.image_hash,
        Some(mrtd(7).image_hash()),
        "the proxy sees the worker's image"
    );
    assert_eq!(seen.policy, "danger_fake_tdx");

    // The proxy's allow-list names another image: the proxy refuses the worker's certificate
    // for exactly that reason, and the worker's handshake fails with it.
    let only_other_image: Arc<dyn PeerPolicy> = Arc::new(danger::fake_tdx(AllowLists {
        image_hashes: vec![mrtd(8).image_hash()],
        ..AllowLists::default()
    }));
    let (worker_side, proxy_side) = handshake(&proxy, only_other_image, &worker, fake()).await;
    let refusal = proxy_side.expect_err("a worker with another image is refused");
    let expected = AttestError::ImageHashNotAllowed(cocoon_attest::hex(&mrtd(7).image_hash()));
    assert_eq!(
        refusal.policy_refusal(),
        Some(&PolicyError::Refused(expected.to_string())),
        "{refusal:?}"
    );
    let refused = worker_side.expect_err("the worker learns it was refused");
    assert!(refused.policy_refusal().is_none(), "{refused:?}");

    // A client with the tdx policy refuses the fake proxy because its quote is fake, before
    // the proxy judges anything.
    let tdx: Arc<dyn PeerPolicy> = Arc::new(tdx_policy(AllowLists::default()));
    let (worker_side, _) = handshake(&proxy, fake(), &worker, tdx).await;
    let refusal = worker_side.expect_err("a tdx client never accepts a fake proxy");
    assert_eq!(
        refusal.policy_refusal(),
        Some(&PolicyError::Refused(
            AttestError::FakeQuoteRefused.to_string()
        )),
        "{refusal:?}"
    );
}
