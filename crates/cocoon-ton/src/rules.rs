//! The payment rules of `docs/payments.md`, executed natively: the state machine behind the
//! local chain.
//!
//! Every handler checks everything before it changes anything, so a rejected message leaves
//! the world exactly as it was (as a failed TVM compute phase does).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonlib_core::cell::Cell;
use tonlib_core::{TonAddress, TonHash};

use crate::messages::{Body, SignedMessage};
use crate::ops::{op, ContractStatus, ExitCode, HashKind, Params};
use crate::Coins;

/// The root registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootState {
    /// Who may update it.
    pub owner: TonAddress,
    /// Current parameters.
    pub params: Params,
    /// Grows by one at every `root_set_params`.
    pub params_version: u32,
    /// Allowed proxy image hashes.
    pub proxy_image_hashes: BTreeSet<[u8; 32]>,
    /// Allowed worker image hashes.
    pub worker_image_hashes: BTreeSet<[u8; 32]>,
    /// Allowed model hashes.
    pub model_hashes: BTreeSet<[u8; 32]>,
    /// Registered proxies: id → `ip:port`.
    pub proxies: BTreeMap<u32, String>,
}

impl RootState {
    /// The set for a hash kind.
    pub fn hashes(&self, kind: HashKind) -> &BTreeSet<[u8; 32]> {
        match kind {
            HashKind::ProxyImage => &self.proxy_image_hashes,
            HashKind::WorkerImage => &self.worker_image_hashes,
            HashKind::Model => &self.model_hashes,
        }
    }

    fn hashes_mut(&mut self, kind: HashKind) -> &mut BTreeSet<[u8; 32]> {
        match kind {
            HashKind::ProxyImage => &mut self.proxy_image_hashes,
            HashKind::WorkerImage => &mut self.worker_image_hashes,
            HashKind::Model => &mut self.model_hashes,
        }
    }
}

/// A proxy contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyState {
    /// The operator's wallet.
    pub owner: TonAddress,
    /// The key that signs charges and payouts.
    pub public_key: [u8; 32],
    /// Params copied from the root at deploy.
    pub params: Params,
    /// The operator's stake, nano-TON.
    pub stake: u128,
    /// Charges received from clients, nano-TON.
    pub earned: u128,
    /// Paid to workers, nano-TON.
    pub paid_out: u128,
    /// Last committed ledger seqno.
    pub seqno: u64,
    /// Ledger session hash at `seqno`.
    pub state_hash: [u8; 32],
    /// Client contracts not closed.
    pub open_clients: u32,
    /// Worker contracts not closed.
    pub open_workers: u32,
    /// Lifecycle.
    pub status: ContractStatus,
}

impl ProxyState {
    /// What the contract holds: `stake + earned − paid_out`.
    pub fn funds(&self) -> u128 {
        (self.stake + self.earned).saturating_sub(self.paid_out)
    }
}

/// A client contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientState {
    /// The client's wallet.
    pub owner: TonAddress,
    /// The proxy contract.
    pub proxy: TonAddress,
    /// The proxy's signing key.
    pub proxy_public_key: [u8; 32],
    /// nano-TON per token.
    pub price_per_token: u128,
    /// Seconds between starting and finishing a close.
    pub client_close_delay: u32,
    /// nano-TON available to pay with (stake included).
    pub balance: u128,
    /// nano-TON that stays while running.
    pub stake: u128,
    /// Tokens charged so far.
    pub tokens_used: u64,
    /// Lifecycle.
    pub status: ContractStatus,
    /// When a closing client may take its stake.
    pub unlock_time: u32,
    /// SHA-256 of the short-auth secret.
    pub secret_hash: [u8; 32],
}

/// A worker contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    /// The worker's wallet.
    pub owner: TonAddress,
    /// The proxy contract.
    pub proxy: TonAddress,
    /// The proxy's signing key.
    pub proxy_public_key: [u8; 32],
    /// nano-TON per token.
    pub worker_fee_per_token: u128,
    /// Tokens paid so far.
    pub paid_tokens: u64,
    /// Lifecycle.
    pub status: ContractStatus,
}

/// What makes a contract's address: its kind and initial data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Init {
    /// A proxy contract of `owner` signing with `public_key`.
    Proxy {
        /// Operator wallet.
        owner: TonAddress,
        /// Signing key, hex.
        #[serde(with = "hex_key")]
        public_key: [u8; 32],
    },
    /// The client contract of `owner` at `proxy`.
    Client {
        /// The proxy contract.
        proxy: TonAddress,
        /// The client wallet.
        owner: TonAddress,
    },
    /// The worker contract of `owner` at `proxy`.
    Worker {
        /// The proxy contract.
        proxy: TonAddress,
        /// The worker wallet.
        owner: TonAddress,
    },
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(k))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

fn derive(tag: &str, parts: &[&[u8]]) -> TonAddress {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    for p in parts {
        h.update(p);
    }
    let hash: [u8; 32] = h.finalize().into();
    TonAddress::new(0, TonHash::from(hash))
}

fn addr_bytes(a: &TonAddress) -> Vec<u8> {
    let mut v = a.workchain.to_be_bytes().to_vec();
    v.extend_from_slice(a.hash_part.as_slice());
    v
}

/// Local-chain address of the root owned by `owner`.
pub fn root_address(owner: &TonAddress) -> TonAddress {
    derive("cocoon.local.root", &[&addr_bytes(owner)])
}

impl Init {
    /// The local-chain address this init data deploys to (`root` fixes the network).
    pub fn address(&self, root: &TonAddress) -> TonAddress {
        match self {
            Init::Proxy { owner, public_key } => derive(
                "cocoon.local.proxy",
                &[&addr_bytes(root), &addr_bytes(owner), public_key],
            ),
            Init::Client { proxy, owner } => derive(
                "cocoon.local.client",
                &[&addr_bytes(proxy), &addr_bytes(owner)],
            ),
            Init::Worker { proxy, owner } => derive(
                "cocoon.local.worker",
                &[&addr_bytes(proxy), &addr_bytes(owner)],
            ),
        }
    }
}

/// An internal message as the local chain executes it.
#[derive(Clone, Debug)]
pub struct Message {
    /// The sending wallet.
    pub from: TonAddress,
    /// The destination contract.
    pub to: TonAddress,
    /// Attached value (the logical amount; gas is free on the local chain).
    pub value: Coins,
    /// The body.
    pub body: Cell,
    /// Deploys `to` with this init data if it does not exist yet.
    pub init: Option<Init>,
}

/// Why the local chain did not execute a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    /// The contract refused it; nothing changed.
    #[error("refused by the contract: {0}")]
    Exit(#[from] ExitCode),
    /// The sending wallet does not hold the value.
    #[error("the sending wallet holds {have}, the message carries {need}")]
    WalletBalance {
        /// Wallet balance.
        have: Coins,
        /// Needed.
        need: Coins,
    },
    /// Nothing lives at the destination and no (matching) init data came with it.
    #[error("no contract at {0}")]
    NoContract(TonAddress),
}

/// A payment a contract made to a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// Receiving wallet.
    pub to: TonAddress,
    /// nano-TON.
    pub amount: Coins,
}

/// What an executed message did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Value the contract kept (the rest went back to the sender).
    pub consumed: Coins,
    /// Payments to wallets.
    pub payments: Vec<Payment>,
}

/// Every contract and wallet of a local network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    /// Unix seconds.
    pub now: u32,
    /// The root's address.
    pub root_address: TonAddress,
    /// The root.
    pub root: RootState,
    /// Proxy contracts by address.
    pub proxies: HashMap<TonAddress, ProxyState>,
    /// Client contracts by address.
    pub clients: HashMap<TonAddress, ClientState>,
    /// Worker contracts by address.
    pub workers: HashMap<TonAddress, WorkerState>,
    /// Wallet balances, nano-TON.
    pub wallets: HashMap<TonAddress, u128>,
    /// Everything contracts paid to each wallet, nano-TON.
    pub paid: HashMap<TonAddress, u128>,
}

type Step<T> = Result<T, ExitCode>;

impl World {
    /// A network whose root, owned by `owner`, starts with `params`.
    pub fn new(owner: TonAddress, params: Params, now: u32) -> World {
        World {
            now,
            root_address: root_address(&owner),
            root: RootState {
                owner,
                params,
                params_version: 0,
                proxy_image_hashes: BTreeSet::new(),
                worker_image_hashes: BTreeSet::new(),
                model_hashes: BTreeSet::new(),
                proxies: BTreeMap::new(),
            },
            proxies: HashMap::new(),
            clients: HashMap::new(),
            workers: HashMap::new(),
            wallets: HashMap::new(),
            paid: HashMap::new(),
        }
    }

    /// Creates `amount` out of thin air in `wallet` (the local chain's faucet).
    pub fn mint(&mut self, wallet: &TonAddress, amount: Coins) {
        let w = self.wallets.entry(wallet.clone()).or_default();
        *w = w.saturating_add(amount.0);
    }

    /// A wallet's balance.
    pub fn wallet_balance(&self, wallet: &TonAddress) -> Coins {
        Coins(self.wallets.get(wallet).copied().unwrap_or(0))
    }

    /// Total nano-TON in wallets and contracts: constant except for [`World::mint`].
    pub fn total_supply(&self) -> u128 {
        let wallets: u128 = self.wallets.values().sum();
        let clients: u128 = self.clients.values().map(|c| c.balance).sum();
        let proxies: u128 = self
            .proxies
            .values()
            .filter(|p| p.status != ContractStatus::Closed)
            .map(ProxyState::funds)
            .sum();
        wallets + clients + proxies
    }

    /// Executes `msg`. On `Err` nothing changed.
    pub fn execute(&mut self, msg: &Message) -> Result<Receipt, Rejected> {
        let have = self.wallet_balance(&msg.from);
        if have < msg.value {
            return Err(Rejected::WalletBalance {
                have,
                need: msg.value,
            });
        }
        let body = Body::from_cell(&msg.body).map_err(|_| ExitCode::UnknownOp)?;
        let mut payments = Vec::new();
        let consumed = if msg.to == self.root_address {
            self.root_message(msg, body)?;
            Coins::ZERO
        } else if self.proxies.contains_key(&msg.to) {
            self.proxy_message(msg, body, &mut payments)?
        } else if self.clients.contains_key(&msg.to) {
            self.client_message(msg, body, &mut payments)?
        } else if self.workers.contains_key(&msg.to) {
            self.worker_message(msg, body, &mut payments)?
        } else {
            match &msg.init {
                Some(init) if init.address(&self.root_address) == msg.to => {
                    self.deploy(msg, init, body)?
                }
                _ => return Err(Rejected::NoContract(msg.to.clone())),
            }
        };
        // Only the consumed part leaves the sender; the rest comes back as excess.
        let w = self.wallets.entry(msg.from.clone()).or_default();
        *w -= consumed.0;
        payments.retain(|p| p.amount > Coins::ZERO);
        for p in &payments {
            *self.wallets.entry(p.to.clone()).or_default() += p.amount.0;
            *self.paid.entry(p.to.clone()).or_default() += p.amount.0;
        }
        Ok(Receipt { consumed, payments })
    }

    fn root_message(&mut self, msg: &Message, body: Body) -> Step<()> {
        if msg.from != self.root.owner {
            return Err(ExitCode::NotOwner);
        }
        match body {
            Body::SetParams { params, .. } => {
                self.root.params = params;
                self.root.params_version += 1;
            }
            Body::AddHash { kind, hash, .. } => {
                self.root.hashes_mut(kind).insert(hash);
            }
            Body::RemoveHash { kind, hash, .. } => {
                self.root.hashes_mut(kind).remove(&hash);
            }
            Body::RegisterProxy { id, endpoint, .. } => {
                self.root.proxies.insert(id, endpoint);
            }
            Body::UnregisterProxy { id, .. } => {
                self.root.proxies.remove(&id);
            }
            _ => return Err(ExitCode::UnknownOp),
        }
        Ok(())
    }

    fn deploy(&mut self, msg: &Message, init: &Init, body: Body) -> Step<Coins> {
        match (init, body) {
            (Init::Proxy { owner, public_key }, Body::ProxyDeploy { stake, .. }) => {
                if msg.from != *owner {
                    return Err(ExitCode::NotOwner);
                }
                let params = self.root.params.clone();
                if stake.0 < u128::from(params.min_proxy_stake) || msg.value < stake {
                    return Err(ExitCode::InsufficientValue);
                }
                self.proxies.insert(
                    msg.to.clone(),
                    ProxyState {
                        owner: owner.clone(),
                        public_key: *public_key,
                        params,
                        stake: stake.0,
                        earned: 0,
                        paid_out: 0,
                        seqno: 0,
                        state_hash: [0; 32],
                        open_clients: 0,
                        open_workers: 0,
                        status: ContractStatus::Running,
                    },
                );
                Ok(stake)
            }
            (
                Init::Client { proxy, owner },
                Body::ClientDeploy {
                    amount,
                    stake,
                    secret_hash,
                    ..
                },
            ) => {
                if msg.from != *owner {
                    return Err(ExitCode::NotOwner);
                }
                let p = self.running_proxy(proxy)?;
                if stake.0 < u128::from(p.params.min_client_stake)
                    || amount < stake
                    || msg.value < amount
                {
                    return Err(ExitCode::InsufficientValue);
                }
                let client = ClientState {
                    owner: owner.clone(),
                    proxy: proxy.clone(),
                    proxy_public_key: p.public_key,
                    price_per_token: u128::from(p.params.price_per_token),
                    client_close_delay: p.params.client_close_delay,
                    balance: amount.0,
                    stake: stake.0,
                    tokens_used: 0,
                    status: ContractStatus::Running,
                    unlock_time: 0,
                    secret_hash,
                };
                self.proxy_mut(proxy).open_clients += 1;
                self.clients.insert(msg.to.clone(), client);
                Ok(amount)
            }
            (Init::Worker { proxy, owner }, Body::WorkerDeploy { .. }) => {
                if msg.from != *owner {
                    return Err(ExitCode::NotOwner);
                }
                let p = self.running_proxy(proxy)?;
                let worker = WorkerState {
                    owner: owner.clone(),
                    proxy: proxy.clone(),
                    proxy_public_key: p.public_key,
                    worker_fee_per_token: u128::from(p.params.worker_fee_per_token),
                    paid_tokens: 0,
                    status: ContractStatus::Running,
                };
                self.proxy_mut(proxy).open_workers += 1;
                self.workers.insert(msg.to.clone(), worker);
                Ok(Coins::ZERO)
            }
            _ => Err(ExitCode::UnknownOp),
        }
    }

    fn running_proxy(&self, proxy: &TonAddress) -> Step<&ProxyState> {
        match self.proxies.get(proxy) {
            Some(p) if p.status == ContractStatus::Running => Ok(p),
            _ => Err(ExitCode::WrongState),
        }
    }

    fn proxy_mut(&mut self, proxy: &TonAddress) -> &mut ProxyState {
        // Callers checked it exists; a client or worker's proxy is never removed.
        self.proxies
            .get_mut(proxy)
            .unwrap_or_else(|| unreachable!("checked proxy {proxy}"))
    }

    fn proxy_message(
        &mut self,
        msg: &Message,
        body: Body,
        payments: &mut Vec<Payment>,
    ) -> Step<Coins> {
        let p = self.proxies.get(&msg.to).ok_or(ExitCode::UnknownOp)?;
        if msg.from != p.owner {
            return Err(ExitCode::NotOwner);
        }
        match body {
            Body::ProxyDeploy { .. } => Err(ExitCode::WrongState),
            Body::SaveState { seqno, hash, .. } => {
                if p.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                if seqno <= p.seqno {
                    return Err(ExitCode::StaleSeqno);
                }
                let p = self.proxy_mut(&msg.to);
                p.seqno = seqno;
                p.state_hash = hash;
                Ok(Coins::ZERO)
            }
            Body::ProxyClose { .. } => {
                if p.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                if p.open_clients > 0 || p.open_workers > 0 {
                    return Err(ExitCode::OpenContracts);
                }
                let amount = p.funds();
                payments.push(Payment {
                    to: p.owner.clone(),
                    amount: Coins(amount),
                });
                self.proxy_mut(&msg.to).status = ContractStatus::Closed;
                Ok(Coins::ZERO)
            }
            _ => Err(ExitCode::UnknownOp),
        }
    }

    fn check_signed(&self, m: &SignedMessage, key: &[u8; 32], me: &TonAddress) -> Step<()> {
        if !m.verify(key) {
            return Err(ExitCode::BadSignature);
        }
        if m.payload.target != *me {
            return Err(ExitCode::WrongTarget);
        }
        Ok(())
    }

    fn client_message(
        &mut self,
        msg: &Message,
        body: Body,
        payments: &mut Vec<Payment>,
    ) -> Step<Coins> {
        let c = self
            .clients
            .get(&msg.to)
            .ok_or(ExitCode::UnknownOp)?
            .clone();
        let owner_only = |from: &TonAddress| {
            if *from == c.owner {
                Ok(())
            } else {
                Err(ExitCode::NotOwner)
            }
        };
        let running = |c: &ClientState| {
            if c.status == ContractStatus::Running {
                Ok(())
            } else {
                Err(ExitCode::WrongState)
            }
        };
        let mut next = c.clone();
        let mut consumed = Coins::ZERO;
        let mut proxy_earned = 0u128;
        let mut closes = false;
        match body {
            Body::ClientDeploy { .. } => return Err(ExitCode::WrongState),
            Body::TopUp { amount, .. } => {
                if c.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                if msg.value < amount {
                    return Err(ExitCode::InsufficientValue);
                }
                next.balance += amount.0;
                consumed = amount;
            }
            Body::IncreaseStake { new_stake, .. } => {
                owner_only(&msg.from)?;
                running(&c)?;
                if new_stake.0 < c.stake {
                    return Err(ExitCode::NotIncreasing);
                }
                if new_stake.0 > c.balance {
                    return Err(ExitCode::InsufficientValue);
                }
                next.stake = new_stake.0;
            }
            Body::Withdraw { amount, .. } => {
                owner_only(&msg.from)?;
                running(&c)?;
                if amount.0 > c.balance.saturating_sub(c.stake) {
                    return Err(ExitCode::BelowStake);
                }
                next.balance -= amount.0;
                payments.push(Payment {
                    to: c.owner.clone(),
                    amount,
                });
            }
            Body::Register { secret_hash, .. } => {
                owner_only(&msg.from)?;
                if c.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                next.secret_hash = secret_hash;
            }
            Body::RequestRefund { .. } => {
                owner_only(&msg.from)?;
                match c.status {
                    ContractStatus::Running => {
                        // Charges may have eaten into the stake: then nothing is above it.
                        let above = c.balance.saturating_sub(c.stake);
                        next.balance = c.balance - above;
                        next.status = ContractStatus::Closing;
                        next.unlock_time = self.now.saturating_add(c.client_close_delay);
                        payments.push(Payment {
                            to: c.owner.clone(),
                            amount: Coins(above),
                        });
                    }
                    ContractStatus::Closing => {
                        if self.now < c.unlock_time {
                            return Err(ExitCode::TooEarly);
                        }
                        next.balance = 0;
                        next.status = ContractStatus::Closed;
                        closes = true;
                        payments.push(Payment {
                            to: c.owner.clone(),
                            amount: Coins(c.balance),
                        });
                    }
                    ContractStatus::Closed => return Err(ExitCode::WrongState),
                }
            }
            Body::Signed(m) if m.payload.op == op::CHARGE_SIGNED => {
                self.check_signed(&m, &c.proxy_public_key, &msg.to)?;
                if c.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                if m.payload.tokens <= c.tokens_used {
                    return Err(ExitCode::NotIncreasing);
                }
                proxy_earned = charge(&mut next, m.payload.tokens);
            }
            Body::Signed(m) if m.payload.op == op::GRANT_REFUND_SIGNED => {
                self.check_signed(&m, &c.proxy_public_key, &msg.to)?;
                if c.status == ContractStatus::Closed {
                    return Err(ExitCode::WrongState);
                }
                if m.payload.tokens < c.tokens_used {
                    return Err(ExitCode::NotIncreasing);
                }
                proxy_earned = charge(&mut next, m.payload.tokens);
                payments.push(Payment {
                    to: c.owner.clone(),
                    amount: Coins(next.balance),
                });
                next.balance = 0;
                next.status = ContractStatus::Closed;
                closes = true;
            }
            _ => return Err(ExitCode::UnknownOp),
        }
        let p = self.proxy_mut(&c.proxy);
        p.earned += proxy_earned;
        if closes {
            p.open_clients = p.open_clients.saturating_sub(1);
        }
        self.clients.insert(msg.to.clone(), next);
        Ok(consumed)
    }

    fn worker_message(
        &mut self,
        msg: &Message,
        body: Body,
        payments: &mut Vec<Payment>,
    ) -> Step<Coins> {
        let w = self
            .workers
            .get(&msg.to)
            .ok_or(ExitCode::UnknownOp)?
            .clone();
        let Body::Signed(m) = body else {
            return Err(match body {
                Body::WorkerDeploy { .. } => ExitCode::WrongState,
                _ => ExitCode::UnknownOp,
            });
        };
        let last = match m.payload.op {
            op::WORKER_PAYOUT_SIGNED => false,
            op::WORKER_LAST_PAYOUT_SIGNED => true,
            _ => return Err(ExitCode::UnknownOp),
        };
        self.check_signed(&m, &w.proxy_public_key, &msg.to)?;
        if w.status == ContractStatus::Closed {
            return Err(ExitCode::WrongState);
        }
        let tokens = m.payload.tokens;
        if tokens < w.paid_tokens || (!last && tokens == w.paid_tokens) {
            return Err(ExitCode::NotIncreasing);
        }
        let amount = u128::from(tokens - w.paid_tokens) * w.worker_fee_per_token;
        let p = self.proxies.get(&w.proxy).ok_or(ExitCode::NotProxy)?;
        if p.funds() < amount {
            return Err(ExitCode::InsufficientFunds);
        }
        let p = self.proxy_mut(&w.proxy);
        p.paid_out += amount;
        if last {
            p.open_workers = p.open_workers.saturating_sub(1);
        }
        let w = self.workers.get_mut(&msg.to).ok_or(ExitCode::UnknownOp)?;
        w.paid_tokens = tokens;
        if last {
            w.status = ContractStatus::Closed;
        }
        if amount > 0 {
            payments.push(Payment {
                to: w.owner.clone(),
                amount: Coins(amount),
            });
        }
        Ok(Coins::ZERO)
    }
}

/// Charges `c` up to `tokens`; returns what the proxy receives.
fn charge(c: &mut ClientState, tokens: u64) -> u128 {
    let due = u128::from(tokens.saturating_sub(c.tokens_used)).saturating_mul(c.price_per_token);
    let paid = due.min(c.balance);
    c.balance -= paid;
    c.tokens_used = tokens.max(c.tokens_used);
    paid
}
