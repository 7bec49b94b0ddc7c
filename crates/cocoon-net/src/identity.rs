//! This node's TLS identity: an Ed25519 key and a self-signed certificate for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::NetError;

/// How long a generated certificate is valid. The reference uses one day and renews hourly.
pub const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A certificate and its private key, ready to hand to rustls.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// Certificate DER.
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key DER.
    pub key_der: Vec<u8>,
    /// The Ed25519 public key the certificate carries.
    pub public_key: [u8; 32],
}

impl TlsIdentity {
    /// Generates a fresh Ed25519 key and a self-signed certificate valid from a minute ago for
    /// [`CERTIFICATE_VALIDITY`].
    pub fn generate_self_signed() -> Result<TlsIdentity, NetError> {
        let key =
            KeyPair::generate_for(&PKCS_ED25519).map_err(|e| NetError::Identity(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "cocoon");
        params.distinguished_name = name;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + CERTIFICATE_VALIDITY).into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| NetError::Identity(e.to_string()))?;
        let raw_public = key.public_key_raw();
        let public_key: [u8; 32] = raw_public
            .try_into()
            .map_err(|_| NetError::Identity("Ed25519 public key is not 32 bytes".into()))?;
        Ok(TlsIdentity {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            public_key,
        })
    }

    /// Loads the key into rustls's signing machinery.
    pub(crate) fn certified_key(
        &self,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Arc<CertifiedKey>, NetError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| NetError::Identity(e.to_string()))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(self.cert_der.clone())],
            signing_key,
        )))
    }
}
