//! Establishing connections: [`Connector`] dials (solve PoW, TLS client), [`Acceptor`] answers
//! (challenge PoW, TLS server). Both finish the `tcp.connect` handshake before handing the
//! connection to the daemon, so a daemon only ever sees authenticated, ready peers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cocoon_proto::session::{Session, SessionConfig};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::connection::{spawn_connection, Bounds};
use crate::limits::{ConnectionLimits, LimitCounters};
use crate::policy::{PeerPolicy, PolicyError};
use crate::{pow_gate, tls, Connection, NetError, TlsIdentity};

/// Time allowed for TCP connect + PoW + TLS + `tcp.connect`. PoW at the default 20 bits takes
/// well under a second on one core; the rest is a few round trips.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

fn peer_from_certs(
    verifier: &tls::PolicyVerifier,
    certs: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> Result<crate::PeerIdentity, NetError> {
    let cert = certs
        .and_then(|c| c.first())
        .ok_or_else(|| PolicyError::Malformed("peer sent no certificate".into()))?;
    Ok(verifier.peer_identity(cert.as_ref(), SystemTime::now())?)
}

/// Waits for the `tcp.connect`/`tcp.connected` exchange. If it fails, or the handshake deadline
/// drops this future first, the connection is closed: its tasks are already running and would
/// otherwise hold the socket until the session's idle timeout.
async fn finish_handshake(connection: Connection) -> Result<Connection, NetError> {
    struct CloseUnlessReady(Option<crate::ConnectionHandle>);
    impl Drop for CloseUnlessReady {
        fn drop(&mut self) {
            if let Some(handle) = self.0.take() {
                handle.close("handshake did not complete");
            }
        }
    }
    let mut guard = CloseUnlessReady(Some(connection.handle.clone()));
    connection.handle.ready().await?;
    guard.0 = None;
    Ok(connection)
}

/// Accepts inbound hops.
#[derive(Clone)]
pub struct Acceptor {
    tls: TlsAcceptor,
    cert: Arc<tls::CurrentCert>,
    verifier: Arc<tls::PolicyVerifier>,
    pow_difficulty: i32,
    session: SessionConfig,
    limits: ConnectionLimits,
    counters: Arc<LimitCounters>,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
}

impl Acceptor {
    /// An acceptor presenting `identity`, demanding `pow_difficulty` bits of work and judging
    /// client certificates with `policy`.
    pub fn new(
        identity: &TlsIdentity,
        policy: Arc<dyn PeerPolicy>,
        pow_difficulty: i32,
    ) -> Result<Acceptor, NetError> {
        let cert = tls::current_cert(identity)?;
        let verifier = tls::PolicyVerifier::new(policy);
        let config = tls::server_config(cert.clone(), verifier.clone())?;
        Ok(Acceptor {
            tls: TlsAcceptor::from(Arc::new(config)),
            cert,
            verifier,
            pow_difficulty,
            session: SessionConfig::server_default(),
            limits: ConnectionLimits::default(),
            counters: Arc::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Overrides keepalive settings (tests use short ones).
    pub fn with_session_config(mut self, session: SessionConfig) -> Acceptor {
        self.session = session;
        self
    }

    /// Bounds every connection this acceptor establishes from now on (queue cap, write stall,
    /// authentication deadline). The default has no authentication deadline.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Acceptor {
        self.limits = limits;
        self
    }

    /// What the limits refused or cut, over every connection this acceptor (and its clones)
    /// established.
    pub fn counters(&self) -> &Arc<LimitCounters> {
        &self.counters
    }

    /// Presents `identity` in handshakes from now on (certificate renewal); established
    /// connections keep theirs.
    pub fn renew_identity(&self, identity: &TlsIdentity) -> Result<(), NetError> {
        tls::renew(&self.cert, identity)
    }

    /// Runs the server side of the handshake on an accepted socket. The authentication
    /// deadline of [`ConnectionLimits::auth_timeout`] counts from this call.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Connection, NetError> {
        let accepted_at = tokio::time::Instant::now();
        let result =
            tokio::time::timeout(self.handshake_timeout, self.accept_inner(tcp, accepted_at))
                .await
                .map_err(|_| NetError::Timeout)?;
        if result
            .as_ref()
            .is_err_and(|error| error.policy_refusal().is_some())
        {
            self.counters
                .refused_by_policy
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn accept_inner(
        &self,
        mut tcp: TcpStream,
        accepted_at: tokio::time::Instant,
    ) -> Result<Connection, NetError> {
        let remote = tcp.peer_addr()?;
        crate::tcp::tune(&tcp);
        pow_gate::server_gate(&mut tcp, self.pow_difficulty).await?;
        let stream = self.tls.accept(crate::tcp::ReadAhead::new(tcp)).await?;
        let peer = peer_from_certs(&self.verifier, stream.get_ref().1.peer_certificates())?;
        let session = Session::server(self.session, 0);
        let bounds = Bounds {
            limits: self.limits,
            counters: self.counters.clone(),
            accepted_at,
        };
        finish_handshake(spawn_connection(stream, session, peer, remote, bounds)).await
    }
}

/// Dials outbound hops.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    cert: Arc<tls::CurrentCert>,
    verifier: Arc<tls::PolicyVerifier>,
    max_pow_difficulty: i32,
    session: SessionConfig,
    limits: ConnectionLimits,
    counters: Arc<LimitCounters>,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
}

impl Connector {
    /// A connector presenting `identity`, judging servers with `policy`, and refusing PoW
    /// challenges above `max_pow_difficulty` bits.
    pub fn new(
        identity: &TlsIdentity,
        policy: Arc<dyn PeerPolicy>,
        max_pow_difficulty: i32,
    ) -> Result<Connector, NetError> {
        let cert = tls::current_cert(identity)?;
        let verifier = tls::PolicyVerifier::new(policy);
        let config = tls::client_config(cert.clone(), verifier.clone())?;
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
            cert,
            verifier,
            max_pow_difficulty,
            session: SessionConfig::client_default(),
            limits: ConnectionLimits::default(),
            counters: Arc::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Overrides keepalive settings (tests use short ones).
    pub fn with_session_config(mut self, session: SessionConfig) -> Connector {
        self.session = session;
        self
    }

    /// Bounds every connection this connector dials from now on. An authentication deadline
    /// is ignored: a dialled peer is the one we chose.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Connector {
        self.limits = ConnectionLimits {
            auth_timeout: None,
            ..limits
        };
        self
    }

    /// What the limits refused or cut, over every connection this connector dialled.
    pub fn counters(&self) -> &Arc<LimitCounters> {
        &self.counters
    }

    /// Presents `identity` in handshakes from now on (certificate renewal).
    pub fn renew_identity(&self, identity: &TlsIdentity) -> Result<(), NetError> {
        tls::renew(&self.cert, identity)
    }

    /// Connects to `address` ("host:port") and completes every handshake layer.
    pub async fn connect(&self, address: &str) -> Result<Connection, NetError> {
        tokio::time::timeout(self.handshake_timeout, self.connect_inner(address))
            .await
            .map_err(|_| NetError::Timeout)?
    }

    async fn connect_inner(&self, address: &str) -> Result<Connection, NetError> {
        let mut tcp = crate::tcp::connect(address).await?;
        let remote = tcp.peer_addr()?;
        pow_gate::client_solve(&mut tcp, self.max_pow_difficulty).await?;
        // The name is not checked (identity comes from the certificate policy); an IP name
        // also keeps SNI out of the handshake.
        let name = ServerName::IpAddress(remote.ip().into());
        let stream = self
            .tls
            .connect(name, crate::tcp::ReadAhead::new(tcp))
            .await?;
        let peer = peer_from_certs(&self.verifier, stream.get_ref().1.peer_certificates())?;
        let session = Session::client(self.session, 0, rand::random());
        let bounds = Bounds {
            limits: self.limits,
            counters: self.counters.clone(),
            accepted_at: tokio::time::Instant::now(),
        };
        finish_handshake(spawn_connection(stream, session, peer, remote, bounds)).await
    }
}
