//! Signed receipts: verifiable metering of a sealed request (issue 14).
//!
//! When a worker finishes a sealed request it signs, with the Ed25519 key of its attested RA-TLS
//! certificate, what it did: which request (SHA-256 of the sealed bytes it opened), what it
//! answered (a salted SHA-256 of the answer's plaintext, the salt known only to the client and
//! the worker), the model, the token counts it reported for billing, its coefficient and the
//! time. The receipt carries that certificate, so it can be checked on its own, later and
//! elsewhere: the signature against the certificate's key, the certificate's attestation
//! against a policy. The proxy relays it to the client unchanged; the client checks it against
//! its own request and answer and against what the proxy charged, so a charge above the
//! receipt is an over-charge the client can prove.
//!
//! Wire form (all integers little-endian):
//!
//! | field | bytes |
//! |---|---|
//! | version (1) | 1 |
//! | worker key (the certificate's Ed25519 key) | 32 |
//! | client request id | 32 |
//! | request hash: SHA-256 of the sealed request | 32 |
//! | answer hash: SHA-256(salt ‖ answer plaintext) | 32 |
//! | prompt, cached, completion, reasoning, total tokens (as billed) | 5 × 8 |
//! | coefficient (1000 = 1.0×) | 4 |
//! | finished at (Unix seconds) | 8 |
//! | model length, model (UTF-8, at most [`MAX_MODEL_LEN`]) | 2 + n |
//! | signature over `"cocoon receipt v1\0"` ‖ all of the above | 64 |
//! | certificate length, certificate DER (at most [`MAX_CERTIFICATE_LEN`]) | 4 + n |
//!
//! The proxy answers with its own signed **charge** ([`ChargeStatement`]), made with the key of
//! its attested certificate: the request id, SHA-256 of the worker's receipt, the tokens it
//! charged the client and the time, in the same frame (version, fields, signature over
//! `"cocoon charge v1\0"` ‖ the fields, certificate). A charge above its receipt is then an
//! over-charge signed by the proxy itself.

use std::time::SystemTime;

use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

use crate::cert::{certificate_claims, parse_certificate};

/// The receipt format this code writes and reads.
pub const VERSION: u8 = 1;
/// Longest model name a receipt carries.
pub const MAX_MODEL_LEN: usize = 256;
/// Largest certificate a receipt carries (a TDX quote with its PCK chain is about 5 KiB).
pub const MAX_CERTIFICATE_LEN: usize = 64 << 10;
const SIGNATURE_LEN: usize = 64;

/// Token counts as the worker reported them for billing (after its coefficient).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiptTokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Cached prompt tokens.
    pub cached: u64,
    /// Completion tokens.
    pub completion: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Total tokens.
    pub total: u64,
}

impl ReceiptTokens {
    /// From a usage report's four categories (prompt, cached, completion, reasoning) and its
    /// total.
    pub fn from_categories(
        [prompt, cached, completion, reasoning]: [u64; 4],
        total: u64,
    ) -> ReceiptTokens {
        ReceiptTokens {
            prompt,
            cached,
            completion,
            reasoning,
            total,
        }
    }
}

/// What a worker states about one sealed request it served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptBody {
    /// The Ed25519 key of the worker's certificate (the one that signs).
    pub worker_key: [u8; 32],
    /// The client's id of the request (bound into the sealing).
    pub client_request_id: [u8; 32],
    /// SHA-256 of the sealed request as the worker opened it.
    pub request_hash: [u8; 32],
    /// SHA-256 of the answer-salt and the answer's plaintext ([`crate::sealed`]).
    pub answer_hash: [u8; 32],
    /// The model the request named.
    pub model: String,
    /// The tokens the worker reported for billing.
    pub tokens: ReceiptTokens,
    /// The worker's price coefficient (1000 = 1.0×).
    pub coefficient: u32,
    /// When the worker finished (Unix seconds).
    pub finished_at: u64,
}

/// A signed statement with the certificate whose key signed it: a worker's [`Receipt`] or a
/// proxy's [`ChargeStatement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<B> {
    /// What it states.
    pub body: B,
    /// Ed25519 signature by the body's key.
    pub signature: [u8; 64],
    /// DER of the signer's RA-TLS certificate.
    pub certificate: Vec<u8>,
}

/// A worker's signed receipt.
pub type Receipt = Signed<ReceiptBody>;
/// A proxy's signed charge.
pub type ChargeStatement = Signed<ChargeBody>;

/// What a proxy states about what it charged for one sealed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeBody {
    /// The Ed25519 key of the proxy's certificate (the one that signs).
    pub proxy_key: [u8; 32],
    /// The client's id of the request.
    pub client_request_id: [u8; 32],
    /// SHA-256 of the worker's receipt ([`Signed::hash`]) the charge is for.
    pub receipt_hash: [u8; 32],
    /// The tokens charged to the client.
    pub tokens: ReceiptTokens,
    /// When the proxy charged it (Unix seconds).
    pub charged_at: u64,
}

/// The body of a signed statement: how it is written, read and signed.
pub trait Statement: Sized {
    /// What the signature covers first.
    const DOMAIN: &'static [u8];
    /// What the statement is, in errors.
    const NAME: &'static str;
    /// The fields, after the version byte.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads what [`Statement::write`] wrote.
    fn read(r: &mut Reader<'_>) -> Result<Self, ReceiptError>;
    /// The key that must have signed.
    fn key(&self) -> [u8; 32];
    /// Sets the signing key.
    fn set_key(&mut self, key: [u8; 32]);
    /// When it was signed (Unix seconds).
    fn time(&self) -> u64;
}

/// Why a receipt was refused. Each failure has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt: cut short, too long, an unknown version or a field out of range.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// The signature does not verify under the receipt's key: changed after signing.
    #[error("the receipt's signature does not verify: it was changed after the worker signed it")]
    Signature,
    /// The certificate in the receipt is not the signing key's, or does not parse.
    #[error("the receipt's certificate {0}")]
    Certificate(String),
    /// Signed by another key than the worker the request was sealed to.
    #[error("the receipt is signed by another worker (key {found}) than the one the request was sealed to")]
    ForeignKey {
        /// The key that signed, hex.
        found: String,
    },
    /// For another request.
    #[error("the receipt is for another request")]
    Request,
    /// For another answer than the one received.
    #[error("the receipt's answer hash is not the answer's: the answer received is not the one the worker signed")]
    Answer,
    /// For another model.
    #[error("the receipt names model '{0}', not the request's")]
    Model(String),
    /// The proxy's signed charge states other tokens than it told the client.
    #[error("the proxy's signed charge states {signed} tokens, but it told the client {told}")]
    ChargeMismatch {
        /// Tokens in the signed charge.
        signed: u64,
        /// Tokens in the final info.
        told: u64,
    },
    /// A receipt came without the proxy's signed charge for it.
    #[error("the proxy relayed the receipt without its signed charge for it")]
    NoCharge,
    /// The charge is signed by a key the client cannot tie to an attested proxy.
    #[error(
        "the proxy's charge is signed by a certificate this client's proxy policy refuses: {0}"
    )]
    ChargeSigner(String),
    /// The proxy charged more tokens than the worker signed for.
    #[error("over-charged: billed {billed} tokens, the worker's receipt says {signed}")]
    OverCharged {
        /// Tokens the proxy billed.
        billed: u64,
        /// Tokens the receipt states.
        signed: u64,
    },
}

impl ReceiptError {
    /// A short name of the failure, for headers and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiptError::Malformed(_) => "malformed",
            ReceiptError::Signature => "signature",
            ReceiptError::Certificate(_) => "certificate",
            ReceiptError::ForeignKey { .. } => "foreign_key",
            ReceiptError::Request => "another_request",
            ReceiptError::Answer => "another_answer",
            ReceiptError::Model(_) => "another_model",
            ReceiptError::OverCharged { .. } => "over_charged",
            ReceiptError::ChargeMismatch { .. } => "charge_mismatch",
            ReceiptError::NoCharge => "charge_missing",
            ReceiptError::ChargeSigner(_) => "charge_signer",
        }
    }
}

fn write_tokens(t: &ReceiptTokens, out: &mut Vec<u8>) {
    for count in [t.prompt, t.cached, t.completion, t.reasoning, t.total] {
        out.extend_from_slice(&count.to_le_bytes());
    }
}

fn read_tokens(r: &mut Reader<'_>) -> Result<ReceiptTokens, ReceiptError> {
    Ok(ReceiptTokens {
        prompt: r.u64("tokens")?,
        cached: r.u64("tokens")?,
        completion: r.u64("tokens")?,
        reasoning: r.u64("tokens")?,
        total: r.u64("tokens")?,
    })
}

impl Statement for ReceiptBody {
    const DOMAIN: &'static [u8] = b"cocoon receipt v1\0";
    const NAME: &'static str = "receipt";

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.worker_key);
        out.extend_from_slice(&self.client_request_id);
        out.extend_from_slice(&self.request_hash);
        out.extend_from_slice(&self.answer_hash);
        write_tokens(&self.tokens, out);
        out.extend_from_slice(&self.coefficient.to_le_bytes());
        out.extend_from_slice(&self.finished_at.to_le_bytes());
        let model = &self.model.as_bytes()[..self.model.len().min(MAX_MODEL_LEN)];
        out.extend_from_slice(&(model.len() as u16).to_le_bytes());
        out.extend_from_slice(model);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ReceiptError> {
        let worker_key = r.array("worker key")?;
        let client_request_id = r.array("request id")?;
        let request_hash = r.array("request hash")?;
        let answer_hash = r.array("answer hash")?;
        let tokens = read_tokens(r)?;
        let coefficient = u32::from_le_bytes(r.array("coefficient")?);
        let finished_at = r.u64("time")?;
        let model_len = u16::from_le_bytes(r.array("model length")?) as usize;
        if model_len > MAX_MODEL_LEN {
            return Err(ReceiptError::Malformed(format!(
                "a model name of {model_len} bytes (at most {MAX_MODEL_LEN})"
            )));
        }
        let model = std::str::from_utf8(r.take(model_len, "model")?)
            .map_err(|_| ReceiptError::Malformed("the model name is not UTF-8".into()))?
            .to_string();
        Ok(ReceiptBody {
            worker_key,
            client_request_id,
            request_hash,
            answer_hash,
            model,
            tokens,
            coefficient,
            finished_at,
        })
    }

    fn key(&self) -> [u8; 32] {
        self.worker_key
    }

    fn set_key(&mut self, key: [u8; 32]) {
        self.worker_key = key;
    }

    fn time(&self) -> u64 {
        self.finished_at
    }
}

impl Statement for ChargeBody {
    const DOMAIN: &'static [u8] = b"cocoon charge v1\0";
    const NAME: &'static str = "charge";

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.proxy_key);
        out.extend_from_slice(&self.client_request_id);
        out.extend_from_slice(&self.receipt_hash);
        write_tokens(&self.tokens, out);
        out.extend_from_slice(&self.charged_at.to_le_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ReceiptError> {
        Ok(ChargeBody {
            proxy_key: r.array("proxy key")?,
            client_request_id: r.array("request id")?,
            receipt_hash: r.array("receipt hash")?,
            tokens: read_tokens(r)?,
            charged_at: r.u64("time")?,
        })
    }

    fn key(&self) -> [u8; 32] {
        self.proxy_key
    }

    fn set_key(&mut self, key: [u8; 32]) {
        self.proxy_key = key;
    }

    fn time(&self) -> u64 {
        self.charged_at
    }
}

fn signed_message<B: Statement>(body: &B) -> Vec<u8> {
    let mut message = B::DOMAIN.to_vec();
    message.push(VERSION);
    body.write(&mut message);
    message
}

/// A node's means to sign statements (a worker's receipts, a proxy's charges): the key of its
/// current certificate, and that certificate.
pub struct ReceiptSigner {
    key: Ed25519KeyPair,
    certificate: Vec<u8>,
    public_key: [u8; 32],
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("public_key", &crate::hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    /// The signer of an RA-TLS identity (its PKCS#8 Ed25519 key and its certificate).
    pub fn new(identity: &cocoon_net::TlsIdentity) -> Result<ReceiptSigner, ReceiptError> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&identity.key_der).map_err(|e| {
            ReceiptError::Certificate(format!("key is not an Ed25519 PKCS#8 key: {e}"))
        })?;
        if key.public_key().as_ref() != identity.public_key {
            return Err(ReceiptError::Certificate(
                "key does not match the certificate".into(),
            ));
        }
        Ok(ReceiptSigner {
            key,
            certificate: identity.cert_der.clone(),
            public_key: identity.public_key,
        })
    }

    /// The certificate's key, what a receipt names as the worker's.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Signs `body` (its key is set to this signer's).
    pub fn sign<B: Statement>(&self, mut body: B) -> Signed<B> {
        body.set_key(self.public_key);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(self.key.sign(&signed_message(&body)).as_ref());
        Signed {
            body,
            signature,
            certificate: self.certificate.clone(),
        }
    }
}

/// SHA-256 of a sealed request, as a receipt names it.
pub fn request_hash(sealed: &[u8]) -> [u8; 32] {
    Sha256::digest(sealed).into()
}

/// Reads a statement's bytes front to back, refusing to read past the end.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ReceiptError> {
        if self.0.len() < n {
            return Err(ReceiptError::Malformed(format!("cut short in its {what}")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReceiptError> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ReceiptError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}

impl<B: Statement> Signed<B> {
    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300 + self.certificate.len());
        out.push(VERSION);
        self.body.write(&mut out);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&(self.certificate.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.certificate);
        out
    }

    /// Parses the wire form (nothing is verified yet: see [`Signed::verify_signature`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Signed<B>, ReceiptError> {
        let mut r = Reader(bytes);
        let version = r.take(1, "version")?[0];
        if version != VERSION {
            return Err(ReceiptError::Malformed(format!(
                "{} version {version}, this build reads {VERSION}",
                B::NAME
            )));
        }
        let body = B::read(&mut r)?;
        let signature = r.array("signature")?;
        let cert_len = u32::from_le_bytes(r.array("certificate length")?) as usize;
        if cert_len > MAX_CERTIFICATE_LEN {
            return Err(ReceiptError::Malformed(format!(
                "a certificate of {cert_len} bytes (at most {MAX_CERTIFICATE_LEN})"
            )));
        }
        let certificate = r.take(cert_len, "certificate")?.to_vec();
        if !r.0.is_empty() {
            return Err(ReceiptError::Malformed(format!(
                "{} bytes after the {}'s end",
                r.0.len(),
                B::NAME
            )));
        }
        Ok(Signed {
            body,
            signature,
            certificate,
        })
    }

    /// The wire form in standard base64, as `X-Cocoon-Receipt` / `X-Cocoon-Charge` carry it.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }

    /// Parses [`Signed::to_base64`]'s form (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Signed<B>, ReceiptError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| ReceiptError::Malformed(format!("not base64: {e}")))?;
        Signed::from_bytes(&bytes)
    }

    /// SHA-256 of the wire form: how a charge refers to its receipt.
    /// Hashed piece by piece, so the certificate (most of the bytes) is not copied.
    pub fn hash(&self) -> [u8; 32] {
        let mut body = Vec::with_capacity(256);
        body.push(VERSION);
        self.body.write(&mut body);
        let mut hasher = Sha256::new();
        hasher.update(&body);
        hasher.update(self.signature);
        hasher.update((self.certificate.len() as u32).to_le_bytes());
        hasher.update(&self.certificate);
        hasher.finalize().into()
    }

    /// Checks that the certificate carries the signing key (and that its claims name it) and
    /// that the signature verifies under it. The certificate is read as of the statement's
    /// time: it outlives the one-day certificate that signed it. Its attestation is judged by
    /// a policy, separately.
    pub fn verify_signature(&self) -> Result<(), ReceiptError> {
        self.verify_signature_known(None)
    }

    /// [`Signed::verify_signature`], skipping the certificate's parse when it is `known`: the
    /// same DER as a certificate the caller already checked, whose key is the body's.
    pub fn verify_signature_known(
        &self,
        known: Option<(&[u8], [u8; 32])>,
    ) -> Result<(), ReceiptError> {
        let trusted = known
            .is_some_and(|(der, key)| key == self.body.key() && der == self.certificate.as_slice());
        if !trusted {
            self.check_certificate()?;
        }
        UnparsedPublicKey::new(&ED25519, &self.body.key())
            .verify(&signed_message(&self.body), &self.signature)
            .map_err(|_| ReceiptError::Signature)
    }

    /// The certificate parses and its claims name the body's key.
    fn check_certificate(&self) -> Result<(), ReceiptError> {
        let facts = parse_certificate(&self.certificate, self.signed_at())
            .map_err(|e| ReceiptError::Certificate(format!("does not parse: {e}")))?;
        let claims = certificate_claims(&facts)
            .map_err(|e| ReceiptError::Certificate(format!("has bad claims: {e}")))?;
        if claims.public_key != self.body.key() {
            return Err(ReceiptError::Certificate(
                "is another key's than the one that signed".into(),
            ));
        }
        Ok(())
    }

    /// When it was signed. The time is the signer's word: one past the end of year 9999 reads
    /// as that end (adding it unchecked would overflow `SystemTime` and panic), and no
    /// certificate is valid then.
    pub fn signed_at(&self) -> SystemTime {
        /// 9999-12-31T23:59:59Z.
        const LATEST_SECS: u64 = 253_402_300_799;
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(self.body.time().min(LATEST_SECS))
    }
}

impl ChargeStatement {
    /// Checks a proxy's charge against the receipt it names and what the client was told: its
    /// signature, the receipt's hash and request, the tokens (`told_total`), and that it is not
    /// above the receipt. Whose key signed (the proxy the client is connected to) is the
    /// caller's check; `known` spares the parse of a certificate the caller already checked
    /// ([`Signed::verify_signature_known`]).
    pub fn check_against(
        &self,
        receipt: &Receipt,
        told_total: u64,
        known: Option<(&[u8], [u8; 32])>,
    ) -> Result<(), ReceiptError> {
        self.verify_signature_known(known)?;
        if self.body.receipt_hash != receipt.hash()
            || self.body.client_request_id != receipt.body.client_request_id
        {
            return Err(ReceiptError::Request);
        }
        if self.body.tokens.total != told_total {
            return Err(ReceiptError::ChargeMismatch {
                signed: self.body.tokens.total,
                told: told_total,
            });
        }
        if self.body.tokens.total > receipt.body.tokens.total {
            return Err(ReceiptError::OverCharged {
                billed: self.body.tokens.total,
                signed: receipt.body.tokens.total,
            });
        }
        Ok(())
    }
}

impl Receipt {
    /// The client's check of a receipt for its own request: the signature, the key it sealed
    /// to (or, after the worker renewed its certificate, the same sealing key in the new
    /// certificate: `sealing_key`), its request, its answer and its model, and that `billed`
    /// tokens are not above the receipt's.
    pub fn check_for(&self, expected: &Expected<'_>) -> Result<(), ReceiptError> {
        self.verify_signature_known(
            expected
                .worker_certificate
                .map(|der| (der, expected.worker_key)),
        )?;
        if self.body.worker_key != expected.worker_key {
            let renewed = crate::sealing_key_of(&self.certificate, self.signed_at())
                .is_some_and(|key| key == expected.sealing_key);
            if !renewed {
                return Err(ReceiptError::ForeignKey {
                    found: crate::hex(&self.body.worker_key),
                });
            }
        }
        if self.body.client_request_id != expected.client_request_id
            || self.body.request_hash != expected.request_hash
        {
            return Err(ReceiptError::Request);
        }
        if self.body.answer_hash != expected.answer_hash {
            return Err(ReceiptError::Answer);
        }
        if self.body.model != expected.model {
            return Err(ReceiptError::Model(self.body.model.clone()));
        }
        if expected.billed_total > self.body.tokens.total {
            return Err(ReceiptError::OverCharged {
                billed: expected.billed_total,
                signed: self.body.tokens.total,
            });
        }
        Ok(())
    }
}

/// What a client knows of its own request, to check a receipt against.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The certificate key of the worker the request was sealed to.
    pub worker_key: [u8; 32],
    /// That worker's certificate as the client verified it, if at hand (a receipt carrying
    /// the same one is not parsed again).
    pub worker_certificate: Option<&'a [u8]>,
    /// The HPKE key it was sealed to (the same worker after a certificate renewal).
    pub sealing_key: [u8; 32],
    /// The request's id.
    pub client_request_id: [u8; 32],
    /// SHA-256 of the sealed bytes sent.
    pub request_hash: [u8; 32],
    /// The opener's answer hash ([`crate::sealed::AnswerOpener::answer_hash`]).
    pub answer_hash: [u8; 32],
    /// The model the request named.
    pub model: &'a str,
    /// The total tokens the proxy billed.
    pub billed_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> ReceiptBody {
        ReceiptBody {
            worker_key: [1; 32],
            client_request_id: [2; 32],
            request_hash: [3; 32],
            answer_hash: [4; 32],
            model: "SmolLM2-135M-Instruct".into(),
            tokens: ReceiptTokens {
                prompt: 10,
                cached: 0,
                completion: 20,
                reasoning: 0,
                total: 30,
            },
            coefficient: 1000,
            finished_at: 1_800_000_000,
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_refuses_what_is_not_a_receipt() {
        let receipt = Receipt {
            body: body(),
            signature: [9; 64],
            certificate: vec![7; 100],
        };
        let bytes = receipt.to_bytes();
        assert_eq!(Receipt::from_bytes(&bytes).unwrap(), receipt);
        // The hash is taken piece by piece: it must be the wire form's.
        assert_eq!(receipt.hash(), <[u8; 32]>::from(Sha256::digest(&bytes)));
        for cut in [0, 1, 40, bytes.len() - 101, bytes.len() - 1] {
            assert!(matches!(
                Receipt::from_bytes(&bytes[..cut]),
                Err(ReceiptError::Malformed(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Receipt::from_bytes(&longer).is_err());
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(Receipt::from_bytes(&version).is_err());
    }

    /// Found by fuzzing: a receipt dated past `SystemTime`'s range panicked in `signed_at` when
    /// its signature was checked (a worker could crash the client that checks its receipts).
    #[test]
    fn a_receipt_dated_past_the_year_9999_is_refused_not_a_panic() {
        let mut far = body();
        far.finished_at = u64::MAX;
        let receipt = Receipt {
            body: far,
            signature: [9; 64],
            certificate: vec![7; 100],
        };
        assert!(receipt.signed_at() > SystemTime::UNIX_EPOCH);
        assert!(matches!(
            receipt.verify_signature(),
            Err(ReceiptError::Certificate(_))
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(receipt) = Receipt::from_bytes(&bytes) {
                prop_assert_eq!(receipt.to_bytes(), bytes);
            }
        }

        #[test]
        fn any_receipt_round_trips(
            model in "[ -~]{0,256}",
            counts in proptest::array::uniform5(any::<u64>()),
            certificate in proptest::collection::vec(any::<u8>(), 0..2_000),
        ) {
            let mut b = body();
            b.model = model;
            b.tokens = ReceiptTokens { prompt: counts[0], cached: counts[1], completion: counts[2], reasoning: counts[3], total: counts[4] };
            let receipt = Receipt { body: b, signature: [5; 64], certificate };
            let bytes = receipt.to_bytes();
            prop_assert_eq!(receipt.hash(), <[u8; 32]>::from(Sha256::digest(&bytes)));
            prop_assert_eq!(Receipt::from_bytes(&bytes).unwrap(), receipt);
        }
    }
}
