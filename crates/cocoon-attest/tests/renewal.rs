//! Certificate renewal: a new key and a new quote on every round, installed while running.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cocoon_attest::renewal::keep_renewed;
use cocoon_attest::{TeeConfig, TeeKind};
use cocoon_net::ShutdownTrigger;

#[tokio::test]
async fn identities_are_replaced_on_schedule_until_shutdown() {
    let installed: Arc<Mutex<Vec<[u8; 32]>>> = Arc::default();
    let sink = installed.clone();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let task = tokio::spawn(keep_renewed(
        TeeConfig::of(TeeKind::DangerFake),
        "renewal-test",
        None,
        Duration::from_millis(30),
        shutdown,
        move |identity| {
            sink.lock().unwrap().push(identity.public_key);
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
    let keys = installed.lock().unwrap().clone();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "every renewal brings a fresh key");
}
