//! rustls configuration for COCOON hops: TLS 1.3 only, two AES-GCM suites, mutual
//! authentication with self-signed Ed25519 certificates judged by a [`PeerPolicy`], and no
//! session resumption (every connection proves its identity afresh).
//!
//! Certificates are loaded through resolvers and handshake signatures are verified against the
//! raw subject key, because RA-TLS certificates carry critical extensions that the stock
//! WebPKI path would refuse.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls13_signature_with_raw_key, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureScheme,
};

use crate::policy::{subject_public_key_info, PeerIdentity, PeerPolicy, PolicyError};
use crate::{NetError, TlsIdentity};

/// The crypto provider: ring, restricted to the reference's TLS 1.3 suites.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let base = rustls::crypto::ring::default_provider();
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        ..base
    })
}

fn unix_time_to_system(now: UnixTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

fn policy_error_to_tls(error: PolicyError) -> TlsError {
    let certificate_error = match error {
        PolicyError::Expired => CertificateError::Expired,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    TlsError::InvalidCertificate(certificate_error)
}

/// Bridges a [`PeerPolicy`] into rustls's verifier traits, for both directions.
#[derive(Debug)]
pub(crate) struct PolicyVerifier {
    policy: Arc<dyn PeerPolicy>,
    provider: Arc<CryptoProvider>,
    /// Identities verified during handshakes, until the endpoint collects them: a policy may
    /// be expensive (a cold DCAP verification), so it runs once per handshake.
    verified: std::sync::Mutex<VerifiedPeers>,
}

/// A small map from certificate digest to the identity its verification produced.
#[derive(Debug, Default)]
struct VerifiedPeers {
    entries: std::collections::VecDeque<([u8; 32], PeerIdentity)>,
}

/// Handshakes in progress at once that can hand over their result; beyond this the oldest is
/// dropped and its endpoint simply verifies again.
const VERIFIED_PEERS_CAPACITY: usize = 1024;

fn cert_digest(cert_der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(cert_der).into()
}

impl PolicyVerifier {
    pub(crate) fn new(policy: Arc<dyn PeerPolicy>) -> Arc<PolicyVerifier> {
        Arc::new(PolicyVerifier {
            policy,
            provider: provider(),
            verified: std::sync::Mutex::new(VerifiedPeers::default()),
        })
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, VerifiedPeers> {
        // Entries are pushed and popped whole; a poisoned lock still holds a valid queue.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity of a peer whose certificate this verifier accepted in the handshake just
    /// completed (or, if that result was evicted, a fresh verification).
    pub(crate) fn peer_identity(
        &self,
        cert_der: &[u8],
        now: SystemTime,
    ) -> Result<PeerIdentity, PolicyError> {
        let digest = cert_digest(cert_der);
        let mut verified = self.verified();
        let cached = verified
            .entries
            .iter()
            .position(|(d, _)| *d == digest)
            .and_then(|index| verified.entries.remove(index))
            .map(|(_, identity)| identity);
        drop(verified);
        let mut identity = match cached {
            Some(identity) => identity,
            None => self.policy.verify_peer(cert_der, now)?,
        };
        identity.certificate = crate::PeerCertificate::new(cert_der);
        Ok(identity)
    }
}

impl PolicyVerifier {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), TlsError> {
        if !intermediates.is_empty() {
            return Err(policy_error_to_tls(PolicyError::ChainNotAllowed(
                intermediates.len(),
            )));
        }
        let identity = self
            .policy
            .verify_peer(end_entity.as_ref(), unix_time_to_system(now))
            .map_err(policy_error_to_tls)?;
        let mut verified = self.verified();
        if verified.entries.len() >= VERIFIED_PEERS_CAPACITY {
            verified.entries.pop_front();
        }
        verified
            .entries
            .push_back((cert_digest(end_entity.as_ref()), identity));
        Ok(())
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let spki = subject_public_key_info(cert.as_ref()).map_err(policy_error_to_tls)?;
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.verify(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PolicyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        self.verify(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Presents this node's current certificate, without inspecting it (see the module docs).
/// The certificate can be replaced while connections are being made: RA-TLS certificates are
/// short-lived and renewed in place.
#[derive(Debug)]
pub(crate) struct CurrentCert(std::sync::RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn current(&self) -> Arc<CertifiedKey> {
        // Replacing is a single assignment, so a poisoned lock still holds a whole key.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a new certificate for handshakes from now on.
    pub(crate) fn replace(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificate slot shared by a config and whoever renews it.
pub(crate) fn current_cert(identity: &TlsIdentity) -> Result<Arc<CurrentCert>, NetError> {
    Ok(Arc::new(CurrentCert(std::sync::RwLock::new(
        identity.certified_key(&provider())?,
    ))))
}

/// Loads a renewed identity into a slot.
pub(crate) fn renew(slot: &CurrentCert, identity: &TlsIdentity) -> Result<(), NetError> {
    slot.replace(identity.certified_key(&provider())?);
    Ok(())
}

/// Builds the server side of a hop.
pub(crate) fn server_config(
    cert: Arc<CurrentCert>,
    verifier: Arc<PolicyVerifier>,
) -> Result<rustls::ServerConfig, NetError> {
    let provider = provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Builds the client side of a hop.
pub(crate) fn client_config(
    cert: Arc<CurrentCert>,
    verifier: Arc<PolicyVerifier>,
) -> Result<rustls::ClientConfig, NetError> {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(cert);
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::danger::AcceptAnySelfSigned;

    fn verifier() -> Arc<PolicyVerifier> {
        PolicyVerifier::new(Arc::new(AcceptAnySelfSigned))
    }

    #[test]
    fn a_certificate_chain_is_refused_in_both_directions() {
        let leaf = TlsIdentity::generate_self_signed().unwrap();
        let other = TlsIdentity::generate_self_signed().unwrap();
        let leaf_der = CertificateDer::from(leaf.cert_der.clone());
        let chain = [CertificateDer::from(other.cert_der.clone())];
        let now = UnixTime::now();
        let expect_chain_error = |result: Result<(), TlsError>| match result {
            Err(TlsError::InvalidCertificate(CertificateError::Other(other))) => {
                assert!(other.to_string().contains("depth 1"), "{other}");
            }
            other => panic!("expected a chain refusal, got {other:?}"),
        };
        let name = ServerName::try_from("cocoon").unwrap();
        expect_chain_error(
            verifier()
                .verify_server_cert(&leaf_der, &chain, &name, &[], now)
                .map(|_| ()),
        );
        expect_chain_error(
            verifier()
                .verify_client_cert(&leaf_der, &chain, now)
                .map(|_| ()),
        );
        // Depth 0 passes.
        assert!(verifier().verify_client_cert(&leaf_der, &[], now).is_ok());
    }
}
