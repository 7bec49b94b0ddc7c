//! Verification of NVIDIA GPU evidence: the certificate chain to NVIDIA's pinned device
//! identity root, and the SPDM response's signature by the GPU's attestation key.

use std::time::SystemTime;

use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

use super::{
    check_nonce, parse_report, GpuAttestation, GpuError, GpuEvidence, GpuEvidenceKind, GpuReport,
    MAX_CHAIN_LEN, SPDM_SIGNATURE_LEN,
};

/// NVIDIA's device identity root ("NVIDIA Device Identity CA"), as NVIDIA publishes it for its
/// local GPU verifier (nvtrust `guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/
/// certs/verifier_device_root.pem`). Every GPU attestation chain ends here.
pub const NVIDIA_DEVICE_IDENTITY_ROOT_PEM: &str = include_str!("nvidia_device_identity_root.pem");

/// The length of an uncompressed P-384 point (0x04 ‖ x ‖ y).
const P384_POINT_LEN: usize = 97;

/// Verifies NVIDIA GPU evidence against the pinned root.
#[derive(Clone, Debug)]
pub struct GpuVerifier {
    root_der: Vec<u8>,
}

impl GpuVerifier {
    /// A verifier pinned to NVIDIA's device identity root; checks once that the built-in root
    /// parses and is self-signed.
    pub fn new() -> Result<GpuVerifier, GpuError> {
        GpuVerifier::with_root_pem(NVIDIA_DEVICE_IDENTITY_ROOT_PEM.as_bytes())
    }

    /// A verifier pinned to another root (PEM): for tests that build their own chains.
    pub fn with_root_pem(pem: &[u8]) -> Result<GpuVerifier, GpuError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|e| GpuError::PinnedRoot(e.to_string()))?;
        let root = parse_der(&pem.contents).map_err(GpuError::PinnedRoot)?;
        if root.verify_signature(None).is_err() {
            return Err(GpuError::PinnedRoot("not self-signed".into()));
        }
        Ok(GpuVerifier {
            root_der: pem.contents,
        })
    }

    /// The pinned root, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// Verifies hardware evidence: each GPU's report form, chain, signature and nonce
    /// (`expected_nonce`, the certificate's [`super::gpu_nonce`]) at `now`. Returns the
    /// parsed reports; the measurement policy is the caller's.
    pub fn verify_evidence(
        &self,
        evidence: &GpuEvidence,
        expected_nonce: &[u8; 32],
        now: SystemTime,
    ) -> Result<Vec<GpuReport>, GpuError> {
        if evidence.kind != GpuEvidenceKind::Nvidia {
            return Err(GpuError::FakeEvidenceRefused);
        }
        evidence
            .gpus
            .iter()
            .enumerate()
            .map(|(gpu, attestation)| self.verify_gpu(gpu, attestation, expected_nonce, now))
            .collect()
    }

    /// Verifies one GPU (`gpu` names it in errors): report form, chain, signature, nonce, in
    /// that order.
    pub fn verify_gpu(
        &self,
        gpu: usize,
        attestation: &GpuAttestation,
        expected_nonce: &[u8; 32],
        now: SystemTime,
    ) -> Result<GpuReport, GpuError> {
        let report = parse_report(gpu, &attestation.report)?;
        let leaf_key = self.verify_chain(gpu, &attestation.chain, now)?;
        verify_report_signature(gpu, &attestation.report, &leaf_key)?;
        check_nonce(gpu, &report, expected_nonce)?;
        Ok(report)
    }

    /// Checks the chain (leaf first) up to the pinned root at `now` and returns the leaf's
    /// P-384 public key (uncompressed point).
    pub fn verify_chain(
        &self,
        gpu: usize,
        chain: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<Vec<u8>, GpuError> {
        if chain.is_empty() {
            return Err(GpuError::ChainMissing(gpu));
        }
        if chain.len() > MAX_CHAIN_LEN {
            return Err(GpuError::EvidenceMalformed(format!(
                "GPU {gpu} chain has {} certificates",
                chain.len()
            )));
        }
        let certificates = chain
            .iter()
            .enumerate()
            .map(|(index, der)| {
                parse_der(der).map_err(|reason| GpuError::CertificateMalformed {
                    gpu,
                    index,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if chain.last().map(Vec::as_slice) != Some(self.root_der.as_slice()) {
            return Err(GpuError::ChainNotToPinnedRoot(gpu));
        }
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let now = ASN1Time::from_timestamp(seconds).map_err(|e| {
            GpuError::EvidenceMalformed(format!("time {seconds} not representable: {e}"))
        })?;
        for (index, certificate) in certificates.iter().enumerate() {
            if !certificate.validity().is_valid_at(now) {
                return Err(GpuError::CertificateNotValidNow { gpu, index });
            }
            // The root (last) is pinned and was checked to be self-signed in `new`.
            let Some(issuer) = certificates.get(index + 1) else {
                continue;
            };
            if !issuer.is_ca() {
                return Err(GpuError::IssuerNotCa {
                    gpu,
                    index: index + 1,
                });
            }
            if certificate
                .verify_signature(Some(issuer.public_key()))
                .is_err()
            {
                return Err(GpuError::CertificateNotSignedByIssuer { gpu, index });
            }
        }
        let leaf = certificates[0].public_key();
        let curve = leaf
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let point = leaf.subject_public_key.data.as_ref();
        if leaf.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY
            || curve != Some(OID_NIST_EC_P384)
            || point.len() != P384_POINT_LEN
        {
            return Err(GpuError::LeafKeyNotP384(gpu));
        }
        Ok(point.to_vec())
    }
}

/// Verifies the response's signature (the last 96 bytes of `report`, r ‖ s) over SHA-384 of
/// everything before it (the request followed by the response), with `leaf_key`.
pub fn verify_report_signature(gpu: usize, report: &[u8], leaf_key: &[u8]) -> Result<(), GpuError> {
    let signed_len =
        report
            .len()
            .checked_sub(SPDM_SIGNATURE_LEN)
            .ok_or(GpuError::ReportMalformed {
                gpu,
                reason: "shorter than a signature".into(),
            })?;
    let (signed, signature) = report.split_at(signed_len);
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf_key)
        .verify(signed, signature)
        .map_err(|_| GpuError::BadSignature(gpu))
}

/// Parses one DER certificate with nothing after it.
fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    let (rest, certificate) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the certificate", rest.len()));
    }
    Ok(certificate)
}
