//! A worker's attested claims name the model it serves (issue 14): a proxy refuses a worker
//! whose claimed model hash is not SHA-256 of the model it announces in `worker.params`, with
//! an error that says so, and registers one whose claim matches (or that claims none).
//!
//! Loopback only, with the fake TEE on both sides; a raw worker connection presents a
//! certificate with chosen claims and sends `worker.connectToProxy` as a worker daemon does.

use std::net::SocketAddr;
use std::time::Duration;

use cocoon_attest::{ClaimsExtras, PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_net::{Connection, Connector, NetError, ShutdownTrigger};
use cocoon_proto::*;
use cocoon_proxy::RunningProxy;

/// Only a hang takes this long.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn start_proxy() -> (RunningProxy, ShutdownTrigger) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = cocoon_proxy::ProxyConfig::new(
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.client_listen = loopback;
    config.worker_listen = loopback;
    config.http_listen = loopback;
    config.pow_difficulty = 4;
    config.grace_period_secs = 0.0;
    let (trigger, shutdown) = ShutdownTrigger::new();
    let proxy = cocoon_proxy::start(config, shutdown)
        .await
        .expect("proxy starts");
    (proxy, trigger)
}

/// A worker connection whose certificate's claims carry `claimed_model`'s hash (none: no
/// model hash at all).
async fn connect_worker(proxy: &RunningProxy, claimed_model: Option<&str>) -> Connection {
    let extras = ClaimsExtras {
        model_hash: claimed_model.map(cocoon_attest::model_hash),
        ..ClaimsExtras::default()
    };
    let identity = TeeConfig::of(TeeKind::DangerFake)
        .identity_with_extras("cocoon-worker", &extras)
        .expect("worker identity");
    let policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx)
        .build()
        .expect("policy")
        .policy;
    let connector = Connector::new(&identity.tls, policy, 28).expect("connector");
    tokio::time::timeout(
        HANG_GUARD,
        connector.connect(&proxy.worker_addr.to_string()),
    )
    .await
    .expect("no hang")
    .expect("connected")
}

/// `worker.connectToProxy` announcing `model`.
async fn register(connection: &Connection, model: &str) -> Result<Vec<u8>, NetError> {
    let params = WorkerParams {
        worker_owner_address: String::new(),
        model: model.into(),
        coefficient: 1000,
        limits: None,
        supports_cancel: false,
        proto_version: Some(ProtoVersionRange {
            min: codes::MIN_PROTO_VERSION,
            max: codes::PROTO_VERSION,
        }),
    };
    tokio::time::timeout(
        HANG_GUARD,
        connection
            .handle
            .query(&WorkerConnectToProxy { params }.to_bytes(), HANG_GUARD),
    )
    .await
    .expect("no hang")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_claiming_one_model_and_announcing_another_is_refused() {
    let (proxy, trigger) = start_proxy().await;

    let liar = connect_worker(&proxy, Some("small/model")).await;
    let refused = register(&liar, "big/model").await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("big/model")
            && message.contains(&cocoon_attest::hex(&cocoon_attest::model_hash(
                "small/model"
            ))),
        "{message}"
    );

    let honest = connect_worker(&proxy, Some("big/model")).await;
    let answer = register(&honest, "big/model").await.expect("registered");
    WorkerConnectedToProxy::from_bytes(&answer).expect("worker.connectedToProxy");

    // The reference's workers claim no model: they are registered as before.
    let reference = connect_worker(&proxy, None).await;
    let answer = register(&reference, "big/model").await.expect("registered");
    WorkerConnectedToProxy::from_bytes(&answer).expect("worker.connectedToProxy");

    trigger.drain();
}
