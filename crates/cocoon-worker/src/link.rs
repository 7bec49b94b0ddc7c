//! One worker→proxy link: dial with backoff, register (connectToProxy, compareBalance,
//! handshakeComplete), then run whatever the proxy sends until the link drops; then dial again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cocoon_net::reconnect::{keep_connected, next_incoming};
use cocoon_net::{Connection, ConnectionHandle, Incoming, NetError};
use cocoon_proto::{codes, *};
use cocoon_ton::Address;
use tracing::{debug, warn};

use crate::WorkerShared;

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Keeps one proxy link alive until shutdown.
pub(crate) async fn maintain_link(shared: Arc<WorkerShared>, slot: usize, address: String) {
    let max_backoff = Duration::from_secs_f64(shared.config.max_reconnect_secs);
    let worker = &*shared;
    let address = address.as_str();
    keep_connected(
        address,
        &shared.shutdown,
        max_backoff,
        move || async move {
            let connection = worker.connector.connect(address).await?;
            let contract = handshake(worker, &connection).await?;
            Ok((connection, contract))
        },
        |(connection, contract)| serve(&shared, slot, connection, contract),
    )
    .await;
}

/// Registers with the proxy; returns the worker contract a paid proxy pays through.
async fn handshake(
    shared: &WorkerShared,
    connection: &Connection,
) -> Result<Option<Address>, NetError> {
    let handle = &connection.handle;
    let config = &shared.config;
    let params = WorkerParams {
        worker_owner_address: config.owner_address.clone(),
        model: config.model.clone(),
        coefficient: config.coefficient,
        limits: Some(WorkerLimits {
            is_test: true,
            proxy_cnt: config.proxies.len() as i32,
            max_active_requests: config.max_active_requests.min(i32::MAX as u32) as i32,
        }),
        proto_version: Some(ProtoVersionRange {
            min: codes::MIN_PROTO_VERSION,
            max: codes::PROTO_VERSION,
        }),
    };
    let answer = handle
        .query(&WorkerConnectToProxy { params }.to_bytes(), QUERY_TIMEOUT)
        .await?;
    let connected = WorkerConnectedToProxy::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad connectedToProxy: {e}")))?;
    if connected.params.proto_version.unwrap_or(0) < codes::MIN_PROTO_VERSION {
        return Err(NetError::Closed(
            "proxy speaks a protocol version below 1".into(),
        ));
    }
    let contract = connected.worker_sc_address.parse::<Address>().ok();
    compare_balance(shared, handle, contract.as_ref()).await?;
    let complete = WorkerProxyHandshakeComplete {
        is_disabled: !shared.backend_healthy.load(Ordering::Relaxed),
    };
    let answer = handle.query(&complete.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerProxyHandshakeCompleted::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad handshakeCompleted answer: {e}")))?;
    Ok(contract)
}

/// Compares balances with the proxy and keeps the signed payout it gives (see
/// `payouts_dir`).
async fn compare_balance(
    shared: &WorkerShared,
    handle: &ConnectionHandle,
    contract: Option<&Address>,
) -> Result<(), NetError> {
    let balance = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: 0,
        max_tokens: 0,
    };
    let answer = handle.query(&balance.to_bytes(), QUERY_TIMEOUT).await?;
    let result = WorkerCompareBalanceWithProxyResult::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad compareBalance answer: {e}")))?;
    if let (Some(dir), Some(contract), SignedPayment::Signed { data }) =
        (&shared.config.payouts_dir, contract, &result.signed_payment)
    {
        match cocoon_ton::payout::keep_latest(dir, contract, data) {
            Ok(Some(tokens)) => {
                debug!(contract = %contract, tokens, earned = result.tokens_committed_to_db, "signed payout kept")
            }
            Ok(None) => {
                warn!(contract = %contract, "the proxy sent a payout that is not for this worker's contract")
            }
            Err(error) => warn!(dir = %dir.display(), %error, "cannot keep the signed payout"),
        }
    }
    Ok(())
}

async fn serve(
    shared: &Arc<WorkerShared>,
    slot: usize,
    connection: Connection,
    contract: Option<Address>,
) {
    let Connection {
        handle,
        mut incoming,
    } = connection;
    let _close = handle.close_on_drop();
    shared
        .links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(slot, handle.clone());
    // Health may have changed while we were registering.
    crate::announce_health(&handle, shared.backend_healthy.load(Ordering::Relaxed));
    let mut compare =
        tokio::time::interval(Duration::from_secs_f64(shared.config.payout_check_secs));
    compare.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    compare.tick().await; // the handshake just compared
    loop {
        let message = tokio::select! {
            message = next_incoming(&mut incoming, &shared.shutdown) => message,
            _ = compare.tick(), if contract.is_some() => {
                let (shared, handle, contract) = (shared.clone(), handle.clone(), contract.clone());
                // Not awaited here: the link keeps serving while the proxy answers.
                tokio::spawn(async move {
                    if let Err(error) = compare_balance(&shared, &handle, contract.as_ref()).await {
                        debug!(%error, "balance comparison failed");
                    }
                });
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Incoming::Packet(data) => match ProxyRunQueryEx::from_bytes(&data) {
                Ok(query) => shared.admit(&handle, query),
                Err(error) => {
                    warn!(%error, bytes = data.len(), "malformed packet from proxy; dropping link");
                    break;
                }
            },
            Incoming::Query(query) => {
                let _ = query.fail(codes::BAD_REQUEST, "workers answer no queries");
            }
        }
    }
    shared
        .links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&slot);
}
