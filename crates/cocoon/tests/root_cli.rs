//! `cocoon root` against a devnet chain and over toncenter's API, as a root owner runs it.

use std::process::Output;

use cocoon_testkit::devchain::DevChain;
use sha2::{Digest, Sha256};
use support::stdout as ok;

mod support;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_manages_the_registry_and_the_allow_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let dev = DevChain::open(
        &data,
        &data.join("prices.toml"),
        1,
        &["mock-model".to_string()],
    )
    .await
    .unwrap();
    let data_arg = data.to_str().unwrap().to_string();
    let root = |args: &[&str]| {
        let mut all = vec!["root", "--data-dir", &data_arg];
        all.extend_from_slice(args);
        support::cocoon(&all)
    };
    let read = || async { dev.cocoon.root().await.unwrap() };
    let start = read().await;
    assert!(start.registered_proxies.is_empty());

    // Register two proxies: the root stores them under seqnos 1 and 2, as entered.
    let text = ok(&root(&[
        "register-proxy",
        "198.18.0.10:5000 198.18.0.10:5001",
    ]));
    assert!(text.contains("it gets seqno 1"), "{text}");
    assert!(text.contains("registered as seqno 1"), "{text}");
    ok(&root(&["register-proxy", "198.18.0.11:5000"]));
    let after = read().await;
    assert_eq!(after.version, start.version + 2);
    let entries: Vec<(u32, String)> = after
        .registered_proxies
        .iter()
        .map(|(seqno, entry)| (*seqno, entry.text().to_string()))
        .collect();
    assert_eq!(
        entries,
        [
            (1, "198.18.0.10:5000 198.18.0.10:5001".to_string()),
            (2, "198.18.0.11:5000".to_string())
        ]
    );
    let status = ok(&root(&["status"]));
    assert!(
        status.contains("1  workers 198.18.0.10:5000  clients 198.18.0.10:5001"),
        "{status}"
    );

    // Refused before anything is sent: a duplicate, a name instead of an IPv4 address, a
    // seqno that is not registered. The root's version does not move.
    let version = read().await.version;
    let duplicate = root(&["register-proxy", "198.18.0.11:5000"]);
    assert!(
        stderr(&duplicate).contains("already registered as seqno 2"),
        "{}",
        stderr(&duplicate)
    );
    let named = root(&["register-proxy", "proxy.example:5000"]);
    assert!(stderr(&named).contains("IPv4"), "{}", stderr(&named));
    let missing = root(&["unregister-proxy", "9"]);
    assert!(
        stderr(&missing).contains("no proxy is registered as seqno 9 (registered: 1, 2)"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(read().await.version, version);

    // Update and unregister.
    ok(&root(&["update-proxy", "2", "198.18.0.12:6000"]));
    ok(&root(&["unregister-proxy", "1"]));
    let after = read().await;
    assert_eq!(after.registered_proxies.len(), 1);
    assert_eq!(after.registered_proxies[&2].text(), "198.18.0.12:6000");

    // Models are hashed whole; images are given as hashes; a repeat is nothing to do.
    let model = "SmolLM2-135M-Instruct@main:abc123";
    ok(&root(&["add-model", model]));
    let hash: [u8; 32] = Sha256::digest(model.as_bytes()).into();
    assert!(read().await.model_hashes.contains(&hash));
    let version = read().await.version;
    let again = ok(&root(&["add-model", model]));
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(read().await.version, version, "nothing sent");
    ok(&root(&["del-model", "--hash", &hex::encode(hash)]));
    assert!(!read().await.model_hashes.contains(&hash));
    let image = "ab".repeat(32);
    ok(&root(&["add-worker-hash", &image]));
    assert!(read().await.worker_hashes.contains(&[0xab; 32]));
    ok(&root(&["add-proxy-hash", &image]));
    ok(&root(&["del-proxy-hash", &image]));
    assert!(!read().await.proxy_hashes.contains(&[0xab; 32]));
    let bad = root(&["add-proxy-hash", "abcd"]);
    assert!(stderr(&bad).contains("64 hex digits"), "{}", stderr(&bad));

    // Someone else's key: refused before sending, naming the owner.
    let stranger = cocoon_testkit::devchain::key_path(&data, "client");
    let refused = root(&[
        "--owner-key",
        stranger.to_str().unwrap(),
        "register-proxy",
        "198.18.0.13:5000",
    ]);
    assert!(
        stderr(&refused).contains(&format!("the root's owner is {}", dev.owner.address())),
        "{}",
        stderr(&refused)
    );
    assert!(read().await.registered_proxies.len() == 1);
}

/// Over toncenter's API (a fake one over the same network), nothing is sent without --yes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_toncenter_the_owner_is_asked_before_spending() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let dev = DevChain::open(
        &data,
        &data.join("prices.toml"),
        1,
        &["mock-model".to_string()],
    )
    .await
    .unwrap();
    let toncenter = cocoon_testkit::FakeToncenter::start(
        cocoon_tvm::LocalNetwork::open(dev.ton_dir()).unwrap(),
    )
    .await
    .unwrap();
    let key = cocoon_testkit::devchain::key_path(&data, "owner");
    let base = vec![
        "root".to_string(),
        "--network".to_string(),
        "toncenter".to_string(),
        "--toncenter-url".to_string(),
        toncenter.url().to_string(),
        "--root".to_string(),
        dev.cocoon.root_address().to_string(),
        "--owner-key".to_string(),
        key.to_str().unwrap().to_string(),
    ];
    let run = move |extra: &[&str]| {
        let mut all = base.clone();
        all.extend(extra.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            support::cocoon(&refs)
        })
    };
    let status = ok(&run(&["status"]).await.unwrap());
    assert!(status.contains("registered proxies (0"), "{status}");

    let asked = run(&["register-proxy", "198.18.0.10:5000"]).await.unwrap();
    assert!(
        !asked.status.success() && stderr(&asked).contains("--yes"),
        "{}",
        stderr(&asked)
    );
    assert!(String::from_utf8_lossy(&asked.stdout).contains("0.1 TON attached"));
    assert!(dev
        .cocoon
        .root()
        .await
        .unwrap()
        .registered_proxies
        .is_empty());

    let sent = run(&["--yes", "register-proxy", "198.18.0.10:5000"])
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("submitted"),
        "{}",
        stderr(&sent)
    );
    let root = dev.cocoon.root().await.unwrap();
    assert_eq!(root.registered_proxies[&1].text(), "198.18.0.10:5000");
}
