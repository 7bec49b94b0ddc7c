//! The embedded network ([`TvmNetwork`]) running the deployed interface's contracts
//! (`contracts/build`): deploys read back through [`Cocoon`] as the typed storages the
//! codecs define, a client registration reaches the proxy contract's transaction history with
//! its source and nonce (how a proxy learns of it), a wallet cannot send more than it holds,
//! and no nano-TON is created or destroyed: what the wallets hold plus what the contracts hold
//! plus the fees always equals what was minted.

use std::sync::Arc;

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use cocoon_ton::cocoon::address::Deployment;
use cocoon_ton::cocoon::{
    ClientData, ClientMessage, ClientPayload, Params, ProxyData, ProxyMessage, RootData, State,
};
use cocoon_ton::ton::{
    Cocoon, SendOutcome, Status, TonError, TonNetwork, TvmNetwork, WalletMessage,
};
use cocoon_ton::{Coins, Wallet};

const TON: u128 = 1_000_000_000;

/// The contracts of `contracts/build`, as the crate embeds them.
fn code(name: &str) -> ArcCell {
    let codes = cocoon_ton::cocoon::codes();
    match name {
        "root" => codes.root.clone(),
        "proxy" => codes.proxy.clone(),
        "client" => codes.client.clone(),
        "worker" => codes.worker.clone(),
        other => panic!("no contract {other}"),
    }
}

fn wallet(byte: u8) -> Wallet {
    Wallet::from_seed(&[byte; 32])
}

fn params() -> Params {
    Params {
        params_version: 1,
        unique_id: 7,
        is_test: true,
        price_per_token: Coins(20),
        worker_fee_per_token: Coins(19),
        prompt_tokens_price_multiplier: 10_000,
        cached_tokens_price_multiplier: 10_000,
        completion_tokens_price_multiplier: 10_000,
        reasoning_tokens_price_multiplier: 10_000,
        proxy_delay_before_close: 3_600,
        client_delay_before_close: 3_600,
        min_proxy_stake: Coins(TON),
        min_client_stake: Coins(TON / 2),
        proxy_code: Some(code("proxy")),
        worker_code: Some(code("worker")),
        client_code: Some(code("client")),
    }
}

fn deploy(to: TonAddress, state_init: Cell, value: u128) -> WalletMessage {
    WalletMessage {
        to,
        value,
        bounce: false,
        body: Arc::new(Cell::default()),
        state_init: Some(Arc::new(state_init)),
    }
}

async fn total(network: &TvmNetwork, addresses: &[&TonAddress]) -> u128 {
    let mut sum = 0;
    for address in addresses {
        sum += network.account(address).await.unwrap().balance;
    }
    sum
}

#[tokio::test]
async fn contracts_deploy_read_back_and_a_registration_reaches_the_proxy_history() {
    let dir = tempfile::tempdir().unwrap();
    let network = Arc::new(TvmNetwork::open_or_create(dir.path(), 1_800_000_000).unwrap());
    let (root_w, proxy_w, client_w) = (wallet(1), wallet(2), wallet(3));
    let (root_owner, proxy_owner, client_owner) = (
        root_w.address().clone(),
        proxy_w.address().clone(),
        client_w.address().clone(),
    );
    let minted = 100 * TON;
    for w in [&root_owner, &proxy_owner, &client_owner] {
        network.mint(w, minted).unwrap();
    }

    // The root, deployed by its owner.
    let root_data = RootData::new(root_owner.clone(), params());
    let root_init = cocoon_ton::cocoon::StateInit::new(code("root"), root_data.to_cell().unwrap());
    let root = root_init.address().unwrap();
    network
        .send(
            &root_w,
            &[deploy(root.clone(), root_init.to_cell().unwrap(), 5 * TON)],
        )
        .await
        .unwrap();
    let cocoon = Cocoon::new(network.clone(), root.clone());
    let read = cocoon.root().await.unwrap();
    assert_eq!(read, root_data, "the root reads back as deployed");

    // The proxy and the client contract, at the addresses a node derives from the root.
    let deployment = Deployment::from_root(root.clone(), &read);
    let proxy_key = [9u8; 32];
    let proxy_init = deployment.proxy(&proxy_owner, &proxy_key).unwrap();
    let proxy = proxy_init.address().unwrap();
    network
        .send(
            &proxy_w,
            &[deploy(
                proxy.clone(),
                proxy_init.to_cell().unwrap(),
                20 * TON,
            )],
        )
        .await
        .unwrap();
    let proxy_data: ProxyData = cocoon.proxy(&proxy).await.unwrap().expect("proxy deployed");
    assert_eq!(proxy_data.owner, proxy_owner);

    let client_init = deployment
        .client(&proxy_owner, &proxy_key, &client_owner)
        .unwrap();
    let client = client_init.address().unwrap();
    assert!(
        cocoon.client(&client).await.unwrap().is_none(),
        "not deployed yet"
    );
    network
        .send(
            &client_w,
            &[deploy(
                client.clone(),
                client_init.to_cell().unwrap(),
                TON * 8 / 10,
            )],
        )
        .await
        .unwrap();
    let client_data: ClientData = cocoon
        .client(&client)
        .await
        .unwrap()
        .expect("client deployed");
    assert_eq!(client_data.owner, client_owner);
    assert_eq!(client_data.proxy, proxy);
    assert_eq!(client_data.state, State::Normal);

    // Long authorisation: the owner registers with a nonce; the proxy learns of it from its
    // contract's transactions (source = the derived client address, payload = the nonce).
    let seen_before = network.transactions(&proxy, 0, 100).await.unwrap();
    let last_lt = seen_before.last().map_or(0, |tx| tx.lt);
    let register = ClientMessage::Register {
        query_id: 77,
        nonce: 0xfeed,
        send_excesses_to: client_owner.clone(),
    };
    let outcome = network
        .send(
            &client_w,
            &[WalletMessage {
                to: client.clone(),
                value: TON,
                bounce: true,
                body: Arc::new(register.to_cell().unwrap()),
                state_init: None,
            }],
        )
        .await
        .unwrap();
    let SendOutcome::Executed(first) = outcome else {
        panic!("the embedded network executes at once")
    };
    assert_eq!(
        first[0].exit_code,
        Some(0),
        "the client contract accepted it"
    );
    let news = network.transactions(&proxy, last_lt, 100).await.unwrap();
    let registration = news
        .iter()
        .find_map(|tx| match ProxyMessage::from_cell(&tx.body) {
            Ok(ProxyMessage::ClientRequest {
                client_owner: owner,
                payload: Some(ClientPayload::Register { nonce }),
                ..
            }) => Some((tx.source.clone(), owner, nonce)),
            _ => None,
        })
        .expect("the proxy contract received the registration");
    assert_eq!(
        registration,
        (Some(client.clone()), client_owner.clone(), 0xfeed)
    );
    assert!(news.iter().all(|tx| tx.lt > last_lt), "paging by lt");

    // A wallet cannot send more than it holds, and a refused send changes nothing.
    let before = network.account(&client_owner).await.unwrap().balance;
    let too_much = network
        .send(
            &client_w,
            &[WalletMessage {
                to: client.clone(),
                value: before + 1,
                bounce: true,
                body: Arc::new(Cell::default()),
                state_init: None,
            }],
        )
        .await;
    assert!(
        matches!(too_much, Err(TonError::WalletBalance { .. })),
        "{too_much:?}"
    );
    assert_eq!(
        network.account(&client_owner).await.unwrap().balance,
        before
    );

    // Conservation: every nano-TON minted is in a wallet, in a contract, or paid as fees.
    let accounts = [
        &root_owner,
        &proxy_owner,
        &client_owner,
        &root,
        &proxy,
        &client,
    ];
    let held = total(&network, &accounts).await;
    let mut fees = 0u128;
    for account in accounts {
        for tx in network.transactions(account, 0, 1_000).await.unwrap() {
            fees += tx.total_fees + tx.forward_fees;
        }
    }
    assert_eq!(held + fees, 3 * minted, "held {held} + fees {fees}");
    assert_eq!(
        network.account(wallet(200).address()).await.unwrap().status,
        Status::Uninit,
        "an unknown address is an empty account, as in the sandbox"
    );

    // Durable: another handle on the same directory (another process, in the devnet) sees
    // the same network, histories included.
    let reopened: Arc<dyn TonNetwork> =
        Arc::new(TvmNetwork::open_or_create(dir.path(), 1).unwrap());
    let again = Cocoon::new(reopened.clone(), root.clone());
    let first = Cocoon::new(network.clone(), root.clone());
    assert_eq!(
        again.client(&client).await.unwrap(),
        first.client(&client).await.unwrap()
    );
    let lts = |txs: Vec<cocoon_ton::ton::InboundTx>| txs.iter().map(|t| t.lt).collect::<Vec<_>>();
    assert_eq!(
        lts(reopened.transactions(&proxy, 0, 100).await.unwrap()),
        lts(network.transactions(&proxy, 0, 100).await.unwrap())
    );
}
