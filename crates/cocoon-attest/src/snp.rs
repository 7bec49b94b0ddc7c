//! AMD SEV-SNP evidence: the attestation report, the certificates that vouch for it, their
//! encoding in an RA-TLS certificate, and their verification.
//!
//! # Evidence in the certificate
//!
//! An SNP node's RA-TLS certificate carries, besides the claims extension
//! (`1.3.6.1.4.1.12345.2`, as with TDX), the critical extension **`1.3.6.1.4.1.12345.3`**
//! (`cocoon_net::policy::OID_SNP_EVIDENCE`) whose value is this encoding (all integers
//! big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `1` |
//! | 1 | kind: `0` = signed by AMD hardware, `1` = `danger` fake (unsigned, development only) |
//! | 2 + n | the attestation report (n = 1184) |
//! | 2 + n | the VCEK certificate, DER (empty in a fake) |
//! | 2 + n | the ASK certificate, DER, or empty |
//! | 2 + n | the ARK certificate, DER, or empty |
//!
//! Nothing may follow. The report alone cannot be checked: the verifier needs the VCEK, the
//! chip's key for its current TCB, which the certificate therefore carries. The ASK and ARK of
//! the known product lines (Milan, Genoa, Turin) are built in (from the `sev` crate, as AMD
//! publishes them), so a node may leave them out. **The ARK is pinned**: one in the evidence
//! is only accepted when it is byte for byte a pinned one, and an ASK in the evidence must be
//! signed by a pinned ARK.
//!
//! # What verification checks, in this order
//!
//! 1. The evidence decodes; the report is 1184 bytes of version 2 to 5, parses with the `sev`
//!    crate and re-encodes to the same bytes (reserved fields zero), and says it was signed
//!    with the VCEK by ECDSA P-384 with SHA-384.
//! 2. The chain: the ARK is pinned and self-signed ([`SnpVerifier::new`] checks that once),
//!    the ASK is signed by the ARK, the VCEK by the ASK (RSA-PSS, SHA-384).
//! 3. The VCEK's TCB extensions equal the report's REPORTED_TCB, and its hardware id equals
//!    the report's CHIP_ID (unless the guest masked it).
//! 4. The report's signature (bytes `0..0x2A0`) by the VCEK.
//! 5. The guest policy: DEBUG must be off. Checked *after* the signature, so a flipped DEBUG
//!    bit in a signed report shows as a bad signature; [`check_guest_policy`] is the check.
//! 6. The minimum TCB, when configured: each reported component at least the minimum.
//!
//! [`SnpVerifier::verify_evidence`] does 1–6 and returns the report; the binding to the
//! certificate (report data = SHA-512 of the claims, [`check_report_data`]) is a separate step
//! so that published real reports, whose report data nobody can choose, test 1–6.
//!
//! # Image hash
//!
//! The report's MEASUREMENT (48 bytes, the launch digest of the guest's initial memory) is the
//! image's identity; the image hash that the allow-lists (`image_hashes`) compare is
//! **SHA-256(MEASUREMENT)**, see [`snp_image_hash`].
//!
//! Not checked here: revocation (AMD's CRL for the ASK), the AMD certificates' validity
//! windows, and the report's VMPL, HOST_DATA, ID-key and family/image ids.

use std::fmt;

use serde::{Deserialize, Serialize};
use sev::certs::snp::builtin;
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use sha2::{Digest, Sha256};

/// The length of an SEV-SNP attestation report (versions 2 to 5).
pub const SNP_REPORT_LEN: usize = 1184;
/// Where the signature's R and S (72 little-endian bytes each) start; it covers the bytes
/// before.
const SIGNATURE_OFFSET: usize = 0x2A0;
/// Of each 72-byte scalar field, only the low 48 bytes can be non-zero for P-384.
const SCALAR_LEN: usize = 48;
/// SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384 (SEV-SNP ABI specification, Table "Signature
/// Algorithm Encodings").
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// The guest policy's DEBUG bit (bit 19).
const POLICY_DEBUG: u64 = 1 << 19;
/// The version of our evidence encoding.
const EVIDENCE_VERSION: u8 = 1;
/// The largest certificate the encoding carries; AMD's are under 2 KiB.
const MAX_CERTIFICATE_LEN: usize = 8192;

/// AMD's OIDs in VCEK certificates (VCEK Certificate and KDS Interface Specification).
mod vcek_oid {
    pub const BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
    pub const TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
    pub const SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
    pub const MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
    pub const FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
    pub const HARDWARE_ID: &str = "1.3.6.1.4.1.3704.1.4";
}

/// Why SNP evidence was refused. Each check has its own variant.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SnpError {
    /// The evidence extension is not our encoding (lengths, trailing bytes, kind).
    #[error("SNP evidence malformed: {0}")]
    EvidenceMalformed(String),
    /// The evidence encoding has a version this node does not know.
    #[error("SNP evidence format version {0} is not supported (this node knows 1)")]
    UnsupportedEvidenceVersion(u8),
    /// The report is not 1184 bytes.
    #[error("SNP report is {0} bytes, expected 1184")]
    ReportLength(usize),
    /// The report's VERSION is not 2 to 5.
    #[error("SNP report version {0} is not supported (2 to 5 are)")]
    UnsupportedReportVersion(u32),
    /// The `sev` crate could not parse the report (e.g. an unknown CPU model).
    #[error("SNP report malformed: {0}")]
    ReportMalformed(String),
    /// The report has non-zero bytes where the specification reserves zeros, in a field the
    /// `sev` parser reads past (it refuses the others itself, as [`SnpError::ReportMalformed`]).
    #[error("SNP report has non-zero reserved bytes")]
    NonCanonicalReport,
    /// The report says it was signed by another algorithm than ECDSA P-384 / SHA-384.
    #[error("SNP report signature algorithm {0} is not supported (1 = ECDSA P-384 is)")]
    UnsupportedSignatureAlgorithm(u32),
    /// The report was signed by another key than the VCEK (a VLEK, or none).
    #[error("SNP report is signed by key {0} (0 = VCEK is the only one accepted)")]
    UnsupportedSigningKey(u32),
    /// Hardware evidence without a VCEK certificate.
    #[error("SNP evidence carries no VCEK certificate")]
    VcekMissing,
    /// A certificate in the evidence is not DER X.509.
    #[error("SNP {which} certificate malformed: {reason}")]
    CertificateMalformed {
        /// "VCEK", "ASK" or "ARK".
        which: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The evidence carries an ARK that is none of the pinned ones.
    #[error("SNP evidence carries an ARK that is not pinned")]
    ArkNotPinned,
    /// A pinned ARK is not self-signed (a corrupt built-in certificate).
    #[error("the pinned {0} ARK is not self-signed")]
    ArkNotSelfSigned(ProductLine),
    /// The ASK is not signed by a pinned ARK.
    #[error("SNP ASK is not signed by a pinned ARK ({0})")]
    AskNotSignedByArk(String),
    /// The VCEK is not signed by the ASK of any pinned product line.
    #[error("SNP VCEK is not signed by the ASK of a pinned product line")]
    VcekNotSignedByAsk,
    /// The VCEK lacks one of AMD's TCB extensions.
    #[error("SNP VCEK lacks the {0} extension")]
    VcekTcbMissing(&'static str),
    /// The VCEK was issued for another TCB than the report's REPORTED_TCB.
    #[error("SNP VCEK is for TCB {vcek}, the report's REPORTED_TCB is {report}")]
    TcbMismatch {
        /// The TCB in the VCEK's extensions.
        vcek: SnpTcb,
        /// The report's REPORTED_TCB.
        report: SnpTcb,
    },
    /// The VCEK belongs to another chip than the report's CHIP_ID.
    #[error("SNP VCEK belongs to another chip than the report's CHIP_ID")]
    ChipIdMismatch,
    /// The signature field is not a canonical P-384 signature.
    #[error("SNP report signature malformed: {0}")]
    SignatureMalformed(String),
    /// The signature does not verify with the VCEK: the report was changed or is not this
    /// chip's.
    #[error("SNP report signature does not verify with the VCEK")]
    BadSignature,
    /// The guest policy allows debugging: the host can read the guest's memory.
    #[error("SNP guest policy {0:#x} allows debugging (DEBUG bit set)")]
    DebugPolicy(u64),
    /// The reported TCB is below the configured minimum.
    #[error("SNP reported TCB {reported} is below the minimum {minimum}")]
    TcbTooLow {
        /// The report's REPORTED_TCB.
        reported: SnpTcb,
        /// The configured minimum.
        minimum: SnpTcb,
    },
    /// The report data is not SHA-512 of this certificate's claims.
    #[error("SNP report is not bound to this certificate (report data mismatch)")]
    ReportDataMismatch,
    /// A `danger` fake was presented to the real `sev_snp` policy.
    #[error("fake SNP evidence is never accepted by the sev_snp policy")]
    FakeEvidenceRefused,
    /// The `danger_fake_snp` policy got real (or other) evidence.
    #[error("not fake SNP evidence")]
    NotFakeEvidence,
}

/// An AMD EPYC product line whose ARK and ASK are built in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductLine {
    /// 3rd generation EPYC.
    Milan,
    /// 4th generation EPYC.
    Genoa,
    /// 5th generation EPYC.
    Turin,
}

impl ProductLine {
    /// Every built-in product line.
    pub const ALL: [ProductLine; 3] = [ProductLine::Milan, ProductLine::Genoa, ProductLine::Turin];

    /// AMD's ARK and ASK for this line, PEM, as shipped by the `sev` crate.
    fn builtin_pem(self) -> (&'static [u8], &'static [u8]) {
        match self {
            ProductLine::Milan => (builtin::milan::ARK, builtin::milan::ASK),
            ProductLine::Genoa => (builtin::genoa::ARK, builtin::genoa::ASK),
            ProductLine::Turin => (builtin::turin::ARK, builtin::turin::ASK),
        }
    }
}

impl fmt::Display for ProductLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProductLine::Milan => "Milan",
            ProductLine::Genoa => "Genoa",
            ProductLine::Turin => "Turin",
        })
    }
}

/// A TCB version: the security version numbers of the platform's firmware components.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    /// The FMC firmware's SVN (Turin and later; absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
    /// The PSP bootloader's SVN.
    pub bootloader: u8,
    /// The PSP OS's SVN.
    pub tee: u8,
    /// The SNP firmware's SVN.
    pub snp: u8,
    /// The lowest microcode patch level of all cores.
    pub microcode: u8,
}

impl SnpTcb {
    /// Whether every component is at least `minimum`'s; `minimum.fmc` only applies to reports
    /// that have an FMC component.
    pub fn meets(&self, minimum: &SnpTcb) -> bool {
        let fmc_ok = match (self.fmc, minimum.fmc) {
            (Some(have), Some(need)) => have >= need,
            _ => true,
        };
        fmc_ok
            && self.bootloader >= minimum.bootloader
            && self.tee >= minimum.tee
            && self.snp >= minimum.snp
            && self.microcode >= minimum.microcode
    }
}

impl From<sev::firmware::host::TcbVersion> for SnpTcb {
    fn from(tcb: sev::firmware::host::TcbVersion) -> SnpTcb {
        SnpTcb {
            fmc: tcb.fmc,
            bootloader: tcb.bootloader,
            tee: tcb.tee,
            snp: tcb.snp,
            microcode: tcb.microcode,
        }
    }
}

impl fmt::Display for SnpTcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc={fmc} ")?;
        }
        write!(
            f,
            "bootloader={} tee={} snp={} microcode={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

/// Whether the evidence claims to come from AMD hardware or is a development fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// A report signed by the chip's VCEK.
    Hardware,
    /// An unsigned report made by [`danger::fake_report`]; proves nothing.
    DangerFake,
}

/// SNP evidence as carried in the certificate extension (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpEvidence {
    /// Hardware or fake.
    pub kind: EvidenceKind,
    /// The attestation report.
    pub report: Vec<u8>,
    /// The VCEK certificate (DER); empty in a fake.
    pub vcek_der: Vec<u8>,
    /// The ASK certificate (DER), when the node sends it.
    pub ask_der: Option<Vec<u8>>,
    /// The ARK certificate (DER), when the node sends it; only a pinned one is accepted.
    pub ark_der: Option<Vec<u8>>,
}

impl SnpEvidence {
    /// Hardware evidence: a report and the chip's VCEK (ASK and ARK left to the built-in ones).
    pub fn hardware(report: Vec<u8>, vcek_der: Vec<u8>) -> SnpEvidence {
        SnpEvidence {
            kind: EvidenceKind::Hardware,
            report,
            vcek_der,
            ask_der: None,
            ark_der: None,
        }
    }

    /// The extension's bytes. Fails only when a field is longer than the encoding allows.
    pub fn encode(&self) -> Result<Vec<u8>, SnpError> {
        let mut out = vec![
            EVIDENCE_VERSION,
            match self.kind {
                EvidenceKind::Hardware => 0,
                EvidenceKind::DangerFake => 1,
            },
        ];
        let empty = Vec::new();
        for (name, field) in [
            ("report", &self.report),
            ("VCEK", &self.vcek_der),
            ("ASK", self.ask_der.as_ref().unwrap_or(&empty)),
            ("ARK", self.ark_der.as_ref().unwrap_or(&empty)),
        ] {
            let len = u16::try_from(field.len()).map_err(|_| {
                SnpError::EvidenceMalformed(format!("{name} is {} bytes", field.len()))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        Ok(out)
    }

    /// Reads the extension's bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<SnpEvidence, SnpError> {
        let malformed = |what: &str| SnpError::EvidenceMalformed(what.to_string());
        let (&version, rest) = bytes.split_first().ok_or_else(|| malformed("empty"))?;
        if version != EVIDENCE_VERSION {
            return Err(SnpError::UnsupportedEvidenceVersion(version));
        }
        let (&kind, mut rest) = rest.split_first().ok_or_else(|| malformed("no kind"))?;
        let kind = match kind {
            0 => EvidenceKind::Hardware,
            1 => EvidenceKind::DangerFake,
            other => return Err(malformed(&format!("unknown kind {other}"))),
        };
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(4);
        for name in ["report", "VCEK", "ASK", "ARK"] {
            let (len, tail) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| malformed(&format!("{name} length cut off")))?;
            let len = usize::from(u16::from_be_bytes(*len));
            if tail.len() < len {
                return Err(malformed(&format!(
                    "{name} is {len} bytes but only {} remain",
                    tail.len()
                )));
            }
            if name != "report" && len > MAX_CERTIFICATE_LEN {
                return Err(malformed(&format!("{name} certificate is {len} bytes")));
            }
            let (field, tail) = tail.split_at(len);
            fields.push(field.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(malformed(&format!("{} trailing bytes", rest.len())));
        }
        let optional = |field: Vec<u8>| (!field.is_empty()).then_some(field);
        let mut fields = fields.into_iter();
        let mut next = || fields.next().unwrap_or_default();
        Ok(SnpEvidence {
            kind,
            report: next(),
            vcek_der: next(),
            ask_der: optional(next()),
            ark_der: optional(next()),
        })
    }
}

/// The parts of a parsed report that verification and policies use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpReport {
    /// VERSION (2 to 5).
    pub version: u32,
    /// The guest policy (POLICY).
    pub policy: u64,
    /// The VMPL the report was requested from.
    pub vmpl: u32,
    /// REPORT_DATA: SHA-512 of the certificate's claims.
    pub report_data: [u8; 64],
    /// MEASUREMENT: the launch digest, the image's identity.
    pub measurement: [u8; 48],
    /// HOST_DATA, set by the host at launch.
    pub host_data: [u8; 32],
    /// REPORTED_TCB: the TCB of the VCEK that signed the report.
    pub reported_tcb: SnpTcb,
    /// CHIP_ID (zero when the guest masked it).
    pub chip_id: [u8; 64],
    signature_algorithm: u32,
    signing_key: u32,
    parsed: AttestationReport,
}

impl SnpReport {
    /// The image hash: SHA-256 of MEASUREMENT.
    pub fn image_hash(&self) -> [u8; 32] {
        snp_image_hash(&self.measurement)
    }
}

/// The image hash of an SNP guest: SHA-256 of its 48-byte MEASUREMENT, so the `image_hashes`
/// allow-lists (32 bytes, as for TDX) apply to SNP peers too.
pub fn snp_image_hash(measurement: &[u8; 48]) -> [u8; 32] {
    Sha256::digest(measurement).into()
}

/// Parses a report with the `sev` crate and checks its form: 1184 bytes, version 2 to 5, and
/// no non-zero reserved byte (it must re-encode to the same bytes, so the signature the `sev`
/// crate checks over its re-encoding covers exactly the bytes received). Never panics.
pub fn parse_report(bytes: &[u8]) -> Result<SnpReport, SnpError> {
    if bytes.len() != SNP_REPORT_LEN {
        return Err(SnpError::ReportLength(bytes.len()));
    }
    let u32_at = |offset: usize| {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[offset..offset + 4]);
        u32::from_le_bytes(word)
    };
    let version = u32_at(0);
    if !(2..=5).contains(&version) {
        return Err(SnpError::UnsupportedReportVersion(version));
    }
    let parsed = AttestationReport::from_bytes(bytes)
        .map_err(|e| SnpError::ReportMalformed(e.to_string()))?;
    let reencoded = parsed
        .to_bytes()
        .map_err(|e| SnpError::ReportMalformed(e.to_string()))?;
    if reencoded.as_ref() != bytes {
        return Err(SnpError::NonCanonicalReport);
    }
    Ok(SnpReport {
        version,
        policy: parsed.policy.into(),
        vmpl: parsed.vmpl,
        report_data: parsed.report_data,
        measurement: parsed.measurement,
        host_data: parsed.host_data,
        reported_tcb: parsed.reported_tcb.into(),
        chip_id: parsed.chip_id,
        signature_algorithm: parsed.sig_algo,
        // KEY_INFO bits 4:2, SIGNING_KEY: 0 = VCEK, 1 = VLEK, 7 = none.
        signing_key: (u32_at(0x48) >> 2) & 0b111,
        parsed,
    })
}

/// Refuses a guest whose policy allows debugging (the host could read its memory).
pub fn check_guest_policy(report: &SnpReport) -> Result<(), SnpError> {
    if report.policy & POLICY_DEBUG != 0 {
        return Err(SnpError::DebugPolicy(report.policy));
    }
    Ok(())
}

/// Checks that the report vouches for `expected` (SHA-512 of the certificate's claims).
pub fn check_report_data(report: &SnpReport, expected: &[u8; 64]) -> Result<(), SnpError> {
    if &report.report_data != expected {
        return Err(SnpError::ReportDataMismatch);
    }
    Ok(())
}

mod cert_table;
pub mod danger;
mod verify;

pub use cert_table::CertificateTable;
pub use verify::{SnpVerifier, VerifiedSnpReport};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_and_refuses_every_cut() {
        let evidence = SnpEvidence {
            kind: EvidenceKind::Hardware,
            report: vec![1; SNP_REPORT_LEN],
            vcek_der: vec![2; 1300],
            ask_der: Some(vec![3; 5]),
            ark_der: None,
        };
        let bytes = evidence.encode().unwrap();
        assert_eq!(SnpEvidence::decode(&bytes).unwrap(), evidence);
        for cut in 0..bytes.len() {
            assert!(SnpEvidence::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            SnpEvidence::decode(&longer),
            Err(SnpError::EvidenceMalformed(_))
        ));
        let mut other_version = bytes;
        other_version[0] = 2;
        assert_eq!(
            SnpEvidence::decode(&other_version),
            Err(SnpError::UnsupportedEvidenceVersion(2))
        );
    }

    #[test]
    fn minimum_tcb_compares_every_component() {
        let tcb = SnpTcb {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        };
        assert!(tcb.meets(&tcb));
        assert!(tcb.meets(&SnpTcb::default()));
        for lower in [
            SnpTcb {
                bootloader: 4,
                ..tcb
            },
            SnpTcb { snp: 9, ..tcb },
            SnpTcb {
                microcode: 116,
                ..tcb
            },
            SnpTcb { tee: 1, ..tcb },
        ] {
            assert!(!tcb.meets(&lower), "{lower}");
        }
        // An FMC minimum only applies where the report has one.
        assert!(tcb.meets(&SnpTcb {
            fmc: Some(9),
            ..tcb
        }));
        let turin = SnpTcb {
            fmc: Some(1),
            ..tcb
        };
        assert!(!turin.meets(&SnpTcb {
            fmc: Some(2),
            ..tcb
        }));
    }
}
