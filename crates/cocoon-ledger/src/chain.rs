//! The session hash chain and the batch signatures that make the ledger tamper-evident.
//!
//! `h_0 = SHA-256("cocoon-ledger/genesis/v1" ‖ public_key)` and
//! `h_n = SHA-256(h_{n−1} ‖ encoding(record_n))`, where the encoding includes the seqno
//! (see [`crate::record`]). The last record of every committed batch carries an Ed25519
//! signature over `"cocoon-ledger/batch/v1" ‖ seqno:u64 LE ‖ h_n`, which covers every record
//! up to it through the chain.

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

const GENESIS_DOMAIN: &[u8] = b"cocoon-ledger/genesis/v1";
const BATCH_DOMAIN: &[u8] = b"cocoon-ledger/batch/v1";

/// An Ed25519 public key.
pub type PublicKey = [u8; 32];
/// An Ed25519 signature.
pub type Signature = [u8; 64];

/// The hash before the first record of a ledger owned by `public_key`. Binding the key means
/// two proxies never share a chain, even with identical records.
pub fn genesis_hash(public_key: &PublicKey) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(GENESIS_DOMAIN);
    hasher.update(public_key);
    hasher.finalize().into()
}

/// `h_n` from `h_{n−1}` and the encoding of record `n`.
pub fn next_hash(previous: &[u8; 32], encoded_record: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(encoded_record);
    hasher.finalize().into()
}

/// The message a batch signature covers. The domain prefix makes it longer than the 32-byte
/// cell hashes the same key signs for the chain, so neither can be passed off as the other.
pub fn batch_message(seqno: u64, hash: &[u8; 32]) -> [u8; 62] {
    let mut message = [0u8; 62];
    message[..22].copy_from_slice(BATCH_DOMAIN);
    message[22..30].copy_from_slice(&seqno.to_le_bytes());
    message[30..].copy_from_slice(hash);
    message
}

/// The proxy's signing key.
pub(crate) struct Signer {
    key_pair: Ed25519KeyPair,
    public_key: PublicKey,
}

impl Signer {
    /// The key pair of a 32-byte Ed25519 seed.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Result<Signer, ring::error::KeyRejected> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(key_pair.public_key().as_ref());
        Ok(Signer {
            key_pair,
            public_key,
        })
    }

    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Signs the batch ending at `seqno` with chain hash `hash`.
    pub(crate) fn sign_batch(&self, seqno: u64, hash: &[u8; 32]) -> Signature {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.key_pair.sign(&batch_message(seqno, hash)).as_ref());
        signature
    }
}

/// Whether `signature` is `public_key`'s signature of the batch ending at (`seqno`, `hash`).
pub fn verify_batch(
    public_key: &PublicKey,
    seqno: u64,
    hash: &[u8; 32],
    signature: &Signature,
) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&batch_message(seqno, hash), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_position() {
        let signer = Signer::from_seed(&[7; 32]).expect("any 32-byte seed is a key");
        let hash = next_hash(&genesis_hash(signer.public_key()), b"record");
        let signature = signer.sign_batch(1, &hash);
        assert!(verify_batch(signer.public_key(), 1, &hash, &signature));
        assert!(!verify_batch(signer.public_key(), 2, &hash, &signature));
        assert!(!verify_batch(signer.public_key(), 1, &[0; 32], &signature));
        let other = Signer::from_seed(&[8; 32]).expect("any 32-byte seed is a key");
        assert!(!verify_batch(other.public_key(), 1, &hash, &signature));
    }
}
