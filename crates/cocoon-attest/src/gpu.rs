//! NVIDIA confidential-computing GPU evidence: each GPU's SPDM attestation report and
//! certificate chain, their encoding in an RA-TLS certificate, their binding to the
//! certificate's key, and their verification against NVIDIA's pinned device identity root.
//!
//! # Evidence in the certificate
//!
//! A node that attests GPUs puts, besides its CPU evidence (TDX quote or SEV-SNP evidence) and
//! the claims extension, the critical extension **`1.3.6.1.4.1.12345.4`**
//! (`cocoon_net::policy::OID_GPU_EVIDENCE`) in its certificate, whose value is this encoding
//! (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `1` |
//! | 1 | kind: `0` = signed by NVIDIA GPUs, `1` = `danger` fake (unsigned, development only) |
//! | 1 | number of GPUs, 1 to 8 |
//! | per GPU: 4 + n | the attestation report (n ≤ 65536): the SPDM GET_MEASUREMENTS request (37 bytes) followed by the GPU's response, as NVML's `nvmlDeviceGetConfComputeGpuAttestationReport` returns it |
//! | per GPU: 1 | number of certificates in its chain, 0 to 8 (0 only in a fake) |
//! | per certificate: 2 + n | the certificate, DER; the GPU's attestation leaf first, NVIDIA's root last |
//!
//! Nothing may follow.
//!
//! # Binding
//!
//! Two links tie the GPUs' evidence to the certificate:
//!
//! 1. The claims (`crate::claims`, tag 2) carry **SHA-256 of the whole extension**
//!    ([`evidence_hash`]), and the CPU quote's report data is SHA-512 of the claims: the CPU
//!    TEE vouches for exactly these GPU reports. Evidence spliced in from another certificate
//!    fails here ([`GpuError::EvidenceHashMismatch`]).
//! 2. Each GPU report's requester nonce is **SHA-256("cocoon gpu nonce v1" ‖ the certificate's
//!    Ed25519 key)** ([`gpu_nonce`]), and the GPU signs it: a report cannot be moved to a
//!    certificate with another key even by a node that computes its own claims over it
//!    ([`GpuError::NonceMismatch`]). Keys are fresh for each certificate, so the nonce is too.
//!
//! # What verification checks, per GPU, in this order ([`GpuVerifier::verify_gpu`])
//!
//! 1. The report parses as an SPDM 1.1 GET_MEASUREMENTS request (version 0x11, code 0xE0, a
//!    signature requested) and its response (version 0x11, code 0x60, measurement blocks in
//!    the DMTF format, the responder nonce, opaque data, a 96-byte signature, nothing after).
//! 2. The chain: at most 8 DER certificates, the last byte for byte NVIDIA's device identity
//!    root (pinned, built in), each signed by the next, each issuer a CA, each valid at `now`.
//! 3. The leaf's key is an ECDSA P-384 key, and the response's signature (r ‖ s) verifies with
//!    it over SHA-384 of the request followed by the response without its signature, as
//!    SPDM 1.1 and NVIDIA's local verifier define it.
//! 4. The requester nonce equals the expected one.
//! 5. The measurements: [`GpuMeasurementPolicy`] compares the GPU's **measurement hash**,
//!    SHA-256 of the response's MeasurementRecord field exactly as signed
//!    ([`GpuReport::measurements_hash`]), with an allow-list.
//!
//! Not checked: NVIDIA's reference integrity manifests (RIMs) for the driver and VBIOS
//! measurements (the allow-list of measurement hashes stands for them), certificate
//! revocation (NVIDIA's OCSP service), and the opaque data (driver and VBIOS versions, the
//! GPU's mode flags) beyond its length.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The version of our evidence encoding.
const EVIDENCE_VERSION: u8 = 1;
/// The most GPUs one node's evidence carries (an HGX board has 8).
pub const MAX_GPUS: usize = 8;
/// The most certificates in one GPU's chain (NVIDIA's have 5).
const MAX_CHAIN_LEN: usize = 8;
/// The largest attestation report carried; Hopper's are about 4 KiB.
const MAX_REPORT_LEN: usize = 65536;
/// The domain separator of the GPU nonce.
const NONCE_DOMAIN: &[u8] = b"cocoon gpu nonce v1";

/// SPDM 1.1, the version NVIDIA's Hopper GPUs answer GET_MEASUREMENTS with.
pub const SPDM_VERSION_1_1: u8 = 0x11;
/// The length of an SPDM 1.1 GET_MEASUREMENTS request with a nonce and slot (DSP0274 1.1).
pub const SPDM_REQUEST_LEN: usize = 37;
/// The request code of GET_MEASUREMENTS.
const SPDM_GET_MEASUREMENTS: u8 = 0xE0;
/// The response code of MEASUREMENTS.
const SPDM_MEASUREMENTS: u8 = 0x60;
/// A P-384 signature, r ‖ s.
pub const SPDM_SIGNATURE_LEN: usize = 96;
/// MeasurementSpecification bit 0: the DMTF measurement format.
const DMTF_MEASUREMENT_SPECIFICATION: u8 = 1;

/// Why GPU evidence was refused (or could not be collected). Each check has its own variant.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GpuError {
    /// The evidence extension is not our encoding (lengths, counts, trailing bytes, kind).
    #[error("GPU evidence malformed: {0}")]
    EvidenceMalformed(String),
    /// The evidence encoding has a version this node does not know.
    #[error("GPU evidence format version {0} is not supported (this node knows 1)")]
    UnsupportedEvidenceVersion(u8),
    /// The policy requires GPU evidence and the certificate has none.
    #[error("certificate carries no GPU evidence, but the policy requires it")]
    MissingEvidence,
    /// The certificate has GPU evidence but its claims carry no hash of it.
    #[error("the certificate's claims carry no GPU evidence hash")]
    ClaimsLackEvidenceHash,
    /// SHA-256 of the GPU evidence is not the hash in the claims the CPU quote vouches for:
    /// the evidence was spliced in from another certificate or changed.
    #[error("GPU evidence is not the evidence the CPU quote vouches for (claims hash mismatch)")]
    EvidenceHashMismatch,
    /// The attestation report is not an SPDM 1.1 GET_MEASUREMENTS request and response.
    #[error("GPU {gpu} attestation report malformed: {reason}")]
    ReportMalformed {
        /// Which GPU of the evidence (from 0).
        gpu: usize,
        /// What is wrong.
        reason: String,
    },
    /// The report speaks another SPDM version than 1.1.
    #[error(
        "GPU {gpu} attestation report is SPDM version {version:#04x}; only 1.1 (0x11) is supported"
    )]
    UnsupportedSpdmVersion {
        /// Which GPU of the evidence.
        gpu: usize,
        /// The version byte.
        version: u8,
    },
    /// The report's response has no measurement block.
    #[error("GPU {0} attestation report has no measurement block")]
    NoMeasurements(usize),
    /// Hardware evidence without a certificate chain.
    #[error("GPU {0} evidence carries no certificate chain")]
    ChainMissing(usize),
    /// A certificate of the chain is not DER X.509.
    #[error("GPU {gpu} certificate {index} malformed: {reason}")]
    CertificateMalformed {
        /// Which GPU of the evidence.
        gpu: usize,
        /// Which certificate of its chain (0 = leaf).
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// The chain does not end at NVIDIA's pinned device identity root.
    #[error("GPU {0} certificate chain does not end at NVIDIA's pinned device identity root")]
    ChainNotToPinnedRoot(usize),
    /// A certificate is not signed by the next one in the chain.
    #[error("GPU {gpu} certificate {index} is not signed by certificate {}", index + 1)]
    CertificateNotSignedByIssuer {
        /// Which GPU of the evidence.
        gpu: usize,
        /// The certificate whose signature failed (0 = leaf).
        index: usize,
    },
    /// A certificate that signs another is not a CA.
    #[error("GPU {gpu} certificate {index} signs another but is not a CA")]
    IssuerNotCa {
        /// Which GPU of the evidence.
        gpu: usize,
        /// The certificate that is not a CA.
        index: usize,
    },
    /// A certificate of the chain is not valid at the time of the check.
    #[error("GPU {gpu} certificate {index} is not valid now")]
    CertificateNotValidNow {
        /// Which GPU of the evidence.
        gpu: usize,
        /// The certificate outside its validity.
        index: usize,
    },
    /// The leaf's key is not an ECDSA P-384 key.
    #[error("GPU {0} attestation certificate's key is not an ECDSA P-384 key")]
    LeafKeyNotP384(usize),
    /// The response's signature does not verify with the leaf's key: the report was changed or
    /// is not this GPU's.
    #[error(
        "GPU {0} attestation report signature does not verify with its attestation certificate"
    )]
    BadSignature(usize),
    /// The report answers another nonce than the one derived from this certificate's key.
    #[error("GPU {0} attestation report answers another nonce than this certificate's")]
    NonceMismatch(usize),
    /// The GPU's measurement hash is not in the allow-list.
    #[error("GPU {gpu} measurement hash {hash} is not allowed")]
    MeasurementsNotAllowed {
        /// Which GPU of the evidence.
        gpu: usize,
        /// The measurement hash, hex.
        hash: String,
    },
    /// A `danger` fake was presented to the real `nvidia` GPU policy.
    #[error("fake GPU evidence is never accepted by the nvidia GPU policy")]
    FakeEvidenceRefused,
    /// The `danger_fake_gpu` policy got real (or other) evidence.
    #[error("not fake GPU evidence")]
    NotFakeEvidence,
    /// The pinned root could not be read (a corrupt built-in certificate).
    #[error("the pinned NVIDIA device identity root is unusable: {0}")]
    PinnedRoot(String),
    /// This node could not collect its GPUs' evidence (NVML absent or failing).
    #[error("GPU evidence unavailable: {0}")]
    Unavailable(String),
}

/// Whether the evidence claims to come from NVIDIA GPUs or is a development fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuEvidenceKind {
    /// Reports signed by the GPUs' attestation keys.
    Nvidia,
    /// Unsigned reports made by [`danger::fake_evidence`]; prove nothing.
    DangerFake,
}

/// One GPU's evidence: its attestation report and certificate chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuAttestation {
    /// The SPDM GET_MEASUREMENTS request (37 bytes) followed by the GPU's response.
    pub report: Vec<u8>,
    /// The attestation certificate chain, DER, leaf first and NVIDIA's root last.
    pub chain: Vec<Vec<u8>>,
}

/// The GPU evidence of one node, as carried in the certificate extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuEvidence {
    /// Hardware or fake.
    pub kind: GpuEvidenceKind,
    /// One entry per GPU, 1 to [`MAX_GPUS`].
    pub gpus: Vec<GpuAttestation>,
}

impl GpuEvidence {
    /// The extension's bytes. Fails only when a count or length exceeds the encoding's limits.
    pub fn encode(&self) -> Result<Vec<u8>, GpuError> {
        let malformed = |what: String| GpuError::EvidenceMalformed(what);
        if self.gpus.is_empty() || self.gpus.len() > MAX_GPUS {
            return Err(malformed(format!(
                "{} GPUs (1 to {MAX_GPUS} are carried)",
                self.gpus.len()
            )));
        }
        let mut out = vec![
            EVIDENCE_VERSION,
            match self.kind {
                GpuEvidenceKind::Nvidia => 0,
                GpuEvidenceKind::DangerFake => 1,
            },
            self.gpus.len() as u8,
        ];
        for (gpu, attestation) in self.gpus.iter().enumerate() {
            if attestation.report.len() > MAX_REPORT_LEN {
                return Err(malformed(format!(
                    "GPU {gpu} report is {} bytes",
                    attestation.report.len()
                )));
            }
            out.extend_from_slice(&(attestation.report.len() as u32).to_be_bytes());
            out.extend_from_slice(&attestation.report);
            if attestation.chain.len() > MAX_CHAIN_LEN {
                return Err(malformed(format!(
                    "GPU {gpu} chain has {} certificates",
                    attestation.chain.len()
                )));
            }
            out.push(attestation.chain.len() as u8);
            for certificate in &attestation.chain {
                let len = u16::try_from(certificate.len()).map_err(|_| {
                    malformed(format!(
                        "GPU {gpu} certificate is {} bytes",
                        certificate.len()
                    ))
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(certificate);
            }
        }
        Ok(out)
    }

    /// Reads the extension's bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<GpuEvidence, GpuError> {
        let malformed = |what: String| GpuError::EvidenceMalformed(what);
        let mut reader = Reader(bytes);
        let version = reader.u8().ok_or_else(|| malformed("empty".into()))?;
        if version != EVIDENCE_VERSION {
            return Err(GpuError::UnsupportedEvidenceVersion(version));
        }
        let kind = match reader.u8() {
            Some(0) => GpuEvidenceKind::Nvidia,
            Some(1) => GpuEvidenceKind::DangerFake,
            Some(other) => return Err(malformed(format!("unknown kind {other}"))),
            None => return Err(malformed("no kind".into())),
        };
        let count = usize::from(
            reader
                .u8()
                .ok_or_else(|| malformed("no GPU count".into()))?,
        );
        if count == 0 || count > MAX_GPUS {
            return Err(malformed(format!(
                "{count} GPUs (1 to {MAX_GPUS} are carried)"
            )));
        }
        let mut gpus = Vec::with_capacity(count);
        for gpu in 0..count {
            let len = reader
                .u32_be()
                .ok_or_else(|| malformed(format!("GPU {gpu} report length cut off")))?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_REPORT_LEN {
                return Err(malformed(format!("GPU {gpu} report is {len} bytes")));
            }
            let report = reader
                .take(len)
                .ok_or_else(|| malformed(format!("GPU {gpu} report cut off")))?
                .to_vec();
            let certificates = usize::from(
                reader
                    .u8()
                    .ok_or_else(|| malformed(format!("GPU {gpu} certificate count cut off")))?,
            );
            if certificates > MAX_CHAIN_LEN {
                return Err(malformed(format!(
                    "GPU {gpu} chain has {certificates} certificates"
                )));
            }
            let mut chain = Vec::with_capacity(certificates);
            for index in 0..certificates {
                let len = reader.u16_be().ok_or_else(|| {
                    malformed(format!("GPU {gpu} certificate {index} length cut off"))
                })?;
                let certificate = reader
                    .take(usize::from(len))
                    .ok_or_else(|| malformed(format!("GPU {gpu} certificate {index} cut off")))?;
                chain.push(certificate.to_vec());
            }
            gpus.push(GpuAttestation { report, chain });
        }
        if !reader.0.is_empty() {
            return Err(malformed(format!("{} trailing bytes", reader.0.len())));
        }
        Ok(GpuEvidence { kind, gpus })
    }
}

/// A cursor over bytes that never reads past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16_be(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u16_le(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u24_le(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16)
    }

    fn u32_be(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
}

/// SHA-256 of the GPU evidence extension's bytes: the value the claims carry (tag 2).
pub fn evidence_hash(extension: &[u8]) -> [u8; 32] {
    Sha256::digest(extension).into()
}

/// The nonce a certificate's GPU reports must answer: SHA-256("cocoon gpu nonce v1" ‖ the
/// certificate's Ed25519 public key).
pub fn gpu_nonce(public_key: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(NONCE_DOMAIN);
    hash.update(public_key);
    hash.finalize().into()
}

/// Checks the claims' GPU evidence hash against the extension's bytes.
pub fn check_evidence_hash(
    extension: &[u8],
    claims_hash: Option<&[u8; 32]>,
) -> Result<(), GpuError> {
    let expected = claims_hash.ok_or(GpuError::ClaimsLackEvidenceHash)?;
    if &evidence_hash(extension) != expected {
        return Err(GpuError::EvidenceHashMismatch);
    }
    Ok(())
}

/// One measurement block of an SPDM MEASUREMENTS response, in the DMTF format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// The block's index (1 to 254).
    pub index: u8,
    /// DMTFSpecMeasurementValueType (bit 7: raw bit stream rather than a digest).
    pub value_type: u8,
    /// The measurement: for NVIDIA's GPUs a SHA-384 digest.
    pub value: Vec<u8>,
}

/// A parsed GPU attestation report: the parts verification and policies use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuReport {
    /// The SPDM version of request and response (0x11).
    pub spdm_version: u8,
    /// The nonce the requester sent, which the GPU signs.
    pub requester_nonce: [u8; 32],
    /// The GPU's own nonce.
    pub responder_nonce: [u8; 32],
    /// The measurement blocks, in the order the GPU sent them.
    pub measurements: Vec<MeasurementBlock>,
    /// The MeasurementRecord field exactly as signed.
    pub measurement_record: Vec<u8>,
    /// The opaque data (driver and VBIOS versions and more, NVIDIA's TLVs), unchecked.
    pub opaque_data: Vec<u8>,
    /// The signature, r ‖ s.
    pub signature: [u8; SPDM_SIGNATURE_LEN],
}

impl GpuReport {
    /// The GPU's measurement hash: SHA-256 of the MeasurementRecord field as signed. The
    /// GPU allow-lists (`gpu_measurements`) list these.
    pub fn measurements_hash(&self) -> [u8; 32] {
        Sha256::digest(&self.measurement_record).into()
    }
}

/// Parses an SPDM 1.1 GET_MEASUREMENTS request and response (see the module documentation);
/// `gpu` names the GPU in errors. Never panics.
pub fn parse_report(gpu: usize, report: &[u8]) -> Result<GpuReport, GpuError> {
    let malformed = |reason: String| GpuError::ReportMalformed { gpu, reason };
    let mut reader = Reader(report);
    let cut = |what: &str| malformed(format!("{what} cut off ({} bytes)", report.len()));
    // The request.
    let version = reader.u8().ok_or_else(|| cut("request"))?;
    if version != SPDM_VERSION_1_1 {
        return Err(GpuError::UnsupportedSpdmVersion { gpu, version });
    }
    let code = reader.u8().ok_or_else(|| cut("request"))?;
    if code != SPDM_GET_MEASUREMENTS {
        return Err(malformed(format!(
            "request code {code:#04x} is not GET_MEASUREMENTS"
        )));
    }
    let param1 = reader.u8().ok_or_else(|| cut("request"))?;
    if param1 & 1 == 0 {
        return Err(malformed("the request asks for no signature".into()));
    }
    let _param2 = reader.u8().ok_or_else(|| cut("request"))?;
    let requester_nonce = reader.array::<32>().ok_or_else(|| cut("request"))?;
    let _slot = reader.u8().ok_or_else(|| cut("request"))?;
    // The response.
    let response_version = reader.u8().ok_or_else(|| cut("response"))?;
    if response_version != version {
        return Err(malformed(format!(
            "response version {response_version:#04x} differs from the request's"
        )));
    }
    let code = reader.u8().ok_or_else(|| cut("response"))?;
    if code != SPDM_MEASUREMENTS {
        return Err(malformed(format!(
            "response code {code:#04x} is not MEASUREMENTS"
        )));
    }
    let _params = reader.take(2).ok_or_else(|| cut("response"))?;
    let block_count = reader.u8().ok_or_else(|| cut("response"))?;
    let record_len = reader.u24_le().ok_or_else(|| cut("response"))?;
    let record = reader
        .take(record_len)
        .ok_or_else(|| cut("measurement record"))?;
    let responder_nonce = reader.array::<32>().ok_or_else(|| cut("responder nonce"))?;
    let opaque_len = reader.u16_le().ok_or_else(|| cut("opaque length"))?;
    let opaque_data = reader
        .take(usize::from(opaque_len))
        .ok_or_else(|| cut("opaque data"))?;
    let signature = reader
        .array::<SPDM_SIGNATURE_LEN>()
        .ok_or_else(|| cut("signature"))?;
    if !reader.0.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the signature",
            reader.0.len()
        )));
    }
    if block_count == 0 {
        return Err(GpuError::NoMeasurements(gpu));
    }
    let measurements = parse_measurement_record(record, block_count).map_err(malformed)?;
    Ok(GpuReport {
        spdm_version: version,
        requester_nonce,
        responder_nonce,
        measurements,
        measurement_record: record.to_vec(),
        opaque_data: opaque_data.to_vec(),
        signature,
    })
}

/// The measurement blocks of a MeasurementRecord: `count` blocks of index, specification
/// (DMTF), size, and a DMTF measurement (type, value size, value), filling it exactly, with
/// distinct indices.
fn parse_measurement_record(record: &[u8], count: u8) -> Result<Vec<MeasurementBlock>, String> {
    let mut reader = Reader(record);
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(count));
    for n in 0..count {
        let cut = || format!("measurement block {n} cut off");
        let index = reader.u8().ok_or_else(cut)?;
        let specification = reader.u8().ok_or_else(cut)?;
        if specification != DMTF_MEASUREMENT_SPECIFICATION {
            return Err(format!(
                "measurement block {index} has specification {specification:#04x}, not DMTF"
            ));
        }
        let size = usize::from(reader.u16_le().ok_or_else(cut)?);
        let mut measurement = Reader(reader.take(size).ok_or_else(cut)?);
        let value_type = measurement.u8().ok_or_else(cut)?;
        let value_size = usize::from(measurement.u16_le().ok_or_else(cut)?);
        if measurement.0.len() != value_size {
            return Err(format!(
                "measurement block {index} holds {} value bytes but says {value_size}",
                measurement.0.len()
            ));
        }
        if index == 0 || blocks.iter().any(|b| b.index == index) {
            return Err(format!(
                "measurement block index {index} invalid or repeated"
            ));
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value: measurement.0.to_vec(),
        });
    }
    if !reader.0.is_empty() {
        return Err(format!(
            "{} bytes after the last measurement block",
            reader.0.len()
        ));
    }
    Ok(blocks)
}

/// Checks that the report answers `expected` (the certificate's [`gpu_nonce`]).
pub fn check_nonce(gpu: usize, report: &GpuReport, expected: &[u8; 32]) -> Result<(), GpuError> {
    if &report.requester_nonce != expected {
        return Err(GpuError::NonceMismatch(gpu));
    }
    Ok(())
}

/// Which GPU measurements a policy accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuMeasurementPolicy {
    /// Allowed measurement hashes ([`GpuReport::measurements_hash`]).
    pub allowed: Vec<[u8; 32]>,
    /// Accept any measurements (`danger_accept_any_gpu_measurements`): a genuine NVIDIA GPU
    /// running any firmware and driver.
    pub danger_accept_any: bool,
}

impl GpuMeasurementPolicy {
    /// Checks one GPU's report.
    pub fn check(&self, gpu: usize, report: &GpuReport) -> Result<(), GpuError> {
        let hash = report.measurements_hash();
        if self.danger_accept_any || self.allowed.contains(&hash) {
            return Ok(());
        }
        Err(GpuError::MeasurementsNotAllowed {
            gpu,
            hash: crate::hex(&hash),
        })
    }
}

/// What a verified GPU proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGpu {
    /// The parsed report.
    pub report: GpuReport,
    /// Its measurement hash.
    pub measurements_hash: [u8; 32],
}

/// Checks a certificate's GPU evidence for a policy: binding to the claims (hash), form,
/// chain and signature (or the fake's form with `verifier` = None), nonce, and measurements.
/// `extension` is the GPU evidence extension's bytes, `claims_hash` the claims' tag 2, and
/// `public_key` the certificate's key.
pub fn check_certificate_gpus(
    verifier: Option<&GpuVerifier>,
    measurements: &GpuMeasurementPolicy,
    extension: Option<&[u8]>,
    claims_hash: Option<&[u8; 32]>,
    public_key: &[u8; 32],
    now: SystemTime,
) -> Result<Vec<VerifiedGpu>, GpuError> {
    let extension = extension.ok_or(GpuError::MissingEvidence)?;
    check_evidence_hash(extension, claims_hash)?;
    let evidence = GpuEvidence::decode(extension)?;
    let nonce = gpu_nonce(public_key);
    let reports = match verifier {
        Some(verifier) => verifier.verify_evidence(&evidence, &nonce, now)?,
        None => danger::verify_fake(&evidence, &nonce)?,
    };
    let mut verified = Vec::with_capacity(reports.len());
    for (gpu, report) in reports.into_iter().enumerate() {
        measurements.check(gpu, &report)?;
        verified.push(VerifiedGpu {
            measurements_hash: report.measurements_hash(),
            report,
        });
    }
    Ok(verified)
}

pub mod danger;
pub mod nvml;
mod verify;

pub use verify::GpuVerifier;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_and_refuses_every_cut() {
        let evidence = GpuEvidence {
            kind: GpuEvidenceKind::Nvidia,
            gpus: vec![
                GpuAttestation {
                    report: vec![1; 300],
                    chain: vec![vec![2; 500], vec![3; 7]],
                },
                GpuAttestation {
                    report: vec![4; 40],
                    chain: vec![],
                },
            ],
        };
        let bytes = evidence.encode().unwrap();
        assert_eq!(GpuEvidence::decode(&bytes).unwrap(), evidence);
        for cut in 0..bytes.len() {
            assert!(GpuEvidence::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            GpuEvidence::decode(&longer),
            Err(GpuError::EvidenceMalformed(_))
        ));
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(
            GpuEvidence::decode(&other_version),
            Err(GpuError::UnsupportedEvidenceVersion(2))
        );
        let mut no_gpus = bytes;
        no_gpus[2] = 0;
        assert!(matches!(
            GpuEvidence::decode(&no_gpus),
            Err(GpuError::EvidenceMalformed(_))
        ));
        let none = GpuEvidence {
            kind: GpuEvidenceKind::Nvidia,
            gpus: vec![],
        };
        assert!(none.encode().is_err());
    }

    #[test]
    fn the_nonce_depends_on_the_key() {
        assert_ne!(gpu_nonce(&[1; 32]), gpu_nonce(&[2; 32]));
        assert_eq!(gpu_nonce(&[1; 32]), gpu_nonce(&[1; 32]));
    }
}
