//! The local chain's journal: durable, shared between processes, and honest about corruption.

use cocoon_ton::messages::Body;
use cocoon_ton::ops::{ExitCode, Params};
use cocoon_ton::rules::Init;
use cocoon_ton::{Chain, ChainError, Coins, LocalChain, Outgoing, Sent, Wallet};

fn wallets() -> (Wallet, Wallet, Wallet) {
    (
        Wallet::from_seed(&[1; 32]),
        Wallet::from_seed(&[2; 32]),
        Wallet::from_seed(&[3; 32]),
    )
}

async fn setup(dir: &std::path::Path) -> (LocalChain, cocoon_ton::Address, cocoon_ton::Address) {
    let (owner, proxy, alice) = wallets();
    let chain = LocalChain::open_or_create(dir, owner.address(), &Params::default()).unwrap();
    chain.mint(proxy.address(), Coins::ton(10)).unwrap();
    chain.mint(alice.address(), Coins::ton(10)).unwrap();
    let pinit = Init::Proxy {
        owner: proxy.address().clone(),
        public_key: proxy.key().public_key(),
    };
    let paddr = chain.address_for(&pinit);
    let sent = chain
        .send(
            &proxy,
            Outgoing {
                to: paddr.clone(),
                value: Coins::ton(1),
                body: Body::ProxyDeploy {
                    query_id: 0,
                    stake: Coins::ton(1),
                },
                init: Some(pinit),
            },
        )
        .await
        .unwrap();
    assert!(matches!(sent, Sent::Executed(_)));
    let cinit = Init::Client {
        proxy: paddr.clone(),
        owner: alice.address().clone(),
    };
    let caddr = chain.address_for(&cinit);
    chain
        .send(
            &alice,
            Outgoing {
                to: caddr.clone(),
                value: Coins::ton(2),
                body: Body::ClientDeploy {
                    query_id: 0,
                    amount: Coins::ton(2),
                    stake: Coins::ton(1),
                    secret_hash: [0; 32],
                },
                init: Some(cinit),
            },
        )
        .await
        .unwrap();
    (chain, paddr, caddr)
}

#[tokio::test]
async fn state_survives_reopen_and_is_shared_between_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, paddr, caddr) = setup(dir.path()).await;
    let (_, _, alice) = wallets();
    assert_eq!(chain.balance(alice.address()).await.unwrap(), Coins::ton(8));
    // A second handle (another process, say `cocoon wallet`) sees and extends the same chain.
    let other = LocalChain::open(dir.path()).unwrap();
    other
        .send(
            &alice,
            Outgoing {
                to: caddr.clone(),
                value: Coins::ton(1),
                body: Body::TopUp {
                    query_id: 0,
                    amount: Coins::ton(1),
                },
                init: None,
            },
        )
        .await
        .unwrap();
    let c = chain.client(&caddr).await.unwrap().unwrap();
    assert_eq!(c.balance, Coins::ton(3).as_nano());
    assert_eq!(chain.proxy(&paddr).await.unwrap().unwrap().open_clients, 1);
    drop((chain, other));
    let reopened = LocalChain::open(dir.path()).unwrap();
    assert_eq!(
        reopened.client(&caddr).await.unwrap().unwrap().balance,
        Coins::ton(3).as_nano()
    );
    assert_eq!(
        reopened.balance(alice.address()).await.unwrap(),
        Coins::ton(7)
    );
}

#[tokio::test]
async fn refused_messages_are_not_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, _, caddr) = setup(dir.path()).await;
    let (_, _, alice) = wallets();
    let lines = std::fs::read_to_string(chain.journal_path())
        .unwrap()
        .lines()
        .count();
    let err = chain
        .send(
            &alice,
            Outgoing {
                to: caddr.clone(),
                value: Coins::ZERO,
                body: Body::Withdraw {
                    query_id: 0,
                    amount: Coins::ton(5),
                },
                init: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::Rejected(ExitCode::BelowStake)),
        "{err}"
    );
    let err = chain
        .send(
            &alice,
            Outgoing {
                to: caddr,
                value: Coins::ton(100),
                body: Body::TopUp {
                    query_id: 0,
                    amount: Coins::ton(100),
                },
                init: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::WalletBalance { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(chain.journal_path())
            .unwrap()
            .lines()
            .count(),
        lines
    );
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_corruption_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, _, caddr) = setup(dir.path()).await;
    let path = chain.journal_path().to_path_buf();
    drop(chain);
    let good = std::fs::read(&path).unwrap();
    // A crash in the middle of a write leaves a partial line: it is cut off.
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"mint\":{\"to\":\"0:00");
    std::fs::write(&path, &torn).unwrap();
    let chain = LocalChain::open(dir.path()).unwrap();
    assert!(chain.client(&caddr).await.unwrap().is_some());
    drop(chain);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // A damaged complete line is corruption, with its line number.
    let text = String::from_utf8(good).unwrap().replacen(
        "\"value\":\"2000000000\"",
        "\"value\":\"9x\"",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let err = LocalChain::open(dir.path()).unwrap_err();
    assert!(matches!(err, ChainError::Corrupt { line: 5, .. }), "{err}");
}
