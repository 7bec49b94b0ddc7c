//! Shared helpers for the transport tests: loopback pairs, raw and hand-made clients, test
//! policies, and deadlines that turn a hang into a failure.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cocoon_net::policy::danger::AcceptAnySelfSigned;
use cocoon_net::{
    Acceptor, Connection, Connector, Incoming, NetError, PeerIdentity, PeerPolicy, PolicyError,
    TlsIdentity,
};
use cocoon_proto::pow::{PowChallenge, PowResponse, POW_CHALLENGE_LEN};
use cocoon_proto::session::{Session, SessionConfig, SessionEvent};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ED25519};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const TEST_POW_DIFFICULTY: i32 = 8;
/// Deadline for anything that should happen "soon"; only a hang reaches it.
pub const GENEROUS: Duration = Duration::from_secs(30);
/// Timeout passed to queries that are expected to be answered.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GENEROUS, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing happened within {GENEROUS:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A paused clock that only the test moves
// ---------------------------------------------------------------------------------------------

/// Keeps tokio's paused clock where it is until dropped: on a current-thread runtime the clock
/// does not jump to the next timer while a blocking task runs, so sockets and TLS take what
/// real time they need and only `tokio::time::advance` moves the clock. Deadlines then fire at
/// the instant the test chooses, however loaded the machine.
pub struct ClockHold(std::sync::mpsc::Sender<()>);

pub fn hold_the_clock() -> ClockHold {
    let (hold, released) = std::sync::mpsc::channel::<()>();
    // Ends when the sender is dropped (`recv` fails).
    tokio::task::spawn_blocking(move || released.recv());
    ClockHold(hold)
}

/// Like [`within`], for a held clock: the deadline is real time, so a hang fails the test.
pub async fn within_real_time<T>(what: &str, future: impl Future<Output = T>) -> T {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(GENEROUS);
        let _ = expired.send(());
    });
    tokio::select! {
        value = future => value,
        _ = expiry => panic!("{what}: nothing happened within {GENEROUS:?} of real time"),
    }
}

/// Lets the runtime run (sockets, connection tasks) without moving a held clock until `done`
/// holds; fails after [`GENEROUS`] of real time.
pub async fn until_real_time(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < GENEROUS,
            "{what}: nothing happened within {GENEROUS:?} of real time"
        );
        // A yield lets the runtime poll its sockets; the short sleep keeps the spin cheap.
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Lets the runtime run a while (a few hundred turns) without moving a held clock: long enough
/// for anything already due to happen.
pub async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

pub fn any_policy() -> Arc<dyn PeerPolicy> {
    Arc::new(AcceptAnySelfSigned)
}

pub fn identity() -> TlsIdentity {
    TlsIdentity::generate_self_signed().expect("generating an identity")
}

pub fn connector(identity: &TlsIdentity, policy: Arc<dyn PeerPolicy>) -> Connector {
    Connector::new(identity, policy, TEST_POW_DIFFICULTY).expect("building a connector")
}

pub fn acceptor(identity: &TlsIdentity, policy: Arc<dyn PeerPolicy>) -> Acceptor {
    Acceptor::new(identity, policy, TEST_POW_DIFFICULTY).expect("building an acceptor")
}

pub async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let address = listener.local_addr().expect("local address").to_string();
    (listener, address)
}

/// Runs one connect against one accept on a fresh loopback listener; returns (client, server).
pub async fn establish(
    connector: &Connector,
    acceptor: &Acceptor,
) -> (Result<Connection, NetError>, Result<Connection, NetError>) {
    let (listener, address) = listener().await;
    let accepting = async {
        let (tcp, _) = listener.accept().await.expect("accepting tcp");
        acceptor.accept(tcp).await
    };
    within("handshake", async {
        tokio::join!(connector.connect(&address), accepting)
    })
    .await
}

/// A connected pair with the development policy on both sides: (client, server, client
/// identity, server identity).
pub async fn connected_pair() -> (Connection, Connection, TlsIdentity, TlsIdentity) {
    let client_identity = identity();
    let server_identity = identity();
    let (client, server) = establish(
        &connector(&client_identity, any_policy()),
        &acceptor(&server_identity, any_policy()),
    )
    .await;
    (
        client.expect("client connects"),
        server.expect("server accepts"),
        client_identity,
        server_identity,
    )
}

/// Serves one side of a connection: forwards packets to the returned channel, answers every
/// query with `re:` + its data, or fails it with code 42 when the data starts with `fail`. The
/// channel closes when the connection's incoming stream ends.
pub fn serve(mut incoming: mpsc::Receiver<Incoming>) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (packets, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = incoming.recv().await {
            match item {
                Incoming::Packet(data) => {
                    let _ = packets.send(data);
                }
                Incoming::Query(query) => {
                    // The connection may close under us; the asking side then sees the close.
                    if query.data.starts_with(b"fail") {
                        let message = format!("refused {}", String::from_utf8_lossy(&query.data));
                        let _ = query.fail(42, &message);
                    } else {
                        let mut answer = b"re:".to_vec();
                        answer.extend_from_slice(&query.data);
                        let _ = query.answer(&answer);
                    }
                }
            }
        }
    });
    received
}

/// The error rustls reported, whether it came back as a rustls error or wrapped in an i/o
/// error (tokio-rustls wraps handshake failures that way).
pub fn tls_error(error: &NetError) -> Option<&rustls::Error> {
    match error {
        NetError::Tls(tls) => Some(tls),
        NetError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The policy refusal carried inside a TLS certificate error, if that is what failed.
pub fn policy_refusal(error: &NetError) -> Option<PolicyError> {
    match tls_error(error)? {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<PolicyError>().cloned()
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired) => Some(PolicyError::Expired),
        _ => None,
    }
}

pub fn assert_connection_failure(error: &NetError, side: &str) {
    assert!(
        matches!(
            error,
            NetError::Tls(_) | NetError::Io(_) | NetError::Closed(_) | NetError::Policy(_)
        ),
        "{side}: unexpected error kind: {error:?}"
    );
}

/// A self-signed Ed25519 identity built from customised parameters (the stock generator only
/// makes valid ones).
pub fn custom_identity(customize: impl FnOnce(&mut CertificateParams)) -> TlsIdentity {
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("ed25519 key");
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "cocoon");
    params.distinguished_name = name;
    customize(&mut params);
    let cert = params.self_signed(&key).expect("self-signing");
    TlsIdentity {
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
        public_key: key.public_key_raw().try_into().expect("32-byte key"),
    }
}

/// Reads the server's challenge from a raw socket.
pub async fn read_challenge(tcp: &mut TcpStream) -> PowChallenge {
    let mut raw = [0u8; POW_CHALLENGE_LEN];
    tcp.read_exact(&mut raw).await.expect("reading challenge");
    PowChallenge::from_bytes(&raw).expect("valid challenge")
}

/// Solves the proof of work by hand on a raw socket, as a foreign client would.
pub async fn solve_pow_by_hand(tcp: &mut TcpStream) {
    let challenge = read_challenge(tcp).await;
    assert_eq!(challenge.difficulty_bits, TEST_POW_DIFFICULTY);
    let nonce = challenge.solve(0, u64::MAX).expect("solvable");
    tcp.write_all(&PowResponse { nonce }.to_bytes())
        .await
        .expect("sending nonce");
}

/// Whether the peer closed a raw socket: a read returns end-of-file or an error, not data.
pub async fn peer_closed(tcp: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        within("peer close", tcp.read(&mut byte)).await,
        Ok(0) | Err(_)
    )
}

/// Refuses every peer.
#[derive(Debug)]
pub struct RefuseEveryone;

impl PeerPolicy for RefuseEveryone {
    fn name(&self) -> &'static str {
        "refuse-everyone"
    }

    fn verify_peer(&self, _cert_der: &[u8], _now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        Err(PolicyError::Refused("nobody is welcome".into()))
    }
}

/// Accepts only one public key (on top of the shared self-signed checks).
#[derive(Debug)]
pub struct AllowOnly(pub [u8; 32]);

impl PeerPolicy for AllowOnly {
    fn name(&self) -> &'static str {
        "allow-only"
    }

    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        let identity = AcceptAnySelfSigned.verify_peer(cert_der, now)?;
        if identity.public_key != self.0 {
            return Err(PolicyError::Refused("key is not on the allow-list".into()));
        }
        Ok(PeerIdentity {
            policy: self.name(),
            ..identity
        })
    }
}

/// Accepts any server certificate: these tests probe the server, not the client's checks.
#[derive(Debug)]
pub struct TrustAnything(Vec<SignatureScheme>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

pub fn hand_made_client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    cipher_suites: Vec<rustls::SupportedCipherSuite>,
    identity: &TlsIdentity,
) -> rustls::ClientConfig {
    let base = rustls::crypto::ring::default_provider();
    let schemes = base.signature_verification_algorithms.supported_schemes();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites,
        ..base
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("consistent versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(schemes)))
        .with_client_auth_cert(
            vec![CertificateDer::from(identity.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
        )
        .expect("client certificate")
}

/// Runs a hand-made TLS client (after solving the PoW by hand) against an acceptor; returns the
/// client's TLS stream (or error) and the acceptor's result.
pub async fn hand_made_handshake(
    config: rustls::ClientConfig,
) -> (
    std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Session)>,
    Result<Connection, NetError>,
) {
    hand_made_handshake_with(&acceptor(&identity(), any_policy()), config).await
}

/// [`hand_made_handshake`] against a given acceptor.
pub async fn hand_made_handshake_with(
    acceptor: &Acceptor,
    config: rustls::ClientConfig,
) -> (
    std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Session)>,
    Result<Connection, NetError>,
) {
    let (listener, address) = listener().await;
    let client = async {
        let mut tcp = TcpStream::connect(&address).await.expect("tcp connect");
        solve_pow_by_hand(&mut tcp).await;
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let result = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        match result {
            // Speak the packet layer by hand so the acceptor can finish.
            Ok(mut stream) => match hand_made_session_handshake(&mut stream).await {
                Ok(session) => Ok((stream, session)),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    };
    let server = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        acceptor.accept(tcp).await
    };
    within("hand-made handshake", async {
        tokio::join!(client, server)
    })
    .await
}

/// `tcp.connect` → `tcp.connected` with the sans-io session, over any stream; returns the
/// ready session.
pub async fn hand_made_session_handshake(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
) -> std::io::Result<Session> {
    let mut session = Session::client(SessionConfig::client_default(), 0, 77);
    let mut output = Vec::new();
    session.take_output(&mut output);
    stream.write_all(&output).await?;
    stream.flush().await?;
    let mut buffer = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        session
            .receive(0, &buffer[..n])
            .map_err(std::io::Error::other)?;
        if let Some(event) = session.poll_event() {
            assert_eq!(event, SessionEvent::Connected);
            return Ok(session);
        }
    }
}

/// A hand-made client that has finished every handshake layer against `acceptor` and will
/// never read again: (its TLS stream, the server's side of the connection).
pub async fn never_reading_client(
    acceptor: &Acceptor,
) -> (tokio_rustls::client::TlsStream<TcpStream>, Connection) {
    let config = hand_made_client_config(
        &[&rustls::version::TLS13],
        rustls::crypto::ring::default_provider().cipher_suites,
        &identity(),
    );
    let (client, server) = hand_made_handshake_with(acceptor, config).await;
    let (stream, _) = client.expect("hand-made client connects");
    (stream, server.expect("accepted"))
}

/// `count` framed `tcp.ping`s as a client sends them right after `tcp.connect` (sequence
/// numbers from 1).
pub fn ping_frames(count: usize) -> Vec<u8> {
    use cocoon_proto::frame::FrameEncoder;
    use cocoon_proto::{TcpPing, TlBoxed};
    let mut encoder = FrameEncoder::new();
    // Sequence number 0 went to `tcp.connect`.
    encoder
        .encode(&[0; 4], &mut Vec::new())
        .expect("a 4-byte payload frames");
    let mut out = Vec::new();
    for id in 0..count {
        let ping = TcpPing { id: id as i64 }.to_bytes();
        encoder.encode(&ping, &mut out).expect("a ping frames");
    }
    out
}

/// Polls `check` every 10 ms until it holds; fails the test after [`GENEROUS`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Waits until the runtime is back to `baseline` live tasks: the connection's reader and
/// writer have exited, and with them the socket.
pub async fn wait_for_tasks_to_exit(baseline: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    within("connection tasks exit", async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
