//! Targets for `cocoon-attest`: certificates and everything they carry, receipts, sealing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cocoon_attest::gpu::{self, GpuEvidence};
use cocoon_attest::receipt::{ChargeStatement, Receipt};
use cocoon_attest::sealed::{self, RequestContext, WorkerKey};
use cocoon_attest::snp::{self, CertificateTable, SnpEvidence};
use cocoon_attest::tdx::{self, TdxMeasurements};
use cocoon_attest::{claims_of, parse_certificate, sealing_key_of, UserClaims};

/// The time the certificate targets check validity at (and the seed certificates are made
/// for), so that a run does not depend on the clock.
pub fn fuzz_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(FUZZ_NOW_SECS)
}

/// `decode(bytes)`, then `encode` must give bytes that decode and encode to themselves.
fn stable<T, E1, E2>(
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, E1>,
    encode: impl Fn(&T) -> Result<Vec<u8>, E2>,
    data: &[u8],
) -> Option<T>
where
    E2: std::fmt::Display,
    E1: std::fmt::Display,
{
    let value = decode(data).ok()?;
    let bytes = match encode(&value) {
        Ok(bytes) => bytes,
        // A decoded value the encoder refuses is a mismatch between the two sides.
        Err(error) => panic!("{what}: a decoded value does not encode: {error}"),
    };
    let again = decode(&bytes)
        .unwrap_or_else(|error| panic!("{what}: its own encoding does not decode: {error}"));
    let bytes_again = encode(&again).unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(bytes_again == bytes, "{what}: encoding is not stable");
    Some(value)
}

fn never<T>(value: T) -> Result<T, std::convert::Infallible> {
    Ok(value)
}

/// An RA-TLS certificate as a peer presents it: the shared checks, the claims, the sealing key,
/// then every extension's content through its own decoder.
pub(crate) fn certificate(data: &[u8]) {
    let Ok(facts) = parse_certificate(data, fuzz_now()) else {
        return;
    };
    let _ = claims_of(data, fuzz_now());
    let _ = sealing_key_of(data, fuzz_now());
    if let Some(quote) = &facts.quote {
        tdx_quote(quote);
    }
    if let Some(user_claims) = &facts.user_claims {
        claims(user_claims);
    }
    if let Some(evidence) = &facts.snp_evidence {
        snp(evidence);
    }
    if let Some(evidence) = &facts.gpu_evidence {
        gpu(evidence);
    }
}

/// TDX quotes (the DCAP parser), measurement blocks, the fake quote format.
pub(crate) fn tdx_quote(data: &[u8]) {
    let _ = tdx::parse_tdx_quote(data);
    if let Some(measurements) = TdxMeasurements::from_bytes(data) {
        assert!(
            measurements.to_bytes()[..] == data[..],
            "measurements round trip"
        );
    }
    let _ = cocoon_attest::provider::danger::parse_fake_quote(data);
}

/// SEV-SNP: the certificate extension's evidence, the report in it, the host's certificate
/// table.
pub(crate) fn snp(data: &[u8]) {
    if let Some(evidence) = stable(
        "SnpEvidence",
        SnpEvidence::decode,
        SnpEvidence::encode,
        data,
    ) {
        let _ = snp::parse_report(&evidence.report);
    }
    let _ = snp::parse_report(data);
    let _ = stable(
        "CertificateTable",
        CertificateTable::parse,
        |table: &CertificateTable| never(table.encode()),
        data,
    );
}

/// GPU evidence and the SPDM reports in it.
pub(crate) fn gpu(data: &[u8]) {
    if let Some(evidence) = stable(
        "GpuEvidence",
        GpuEvidence::decode,
        GpuEvidence::encode,
        data,
    ) {
        for (index, item) in evidence.gpus.iter().enumerate() {
            let _ = gpu::parse_report(index, &item.report);
        }
    }
    let _ = gpu::parse_report(0, data);
}

/// The user claims an RA-TLS certificate binds.
pub(crate) fn claims(data: &[u8]) {
    let _ = stable(
        "UserClaims",
        UserClaims::parse,
        |claims: &UserClaims| never(claims.serialize()),
        data,
    );
}

/// Receipts and charges: the exact wire form round-trips byte for byte; the base64 form as the
/// headers carry it; the signature check, which parses the certificate inside.
pub(crate) fn receipt(data: &[u8]) {
    if let Ok(receipt) = Receipt::from_bytes(data) {
        assert!(receipt.to_bytes() == data, "receipt round trip");
        let _ = receipt.verify_signature();
    }
    if let Ok(charge) = ChargeStatement::from_bytes(data) {
        assert!(charge.to_bytes() == data, "charge round trip");
        let _ = charge.verify_signature();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Receipt::from_base64(text);
        let _ = ChargeStatement::from_base64(text);
    }
}

/// The seed of the worker key the sealed target opens requests with (the seeds are sealed to
/// it).
pub const SEALING_SEED: [u8; 32] = [0x5e; 32];
/// The request context of the sealed seeds.
pub const SEALING_MODEL: &str = "fuzz-model";

/// Sealing: a worker opening a request, the plaintext's framing, a client opening an answer.
pub(crate) fn sealed(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let key = WorkerKey::from_seed(&SEALING_SEED);
            let context = RequestContext {
                model: SEALING_MODEL,
                request_id: [7; 32],
            };
            if let Ok((plain, _)) = key.open_request(&context, rest) {
                let _ = sealed::fresh_request(&plain, FUZZ_NOW_SECS);
            }
        }
        1 => {
            if let Ok(request) = sealed::fresh_request(rest, FUZZ_NOW_SECS) {
                crate::proto::tl_round_trip::<cocoon_proto::HttpRequest>(request);
            }
        }
        _ => {
            // An answer stream under keys the fuzzer cannot know: the record framing and the
            // refusal paths, fed in pieces.
            let key = WorkerKey::from_seed(&SEALING_SEED);
            let context = RequestContext {
                model: SEALING_MODEL,
                request_id: [7; 32],
            };
            let Ok((_, mut opener)) = sealed::seal_request(&key.public_key(), &context, b"") else {
                return;
            };
            let (pieces, _) = crate::pieces(rest);
            let mut out = Vec::new();
            for piece in pieces {
                if opener.push(piece, &mut out).is_err() {
                    break;
                }
            }
            let _ = opener.finish();
        }
    }
}

/// [`fuzz_now`] in Unix seconds.
pub const FUZZ_NOW_SECS: u64 = 1_800_000_000;
