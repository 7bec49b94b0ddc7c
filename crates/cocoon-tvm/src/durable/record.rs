//! The journal's records: the inputs a [`crate::Network`] takes, each with the time it was
//! applied at and the logical time it left behind, and how one is applied (live and on replay
//! alike, so both paths run the same code).

use super::codec::{DecodeResult, Reader, Writer};
use crate::error::{Error, Result};
use crate::{Address, InternalMessage, Network, Trace};

/// How a local network starts: its first journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// The unix time of the first block.
    pub now: u32,
    /// The random seed contracts see (see [`Network::set_rand_seed`]).
    pub rand_seed: [u8; 32],
    /// The bound on transactions per send (see [`Network::set_max_transactions`]).
    pub max_transactions: usize,
}

impl Genesis {
    /// A network starting at `now`, with a zero seed (as the sandbox) and the default bound.
    pub fn at(now: u32) -> Self {
        Self {
            now,
            rand_seed: [0; 32],
            max_transactions: crate::DEFAULT_MAX_TRANSACTIONS,
        }
    }

    /// The in-memory network this genesis describes.
    pub fn network(&self) -> Result<Network> {
        let mut network = Network::new(self.now)?;
        network.set_rand_seed(self.rand_seed);
        network.set_max_transactions(self.max_transactions);
        Ok(network)
    }
}

/// One input, as journalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Genesis(Genesis),
    /// Only the time changes.
    Tick,
    RandSeed([u8; 32]),
    SetBalance {
        address: Address,
        balance: u128,
    },
    /// The faucet: adds to the balance (the sum is computed on replay, from the same state).
    Mint {
        address: Address,
        amount: u128,
    },
    Internal(InternalMessage),
    /// An internal message whose value first leaves the sender's balance (a code-less wallet
    /// paying for what it sends; no fees are charged to it).
    Transfer(InternalMessage),
    External {
        to: Address,
        body: Vec<u8>,
        state_init: Option<Vec<u8>>,
    },
}

/// A journal record: an input, the time the network was set to before it, and the logical time
/// after it (checked on replay, so a network that no longer replays its journal identically,
/// after an executor upgrade say, is an error instead of a silently different state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub now: u32,
    pub lt_after: u64,
    pub input: Input,
}

const GENESIS: u8 = 1;
const TICK: u8 = 2;
const RAND_SEED: u8 = 3;
const SET_BALANCE: u8 = 4;
const MINT: u8 = 5;
const INTERNAL: u8 = 6;
const EXTERNAL: u8 = 7;
const TRANSFER: u8 = 8;

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        let tag = match &self.input {
            Input::Genesis(_) => GENESIS,
            Input::Tick => TICK,
            Input::RandSeed(_) => RAND_SEED,
            Input::SetBalance { .. } => SET_BALANCE,
            Input::Mint { .. } => MINT,
            Input::Internal(_) => INTERNAL,
            Input::Transfer(_) => TRANSFER,
            Input::External { .. } => EXTERNAL,
        };
        w.u8(tag);
        w.u32(self.now);
        w.u64(self.lt_after);
        match &self.input {
            Input::Genesis(genesis) => {
                w.raw(&genesis.rand_seed);
                w.u64(genesis.max_transactions as u64);
            }
            Input::Tick => {}
            Input::RandSeed(seed) => w.raw(seed),
            Input::SetBalance { address, balance } => {
                w.address(address);
                w.u128(*balance);
            }
            Input::Mint { address, amount } => {
                w.address(address);
                w.u128(*amount);
            }
            Input::Internal(message) | Input::Transfer(message) => {
                w.address(&message.from);
                w.address(&message.to);
                w.u128(message.value);
                w.bool(message.bounce);
                w.bytes(&message.body);
                w.option_bytes(message.state_init.as_deref());
            }
            Input::External {
                to,
                body,
                state_init,
            } => {
                w.address(to);
                w.bytes(body);
                w.option_bytes(state_init.as_deref());
            }
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(bytes);
        let tag = r.u8()?;
        let now = r.u32()?;
        let lt_after = r.u64()?;
        let input = match tag {
            GENESIS => Input::Genesis(Genesis {
                now,
                rand_seed: r.hash()?,
                max_transactions: usize::try_from(r.u64()?)
                    .map_err(|_| "transaction bound out of range")?,
            }),
            TICK => Input::Tick,
            RAND_SEED => Input::RandSeed(r.hash()?),
            SET_BALANCE => Input::SetBalance {
                address: r.address()?,
                balance: r.u128()?,
            },
            MINT => Input::Mint {
                address: r.address()?,
                amount: r.u128()?,
            },
            INTERNAL => Input::Internal(decode_message(&mut r)?),
            TRANSFER => Input::Transfer(decode_message(&mut r)?),
            EXTERNAL => Input::External {
                to: r.address()?,
                body: r.bytes()?,
                state_init: r.option_bytes()?,
            },
            _ => return Err("unknown record type"),
        };
        if !r.is_empty() {
            return Err("bytes after the record");
        }
        Ok(Self {
            now,
            lt_after,
            input,
        })
    }
}

fn decode_message(r: &mut Reader<'_>) -> DecodeResult<InternalMessage> {
    Ok(InternalMessage {
        from: r.address()?,
        to: r.address()?,
        value: r.u128()?,
        bounce: r.bool()?,
        body: r.bytes()?,
        state_init: r.option_bytes()?,
    })
}

/// What applying an input did.
pub(crate) enum Applied {
    /// The state changed without a transaction (time, seed, balance).
    Changed,
    /// A send ran: its trace, to be added to the history.
    Trace(Trace),
    /// An external the contract refused: no transaction, but the lt step is used up, so it is
    /// journalled like any other change. The error goes back to the caller.
    Refused(Error),
}

/// Applies `input` to a network whose time is already set. An error means the network is
/// unchanged (the guarantee of [`Network::send_internal`] and the setters), so the caller need
/// not journal anything.
pub(crate) fn apply(network: &mut Network, input: &Input) -> Result<Applied> {
    match input {
        Input::Genesis(_) => Err(Error::Executor("a second genesis".into())),
        Input::Tick => Ok(Applied::Changed),
        Input::RandSeed(seed) => {
            network.set_rand_seed(*seed);
            Ok(Applied::Changed)
        }
        Input::SetBalance { address, balance } => {
            network.set_balance(address, *balance)?;
            Ok(Applied::Changed)
        }
        Input::Mint { address, amount } => {
            let balance = network
                .balance(address)?
                .checked_add(*amount)
                .ok_or(Error::Executor("minting past u128".into()))?;
            network.set_balance(address, balance)?;
            Ok(Applied::Changed)
        }
        Input::Internal(message) => network.send_internal(message).map(Applied::Trace),
        Input::Transfer(message) => {
            let balance = network.balance(&message.from)?;
            let left = balance
                .checked_sub(message.value)
                .ok_or(Error::InsufficientBalance {
                    account: message.from,
                    balance,
                    needed: message.value,
                })?;
            if message.value == 0 {
                // Nothing to debit (and no empty account to create for it).
                return network.send_internal(message).map(Applied::Trace);
            }
            network.set_balance(&message.from, left)?;
            match network.send_internal(message) {
                Ok(trace) => Ok(Applied::Trace(trace)),
                Err(error) => {
                    // The send changed nothing; putting the balance back leaves the account as
                    // it was (same balance, so the same storage stats and cell).
                    network.set_balance(&message.from, balance)?;
                    Err(error)
                }
            }
        }
        Input::External {
            to,
            body,
            state_init,
        } => match network.send_external(to, body, state_init.as_deref()) {
            Ok(trace) => Ok(Applied::Trace(trace)),
            Err(error @ Error::ExternalNotAccepted { .. }) => Ok(Applied::Refused(error)),
            Err(error) => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips_and_garbage_is_refused() {
        let a = Address::basechain([1; 32]);
        let b = Address::basechain([2; 32]);
        let inputs = [
            Input::Genesis(Genesis {
                now: 5,
                rand_seed: [3; 32],
                max_transactions: 77,
            }),
            Input::Tick,
            Input::RandSeed([4; 32]),
            Input::SetBalance {
                address: a,
                balance: 10,
            },
            Input::Mint {
                address: b,
                amount: u128::MAX,
            },
            Input::Internal(InternalMessage {
                from: a,
                to: b,
                value: 1,
                bounce: true,
                body: vec![1, 2, 3],
                state_init: Some(vec![4]),
            }),
            Input::External {
                to: a,
                body: vec![],
                state_init: None,
            },
            Input::Transfer(InternalMessage {
                from: b,
                to: a,
                value: 2,
                bounce: false,
                body: vec![],
                state_init: None,
            }),
        ];
        for input in inputs {
            let record = Record {
                now: 5,
                lt_after: 6,
                input,
            };
            let bytes = record.encode();
            assert_eq!(Record::decode(&bytes), Ok(record.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    Record::decode(&bytes[..cut]).is_err(),
                    "{record:?} cut {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Record::decode(&longer).is_err());
        }
        assert!(Record::decode(&[99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
