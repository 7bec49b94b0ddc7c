//! RA-TLS certificates in the reference's exact format: self-signed X.509 with an Ed25519 key,
//! one day of validity, and these extensions, all critical: basicConstraints CA:FALSE,
//! keyUsage digitalSignature, extendedKeyUsage serverAuth+clientAuth, subjectKeyIdentifier,
//! TDX_QUOTE (1.3.6.1.4.1.12345.1, the raw quote) and TDX_USER_CLAIMS (1.3.6.1.4.1.12345.2,
//! the serialised claims). The quote's report data is SHA-512 of the claims, which contain
//! the certificate's key. An AMD SEV-SNP node puts its evidence in SNP_EVIDENCE
//! (1.3.6.1.4.1.12345.3, see [`crate::snp`]) instead of TDX_QUOTE, with the same claims. A node
//! that attests NVIDIA GPUs adds GPU_EVIDENCE (1.3.6.1.4.1.12345.4, see [`crate::gpu`]), whose
//! SHA-256 the claims carry.

use std::time::{Duration, SystemTime};

use cocoon_net::policy::{
    check_self_signed, CertificateFacts, OID_GPU_EVIDENCE, OID_SNP_EVIDENCE, OID_TDX_QUOTE,
    OID_TDX_USER_CLAIMS,
};
use cocoon_net::{PolicyError, TlsIdentity};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyPair, PKCS_ED25519,
};
use sha2::{Digest, Sha256};

use crate::claims::{ClaimsExtras, UserClaims};
use crate::gpu::{evidence_hash, gpu_nonce};
use crate::policy::AttestError;
use crate::provider::{GpuEvidenceSource, QuoteProvider};

/// The reference's certificate lifetime; certificates are renewed well before it ends.
pub const RA_TLS_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Backdating of notBefore, so peers with slightly slow clocks accept a fresh certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A node's RA-TLS identity and the evidence in it.
#[derive(Clone, Debug)]
pub struct RaTlsIdentity {
    /// Certificate and key, ready for `cocoon-net`.
    pub tls: TlsIdentity,
    /// The TDX quote in the certificate, if any.
    pub quote: Option<Vec<u8>>,
    /// The SEV-SNP evidence in the certificate, if any ([`crate::snp::SnpEvidence`] bytes).
    pub snp_evidence: Option<Vec<u8>>,
    /// The GPU evidence in the certificate, if any ([`crate::gpu::GpuEvidence`] bytes).
    pub gpu_evidence: Option<Vec<u8>>,
    /// When the certificate expires.
    pub not_after: SystemTime,
}

fn oid(dotted: &str) -> Vec<u64> {
    dotted
        .split('.')
        .filter_map(|part| part.parse().ok())
        .collect()
}

fn critical(dotted: &str, content: Vec<u8>) -> CustomExtension {
    let mut extension = CustomExtension::from_oid_content(&oid(dotted), content);
    extension.set_criticality(true);
    extension
}

/// DER of the standard extensions' values, written by hand so each can be marked critical
/// exactly as the reference does.
mod der {
    /// basicConstraints CA:FALSE: an empty SEQUENCE.
    pub const BASIC_CONSTRAINTS_NOT_CA: [u8; 2] = [0x30, 0x00];
    /// keyUsage digitalSignature: BIT STRING, 7 unused bits, 0x80.
    pub const KEY_USAGE_DIGITAL_SIGNATURE: [u8; 4] = [0x03, 0x02, 0x07, 0x80];
    /// extendedKeyUsage: SEQUENCE { id-kp-serverAuth, id-kp-clientAuth }.
    pub const EKU_SERVER_CLIENT: [u8; 22] = [
        0x30, 0x14, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01, 0x06, 0x08, 0x2b,
        0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
    ];

    /// An OCTET STRING.
    pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![0x04, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
}

/// Generates a key, obtains a quote over its claims from `provider`, and builds the
/// certificate. `name` becomes the subject CN (e.g. "cocoon-proxy").
pub fn generate_identity(
    provider: &dyn QuoteProvider,
    name: &str,
    now: SystemTime,
) -> Result<RaTlsIdentity, AttestError> {
    generate_identity_with_gpus(provider, None, name, now)
}

/// [`generate_identity`] with GPU evidence from `gpus` when given: the GPUs answer the nonce
/// derived from the new key ([`gpu_nonce`]), the claims carry SHA-256 of their evidence, and
/// the CPU quote covers those claims.
pub fn generate_identity_with_gpus(
    provider: &dyn QuoteProvider,
    gpus: Option<&dyn GpuEvidenceSource>,
    name: &str,
    now: SystemTime,
) -> Result<RaTlsIdentity, AttestError> {
    generate_identity_sealing(provider, gpus, name, now, None)
}

/// [`generate_identity_with_gpus`] whose claims also carry `sealing_key`, the HPKE public key
/// of a worker's sealed requests, so the quote vouches for it too. Without a key and GPUs the
/// claims are the reference's bare form.
pub fn generate_identity_sealing(
    provider: &dyn QuoteProvider,
    gpus: Option<&dyn GpuEvidenceSource>,
    name: &str,
    now: SystemTime,
    sealing_key: Option<[u8; 32]>,
) -> Result<RaTlsIdentity, AttestError> {
    let extras = ClaimsExtras {
        sealing_key,
        ..ClaimsExtras::default()
    };
    generate_identity_with_extras(provider, gpus, name, now, &extras)
}

/// [`generate_identity_with_gpus`] whose claims also carry `extras` (a worker's sealing key,
/// model hash and weights digest), so the quote vouches for them too. With no extras and no
/// GPUs the claims are the reference's bare form.
pub fn generate_identity_with_extras(
    provider: &dyn QuoteProvider,
    gpus: Option<&dyn GpuEvidenceSource>,
    name: &str,
    now: SystemTime,
    extras: &ClaimsExtras,
) -> Result<RaTlsIdentity, AttestError> {
    let key = KeyPair::generate_for(&PKCS_ED25519)
        .map_err(|e| AttestError::Certificate(e.to_string()))?;
    let public_key = raw_public_key(&key)?;
    let mut claims = UserClaims::with_extras(public_key, extras);
    let gpu_evidence = match gpus {
        Some(gpus) => {
            let evidence = gpus.evidence(&gpu_nonce(&public_key))?;
            claims.gpu_evidence_hash = Some(evidence_hash(&evidence));
            Some(evidence)
        }
        None => None,
    };
    let quote = provider.quote(&claims.report_data())?;
    build_identity_parts(
        key,
        quote,
        provider.extension_oid(),
        claims,
        gpu_evidence,
        name,
        now,
        Vec::new(),
    )
}

fn raw_public_key(key: &KeyPair) -> Result<[u8; 32], AttestError> {
    key.public_key_raw()
        .try_into()
        .map_err(|_| AttestError::Certificate("Ed25519 public key is not 32 bytes".into()))
}

/// Builds the certificate for `key` around an already obtained `quote`, plus `extra`
/// extensions (tests use these to make certificates a policy must refuse).
pub fn build_identity(
    key: KeyPair,
    quote: Option<Vec<u8>>,
    name: &str,
    now: SystemTime,
    extra: Vec<CustomExtension>,
) -> Result<RaTlsIdentity, AttestError> {
    build_identity_in(key, quote, OID_TDX_QUOTE, name, now, extra)
}

/// [`build_identity`] with the evidence in the extension `evidence_oid`: TDX_QUOTE or
/// SNP_EVIDENCE.
pub fn build_identity_in(
    key: KeyPair,
    quote: Option<Vec<u8>>,
    evidence_oid: &str,
    name: &str,
    now: SystemTime,
    extra: Vec<CustomExtension>,
) -> Result<RaTlsIdentity, AttestError> {
    let claims = UserClaims::for_key(raw_public_key(&key)?);
    build_identity_parts(key, quote, evidence_oid, claims, None, name, now, extra)
}

/// The certificate for `key` from all its parts: the CPU evidence `quote` in `evidence_oid`,
/// the `claims` it vouches for (which must name `key`), and GPU evidence in GPU_EVIDENCE.
/// Whether the claims match the GPU evidence is not checked: tests build certificates with
/// spliced evidence from this, which policies must refuse.
// Each part is one field of the certificate; a parameter struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn build_identity_parts(
    key: KeyPair,
    quote: Option<Vec<u8>>,
    evidence_oid: &str,
    claims: UserClaims,
    gpu_evidence: Option<Vec<u8>>,
    name: &str,
    now: SystemTime,
    extra: Vec<CustomExtension>,
) -> Result<RaTlsIdentity, AttestError> {
    if evidence_oid != OID_TDX_QUOTE && evidence_oid != OID_SNP_EVIDENCE {
        return Err(AttestError::Certificate(format!(
            "{evidence_oid} is not an evidence extension"
        )));
    }
    let public_key = raw_public_key(&key)?;
    if claims.public_key != public_key {
        return Err(AttestError::Certificate(
            "the claims name another key than the certificate's".into(),
        ));
    }
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.not_before = (now - CLOCK_SKEW).into();
    let not_after = now + RA_TLS_VALIDITY;
    params.not_after = not_after.into();
    params.is_ca = IsCa::NoCa;
    // RFC 7093 method 1: the leftmost 160 bits of SHA-256 of the key.
    let key_id = &Sha256::digest(public_key)[..20];
    params.custom_extensions = vec![
        critical("2.5.29.19", der::BASIC_CONSTRAINTS_NOT_CA.to_vec()),
        critical("2.5.29.15", der::KEY_USAGE_DIGITAL_SIGNATURE.to_vec()),
        critical("2.5.29.37", der::EKU_SERVER_CLIENT.to_vec()),
        critical("2.5.29.14", der::octet_string(key_id)),
    ];
    if let Some(quote) = &quote {
        params
            .custom_extensions
            .push(critical(evidence_oid, quote.clone()));
    }
    if quote.is_some() || gpu_evidence.is_some() {
        params
            .custom_extensions
            .push(critical(OID_TDX_USER_CLAIMS, claims.serialize()));
    }
    if let Some(gpu_evidence) = &gpu_evidence {
        params
            .custom_extensions
            .push(critical(OID_GPU_EVIDENCE, gpu_evidence.clone()));
    }
    params.custom_extensions.extend(extra);
    let cert = params
        .self_signed(&key)
        .map_err(|e| AttestError::Certificate(e.to_string()))?;
    Ok(RaTlsIdentity {
        tls: TlsIdentity {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            public_key,
        },
        quote: quote.clone().filter(|_| evidence_oid == OID_TDX_QUOTE),
        snp_evidence: quote.filter(|_| evidence_oid == OID_SNP_EVIDENCE),
        gpu_evidence,
        not_after,
    })
}

/// A critical extension with a dotted OID (for tests of unknown-extension handling).
pub fn critical_extension(dotted: &str, content: Vec<u8>) -> CustomExtension {
    critical(dotted, content)
}

/// Parses and checks a peer certificate's shared parts (self-signed Ed25519, valid at `now`,
/// no unknown critical extension) and returns its facts, including the RA-TLS extensions.
pub fn parse_certificate(
    cert_der: &[u8],
    now: SystemTime,
) -> Result<CertificateFacts, AttestError> {
    let (facts, unknown_critical) =
        check_self_signed(cert_der, now).map_err(AttestError::Rejected)?;
    if let Some(oid) = unknown_critical.into_iter().next() {
        return Err(AttestError::Rejected(
            PolicyError::UnknownCriticalExtension(oid),
        ));
    }
    Ok(facts)
}

/// The HPKE key for sealed requests that a certificate's claims carry, if any. This reads the
/// certificate only (a proxy lists the workers that take sealed requests); the attestation
/// behind the key is checked by whoever seals to it, with [`crate::AttestationPolicy::check`].
pub fn sealing_key_of(cert_der: &[u8], now: SystemTime) -> Option<[u8; 32]> {
    claims_of(cert_der, now)?.hpke_public_key
}

/// The claims a certificate carries, if it parses and they name its key. Like
/// [`sealing_key_of`] this reads the certificate only: what the claims are worth depends on
/// the policy that accepted it (a proxy compares a worker's claimed model hash with the model
/// it announces; the quote over the claims was checked at the handshake).
pub fn claims_of(cert_der: &[u8], now: SystemTime) -> Option<UserClaims> {
    let facts = parse_certificate(cert_der, now).ok()?;
    certificate_claims(&facts).ok()
}

/// Checks that a certificate's claims agree with the model its worker announces: they carry no
/// model hash (the reference's workers never do) or SHA-256 of exactly `model`. The error says
/// which hash they carry instead, or that the claims do not parse: a worker cannot claim one
/// model and serve another.
pub fn check_claimed_model(cert_der: &[u8], now: SystemTime, model: &str) -> Result<(), String> {
    let claims = claims_of(cert_der, now)
        .ok_or_else(|| "its certificate's claims do not parse".to_string())?;
    match claims.model_hash {
        None => Ok(()),
        Some(claimed) if claimed == crate::claims::model_hash(model) => Ok(()),
        Some(claimed) => Err(format!(
            "its attested claims carry model hash {}, not SHA-256 of {model:?} ({})",
            crate::hex(&claimed),
            crate::hex(&crate::claims::model_hash(model))
        )),
    }
}

/// The claims a certificate's quote must vouch for: from the TDX_USER_CLAIMS extension when
/// present (it must name the certificate's own key), else the key alone.
pub fn certificate_claims(facts: &CertificateFacts) -> Result<UserClaims, AttestError> {
    let claims = match &facts.user_claims {
        Some(bytes) => UserClaims::parse(bytes).map_err(|e| AttestError::Claims(e.to_string()))?,
        None => UserClaims::for_key(facts.public_key),
    };
    if claims.public_key != facts.public_key {
        return Err(AttestError::Claims(
            "user claims name another key than the certificate's".into(),
        ));
    }
    Ok(claims)
}
