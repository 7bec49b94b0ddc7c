//! COCOON v2 transport: TCP → proof-of-work gate → mutual TLS 1.3 → multiplexed packet
//! connection (the sans-io [`cocoon_proto::session::Session`] driven by tokio tasks).
//!
//! Who is acceptable as a peer is a pluggable [`PeerPolicy`]; the development policy lives in
//! [`policy::danger`]. Attested policies plug into the same seam.
//!
//! **Architecture invariant:** this crate knows nothing of OpenAI, models or money. It moves
//! opaque TL payloads between authenticated peers.

pub mod config;
mod connection;
pub mod dashboard;
mod endpoint;
pub mod http_client;
mod identity;
pub mod limits;
pub mod metrics;
pub mod policy;
mod pow_gate;
pub mod reconnect;
pub mod secret_file;
pub mod shutdown;
pub mod sse;
pub mod tcp;
mod tls;

pub use connection::{
    within, CloseOnDrop, Connection, ConnectionHandle, ConnectionStats, Incoming, IncomingQuery,
    ANSWER_REFUSED_CODE,
};
pub use endpoint::{Acceptor, Connector, DEFAULT_HANDSHAKE_TIMEOUT};
pub use identity::{TlsIdentity, CERTIFICATE_VALIDITY};
pub use limits::{ConnectionCaps, ConnectionLimits, ConnectionPermit, LimitCounters};
pub use policy::{PeerCertificate, PeerIdentity, PeerPolicy, PolicyError};
pub use shutdown::{AbortOnDrop, OwnedTasks, Shutdown, ShutdownTrigger};

/// Everything that can go wrong on a connection.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Socket-level failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The proof-of-work exchange was malformed.
    #[error("proof of work: {0}")]
    Pow(String),
    /// The server asked for more work than we are willing to do.
    #[error("server demands proof of work of {difficulty} bits, more than the allowed {max}")]
    PowTooHard {
        /// Bits asked for.
        difficulty: i32,
        /// Our limit.
        max: i32,
    },
    /// The client's proof-of-work answer was wrong.
    #[error("proof of work answer rejected")]
    PowRejected,
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The peer's certificate was refused by the policy.
    #[error("peer refused by policy: {0}")]
    Policy(#[from] PolicyError),
    /// Could not create our own identity.
    #[error("identity: {0}")]
    Identity(String),
    /// The peer violated the packet protocol.
    #[error("protocol: {0}")]
    Session(#[from] cocoon_proto::session::SessionError),
    /// A deadline passed.
    #[error("timed out")]
    Timeout,
    /// The connection is closed.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer answered a query with an error.
    #[error("remote error {code}: {message}")]
    Remote {
        /// Error code from `tcp.queryError`.
        code: i32,
        /// Message from `tcp.queryError`.
        message: String,
    },
    /// The peer's queue had no room for this send (see [`ConnectionLimits`]): this send alone
    /// is refused, the connection stays up.
    #[error(
        "send of {size} bytes refused: {queued} bytes already queued for the peer, cap {limit}"
    )]
    Backpressure {
        /// Bytes queued for the peer, not yet written.
        queued: usize,
        /// Bytes this send would have added (payload and framing).
        size: usize,
        /// The connection's cap.
        limit: usize,
    },
}

impl NetError {
    /// The peer policy's refusal, when that is why a handshake failed. rustls carries it inside
    /// a certificate error (which tokio-rustls wraps in an i/o error); an expired certificate
    /// arrives as rustls' own `Expired`.
    pub fn policy_refusal(&self) -> Option<&PolicyError> {
        let tls = match self {
            NetError::Policy(refusal) => return Some(refusal),
            NetError::Tls(tls) => tls,
            NetError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
            _ => return None,
        };
        match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<PolicyError>()
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired) => {
                Some(&PolicyError::Expired)
            }
            _ => None,
        }
    }
}
