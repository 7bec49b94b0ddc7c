//! One worker→proxy link: dial with backoff, register (connectToProxy, compareBalance — and
//! extendedCompareBalance when this worker knows of more earnings than the proxy —,
//! handshakeComplete), then run whatever the proxy sends until the link drops; then dial again.
//! A paid proxy tells the worker its payment standing after every request
//! (`proxy.workerRequestPayment`) and when asked (`worker.updatePaymentStatus`, every
//! `payout_check_secs`); the newest signed payout is kept in `payouts_dir`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cocoon_net::reconnect::{keep_connected, next_incoming};
use cocoon_net::{Connection, ConnectionHandle, Incoming, NetError, Shutdown};
use cocoon_proto::{codes, *};
use cocoon_ton::Address;
use tracing::{debug, warn};

use crate::WorkerShared;

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Keeps one proxy link alive until `shutdown` (the worker's, or the link's own when its proxy
/// left the root's registry).
pub(crate) async fn maintain_link(
    shared: Arc<WorkerShared>,
    slot: usize,
    address: String,
    shutdown: Shutdown,
) {
    let max_backoff = Duration::from_secs_f64(shared.config.max_reconnect_secs);
    let worker = &shared;
    let address = address.as_str();
    let link_shutdown = &shutdown;
    keep_connected(
        address,
        &shutdown,
        max_backoff,
        move || async move {
            let connection = worker.connector.connect(address).await?;
            let contract = handshake(worker, &connection).await?;
            Ok((connection, contract))
        },
        |(connection, contract)| serve(&shared, slot, connection, contract, link_shutdown),
    )
    .await;
}

/// Registers with the proxy; returns the worker contract a paid proxy pays through.
async fn handshake(
    shared: &Arc<WorkerShared>,
    connection: &Connection,
) -> Result<Option<Address>, NetError> {
    let handle = &connection.handle;
    let config = &shared.config;
    let params = WorkerParams {
        worker_owner_address: config.owner_address.clone(),
        model: config.model.clone(),
        coefficient: shared.coefficient.load(Ordering::Relaxed),
        limits: Some(WorkerLimits {
            is_test: true,
            proxy_cnt: shared.proxy_count().min(i32::MAX as usize) as i32,
            max_active_requests: config.max_active_requests.min(i32::MAX as u32) as i32,
        }),
        supports_cancel: true,
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
    let contract = match &shared.chain {
        Some(chain) => Some(
            chain
                .prepare(
                    &connected.params,
                    &connected.worker_sc_address,
                    &config.owner_address,
                )
                .await
                .map_err(NetError::Closed)?,
        ),
        None => connected.worker_sc_address.parse::<Address>().ok(),
    };
    compare_balance(shared, handle, contract.as_ref()).await?;
    let complete = WorkerProxyHandshakeComplete {
        is_disabled: !shared.serving(),
    };
    let answer = handle.query(&complete.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerProxyHandshakeCompleted::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad handshakeCompleted answer: {e}")))?;
    Ok(contract)
}

/// What the worker knows of its payments at one proxy, in the payment TL's three numbers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Standing {
    /// Tokens of the newest signed payout (what can be committed to the chain).
    pub(crate) signed_tokens: i64,
    /// Tokens the proxy said its books hold durably.
    pub(crate) db_tokens: i64,
    /// All tokens the proxy said it knows of.
    pub(crate) max_tokens: i64,
    /// The newest signed payout's bytes, so an unchanged one is not parsed and kept again.
    last_signed: Vec<u8>,
}

impl Standing {
    /// For `/stats`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "signed_tokens": self.signed_tokens,
            "db_tokens": self.db_tokens,
            "max_tokens": self.max_tokens,
        })
    }
}

/// Records what a proxy said; keeps a newer signed payout (see `payouts_dir`) on a blocking
/// thread: writing it syncs the disk, which must not hold the runtime's threads (and the
/// streams they serve) for milliseconds, or for as long as the disk is busy.
fn record_standing(
    shared: &Arc<WorkerShared>,
    contract: Option<&Address>,
    signed_payment: &SignedPayment,
    db_tokens: i64,
    max_tokens: i64,
) {
    let Some(contract) = contract else { return };
    let key = contract.to_hex();
    let data = {
        let mut standings = shared.standings.lock().unwrap_or_else(|p| p.into_inner());
        let standing = standings.entry(key).or_default();
        standing.db_tokens = standing.db_tokens.max(db_tokens);
        standing.max_tokens = standing.max_tokens.max(max_tokens).max(standing.db_tokens);
        match signed_payment {
            SignedPayment::Signed { data } if *data != standing.last_signed => {
                standing.last_signed.clone_from(data);
                data.clone()
            }
            _ => return,
        }
    };
    if shared.config.payouts_dir.is_none() {
        return;
    }
    let (shared, contract) = (Arc::clone(shared), contract.clone());
    // Not awaited: `keep_latest` lets one write at a time and never replaces a payout with a
    // lower one, so payouts kept out of order still leave the highest.
    tokio::task::spawn_blocking(move || keep_payout(&shared, &contract, &data));
}

/// Keeps a signed payout in `payouts_dir` if it pays more than the one kept there.
fn keep_payout(shared: &WorkerShared, contract: &Address, data: &[u8]) {
    let Some(dir) = &shared.config.payouts_dir else {
        return;
    };
    match cocoon_ton::payout::keep_latest(dir, contract, data) {
        Ok(Some(tokens)) => {
            let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
            let mut standings = shared.standings.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(standing) = standings.get_mut(&contract.to_hex()) {
                standing.signed_tokens = standing.signed_tokens.max(tokens);
            }
            debug!(contract = %contract, tokens, "signed payout kept");
        }
        Ok(None) => {
            warn!(contract = %contract, "the proxy sent a payout that is not for this worker's contract")
        }
        Err(error) => warn!(dir = %dir.display(), %error, "cannot keep the signed payout"),
    }
}

/// The handshake's balance comparison: tells the proxy what this worker knows, keeps what the
/// proxy answers, and when the proxy knows less, asks it to reconcile
/// (`extendedCompareBalanceWithProxy`); a non-zero answer to that ends the link.
async fn compare_balance(
    shared: &Arc<WorkerShared>,
    handle: &ConnectionHandle,
    contract: Option<&Address>,
) -> Result<(), NetError> {
    let known = contract
        .and_then(|c| {
            let standings = shared.standings.lock().unwrap_or_else(|p| p.into_inner());
            standings.get(&c.to_hex()).cloned()
        })
        .unwrap_or_default();
    let balance = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: known.signed_tokens,
        tokens_committed_to_db: known.db_tokens,
        max_tokens: known.max_tokens,
    };
    let answer = handle.query(&balance.to_bytes(), QUERY_TIMEOUT).await?;
    let result = WorkerCompareBalanceWithProxyResult::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad compareBalance answer: {e}")))?;
    if result.tokens_committed_to_db < known.db_tokens || result.max_tokens < known.max_tokens {
        warn!(
            ours_db = known.db_tokens,
            ours_max = known.max_tokens,
            proxy_db = result.tokens_committed_to_db,
            proxy_max = result.max_tokens,
            "the proxy reports fewer earned tokens than it told this worker before"
        );
    }
    record_standing(
        shared,
        contract,
        &result.signed_payment,
        result.tokens_committed_to_db,
        result.max_tokens,
    );
    if result.error_code != 0 {
        let extended = WorkerExtendedCompareBalanceWithProxy {
            tokens_committed_to_db: known.db_tokens,
            other: Vec::new(),
        };
        let answer = handle.query(&extended.to_bytes(), QUERY_TIMEOUT).await?;
        let result = WorkerExtendedCompareBalanceWithProxyResult::from_bytes(&answer)
            .map_err(|e| NetError::Closed(format!("bad extendedCompareBalance answer: {e}")))?;
        if result.error_code != 0 {
            return Err(NetError::Closed(format!(
                "the proxy could not reconcile this worker's earnings (error {})",
                result.error_code
            )));
        }
    }
    Ok(())
}

/// Asks the proxy for this worker's payment standing (`worker.updatePaymentStatus`).
async fn update_payment_status(
    shared: &Arc<WorkerShared>,
    handle: &ConnectionHandle,
    contract: Option<&Address>,
) -> Result<(), NetError> {
    let answer = handle
        .query(&WorkerUpdatePaymentStatus {}.to_bytes(), QUERY_TIMEOUT)
        .await?;
    let status = WorkerPaymentStatus::from_bytes(&answer)
        .map_err(|e| NetError::Closed(format!("bad paymentStatus answer: {e}")))?;
    record_standing(
        shared,
        contract,
        &status.signed_payment,
        status.db_tokens,
        status.max_tokens,
    );
    Ok(())
}

async fn serve(
    shared: &Arc<WorkerShared>,
    slot: usize,
    connection: Connection,
    contract: Option<Address>,
    shutdown: &Shutdown,
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
            message = next_incoming(&mut incoming, shutdown) => message,
            _ = compare.tick(), if contract.is_some() => {
                let (shared, handle, contract) = (shared.clone(), handle.clone(), contract.clone());
                // Not awaited here: the link keeps serving while the proxy answers.
                tokio::spawn(async move {
                    if let Err(error) = update_payment_status(&shared, &handle, contract.as_ref()).await {
                        debug!(%error, "payment status update failed");
                    }
                    if let (Some(chain), Some(contract)) = (&shared.chain, &contract) {
                        chain.check_paid(contract).await;
                    }
                    if let (Some(chain), Some(dir), Some(contract)) =
                        (&shared.chain, &shared.config.payouts_dir, &contract)
                    {
                        chain.maybe_submit(dir, contract).await;
                    }
                });
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Incoming::Packet(data) => match ProxyToWorkerMessage::from_bytes(&data) {
                Ok(ProxyToWorkerMessage::RunQuery(query)) => {
                    shared.admit(&handle, crate::request::Job::Plain(query))
                }
                Ok(ProxyToWorkerMessage::RunSealed(query)) => {
                    shared.admit(&handle, crate::request::Job::Sealed(query))
                }
                Ok(ProxyToWorkerMessage::RequestPayment(payment)) => record_standing(
                    shared,
                    contract.as_ref(),
                    &payment.signed_payment,
                    payment.db_tokens,
                    payment.max_tokens,
                ),
                Ok(ProxyToWorkerMessage::SignedPayment(payment)) => {
                    record_standing(shared, contract.as_ref(), &payment, 0, 0)
                }
                Ok(ProxyToWorkerMessage::Cancel(cancel)) => {
                    shared.cancel(&handle, cancel.request_id)
                }
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
