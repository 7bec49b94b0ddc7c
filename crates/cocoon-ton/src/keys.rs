//! Ed25519 keys: the proxy's payment signing key (its contracts store the public half and check
//! every signed charge and payout with it, facts §8) and the wallets' keys.

use ring::signature::{self, Ed25519KeyPair, KeyPair};

/// The proxy's Ed25519 signing key (the one its contracts store as `proxy public key`).
pub struct ProxyKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ProxyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyKey({})", hex::encode(self.public_key()))
    }
}

impl ProxyKey {
    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> ProxyKey {
        // A 32-byte seed always makes a valid Ed25519 key.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .unwrap_or_else(|_| unreachable!("32-byte Ed25519 seed"));
        ProxyKey { pair }
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; 64] {
        let mut out = [0; 64];
        out.copy_from_slice(self.pair.sign(data).as_ref());
        out
    }
}

/// Whether `signature` is `public_key`'s signature of `data`.
pub fn verify_ed25519(public_key: &[u8; 32], data: &[u8], signature: &[u8; 64]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(data, signature)
        .is_ok()
}
