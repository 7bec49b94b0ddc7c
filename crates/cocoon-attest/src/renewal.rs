//! Keeping a node's RA-TLS certificate fresh: certificates live one day (as in the reference)
//! and are replaced every hour with a new key and a new quote, so a peer never sees one near
//! its end and a leaked key is useful for an hour at most.

use std::time::Duration;

use cocoon_net::{NetError, Shutdown, TlsIdentity};

use crate::claims::ClaimsExtras;
use crate::config::TeeConfig;

/// How often the certificate is replaced.
pub const RENEW_EVERY: Duration = Duration::from_secs(3600);

/// Until `shutdown` drains: every `every`, builds a new identity from `tee` and hands it to
/// `install` (which loads it into acceptors and connectors); its claims carry `extras` (a
/// worker keeps its HPKE key and model identity across renewals). A failed renewal is logged and
/// retried a minute later; the current certificate stays valid for the rest of its day.
pub async fn keep_renewed(
    tee: TeeConfig,
    name: &'static str,
    extras: ClaimsExtras,
    every: Duration,
    shutdown: Shutdown,
    install: impl Fn(&TlsIdentity) -> Result<(), NetError>,
) {
    let mut wait = every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.draining() => return,
        }
        let tee = tee.clone();
        // Quote generation is blocking file I/O against configfs.
        let identity =
            tokio::task::spawn_blocking(move || tee.identity_with_extras(name, &extras)).await;
        let outcome = match identity {
            Ok(Ok(identity)) => install(&identity.tls).map_err(|e| e.to_string()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        wait = match outcome {
            Ok(()) => {
                tracing::info!(name, "certificate renewed");
                every
            }
            Err(error) => {
                tracing::error!(name, %error, "certificate renewal failed; retrying in a minute");
                Duration::from_secs(60)
            }
        };
    }
}
