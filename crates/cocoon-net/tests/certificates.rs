//! The certificate checks every peer policy shares (`policy::check_self_signed`) and the
//! development policy built on them, fed with certificates made by rcgen to break one rule
//! each. No sockets: these run in milliseconds.

use std::time::{Duration, SystemTime};

use cocoon_net::policy::check_self_signed;
use cocoon_net::policy::danger::AcceptAnySelfSigned;
use cocoon_net::{PeerPolicy, PolicyError, TlsIdentity, CERTIFICATE_VALIDITY};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};

/// A private-enterprise OID no policy knows.
const PRIVATE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59_999, 7];
const PRIVATE_OID_TEXT: &str = "1.3.6.1.4.1.59999.7";
/// DER `NULL`, the smallest valid extension content.
const DER_NULL: [u8; 2] = [0x05, 0x00];

fn params_named(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params
}

fn key(algorithm: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(algorithm).expect("key generation")
}

/// A self-signed Ed25519 certificate from `params`, and its raw public key.
fn self_signed(params: &CertificateParams) -> (Vec<u8>, [u8; 32]) {
    let key = key(&PKCS_ED25519);
    let cert = params.self_signed(&key).expect("self-signing");
    let public_key = key.public_key_raw().try_into().expect("32 bytes");
    (cert.der().to_vec(), public_key)
}

fn unix(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// 2000-06-01T00:00:00Z.
const MID_2000: u64 = 959_817_600;

fn refusal(cert_der: &[u8], now: SystemTime) -> PolicyError {
    AcceptAnySelfSigned
        .verify_peer(cert_der, now)
        .expect_err("the policy refuses")
}

#[test]
fn a_generated_identity_passes_every_check() {
    let identity = TlsIdentity::generate_self_signed().expect("identity");
    let (facts, unknown_critical) =
        check_self_signed(&identity.cert_der, SystemTime::now()).expect("valid");
    assert_eq!(facts.public_key, identity.public_key);
    assert!(unknown_critical.is_empty(), "{unknown_critical:?}");

    let peer = AcceptAnySelfSigned
        .verify_peer(&identity.cert_der, SystemTime::now())
        .expect("accepted");
    assert_eq!(peer.public_key, identity.public_key);
    assert_eq!(peer.image_hash, None);
    assert_eq!(peer.policy, "any");
}

#[test]
fn a_generated_identity_is_valid_only_within_its_window() {
    let identity = TlsIdentity::generate_self_signed().expect("identity");
    let now = SystemTime::now();
    // Valid from a minute ago for a day.
    assert!(check_self_signed(&identity.cert_der, now + CERTIFICATE_VALIDITY / 2).is_ok());
    assert_eq!(
        check_self_signed(
            &identity.cert_der,
            now + CERTIFICATE_VALIDITY + Duration::from_secs(3600)
        )
        .expect_err("after the window"),
        PolicyError::Expired
    );
    assert_eq!(
        check_self_signed(&identity.cert_der, now - Duration::from_secs(3600))
            .expect_err("before the window"),
        PolicyError::Expired
    );
}

#[test]
fn garbage_is_malformed() {
    let identity = TlsIdentity::generate_self_signed().expect("identity");
    let truncated = &identity.cert_der[..identity.cert_der.len() / 2];
    let mut trailing = identity.cert_der.clone();
    trailing.extend_from_slice(b"tail");
    let mut flipped_tag = identity.cert_der.clone();
    flipped_tag[0] = 0x04;
    let inputs: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("text", b"this is not a certificate"),
        ("a lone sequence tag", &[0x30]),
        ("truncated", truncated),
        ("trailing bytes", &trailing),
        ("wrong outer tag", &flipped_tag),
    ];
    for (what, input) in inputs {
        match check_self_signed(input, SystemTime::now()) {
            Err(PolicyError::Malformed(_)) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
        assert!(
            matches!(refusal(input, SystemTime::now()), PolicyError::Malformed(_)),
            "{what}"
        );
    }
}

#[test]
fn a_certificate_issued_by_another_key_is_not_self_signed() {
    let mut authority = params_named("authority");
    authority.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let authority_key = key(&PKCS_ED25519);
    let issuer = Issuer::new(authority, &authority_key);
    let leaf_key = key(&PKCS_ED25519);
    let leaf = params_named("cocoon")
        .signed_by(&leaf_key, &issuer)
        .expect("signing");
    assert_eq!(
        check_self_signed(leaf.der(), SystemTime::now()).expect_err("issued"),
        PolicyError::NotSelfSigned
    );
    assert_eq!(
        refusal(leaf.der(), SystemTime::now()),
        PolicyError::NotSelfSigned
    );
}

#[test]
fn a_certificate_naming_itself_but_signed_by_another_key_is_not_self_signed() {
    // Issuer and subject names agree, so only the signature check can catch this one.
    let impostor_key = key(&PKCS_ED25519);
    let issuer = Issuer::new(params_named("cocoon"), &impostor_key);
    let leaf_key = key(&PKCS_ED25519);
    let leaf = params_named("cocoon")
        .signed_by(&leaf_key, &issuer)
        .expect("signing");
    assert_eq!(
        check_self_signed(leaf.der(), SystemTime::now()).expect_err("forged"),
        PolicyError::NotSelfSigned
    );
}

#[test]
fn a_tampered_certificate_fails_its_self_signature() {
    let (mut der, _) = self_signed(&params_named("cocoon"));
    // Change one byte of the common name inside the signed part.
    let position = der
        .windows(b"cocoon".len())
        .position(|window| window == b"cocoon")
        .expect("name in DER");
    der[position] = b'C';
    // Both subject and issuer say "cocoon"; edit the issuer too so only the signature differs.
    let second = position
        + 1
        + der[position + 1..]
            .windows(b"cocoon".len())
            .position(|window| window == b"cocoon")
            .expect("second name in DER");
    der[second] = b'C';
    assert_eq!(
        check_self_signed(&der, SystemTime::now()).expect_err("tampered"),
        PolicyError::NotSelfSigned
    );
}

#[test]
fn a_non_ed25519_certificate_is_refused() {
    let ecdsa_key = key(&PKCS_ECDSA_P256_SHA256);
    let cert = params_named("cocoon")
        .self_signed(&ecdsa_key)
        .expect("self-signing");
    assert_eq!(
        check_self_signed(cert.der(), SystemTime::now()).expect_err("ecdsa"),
        PolicyError::NotEd25519
    );
    assert_eq!(
        refusal(cert.der(), SystemTime::now()),
        PolicyError::NotEd25519
    );
}

#[test]
fn an_expired_certificate_is_refused_at_now_but_valid_in_its_window() {
    let mut params = params_named("cocoon");
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let (der, public_key) = self_signed(&params);

    assert_eq!(
        check_self_signed(&der, SystemTime::now()).expect_err("expired"),
        PolicyError::Expired
    );
    assert_eq!(refusal(&der, SystemTime::now()), PolicyError::Expired);
    assert_eq!(
        check_self_signed(&der, unix(0)).expect_err("not yet valid"),
        PolicyError::Expired
    );
    // The checks use the `now` they are given, not the clock.
    let (facts, _) = check_self_signed(&der, unix(MID_2000)).expect("valid in 2000");
    assert_eq!(facts.public_key, public_key);
    assert!(AcceptAnySelfSigned
        .verify_peer(&der, unix(MID_2000))
        .is_ok());
}

#[test]
fn an_unknown_critical_extension_is_reported_and_refused() {
    let mut extension = CustomExtension::from_oid_content(PRIVATE_OID, DER_NULL.to_vec());
    extension.set_criticality(true);
    let mut params = params_named("cocoon");
    params.custom_extensions.push(extension);
    let (der, public_key) = self_signed(&params);

    // The shared checks pass and hand the extension to the policy to judge.
    let (facts, unknown_critical) = check_self_signed(&der, SystemTime::now()).expect("valid");
    assert_eq!(facts.public_key, public_key);
    assert_eq!(unknown_critical, vec![PRIVATE_OID_TEXT.to_string()]);
    // The development policy understands none of them.
    assert_eq!(
        refusal(&der, SystemTime::now()),
        PolicyError::UnknownCriticalExtension(PRIVATE_OID_TEXT.into())
    );
}

#[test]
fn non_critical_and_standard_critical_extensions_are_accepted() {
    let mut params = params_named("cocoon");
    // Unknown but not critical: ignorable by definition.
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            PRIVATE_OID,
            DER_NULL.to_vec(),
        ));
    // rcgen marks basicConstraints and keyUsage critical.
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.subject_alt_names = vec![rcgen::SanType::DnsName(
        "cocoon.example".try_into().expect("dns name"),
    )];
    let (der, public_key) = self_signed(&params);
    let (_, unknown_critical) = check_self_signed(&der, SystemTime::now()).expect("valid");
    assert!(unknown_critical.is_empty(), "{unknown_critical:?}");
    let peer = AcceptAnySelfSigned
        .verify_peer(&der, SystemTime::now())
        .expect("accepted");
    assert_eq!(peer.public_key, public_key);
}

#[test]
fn several_unknown_critical_extensions_are_all_reported() {
    let mut params = params_named("cocoon");
    for last in [7u64, 8] {
        let mut extension =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 59_999, last], DER_NULL.to_vec());
        extension.set_criticality(true);
        params.custom_extensions.push(extension);
    }
    let (der, _) = self_signed(&params);
    let (_, mut unknown_critical) = check_self_signed(&der, SystemTime::now()).expect("valid");
    unknown_critical.sort();
    assert_eq!(
        unknown_critical,
        vec![
            "1.3.6.1.4.1.59999.7".to_string(),
            "1.3.6.1.4.1.59999.8".to_string()
        ]
    );
}
