//! Test support: the fake toncenter, the stand-in Telegram Bot API, the scripted backend,
//! socket helpers, and (re-exported from `cocoon-devnet`, the shipped devnet) the devnet
//! builder, its chain and the mock backend.

pub mod fake_bot_api;
pub mod fake_toncenter;
pub mod scripted_backend;
pub mod sockets;

pub use cocoon_devnet::{devchain, devnet, http, mock_backend};
pub use cocoon_devnet::{Devnet, DevnetBuilder, MockBackend, MockBackendConfig};
pub use fake_toncenter::FakeToncenter;

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
