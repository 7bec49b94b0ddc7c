//! Evidence that proves nothing, for development machines without SEV-SNP.

use super::{
    check_guest_policy, parse_report, EvidenceKind, SnpError, SnpEvidence, SnpReport,
    SNP_REPORT_LEN,
};

/// The CHIP_ID of fake reports (the `sev` crate refuses an all-zero one in version 2).
const FAKE_CHIP_ID: &[u8; 64] = b"danger: fake SEV-SNP report, proves nothing. danger: fake SEV!!!";

/// An unsigned version-2 report carrying `report_data` and `measurement`, with a policy
/// that does not allow debugging. Only the `danger_fake_snp` policy accepts it.
pub fn fake_report(report_data: &[u8; 64], measurement: &[u8; 48]) -> Vec<u8> {
    let mut report = vec![0u8; SNP_REPORT_LEN];
    report[0..4].copy_from_slice(&2u32.to_le_bytes());
    // POLICY: SMT allowed (bit 16) and the must-be-one bit 17; DEBUG off.
    report[8..16].copy_from_slice(&0x3_0000u64.to_le_bytes());
    report[0x50..0x90].copy_from_slice(report_data);
    report[0x90..0xC0].copy_from_slice(measurement);
    report[0x1A0..0x1E0].copy_from_slice(FAKE_CHIP_ID);
    report
}

/// Fake evidence around a [`fake_report`].
pub fn fake_evidence(report_data: &[u8; 64], measurement: &[u8; 48]) -> SnpEvidence {
    SnpEvidence {
        kind: EvidenceKind::DangerFake,
        report: fake_report(report_data, measurement),
        vcek_der: Vec::new(),
        ask_der: None,
        ark_der: None,
    }
}

/// Checks fake evidence the way the real verifier checks a report's form and policy (no
/// signature: there is none) and returns the report.
pub fn verify_fake(evidence: &SnpEvidence) -> Result<SnpReport, SnpError> {
    if evidence.kind != EvidenceKind::DangerFake
        || !evidence.vcek_der.is_empty()
        || evidence.ask_der.is_some()
        || evidence.ark_der.is_some()
    {
        return Err(SnpError::NotFakeEvidence);
    }
    let report = parse_report(&evidence.report)?;
    check_guest_policy(&report)?;
    Ok(report)
}
