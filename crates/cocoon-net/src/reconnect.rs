//! Outbound links that stay up: dial and handshake, serve until the link drops, then dial again
//! with exponential backoff, until shutdown. Workers use it for their proxies, clients too.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{Incoming, NetError, Shutdown};

/// First pause after a failed attempt; doubles up to the caller's maximum.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Keeps a link to `address` until `shutdown` drains. `connect` dials and runs the role's
/// handshake; `serve` runs until the connection ends.
pub async fn keep_connected<T, C, CF, S, SF>(
    address: &str,
    shutdown: &Shutdown,
    max_backoff: Duration,
    mut connect: C,
    mut serve: S,
) where
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, NetError>>,
    S: FnMut(T) -> SF,
    SF: Future<Output = ()>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        if shutdown.is_draining() {
            return;
        }
        let result = tokio::select! {
            result = connect() => result,
            _ = shutdown.draining() => return,
        };
        match result {
            Ok(connection) => {
                backoff = FIRST_BACKOFF;
                info!(peer = %address, "link up");
                serve(connection).await;
                info!(peer = %address, "link closed");
            }
            Err(error) => {
                warn!(peer = %address, %error, retry_in_ms = backoff.as_millis() as u64, "cannot reach peer");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.draining() => return,
                }
                backoff = (backoff * 2).min(max_backoff.max(FIRST_BACKOFF));
            }
        }
    }
}

/// The next packet or query, or `None` once the connection ended or the daemon was killed.
/// Serving loops use it so a kill stops them without waiting for the peer.
pub async fn next_incoming(
    incoming: &mut mpsc::Receiver<Incoming>,
    shutdown: &Shutdown,
) -> Option<Incoming> {
    tokio::select! {
        message = incoming.recv() => message,
        _ = shutdown.killed() => None,
    }
}
