//! Certificate renewal: a new key and a new quote on every round, installed while running, and
//! every renewed certificate's claims keep the node's extras (a worker's model identity).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cocoon_attest::renewal::keep_renewed;
use cocoon_attest::{claims_of, model_hash, ClaimsExtras, TeeConfig, TeeKind};
use cocoon_net::ShutdownTrigger;

/// Each installed identity's key and certificate (DER).
type Installed = Arc<Mutex<Vec<([u8; 32], Vec<u8>)>>>;

#[tokio::test]
async fn identities_are_replaced_on_schedule_until_shutdown() {
    let installed: Installed = Arc::default();
    let extras = ClaimsExtras {
        sealing_key: Some([1; 32]),
        model_hash: Some(model_hash("renewed-model")),
        weights_digest: Some([4; 32]),
    };
    let sink = installed.clone();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let task = tokio::spawn(keep_renewed(
        TeeConfig::of(TeeKind::DangerFake),
        "renewal-test",
        extras,
        Duration::from_millis(30),
        shutdown,
        move |identity| {
            sink.lock()
                .unwrap()
                .push((identity.public_key, identity.cert_der.clone()));
            Ok(())
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while installed.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renewals did not happen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    trigger.drain();
    task.await.unwrap();
    let renewed = installed.lock().unwrap().clone();
    let now = std::time::SystemTime::now();
    for (key, cert) in &renewed {
        let claims = claims_of(cert, now).expect("the renewed certificate's claims parse");
        assert_eq!(claims.public_key, *key);
        assert_eq!(claims.hpke_public_key, extras.sealing_key);
        assert_eq!(claims.model_hash, extras.model_hash);
        assert_eq!(claims.weights_digest, extras.weights_digest);
    }
    let keys: Vec<[u8; 32]> = renewed.iter().map(|(key, _)| *key).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "every renewal brings a fresh key");
}
