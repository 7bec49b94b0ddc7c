//! `cocoon root`: the root contract's owner operations — the registry of proxies and the lists
//! of allowed proxy images, worker images and models (facts §4) — on the devnet's chain or on a
//! real network through toncenter. Each operation is checked against the root first (owner,
//! seqno, entry, already done), says what it sends, and on a real network sends only with
//! `--yes`. Price and params changes are left out on purpose: they move every contract address
//! (facts §9) and need the wind-down in docs/payments.md.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cocoon_devnet::devchain::{load_key, TON_DIR};
use cocoon_ton::cocoon::root::HashList;
use cocoon_ton::cocoon::{exit, Hash256, ProxyEntry, RootData, RootMessage};
use cocoon_ton::ton::{Cocoon, NetworkKind, NetworkSpec, SendOutcome, WalletMessage};
use cocoon_ton::{Coins, Wallet};
use sha2::{Digest, Sha256};

/// Attached to each owner operation. The root keeps its balance from before the message and
/// returns the rest (excesses, mode 128), so this is an upper bound on the gas, not a price.
const ROOT_OP_VALUE: Coins = Coins(100_000_000);

/// Options of `cocoon root`.
#[derive(Args, Debug)]
pub struct RootArgs {
    /// The devnet's data directory (what `cocoon devnet --data-dir` used): its chain, root and
    /// owner key. Ignored with --network toncenter or mainnet.
    #[arg(long, global = true, default_value = "cocoon-devnet")]
    data_dir: PathBuf,
    /// The network: `local` (the devnet's chain in --data-dir), `toncenter` (--toncenter-url,
    /// --root) or `mainnet` (toncenter's mainnet API and the published root unless --root).
    #[arg(long, global = true, value_enum, default_value = "local")]
    network: Network,
    /// toncenter's v2 API (with --network toncenter; mainnet's by default with mainnet).
    #[arg(long, global = true)]
    toncenter_url: Option<String>,
    /// toncenter's API key.
    #[arg(long, global = true, env = "TONCENTER_API_KEY", hide_env_values = true)]
    toncenter_api_key: Option<String>,
    /// The root's address (required with --network toncenter).
    #[arg(long, global = true)]
    root: Option<String>,
    /// The owner's wallet key file (32-byte seed, hex or raw). Default on the devnet:
    /// <data-dir>/keys/owner.key. Not needed for `status`.
    #[arg(long, global = true)]
    owner_key: Option<PathBuf>,
    /// On a real network (toncenter, mainnet): send. Without it the command says what it would
    /// send and stops.
    #[arg(long, global = true)]
    yes: bool,
    #[command(subcommand)]
    command: RootCommand,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Network {
    Local,
    Toncenter,
    Mainnet,
}

#[derive(Subcommand, Debug)]
enum RootCommand {
    /// The root: owner, version, prices, registered proxies and the three allow-lists.
    Status,
    /// Register a proxy: `IP:PORT` (workers and clients on one port) or `"WORKERS_IP:PORT
    /// CLIENTS_IP:PORT"` (IPv4, as the reference reads it). It gets the next seqno.
    RegisterProxy {
        /// The endpoint(s).
        entry: String,
    },
    /// Replace the endpoint(s) of registered proxy SEQNO.
    UpdateProxy {
        /// The registration (`cocoon root status` lists them).
        seqno: u32,
        /// The new endpoint(s).
        entry: String,
    },
    /// Remove registered proxy SEQNO: clients and workers stop using it at their next refresh.
    UnregisterProxy {
        /// The registration.
        seqno: u32,
    },
    /// Allow a proxy image: the SHA-256 of its TDX measurements (hex, 64 digits), as
    /// `cocoon attest` prints it.
    AddProxyHash {
        /// The image hash.
        hash: String,
    },
    /// Stop allowing a proxy image.
    DelProxyHash {
        /// The image hash.
        hash: String,
    },
    /// Allow a worker image (hex SHA-256 of its TDX measurements).
    AddWorkerHash {
        /// The image hash.
        hash: String,
    },
    /// Stop allowing a worker image.
    DelWorkerHash {
        /// The image hash.
        hash: String,
    },
    /// Allow a model: MODEL is the exact string workers announce (e.g.
    /// `name@revision:weights-hash`); the root stores the SHA-256 of the whole string.
    AddModel {
        /// The model string, or with --hash its SHA-256 in hex.
        model: String,
        /// MODEL is already the hash (hex).
        #[arg(long)]
        hash: bool,
    },
    /// Stop allowing a model.
    DelModel {
        /// The model string, or with --hash its SHA-256 in hex.
        model: String,
        /// MODEL is already the hash (hex).
        #[arg(long)]
        hash: bool,
    },
}

/// Checks a registry entry as the reference's runners read it: one `IP:PORT`, or two separated
/// by one space, IPv4, optionally in brackets, and short enough for one cell.
fn parse_entry(text: &str) -> Result<ProxyEntry> {
    let parts: Vec<&str> = text.split(' ').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        bail!("a proxy entry is `IP:PORT` or `WORKERS_IP:PORT CLIENTS_IP:PORT` (one space), not {text:?}");
    }
    for part in &parts {
        let address = part.trim_start_matches('[').trim_end_matches(']');
        let parsed: SocketAddrV4 = address.parse().with_context(|| {
            format!("{part:?} is not an IPv4 address with a port (the reference's runners read IPv4 only)")
        })?;
        if parsed.port() == 0 {
            bail!("{part:?} has port 0");
        }
    }
    let entry = ProxyEntry::new(text).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))?;
    // The register body must fit one cell with the entry inline.
    RootMessage::UpdateProxy {
        query_id: 0,
        seqno: 0,
        entry: entry.clone(),
    }
    .to_cell()
    .map_err(|_| anyhow::anyhow!("{text:?} is too long to register (about 110 bytes at most)"))?;
    Ok(entry)
}

fn parse_hash(text: &str) -> Result<Hash256> {
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .ok()
        .filter(|b| b.len() == 32)
        .with_context(|| format!("{text:?} is not a SHA-256 hash (64 hex digits)"))?;
    let mut hash = [0; 32];
    hash.copy_from_slice(&bytes);
    Ok(hash)
}

fn model_hash(model: &str, is_hash: bool) -> Result<Hash256> {
    if is_hash {
        parse_hash(model)
    } else {
        Ok(Sha256::digest(model.as_bytes()).into())
    }
}

fn list_name(list: HashList) -> &'static str {
    match list {
        HashList::Proxy => "proxy images",
        HashList::Worker => "worker images",
        HashList::Model => "models",
    }
}

fn list_of(root: &RootData, list: HashList) -> &std::collections::BTreeSet<Hash256> {
    match list {
        HashList::Proxy => &root.proxy_hashes,
        HashList::Worker => &root.worker_hashes,
        HashList::Model => &root.model_hashes,
    }
}

/// What one command asks of the root, checked against its current data: `Ok(None)` when
/// there is nothing to do.
fn plan(command: &RootCommand, root: &RootData) -> Result<Option<(String, RootMessage)>> {
    let query_id = u64::from(root.version) + 1;
    let hash_op = |list: HashList, hash: Hash256, add: bool| {
        let present = list_of(root, list).contains(&hash);
        let hex = hex::encode(hash);
        if present == add {
            println!(
                "nothing to do: {hex} is {} the root's {}",
                if add { "already in" } else { "not in" },
                list_name(list)
            );
            return None;
        }
        let what = format!(
            "{} {hex} {} the root's {}",
            if add { "add" } else { "remove" },
            if add { "to" } else { "from" },
            list_name(list)
        );
        let message = if add {
            RootMessage::AddHash {
                query_id,
                list,
                hash,
            }
        } else {
            RootMessage::DelHash {
                query_id,
                list,
                hash,
            }
        };
        Some((what, message))
    };
    let registered = |seqno: u32| -> Result<&ProxyEntry> {
        root.registered_proxies.get(&seqno).with_context(|| {
            format!(
                "no proxy is registered as seqno {seqno} (registered: {})",
                seqnos(&root.registered_proxies)
            )
        })
    };
    Ok(match command {
        RootCommand::Status => None,
        RootCommand::RegisterProxy { entry } => {
            let entry = parse_entry(entry)?;
            if let Some((seqno, _)) = root
                .registered_proxies
                .iter()
                .find(|(_, e)| e.text() == entry.text())
            {
                bail!("{:?} is already registered as seqno {seqno}", entry.text());
            }
            Some((
                format!(
                    "register proxy {:?} (it gets seqno {})",
                    entry.text(),
                    root.last_proxy_seqno + 1
                ),
                RootMessage::RegisterProxy { query_id, entry },
            ))
        }
        RootCommand::UpdateProxy { seqno, entry } => {
            let old = registered(*seqno)?;
            let entry = parse_entry(entry)?;
            if old == &entry {
                println!("nothing to do: seqno {seqno} is already {:?}", entry.text());
                return Ok(None);
            }
            Some((
                format!(
                    "update proxy seqno {seqno} from {:?} to {:?}",
                    old.text(),
                    entry.text()
                ),
                RootMessage::UpdateProxy {
                    query_id,
                    seqno: *seqno,
                    entry,
                },
            ))
        }
        RootCommand::UnregisterProxy { seqno } => {
            let old = registered(*seqno)?;
            Some((
                format!("unregister proxy seqno {seqno} ({:?})", old.text()),
                RootMessage::UnregisterProxy {
                    query_id,
                    seqno: *seqno,
                },
            ))
        }
        RootCommand::AddProxyHash { hash } => hash_op(HashList::Proxy, parse_hash(hash)?, true),
        RootCommand::DelProxyHash { hash } => hash_op(HashList::Proxy, parse_hash(hash)?, false),
        RootCommand::AddWorkerHash { hash } => hash_op(HashList::Worker, parse_hash(hash)?, true),
        RootCommand::DelWorkerHash { hash } => hash_op(HashList::Worker, parse_hash(hash)?, false),
        RootCommand::AddModel { model, hash } => {
            hash_op(HashList::Model, model_hash(model, *hash)?, true)
        }
        RootCommand::DelModel { model, hash } => {
            hash_op(HashList::Model, model_hash(model, *hash)?, false)
        }
    })
}

fn seqnos(proxies: &BTreeMap<u32, ProxyEntry>) -> String {
    if proxies.is_empty() {
        return "none".to_string();
    }
    proxies
        .keys()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn open(args: &RootArgs) -> Result<Cocoon> {
    let spec = match args.network {
        Network::Local => NetworkSpec {
            local_dir: Some(args.data_dir.join(TON_DIR)),
            root_address: args.root.clone(),
            ..NetworkSpec::default()
        },
        Network::Toncenter => NetworkSpec::of(
            NetworkKind::Toncenter,
            None,
            Some(
                args.toncenter_url
                    .clone()
                    .context("--network toncenter needs --toncenter-url")?,
            ),
            args.toncenter_api_key.clone(),
            Some(
                args.root
                    .clone()
                    .context("--network toncenter needs --root (the root's address)")?,
            ),
        ),
        Network::Mainnet => NetworkSpec::of(
            NetworkKind::Mainnet,
            None,
            args.toncenter_url.clone(),
            args.toncenter_api_key.clone(),
            args.root.clone(),
        ),
    };
    spec.open().map_err(|error| match args.network {
        Network::Local => anyhow::anyhow!(
            "no devnet chain in {} ({error}): run `cocoon devnet` first (or pass --data-dir, or --network)",
            args.data_dir.display()
        ),
        _ => anyhow::anyhow!("{error}"),
    })
}

fn owner_wallet(args: &RootArgs) -> Result<Wallet> {
    let seed = match (&args.owner_key, args.network) {
        (Some(path), _) => cocoon_ton::keyfile::read(path)
            .with_context(|| format!("cannot read the owner key {}", path.display()))?,
        (None, Network::Local) => load_key(&args.data_dir, "owner")?,
        (None, _) => bail!("pass --owner-key: the root owner's wallet key file"),
    };
    Ok(Wallet::from_seed(&seed))
}

pub async fn run(args: RootArgs) -> Result<()> {
    let cocoon = open(&args)?;
    let root = cocoon.root().await.context("reading the root")?;
    let Some((what, message)) = plan(&args.command, &root)? else {
        if matches!(args.command, RootCommand::Status) {
            status(&cocoon, &root);
        }
        return Ok(());
    };
    let owner = owner_wallet(&args)?;
    if owner.address() != &root.owner {
        bail!(
            "the root's owner is {}, not this key's wallet {}: the root would refuse it (exit code {})",
            root.owner,
            owner.address(),
            exit::EXPECTED_MESSAGE_FROM_OWNER
        );
    }
    let network = cocoon.network();
    let before = network.account(owner.address()).await?.balance;
    println!(
        "sending to root {} on {}: {what}; {ROOT_OP_VALUE} attached from the owner wallet {} (holds {}), what the gas does not use comes back",
        cocoon.root_address(),
        network.describe(),
        owner.address(),
        Coins(before)
    );
    if args.network != Network::Local && !args.yes {
        bail!(
            "this spends real TON on {}: run it again with --yes to send",
            network.describe()
        );
    }
    let body = message.to_cell()?;
    let sent = network
        .send(
            &owner,
            &[WalletMessage {
                to: cocoon.root_address().clone(),
                value: ROOT_OP_VALUE.0,
                bounce: true,
                body: Arc::new(body),
                state_init: None,
            }],
        )
        .await
        .with_context(|| format!("not sent: {what}"))?;
    match sent {
        SendOutcome::Submitted { hash } => {
            println!("submitted (external message {hash}); it executes within seconds: `cocoon root status` shows it");
            return Ok(());
        }
        SendOutcome::Executed(txs) => match txs.first().and_then(|tx| tx.exit_code) {
            Some(0) | None if !txs.is_empty() => {}
            Some(code) => bail!("the root refused it: exit code {code}"),
            None => bail!("the message executed nothing"),
        },
    }
    let after = cocoon.root().await.context("reading the root back")?;
    let spent = before.saturating_sub(network.account(owner.address()).await?.balance);
    println!(
        "done: root version {} -> {}; {} spent on gas and fees",
        root.version,
        after.version,
        Coins(spent)
    );
    if let RootCommand::RegisterProxy { .. } = args.command {
        println!(
            "registered as seqno {}: clients and workers that read the root find it at their next refresh",
            after.last_proxy_seqno
        );
    }
    Ok(())
}

fn status(cocoon: &Cocoon, root: &RootData) {
    let p = &root.params;
    println!("{}", cocoon.network().describe());
    println!("root {}", cocoon.root_address());
    println!("owner {}", root.owner);
    println!(
        "version {}  params version {}  network id {}{}",
        root.version,
        p.params_version,
        p.unique_id,
        if p.is_test { " (test)" } else { "" }
    );
    println!(
        "prices: {} per token for clients, {} per token for workers; multipliers (10000 = 1x) prompt {} cached {} completion {} reasoning {}",
        p.price_per_token,
        p.worker_fee_per_token,
        p.prompt_tokens_price_multiplier,
        p.cached_tokens_price_multiplier,
        p.completion_tokens_price_multiplier,
        p.reasoning_tokens_price_multiplier
    );
    println!(
        "stakes: proxy {} client {}; close delays: proxy {} s client {} s",
        p.min_proxy_stake,
        p.min_client_stake,
        p.proxy_delay_before_close,
        p.client_delay_before_close
    );
    println!(
        "\nregistered proxies ({}; last seqno {})",
        root.registered_proxies.len(),
        root.last_proxy_seqno
    );
    for (seqno, entry) in &root.registered_proxies {
        let (workers, clients) = entry.endpoints();
        println!("  {seqno:>4}  workers {workers}  clients {clients}");
    }
    for seqno in root.unusable_proxies.keys() {
        println!(
            "  {seqno:>4}  (an entry no node can use: skipped, as the reference's runners do)"
        );
    }
    for list in [HashList::Proxy, HashList::Worker, HashList::Model] {
        let hashes = list_of(root, list);
        println!("\nallowed {} ({})", list_name(list), hashes.len());
        for hash in hashes {
            println!("  {}", hex::encode(hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_as_the_reference_reads_them() {
        assert!(parse_entry("198.18.0.2:5000").is_ok());
        assert!(parse_entry("198.18.0.2:5000 198.18.0.2:5001").is_ok());
        assert!(parse_entry("[198.18.0.2:5000] [198.18.0.3:5001]").is_ok());
        for bad in [
            "",
            "proxy.example:5000",
            "198.18.0.2",
            "198.18.0.2:0",
            "[::1]:5000",
            "198.18.0.2:5000  198.18.0.2:5001",
            "198.18.0.2:5000 198.18.0.2:5001 198.18.0.2:5002",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hashes_are_64_hex_digits_and_models_are_hashed_whole() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_hash(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_hash(&format!("0x{hex}")).unwrap(), [0xab; 32]);
        assert!(parse_hash("abcd").is_err());
        assert!(parse_hash(&"zz".repeat(32)).is_err());
        let whole: Hash256 = Sha256::digest(b"name@rev:weights").into();
        assert_eq!(model_hash("name@rev:weights", false).unwrap(), whole);
        assert_eq!(
            model_hash(&hex::encode(whole), true).unwrap(),
            whole,
            "--hash takes the hash as it is"
        );
    }
}
