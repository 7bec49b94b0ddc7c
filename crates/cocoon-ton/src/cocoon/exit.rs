//! Exit codes of the COCOON contracts (facts §2), as a transaction's compute phase reports them.

/// TVM cell underflow: a body too short, or with data after its last field (every handler reads
/// the body to its end).
pub const CELL_UNDERFLOW: i32 = 9;
/// The signed token count does not advance (strict for charge and payout, non-strict for grant
/// refund and last payout, facts §8).
pub const OLD_MESSAGE: i32 = 1000;
/// The contract would fall below its reserve + 0.1 TON; also a client withdraw with
/// balance ≤ stake.
pub const LOW_SMC_BALANCE: i32 = 1001;
/// Defined, never raised.
pub const LOW_BALANCE: i32 = 1002;
/// The attached value is too small; also a client increase_stake that does not raise the stake.
pub const LOW_MSG_VALUE: i32 = 1003;
/// Root: a proxy entry whose type bit is not 0 (or whose length does not match).
pub const MSG_FORMAT_MISMATCH: i32 = 1004;
/// A signed payload's op or query id differs from the outer body's.
pub const SIGNED_MSG_FORMAT_MISMATCH: i32 = 1005;
/// Wrong state for the op.
pub const CLOSED: i32 = 1006;
/// The Ed25519 check of a signed message fails.
pub const BAD_SIGNATURE: i32 = 1007;
/// The params struct version is not 3.
pub const STORED_DATA_DAMAGED: i32 = 1008;
/// Client withdraw or request_refund from someone other than the owner.
pub const EXPECTED_OWNER: i32 = 1009;
/// Every other owner-only op, and every root op.
pub const EXPECTED_MESSAGE_FROM_OWNER: i32 = 1010;
/// Closing completed before the unlock time.
pub const NOT_UNLOCKED_YET: i32 = 1011;
/// An unhandled op, or an unhandled payload op.
pub const UNKNOWN_OP: i32 = 1012;
/// A proxy text command other than `c` or `w`.
pub const UNKNOWN_TEXT_OP: i32 = 1013;
/// Proxy: the sender is not the client or worker contract derived for the claimed owner.
pub const CONTRACT_ADDRESS_MISMATCH: i32 = 1014;
/// A signed payload names another contract than the one it was sent to.
pub const EXPECTED_MY_ADDRESS: i32 = 1015;
/// Root: update_proxy for a seqno that is not registered.
pub const UNKNOWN_PROXY_TYPE: i32 = 2000;

/// Cocoon wallet external: `valid_until` is not in the future.
pub const WALLET_EXPIRED: i32 = 1030;
/// Cocoon wallet external: the owner blocked externals.
pub const WALLET_BLOCKED: i32 = 1031;
/// Cocoon wallet external: wrong seqno.
pub const WALLET_BAD_SEQNO: i32 = 1032;
/// Cocoon wallet external: wrong subwallet.
pub const WALLET_BAD_SUBWALLET: i32 = 1033;
/// Cocoon wallet external: bad signature.
pub const WALLET_BAD_SIGNATURE: i32 = 1034;
/// Cocoon wallet external: the wallet holds less than 2 TON.
pub const WALLET_LOW_BALANCE: i32 = 1035;
/// Cocoon wallet internal: a non-empty body that needs the owner came from someone else.
pub const WALLET_NOT_OWNER: i32 = 1040;
/// Cocoon wallet internal: an unknown op or text command from the owner.
pub const WALLET_UNKNOWN_OP: i32 = 1041;
