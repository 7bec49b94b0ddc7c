//! The accounts the records add up to, and the one function that applies a record to them —
//! used both for new records and when a file is replayed, so the two can never disagree.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::error::LedgerError;
use crate::record::{valid_key, Charge, Progress, Record};

/// A client's account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientAccount {
    /// The contract's balance at the last sync, nano-TON.
    pub balance_nano: u128,
    /// The contract's stake at the last sync, nano-TON.
    pub stake_nano: u128,
    /// The contract's `tokens_used` at the last sync: tokens already taken on chain.
    pub tokens_used_on_chain: u64,
    /// Tokens this proxy billed, cumulative.
    pub charged_tokens: u64,
    /// Nano-TON this proxy billed, cumulative.
    pub charged_nano: u128,
    /// The highest `charge_signed` count the proxy signed.
    pub signed_tokens: u64,
    /// Tokens held by running requests (memory only).
    pub reserved_tokens: u64,
    /// Charged requests.
    pub requests: u64,
    /// What the client can still spend, nano-TON (see [`available_nano`]).
    pub available_nano: u128,
}

/// A worker's account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkerAccount {
    /// Tokens the worker served, cumulative.
    pub earned_tokens: u64,
    /// Nano-TON the worker earned, cumulative.
    pub earned_nano: u128,
    /// The highest `worker_payout_signed` count the proxy signed.
    pub paid_tokens: u64,
    /// Requests the worker served.
    pub requests: u64,
}

/// Everything the ledger knows, for `/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LedgerSnapshot {
    /// The last record in these books (it may still be on its way to the disk).
    pub seqno: u64,
    /// The last durable record.
    pub committed_seqno: u64,
    /// The chain hash after it, hex.
    pub committed_hash: String,
    /// By client key.
    pub clients: BTreeMap<String, ClientAccount>,
    /// By worker key.
    pub workers: BTreeMap<String, WorkerAccount>,
    /// Σ clients' `charged_nano`.
    pub charged_nano: u128,
    /// Σ workers' `earned_nano`.
    pub earned_nano: u128,
    /// The proxy's share: `charged_nano − earned_nano`.
    pub commission_nano: u128,
}

/// What the client can still spend, nano-TON:
///
/// ```text
/// available = min(balance_nano, stake_nano)
///             − (charged_nano − tokens_used_on_chain × price) − reserved_tokens × price
/// ```
///
/// Only what the client cannot take back counts: its owner may withdraw everything above the
/// stake at any moment (the proxy learns of it a settle round later), but the stake stays until
/// a close has run its delay. So what is owed and not yet taken on chain, plus what running
/// requests hold, stays within the stake (the reference proxy's rule), and the proxy charges
/// before half of it is used (see the proxy's settle loop). `balance_nano` already has the
/// on-chain charges taken out, so only the part of `charged_nano` the chain has not yet taken
/// counts against it. Saturating at zero.
pub fn available_nano(account: &ClientAccount, price_per_token: u128) -> u128 {
    let settled = u128::from(account.tokens_used_on_chain).saturating_mul(price_per_token);
    let unsettled = account.charged_nano.saturating_sub(settled);
    let reserved = u128::from(account.reserved_tokens).saturating_mul(price_per_token);
    account
        .balance_nano
        .min(account.stake_nano)
        .saturating_sub(unsettled)
        .saturating_sub(reserved)
}

/// The books: accounts, totals and the index of charged request ids.
#[derive(Debug, Default)]
pub(crate) struct Books {
    pub(crate) clients: HashMap<String, ClientAccount>,
    pub(crate) workers: HashMap<String, WorkerAccount>,
    pub(crate) charged_nano: u128,
    pub(crate) earned_nano: u128,
    /// Every request id ever charged: the no-double-charge index. Rebuilt from the records
    /// at open, about 40 bytes per charge.
    pub(crate) request_ids: HashSet<[u8; 32]>,
    /// The last progress checkpoint of each request not charged yet: running requests, or
    /// ones a crash ended (charged when the ledger is opened again).
    pub(crate) in_flight: HashMap<[u8; 32], Progress>,
}

impl Books {
    /// Checks `record` against the rules and applies it; on error nothing changed.
    pub(crate) fn apply(&mut self, record: &Record) -> Result<(), LedgerError> {
        match record {
            Record::Charge(charge) => self.apply_charge(charge),
            Record::SyncClient {
                client,
                balance_nano,
                stake_nano,
                tokens_used,
            } => {
                check_key(client)?;
                let account = self.clients.entry(client.clone()).or_default();
                account.balance_nano = *balance_nano;
                account.stake_nano = *stake_nano;
                account.tokens_used_on_chain = *tokens_used;
                Ok(())
            }
            Record::SignedCharge { client, tokens } => {
                check_key(client)?;
                let (signed, accounted) = self
                    .clients
                    .get(client.as_str())
                    .map_or((0, 0), |a| (a.signed_tokens, a.charged_tokens));
                check_signed(client, signed, accounted, *tokens)?;
                self.clients
                    .entry(client.clone())
                    .or_default()
                    .signed_tokens = *tokens;
                Ok(())
            }
            Record::Progress(progress) => {
                check_key(&progress.client)?;
                check_key(&progress.worker)?;
                if self.request_ids.contains(&progress.request_id) {
                    return Err(LedgerError::DuplicateCharge {
                        request_id: progress.request_id,
                    });
                }
                self.in_flight.insert(progress.request_id, progress.clone());
                Ok(())
            }
            Record::SignedPayout { worker, tokens } => {
                check_key(worker)?;
                let (signed, accounted) = self
                    .workers
                    .get(worker.as_str())
                    .map_or((0, 0), |a| (a.paid_tokens, a.earned_tokens));
                check_signed(worker, signed, accounted, *tokens)?;
                self.workers.entry(worker.clone()).or_default().paid_tokens = *tokens;
                Ok(())
            }
        }
    }

    fn apply_charge(&mut self, charge: &Charge) -> Result<(), LedgerError> {
        check_key(&charge.client)?;
        check_key(&charge.worker)?;
        if charge.worker_fee_per_token > charge.price_per_token {
            return Err(LedgerError::FeeAbovePrice {
                price_per_token: charge.price_per_token,
                worker_fee_per_token: charge.worker_fee_per_token,
            });
        }
        if self.request_ids.contains(&charge.request_id) {
            return Err(LedgerError::DuplicateCharge {
                request_id: charge.request_id,
            });
        }
        let tokens = u128::from(charge.tokens);
        let charged = tokens
            .checked_mul(charge.price_per_token)
            .ok_or(LedgerError::Overflow)?;
        // fee ≤ price, so this cannot overflow when the line above did not.
        let earned = tokens * charge.worker_fee_per_token;
        let client = self.clients.get(charge.client.as_str());
        let worker = self.workers.get(charge.worker.as_str());
        // Compute every new value before changing anything.
        let client_tokens = add_u64(client.map_or(0, |c| c.charged_tokens), charge.tokens)?;
        let client_nano = add_u128(client.map_or(0, |c| c.charged_nano), charged)?;
        let worker_tokens = add_u64(worker.map_or(0, |w| w.earned_tokens), charge.tokens)?;
        let worker_nano = add_u128(worker.map_or(0, |w| w.earned_nano), earned)?;
        let total_charged = add_u128(self.charged_nano, charged)?;
        let total_earned = add_u128(self.earned_nano, earned)?;

        let client = account_mut(&mut self.clients, &charge.client);
        client.charged_tokens = client_tokens;
        client.charged_nano = client_nano;
        client.requests = client.requests.saturating_add(1);
        let worker = account_mut(&mut self.workers, &charge.worker);
        worker.earned_tokens = worker_tokens;
        worker.earned_nano = worker_nano;
        worker.requests = worker.requests.saturating_add(1);
        self.charged_nano = total_charged;
        self.earned_nano = total_earned;
        self.request_ids.insert(charge.request_id);
        self.in_flight.remove(&charge.request_id);
        Ok(())
    }

    /// The accounts as a snapshot, with `available_nano` computed at `price_per_token`.
    pub(crate) fn snapshot(&self, price_per_token: u128) -> LedgerSnapshot {
        LedgerSnapshot {
            seqno: 0,
            committed_seqno: 0,
            committed_hash: String::new(),
            clients: self
                .clients
                .iter()
                .map(|(key, account)| {
                    let mut account = account.clone();
                    account.available_nano = available_nano(&account, price_per_token);
                    (key.clone(), account)
                })
                .collect(),
            workers: self
                .workers
                .iter()
                .map(|(key, account)| (key.clone(), account.clone()))
                .collect(),
            charged_nano: self.charged_nano,
            earned_nano: self.earned_nano,
            commission_nano: self.charged_nano.saturating_sub(self.earned_nano),
        }
    }
}

/// The account under `key`, created empty if absent. Looks up by `&str` first so the common
/// case allocates nothing.
pub(crate) fn account_mut<'a, A: Default>(map: &'a mut HashMap<String, A>, key: &str) -> &'a mut A {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), A::default());
    }
    // Inserted just above when it was missing.
    map.get_mut(key).expect("account present")
}

pub(crate) fn check_key(key: &str) -> Result<(), LedgerError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(LedgerError::InvalidKey { len: key.len() })
    }
}

fn check_signed(
    account: &str,
    signed: u64,
    accounted: u64,
    tokens: u64,
) -> Result<(), LedgerError> {
    if tokens < signed {
        return Err(LedgerError::NotIncreasing {
            account: account.to_owned(),
            signed,
            requested: tokens,
        });
    }
    if tokens > accounted {
        return Err(LedgerError::ExceedsAccounted {
            account: account.to_owned(),
            accounted,
            requested: tokens,
        });
    }
    Ok(())
}

fn add_u64(a: u64, b: u64) -> Result<u64, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

fn add_u128(a: u128, b: u128) -> Result<u128, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}
