//! Intel TDX quote facts — version, TEE type, measurement registers and report data — read
//! from a raw quote without verifying anything. `dcap` does the verification.

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// TEE type of a TDX quote in the quote header (`0x81`); SGX quotes carry `0`.
pub const TEE_TYPE_TDX: u32 = 0x81;

/// Length of the quote header that every DCAP quote starts with.
const QUOTE_HEADER_LEN: usize = 48;

/// Length of one measurement register (SHA-384).
const MEASUREMENT_LEN: usize = 48;

/// The measurement registers of a TD, as its TD report states them.
///
/// Serializes each register as a lower-case hex string (and `rtmr` as a list of four), so
/// that `inspect` output and JSON logs can be compared with the reference's hex by eye.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TdxMeasurements {
    /// MRTD: the initial contents of the TD (firmware), measured at build time.
    #[serde(serialize_with = "serialize_hex")]
    pub mrtd: [u8; 48],
    /// MRCONFIGID: software-defined configuration id set by the host at TD creation.
    #[serde(serialize_with = "serialize_hex")]
    pub mrconfigid: [u8; 48],
    /// MROWNER: software-defined id of the TD's owner.
    #[serde(serialize_with = "serialize_hex")]
    pub mrowner: [u8; 48],
    /// MROWNERCONFIG: software-defined owner configuration.
    #[serde(serialize_with = "serialize_hex")]
    pub mrownerconfig: [u8; 48],
    /// RTMR0..RTMR3: runtime-extendable measurement registers (firmware config, kernel,
    /// command line and initrd, application).
    #[serde(serialize_with = "serialize_hex_list")]
    pub rtmr: [[u8; 48]; 4],
}

/// Serializes a byte array as lower-case hex.
pub(crate) fn serialize_hex<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

fn serialize_hex_list<S: Serializer>(
    registers: &[[u8; 48]; 4],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(registers.len()))?;
    for register in registers {
        seq.serialize_element(&hex::encode(register))?;
    }
    seq.end()
}

impl TdxMeasurements {
    /// All registers zero, which is what a fake TEE reports.
    pub fn zero() -> Self {
        TdxMeasurements {
            mrtd: [0; 48],
            mrconfigid: [0; 48],
            mrowner: [0; 48],
            mrownerconfig: [0; 48],
            rtmr: [[0; 48]; 4],
        }
    }

    /// SHA-256(MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3 ‖
    /// 64 zero bytes) — the reference's image hash.
    ///
    /// The 64 zero bytes stand where the reference hashes a (here always empty) 64-byte
    /// field after the registers; dropping them would change every published image hash.
    pub fn image_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.to_bytes());
        hasher.update([0u8; 64]);
        hasher.finalize().into()
    }

    /// The 384 bytes MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0..3, the order of
    /// [`image_hash`](Self::image_hash); the fake evidence carries them in this form too.
    pub fn to_bytes(&self) -> [u8; 384] {
        let mut out = [0u8; 384];
        let registers = [
            &self.mrtd,
            &self.mrconfigid,
            &self.mrowner,
            &self.mrownerconfig,
            &self.rtmr[0],
            &self.rtmr[1],
            &self.rtmr[2],
            &self.rtmr[3],
        ];
        for (chunk, register) in out.chunks_exact_mut(MEASUREMENT_LEN).zip(registers) {
            chunk.copy_from_slice(register);
        }
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes); `None` unless `bytes` is exactly 384
    /// bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 8 * MEASUREMENT_LEN {
            return None;
        }
        let mut registers = [[0u8; 48]; 8];
        for (register, chunk) in registers
            .iter_mut()
            .zip(bytes.chunks_exact(MEASUREMENT_LEN))
        {
            register.copy_from_slice(chunk);
        }
        let [mrtd, mrconfigid, mrowner, mrownerconfig, rtmr0, rtmr1, rtmr2, rtmr3] = registers;
        Some(TdxMeasurements {
            mrtd,
            mrconfigid,
            mrowner,
            mrownerconfig,
            rtmr: [rtmr0, rtmr1, rtmr2, rtmr3],
        })
    }
}

/// The facts of a TDX quote that policies look at. Nothing here is verified: a
/// `ParsedQuote` only says what the quote *claims*; [`crate::dcap::DcapVerifier`] says
/// whether Intel stands behind it.
///
/// Serializes `report_data` as hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParsedQuote {
    /// Quote format version: 4, or 5 for TDX 1.5 quotes.
    pub version: u16,
    /// TEE type from the header; always [`TEE_TYPE_TDX`] for a parsed quote.
    pub tee_type: u32,
    /// The TD's measurement registers.
    pub measurements: TdxMeasurements,
    /// The 64 bytes the TD bound into the quote; for RA-TLS, SHA-512 of the user claims.
    #[serde(serialize_with = "serialize_hex")]
    pub report_data: [u8; 64],
}

/// Why bytes are not a TDX quote we can read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// Shorter than the 48-byte quote header.
    #[error("quote is {len} bytes, shorter than the 48-byte header")]
    TooShort {
        /// The length we got.
        len: usize,
    },
    /// The header names a quote version other than 4 or 5 (SGX-only v3 quotes included).
    #[error("unsupported quote version {0} (TDX quotes are version 4 or 5)")]
    UnsupportedVersion(u16),
    /// The header says the quote is not from a TD (an SGX enclave quote, or an unknown TEE).
    #[error("quote TEE type is {0:#x}, not TDX (0x81)")]
    NotTdx(u32),
    /// The quote's structure does not decode (truncated, bad lengths, unknown body type).
    #[error("malformed quote: {0}")]
    Malformed(String),
}

/// Reads the header and TD report of a v4 or v5 TDX quote. SGX quotes and garbage are
/// refused with an error, never a panic.
///
/// Trailing bytes after the authentication data are tolerated, as Intel's QVL and
/// dcap-qvl tolerate them: some quote generators hand out zero-padded buffers, and the
/// bytes are covered by no signature, so they cannot change what the quote says.
pub fn parse_tdx_quote(raw: &[u8]) -> Result<ParsedQuote, QuoteError> {
    parse_tdx_quote_full(raw).map(|(parsed, _)| parsed)
}

/// [`parse_tdx_quote`], also returning dcap-qvl's decoded quote so that the verifier does
/// not decode it twice (it needs the PCK certificate chain to pick collateral).
pub(crate) fn parse_tdx_quote_full(
    raw: &[u8],
) -> Result<(ParsedQuote, dcap_qvl::quote::Quote), QuoteError> {
    // The header is checked by hand first so that an SGX quote gets the precise `NotTdx`
    // answer instead of a decoder message.
    let header = raw
        .get(..QUOTE_HEADER_LEN)
        .ok_or(QuoteError::TooShort { len: raw.len() })?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if tee_type != TEE_TYPE_TDX {
        return Err(QuoteError::NotTdx(tee_type));
    }
    if version != 4 && version != 5 {
        return Err(QuoteError::UnsupportedVersion(version));
    }

    let quote =
        dcap_qvl::quote::Quote::parse(raw).map_err(|e| QuoteError::Malformed(format!("{e:#}")))?;
    // A v5 quote may carry an SGX enclave body even with a TDX header; `as_td10` covers TD
    // 1.0, 1.5 and 1.5ex bodies, whose first 584 bytes are the same TD report.
    let td = quote
        .report
        .as_td10()
        .ok_or_else(|| QuoteError::Malformed("TDX header but no TD report body".to_string()))?;
    let parsed = ParsedQuote {
        version,
        tee_type,
        measurements: TdxMeasurements {
            mrtd: td.mr_td,
            mrconfigid: td.mr_config_id,
            mrowner: td.mr_owner,
            mrownerconfig: td.mr_owner_config,
            rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
        },
        report_data: td.report_data,
    };
    Ok((parsed, quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_round_trip_through_bytes() {
        let mut m = TdxMeasurements::zero();
        m.mrtd[0] = 1;
        m.rtmr[3][47] = 9;
        let bytes = m.to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[383], 9);
        assert_eq!(TdxMeasurements::from_bytes(&bytes), Some(m));
        assert_eq!(TdxMeasurements::from_bytes(&bytes[..383]), None);
    }

    #[test]
    fn image_hash_of_zero_measurements_is_sha256_of_448_zero_bytes() {
        let expected: [u8; 32] = Sha256::digest([0u8; 448]).into();
        assert_eq!(TdxMeasurements::zero().image_hash(), expected);
    }

    #[test]
    fn header_checks_come_first() {
        assert_eq!(
            parse_tdx_quote(&[0; 10]),
            Err(QuoteError::TooShort { len: 10 })
        );
        let mut sgx = [0u8; 48];
        sgx[0] = 3;
        assert_eq!(parse_tdx_quote(&sgx), Err(QuoteError::NotTdx(0)));
        let mut v6 = [0u8; 48];
        v6[0] = 6;
        v6[4] = 0x81;
        assert_eq!(parse_tdx_quote(&v6), Err(QuoteError::UnsupportedVersion(6)));
    }

    #[test]
    fn serializes_registers_as_hex() {
        let json = serde_json::to_value(TdxMeasurements::zero()).unwrap();
        assert_eq!(json["mrtd"], "00".repeat(48));
        assert_eq!(json["rtmr"][3], "00".repeat(48));
    }
}
