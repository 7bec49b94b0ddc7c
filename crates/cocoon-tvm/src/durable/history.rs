//! Transaction history per account, for reading back what happened to a contract (the C++
//! proxy learns registrations, top-ups and its own commits from its contract's transactions,
//! oldest first). Bounded: each account keeps its newest `limit` transactions.

use std::collections::{BTreeMap, VecDeque};

use super::codec::{DecodeResult, Reader, Writer};
use crate::{Address, InMessage, Trace, Transaction};

/// How many transactions each account keeps by default. The proxy contract is the busiest
/// account (a commit per batch, a message per top-up); ten thousand of them are a few MB and
/// cover far more than a proxy reads back after a restart.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// A message a transaction sent, in brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSummary {
    /// `None` for an external outbound message (a log entry).
    pub dest: Option<Address>,
    pub value: u128,
    /// What it still carries for forwarding, collected when it is delivered.
    pub fwd_fee: u128,
    pub bounced: bool,
    /// The first 32 bits of the body, if it has them.
    pub op: Option<u32>,
}

/// One transaction of an account, as kept in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTransaction {
    pub lt: u64,
    pub now: u32,
    /// The message that started it (its source, value, bounced flag and body).
    pub in_message: InMessage,
    /// `None` when the compute phase was skipped.
    pub exit_code: Option<i32>,
    pub compute_success: bool,
    /// `None` when no action phase ran.
    pub action_success: Option<bool>,
    pub aborted: bool,
    pub total_fees: u128,
    pub balance_after: u128,
    pub out_messages: Vec<OutSummary>,
}

impl AccountTransaction {
    /// The compute phase ran and the transaction was not aborted.
    pub fn succeeded(&self) -> bool {
        self.compute_success && !self.aborted
    }
}

impl From<&Transaction> for AccountTransaction {
    fn from(tx: &Transaction) -> Self {
        Self {
            lt: tx.lt,
            now: tx.now,
            in_message: tx.in_message.clone(),
            exit_code: tx.exit_code,
            compute_success: tx.compute_success,
            action_success: tx.action_success,
            aborted: tx.aborted,
            total_fees: tx.total_fees,
            balance_after: tx.balance_after,
            out_messages: tx
                .out_messages
                .iter()
                .map(|m| OutSummary {
                    dest: m.dest,
                    value: m.value,
                    fwd_fee: m.fwd_fee,
                    bounced: m.bounced,
                    op: m.op(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AccountHistory {
    /// Oldest first; lts only grow.
    kept: VecDeque<AccountTransaction>,
    /// The lt of the newest transaction dropped by the bound (0: none dropped).
    dropped_through_lt: u64,
}

/// The newest transactions of every account that ever had one, `limit` per account.
///
/// The number of accounts is not bounded: every address that received a message has an
/// entry. That suits a local network (a handful of contracts and wallets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    limit: usize,
    accounts: BTreeMap<Address, AccountHistory>,
}

impl Default for History {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY_LIMIT)
    }
}

impl History {
    /// An empty history keeping `limit` transactions per account (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            accounts: BTreeMap::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Adds every transaction of a trace to its account's history.
    pub fn record(&mut self, trace: &Trace) {
        for tx in &trace.transactions {
            self.push(tx.account, AccountTransaction::from(tx));
        }
    }

    fn push(&mut self, account: Address, tx: AccountTransaction) {
        let history = self.accounts.entry(account).or_default();
        history.kept.push_back(tx);
        while history.kept.len() > self.limit {
            if let Some(dropped) = history.kept.pop_front() {
                history.dropped_through_lt = dropped.lt;
            }
        }
    }

    /// Up to `limit` transactions of `account` with an lt above `after_lt`, oldest first. Pass
    /// the last lt seen to page forward; 0 starts at the oldest kept.
    pub fn transactions(
        &self,
        account: &Address,
        after_lt: u64,
        limit: usize,
    ) -> Vec<AccountTransaction> {
        let Some(history) = self.accounts.get(account) else {
            return Vec::new();
        };
        let start = history.kept.partition_point(|tx| tx.lt <= after_lt);
        history.kept.range(start..).take(limit).cloned().collect()
    }

    /// The lt of the newest transaction of `account` the bound has dropped (0 if none): a
    /// reader whose `after_lt` is below it has missed transactions.
    pub fn dropped_through_lt(&self, account: &Address) -> u64 {
        self.accounts
            .get(account)
            .map_or(0, |history| history.dropped_through_lt)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(u32::try_from(self.accounts.len()).unwrap_or(u32::MAX));
        for (address, history) in &self.accounts {
            w.address(address);
            w.u64(history.dropped_through_lt);
            w.u32(u32::try_from(history.kept.len()).unwrap_or(u32::MAX));
            for tx in &history.kept {
                encode_transaction(w, tx);
            }
        }
    }

    /// A history from [`History::encode`]'s bytes, trimmed to `limit` per account.
    pub(crate) fn decode(r: &mut Reader<'_>, limit: usize) -> DecodeResult<Self> {
        let mut history = Self::new(limit);
        let accounts = r.count(33 + 8 + 4)?;
        for _ in 0..accounts {
            let address = r.address()?;
            let dropped_through_lt = r.u64()?;
            let count = r.count(MIN_ENCODED_TRANSACTION)?;
            let mut kept = VecDeque::with_capacity(count.min(history.limit));
            let mut dropped = dropped_through_lt;
            for _ in 0..count {
                let tx = decode_transaction(r)?;
                if kept
                    .back()
                    .is_some_and(|last: &AccountTransaction| last.lt >= tx.lt)
                {
                    return Err("history out of order");
                }
                kept.push_back(tx);
                if kept.len() > history.limit {
                    dropped = kept.pop_front().map_or(dropped, |tx| tx.lt);
                }
            }
            let entry = AccountHistory {
                kept,
                dropped_through_lt: dropped,
            };
            if history.accounts.insert(address, entry).is_some() {
                return Err("an account twice in the history");
            }
        }
        Ok(history)
    }
}

/// The fewest bytes one encoded transaction takes (all options absent, empty body).
const MIN_ENCODED_TRANSACTION: usize = 8 + 4 + (1 + 16 + 1 + 1 + 4) + 1 + 1 + 1 + 1 + 16 + 16 + 4;

fn encode_transaction(w: &mut Writer, tx: &AccountTransaction) {
    w.u64(tx.lt);
    w.u32(tx.now);
    w.option_address(tx.in_message.source.as_ref());
    w.u128(tx.in_message.value);
    w.bool(tx.in_message.bounce);
    w.bool(tx.in_message.bounced);
    w.bytes(&tx.in_message.body);
    match tx.exit_code {
        None => w.u8(0),
        Some(code) => {
            w.u8(1);
            w.i32(code);
        }
    }
    w.bool(tx.compute_success);
    w.u8(match tx.action_success {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    });
    w.bool(tx.aborted);
    w.u128(tx.total_fees);
    w.u128(tx.balance_after);
    w.u32(u32::try_from(tx.out_messages.len()).unwrap_or(u32::MAX));
    for out in &tx.out_messages {
        w.option_address(out.dest.as_ref());
        w.u128(out.value);
        w.u128(out.fwd_fee);
        w.bool(out.bounced);
        match out.op {
            None => w.u8(0),
            Some(op) => {
                w.u8(1);
                w.u32(op);
            }
        }
    }
}

fn decode_transaction(r: &mut Reader<'_>) -> DecodeResult<AccountTransaction> {
    let lt = r.u64()?;
    let now = r.u32()?;
    let in_message = InMessage {
        source: r.option_address()?,
        value: r.u128()?,
        bounce: r.bool()?,
        bounced: r.bool()?,
        body: r.bytes()?,
    };
    let exit_code = if r.bool()? { Some(r.i32()?) } else { None };
    let compute_success = r.bool()?;
    let action_success = match r.u8()? {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return Err("bad action flag"),
    };
    let aborted = r.bool()?;
    let total_fees = r.u128()?;
    let balance_after = r.u128()?;
    let count = r.count(1 + 16 + 16 + 1 + 1)?;
    let mut out_messages = Vec::with_capacity(count);
    for _ in 0..count {
        out_messages.push(OutSummary {
            dest: r.option_address()?,
            value: r.u128()?,
            fwd_fee: r.u128()?,
            bounced: r.bool()?,
            op: if r.bool()? { Some(r.u32()?) } else { None },
        });
    }
    Ok(AccountTransaction {
        lt,
        now,
        in_message,
        exit_code,
        compute_success,
        action_success,
        aborted,
        total_fees,
        balance_after,
        out_messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(lt: u64) -> AccountTransaction {
        AccountTransaction {
            lt,
            now: 1,
            in_message: InMessage {
                source: lt.is_multiple_of(2).then_some(Address::basechain([1; 32])),
                value: u128::from(lt),
                bounce: true,
                bounced: lt.is_multiple_of(3),
                body: vec![lt as u8; 3],
            },
            exit_code: (!lt.is_multiple_of(5)).then_some(-(lt as i32)),
            compute_success: lt % 2 == 1,
            action_success: [None, Some(false), Some(true)][lt as usize % 3],
            aborted: false,
            total_fees: 7,
            balance_after: 8,
            out_messages: vec![OutSummary {
                dest: None,
                value: 0,
                fwd_fee: 3,
                bounced: false,
                op: Some(0x1234),
            }],
        }
    }

    #[test]
    fn keeps_the_newest_in_order_and_pages_by_lt() {
        let account = Address::basechain([5; 32]);
        let mut history = History::new(3);
        for lt in [10, 20, 30, 40, 50] {
            history.push(account, tx(lt));
        }
        let lts = |v: Vec<AccountTransaction>| v.iter().map(|t| t.lt).collect::<Vec<_>>();
        assert_eq!(lts(history.transactions(&account, 0, 10)), [30, 40, 50]);
        assert_eq!(lts(history.transactions(&account, 30, 10)), [40, 50]);
        assert_eq!(lts(history.transactions(&account, 35, 1)), [40]);
        assert_eq!(
            lts(history.transactions(&account, 50, 10)),
            Vec::<u64>::new()
        );
        assert_eq!(history.dropped_through_lt(&account), 20);
        assert!(history
            .transactions(&Address::basechain([6; 32]), 0, 10)
            .is_empty());

        let mut w = Writer::default();
        history.encode(&mut w);
        let bytes = w.finish();
        assert_eq!(
            History::decode(&mut Reader::new(&bytes), 3),
            Ok(history.clone())
        );
        let smaller = History::decode(&mut Reader::new(&bytes), 2).unwrap();
        assert_eq!(lts(smaller.transactions(&account, 0, 10)), [40, 50]);
        assert_eq!(smaller.dropped_through_lt(&account), 30);
        for cut in 0..bytes.len() {
            assert!(History::decode(&mut Reader::new(&bytes[..cut]), 3).is_err());
        }
    }
}
