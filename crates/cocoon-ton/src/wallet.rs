//! Wallets: an Ed25519 key and the standard wallet v4r2 address it controls.

use tonlib_core::wallet::mnemonic::KeyPair;
use tonlib_core::wallet::ton_wallet::TonWallet;
use tonlib_core::wallet::wallet_version::WalletVersion;
use tonlib_core::TonAddress;

use crate::keys::ProxyKey;

/// A wallet v4r2 on workchain 0 controlled by an Ed25519 key.
pub struct Wallet {
    seed: [u8; 32],
    key: ProxyKey,
    inner: TonWallet,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.inner.address.to_string())
            .finish()
    }
}

impl Clone for Wallet {
    fn clone(&self) -> Wallet {
        Wallet::from_seed(&self.seed)
    }
}

impl Wallet {
    /// The wallet of the key with this seed.
    pub fn from_seed(seed: &[u8; 32]) -> Wallet {
        let key = ProxyKey::from_seed(seed);
        let public = key.public_key();
        let mut secret = seed.to_vec();
        secret.extend_from_slice(&public);
        let pair = KeyPair {
            public_key: public.to_vec(),
            secret_key: secret,
        };
        // Deriving the v4r2 address only serialises fixed-size cells; it cannot fail.
        let inner = TonWallet::new(WalletVersion::V4R2, pair)
            .unwrap_or_else(|e| unreachable!("wallet v4r2 derivation: {e}"));
        Wallet {
            seed: *seed,
            key,
            inner,
        }
    }

    /// The wallet's address.
    pub fn address(&self) -> &TonAddress {
        &self.inner.address
    }

    /// The key (signs external messages; a proxy operator's may also sign payments).
    pub fn key(&self) -> &ProxyKey {
        &self.key
    }

    /// The key's seed (for writing key files).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The tonlib wallet (external message construction).
    pub fn ton_wallet(&self) -> &TonWallet {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_stable_and_key_dependent() {
        let a = Wallet::from_seed(&[1; 32]);
        let b = Wallet::from_seed(&[1; 32]);
        let c = Wallet::from_seed(&[2; 32]);
        assert_eq!(a.address(), b.address());
        assert_ne!(a.address(), c.address());
        assert_eq!(a.address().workchain, 0);
    }
}
