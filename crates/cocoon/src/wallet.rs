//! `cocoon wallet`: balances and client/worker contract actions on the devnet's chain (the
//! deployed COCOON contracts on the embedded TVM, in `<data-dir>/ton`). Each action says what
//! it sends before sending it, and what moved after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cocoon_devnet::devchain::{load_key, proxy_key_name, PAYOUTS_DIR, TON_DIR};
use cocoon_ton::cocoon::{address, exit, ClientMessage, Params, State, WorkerMessage};
use cocoon_ton::payout::{parse_payout, payout_path, payout_tokens};
use cocoon_ton::ton::{
    Cell, Cocoon, InboundTx, NetworkSpec, SendOutcome, TonNetwork, WalletMessage,
};
use cocoon_ton::ProxyKey;
use cocoon_ton::{Address, Coins, Wallet};

/// What the C++ client attaches to its owner operations (facts §11); the contract returns what
/// it does not use to the wallet.
const CLIENT_OP_VALUE: Coins = Coins(700_000_000);
/// What the C++ worker attaches to a signed payout it submits (the contract needs > 0.1 TON).
const PAYOUT_VALUE: Coins = Coins(500_000_000);

/// Options of `cocoon wallet`.
#[derive(Args, Debug)]
pub struct WalletArgs {
    /// The devnet's data directory (what `cocoon devnet --data-dir` used).
    #[arg(long, global = true, default_value = "cocoon-devnet")]
    data_dir: PathBuf,
    /// Act on the network of a client config's `[chain]` table (its wallet key, network and
    /// root) instead of the devnet's: any network, mainnet included.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// With --config: the client contract to act on (the client's /stats lists them under
    /// chain.client_contracts; there is one per proxy).
    #[arg(long, global = true)]
    contract: Option<String>,
    /// With --config on a real network (toncenter, mainnet): send. Without it the command says
    /// what it would send and stops.
    #[arg(long, global = true)]
    yes: bool,
    /// On a devnet with several proxies (`cocoon devnet --proxies N`): which proxy's contracts
    /// the actions use (the client's contract and the workers' at that proxy). `status` lists
    /// every proxy's.
    #[arg(long, global = true, default_value_t = 0)]
    proxy: usize,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Balances, stakes, charged tokens and earnings of every devnet party.
    Status,
    /// Add AMOUNT (TON, e.g. 2.5, or nano-TON with an `n` suffix) to the client contract
    /// (`ext_client_top_up`; sends AMOUNT + 0.7 TON, the unused gas comes back).
    TopUp {
        /// Amount to add.
        amount: Coins,
    },
    /// Raise the client contract's stake to AMOUNT, the new total (`owner_client_increase_stake`).
    IncreaseStake {
        /// New stake.
        amount: Coins,
    },
    /// Take everything above the stake out of the client contract (`owner_client_withdraw`).
    Withdraw,
    /// Close the client contract (`owner_client_request_refund`): the balance above the stake
    /// comes back at once; run it again after the client close delay for the rest.
    Close,
    /// As a worker: submit the latest signed payout the proxy gave the worker (kept in
    /// <data-dir>/payouts/) to its worker contract, repacked with the worker's wallet as the
    /// excess address. The proxy also pays on its own once enough is owed; this gets paid
    /// without waiting for it.
    Payout {
        /// Which devnet worker.
        #[arg(long, default_value_t = 0)]
        worker: usize,
    },
}

struct Devnet {
    /// The embedded devnet chain (sends execute at once), or a real network.
    local: bool,
    cocoon: Cocoon,
    params: Params,
    proxy_contract: Address,
    proxy_public_key: [u8; 32],
    client: Wallet,
    client_contract: Address,
    parties: Vec<(String, Wallet)>,
    /// Every devnet proxy (index, operator's contract, signing key), for `status`.
    proxies: Vec<(usize, Address, [u8; 32])>,
}

impl Devnet {
    fn network(&self) -> &Arc<dyn TonNetwork> {
        self.cocoon.network()
    }

    fn worker_contract(&self, owner: &Address) -> Result<Address> {
        Ok(address::worker_contract(
            &self.proxy_contract,
            &self.params,
            &self.proxy_public_key,
            owner,
        )?
        .address()?)
    }

    async fn balance(&self, address: &Address) -> Result<Coins> {
        Ok(Coins(self.network().account(address).await?.balance))
    }

    /// Sends one message and returns the destination's transaction (`None`: submitted to a
    /// real network, executing in a few seconds).
    async fn send(
        &self,
        from: &Wallet,
        to: &Address,
        value: Coins,
        body: Cell,
    ) -> Result<Option<InboundTx>> {
        let message = WalletMessage {
            to: to.clone(),
            value: value.0,
            bounce: true,
            body: Arc::new(body),
            state_init: None,
        };
        match self.network().send(from, &[message]).await? {
            SendOutcome::Executed(mut txs) if !txs.is_empty() => Ok(Some(txs.remove(0))),
            SendOutcome::Executed(_) => bail!("the message executed nothing"),
            SendOutcome::Submitted { hash } => {
                println!("submitted (external message {hash}); it executes within seconds: `cocoon wallet status` shows it");
                Ok(None)
            }
        }
    }
}

async fn open(dir: &Path, chosen: usize) -> Result<Devnet> {
    let ton_dir = dir.join(TON_DIR);
    let cocoon = NetworkSpec {
        local_dir: Some(ton_dir),
        ..NetworkSpec::default()
    }
    .open()
    .map_err(|error| {
        anyhow::anyhow!(
            "no devnet chain in {} ({error}): run `cocoon devnet` first (or pass --data-dir)",
            dir.display()
        )
    })?;
    let root = cocoon.root_address().clone();
    let wallet = |name: &str| -> Result<Wallet> { Ok(Wallet::from_seed(&load_key(dir, name)?)) };
    let client = wallet("client")?;
    let params = cocoon.root().await.context("reading the root")?.params;
    let mut proxies = Vec::new();
    for index in 0.. {
        let name = proxy_key_name(index);
        if !dir.join("keys").join(format!("{name}.key")).exists() {
            break;
        }
        let operator = wallet(&name)?;
        let key = ProxyKey::from_seed(&load_key(dir, &format!("{name}-signer"))?).public_key();
        let contract =
            address::proxy_contract(&root, &params, operator.address(), &key)?.address()?;
        proxies.push((index, contract, key));
    }
    let Some((_, proxy_contract, proxy_public_key)) = proxies.get(chosen).cloned() else {
        bail!(
            "the devnet has no proxy {chosen} (it has {}; --proxy counts from 0)",
            proxies.len()
        );
    };
    let client_contract = address::client_contract(
        &proxy_contract,
        &params,
        &proxy_public_key,
        client.address(),
    )?
    .address()?;
    let mut parties = vec![("owner".to_string(), wallet("owner")?)];
    for (index, _, _) in &proxies {
        let name = proxy_key_name(*index);
        parties.push((name.clone(), wallet(&name)?));
    }
    parties.push(("client".to_string(), client.clone()));
    for i in 0.. {
        let name = format!("worker-{i}");
        if !dir.join("keys").join(format!("{name}.key")).exists() {
            break;
        }
        parties.push((name.clone(), wallet(&name)?));
    }
    Ok(Devnet {
        local: true,
        cocoon,
        params,
        proxy_contract,
        proxy_public_key,
        client,
        client_contract,
        parties,
        proxies,
    })
}

fn exit_name(code: i32) -> &'static str {
    match code {
        exit::OLD_MESSAGE => "the count does not advance",
        exit::LOW_SMC_BALANCE => {
            "the contract's balance is too low (a withdraw needs a balance above the stake)"
        }
        exit::LOW_MSG_VALUE => {
            "too little value attached (or a new stake not above the current one)"
        }
        exit::CLOSED => "the contract is in the wrong state for this (closed, or closing)",
        exit::BAD_SIGNATURE => "bad signature",
        exit::EXPECTED_OWNER | exit::EXPECTED_MESSAGE_FROM_OWNER => "not from the owner",
        exit::NOT_UNLOCKED_YET => "the close delay has not passed yet",
        exit::EXPECTED_MY_ADDRESS => "signed for another contract",
        _ => "refused",
    }
}

/// `--config`: the client's wallet and one of its client contracts, on its `[chain]` network.
async fn open_configured(path: &Path, contract: Option<&str>) -> Result<Devnet> {
    let config: cocoon_client::ClientConfig = crate::load_config(path)?;
    let chain = config
        .chain
        .as_ref()
        .with_context(|| format!("{} has no [chain] table", path.display()))?;
    let cocoon = NetworkSpec::of(
        chain.network,
        chain.local_dir.clone(),
        chain.toncenter_url.clone(),
        chain.toncenter_api_key.clone(),
        chain.root_address.clone(),
    )
    .open()
    .map_err(|e| anyhow::anyhow!("{}: [chain]: {e}", path.display()))?;
    let params = cocoon.root().await.context("reading the root")?.params;
    let wallet = Wallet::from_seed(&cocoon_ton::keyfile::read(&chain.wallet_key)?);
    let contract: Address = contract
        .context("pass --contract: the client contract to act on (the client's /stats lists them under chain.client_contracts)")?
        .parse()
        .context("--contract is not a TON address")?;
    let data = cocoon
        .client(&contract)
        .await?
        .with_context(|| format!("no client contract at {contract}"))?;
    if &data.owner != wallet.address() {
        bail!(
            "client contract {contract} belongs to {}, not to this config's wallet {}",
            data.owner,
            wallet.address()
        );
    }
    Ok(Devnet {
        local: chain.network == cocoon_ton::ton::NetworkKind::Local,
        cocoon,
        params,
        proxy_contract: data.proxy.clone(),
        proxy_public_key: data.proxy_public_key,
        client: wallet.clone(),
        client_contract: contract,
        parties: vec![("client".to_string(), wallet)],
        proxies: vec![(0, data.proxy.clone(), data.proxy_public_key)],
    })
}

pub async fn run(args: WalletArgs) -> Result<()> {
    let devnet = match &args.config {
        Some(path) => open_configured(path, args.contract.as_deref()).await?,
        None => open(&args.data_dir, args.proxy).await?,
    };
    let excess = devnet.client.address().clone();
    let (what, value, body) = match args.command {
        WalletCommand::Status => return status(&devnet).await,
        WalletCommand::Payout { .. } if args.config.is_some() => bail!(
            "`payout` acts on the devnet's workers; a worker with [chain] submits its payouts itself (submit_payout_tokens)"
        ),
        WalletCommand::Payout { worker } => return payout(&devnet, &args.data_dir, worker).await,
        WalletCommand::TopUp { amount } => (
            format!("top-up of {amount}"),
            Coins(amount.0 + CLIENT_OP_VALUE.0),
            ClientMessage::TopUp {
                query_id: 0,
                amount,
                send_excesses_to: excess,
            },
        ),
        WalletCommand::IncreaseStake { amount } => (
            format!("stake increase to {amount}"),
            CLIENT_OP_VALUE,
            ClientMessage::IncreaseStake {
                query_id: 0,
                new_stake: amount,
                send_excesses_to: excess,
            },
        ),
        WalletCommand::Withdraw => (
            "withdrawal of the balance above the stake".to_string(),
            CLIENT_OP_VALUE,
            ClientMessage::Withdraw {
                query_id: 0,
                send_excesses_to: excess,
            },
        ),
        WalletCommand::Close => (
            "close (refund request)".to_string(),
            CLIENT_OP_VALUE,
            ClientMessage::RequestRefund {
                query_id: 0,
                send_excesses_to: excess,
            },
        ),
    };
    let wallet = devnet.client.address().clone();
    let before = devnet.balance(&wallet).await?;
    println!(
        "sending the {what}: {value} from the client wallet {wallet} (holds {before}) to client contract {}; what the contract does not use comes back",
        devnet.client_contract
    );
    if !devnet.local && !args.yes {
        bail!(
            "this spends real TON on {}: run it again with --yes to send",
            devnet.network().describe()
        );
    }
    let Some(tx) = devnet
        .send(
            &devnet.client,
            &devnet.client_contract,
            value,
            body.to_cell()?,
        )
        .await
        .with_context(|| format!("the {what} was not sent"))?
    else {
        return Ok(());
    };
    match tx.exit_code {
        Some(0) | None => {}
        Some(code) => bail!(
            "the client contract refused the {what}: exit code {code} ({})",
            exit_name(code)
        ),
    }
    let after = devnet.balance(&wallet).await?;
    println!(
        "done: the client wallet holds {after} ({} spent, gas included)",
        Coins(before.0.saturating_sub(after.0))
    );
    let c = devnet
        .cocoon
        .client(&devnet.client_contract)
        .await?
        .context("the client contract is gone")?;
    println!(
        "client contract: balance {}  stake {}  charged tokens {}  state {:?}",
        c.balance, c.stake, c.tokens_used, c.state
    );
    if c.state == State::Closing {
        println!(
            "the rest unlocks after {} (unix time); run `cocoon wallet close` again then",
            c.unlock_ts
        );
    }
    Ok(())
}

async fn payout(d: &Devnet, dir: &Path, index: usize) -> Result<()> {
    let name = format!("worker-{index}");
    let Some((_, wallet)) = d.parties.iter().find(|(n, _)| *n == name) else {
        bail!("the devnet has no {name}");
    };
    let contract = d.worker_contract(wallet.address())?;
    let path = payout_path(&dir.join(PAYOUTS_DIR), &contract);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{name} has no signed payout yet ({} is missing): it gets one from the proxy once it has served a paid request",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let message = parse_payout(&bytes, &contract)
        .with_context(|| format!("{} is not a payout for {name}", path.display()))?;
    let tokens = payout_tokens(&message);
    let paid = d
        .cocoon
        .worker(&contract)
        .await?
        .with_context(|| format!("{name} has no worker contract at {contract}"))?
        .tokens;
    if paid >= tokens {
        println!(
            "nothing to pay: {name}'s contract is already paid for {paid} tokens (the kept payout covers {tokens})"
        );
        return Ok(());
    }
    let before = d.balance(wallet.address()).await?;
    println!(
        "submitting {name}'s payout for tokens {paid}..{tokens}: {PAYOUT_VALUE} from {} (holds {before}) to worker contract {contract}; what it does not use comes back",
        wallet.address()
    );
    let body = WorkerMessage::Signed(message.repack(wallet.address().clone())).to_cell()?;
    let Some(tx) = d.send(wallet, &contract, PAYOUT_VALUE, body).await? else {
        return Ok(());
    };
    match tx.exit_code {
        Some(0) | None => {}
        Some(exit::OLD_MESSAGE) => {
            println!("nothing to pay: the proxy paid {name} meanwhile");
            return Ok(());
        }
        Some(code) => bail!(
            "the worker contract refused the payout: exit code {code} ({})",
            exit_name(code)
        ),
    }
    let after = d.balance(wallet.address()).await?;
    println!(
        "{name} paid {} for tokens up to {tokens}; wallet now {after}",
        Coins(after.0.saturating_sub(before.0))
    );
    Ok(())
}

async fn status(d: &Devnet) -> Result<()> {
    let p = &d.params;
    println!("{}", d.network().describe());
    println!("root {}", d.cocoon.root_address());
    println!(
        "prices: {} per token for clients, {} per token for workers (params version {})",
        p.price_per_token, p.worker_fee_per_token, p.params_version
    );
    println!("\nwallets");
    for (name, w) in &d.parties {
        println!(
            "  {name:<10} {:>22}  {}",
            d.balance(w.address()).await?.to_string(),
            w.address()
        );
    }
    println!("\ncontracts");
    for (index, proxy_contract, key) in &d.proxies {
        let at = if d.proxies.len() > 1 {
            format!(" (proxy {index})")
        } else {
            String::new()
        };
        match d.cocoon.proxy(proxy_contract).await? {
            Some(proxy) => println!(
                "  proxy      holds {}  stake {}  commission {}  {:?}  {proxy_contract}{at}",
                d.balance(proxy_contract).await?,
                proxy.stake,
                proxy.balance,
                proxy.state,
            ),
            None => println!("  proxy      not deployed{at}"),
        }
        let client_contract = if proxy_contract == &d.proxy_contract {
            d.client_contract.clone()
        } else {
            address::client_contract(proxy_contract, &d.params, key, d.client.address())?
                .address()?
        };
        match d.cocoon.client(&client_contract).await? {
            Some(c) => println!(
                "  client     balance {}  stake {}  charged tokens {}  {:?}  {client_contract}{at}",
                c.balance, c.stake, c.tokens_used, c.state
            ),
            None => println!("  client     not deployed{at}"),
        }
        for (name, w) in d.parties.iter().filter(|(n, _)| n.starts_with("worker-")) {
            let contract =
                address::worker_contract(proxy_contract, &d.params, key, w.address())?.address()?;
            match d.cocoon.worker(&contract).await? {
                Some(s) => println!(
                    "  {name:<10} paid tokens {}  earned {}  {:?}  {contract}{at}",
                    s.tokens,
                    Coins(u128::from(s.tokens) * p.worker_fee_per_token.0),
                    s.state
                ),
                None => println!("  {name:<10} not deployed{at}"),
            }
        }
    }
    Ok(())
}
