//! The network: accounts by address, a clock and logical time set by the caller, message
//! delivery until quiescence, get-methods, and snapshots.

use std::collections::{HashMap, VecDeque};

use tycho_executor::{Executor, ExecutorInspector, ParsedConfig, TxError};
use tycho_types::boc::Boc;
use tycho_types::cell::{Cell, CellBuilder, CellFamily, HashBytes, Lazy, Load};
use tycho_types::dict::Dict;
use tycho_types::models::{
    Account, AccountState, BlockchainConfig, ComputePhase, ComputePhaseSkipReason,
    CurrencyCollection, ExtInMsgInfo, IntAddr, IntMsgInfo, Message, MsgInfo, OptionalAccount,
    OwnedMessage, ShardAccount, StateInit, StorageUsed, TxInfo,
};
use tycho_types::num::{Tokens, VarUint56};

use crate::config;
use crate::error::{Error, Result};
use crate::stack::{decode, StackValue};
use crate::trace::{AccountStatus, ComputeSkipReason, InMessage, OutMessage, Trace, Transaction};
use crate::Address;

/// Logical time advances by this much before every transaction, as in @ton/sandbox (its
/// `LT_ALIGN`); out-messages get the following lts.
pub const LT_STEP: u64 = 1_000_000;

/// The default bound on transactions per send. The COCOON flows need fewer than ten; a loop
/// between contracts would otherwise run until someone's balance is spent.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 1_000;

/// The gas a get-method may use: the sandbox's default, far above what any of ours needs.
const GET_METHOD_GAS: u64 = 10_000_000;

/// Snapshot layout version (the first 32 bits are the magic `cTVM`).
const SNAPSHOT_MAGIC: u32 = u32::from_be_bytes(*b"cTVM");
const SNAPSHOT_VERSION: u8 = 1;

/// An internal message to inject, as if `from` had sent it (the sender is not checked and pays
/// nothing: the value appears with the message, as in the sandbox's `internal()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalMessage {
    pub from: Address,
    pub to: Address,
    pub value: u128,
    pub bounce: bool,
    /// The body as a BOC of one root cell; empty bytes mean the empty body.
    pub body: Vec<u8>,
    /// A BOC of a `StateInit` cell, to deploy the destination.
    pub state_init: Option<Vec<u8>>,
}

/// An account as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub status: AccountStatus,
    pub balance: u128,
    /// The code's BOC (active accounts only).
    pub code: Option<Vec<u8>>,
    /// The data's BOC (active accounts only).
    pub data: Option<Vec<u8>>,
    pub last_transaction_lt: u64,
}

/// What a get-method returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMethodResult {
    /// 0 or 1 on success; a contract's `throw` otherwise.
    pub exit_code: i32,
    pub gas_used: u64,
    /// The result stack, bottom first.
    pub stack: Vec<StackValue>,
}

impl GetMethodResult {
    pub fn success(&self) -> bool {
        self.exit_code == 0 || self.exit_code == 1
    }
}

/// A TON basechain in memory. See the crate documentation for what it mirrors.
pub struct Network {
    config: ParsedConfig,
    accounts: HashMap<HashBytes, ShardAccount>,
    now: u32,
    lt: u64,
    rand_seed: HashBytes,
    max_transactions: usize,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("accounts", &self.accounts.len())
            .field("now", &self.now)
            .field("lt", &self.lt)
            .field("max_transactions", &self.max_transactions)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// An empty network with mainnet's prices (`config::mainnet_config`) at unix time `now`.
    pub fn new(now: u32) -> Result<Self> {
        Self::with_config(config::mainnet_config()?, now)
    }

    /// An empty network with another config (it must hold the parameters the executor reads;
    /// see `mainnet_config`).
    pub fn with_config(config: BlockchainConfig, now: u32) -> Result<Self> {
        Ok(Self {
            config: config::parse(config, now)?,
            accounts: HashMap::new(),
            now,
            lt: 0,
            rand_seed: HashBytes::ZERO,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
        })
    }

    /// The network's unix time: what contracts see as `now`, and what storage fees count to.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Sets the time. The caller owns the clock: nothing here reads the wall clock.
    pub fn set_now(&mut self, now: u32) -> Result<()> {
        self.config
            .update_storage_prices(now)
            .map_err(|e| Error::Config(e.to_string()))?;
        self.now = now;
        Ok(())
    }

    /// The logical time of the latest transaction (0 before the first).
    pub fn lt(&self) -> u64 {
        self.lt
    }

    /// The block random seed contracts see (mixed with their address, as TON does). Zero by
    /// default, like the sandbox.
    pub fn set_rand_seed(&mut self, seed: [u8; 32]) {
        self.rand_seed = HashBytes(seed);
    }

    /// The most transactions one send may cause before it fails with
    /// [`Error::TooManyTransactions`] (and changes nothing).
    pub fn set_max_transactions(&mut self, limit: usize) {
        self.max_transactions = limit;
    }

    /// The account at `address`. Every address exists: one never touched is an `Uninit`
    /// account with no balance, as in the sandbox.
    pub fn account(&self, address: &Address) -> Result<AccountInfo> {
        let hash = basechain(address)?;
        let Some(account) = self.load_account(hash)? else {
            return Ok(AccountInfo {
                status: AccountStatus::Uninit,
                balance: 0,
                code: None,
                data: None,
                last_transaction_lt: 0,
            });
        };
        let (status, code, data) = match &account.state {
            AccountState::Uninit => (AccountStatus::Uninit, None, None),
            AccountState::Frozen(_) => (AccountStatus::Frozen, None, None),
            AccountState::Active(init) => (
                AccountStatus::Active,
                init.code.as_ref().map(Boc::encode),
                init.data.as_ref().map(Boc::encode),
            ),
        };
        Ok(AccountInfo {
            status,
            balance: account.balance.tokens.into_inner(),
            code,
            data,
            last_transaction_lt: account.last_trans_lt,
        })
    }

    /// The balance at `address` in nanoton.
    pub fn balance(&self, address: &Address) -> Result<u128> {
        Ok(self.account(address)?.balance)
    }

    /// Sets the balance of an account, creating it (uninit) if needed: the network's faucet,
    /// like assigning `contract.balance` in the sandbox. No transaction is recorded.
    pub fn set_balance(&mut self, address: &Address, balance: u128) -> Result<()> {
        let hash = basechain(address)?;
        let mut account = self
            .load_account(hash)?
            .unwrap_or_else(|| empty_account(address));
        account.balance = CurrencyCollection::new(balance);
        mirror_uninit_storage_stat(&mut account);
        let last_trans_lt = account.last_trans_lt;
        let previous = self.accounts.get(hash);
        let last_trans_hash = previous.map_or(HashBytes::ZERO, |p| p.last_trans_hash);
        self.accounts.insert(
            *hash,
            ShardAccount {
                account: Lazy::new(&OptionalAccount(Some(account)))?,
                last_trans_hash,
                last_trans_lt,
            },
        );
        Ok(())
    }

    /// The address a `StateInit` (given as a BOC) deploys to on the basechain.
    pub fn address_of(state_init: &[u8]) -> Result<Address> {
        parse_state_init(state_init)?;
        Ok(Address::basechain(
            decode("state init", state_init)?.repr_hash().0,
        ))
    }

    /// Delivers an internal message and everything it causes. See the crate documentation for
    /// the order and the bound.
    pub fn send_internal(&mut self, message: &InternalMessage) -> Result<Trace> {
        basechain(&message.to)?;
        let body = if message.body.is_empty() {
            Cell::empty_cell()
        } else {
            decode("message body", &message.body)?
        };
        let init = message
            .state_init
            .as_deref()
            .map(parse_state_init)
            .transpose()?;
        let info = IntMsgInfo {
            ihr_disabled: true,
            bounce: message.bounce,
            bounced: false,
            src: IntAddr::Std(message.from.to_std()),
            dst: IntAddr::Std(message.to.to_std()),
            value: CurrencyCollection::new(message.value),
            extra_flags: Default::default(),
            fwd_fee: Tokens::ZERO,
            created_lt: 0,
            created_at: 0,
        };
        let cell = CellBuilder::build_from(Message {
            info: MsgInfo::Int(info),
            init,
            body: body.as_slice()?,
            layout: None,
        })?;
        self.deliver(cell)
    }

    /// Delivers an inbound external message (optionally with a `StateInit`, to deploy a wallet)
    /// and everything it causes. A contract that does not accept it gives
    /// [`Error::ExternalNotAccepted`].
    pub fn send_external(
        &mut self,
        to: &Address,
        body: &[u8],
        state_init: Option<&[u8]>,
    ) -> Result<Trace> {
        basechain(to)?;
        let body = decode("message body", body)?;
        let init = state_init.map(parse_state_init).transpose()?;
        let cell = CellBuilder::build_from(Message {
            info: MsgInfo::ExtIn(ExtInMsgInfo {
                src: None,
                dst: IntAddr::Std(to.to_std()),
                import_fee: Tokens::ZERO,
            }),
            init,
            body: body.as_slice()?,
            layout: None,
        })?;
        self.deliver(cell)
    }

    /// Runs the first message and then every internal message the trace produces, oldest first.
    /// On any error, the accounts and lt are put back as they were (but for the lt step of a
    /// rejected external).
    fn deliver(&mut self, first: Cell) -> Result<Trace> {
        let lt_before = self.lt;
        let mut undo: HashMap<HashBytes, Option<ShardAccount>> = HashMap::new();
        let result = self.deliver_with_undo(first, &mut undo);
        if let Err(error) = &result {
            // A rejected external can only be the first message, so nothing else ran; it
            // still used up its lt step, as in the sandbox (whose lt advances before it
            // tries a message), so the lts of later transactions stay the sandbox's.
            self.lt = match error {
                Error::ExternalNotAccepted { .. } => lt_before + LT_STEP,
                _ => lt_before,
            };
            for (hash, previous) in undo {
                match previous {
                    Some(account) => self.accounts.insert(hash, account),
                    None => self.accounts.remove(&hash),
                };
            }
        }
        result
    }

    fn deliver_with_undo(
        &mut self,
        first: Cell,
        undo: &mut HashMap<HashBytes, Option<ShardAccount>>,
    ) -> Result<Trace> {
        let mut queue = VecDeque::from([first]);
        let mut trace = Trace::default();
        while let Some(message) = queue.pop_front() {
            if trace.transactions.len() >= self.max_transactions {
                return Err(Error::TooManyTransactions {
                    limit: self.max_transactions,
                });
            }
            let (transaction, out_cells) = self.execute(message, undo)?;
            for (cell, out) in out_cells.into_iter().zip(&transaction.out_messages) {
                if let Some(dest) = &out.dest {
                    // Checked here, not at delivery, so that the error names the trace's first
                    // undeliverable message rather than failing later in the queue.
                    basechain(dest)?;
                    queue.push_back(cell);
                }
            }
            trace.transactions.push(transaction);
        }
        Ok(trace)
    }

    /// Executes one message on its destination and commits the new account state.
    fn execute(
        &mut self,
        message: Cell,
        undo: &mut HashMap<HashBytes, Option<ShardAccount>>,
    ) -> Result<(Transaction, Vec<Cell>)> {
        let parsed: OwnedMessage = message.parse()?;
        let in_body = {
            let (range, cell) = &parsed.body;
            Boc::encode(CellBuilder::build_from(range.apply(cell)?)?)
        };
        let (is_external, dst, in_message) = match parsed.info {
            MsgInfo::Int(info) => (
                false,
                info.dst,
                InMessage {
                    source: Some(Address::from_int(&info.src)?),
                    value: info.value.tokens.into_inner(),
                    bounce: info.bounce,
                    bounced: info.bounced,
                    body: in_body,
                },
            ),
            MsgInfo::ExtIn(info) => (
                true,
                info.dst,
                InMessage {
                    source: None,
                    value: 0,
                    bounce: false,
                    bounced: false,
                    body: in_body,
                },
            ),
            MsgInfo::ExtOut(_) => return Err(Error::Executor("outbound external as input".into())),
        };
        let account_address = Address::from_int(&dst)?;
        let dst = account_address.to_std();
        let state = match self.accounts.get(&dst.address) {
            Some(state) => state.clone(),
            None => ShardAccount {
                account: Lazy::new(&OptionalAccount(Some(empty_account(&account_address))))?,
                last_trans_hash: HashBytes::ZERO,
                last_trans_lt: 0,
            },
        };
        let balance_before = state
            .load_account()?
            .map_or(0, |a| a.balance.tokens.into_inner());
        let lt = self.lt + LT_STEP;
        let params = config::executor_params(&self.config, self.now, lt, self.rand_seed);
        let mut inspector = ExecutorInspector::default();
        let uncommitted = Executor::new(&params, &self.config)
            .with_min_lt(lt)
            .begin_ordinary_ext(&dst, is_external, message, &state, Some(&mut inspector));
        let output = match uncommitted {
            Ok(uncommitted) => uncommitted
                .commit()
                .map_err(|e| Error::Executor(format!("{e:#}")))?,
            Err(TxError::Skipped) => {
                return Err(Error::ExternalNotAccepted {
                    account: account_address,
                    exit_code: inspector.exit_code,
                })
            }
            Err(error) => return Err(executor_error(error)),
        };
        let tx = output.transaction.load()?;
        self.lt = tx.lt.max(lt);

        let mut new_state = output.new_state;
        let mut balance_after = 0;
        if let Some(mut account) = new_state.load_account()? {
            balance_after = account.balance.tokens.into_inner();
            if mirror_uninit_storage_stat(&mut account) {
                new_state.account = Lazy::new(&OptionalAccount(Some(account)))?;
            }
        }
        undo.entry(dst.address)
            .or_insert_with(|| self.accounts.get(&dst.address).cloned());
        self.accounts.insert(dst.address, new_state);

        let TxInfo::Ordinary(info) = tx.load_info()? else {
            return Err(Error::Executor("not an ordinary transaction".into()));
        };
        let (compute_skipped, exit_code, compute_success, gas_used, gas_fees) =
            match &info.compute_phase {
                ComputePhase::Skipped(skipped) => {
                    let reason = match skipped.reason {
                        ComputePhaseSkipReason::NoState => ComputeSkipReason::NoState,
                        ComputePhaseSkipReason::BadState => ComputeSkipReason::BadState,
                        ComputePhaseSkipReason::NoGas => ComputeSkipReason::NoGas,
                        ComputePhaseSkipReason::Suspended => ComputeSkipReason::Suspended,
                    };
                    (Some(reason), None, false, 0, 0)
                }
                ComputePhase::Executed(executed) => (
                    None,
                    Some(executed.exit_code),
                    executed.success,
                    executed.gas_used.into_inner(),
                    executed.gas_fees.into_inner(),
                ),
            };
        let mut out_messages = Vec::with_capacity(output.transaction_meta.out_msgs.len());
        let mut out_cells = Vec::with_capacity(output.transaction_meta.out_msgs.len());
        for lazy in &output.transaction_meta.out_msgs {
            let out: OwnedMessage = lazy.load()?;
            let (range, cell) = &out.body;
            let body = Boc::encode(CellBuilder::build_from(range.apply(cell)?)?);
            out_messages.push(match &out.info {
                MsgInfo::Int(info) => OutMessage {
                    dest: Some(Address::from_int(&info.dst)?),
                    value: info.value.tokens.into_inner(),
                    bounce: info.bounce,
                    bounced: info.bounced,
                    fwd_fee: info.fwd_fee.into_inner(),
                    created_lt: info.created_lt,
                    body,
                },
                MsgInfo::ExtOut(info) => OutMessage {
                    dest: None,
                    value: 0,
                    bounce: false,
                    bounced: false,
                    fwd_fee: 0,
                    created_lt: info.created_lt,
                    body,
                },
                MsgInfo::ExtIn(_) => {
                    return Err(Error::Executor(
                        "inbound external among out-messages".into(),
                    ))
                }
            });
            out_cells.push(lazy.inner().clone());
        }
        let transaction = Transaction {
            account: account_address,
            lt: tx.lt,
            now: tx.now,
            in_message,
            orig_status: AccountStatus::from_tycho(tx.orig_status),
            end_status: AccountStatus::from_tycho(tx.end_status),
            compute_skipped,
            exit_code,
            compute_success,
            gas_used,
            gas_fees,
            action_success: info.action_phase.as_ref().map(|a| a.success),
            action_result_code: info.action_phase.as_ref().map(|a| a.result_code),
            aborted: info.aborted,
            storage_fees: info
                .storage_phase
                .as_ref()
                .map_or(0, |s| s.storage_fees_collected.into_inner()),
            total_fees: tx.total_fees.tokens.into_inner(),
            balance_before,
            balance_after,
            out_messages,
        };
        Ok((transaction, out_cells))
    }

    /// Runs a get-method by name on an active account, at the network's `now`.
    pub fn run_get_method(
        &self,
        address: &Address,
        method: &str,
        args: &[StackValue],
    ) -> Result<GetMethodResult> {
        self.run_get_method_at(self.now, address, method, args)
    }

    /// Runs a get-method as [`Network::run_get_method`] does, with `now` as the time the
    /// contract sees (a read changes nothing, so it may look at a later time than the last
    /// transaction's, as a real node's getters see the latest block's).
    pub fn run_get_method_at(
        &self,
        now: u32,
        address: &Address,
        method: &str,
        args: &[StackValue],
    ) -> Result<GetMethodResult> {
        let hash = basechain(address)?;
        let account = self
            .load_account(hash)?
            .ok_or(Error::AccountNotActive(*address))?;
        let AccountState::Active(state) = &account.state else {
            return Err(Error::AccountNotActive(*address));
        };
        let code = state
            .code
            .clone()
            .ok_or(Error::AccountNotActive(*address))?;
        let mut stack = args
            .iter()
            .map(StackValue::to_vm)
            .collect::<Result<Vec<_>>>()?;
        stack.push(StackValue::int(crate::method_id(method)).to_vm()?);
        // tycho-vm's own `VmCaller` runs get-methods as TVM 11, where Tolk 1.3's code hits
        // invalid opcodes; this is the same context the executor builds for transactions
        // (TVM 12), as a real node's and the sandbox's get-methods do.
        let smc_info = tycho_vm::SmcInfoBase::new()
            .with_now(now)
            .with_block_lt(account.last_trans_lt)
            .with_tx_lt(account.last_trans_lt)
            .with_mixed_rand_seed(&self.rand_seed, &hash.clone())
            .with_account_balance(account.balance.clone())
            .with_account_addr(account.address.clone())
            .with_config(self.config.raw.params.clone())
            .require_ton_v4()
            .with_code(code.clone())
            .require_ton_v6()
            .with_unpacked_config(self.config.unpacked.as_tuple())
            .require_ton_v11();
        let data = state.data.clone().unwrap_or_default();
        let global_libraries = Dict::<HashBytes, tycho_types::models::LibDescr>::new();
        let libraries = (&state.libraries, &global_libraries);
        let mut gas = tycho_vm::GasParams::getter();
        gas.max = GET_METHOD_GAS;
        gas.limit = GET_METHOD_GAS;
        let mut vm = tycho_vm::VmState::builder()
            .with_smc_info(smc_info)
            .with_version(tycho_vm::VmVersion::Ton(12))
            .with_code(code)
            .with_data(data)
            .with_libraries(&libraries)
            .with_init_selector(false)
            .with_stack(stack)
            .with_gas(gas)
            .build();
        let exit_code = !vm.run();
        let stack = vm
            .stack
            .items
            .iter()
            .map(StackValue::from_vm)
            .collect::<Result<Vec<_>>>()?;
        Ok(GetMethodResult {
            exit_code,
            gas_used: vm.gas.consumed(),
            stack,
        })
    }

    /// The whole network as one BOC: time, lt, seed, bound, the config, and every account
    /// (code, data, balance, storage stats, last transaction) in a dictionary by address.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let mut accounts = Dict::<HashBytes, ShardAccount>::new();
        for (hash, account) in &self.accounts {
            accounts.set(hash, account)?;
        }
        let mut builder = CellBuilder::new();
        builder.store_u32(SNAPSHOT_MAGIC)?;
        builder.store_u8(SNAPSHOT_VERSION)?;
        builder.store_u32(self.now)?;
        builder.store_u64(self.lt)?;
        builder.store_u256(&self.rand_seed)?;
        builder.store_u64(self.max_transactions as u64)?;
        builder.store_reference(CellBuilder::build_from(&self.config.raw)?)?;
        builder.store_reference(CellBuilder::build_from(&accounts)?)?;
        Ok(Boc::encode(builder.build()?))
    }

    /// A network from [`Network::snapshot`]'s bytes; it continues exactly where the snapshot
    /// was taken.
    pub fn restore(snapshot: &[u8]) -> Result<Self> {
        let root = decode("snapshot", snapshot)?;
        let mut slice = root.as_slice()?;
        if slice.load_u32()? != SNAPSHOT_MAGIC {
            return Err(Error::BadSnapshot("wrong magic"));
        }
        if slice.load_u8()? != SNAPSHOT_VERSION {
            return Err(Error::BadSnapshot("unknown version"));
        }
        let now = slice.load_u32()?;
        let lt = slice.load_u64()?;
        let rand_seed = slice.load_u256()?;
        let max_transactions = usize::try_from(slice.load_u64()?)
            .map_err(|_| Error::BadSnapshot("transaction bound out of range"))?;
        let config = slice.load_reference()?.parse::<BlockchainConfig>()?;
        let accounts = slice
            .load_reference()?
            .parse::<Dict<HashBytes, ShardAccount>>()?;
        let mut restored = Self::with_config(config, now)?;
        restored.lt = lt;
        restored.rand_seed = rand_seed;
        restored.max_transactions = max_transactions;
        for entry in accounts.iter() {
            let (hash, account) = entry?;
            restored.accounts.insert(hash, account);
        }
        Ok(restored)
    }

    fn load_account(&self, hash: &HashBytes) -> Result<Option<Account>> {
        match self.accounts.get(hash) {
            Some(state) => Ok(state.load_account()?),
            None => Ok(None),
        }
    }
}

/// A `StateInit` with `code` and `data` (BOCs) and nothing else, as a BOC: what a deploy
/// carries. Its cell hash is the contract's address ([`Network::address_of`]).
pub fn state_init(code: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let init = StateInit {
        split_depth: None,
        special: None,
        code: Some(decode("code", code)?),
        data: Some(decode("data", data)?),
        libraries: Dict::new(),
    };
    Ok(Boc::encode(CellBuilder::build_from(&init)?))
}

/// A `StateInit` from a BOC; the cell must hold exactly a `StateInit`, nothing after it.
fn parse_state_init(boc: &[u8]) -> Result<StateInit> {
    let cell = decode("state init", boc)?;
    let mut slice = cell.as_slice()?;
    let init = StateInit::load_from(&mut slice)?;
    if !slice.is_empty() {
        return Err(Error::Cell(tycho_types::error::Error::InvalidData));
    }
    Ok(init)
}

/// The account id of a basechain address; other workchains are not simulated.
fn basechain(address: &Address) -> Result<&HashBytes> {
    if address.workchain != 0 {
        return Err(Error::UnsupportedWorkchain(address.to_string()));
    }
    Ok(HashBytes::wrap(&address.hash))
}

/// What the sandbox makes of an address it has never seen: an existing `Uninit` account with
/// no balance (not `account_none`), so the first message's status and fees are the sandbox's.
fn empty_account(address: &Address) -> Account {
    Account {
        address: IntAddr::Std(address.to_std()),
        storage_stat: Default::default(),
        last_trans_lt: 0,
        balance: CurrencyCollection::ZERO,
        state: AccountState::Uninit,
    }
}

/// TON (and so the sandbox) counts a code-less account's storage as no cells and 8 bits per
/// byte of its balance; tycho counts the account cell itself (1 cell, ~100 bits), which makes a
/// plain wallet pay about 19 times the storage fee. Rewriting the stats after each transaction
/// makes the next storage phase charge what TON charges. Returns whether anything changed.
fn mirror_uninit_storage_stat(account: &mut Account) -> bool {
    if !matches!(account.state, AccountState::Uninit) {
        return false;
    }
    let balance = account.balance.tokens.into_inner();
    let bytes = (u128::BITS - balance.leading_zeros()).div_ceil(8);
    let used = StorageUsed {
        cells: VarUint56::ZERO,
        bits: VarUint56::new(u64::from(bytes) * 8),
    };
    if account.storage_stat.used == used {
        return false;
    }
    account.storage_stat.used = used;
    true
}

fn executor_error(error: TxError) -> Error {
    match error {
        TxError::Fatal(cause) => Error::Executor(format!("{cause:#}")),
        TxError::Skipped => Error::Executor("message skipped".into()),
    }
}
