//! The client contract (facts §6): one per (proxy contract, client owner). It keeps the client's
//! counters; the TON they stand for sits in the proxy contract.
//!
//! Storage: `state:u2 balance:coins stake:coins tokens_used:u64 unlock_ts:u32 secret_hash:u256
//! ^[owner:addr proxy_sc:addr proxy_public_key:u256] ^params` (variant 0). Every op reports to
//! the proxy contract with a [`ClientReport`] cell: `state:u2 balance:coins stake:coins
//! tokens_used:u64 secret_hash:u256`, the values after the op.
//!
//! Pitfalls (facts §13): the deployed data has stake = `min_client_stake` and params without
//! code, else the address differs; a non-owner withdraw or request_refund is 1009, not 1010; the
//! second request_refund needs `now > unlock_ts`; charge is strict, grant refund non-strict;
//! `owner_client_top_up_reopen` is unhandled; the C++ builder of increase_stake omits `new_stake`
//! (this one does not).

use tonlib_core::cell::Cell;
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::{op, CodecError, Hash256, Params, SignedMessage, State};
use crate::Coins;

/// The client contract's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientData {
    /// Normal, closing or closed.
    pub state: State,
    /// Deposited and not yet charged (bookkeeping; the TON is in the proxy contract).
    pub balance: Coins,
    /// The part of the balance that cannot be withdrawn.
    pub stake: Coins,
    /// Tokens charged so far (only grows).
    pub tokens_used: u64,
    /// When the second request_refund is allowed (`now > unlock_ts`).
    pub unlock_ts: u32,
    /// SHA-256 of the short-auth secret.
    pub secret_hash: Hash256,
    /// The owner (the only sender of owner ops; receives refunds).
    pub owner: TonAddress,
    /// The proxy contract.
    pub proxy: TonAddress,
    /// The proxy's signing key.
    pub proxy_public_key: Hash256,
    /// Params variant 0.
    pub params: Params,
}

impl ClientData {
    /// The data at deploy (facts §6, §9): state 0, balance 0, stake = `min_client_stake`,
    /// no tokens, no unlock, zero secret hash, params without code.
    pub fn initial(
        owner: TonAddress,
        proxy: TonAddress,
        proxy_public_key: Hash256,
        params: &Params,
    ) -> ClientData {
        ClientData {
            state: State::Normal,
            balance: Coins::ZERO,
            stake: params.min_client_stake,
            tokens_used: 0,
            unlock_ts: 0,
            secret_hash: [0; 32],
            owner,
            proxy,
            proxy_public_key,
            params: params.without_code(),
        }
    }

    /// The counters a report carries.
    pub fn report(&self) -> ClientReport {
        ClientReport {
            state: self.state,
            balance: self.balance,
            stake: self.stake,
            tokens_used: self.tokens_used,
            secret_hash: self.secret_hash,
        }
    }

    /// The storage cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let constant = Writer::new()
            .address(&self.owner, "owner")?
            .address(&self.proxy, "proxy")?
            .bytes(&self.proxy_public_key)?
            .build()?;
        let mut w = Writer::new();
        self.state.write(&mut w)?;
        w.coins(self.balance, "balance")?
            .coins(self.stake, "stake")?
            .u64(self.tokens_used)?
            .u32(self.unlock_ts)?
            .bytes(&self.secret_hash)?
            .child(constant)?
            .child(self.params.to_cell()?)?
            .build()
    }

    /// Reads the storage cell.
    pub fn from_cell(cell: &Cell) -> Result<ClientData, CodecError> {
        let mut r = Reader::new(cell);
        let state = State::read(&mut r)?;
        let balance = r.coins("balance")?;
        let stake = r.coins("stake")?;
        let tokens_used = r.u64("tokens_used")?;
        let unlock_ts = r.u32("unlock_ts")?;
        let secret_hash = r.hash("secret_hash")?;
        let constant = r.reference("client const")?;
        let params = Params::from_cell(&*r.reference("params")?)?;
        r.finish("client storage")?;
        let mut c = Reader::new(&constant);
        let owner = c.address("owner")?;
        let proxy = c.address("proxy")?;
        let proxy_public_key = c.hash("proxy_public_key")?;
        c.finish("client const")?;
        Ok(ClientData {
            state,
            balance,
            stake,
            tokens_used,
            unlock_ts,
            secret_hash,
            owner,
            proxy,
            proxy_public_key,
            params,
        })
    }
}

/// The state cell of a `client_proxy_request` (the proxy software reads it; the contract does
/// not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientReport {
    /// State after the op.
    pub state: State,
    /// Balance after the op.
    pub balance: Coins,
    /// Stake after the op.
    pub stake: Coins,
    /// Tokens charged after the op.
    pub tokens_used: u64,
    /// Secret hash after the op.
    pub secret_hash: Hash256,
}

impl ClientReport {
    /// The state cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        self.state.write(&mut w)?;
        w.coins(self.balance, "balance")?
            .coins(self.stake, "stake")?
            .u64(self.tokens_used)?
            .bytes(&self.secret_hash)?
            .build()
    }

    /// Reads a state cell.
    pub fn from_cell(cell: &Cell) -> Result<ClientReport, CodecError> {
        let mut r = Reader::new(cell);
        let report = ClientReport {
            state: State::read(&mut r)?,
            balance: r.coins("balance")?,
            stake: r.coins("stake")?,
            tokens_used: r.u64("tokens_used")?,
            secret_hash: r.hash("secret_hash")?,
        };
        r.finish("client state")?;
        Ok(report)
    }
}

/// Every body the client contract handles (`op query_id` then the fields shown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// `ext_client_top_up amount:coins send_excesses_to:addr` (anyone; value ≥ amount + 0.1).
    TopUp {
        /// Echoed.
        query_id: u64,
        /// The deposit, forwarded to the proxy contract.
        amount: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_change_secret_hash_and_top_up amount:coins new_hash:u256
    /// send_excesses_to:addr`.
    ChangeSecretHashAndTopUp {
        /// Echoed.
        query_id: u64,
        /// The deposit.
        amount: Coins,
        /// The new secret hash.
        new_secret_hash: Hash256,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_register nonce:u64 send_excesses_to:addr` (long auth).
    Register {
        /// Echoed.
        query_id: u64,
        /// Passed to the proxy in the register payload.
        nonce: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_change_secret_hash new_hash:u256 send_excesses_to:addr`.
    ChangeSecretHash {
        /// Echoed.
        query_id: u64,
        /// The new secret hash.
        new_secret_hash: Hash256,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_increase_stake new_stake:coins send_excesses_to:addr`.
    IncreaseStake {
        /// Echoed.
        query_id: u64,
        /// Must exceed the current stake.
        new_stake: Coins,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_withdraw send_excesses_to:addr`: everything above the stake.
    Withdraw {
        /// Echoed.
        query_id: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `owner_client_request_refund send_excesses_to:addr`: close I, then close II.
    RequestRefund {
        /// Echoed.
        query_id: u64,
        /// Receives the excess.
        send_excesses_to: TonAddress,
    },
    /// `ext_client_charge_signed` or `ext_client_grant_refund_signed`.
    Signed(SignedMessage),
}

impl ClientMessage {
    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        match self {
            ClientMessage::TopUp {
                query_id,
                amount,
                send_excesses_to,
            } => {
                w.u32(op::EXT_CLIENT_TOP_UP)?
                    .u64(*query_id)?
                    .coins(*amount, "amount")?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::ChangeSecretHashAndTopUp {
                query_id,
                amount,
                new_secret_hash,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_CHANGE_SECRET_HASH_AND_TOP_UP)?
                    .u64(*query_id)?
                    .coins(*amount, "amount")?
                    .bytes(new_secret_hash)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::Register {
                query_id,
                nonce,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_REGISTER)?
                    .u64(*query_id)?
                    .u64(*nonce)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::ChangeSecretHash {
                query_id,
                new_secret_hash,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_CHANGE_SECRET_HASH)?
                    .u64(*query_id)?
                    .bytes(new_secret_hash)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::IncreaseStake {
                query_id,
                new_stake,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_INCREASE_STAKE)?
                    .u64(*query_id)?
                    .coins(*new_stake, "new_stake")?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::Withdraw {
                query_id,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_WITHDRAW)?
                    .u64(*query_id)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::RequestRefund {
                query_id,
                send_excesses_to,
            } => {
                w.u32(op::OWNER_CLIENT_REQUEST_REFUND)?
                    .u64(*query_id)?
                    .address(send_excesses_to, "send_excesses_to")?;
            }
            ClientMessage::Signed(m) => return m.to_cell(),
        }
        w.build()
    }

    /// Reads a body by its op.
    pub fn from_cell(cell: &Cell) -> Result<ClientMessage, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        let known = matches!(
            opcode,
            op::EXT_CLIENT_TOP_UP
                | op::OWNER_CLIENT_CHANGE_SECRET_HASH_AND_TOP_UP
                | op::OWNER_CLIENT_REGISTER
                | op::OWNER_CLIENT_CHANGE_SECRET_HASH
                | op::OWNER_CLIENT_INCREASE_STAKE
                | op::OWNER_CLIENT_WITHDRAW
                | op::OWNER_CLIENT_REQUEST_REFUND
                | op::EXT_CLIENT_CHARGE_SIGNED
                | op::EXT_CLIENT_GRANT_REFUND_SIGNED
        );
        if !known {
            return Err(CodecError::UnknownOp {
                layout: "client",
                op: opcode,
            });
        }
        let query_id = r.u64("query_id")?;
        let message = match opcode {
            op::EXT_CLIENT_CHARGE_SIGNED | op::EXT_CLIENT_GRANT_REFUND_SIGNED => {
                return Ok(ClientMessage::Signed(SignedMessage::read_after_head(
                    r, opcode, query_id,
                )?))
            }
            op::EXT_CLIENT_TOP_UP => ClientMessage::TopUp {
                query_id,
                amount: r.coins("amount")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::OWNER_CLIENT_CHANGE_SECRET_HASH_AND_TOP_UP => {
                ClientMessage::ChangeSecretHashAndTopUp {
                    query_id,
                    amount: r.coins("amount")?,
                    new_secret_hash: r.hash("new_secret_hash")?,
                    send_excesses_to: r.address("send_excesses_to")?,
                }
            }
            op::OWNER_CLIENT_REGISTER => ClientMessage::Register {
                query_id,
                nonce: r.u64("nonce")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::OWNER_CLIENT_CHANGE_SECRET_HASH => ClientMessage::ChangeSecretHash {
                query_id,
                new_secret_hash: r.hash("new_secret_hash")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::OWNER_CLIENT_INCREASE_STAKE => ClientMessage::IncreaseStake {
                query_id,
                new_stake: r.coins("new_stake")?,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            op::OWNER_CLIENT_WITHDRAW => ClientMessage::Withdraw {
                query_id,
                send_excesses_to: r.address("send_excesses_to")?,
            },
            _ => ClientMessage::RequestRefund {
                query_id,
                send_excesses_to: r.address("send_excesses_to")?,
            },
        };
        r.finish("client message")?;
        Ok(message)
    }
}
