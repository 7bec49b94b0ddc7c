//! The devnet's network on the deployed interface: set up as the C++ runners would (root with
//! the params and the model, proxy staked, client with its secret and deposit, workers), every
//! contract where a node derives it, idempotent across restarts, and no nano-TON created or
//! lost; a root with other params is refused with what to do.

use cocoon_testkit::devchain::{
    DevChain, CLIENT_DEPOSIT, CLIENT_FUNDS, OWNER_FUNDS, PROXY_FUNDS, WORKER_FUNDS,
};

use cocoon_ton::cocoon::State;
use cocoon_ton::ton::TonNetwork;
use sha2::{Digest, Sha256};

async fn everything(dev: &DevChain) -> Vec<(String, u128)> {
    let mut addresses = vec![
        dev.owner.address().clone(),
        dev.proxy.address().clone(),
        dev.client.address().clone(),
        dev.cocoon.root_address().clone(),
        dev.proxy_contract().unwrap(),
        dev.client_contract(dev.client.address()).unwrap(),
    ];
    for w in &dev.workers {
        addresses.push(w.address().clone());
        addresses.push(dev.worker_contract(w.address()).unwrap());
    }
    let mut out = Vec::new();
    for a in addresses {
        out.push((
            a.to_string(),
            dev.network.account(&a).await.unwrap().balance,
        ));
    }
    out
}

async fn fees(dev: &DevChain, accounts: &[(String, u128)]) -> u128 {
    let mut sum = 0;
    for (address, _) in accounts {
        let address = address.parse().unwrap();
        for tx in dev.network.transactions(&address, 0, 10_000).await.unwrap() {
            sum += tx.total_fees + tx.forward_fees;
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_network_is_set_up_as_the_runners_would_and_reopens_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    let models = vec!["mock-model".to_string()];
    let dev = DevChain::open(dir.path(), &prices, 2, &models)
        .await
        .unwrap();

    let root = dev.cocoon.root().await.unwrap();
    assert_eq!(root.params, dev.params);
    assert_eq!(root.owner, *dev.owner.address());
    let model: [u8; 32] = Sha256::digest(b"mock-model").into();
    assert!(root.model_hashes.contains(&model), "the model is allowed");

    let proxy = dev
        .cocoon
        .proxy(&dev.proxy_contract().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proxy.owner, *dev.proxy.address());
    assert_eq!(proxy.stake, dev.params.min_proxy_stake, "staked");

    let client = dev
        .cocoon
        .client(&dev.client_contract(dev.client.address()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.state, State::Normal);
    assert_eq!(client.balance, CLIENT_DEPOSIT);
    assert_eq!(client.stake, dev.params.min_client_stake);
    let secret: [u8; 32] = Sha256::digest(dev.client_secret.as_bytes()).into();
    assert_eq!(client.secret_hash, secret);
    for w in &dev.workers {
        let worker = dev
            .cocoon
            .worker(&dev.worker_contract(w.address()).unwrap())
            .await
            .unwrap();
        assert_eq!(worker.unwrap().owner, *w.address());
    }

    // Every nano-TON the faucet made is in a wallet, a contract, or paid as fees.
    let minted = OWNER_FUNDS.0 + PROXY_FUNDS.0 + CLIENT_FUNDS.0 + 2 * WORKER_FUNDS.0;
    let balances = everything(&dev).await;
    let held: u128 = balances.iter().map(|(_, b)| b).sum();
    assert_eq!(held + fees(&dev, &balances).await, minted);

    // Reopening changes nothing: no step runs twice.
    drop(dev);
    let again = DevChain::open(dir.path(), &prices, 2, &models)
        .await
        .unwrap();
    assert_eq!(everything(&again).await, balances);

    // Other prices would move every address: refused, saying what to do.
    let text = std::fs::read_to_string(&prices).unwrap();
    std::fs::write(
        &prices,
        text.replace("price_per_token = ", "price_per_token = 1"),
    )
    .unwrap();
    let refused = DevChain::open(dir.path(), &prices, 2, &models)
        .await
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("moves every contract's address"),
        "{refused}"
    );
}
