//! GPU evidence that proves nothing, for development machines without NVIDIA
//! confidential-computing GPUs.

use super::{
    check_nonce, parse_report, GpuAttestation, GpuError, GpuEvidence, GpuEvidenceKind, GpuReport,
    SPDM_GET_MEASUREMENTS, SPDM_MEASUREMENTS, SPDM_SIGNATURE_LEN, SPDM_VERSION_1_1,
};

/// The responder nonce of fake reports: says what they are.
const FAKE_RESPONDER_NONCE: &[u8; 32] = b"danger: fake GPU, proves nothing";
/// DMTFSpecMeasurementValueType of the fake measurements: a raw bit stream (bit 7) of
/// "immutable ROM" (0): what the fake is made of, not a digest.
const FAKE_VALUE_TYPE: u8 = 0x80;

/// An unsigned SPDM 1.1 GET_MEASUREMENTS request and response answering `nonce`, with one
/// measurement block holding `measurement` (so development networks can exercise GPU
/// allow-lists) and a zero signature. Only the `danger_fake_gpu` policy accepts it.
pub fn fake_report(nonce: &[u8; 32], measurement: &[u8]) -> Vec<u8> {
    // Request: version, code, param1 (signature requested), param2 (all blocks), nonce, slot.
    let mut report = vec![SPDM_VERSION_1_1, SPDM_GET_MEASUREMENTS, 1, 0xFF];
    report.extend_from_slice(nonce);
    report.push(0);
    // One DMTF measurement block.
    let value = &measurement[..measurement.len().min(usize::from(u16::MAX) - 3)];
    let mut record = vec![1, 1];
    record.extend_from_slice(&((value.len() + 3) as u16).to_le_bytes());
    record.push(FAKE_VALUE_TYPE);
    record.extend_from_slice(&(value.len() as u16).to_le_bytes());
    record.extend_from_slice(value);
    // Response: version, code, params, block count, record length (24-bit), record, nonce,
    // no opaque data, signature.
    report.extend_from_slice(&[SPDM_VERSION_1_1, SPDM_MEASUREMENTS, 0, 0, 1]);
    report.extend_from_slice(&(record.len() as u32).to_le_bytes()[..3]);
    report.extend_from_slice(&record);
    report.extend_from_slice(FAKE_RESPONDER_NONCE);
    report.extend_from_slice(&0u16.to_le_bytes());
    report.extend_from_slice(&[0; SPDM_SIGNATURE_LEN]);
    report
}

/// Fake evidence of `count` GPUs (1 to 8), each a [`fake_report`] answering `nonce`.
pub fn fake_evidence(nonce: &[u8; 32], measurement: &[u8], count: usize) -> GpuEvidence {
    GpuEvidence {
        kind: GpuEvidenceKind::DangerFake,
        gpus: (0..count)
            .map(|_| GpuAttestation {
                report: fake_report(nonce, measurement),
                chain: Vec::new(),
            })
            .collect(),
    }
}

/// Checks fake evidence the way the real verifier checks a report's form and nonce (no chain
/// and no signature: there are none) and returns the reports.
pub fn verify_fake(
    evidence: &GpuEvidence,
    expected_nonce: &[u8; 32],
) -> Result<Vec<GpuReport>, GpuError> {
    if evidence.kind != GpuEvidenceKind::DangerFake
        || evidence.gpus.iter().any(|gpu| !gpu.chain.is_empty())
    {
        return Err(GpuError::NotFakeEvidence);
    }
    evidence
        .gpus
        .iter()
        .enumerate()
        .map(|(gpu, attestation)| {
            let report = parse_report(gpu, &attestation.report)?;
            check_nonce(gpu, &report, expected_nonce)?;
            Ok(report)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_report_parses_as_spdm_and_carries_its_measurement() {
        let report = parse_report(0, &fake_report(&[3; 32], b"fake firmware")).unwrap();
        assert_eq!(report.requester_nonce, [3; 32]);
        assert_eq!(report.measurements.len(), 1);
        assert_eq!(report.measurements[0].value, b"fake firmware");
        let evidence = fake_evidence(&[3; 32], b"x", 2);
        assert_eq!(verify_fake(&evidence, &[3; 32]).unwrap().len(), 2);
        assert_eq!(
            verify_fake(&evidence, &[4; 32]),
            Err(GpuError::NonceMismatch(0))
        );
    }
}
