//! A TON network as the deployed COCOON contracts need it, at the level the C++ runners use:
//! raw account states (parsed with [`crate::cocoon`]), an account's transactions oldest first
//! (how a proxy learns registrations, top-ups and its own save-state commits), and messages
//! sent from a wallet. [`Cocoon`] reads the typed storages through any [`TonNetwork`].
//!
//! [`TvmNetwork`] is the embedded implementation: the contracts' own code executing on
//! `cocoon-tvm` (tycho's TVM), with wallets as code-less accounts that are debited what they
//! send, so every nano-TON that moves is accounted for. The toncenter implementation and the
//! switch of the daemons from [`crate::Chain`] to this trait follow (issue 11).

use std::sync::Arc;

use async_trait::async_trait;
use tonlib_core::cell::{ArcCell, BagOfCells};
use tonlib_core::TonAddress;

pub use tonlib_core::cell::{ArcCell as SharedCell, Cell};

use crate::cocoon::{ClientData, CodecError, ProxyData, RootData, WorkerData};
use crate::Wallet;

/// Why a network call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TonError {
    /// The sending wallet cannot cover what it sends.
    #[error("wallet {wallet} holds {have} nano-TON, sending needs {need}")]
    WalletBalance {
        /// The wallet.
        wallet: String,
        /// Its balance.
        have: u128,
        /// What the messages carry.
        need: u128,
    },
    /// An account's storage is not the layout expected there.
    #[error("{what} at {address}: {source}")]
    Layout {
        /// Which contract.
        what: &'static str,
        /// Where.
        address: String,
        /// Why it does not parse.
        source: CodecError,
    },
    /// A cell or BOC could not be (de)serialised.
    #[error("cell: {0}")]
    Cell(String),
    /// The embedded TVM refused or failed.
    #[error("tvm: {0}")]
    Tvm(String),
    /// The remote API failed or answered something unexpected.
    #[error("chain API: {0}")]
    Api(String),
}

/// An account's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Never seen.
    Nonexist,
    /// Holds a balance, no code.
    Uninit,
    /// Has code and data.
    Active,
    /// Frozen for unpaid storage.
    Frozen,
}

/// An account as the network stores it.
#[derive(Clone, Debug)]
pub struct AccountState {
    /// Its status.
    pub status: Status,
    /// Its balance, nano-TON.
    pub balance: u128,
    /// Code (active accounts).
    pub code: Option<ArcCell>,
    /// Data (active accounts).
    pub data: Option<ArcCell>,
    /// The logical time of its last transaction (0 if none).
    pub last_lt: u64,
}

/// One transaction of an account, as far as a reader of inbound messages needs it.
#[derive(Clone, Debug)]
pub struct InboundTx {
    /// Its logical time (increasing per account).
    pub lt: u64,
    /// The block time it executed at.
    pub now: u32,
    /// The inbound message's source (`None` for an external message).
    pub source: Option<TonAddress>,
    /// The value the inbound message carried.
    pub value: u128,
    /// The inbound body (the empty cell for none).
    pub body: ArcCell,
    /// Whether the inbound message was a bounce.
    pub bounced: bool,
    /// The compute phase's exit code (`None` when it was skipped).
    pub exit_code: Option<i32>,
    /// Whether the transaction was aborted (its effects undone).
    pub aborted: bool,
    /// Fees the account paid in this transaction (storage, gas, actions).
    pub total_fees: u128,
    /// What its out-messages still carry for forwarding (collected when they are delivered).
    pub forward_fees: u128,
}

/// A message a wallet sends.
#[derive(Clone, Debug)]
pub struct WalletMessage {
    /// Destination.
    pub to: TonAddress,
    /// Value, nano-TON.
    pub value: u128,
    /// Bounce if the destination fails.
    pub bounce: bool,
    /// Body.
    pub body: ArcCell,
    /// StateInit to deploy the destination.
    pub state_init: Option<ArcCell>,
}

/// What became of sent messages.
#[derive(Clone, Debug)]
pub enum SendOutcome {
    /// Executed at once (the embedded network): each message's first transaction at its
    /// destination, in order.
    Executed(Vec<InboundTx>),
    /// Accepted by a remote network; executes in a later block.
    Submitted {
        /// The external message's hash, hex.
        hash: String,
    },
}

/// A TON network.
#[async_trait]
pub trait TonNetwork: Send + Sync + 'static {
    /// For logs: `embedded TVM …`, `toncenter …`.
    fn describe(&self) -> String;
    /// The network's clock (Unix seconds).
    async fn now(&self) -> Result<u32, TonError>;
    /// An account's state.
    async fn account(&self, address: &TonAddress) -> Result<AccountState, TonError>;
    /// Up to `limit` of the account's transactions after logical time `after_lt`, oldest first.
    async fn transactions(
        &self,
        address: &TonAddress,
        after_lt: u64,
        limit: usize,
    ) -> Result<Vec<InboundTx>, TonError>;
    /// Sends `messages` from `wallet` (on a real network: one signed external to the wallet
    /// contract; embedded: from the wallet's address, debiting it).
    async fn send(
        &self,
        wallet: &Wallet,
        messages: &[WalletMessage],
    ) -> Result<SendOutcome, TonError>;
}

/// The typed COCOON view of a network: the root and the contracts' storages.
pub struct Cocoon {
    network: Arc<dyn TonNetwork>,
    root: TonAddress,
}

impl Cocoon {
    /// COCOON with its root at `root`.
    pub fn new(network: Arc<dyn TonNetwork>, root: TonAddress) -> Cocoon {
        Cocoon { network, root }
    }

    /// The network.
    pub fn network(&self) -> &Arc<dyn TonNetwork> {
        &self.network
    }

    /// The root's address.
    pub fn root_address(&self) -> &TonAddress {
        &self.root
    }

    /// The root's storage (registry, hashes, params with the codes).
    pub async fn root(&self) -> Result<RootData, TonError> {
        let state = self.network.account(&self.root).await?;
        let data = active_data(&state, "root", &self.root)?;
        RootData::from_cell(&data).map_err(|source| layout("root", &self.root, source))
    }

    /// A proxy contract's storage, if deployed.
    pub async fn proxy(&self, address: &TonAddress) -> Result<Option<ProxyData>, TonError> {
        self.parse(address, "proxy contract", ProxyData::from_cell)
            .await
    }

    /// A client contract's storage, if deployed.
    pub async fn client(&self, address: &TonAddress) -> Result<Option<ClientData>, TonError> {
        self.parse(address, "client contract", ClientData::from_cell)
            .await
    }

    /// A worker contract's storage, if deployed.
    pub async fn worker(&self, address: &TonAddress) -> Result<Option<WorkerData>, TonError> {
        self.parse(address, "worker contract", WorkerData::from_cell)
            .await
    }

    async fn parse<T>(
        &self,
        address: &TonAddress,
        what: &'static str,
        from_cell: impl Fn(&Cell) -> Result<T, CodecError>,
    ) -> Result<Option<T>, TonError> {
        let state = self.network.account(address).await?;
        if state.status != Status::Active {
            return Ok(None);
        }
        let data = active_data(&state, what, address)?;
        from_cell(&data)
            .map(Some)
            .map_err(|source| layout(what, address, source))
    }
}

fn layout(what: &'static str, address: &TonAddress, source: CodecError) -> TonError {
    TonError::Layout {
        what,
        address: address.to_string(),
        source,
    }
}

fn active_data(
    state: &AccountState,
    what: &'static str,
    address: &TonAddress,
) -> Result<ArcCell, TonError> {
    state
        .data
        .clone()
        .filter(|_| state.status == Status::Active)
        .ok_or_else(|| layout(what, address, CodecError::EmptyBody))
}

/// A cell as a one-root BOC.
pub fn to_boc(cell: &ArcCell) -> Result<Vec<u8>, TonError> {
    BagOfCells::from_root(cell.as_ref().clone())
        .serialize(false)
        .map_err(|e| TonError::Cell(e.to_string()))
}

/// The one root of a BOC.
pub fn from_boc(boc: &[u8]) -> Result<ArcCell, TonError> {
    crate::boc::parse(boc)
        .and_then(|b| b.single_root().map_err(|e| e.to_string()))
        .map_err(TonError::Cell)
}

fn hash_of(address: &TonAddress) -> [u8; 32] {
    let mut hash = [0; 32];
    hash.copy_from_slice(address.hash_part.as_slice());
    hash
}

fn tvm_address(address: &TonAddress) -> cocoon_tvm::Address {
    cocoon_tvm::Address {
        // Workchains are -1 and 0 here; anything else is refused by the network itself.
        workchain: i8::try_from(address.workchain).unwrap_or(i8::MIN),
        hash: hash_of(address),
    }
}

fn ton_address(address: &cocoon_tvm::Address) -> TonAddress {
    TonAddress::new(i32::from(address.workchain), address.hash.into())
}

fn tvm_error(error: cocoon_tvm::Error) -> TonError {
    TonError::Tvm(error.to_string())
}

/// The embedded network: the contracts' code on tycho's TVM, durable in a directory
/// ([`cocoon_tvm::LocalNetwork`]: a journal of inputs fsynced per call, snapshots, a file lock
/// so the devnet and `cocoon wallet` can share it, and each account's transaction history).
/// Wallets are code-less accounts: a send debits the wallet the messages' values (nothing is
/// created), and payments to a wallet credit it. Fees are paid by the receiving contracts out
/// of the values, as on a real network; a real wallet would also pay its own small gas and
/// forwarding fees, which the embedded one does not.
pub struct TvmNetwork {
    local: cocoon_tvm::LocalNetwork,
}

impl TvmNetwork {
    /// Opens the network in `dir`, creating it (starting at Unix time `now`) if absent.
    pub fn open_or_create(dir: &std::path::Path, now: u32) -> Result<TvmNetwork, TonError> {
        let local = cocoon_tvm::LocalNetwork::open_or_create(
            dir,
            &cocoon_tvm::Genesis::at(now),
            cocoon_tvm::Options::default(),
        )
        .map_err(tvm_error)?;
        Ok(TvmNetwork { local })
    }

    /// Opens an existing network in `dir` (the devnet's `<data-dir>/ton`); an error names what
    /// is missing when there is none.
    pub fn open(dir: &std::path::Path) -> Result<TvmNetwork, TonError> {
        if !dir.join(cocoon_tvm::durable::JOURNAL_FILE).exists() {
            return Err(TonError::Tvm(format!(
                "no embedded network in {} (cocoon devnet creates one)",
                dir.display()
            )));
        }
        let local = cocoon_tvm::LocalNetwork::open_with(dir, cocoon_tvm::Options::default())
            .map_err(tvm_error)?;
        Ok(TvmNetwork { local })
    }

    /// The faucet: adds `amount` to `address`.
    pub fn mint(&self, address: &TonAddress, amount: u128) -> Result<(), TonError> {
        blocking(|| self.local.mint(&tvm_address(address), amount))
            .map(|_| ())
            .map_err(tvm_error)
    }

    /// Moves the clock to `now`; never backwards (an error).
    pub fn set_now(&self, now: u32) -> Result<(), TonError> {
        blocking(|| self.local.set_now(now)).map_err(tvm_error)
    }

    fn execute(&self, wallet: &TonAddress, message: &WalletMessage) -> Result<InboundTx, TonError> {
        let to = tvm_address(&message.to);
        let internal = cocoon_tvm::InternalMessage {
            from: tvm_address(wallet),
            to,
            value: message.value,
            bounce: message.bounce,
            body: to_boc(&message.body)?,
            state_init: message.state_init.as_ref().map(to_boc).transpose()?,
        };
        let trace = match blocking(|| self.local.transfer(&internal)) {
            Ok(trace) => trace,
            Err(cocoon_tvm::Error::InsufficientBalance {
                balance, needed, ..
            }) => {
                return Err(TonError::WalletBalance {
                    wallet: wallet.to_string(),
                    have: balance,
                    need: needed,
                })
            }
            Err(error) => return Err(tvm_error(error)),
        };
        let first = trace
            .first_on(&to)
            .ok_or_else(|| TonError::Tvm("the message executed no transaction".into()))?;
        inbound(&cocoon_tvm::AccountTransaction::from(first))
    }
}

/// Runs a call that takes the network's file lock and may fsync: on a multi-threaded runtime,
/// tell the runtime this thread blocks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn inbound(tx: &cocoon_tvm::AccountTransaction) -> Result<InboundTx, TonError> {
    Ok(InboundTx {
        lt: tx.lt,
        now: tx.now,
        source: tx.in_message.source.as_ref().map(ton_address),
        value: tx.in_message.value,
        body: if tx.in_message.body.is_empty() {
            Arc::new(Cell::default())
        } else {
            from_boc(&tx.in_message.body)?
        },
        bounced: tx.in_message.bounced,
        exit_code: tx.exit_code,
        aborted: tx.aborted,
        total_fees: tx.total_fees,
        forward_fees: tx.out_messages.iter().map(|m| m.fwd_fee).sum(),
    })
}

#[async_trait]
impl TonNetwork for TvmNetwork {
    fn describe(&self) -> String {
        format!(
            "embedded TVM (tycho) at {}",
            self.local.journal_path().display()
        )
    }

    async fn now(&self) -> Result<u32, TonError> {
        blocking(|| self.local.current_time()).map_err(tvm_error)
    }

    async fn account(&self, address: &TonAddress) -> Result<AccountState, TonError> {
        let info = blocking(|| self.local.account(&tvm_address(address))).map_err(tvm_error)?;
        let status = match info.status {
            cocoon_tvm::AccountStatus::Active => Status::Active,
            cocoon_tvm::AccountStatus::Uninit => Status::Uninit,
            cocoon_tvm::AccountStatus::Frozen => Status::Frozen,
            cocoon_tvm::AccountStatus::NonExisting => Status::Nonexist,
        };
        Ok(AccountState {
            status,
            balance: info.balance,
            code: info.code.as_deref().map(from_boc).transpose()?,
            data: info.data.as_deref().map(from_boc).transpose()?,
            last_lt: info.last_transaction_lt,
        })
    }

    async fn transactions(
        &self,
        address: &TonAddress,
        after_lt: u64,
        limit: usize,
    ) -> Result<Vec<InboundTx>, TonError> {
        blocking(|| {
            self.local
                .transactions(&tvm_address(address), after_lt, limit)
        })
        .map_err(tvm_error)?
        .iter()
        .map(inbound)
        .collect()
    }

    async fn send(
        &self,
        wallet: &Wallet,
        messages: &[WalletMessage],
    ) -> Result<SendOutcome, TonError> {
        let mut executed = Vec::with_capacity(messages.len());
        for message in messages {
            executed.push(self.execute(wallet.address(), message)?);
        }
        Ok(SendOutcome::Executed(executed))
    }
}

/// toncenter's mainnet v2 API.
pub const MAINNET_TONCENTER: &str = "https://toncenter.com/api/v2";
/// The published mainnet COCOON root (the reference's `scripts/dist-worker/worker.conf.example`).
pub const MAINNET_ROOT: &str = "EQCns7bYSp0igFvS1wpb5wsZjCKCV19MD5AVzI4EyxsnU73k";

/// Which TON network a node's `[chain]` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// The embedded TVM network in a local directory (the devnet's `<data-dir>/ton`).
    Local,
    /// A TON network through toncenter's v2 API.
    Toncenter,
    /// TON mainnet: toncenter's mainnet API and the published COCOON root, unless set.
    Mainnet,
}

/// Which network a node's config names, and where to find it.
#[derive(Clone, Debug, Default)]
pub struct NetworkSpec {
    /// The embedded network's directory (the devnet's `<data-dir>/ton`); its `root` file names
    /// the root when `root_address` is not set.
    pub local_dir: Option<std::path::PathBuf>,
    /// toncenter's v2 API, when not local.
    pub toncenter_url: Option<String>,
    /// toncenter's API key.
    pub toncenter_api_key: Option<String>,
    /// The COCOON root.
    pub root_address: Option<String>,
}

impl NetworkSpec {
    /// The network of a `[chain]` table's fields.
    pub fn of(
        kind: NetworkKind,
        local_dir: Option<std::path::PathBuf>,
        toncenter_url: Option<String>,
        toncenter_api_key: Option<String>,
        root_address: Option<String>,
    ) -> NetworkSpec {
        match kind {
            NetworkKind::Local => NetworkSpec {
                local_dir: Some(local_dir.unwrap_or_default()),
                root_address,
                ..NetworkSpec::default()
            },
            NetworkKind::Toncenter => NetworkSpec {
                local_dir: None,
                toncenter_url,
                toncenter_api_key,
                root_address,
            },
            NetworkKind::Mainnet => {
                NetworkSpec::mainnet(toncenter_url, toncenter_api_key, root_address)
            }
        }
    }

    /// Mainnet through toncenter, with the published root unless others are given.
    pub fn mainnet(
        toncenter_url: Option<String>,
        toncenter_api_key: Option<String>,
        root: Option<String>,
    ) -> NetworkSpec {
        NetworkSpec {
            local_dir: None,
            toncenter_url: Some(toncenter_url.unwrap_or_else(|| MAINNET_TONCENTER.into())),
            toncenter_api_key,
            root_address: Some(root.unwrap_or_else(|| MAINNET_ROOT.into())),
        }
    }

    /// Opens the network (the embedded one when `local_dir` is set, else toncenter) and
    /// returns the COCOON view of it; the root is not read yet.
    pub fn open(&self) -> Result<Cocoon, String> {
        let (network, default_root): (Arc<dyn TonNetwork>, Option<String>) = match &self.local_dir {
            Some(dir) => {
                let root = std::fs::read_to_string(dir.join("root")).ok();
                let network = TvmNetwork::open(dir).map_err(|e| e.to_string())?;
                (Arc::new(network), root)
            }
            None => {
                let url = self
                    .toncenter_url
                    .as_deref()
                    .ok_or("no network: set a local directory or a toncenter URL")?;
                let network =
                    crate::toncenter_v2::ToncenterNetwork::new(url, self.toncenter_api_key.clone())
                        .map_err(|e| e.to_string())?;
                (Arc::new(network), None)
            }
        };
        let root = self
            .root_address
            .clone()
            .or(default_root)
            .ok_or("the root address is missing")?;
        let root: TonAddress = root
            .trim()
            .parse()
            .map_err(|e| format!("root address {:?}: {e}", root.trim()))?;
        Ok(Cocoon::new(network, root))
    }
}
