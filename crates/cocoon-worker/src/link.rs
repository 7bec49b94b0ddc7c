//! One worker→proxy link: dial with backoff, register (connectToProxy, compareBalance,
//! handshakeComplete), then run whatever the proxy sends until the link drops; then dial again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cocoon_net::reconnect::{keep_connected, next_incoming};
use cocoon_net::{Connection, Incoming, NetError};
use cocoon_proto::{codes, *};
use tracing::warn;

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
            handshake(worker, &connection).await?;
            Ok(connection)
        },
        |connection| serve(&shared, slot, connection),
    )
    .await;
}

async fn handshake(shared: &WorkerShared, connection: &Connection) -> Result<(), NetError> {
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
    let balance = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: 0,
        max_tokens: 0,
    };
    let answer = handle.query(&balance.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerCompareBalanceWithProxyResult::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad compareBalance answer: {e}")))?;
    let complete = WorkerProxyHandshakeComplete {
        is_disabled: !shared.backend_healthy.load(Ordering::Relaxed),
    };
    let answer = handle.query(&complete.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerProxyHandshakeCompleted::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad handshakeCompleted answer: {e}")))?;
    Ok(())
}

async fn serve(shared: &Arc<WorkerShared>, slot: usize, connection: Connection) {
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
    while let Some(message) = next_incoming(&mut incoming, &shared.shutdown).await {
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
