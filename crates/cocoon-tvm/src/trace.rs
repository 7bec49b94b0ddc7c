//! What one send did: every transaction of the trace, in execution order, as plain data.

use crate::Address;

/// The lifecycle state of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Known to nobody. This network never reports it for a transaction's account: like the
    /// sandbox, it treats every address as an existing `Uninit` account.
    NonExisting,
    /// Exists (may hold a balance), no code.
    Uninit,
    /// Has code and data.
    Active,
    /// Frozen for unpaid storage.
    Frozen,
}

impl AccountStatus {
    pub(crate) fn from_tycho(status: tycho_types::models::AccountStatus) -> Self {
        use tycho_types::models::AccountStatus as S;
        match status {
            S::NotExists => Self::NonExisting,
            S::Uninit => Self::Uninit,
            S::Active => Self::Active,
            S::Frozen => Self::Frozen,
        }
    }
}

/// Why a compute phase did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeSkipReason {
    /// The account has no code and the message brought no (matching) `StateInit`.
    NoState,
    /// The `StateInit` does not match the address.
    BadState,
    /// The message's value buys no gas.
    NoGas,
    /// The account is suspended.
    Suspended,
}

/// The message a transaction executed, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InMessage {
    /// The sender; `None` for an inbound external message.
    pub source: Option<Address>,
    /// The value it brought (0 for an external).
    pub value: u128,
    pub bounce: bool,
    /// A bounce of a message this account sent earlier.
    pub bounced: bool,
    /// The body as a BOC of one root cell.
    pub body: Vec<u8>,
}

impl InMessage {
    /// The first 32 bits of the body (the op of every COCOON message), if it has them.
    pub fn op(&self) -> Option<u32> {
        first_u32(&self.body)
    }
}

/// One executed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub account: Address,
    pub lt: u64,
    pub now: u32,
    /// The message that started it.
    pub in_message: InMessage,
    pub orig_status: AccountStatus,
    pub end_status: AccountStatus,
    /// `Some` when no compute phase ran (then `exit_code` is `None` and gas is 0).
    pub compute_skipped: Option<ComputeSkipReason>,
    pub exit_code: Option<i32>,
    pub compute_success: bool,
    pub gas_used: u64,
    pub gas_fees: u128,
    /// `None` when no action phase ran (compute skipped or failed).
    pub action_success: Option<bool>,
    pub action_result_code: Option<i32>,
    pub aborted: bool,
    pub storage_fees: u128,
    /// Everything the transaction cost: storage, gas, forwarding kept by the network, action fees.
    pub total_fees: u128,
    pub balance_before: u128,
    pub balance_after: u128,
    pub out_messages: Vec<OutMessage>,
}

impl Transaction {
    /// The compute phase ran and the transaction was not aborted (exit code 0 or 1, action
    /// phase fine).
    pub fn succeeded(&self) -> bool {
        self.compute_success && !self.aborted
    }
}

/// A message a transaction sent, as it left the account (send modes already applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// `None` for an external outbound message (a log entry, never delivered).
    pub dest: Option<Address>,
    pub value: u128,
    pub bounce: bool,
    pub bounced: bool,
    pub fwd_fee: u128,
    pub created_lt: u64,
    /// The body as a BOC of one root cell.
    pub body: Vec<u8>,
}

impl OutMessage {
    /// The first 32 bits of the body (the op of every COCOON message), if it has them.
    pub fn op(&self) -> Option<u32> {
        first_u32(&self.body)
    }
}

/// The first 32 bits of a BOC's root cell, if it has them.
fn first_u32(body: &[u8]) -> Option<u32> {
    let cell = tycho_types::boc::Boc::decode(body).ok()?;
    let mut slice = cell.as_slice().ok()?;
    slice.load_u32().ok()
}

/// Every transaction one send caused, in the order they ran (breadth first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub transactions: Vec<Transaction>,
}

impl Trace {
    /// The first transaction on `account`.
    pub fn first_on(&self, account: &Address) -> Option<&Transaction> {
        self.transactions.iter().find(|tx| &tx.account == account)
    }
}
