//! Opcodes, exit codes and network parameters, as specified in `docs/payments.md`.

use serde::{Deserialize, Serialize};

/// Message opcodes (the first 32 bits of every body).
pub mod op {
    /// Proxy-signed charge of a client contract (reference).
    pub const CHARGE_SIGNED: u32 = 0xbb63ff93;
    /// Proxy-signed final charge and refund of a client contract (reference).
    pub const GRANT_REFUND_SIGNED: u32 = 0xefd711e1;
    /// Proxy-signed worker payout (reference).
    pub const WORKER_PAYOUT_SIGNED: u32 = 0xa040ad28;
    /// Proxy-signed last worker payout, closing the worker contract (reference).
    pub const WORKER_LAST_PAYOUT_SIGNED: u32 = 0xf5f26a36;
    /// The proxy commits (seqno, state hash) (reference).
    pub const PROXY_SAVE_STATE: u32 = 0x53109c0f;
    /// Anyone adds to a client's balance (reference).
    pub const TOP_UP: u32 = 0xf172e6c2;
    /// The client sets its secret hash (reference).
    pub const OWNER_CLIENT_REGISTER: u32 = 0xc45f9f3b;
    /// The client withdraws above its stake (reference).
    pub const OWNER_CLIENT_WITHDRAW: u32 = 0xda068e78;
    /// The client starts or finishes closing (reference).
    pub const OWNER_CLIENT_REQUEST_REFUND: u32 = 0xfafa6cc1;
    /// The client raises its stake (reference).
    pub const OWNER_CLIENT_INCREASE_STAKE: u32 = 0x6a1f6a60;
    /// Root: set params.
    pub const ROOT_SET_PARAMS: u32 = 0x19d12a04;
    /// Root: allow a hash.
    pub const ROOT_ADD_HASH: u32 = 0xaa31521e;
    /// Root: disallow a hash.
    pub const ROOT_REMOVE_HASH: u32 = 0x673d4134;
    /// Root: register a proxy endpoint.
    pub const ROOT_REGISTER_PROXY: u32 = 0x2e5a8880;
    /// Root: unregister a proxy endpoint.
    pub const ROOT_UNREGISTER_PROXY: u32 = 0x92708000;
    /// Deploys a proxy contract with its stake.
    pub const PROXY_DEPLOY: u32 = 0x20329a2d;
    /// Closes a proxy contract.
    pub const PROXY_CLOSE: u32 = 0xa7a87e7d;
    /// Client contract → proxy contract: opened.
    pub const PROXY_CLIENT_OPENED: u32 = 0x782b05a6;
    /// Client contract → proxy contract: closed.
    pub const PROXY_CLIENT_CLOSED: u32 = 0xd1ba6f19;
    /// Worker contract → proxy contract: opened.
    pub const PROXY_WORKER_OPENED: u32 = 0xac2fff7c;
    /// Worker contract → proxy contract: closed.
    pub const PROXY_WORKER_CLOSED: u32 = 0x05be95c3;
    /// Worker contract → proxy contract: pay the worker.
    pub const PROXY_PAY_WORKER: u32 = 0x83fb14ea;
    /// Deploys a client contract.
    pub const CLIENT_DEPLOY: u32 = 0xc9b1f4f9;
    /// Deploys a worker contract.
    pub const WORKER_DEPLOY: u32 = 0x1db50e23;
    /// Unused gas returned.
    pub const EXCESSES: u32 = 0x97928e02;
    /// A payment of exactly the message's value.
    pub const PAYOUT: u32 = 0x29841a33;
}

/// Why a contract refused a message: the TVM exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// The sender is not the owner.
    #[error("not_owner (100): the sender is not the contract's owner")]
    NotOwner,
    /// The proxy signature does not verify.
    #[error("bad_signature (101): not signed by the proxy's key")]
    BadSignature,
    /// Tokens or seqno must grow.
    #[error("not_increasing (102): the token count must grow")]
    NotIncreasing,
    /// A withdrawal would dip into the stake.
    #[error("below_stake (103): the balance would fall below the stake")]
    BelowStake,
    /// Not allowed in the contract's current state.
    #[error("wrong_state (104): not allowed in the contract's current state")]
    WrongState,
    /// The close delay has not passed.
    #[error("too_early (105): the close delay has not passed yet")]
    TooEarly,
    /// The proxy still has open clients or workers.
    #[error("open_contracts (106): the proxy still has open client or worker contracts")]
    OpenContracts,
    /// A state commit that does not move forward.
    #[error("stale_seqno (107): the seqno must be greater than the committed one")]
    StaleSeqno,
    /// A signed message for another contract.
    #[error("wrong_target (109): the message was signed for another contract")]
    WrongTarget,
    /// Not enough value or stake.
    #[error("insufficient_value (110): the amount or stake is too small")]
    InsufficientValue,
    /// The proxy contract cannot cover a payout.
    #[error("insufficient_funds (111): the proxy contract cannot cover the payout")]
    InsufficientFunds,
    /// A notification not from a contract of this proxy.
    #[error("not_proxy (112): the sender is not a contract of this proxy")]
    NotProxy,
    /// An opcode the contract does not know, or a malformed body.
    #[error("unknown_op (65535): unknown opcode or malformed body")]
    UnknownOp,
}

impl ExitCode {
    /// Every code.
    pub const ALL: [ExitCode; 13] = [
        ExitCode::NotOwner,
        ExitCode::BadSignature,
        ExitCode::NotIncreasing,
        ExitCode::BelowStake,
        ExitCode::WrongState,
        ExitCode::TooEarly,
        ExitCode::OpenContracts,
        ExitCode::StaleSeqno,
        ExitCode::WrongTarget,
        ExitCode::InsufficientValue,
        ExitCode::InsufficientFunds,
        ExitCode::NotProxy,
        ExitCode::UnknownOp,
    ];

    /// The TVM exit code.
    pub fn code(self) -> u32 {
        match self {
            ExitCode::NotOwner => 100,
            ExitCode::BadSignature => 101,
            ExitCode::NotIncreasing => 102,
            ExitCode::BelowStake => 103,
            ExitCode::WrongState => 104,
            ExitCode::TooEarly => 105,
            ExitCode::OpenContracts => 106,
            ExitCode::StaleSeqno => 107,
            ExitCode::WrongTarget => 109,
            ExitCode::InsufficientValue => 110,
            ExitCode::InsufficientFunds => 111,
            ExitCode::NotProxy => 112,
            ExitCode::UnknownOp => 0xffff,
        }
    }

    /// The name used in the spec and the vectors.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::NotOwner => "not_owner",
            ExitCode::BadSignature => "bad_signature",
            ExitCode::NotIncreasing => "not_increasing",
            ExitCode::BelowStake => "below_stake",
            ExitCode::WrongState => "wrong_state",
            ExitCode::TooEarly => "too_early",
            ExitCode::OpenContracts => "open_contracts",
            ExitCode::StaleSeqno => "stale_seqno",
            ExitCode::WrongTarget => "wrong_target",
            ExitCode::InsufficientValue => "insufficient_value",
            ExitCode::InsufficientFunds => "insufficient_funds",
            ExitCode::NotProxy => "not_proxy",
            ExitCode::UnknownOp => "unknown_op",
        }
    }

    /// The code with that name.
    pub fn from_name(name: &str) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The code with that number.
    pub fn from_code(code: u32) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// Network parameters, set on the root by its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What a client pays per token, nano-TON.
    pub price_per_token: u64,
    /// What a worker earns per token, nano-TON.
    pub worker_fee_per_token: u64,
    /// Prompt token multiplier, ×10000.
    pub prompt_multiplier: u32,
    /// Cached prompt token multiplier, ×10000.
    pub cached_multiplier: u32,
    /// Completion token multiplier, ×10000.
    pub completion_multiplier: u32,
    /// Reasoning token multiplier, ×10000.
    pub reasoning_multiplier: u32,
    /// Seconds a proxy waits before closing.
    pub proxy_close_delay: u32,
    /// Seconds a closing client waits for its stake.
    pub client_close_delay: u32,
    /// Minimum proxy stake, nano-TON.
    pub min_proxy_stake: u64,
    /// Minimum client stake, nano-TON.
    pub min_client_stake: u64,
}

impl Default for Params {
    /// The mainnet figures seen on the reference (20 vs 19 nano-TON per token), one-day delays.
    fn default() -> Params {
        Params {
            price_per_token: 20,
            worker_fee_per_token: 19,
            prompt_multiplier: 10_000,
            cached_multiplier: 10_000,
            completion_multiplier: 10_000,
            reasoning_multiplier: 10_000,
            proxy_close_delay: 86_400,
            client_close_delay: 86_400,
            min_proxy_stake: 1_000_000_000,
            min_client_stake: 100_000_000,
        }
    }
}

/// Lifecycle of a client, worker or proxy contract.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    /// Open for business.
    #[default]
    Running,
    /// A client waiting out its close delay.
    Closing,
    /// Settled; accepts nothing more.
    Closed,
}

impl ContractStatus {
    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            ContractStatus::Running => "running",
            ContractStatus::Closing => "closing",
            ContractStatus::Closed => "closed",
        }
    }
}

/// Hash kinds on the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKind {
    /// Allowed proxy image hashes.
    ProxyImage = 0,
    /// Allowed worker image hashes.
    WorkerImage = 1,
    /// Allowed model hashes (SHA-256 of the model name).
    Model = 2,
}

impl HashKind {
    /// From the on-chain `kind:uint8`.
    pub fn from_u8(kind: u8) -> Option<HashKind> {
        match kind {
            0 => Some(HashKind::ProxyImage),
            1 => Some(HashKind::WorkerImage),
            2 => Some(HashKind::Model),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_unique_and_named() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_name(c.name()), Some(c));
            assert_eq!(ExitCode::from_code(c.code()), Some(c));
            assert!(c.to_string().starts_with(c.name()));
        }
    }

    #[test]
    fn ours_are_crc32_of_their_names() {
        let cases = [
            ("root_set_params", op::ROOT_SET_PARAMS),
            ("root_add_hash", op::ROOT_ADD_HASH),
            ("root_remove_hash", op::ROOT_REMOVE_HASH),
            ("root_register_proxy", op::ROOT_REGISTER_PROXY),
            ("root_unregister_proxy", op::ROOT_UNREGISTER_PROXY),
            ("proxy_deploy", op::PROXY_DEPLOY),
            ("proxy_close", op::PROXY_CLOSE),
            ("proxy_client_opened", op::PROXY_CLIENT_OPENED),
            ("proxy_client_closed", op::PROXY_CLIENT_CLOSED),
            ("proxy_worker_opened", op::PROXY_WORKER_OPENED),
            ("proxy_worker_closed", op::PROXY_WORKER_CLOSED),
            ("proxy_pay_worker", op::PROXY_PAY_WORKER),
            ("client_deploy", op::CLIENT_DEPLOY),
            ("worker_deploy", op::WORKER_DEPLOY),
            ("excesses", op::EXCESSES),
            ("payout", op::PAYOUT),
        ];
        for (name, id) in cases {
            assert_eq!(crc32(format!("cocoon.{name}").as_bytes()), id, "{name}");
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
