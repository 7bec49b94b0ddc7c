//! The embedded local chain: the native rules ([`crate::rules`]) over a durable journal.
//!
//! The journal (`chain.jsonl` in the chain's directory) holds the genesis, every faucet mint and
//! every executed message, one JSON object per line, each fsynced before the call returns.
//! Opening replays it. Several processes may share one directory (the devnet and `cocoon
//! wallet`): every call takes an exclusive lock on the journal, first catches up with what
//! others appended, then acts.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tonlib_core::cell::BagOfCells;
use tonlib_core::TonAddress;

use crate::chain::{Chain, ChainError, Outgoing, Sent};
use crate::ops::Params;
use crate::rules::{
    ClientState, Init, Message, ProxyState, Receipt, RootState, WorkerState, World,
};
use crate::{Coins, Wallet};

/// The journal's file name.
pub const JOURNAL: &str = "chain.jsonl";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Genesis {
        owner: String,
        params: Params,
        now: u32,
    },
    Mint {
        to: String,
        amount: String,
        now: u32,
    },
    Msg {
        now: u32,
        from: String,
        to: String,
        value: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
}

struct Inner {
    world: World,
    file: File,
    /// Bytes of the journal already applied.
    offset: u64,
    lines: usize,
}

impl Inner {
    /// Notes that this process appended (and applied) one journal line.
    fn appended(&mut self) {
        self.offset = self.file.metadata().map(|m| m.len()).unwrap_or(self.offset);
        self.lines += 1;
    }
}

/// A durable single-machine TON network executing the COCOON rules natively.
pub struct LocalChain {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for LocalChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalChain({})", self.path.display())
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

fn parse_addr(s: &str) -> Result<TonAddress, String> {
    s.parse::<TonAddress>()
        .map_err(|e| format!("address {s:?}: {e}"))
}

fn raw(a: &TonAddress) -> String {
    a.to_hex()
}

impl LocalChain {
    /// Opens the chain in `dir`, creating it with a root owned by `owner` and `params` if the
    /// directory holds none yet.
    pub fn open_or_create(
        dir: &Path,
        owner: &TonAddress,
        params: &Params,
    ) -> Result<LocalChain, ChainError> {
        let path = dir.join(JOURNAL);
        let io = |source| ChainError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let empty = file.metadata().map_err(io)?.len() == 0;
        if empty {
            let genesis = Entry::Genesis {
                owner: raw(owner),
                params: params.clone(),
                now: unix_now(),
            };
            append(&file, &path, &genesis)?;
        }
        file.unlock().map_err(io)?;
        LocalChain::open(dir)
    }

    /// Opens an existing chain.
    pub fn open(dir: &Path) -> Result<LocalChain, ChainError> {
        let path = dir.join(JOURNAL);
        let io = |source| ChainError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut reader = BufReader::new(&file);
        let mut first = String::new();
        reader.read_line(&mut first).map_err(io)?;
        let corrupt = |why: String| ChainError::Corrupt {
            path: path.display().to_string(),
            line: 1,
            why,
        };
        if !first.ends_with('\n') {
            return Err(corrupt("no complete genesis line".into()));
        }
        let world =
            match serde_json::from_str::<Entry>(&first).map_err(|e| corrupt(e.to_string()))? {
                Entry::Genesis { owner, params, now } => {
                    World::new(parse_addr(&owner).map_err(corrupt)?, params, now)
                }
                _ => return Err(corrupt("the first line is not the genesis".into())),
            };
        let offset = first.len() as u64;
        drop(reader);
        let mut inner = Inner {
            world,
            file,
            offset,
            lines: 1,
        };
        catch_up(&path, &mut inner)?;
        inner.file.unlock().map_err(io)?;
        Ok(LocalChain {
            path,
            inner: Mutex::new(inner),
        })
    }

    /// Where the contract with this init data lives on this chain (no read needed here).
    pub fn address_for(&self, init: &Init) -> TonAddress {
        init.address(&self.root_address())
    }

    /// The journal's path.
    pub fn journal_path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Path, &mut Inner) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let io = |source| ChainError::Io {
            path: self.path.display().to_string(),
            source,
        };
        inner.file.lock().map_err(io)?;
        let result = catch_up(&self.path, &mut inner).and_then(|()| f(&self.path, &mut inner));
        inner.file.unlock().map_err(io)?;
        result
    }

    /// A copy of the whole state, caught up with the journal.
    pub fn world(&self) -> Result<World, ChainError> {
        self.with(|_, inner| Ok(inner.world.clone()))
    }

    /// The faucet: creates `amount` in `wallet`.
    pub fn mint(&self, wallet: &TonAddress, amount: Coins) -> Result<(), ChainError> {
        self.with(|path, inner| {
            let now = unix_now().max(inner.world.now);
            append(
                &inner.file,
                path,
                &Entry::Mint {
                    to: raw(wallet),
                    amount: amount.0.to_string(),
                    now,
                },
            )?;
            inner.world.now = now;
            inner.world.mint(wallet, amount);
            inner.appended();
            Ok(())
        })
    }

    /// Executes a message from `from` (the local chain trusts the caller with the wallet).
    pub fn execute(&self, from: &TonAddress, msg: Outgoing) -> Result<Receipt, ChainError> {
        let body = msg.body.to_cell()?;
        self.with(|path, inner| {
            let now = unix_now().max(inner.world.now);
            inner.world.now = now;
            let m = Message {
                from: from.clone(),
                to: msg.to.clone(),
                value: msg.value,
                body: body.clone(),
                init: msg.init.clone(),
            };
            let mut next = inner.world.clone();
            let receipt = next.execute(&m).map_err(|e| match ChainError::from(e) {
                ChainError::WalletBalance { have, need, .. } => ChainError::WalletBalance {
                    wallet: from.to_string(),
                    have,
                    need,
                },
                other => other,
            })?;
            let boc = BagOfCells::from_root(body)
                .serialize(true)
                .map_err(|e| ChainError::Api(e.to_string()))?;
            let entry = Entry::Msg {
                now,
                from: raw(from),
                to: raw(&msg.to),
                value: msg.value.0.to_string(),
                body: base64::engine::general_purpose::STANDARD.encode(boc),
                init: msg.init,
            };
            append(&inner.file, path, &entry)?;
            inner.world = next;
            inner.appended();
            Ok(receipt)
        })
    }
}

fn append(file: &File, path: &Path, entry: &Entry) -> Result<(), ChainError> {
    let io = |source| ChainError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut line = serde_json::to_vec(entry).map_err(|e| ChainError::Api(e.to_string()))?;
    line.push(b'\n');
    let mut f = file;
    f.write_all(&line).map_err(io)?;
    f.sync_data().map_err(io)
}

/// Applies journal lines appended since `inner.offset` (by this or another process). A torn
/// last line (a crash mid-write) is cut off; anything else that does not replay is corruption.
fn catch_up(path: &Path, inner: &mut Inner) -> Result<(), ChainError> {
    let io = |source| ChainError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = inner.file.metadata().map_err(io)?.len();
    if len == inner.offset {
        return Ok(());
    }
    let mut f = &inner.file;
    f.seek(SeekFrom::Start(inner.offset)).map_err(io)?;
    let mut reader = BufReader::new(f);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        if !line.ends_with('\n') {
            tracing::warn!(path = %path.display(), bytes = n, "cutting off a torn last journal line");
            inner.file.set_len(inner.offset).map_err(io)?;
            inner.file.sync_data().map_err(io)?;
            break;
        }
        let lineno = inner.lines + 1;
        let corrupt = |why: String| ChainError::Corrupt {
            path: path.display().to_string(),
            line: lineno,
            why,
        };
        let entry: Entry = serde_json::from_str(&line).map_err(|e| corrupt(e.to_string()))?;
        apply(&mut inner.world, entry).map_err(corrupt)?;
        inner.offset += n as u64;
        inner.lines = lineno;
    }
    Ok(())
}

fn apply(world: &mut World, entry: Entry) -> Result<(), String> {
    match entry {
        Entry::Genesis { .. } => Err("a second genesis".into()),
        Entry::Mint { to, amount, now } => {
            world.now = world.now.max(now);
            let amount = amount.parse::<u128>().map_err(|e| e.to_string())?;
            world.mint(&parse_addr(&to)?, Coins(amount));
            Ok(())
        }
        Entry::Msg {
            now,
            from,
            to,
            value,
            body,
            init,
        } => {
            world.now = world.now.max(now);
            let boc = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| e.to_string())?;
            let cell = BagOfCells::parse(&boc)
                .and_then(|b| b.single_root())
                .map_err(|e| e.to_string())?;
            let msg = Message {
                from: parse_addr(&from)?,
                to: parse_addr(&to)?,
                value: Coins(value.parse::<u128>().map_err(|e| e.to_string())?),
                body: (*cell).clone(),
                init,
            };
            world
                .execute(&msg)
                .map(|_| ())
                .map_err(|e| format!("does not replay: {e}"))
        }
    }
}

#[async_trait]
impl Chain for LocalChain {
    fn describe(&self) -> String {
        format!("local chain at {}", self.path.display())
    }

    fn root_address(&self) -> TonAddress {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .world
            .root_address
            .clone()
    }

    async fn address_of(&self, init: &Init) -> Result<TonAddress, ChainError> {
        Ok(self.address_for(init))
    }

    async fn now(&self) -> Result<u32, ChainError> {
        self.with(|_, inner| Ok(unix_now().max(inner.world.now)))
    }

    async fn root(&self) -> Result<RootState, ChainError> {
        self.with(|_, inner| Ok(inner.world.root.clone()))
    }

    async fn proxy(&self, address: &TonAddress) -> Result<Option<ProxyState>, ChainError> {
        self.with(|_, inner| Ok(inner.world.proxies.get(address).cloned()))
    }

    async fn client(&self, address: &TonAddress) -> Result<Option<ClientState>, ChainError> {
        self.with(|_, inner| Ok(inner.world.clients.get(address).cloned()))
    }

    async fn worker(&self, address: &TonAddress) -> Result<Option<WorkerState>, ChainError> {
        self.with(|_, inner| Ok(inner.world.workers.get(address).cloned()))
    }

    async fn balance(&self, address: &TonAddress) -> Result<Coins, ChainError> {
        self.with(|_, inner| Ok(inner.world.wallet_balance(address)))
    }

    async fn send(&self, wallet: &Wallet, msg: Outgoing) -> Result<Sent, ChainError> {
        // Journal writes fsync: on a multi-threaded runtime, tell it this thread blocks.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let run = || self.execute(wallet.address(), msg);
        let receipt = if multi {
            tokio::task::block_in_place(run)
        } else {
            run()
        }?;
        Ok(Sent::Executed(receipt))
    }
}
