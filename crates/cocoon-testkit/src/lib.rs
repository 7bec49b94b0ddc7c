//! Test support: mock backends, fake TEE and builders that start daemons on loopback.

pub mod devchain;
pub mod devnet;
pub mod fake_toncenter;
pub mod http;
pub mod mock_backend;
pub mod scripted_backend;
pub mod sockets;

pub use devnet::{Devnet, DevnetBuilder};
pub use fake_toncenter::FakeToncenter;
pub use mock_backend::{MockBackend, MockBackendConfig};

/// Polls `check` every 20 ms until it holds; panics naming `what` after 20 s (only a hang
/// gets there).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
