//! Opcodes of the COCOON contracts (facts §1). Every inbound body starts with one of these as
//! `u32`, then (except for op 0 text commands and `do_not_process`) a `query_id:u64`.
//!
//! Prefixes: `EXT_*` may come from anyone, `OWNER_*` only from the owner, `*_SIGNED` carry an
//! Ed25519 signature made with the proxy key (facts §8). An op a contract does not handle makes it
//! fail with [`super::exit::UNKNOWN_OP`].

/// Op 0: a text command, followed by exactly one ASCII byte and no query id.
pub const TEXT_COMMAND: u32 = 0;

/// The answer carrying everything above a contract's reserve back to the excess address.
pub const EXCESSES: u32 = 0x2565_934c;
/// A payment (worker payout, client refund, proxy commission, close-complete remainder).
pub const PAYOUT: u32 = 0xc59a_7cd3;
/// Ignored by every contract before anything else is read; carries the proxy's save-state
/// commits (facts §11).
pub const DO_NOT_PROCESS: u32 = 0x9a12_47c0;
/// Inside a `do_not_process` body: the proxy software's save-state commit (only in the C++
/// reference; no contract reads it).
pub const PROXY_SAVE_STATE: u32 = 0x5310_9c0f;

/// Root: allow a worker image hash.
pub const ROOT_ADD_WORKER_TYPE: u32 = 0xe34b_1c60;
/// Root: remove a worker image hash.
pub const ROOT_DEL_WORKER_TYPE: u32 = 0x8d94_a79a;
/// Root: allow a model hash.
pub const ROOT_ADD_MODEL_TYPE: u32 = 0xc146_134d;
/// Root: remove a model hash.
pub const ROOT_DEL_MODEL_TYPE: u32 = 0x92b1_1c18;
/// Root: allow a proxy image hash.
pub const ROOT_ADD_PROXY_TYPE: u32 = 0x7186_0e80;
/// Root: remove a proxy image hash.
pub const ROOT_DEL_PROXY_TYPE: u32 = 0x3c41_d0b2;
/// Root: register a proxy endpoint under the next seqno.
pub const ROOT_REGISTER_PROXY: u32 = 0x927c_7cb5;
/// Root: remove a registered proxy.
pub const ROOT_UNREGISTER_PROXY: u32 = 0x6d49_eaf2;
/// Root: replace a registered proxy's endpoint.
pub const ROOT_UPDATE_PROXY: u32 = 0x9c79_24ba;
/// Root: new price and worker fee (bumps `params_version`).
pub const ROOT_CHANGE_PRICE: u32 = 0xc52e_d8d4;
/// Root: new prices, delays and minimum stakes (bumps `params_version`).
pub const ROOT_CHANGE_PARAMS: u32 = 0x022f_a189;
/// Root: defined but **not handled** by the deployed root (fails with 1012).
pub const ROOT_CHANGE_PARAMS_FULL: u32 = 0x9f1e_69dc;
/// Root: new proxy, worker and client codes (bumps `params_version`).
pub const ROOT_UPGRADE_CONTRACTS: u32 = 0xa237_0f61;
/// Root: new code for the root itself.
pub const ROOT_UPGRADE: u32 = 0x11ae_fd51;
/// Root: clear the four dictionaries (keeps `last_proxy_seqno`).
pub const ROOT_RESET: u32 = 0x563c_1d96;
/// Root: replace data and code wholesale.
pub const ROOT_UPGRADE_FULL: u32 = 0x4f7c_5789;
/// Root: new owner.
pub const ROOT_CHANGE_OWNER: u32 = 0xc4a1_ae54;

/// Worker contract → proxy contract: a report, optionally with a payload.
pub const WORKER_PROXY_REQUEST: u32 = 0x4d72_5d2c;
/// Payload of a worker report: pay the worker part, book the proxy part.
pub const WORKER_PROXY_PAYOUT_REQUEST: u32 = 0x08e7_d036;
/// Client contract → proxy contract: a report with the client's state, optionally a payload.
pub const CLIENT_PROXY_REQUEST: u32 = 0x6544_8ff4;
/// Payload of a client report: a deposit.
pub const CLIENT_PROXY_TOP_UP: u32 = 0x5cfc_6b87;
/// Payload of a client report: the long-auth nonce (facts §11).
pub const CLIENT_PROXY_REGISTER: u32 = 0xa35c_b580;
/// Payload of a client report: pay back a refund the client's rules allow.
pub const CLIENT_PROXY_REFUND_GRANTED: u32 = 0xc68e_bc7b;
/// Payload of a client report: a refund forced out of the proxy's stake.
pub const CLIENT_PROXY_REFUND_FORCE: u32 = 0xf4c3_54c9;

/// Proxy: anyone adds to the proxy's stake.
pub const EXT_PROXY_INCREASE_STAKE: u32 = 0x9713_f187;
/// Proxy: anyone asks the commission to be paid to the owner.
pub const EXT_PROXY_PAYOUT_REQUEST: u32 = 0x7610_e6eb;
/// Proxy: the owner starts closing.
pub const OWNER_PROXY_CLOSE: u32 = 0xb51d_5a01;
/// Proxy: a proxy-signed start of closing.
pub const EXT_PROXY_CLOSE_REQUEST_SIGNED: u32 = 0x636a_4391;
/// Proxy: a proxy-signed completion of closing.
pub const EXT_PROXY_CLOSE_COMPLETE_REQUEST_SIGNED: u32 = 0xe511_abc7;

/// Worker: a proxy-signed payout up to a token count (strict).
pub const EXT_WORKER_PAYOUT_REQUEST_SIGNED: u32 = 0xa040_ad28;
/// Worker: the last proxy-signed payout (non-strict; closes the worker contract).
pub const EXT_WORKER_LAST_PAYOUT_REQUEST_SIGNED: u32 = 0xf5f2_6a36;
/// Worker: the owner makes the contract report to the proxy (no payload).
pub const OWNER_WORKER_REGISTER: u32 = 0x26ed_7f65;

/// Client: anyone deposits.
pub const EXT_CLIENT_TOP_UP: u32 = 0xf172_e6c2;
/// Client: a proxy-signed charge up to a token count (strict).
pub const EXT_CLIENT_CHARGE_SIGNED: u32 = 0xbb63_ff93;
/// Client: a proxy-signed final charge and refund of the rest (non-strict; closes).
pub const EXT_CLIENT_GRANT_REFUND_SIGNED: u32 = 0xefd7_11e1;
/// Client: defined but **not handled** by the deployed client (fails with 1012).
pub const OWNER_CLIENT_TOP_UP_REOPEN: u32 = 0x2911_1ceb;
/// Client: the owner sends the long-auth nonce to the proxy.
pub const OWNER_CLIENT_REGISTER: u32 = 0xc45f_9f3b;
/// Client: the owner sets a new secret hash (short auth).
pub const OWNER_CLIENT_CHANGE_SECRET_HASH: u32 = 0xa935_7034;
/// Client: the owner sets a new secret hash and deposits.
pub const OWNER_CLIENT_CHANGE_SECRET_HASH_AND_TOP_UP: u32 = 0x8473_b408;
/// Client: the owner closes (first call) or forces the refund after the delay (second call).
pub const OWNER_CLIENT_REQUEST_REFUND: u32 = 0xfafa_6cc1;
/// Client: the owner raises the stake (never sent by the C++ client).
pub const OWNER_CLIENT_INCREASE_STAKE: u32 = 0x6a1f_6a60;
/// Client: the owner withdraws everything above the stake.
pub const OWNER_CLIENT_WITHDRAW: u32 = 0xda06_8e78;

/// Cocoon wallet: the owner sends a message through the wallet.
pub const OWNER_WALLET_SEND_MESSAGE: u32 = 0x9c69_f376;
