//! Peer policies: the pluggable decision of which certificates a connection accepts.
//!
//! Every hop is mutually authenticated with self-signed Ed25519 certificates. What makes a peer
//! acceptable is a policy: the development policy (in [`danger`]) accepts any well-formed
//! self-signed certificate; attested policies (RA-TLS with TDX quotes) plug into the same trait.

use std::fmt::Debug;
use std::time::SystemTime;

use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Who the peer is, as proven by its certificate and the TLS handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's Ed25519 public key (the certificate's subject key).
    pub public_key: [u8; 32],
    /// The attested image hash, when the policy verified an attestation.
    pub image_hash: Option<[u8; 32]>,
    /// Name of the policy that accepted the peer.
    pub policy: &'static str,
    /// The certificate the peer presented (filled in by the transport after the handshake;
    /// empty where a policy builds an identity itself).
    pub certificate: PeerCertificate,
}

/// DER of a peer's certificate, shared: a proxy hands its workers' certificates to clients,
/// which verify them themselves. Debug-prints its size only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate(std::sync::Arc<[u8]>);

impl PeerCertificate {
    /// Wraps `der`.
    pub fn new(der: &[u8]) -> PeerCertificate {
        PeerCertificate(der.into())
    }

    /// The DER bytes (empty when unknown).
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

impl Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerCertificate({} bytes)", self.0.len())
    }
}

/// Why a peer certificate was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The DER could not be parsed as an X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The peer sent a chain; only a single self-signed certificate is allowed.
    #[error("certificate chain of depth {0} (only depth 0 is allowed)")]
    ChainNotAllowed(usize),
    /// The certificate's key is not Ed25519.
    #[error("certificate key is not Ed25519")]
    NotEd25519,
    /// Issuer and subject differ, or the self-signature does not verify.
    #[error("certificate is not validly self-signed")]
    NotSelfSigned,
    /// The current time is outside the certificate's validity window.
    #[error("certificate is not valid at this time")]
    Expired,
    /// The certificate carries a critical extension this policy does not understand.
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    /// A policy-specific refusal (attestation, allow-lists).
    #[error("{0}")]
    Refused(String),
}

/// Decides whether a peer certificate is acceptable. Implementations must be cheap to call
/// repeatedly (they run once per handshake) and must never panic on hostile input.
pub trait PeerPolicy: Send + Sync + Debug {
    /// Short name for logs and `/stats`.
    fn name(&self) -> &'static str;
    /// Checks the end-entity certificate (DER) at time `now` and returns the peer's identity.
    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError>;
}

/// RA-TLS extension carrying the raw TDX quote (critical).
pub const OID_TDX_QUOTE: &str = "1.3.6.1.4.1.12345.1";
/// RA-TLS extension carrying the serialised user claims (critical).
pub const OID_TDX_USER_CLAIMS: &str = "1.3.6.1.4.1.12345.2";
/// RA-TLS extension carrying AMD SEV-SNP evidence (critical): the attestation report and the
/// VCEK certificate in `cocoon-attest`'s versioned encoding. Its report data is SHA-512 of the
/// claims in [`OID_TDX_USER_CLAIMS`], as a TDX quote's is.
pub const OID_SNP_EVIDENCE: &str = "1.3.6.1.4.1.12345.3";
/// RA-TLS extension carrying NVIDIA confidential-computing GPU evidence (critical): each GPU's
/// SPDM attestation report and certificate chain in `cocoon-attest`'s versioned encoding. Its
/// SHA-256 is a field of the claims in [`OID_TDX_USER_CLAIMS`], so the CPU's evidence vouches
/// for it.
pub const OID_GPU_EVIDENCE: &str = "1.3.6.1.4.1.12345.4";

/// Parsed facts about a certificate that every policy needs.
#[derive(Debug)]
pub struct CertificateFacts {
    /// Ed25519 public key from the subject public key info.
    pub public_key: [u8; 32],
    /// Contents of the TDX_QUOTE extension, when present.
    pub quote: Option<Vec<u8>>,
    /// Contents of the TDX_USER_CLAIMS extension, when present.
    pub user_claims: Option<Vec<u8>>,
    /// Contents of the SNP evidence extension, when present.
    pub snp_evidence: Option<Vec<u8>>,
    /// Contents of the GPU evidence extension, when present.
    pub gpu_evidence: Option<Vec<u8>>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// Parses a certificate and checks the parts every policy shares: Ed25519 key, self-signed,
/// valid at `now`. The RA-TLS extensions are returned as facts (judging them is the
/// attestation policy's job); other unknown critical extensions are returned for the caller to
/// refuse, because which extensions are known depends on the policy.
pub fn check_self_signed(
    cert_der: &[u8],
    now: SystemTime,
) -> Result<(CertificateFacts, Vec<String>), PolicyError> {
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| PolicyError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PolicyError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(PolicyError::NotEd25519);
    }
    let public_key: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| PolicyError::NotEd25519)?;
    if cert.issuer() != cert.subject() || cert.verify_signature(None).is_err() {
        return Err(PolicyError::NotSelfSigned);
    }
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() || now_secs > validity.not_after.timestamp() {
        return Err(PolicyError::Expired);
    }
    let mut facts = CertificateFacts {
        public_key,
        quote: None,
        user_claims: None,
        snp_evidence: None,
        gpu_evidence: None,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    };
    let mut unknown_critical = Vec::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        let slot = match oid.as_str() {
            OID_TDX_QUOTE => &mut facts.quote,
            OID_TDX_USER_CLAIMS => &mut facts.user_claims,
            OID_SNP_EVIDENCE => &mut facts.snp_evidence,
            OID_GPU_EVIDENCE => &mut facts.gpu_evidence,
            _ => {
                if ext.critical && !is_standard_extension(&oid) {
                    unknown_critical.push(oid);
                }
                continue;
            }
        };
        if slot.is_some() {
            return Err(PolicyError::Malformed(format!(
                "extension {oid} appears twice"
            )));
        }
        *slot = Some(ext.value.to_vec());
    }
    Ok((facts, unknown_critical))
}

/// Extensions every COCOON certificate may carry as critical.
fn is_standard_extension(oid: &str) -> bool {
    matches!(
        oid,
        "2.5.29.19" // basicConstraints
            | "2.5.29.15" // keyUsage
            | "2.5.29.37" // extendedKeyUsage
            | "2.5.29.14" // subjectKeyIdentifier
            | "2.5.29.17" // subjectAltName
    )
}

/// Extracts the raw SubjectPublicKeyInfo DER from a certificate, for verifying handshake
/// signatures against the key itself rather than through a PKI path.
pub(crate) fn subject_public_key_info(cert_der: &[u8]) -> Result<Vec<u8>, PolicyError> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| PolicyError::Malformed(e.to_string()))?;
    Ok(cert.public_key().raw.to_vec())
}

/// The policy of the proxy's client port. Clients are app backends, not TEEs: they prove
/// nothing about their code and need not, because they are authenticated by the payment
/// channel they sign for. They still present a well-formed self-signed certificate.
#[derive(Debug, Default, Clone)]
pub struct UnattestedClients;

impl PeerPolicy for UnattestedClients {
    fn name(&self) -> &'static str {
        "unattested_clients"
    }

    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        danger::AcceptAnySelfSigned
            .verify_peer(cert_der, now)
            .map(|peer| PeerIdentity {
                policy: self.name(),
                ..peer
            })
    }
}

/// Policies that weaken security for development. Selecting one is logged loudly; none can be
/// chosen by a peer.
pub mod danger {
    use super::*;

    /// Accepts any well-formed, currently valid, self-signed Ed25519 certificate without any
    /// attestation. For development and tests only.
    #[derive(Debug, Default, Clone)]
    pub struct AcceptAnySelfSigned;

    impl AcceptAnySelfSigned {
        /// Creates the policy and warns in the log that peers are not attested.
        pub fn new() -> Self {
            tracing::warn!(
                "danger: peer policy `any` accepts every self-signed certificate without attestation"
            );
            AcceptAnySelfSigned
        }
    }

    impl PeerPolicy for AcceptAnySelfSigned {
        fn name(&self) -> &'static str {
            "any"
        }

        fn verify_peer(
            &self,
            cert_der: &[u8],
            now: SystemTime,
        ) -> Result<PeerIdentity, PolicyError> {
            let (facts, unknown_critical) = check_self_signed(cert_der, now)?;
            if let Some(oid) = unknown_critical.into_iter().next() {
                return Err(PolicyError::UnknownCriticalExtension(oid));
            }
            Ok(PeerIdentity {
                public_key: facts.public_key,
                image_hash: None,
                policy: self.name(),
                certificate: PeerCertificate::default(),
            })
        }
    }
}
