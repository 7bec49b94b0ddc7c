//! The verifier: pinned AMD roots, the chain, the VCEK's TCB, the signature and the policy.

use sev::certs::snp::{Certificate, Verifiable};

use super::{
    check_guest_policy, check_report_data, parse_report, vcek_oid, EvidenceKind, ProductLine,
    SnpError, SnpEvidence, SnpReport, SnpTcb, SCALAR_LEN, SIGNATURE_OFFSET,
    SIG_ALGO_ECDSA_P384_SHA384,
};

/// One product line's pinned certificates.
#[derive(Clone, Debug)]
struct PinnedLine {
    line: ProductLine,
    ark: Certificate,
    ask: Certificate,
}

/// Verifies SNP evidence against pinned AMD roots.
#[derive(Clone, Debug)]
pub struct SnpVerifier {
    lines: Vec<PinnedLine>,
    minimum_tcb: Option<SnpTcb>,
}

/// A report that passed [`SnpVerifier::verify_evidence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSnpReport {
    /// The report.
    pub report: SnpReport,
    /// The product line whose chain vouched for it.
    pub product_line: ProductLine,
}

impl SnpVerifier {
    /// Pins the built-in ARK and ASK of `lines` (checking that each ARK is self-signed and
    /// signs its ASK) and requires `minimum_tcb` when given.
    pub fn new(
        lines: &[ProductLine],
        minimum_tcb: Option<SnpTcb>,
    ) -> Result<SnpVerifier, SnpError> {
        let mut pinned = Vec::new();
        for &line in lines {
            let (ark_pem, ask_pem) = line.builtin_pem();
            let parse = |which: &'static str, pem: &[u8]| {
                Certificate::from_pem(pem).map_err(|e| SnpError::CertificateMalformed {
                    which,
                    reason: e.to_string(),
                })
            };
            let ark = parse("ARK", ark_pem)?;
            let ask = parse("ASK", ask_pem)?;
            if (&ark, &ark).verify().is_err() {
                return Err(SnpError::ArkNotSelfSigned(line));
            }
            (&ark, &ask)
                .verify()
                .map_err(|e| SnpError::AskNotSignedByArk(format!("built-in {line} ASK: {e}")))?;
            pinned.push(PinnedLine { line, ark, ask });
        }
        Ok(SnpVerifier {
            lines: pinned,
            minimum_tcb,
        })
    }

    /// The product lines pinned.
    pub fn product_lines(&self) -> Vec<ProductLine> {
        self.lines.iter().map(|l| l.line).collect()
    }

    /// Checks steps 1–6 of the module documentation (everything but the report data) and
    /// returns the report.
    pub fn verify_evidence(&self, evidence: &SnpEvidence) -> Result<VerifiedSnpReport, SnpError> {
        if evidence.kind == EvidenceKind::DangerFake {
            return Err(SnpError::FakeEvidenceRefused);
        }
        let report = parse_report(&evidence.report)?;
        if report.signature_algorithm != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(SnpError::UnsupportedSignatureAlgorithm(
                report.signature_algorithm,
            ));
        }
        if report.signing_key != 0 {
            return Err(SnpError::UnsupportedSigningKey(report.signing_key));
        }
        if evidence.vcek_der.is_empty() {
            return Err(SnpError::VcekMissing);
        }
        let vcek = parse_der("VCEK", &evidence.vcek_der)?;
        let product_line = self.verify_chain(evidence, &vcek)?;
        let (vcek_tcb, hardware_id) = vcek_extensions(&evidence.vcek_der)?;
        if vcek_tcb != report.reported_tcb {
            return Err(SnpError::TcbMismatch {
                vcek: vcek_tcb,
                report: report.reported_tcb,
            });
        }
        check_chip_id(&hardware_id, &report.chip_id)?;
        check_signature_form(&evidence.report)?;
        (&vcek, &report.parsed)
            .verify()
            .map_err(|_| SnpError::BadSignature)?;
        check_guest_policy(&report)?;
        if let Some(minimum) = &self.minimum_tcb {
            if !report.reported_tcb.meets(minimum) {
                return Err(SnpError::TcbTooLow {
                    reported: report.reported_tcb,
                    minimum: *minimum,
                });
            }
        }
        Ok(VerifiedSnpReport {
            report,
            product_line,
        })
    }

    /// [`Self::verify_evidence`], then the report data must be `expected_report_data`.
    pub fn verify_bound(
        &self,
        evidence: &SnpEvidence,
        expected_report_data: &[u8; 64],
    ) -> Result<VerifiedSnpReport, SnpError> {
        let verified = self.verify_evidence(evidence)?;
        check_report_data(&verified.report, expected_report_data)?;
        Ok(verified)
    }

    /// ARK (pinned) → ASK → VCEK; returns the product line that vouches for the VCEK.
    fn verify_chain(
        &self,
        evidence: &SnpEvidence,
        vcek: &Certificate,
    ) -> Result<ProductLine, SnpError> {
        // An ARK from the peer only narrows the choice to the pinned line it equals (the
        // whole certificate, signature included); it is never a root of its own.
        let lines: Vec<&PinnedLine> = match &evidence.ark_der {
            Some(ark_der) => {
                let ark = parse_der("ARK", ark_der)?;
                let lines: Vec<_> = self.lines.iter().filter(|l| l.ark == ark).collect();
                if lines.is_empty() {
                    return Err(SnpError::ArkNotPinned);
                }
                lines
            }
            None => self.lines.iter().collect(),
        };
        let candidates: Vec<(ProductLine, Certificate)> = match &evidence.ask_der {
            Some(ask_der) => {
                let ask = parse_der("ASK", ask_der)?;
                let line = lines
                    .iter()
                    .find(|l| (&l.ark, &ask).verify().is_ok())
                    .ok_or_else(|| {
                        SnpError::AskNotSignedByArk(format!(
                            "tried {}",
                            lines
                                .iter()
                                .map(|l| l.line.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                vec![(line.line, ask)]
            }
            None => lines.iter().map(|l| (l.line, l.ask.clone())).collect(),
        };
        candidates
            .iter()
            .find(|(_, ask)| (ask, vcek).verify().is_ok())
            .map(|(line, _)| *line)
            .ok_or(SnpError::VcekNotSignedByAsk)
    }
}

fn parse_der(which: &'static str, der: &[u8]) -> Result<Certificate, SnpError> {
    Certificate::from_der(der).map_err(|e| SnpError::CertificateMalformed {
        which,
        reason: e.to_string(),
    })
}

/// The TCB and hardware id in a VCEK's extensions.
fn vcek_extensions(der: &[u8]) -> Result<(SnpTcb, Vec<u8>), SnpError> {
    use x509_cert_sev::der::Decode;
    // Parsed by the same parser that the `sev` crate verified the signature with.
    let cert =
        x509_cert_sev::Certificate::from_der(der).map_err(|e| SnpError::CertificateMalformed {
            which: "VCEK",
            reason: e.to_string(),
        })?;
    let extensions = cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    let value = |oid: &str| {
        extensions
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
    };
    let svn = |oid: &str, name: &'static str| -> Result<Option<u8>, SnpError> {
        match value(oid) {
            None => Ok(None),
            Some(bytes) => {
                der_small_integer(bytes)
                    .map(Some)
                    .ok_or(SnpError::CertificateMalformed {
                        which: "VCEK",
                        reason: format!("{name} extension is not a small INTEGER"),
                    })
            }
        }
    };
    let required =
        |oid: &str, name: &'static str| svn(oid, name)?.ok_or(SnpError::VcekTcbMissing(name));
    let tcb = SnpTcb {
        fmc: svn(vcek_oid::FMC, "fmcSPL")?,
        bootloader: required(vcek_oid::BOOTLOADER, "blSPL")?,
        tee: required(vcek_oid::TEE, "teeSPL")?,
        snp: required(vcek_oid::SNP, "snpSPL")?,
        microcode: required(vcek_oid::MICROCODE, "ucodeSPL")?,
    };
    // The extension's value is the raw id (64 bytes; 8 on Turin), not a nested DER value.
    let hardware_id = value(vcek_oid::HARDWARE_ID)
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .ok_or(SnpError::VcekTcbMissing("hwID"))?
        .to_vec();
    Ok((tcb, hardware_id))
}

/// A DER INTEGER between 0 and 255 (`02 01 xx`, or `02 02 00 xx` for 128..=255).
fn der_small_integer(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [0x02, 0x01, value] if *value < 0x80 => Some(*value),
        [0x02, 0x02, 0x00, value] if *value >= 0x80 => Some(*value),
        _ => None,
    }
}

/// The VCEK's hardware id must be the report's CHIP_ID (Turin's 8-byte id is CHIP_ID's first
/// 8 bytes, the rest zero). A masked CHIP_ID (all zero) is not compared.
fn check_chip_id(hardware_id: &[u8], chip_id: &[u8; 64]) -> Result<(), SnpError> {
    if chip_id.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let matches = hardware_id.len() <= chip_id.len()
        && chip_id[..hardware_id.len()] == *hardware_id
        && chip_id[hardware_id.len()..].iter().all(|&b| b == 0);
    if !matches {
        return Err(SnpError::ChipIdMismatch);
    }
    Ok(())
}

/// R and S are 72-byte little-endian fields of which P-384 uses 48; the `sev` crate reads
/// only those, so the rest must be zero for the signature bytes to be the ones verified.
fn check_signature_form(report: &[u8]) -> Result<(), SnpError> {
    for (name, start) in [("R", SIGNATURE_OFFSET), ("S", SIGNATURE_OFFSET + 72)] {
        let field = report
            .get(start..start + 72)
            .ok_or_else(|| SnpError::SignatureMalformed("cut off".into()))?;
        if field[SCALAR_LEN..].iter().any(|&b| b != 0) {
            return Err(SnpError::SignatureMalformed(format!(
                "{name} has non-zero bytes past 48"
            )));
        }
        if field[..SCALAR_LEN].iter().all(|&b| b == 0) {
            return Err(SnpError::SignatureMalformed(format!("{name} is zero")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integers_in_both_der_forms() {
        assert_eq!(der_small_integer(&[2, 1, 0x73]), Some(0x73));
        assert_eq!(der_small_integer(&[2, 2, 0, 0xd5]), Some(0xd5));
        assert_eq!(der_small_integer(&[2, 1, 0x80]), None, "negative");
        assert_eq!(der_small_integer(&[2, 2, 0, 0x10]), None, "not minimal");
        assert_eq!(der_small_integer(&[4, 1, 1]), None);
    }

    #[test]
    fn the_hardware_id_must_be_the_chip_id() {
        let chip = [0xab; 64];
        assert_eq!(check_chip_id(&[0xab; 64], &chip), Ok(()));
        let mut other = [0xab; 64];
        other[63] = 0;
        assert_eq!(check_chip_id(&other, &chip), Err(SnpError::ChipIdMismatch));
        // A masked CHIP_ID is not compared; Turin's 8-byte id is the CHIP_ID's prefix.
        assert_eq!(check_chip_id(&other, &[0; 64]), Ok(()));
        let mut turin_chip = [0u8; 64];
        turin_chip[..8].copy_from_slice(&[5; 8]);
        assert_eq!(check_chip_id(&[5; 8], &turin_chip), Ok(()));
        assert_eq!(
            check_chip_id(&[5; 8], &[5; 64]),
            Err(SnpError::ChipIdMismatch)
        );
    }

    #[test]
    fn a_certificate_without_amd_tcb_extensions_is_no_vcek() {
        let ask = Certificate::from_pem(sev::certs::snp::builtin::milan::ASK)
            .and_then(|c| c.to_der())
            .unwrap();
        assert_eq!(
            vcek_extensions(&ask),
            Err(SnpError::VcekTcbMissing("blSPL"))
        );
        assert!(matches!(
            vcek_extensions(&[0x30, 0x00]),
            Err(SnpError::CertificateMalformed { which: "VCEK", .. })
        ));
    }
}
