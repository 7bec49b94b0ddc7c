//! A peer policy runs once per handshake on each side: attested policies can cost a cold DCAP
//! verification, so the transport must not ask twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use cocoon_net::policy::danger::AcceptAnySelfSigned;
use cocoon_net::{Acceptor, Connector, PeerIdentity, PeerPolicy, PolicyError, TlsIdentity};

#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl PeerPolicy for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        AcceptAnySelfSigned.verify_peer(cert_der, now)
    }
}

#[tokio::test]
async fn each_side_verifies_its_peer_exactly_once_per_handshake() {
    let server_policy = Arc::new(Counting::default());
    let client_policy = Arc::new(Counting::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let acceptor = Acceptor::new(
        &TlsIdentity::generate_self_signed().unwrap(),
        server_policy.clone(),
        4,
    )
    .unwrap();
    let connector = Connector::new(
        &TlsIdentity::generate_self_signed().unwrap(),
        client_policy.clone(),
        8,
    )
    .unwrap();
    // Three sequential handshakes.
    for round in 1..=3usize {
        let server = {
            let acceptor = acceptor.clone();
            let listener = &listener;
            async move {
                let (socket, _) = listener.accept().await.unwrap();
                acceptor.accept(socket).await.unwrap()
            }
        };
        let (server, client) = tokio::join!(server, connector.connect(&address));
        let client = client.unwrap();
        assert_eq!(server.handle.peer().public_key.len(), 32);
        assert_eq!(client.handle.peer().policy, "any");
        assert_eq!(server_policy.0.load(Ordering::SeqCst), round);
        assert_eq!(client_policy.0.load(Ordering::SeqCst), round);
    }
}
