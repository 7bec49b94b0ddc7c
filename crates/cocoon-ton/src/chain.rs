//! The [`Chain`] the daemons and `cocoon wallet` talk to: the embedded local chain
//! ([`crate::local::LocalChain`]) or a real TON network through toncenter.

use async_trait::async_trait;
use tonlib_core::TonAddress;

use crate::messages::{Body, MessageError};
use crate::ops::ExitCode;
use crate::rules::{ClientState, Init, ProxyState, Receipt, Rejected, RootState, WorkerState};
use crate::{Coins, Wallet};

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A contract refused the message; nothing changed.
    #[error("{0}")]
    Rejected(ExitCode),
    /// The sending wallet cannot cover the message.
    #[error("wallet {wallet} holds {have}, the message needs {need}")]
    WalletBalance {
        /// The wallet.
        wallet: String,
        /// Its balance.
        have: Coins,
        /// What it needed.
        need: Coins,
    },
    /// No contract at the address (and nothing to deploy).
    #[error("no contract at {0}")]
    NoContract(String),
    /// A body could not be encoded.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The local chain's files.
    #[error("local chain {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The local chain's journal does not replay.
    #[error("local chain journal {path} is corrupt at line {line}: {why}")]
    Corrupt {
        /// The journal.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The remote API failed or answered something unexpected.
    #[error("chain API: {0}")]
    Api(String),
}

impl From<Rejected> for ChainError {
    fn from(r: Rejected) -> ChainError {
        match r {
            Rejected::Exit(code) => ChainError::Rejected(code),
            Rejected::WalletBalance { have, need } => ChainError::WalletBalance {
                wallet: String::new(),
                have,
                need,
            },
            Rejected::NoContract(a) => ChainError::NoContract(a.to_string()),
        }
    }
}

/// A message a wallet sends to a contract.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The contract.
    pub to: TonAddress,
    /// The logical amount it carries (a real network adds gas on top).
    pub value: Coins,
    /// The body.
    pub body: Body,
    /// Deploy data, for the first message to a contract.
    pub init: Option<Init>,
}

/// What became of a sent message.
#[derive(Clone, Debug)]
pub enum Sent {
    /// Executed at once (the local chain): what it did.
    Executed(Receipt),
    /// Accepted by the network; it executes in a later block.
    Submitted {
        /// The external message's hash, hex.
        hash: String,
    },
}

/// A TON network as COCOON uses it.
#[async_trait]
pub trait Chain: Send + Sync + 'static {
    /// For logs and `cocoon wallet status`: `local chain at …`, `toncenter …`.
    fn describe(&self) -> String;
    /// The root registry's address.
    fn root_address(&self) -> TonAddress;
    /// Where the contract with this init data lives (on a real network it depends on the
    /// proxy contract's key and params, so it may need a read).
    async fn address_of(&self, init: &Init) -> Result<TonAddress, ChainError>;
    /// The network's clock (Unix seconds).
    async fn now(&self) -> Result<u32, ChainError>;
    /// The root registry.
    async fn root(&self) -> Result<RootState, ChainError>;
    /// A proxy contract, if deployed.
    async fn proxy(&self, address: &TonAddress) -> Result<Option<ProxyState>, ChainError>;
    /// A client contract, if deployed.
    async fn client(&self, address: &TonAddress) -> Result<Option<ClientState>, ChainError>;
    /// A worker contract, if deployed.
    async fn worker(&self, address: &TonAddress) -> Result<Option<WorkerState>, ChainError>;
    /// A wallet's balance.
    async fn balance(&self, address: &TonAddress) -> Result<Coins, ChainError>;
    /// Sends `msg` from `wallet`.
    async fn send(&self, wallet: &Wallet, msg: Outgoing) -> Result<Sent, ChainError>;
}
