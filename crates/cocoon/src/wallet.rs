//! `cocoon wallet`: balances and client/worker contract actions on the devnet's chain.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cocoon_testkit::devchain::{load_key, PAYOUTS_DIR};
use cocoon_ton::messages::{Body, ProxyKey};
use cocoon_ton::ops::ContractStatus;
use cocoon_ton::rules::Init;
use cocoon_ton::{Address, Chain, Coins, LocalChain, Outgoing, Sent, Wallet};

/// Options of `cocoon wallet`.
#[derive(Args, Debug)]
pub struct WalletArgs {
    /// The devnet's data directory (what `cocoon devnet --data-dir` used).
    #[arg(long, global = true, default_value = "cocoon-devnet")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Balances, stakes, charged tokens and earnings of every devnet party.
    Status,
    /// Add AMOUNT (TON, e.g. 2.5, or nano-TON with an `n` suffix) to the client contract.
    TopUp {
        /// Amount to add.
        amount: Coins,
    },
    /// Raise the client contract's stake to AMOUNT (the new total).
    IncreaseStake {
        /// New stake.
        amount: Coins,
    },
    /// Take AMOUNT above the stake out of the client contract.
    Withdraw {
        /// Amount to withdraw.
        amount: Coins,
    },
    /// Close the client contract: the balance above the stake comes back at once; run it again
    /// after the client close delay for the stake.
    Close,
    /// As a worker: submit the latest signed payout the proxy gave the worker (kept in
    /// <data-dir>/payouts/) to its worker contract, which pays the worker's wallet. The proxy
    /// also pays on its own once enough is owed; this gets paid without waiting for it.
    Payout {
        /// Which devnet worker.
        #[arg(long, default_value_t = 0)]
        worker: usize,
    },
}

struct Devnet {
    chain: LocalChain,
    proxy_contract: Address,
    client: Wallet,
    client_contract: Address,
    parties: Vec<(String, Wallet)>,
}

fn open(dir: &Path) -> Result<Devnet> {
    let chain_dir = dir.join("chain");
    if !chain_dir.join(cocoon_ton::local::JOURNAL).exists() {
        bail!(
            "no devnet chain in {}: run `cocoon devnet` first (or pass --data-dir)",
            dir.display()
        );
    }
    let chain = LocalChain::open(&chain_dir)?;
    let wallet = |name: &str| -> Result<Wallet> { Ok(Wallet::from_seed(&load_key(dir, name)?)) };
    let proxy = wallet("proxy")?;
    let signer = ProxyKey::from_seed(&load_key(dir, "proxy-signer")?);
    let proxy_contract = chain.address_for(&Init::Proxy {
        owner: proxy.address().clone(),
        public_key: signer.public_key(),
    });
    let client = wallet("client")?;
    let client_contract = chain.address_for(&Init::Client {
        proxy: proxy_contract.clone(),
        owner: client.address().clone(),
    });
    let mut parties = vec![
        ("owner".to_string(), wallet("owner")?),
        ("proxy".to_string(), proxy),
        ("client".to_string(), client.clone()),
    ];
    for i in 0.. {
        let name = format!("worker-{i}");
        if !dir.join("keys").join(format!("{name}.key")).exists() {
            break;
        }
        parties.push((name.clone(), wallet(&name)?));
    }
    Ok(Devnet {
        chain,
        proxy_contract,
        client,
        client_contract,
        parties,
    })
}

pub async fn run(args: WalletArgs) -> Result<()> {
    let devnet = open(&args.data_dir)?;
    let body = match args.command {
        WalletCommand::Status => return status(&devnet).await,
        WalletCommand::TopUp { amount } => Body::TopUp {
            query_id: 0,
            amount,
        },
        WalletCommand::IncreaseStake { amount } => Body::IncreaseStake {
            query_id: 0,
            new_stake: amount,
        },
        WalletCommand::Withdraw { amount } => Body::Withdraw {
            query_id: 0,
            amount,
        },
        WalletCommand::Close => Body::RequestRefund { query_id: 0 },
        WalletCommand::Payout { worker } => return payout(&devnet, &args.data_dir, worker).await,
    };
    let value = match &body {
        Body::TopUp { amount, .. } => *amount,
        _ => Coins::ZERO,
    };
    let what = format!("{:?}", body)
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string();
    let sent = devnet
        .chain
        .send(
            &devnet.client,
            Outgoing {
                to: devnet.client_contract.clone(),
                value,
                body,
                init: None,
            },
        )
        .await
        .with_context(|| format!("{what} refused"))?;
    if let Sent::Executed(receipt) = sent {
        for p in receipt.payments {
            println!("paid {} to {}", p.amount, p.to);
        }
    }
    let c = devnet
        .chain
        .client(&devnet.client_contract)
        .await?
        .context("the client contract is gone")?;
    println!(
        "client contract: balance {}  stake {}  state {}",
        Coins(c.balance),
        Coins(c.stake),
        c.status.name()
    );
    if c.status == ContractStatus::Closing {
        println!(
            "the stake unlocks at {} (unix time); run `cocoon wallet close` again then",
            c.unlock_time
        );
    }
    Ok(())
}

async fn payout(d: &Devnet, dir: &Path, index: usize) -> Result<()> {
    let name = format!("worker-{index}");
    let Some((_, wallet)) = d.parties.iter().find(|(n, _)| *n == name) else {
        bail!("the devnet has no {name}");
    };
    let contract = d.chain.address_for(&Init::Worker {
        proxy: d.proxy_contract.clone(),
        owner: wallet.address().clone(),
    });
    let path = cocoon_ton::payout::payout_path(&dir.join(PAYOUTS_DIR), &contract);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{name} has no signed payout yet ({} is missing): it gets one from the proxy once it has served a paid request",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let message = cocoon_ton::payout::parse_payout(&bytes, &contract)
        .with_context(|| format!("{} is not a payout for {name}", path.display()))?;
    let tokens = message.payload.tokens;
    let before = d.chain.balance(wallet.address()).await?;
    let sent = d
        .chain
        .send(
            wallet,
            Outgoing {
                to: contract.clone(),
                value: Coins::ZERO,
                body: Body::Signed(message),
                init: None,
            },
        )
        .await;
    match sent {
        Ok(_) => {
            let after = d.chain.balance(wallet.address()).await?;
            println!(
                "{name} paid {} for tokens up to {tokens}; wallet now {after}",
                Coins(after.0.saturating_sub(before.0))
            );
        }
        Err(cocoon_ton::ChainError::Rejected(cocoon_ton::ops::ExitCode::NotIncreasing)) => {
            let paid = d.chain.worker(&contract).await?.map(|w| w.paid_tokens);
            println!(
                "nothing to pay: the proxy already paid {name} for {} tokens (the kept payout covers {tokens})",
                paid.unwrap_or_default()
            );
        }
        Err(e) => return Err(e).context("the worker contract refused the payout"),
    }
    Ok(())
}

async fn status(d: &Devnet) -> Result<()> {
    let chain = &d.chain;
    let root = chain.root().await?;
    println!("{}", chain.describe());
    println!(
        "prices: {} per token for clients, {} per token for workers (params version {})",
        Coins(u128::from(root.params.price_per_token)),
        Coins(u128::from(root.params.worker_fee_per_token)),
        root.params_version
    );
    println!("\nwallets");
    for (name, w) in &d.parties {
        println!(
            "  {name:<10} {:>22}  {}",
            chain.balance(w.address()).await?.to_string(),
            w.address()
        );
    }
    println!("\ncontracts");
    match chain.proxy(&d.proxy_contract).await? {
        Some(p) => println!(
            "  proxy      stake {}  earned {}  paid to workers {}  commission {}  seqno {}  open clients {}  open workers {}  {}",
            Coins(p.stake),
            Coins(p.earned),
            Coins(p.paid_out),
            Coins(p.earned.saturating_sub(p.paid_out)),
            p.seqno,
            p.open_clients,
            p.open_workers,
            p.status.name()
        ),
        None => println!("  proxy      not deployed"),
    }
    match chain.client(&d.client_contract).await? {
        Some(c) => println!(
            "  client     balance {}  stake {}  charged tokens {}  {}",
            Coins(c.balance),
            Coins(c.stake),
            c.tokens_used,
            c.status.name()
        ),
        None => println!("  client     not deployed"),
    }
    for (name, w) in d.parties.iter().filter(|(n, _)| n.starts_with("worker-")) {
        let addr = chain.address_for(&Init::Worker {
            proxy: d.proxy_contract.clone(),
            owner: w.address().clone(),
        });
        match chain.worker(&addr).await? {
            Some(s) => println!(
                "  {name:<10} paid tokens {}  earned {}  {}",
                s.paid_tokens,
                Coins(u128::from(s.paid_tokens) * s.worker_fee_per_token),
                s.status.name()
            ),
            None => println!("  {name:<10} not deployed"),
        }
    }
    Ok(())
}
