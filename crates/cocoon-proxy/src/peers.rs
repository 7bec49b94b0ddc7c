//! Serving one connected peer: the client hop (handshake, auth, queries) and the worker hop
//! (registration handshake, answers, enable/disable, coefficient changes).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cocoon_net::reconnect::next_incoming;
use cocoon_net::{Connection, Incoming, IncomingQuery, Shutdown};
use cocoon_proto::{codes, *};
use tracing::{debug, info, warn};

use crate::core::{Router, WorkerEntry};
use crate::payments::{ClientContract, PaymentStatus, Payments};

/// The longest owner address a client may name. A TON address is 48 characters (user-friendly)
/// or 66 (raw `0:` + hex); the rest is room for other spellings. The owner keys the client's
/// books, which a free proxy keeps for as long as it runs.
pub(crate) const MAX_OWNER_ADDRESS_LEN: usize = 256;

/// Identity facts the proxy tells peers about itself.
pub(crate) struct ProxyIdentity {
    pub public_key: [u8; 32],
    /// The operator's wallet (paid proxy).
    pub owner_address: String,
    /// The proxy contract (paid proxy).
    pub sc_address: String,
}

impl ProxyIdentity {
    fn params(&self, proto_version: i32) -> ProxyParams {
        ProxyParams {
            proxy_public_key: self.public_key,
            proxy_owner_address: self.owner_address.clone(),
            proxy_sc_address: self.sc_address.clone(),
            is_test: Some(true),
            proto_version: Some(proto_version),
        }
    }
}

fn negotiate(range: Option<&ProtoVersionRange>) -> Result<i32, String> {
    let remote_max = range.map(|r| r.max).unwrap_or(0);
    let version = remote_max.min(codes::PROTO_VERSION);
    if version < codes::MIN_PROTO_VERSION {
        return Err(format!(
            "protocol version {remote_max} is too old: this proxy needs at least {}",
            codes::MIN_PROTO_VERSION
        ));
    }
    Ok(version)
}

/// `client.authorizationWithProxySuccess` with the client's payment standing.
fn authorization_success(status: PaymentStatus) -> Vec<u8> {
    AuthorizationWithProxy::Success {
        signed_payment: status.signed_payment,
        tokens_committed_to_db: status.db_tokens,
        max_tokens: status.max_tokens,
    }
    .to_bytes()
}

fn answer(query: IncomingQuery, result: Result<Vec<u8>, (i32, String)>) {
    let outcome = match result {
        Ok(bytes) => query.answer(&bytes),
        Err((code, message)) => query.fail(code, &message),
    };
    if let Err(error) = outcome {
        debug!(%error, "could not answer a query");
    }
}

/// Answers `client.connectToProxy`: the client's ledger key, its contract (paid proxy) and the
/// answer.
async fn connect_client(
    router: &Router,
    identity: &ProxyIdentity,
    handle: &cocoon_net::ConnectionHandle,
    connect: ClientConnectToProxy,
) -> Result<(String, Option<ClientContract>, i64, Vec<u8>), (i32, String)> {
    let version = negotiate(connect.params.proto_version.as_ref())
        .map_err(|message| (codes::BAD_REQUEST, message))?;
    let owner = connect.params.client_owner_address;
    if owner.len() > MAX_OWNER_ADDRESS_LEN {
        warn!(connection = handle.id(), remote = %handle.remote_addr(), bytes = owner.len(), "client owner address too long; refused");
        return Err((
            codes::BAD_REQUEST,
            format!(
                "owner address of {} bytes: at most {MAX_OWNER_ADDRESS_LEN}",
                owner.len()
            ),
        ));
    }
    let nonce: i64 = rand::random();
    let Some(payments) = &router.payments else {
        let key = if owner.is_empty() {
            hex(&handle.peer().public_key)
        } else {
            owner
        };
        let answer = ClientConnectedToProxy {
            params: identity.params(version),
            client_sc_address: String::new(),
            auth: ProxyConnectionAuth::Short {
                secret_hash: [0; 32],
                nonce,
            },
            signed_payment: SignedPayment::Empty,
        };
        return Ok((key, None, nonce, answer.to_bytes()));
    };
    if owner.is_empty() {
        return Err((
            codes::PAYMENT_REQUIRED,
            "this proxy is paid: set owner_address (the client's wallet) in the client config"
                .into(),
        ));
    }
    let contract = payments.client_contract(&owner).await?;
    let signed_payment = payments.client_status(&contract.key).signed_payment;
    // Without a deployed contract holding a secret hash the client must register on chain
    // (facts §11 long auth); otherwise it may prove the secret, or still register.
    let auth = match contract.secret_hash {
        Some(secret_hash) => ProxyConnectionAuth::Short { secret_hash, nonce },
        None => ProxyConnectionAuth::Long { nonce },
    };
    let answer = ClientConnectedToProxy {
        params: identity.params(version),
        client_sc_address: contract.key.clone(),
        auth,
        signed_payment,
    };
    Ok((
        contract.key.clone(),
        Some(contract),
        nonce,
        answer.to_bytes(),
    ))
}

/// Serves a client connection until it closes or the proxy is killed. A free proxy accepts at
/// most `max_free_identities` distinct identities on it.
pub(crate) async fn serve_client(
    router: Arc<Router>,
    identity: Arc<ProxyIdentity>,
    connection: Connection,
    shutdown: Shutdown,
    max_free_identities: usize,
) {
    let Connection {
        handle,
        mut incoming,
    } = connection;
    let connection_id = handle.id();
    let _close = handle.close_on_drop();
    info!(connection = connection_id, remote = %handle.remote_addr(), "client connected");
    let mut client_key: Option<Arc<str>> = None;
    let mut contract: Option<ClientContract> = None;
    // The nonce of the last connectToProxy answer (long authorisation waits for it on chain).
    let mut nonce = 0u64;
    let mut authorized = false;
    // A free proxy's identities on this connection (see `max_free_identities`).
    let mut free_identities: HashSet<String> = HashSet::new();
    while let Some(message) = next_incoming(&mut incoming, &shutdown).await {
        match message {
            Incoming::Query(query) => {
                let result = match ClientToProxyQuery::from_bytes(&query.data) {
                    Ok(ClientToProxyQuery::ConnectToProxy(connect)) => {
                        connect_client(&router, &identity, &handle, connect)
                            .await
                            .and_then(|(key, found, offered, answer)| {
                                let is_new = router.payments.is_none() && !free_identities.contains(&key);
                                if is_new && free_identities.len() >= max_free_identities {
                                    warn!(connection = connection_id, remote = %handle.remote_addr(), identities = free_identities.len(), "client presented too many identities; refused");
                                    return Err((
                                        codes::BAD_REQUEST,
                                        format!("at most {max_free_identities} identities per connection"),
                                    ));
                                }
                                if is_new {
                                    free_identities.insert(key.clone());
                                }
                                client_key = Some(key.into());
                                contract = found;
                                authorized = false;
                                // The register payload carries the TL long's 64 bits as u64.
                                nonce = offered as u64;
                                Ok(answer)
                            })
                    }
                    Ok(ClientToProxyQuery::AuthorizeShort(auth)) => match (&client_key, &router.payments) {
                        (None, _) => Err((
                            codes::BAD_REQUEST,
                            "connectToProxy must come first".to_string(),
                        )),
                        (Some(key), Some(payments)) => {
                            let matches = contract
                                .as_ref()
                                .is_some_and(|c| Payments::secret_matches(c, &auth.data));
                            if matches {
                                authorized = true;
                                let status = payments.client_status(key);
                                info!(connection = connection_id, client = %key, charged = status.db_tokens, "client authorized");
                                Ok(authorization_success(status))
                            } else {
                                warn!(connection = connection_id, client = %key, "client secret does not match its contract");
                                Ok(AuthorizationWithProxy::Failed {
                                    error_code: codes::PAYMENT_REQUIRED,
                                    error: "the secret does not match the client contract's secret hash".into(),
                                }
                                .to_bytes())
                            }
                        }
                        // A free proxy has no balance to check: every connected client may
                        // spend.
                        (Some(_), None) => {
                            authorized = true;
                            Ok(authorization_success(PaymentStatus::free()))
                        }
                    },
                    Ok(ClientToProxyQuery::AuthorizeLong(_)) => match (&client_key, &router.payments, &contract) {
                        (Some(key), Some(payments), Some(found)) => {
                            info!(connection = connection_id, client = %key, "waiting for the client's register transaction");
                            // The chain is slower than the authentication deadline.
                            handle.defer_auth_deadline(
                                crate::payments::LONG_AUTH_TIMEOUT + LONG_AUTH_MARGIN,
                            );
                            let registered = tokio::select! {
                                registered = payments.await_registration(key, nonce, crate::payments::LONG_AUTH_TIMEOUT) => registered,
                                _ = shutdown.draining() => false,
                            };
                            let refreshed = if registered {
                                payments.client_contract(&found.owner).await.map(Some)
                            } else {
                                Ok(None)
                            };
                            match refreshed {
                                Ok(Some(fresh)) => {
                                    contract = Some(fresh);
                                    authorized = true;
                                    let status = payments.client_status(key);
                                    info!(connection = connection_id, client = %key, charged = status.db_tokens, "client authorized (long)");
                                    Ok(authorization_success(status))
                                }
                                Ok(None) => Ok(AuthorizationWithProxy::Failed {
                                    error_code: codes::PAYMENT_REQUIRED,
                                    error: format!("no register transaction with nonce {nonce} from client contract {key} reached this proxy's contract in time"),
                                }
                                .to_bytes()),
                                Err(error) => Err(error),
                            }
                        }
                        (None, _, _) | (Some(_), Some(_), None) => Err((
                            codes::BAD_REQUEST,
                            "connectToProxy must come first".to_string(),
                        )),
                        // A free proxy: nothing to register.
                        (Some(_), None, _) => {
                            authorized = true;
                            Ok(authorization_success(PaymentStatus::free()))
                        }
                    },
                    Ok(ClientToProxyQuery::GetWorkerTypesV2(_)) => {
                        Ok(router.worker_types().to_bytes())
                    }
                    Ok(ClientToProxyQuery::GetSealingWorkers(get)) => {
                        Ok(router.sealing_workers(&get.model_name).to_bytes())
                    }
                    Ok(ClientToProxyQuery::UpdatePaymentStatus(_)) => match (&client_key, authorized) {
                        (Some(key), true) => {
                            let status = router
                                .payments
                                .as_ref()
                                .map(|payments| payments.client_status(key))
                                .unwrap_or_else(PaymentStatus::free);
                            Ok(ClientPaymentStatus {
                                signed_payment: status.signed_payment,
                                db_tokens: status.db_tokens,
                                max_tokens: status.max_tokens,
                            }
                            .to_bytes())
                        }
                        _ => Err((
                            codes::BAD_REQUEST,
                            "updatePaymentStatus before authorization".to_string(),
                        )),
                    },
                    // The schema defines it; no runner serves it. Refunds go through the client
                    // contract (`cocoon wallet close`).
                    Ok(ClientToProxyQuery::RequestRefund(_)) => Err((
                        codes::BAD_REQUEST,
                        "requestRefund is not served: close the client contract on chain to get its balance back".to_string(),
                    )),
                    Err(error) => Err((codes::BAD_REQUEST, format!("unknown query: {error}"))),
                };
                answer(query, result);
                if authorized && !handle.is_authenticated() {
                    handle.mark_authenticated();
                }
            }
            Incoming::Packet(data) => match ClientToProxyPacket::from_bytes(&data) {
                Ok(run) => match (&client_key, authorized) {
                    (Some(key), true) => match run {
                        ClientToProxyPacket::RunQuery(run) => {
                            router.start_request(&handle, key, run)
                        }
                        ClientToProxyPacket::RunSealed(run) => {
                            router.start_sealed_request(&handle, key, run)
                        }
                    },
                    _ => {
                        warn!(
                            connection = connection_id,
                            "client sent a query before authorizing; closing"
                        );
                        handle.close("query before authorization");
                        break;
                    }
                },
                Err(error) => {
                    warn!(connection = connection_id, %error, bytes = data.len(), "malformed packet from client; closing");
                    handle.close("malformed packet");
                    break;
                }
            },
        }
    }
    handle.close("proxy stopped serving the client");
    router.client_gone(connection_id);
    router
        .counters
        .client_connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    info!(connection = connection_id, reason = ?handle.close_reason(), "client disconnected");
}

/// Serves a worker connection until it closes or the proxy is killed.
pub(crate) async fn serve_worker(
    router: Arc<Router>,
    identity: Arc<ProxyIdentity>,
    connection: Connection,
    shutdown: Shutdown,
) {
    let Connection {
        handle,
        mut incoming,
    } = connection;
    let id = handle.id();
    let _close = handle.close_on_drop();
    info!(connection = id, remote = %handle.remote_addr(), "worker connected");
    let mut registered = false;
    let mut worker_key: Option<String> = None;
    while let Some(message) = next_incoming(&mut incoming, &shutdown).await {
        match message {
            Incoming::Query(query) => {
                let result = match WorkerToProxyQuery::from_bytes(&query.data) {
                    Ok(WorkerToProxyQuery::ConnectToProxy(connect)) => {
                        let contract = match &router.payments {
                            Some(payments) => payments
                                .worker_contract(&connect.params.worker_owner_address)
                                .await
                                .map(Some),
                            None => Ok(None),
                        };
                        let result = contract.and_then(|contract| {
                            let key = register_worker(
                                &router,
                                &identity,
                                &handle,
                                connect.params,
                                contract.clone(),
                            )?;
                            worker_key = Some(key.0);
                            Ok(key.1)
                        });
                        if let Err((_, error)) = &result {
                            warn!(connection = id, %error, "worker refused");
                        }
                        registered |= result.is_ok();
                        if registered {
                            handle.mark_authenticated();
                        }
                        result
                    }
                    Ok(WorkerToProxyQuery::CompareBalance(compare)) => {
                        let status = match (&router.payments, &worker_key) {
                            (Some(payments), Some(key)) => {
                                payments.worker_reconciliation(key).await
                            }
                            _ => PaymentStatus::free(),
                        };
                        // 1 = the worker knows of more than these books: it then sends
                        // extendedCompareBalanceWithProxy. (A C++ worker asserts that a 0
                        // answer's max_tokens is the largest count it knows.)
                        let knows_more = compare.max_tokens > status.max_tokens
                            || compare.tokens_committed_to_db > status.db_tokens;
                        if knows_more {
                            warn!(
                                connection = id,
                                worker_max = compare.max_tokens,
                                worker_db = compare.tokens_committed_to_db,
                                ours = status.max_tokens,
                                "worker reports more earned tokens than this proxy's books"
                            );
                        }
                        Ok(WorkerCompareBalanceWithProxyResult {
                            signed_payment: status.signed_payment,
                            tokens_committed_to_db: status.db_tokens,
                            max_tokens: status.max_tokens,
                            error_code: i32::from(knows_more),
                        }
                        .to_bytes())
                    }
                    // What the worker sends after a 1 above. The books are the only record this
                    // proxy pays from, and a worker's claim is not money: as the reference
                    // proxy does, answer 0 so the worker goes on (it is paid what the books
                    // hold), and leave the warning above in the log.
                    Ok(WorkerToProxyQuery::ExtendedCompareBalance(extended)) => {
                        info!(
                            connection = id,
                            worker_db = extended.tokens_committed_to_db,
                            evidence_bytes = extended.other.len(),
                            "worker's extended balance comparison: paying what the books hold"
                        );
                        Ok(
                            WorkerExtendedCompareBalanceWithProxyResult { error_code: 0 }
                                .to_bytes(),
                        )
                    }
                    Ok(WorkerToProxyQuery::UpdatePaymentStatus(_)) if registered => {
                        let status = match (&router.payments, &worker_key) {
                            (Some(payments), Some(key)) => {
                                payments.worker_reconciliation(key).await
                            }
                            _ => PaymentStatus::free(),
                        };
                        Ok(WorkerPaymentStatus {
                            signed_payment: status.signed_payment,
                            db_tokens: status.db_tokens,
                            max_tokens: status.max_tokens,
                        }
                        .to_bytes())
                    }
                    Ok(WorkerToProxyQuery::UpdatePaymentStatus(_)) => Err((
                        codes::BAD_REQUEST,
                        "updatePaymentStatus before connectToProxy".to_string(),
                    )),
                    Ok(WorkerToProxyQuery::HandshakeComplete(complete)) if registered => {
                        router.update_worker(id, |w| {
                            w.ready = true;
                            w.enabled = !complete.is_disabled;
                        });
                        info!(
                            connection = id,
                            enabled = !complete.is_disabled,
                            "worker ready"
                        );
                        Ok(WorkerProxyHandshakeCompleted {}.to_bytes())
                    }
                    Ok(WorkerToProxyQuery::HandshakeComplete(_)) => Err((
                        codes::BAD_REQUEST,
                        "connectToProxy must come first".to_string(),
                    )),
                    Err(error) => Err((codes::BAD_REQUEST, format!("unknown query: {error}"))),
                };
                answer(query, result);
            }
            Incoming::Packet(data) => match WorkerToProxyMessage::from_bytes(&data) {
                Ok(WorkerToProxyMessage::Answer(answer)) => router.on_worker_answer(id, answer),
                Ok(WorkerToProxyMessage::EnabledDisabled(change)) => {
                    info!(
                        connection = id,
                        disabled = change.disabled != 0,
                        "worker changed availability"
                    );
                    router.update_worker(id, |w| w.enabled = change.disabled == 0);
                }
                Ok(WorkerToProxyMessage::NewCoefficient(change)) => {
                    if (0..=MAX_COEFFICIENT).contains(&change.new_coefficient) {
                        router.update_worker(id, |w| w.coefficient = change.new_coefficient);
                    } else {
                        warn!(
                            connection = id,
                            coefficient = change.new_coefficient,
                            "ignoring out-of-range coefficient"
                        );
                    }
                }
                Err(error) => {
                    warn!(connection = id, %error, bytes = data.len(), "malformed packet from worker; closing");
                    handle.close("malformed packet");
                    break;
                }
            },
        }
    }
    handle.close("proxy stopped serving the worker");
    let reason = handle.close_reason().unwrap_or_default();
    if shutdown.is_killed() {
        // Killed, the proxy goes as a crash would: its clients see their connections drop
        // (and send again elsewhere), not a "worker disconnected" answer from a dying proxy.
        info!(connection = id, "worker link dropped: the proxy was killed");
        return;
    }
    router.remove_worker(id, &reason);
    info!(connection = id, %reason, "worker disconnected");
}

/// Time a long authorisation may take beyond its wait on chain before the connection's
/// authentication deadline applies again (reading the refreshed contract, answering).
const LONG_AUTH_MARGIN: Duration = Duration::from_secs(30);

/// Highest price coefficient a worker may ask (1000 = 1.0×).
const MAX_COEFFICIENT: i32 = 1_000_000_000;

fn register_worker(
    router: &Router,
    identity: &ProxyIdentity,
    handle: &cocoon_net::ConnectionHandle,
    params: WorkerParams,
    contract: Option<String>,
) -> Result<(String, Vec<u8>), (i32, String)> {
    let version = negotiate(params.proto_version.as_ref()).map_err(|m| (codes::BAD_REQUEST, m))?;
    if params.model.is_empty() {
        return Err((
            codes::BAD_REQUEST,
            "worker announced an empty model name".into(),
        ));
    }
    // A worker cannot claim one model in its attested claims and announce another.
    if let Err(why) = cocoon_attest::check_claimed_model(
        handle.peer().certificate.der(),
        std::time::SystemTime::now(),
        &params.model,
    ) {
        warn!(connection = handle.id(), model = %params.model, %why, "refusing a worker whose attested model is not the one it announces");
        return Err((
            codes::BAD_REQUEST,
            format!("worker announced model {:?}, but {why}", params.model),
        ));
    }
    if let Some(payments) = &router.payments {
        if !payments.rules.allows_model(&params.model) {
            return Err((
                codes::BAD_REQUEST,
                format!(
                    "the root does not allow model {:?} (SHA-256 {}): its owner adds it with `cocoon root add-model`",
                    params.model,
                    hex(&<sha2::Sha256 as sha2::Digest>::digest(params.model.as_bytes()))
                ),
            ));
        }
    }
    if !(0..=MAX_COEFFICIENT).contains(&params.coefficient) {
        return Err((
            codes::BAD_REQUEST,
            format!(
                "coefficient {} outside 0..={MAX_COEFFICIENT}",
                params.coefficient
            ),
        ));
    }
    let (max_active, proxy_cnt) = params
        .limits
        .as_ref()
        .map(|l| {
            (
                l.max_active_requests.max(1) as u32,
                l.proxy_cnt.max(1) as u32,
            )
        })
        .unwrap_or((1, 1));
    // A paid proxy credits the worker contract; a free one counts by owner or key.
    let owner = match contract {
        Some(contract) => contract,
        None if params.worker_owner_address.is_empty() => hex(&handle.peer().public_key),
        None => params.worker_owner_address.clone(),
    };
    info!(connection = handle.id(), model = %params.model, coefficient = params.coefficient, max_active, proxy_cnt, "worker registered");
    router.add_worker(
        handle.id(),
        WorkerEntry {
            handle: handle.clone(),
            owner: owner.as_str().into(),
            model: params.model,
            coefficient: params.coefficient,
            max_active: max_active.div_ceil(proxy_cnt),
            running: 0,
            ready: false,
            enabled: false,
            avg_latency_secs: crate::core::INITIAL_LATENCY_SECS,
            served: 0,
            failed: 0,
            tokens: 0,
            earned_tokens: 0,
            overreported: 0,
            supports_cancel: params.supports_cancel,
            sealing_key: cocoon_attest::sealing_key_of(
                handle.peer().certificate.der(),
                std::time::SystemTime::now(),
            ),
            certificate: handle.peer().certificate.clone(),
        },
    );
    let worker_sc_address = if router.payments.is_some() {
        owner.clone()
    } else {
        String::new()
    };
    let answer = WorkerConnectedToProxy {
        params: identity.params(version),
        worker_sc_address,
    }
    .to_bytes();
    Ok((owner, answer))
}

/// Lower-case hex, for keys in logs and ledgers.
pub(crate) use cocoon_attest::hex;
