//! Property tests for every `cocoon::` codec: build → parse gives the value back and parse →
//! build gives the bits back; truncated, mutated and random cells give errors, never panics.
//! `rejections.rs` has one test per rejection rule of the module docs.

mod rejections;

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tonlib_core::cell::{ArcCell, Cell, CellBuilder};
use tonlib_core::{TonAddress, TonHash};

use super::root::HashList;
use super::*;
use crate::keys::ProxyKey;
use crate::Coins;

fn addr() -> impl Strategy<Value = TonAddress> {
    (
        prop_oneof![Just(0i8), Just(-1i8), any::<i8>()],
        any::<[u8; 32]>(),
    )
        .prop_map(|(wc, h)| TonAddress::new(i32::from(wc), TonHash::from(h)))
}

fn coins() -> impl Strategy<Value = Coins> {
    prop_oneof![
        Just(Coins::ZERO),
        (0u128..1_000_000).prop_map(Coins),
        (0u128..(1u128 << 120)).prop_map(Coins),
    ]
}

/// Amounts below 2^64 nanoTON: the proxy's storage is 892 bits with such amounts and would not
/// fit one cell with two 120-bit ones.
fn realistic_coins() -> impl Strategy<Value = Coins> {
    prop_oneof![
        Just(Coins::ZERO),
        any::<u64>().prop_map(|n| Coins(u128::from(n)))
    ]
}

fn small_cell() -> impl Strategy<Value = ArcCell> {
    (proptest::collection::vec(any::<u8>(), 0..40), 0usize..8).prop_map(|(bytes, cut)| {
        let bits = (bytes.len() * 8).saturating_sub(cut);
        let mut b = CellBuilder::new();
        b.store_bits(bits, &bytes).unwrap();
        Arc::new(b.build().unwrap())
    })
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Normal),
        Just(State::Closing),
        Just(State::Closed)
    ]
}

fn params() -> impl Strategy<Value = Params> {
    (
        (any::<u32>(), any::<u32>(), any::<bool>(), coins(), coins()),
        proptest::array::uniform6(any::<u32>()),
        (coins(), coins()),
        proptest::option::of(small_cell()),
        proptest::option::of(small_cell()),
        proptest::option::of(small_cell()),
    )
        .prop_map(
            |((pv, uid, test, price, fee), m, (mps, mcs), p, w, c)| Params {
                params_version: pv,
                unique_id: uid,
                is_test: test,
                price_per_token: price,
                worker_fee_per_token: fee,
                prompt_tokens_price_multiplier: m[0],
                cached_tokens_price_multiplier: m[1],
                completion_tokens_price_multiplier: m[2],
                reasoning_tokens_price_multiplier: m[3],
                proxy_delay_before_close: m[4],
                client_delay_before_close: m[5],
                min_proxy_stake: mps,
                min_client_stake: mcs,
                proxy_code: p,
                worker_code: w,
                client_code: c,
            },
        )
}

fn entry() -> impl Strategy<Value = ProxyEntry> {
    "[a-z0-9.:\\[\\] ]{0,100}".prop_map(|t| ProxyEntry::new(&t).unwrap())
}

fn hashes() -> impl Strategy<Value = BTreeSet<Hash256>> {
    proptest::collection::btree_set(
        prop_oneof![any::<[u8; 32]>(), (0u8..4).prop_map(|b| [b; 32])],
        0..8,
    )
}

fn root_data() -> impl Strategy<Value = RootData> {
    (
        addr(),
        any::<u32>(),
        (hashes(), hashes(), hashes()),
        proptest::collection::btree_map(
            prop_oneof![0u32..16, any::<u32>()],
            "[a-z0-9.: ]{0,60}".prop_map(|t| ProxyEntry::new(&t).unwrap()),
            0..8,
        ),
        any::<u32>(),
        params(),
    )
        .prop_map(
            |(owner, version, (p, w, m), proxies, last, params)| RootData {
                owner,
                version,
                proxy_hashes: p,
                registered_proxies: proxies,
                unusable_proxies: Default::default(),
                last_proxy_seqno: last,
                worker_hashes: w,
                model_hashes: m,
                params,
            },
        )
}

fn signed() -> impl Strategy<Value = SignedMessage> {
    let action = prop_oneof![
        any::<u64>().prop_map(|t| SignedAction::ClientCharge { new_tokens_used: t }),
        any::<u64>().prop_map(|t| SignedAction::ClientGrantRefund { new_tokens_used: t }),
        any::<u64>().prop_map(|t| SignedAction::WorkerPayout { new_tokens: t }),
        any::<u64>().prop_map(|t| SignedAction::WorkerLastPayout { new_tokens: t }),
        Just(SignedAction::ProxyClose),
        Just(SignedAction::ProxyCloseComplete),
    ];
    (action, any::<u64>(), addr(), addr(), any::<[u8; 32]>()).prop_map(
        |(action, query_id, target, excess, seed)| {
            SignedPayload {
                action,
                query_id,
                expected_address: target,
            }
            .sign(&ProxyKey::from_seed(&seed), excess)
            .unwrap()
        },
    )
}

fn report() -> impl Strategy<Value = ClientReport> {
    (state(), coins(), coins(), any::<u64>(), any::<[u8; 32]>()).prop_map(
        |(state, balance, stake, tokens_used, secret_hash)| ClientReport {
            state,
            balance,
            stake,
            tokens_used,
            secret_hash,
        },
    )
}

fn client_payload() -> impl Strategy<Value = ClientPayload> {
    prop_oneof![
        (coins(), addr()).prop_map(|(amount, send_excesses_to)| ClientPayload::TopUp {
            amount,
            send_excesses_to
        }),
        any::<u64>().prop_map(|nonce| ClientPayload::Register { nonce }),
        (coins(), addr()).prop_map(|(amount, send_excesses_to)| {
            ClientPayload::RefundGranted {
                amount,
                send_excesses_to,
            }
        }),
        (coins(), addr()).prop_map(|(amount, send_excesses_to)| ClientPayload::RefundForce {
            amount,
            send_excesses_to
        }),
    ]
}

fn proxy_message() -> impl Strategy<Value = ProxyMessage> {
    let q = any::<u64>();
    prop_oneof![
        (
            q,
            addr(),
            state(),
            any::<u64>(),
            proptest::option::of((coins(), coins(), addr()))
        )
            .prop_map(|(query_id, worker_owner, state, tokens, p)| {
                ProxyMessage::WorkerRequest {
                    query_id,
                    worker_owner,
                    state,
                    tokens,
                    payload: p.map(
                        |(worker_part, proxy_part, send_excesses_to)| WorkerPayload {
                            worker_part,
                            proxy_part,
                            send_excesses_to,
                        },
                    ),
                }
            }),
        (q, addr(), report(), proptest::option::of(client_payload())).prop_map(
            |(query_id, client_owner, report, payload)| ProxyMessage::ClientRequest {
                query_id,
                client_owner,
                report,
                payload
            }
        ),
        (q, addr()).prop_map(|(query_id, send_excesses_to)| ProxyMessage::PayoutRequest {
            query_id,
            send_excesses_to
        }),
        (q, coins(), addr()).prop_map(|(query_id, grams, send_excesses_to)| {
            ProxyMessage::IncreaseStake {
                query_id,
                grams,
                send_excesses_to,
            }
        }),
        (q, addr()).prop_map(|(query_id, send_excesses_to)| ProxyMessage::OwnerClose {
            query_id,
            send_excesses_to
        }),
        signed()
            .prop_filter("proxy ops", |m| m.payload.action.tokens().is_none())
            .prop_map(ProxyMessage::Signed),
        Just(ProxyMessage::TextClose),
        Just(ProxyMessage::TextWithdraw),
        (any::<u64>(), any::<i32>(), any::<[u8; 32]>()).prop_map(|(random, seqno, h)| {
            ProxyMessage::SaveState(SaveState {
                random,
                seqno,
                session_unique_hash: h,
            })
        }),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let q = any::<u64>();
    prop_oneof![
        (q, coins(), addr()).prop_map(|(query_id, amount, send_excesses_to)| {
            ClientMessage::TopUp {
                query_id,
                amount,
                send_excesses_to,
            }
        }),
        (q, coins(), any::<[u8; 32]>(), addr()).prop_map(|(query_id, amount, h, e)| {
            ClientMessage::ChangeSecretHashAndTopUp {
                query_id,
                amount,
                new_secret_hash: h,
                send_excesses_to: e,
            }
        }),
        (q, any::<u64>(), addr()).prop_map(|(query_id, nonce, send_excesses_to)| {
            ClientMessage::Register {
                query_id,
                nonce,
                send_excesses_to,
            }
        }),
        (q, any::<[u8; 32]>(), addr()).prop_map(|(query_id, h, e)| {
            ClientMessage::ChangeSecretHash {
                query_id,
                new_secret_hash: h,
                send_excesses_to: e,
            }
        }),
        (q, coins(), addr()).prop_map(|(query_id, new_stake, send_excesses_to)| {
            ClientMessage::IncreaseStake {
                query_id,
                new_stake,
                send_excesses_to,
            }
        }),
        (q, addr()).prop_map(|(query_id, send_excesses_to)| ClientMessage::Withdraw {
            query_id,
            send_excesses_to
        }),
        (q, addr()).prop_map(
            |(query_id, send_excesses_to)| ClientMessage::RequestRefund {
                query_id,
                send_excesses_to
            }
        ),
        signed()
            .prop_filter("client ops", |m| matches!(
                m.payload.action,
                SignedAction::ClientCharge { .. } | SignedAction::ClientGrantRefund { .. }
            ))
            .prop_map(ClientMessage::Signed),
    ]
}

fn worker_message() -> impl Strategy<Value = WorkerMessage> {
    prop_oneof![
        (any::<u64>(), addr()).prop_map(|(query_id, send_excesses_to)| {
            WorkerMessage::Register {
                query_id,
                send_excesses_to,
            }
        }),
        signed()
            .prop_filter("worker ops", |m| matches!(
                m.payload.action,
                SignedAction::WorkerPayout { .. } | SignedAction::WorkerLastPayout { .. }
            ))
            .prop_map(WorkerMessage::Signed),
    ]
}

fn root_message() -> impl Strategy<Value = RootMessage> {
    let q = any::<u64>();
    let list = prop_oneof![
        Just(HashList::Worker),
        Just(HashList::Model),
        Just(HashList::Proxy)
    ];
    prop_oneof![
        (q, list.clone(), any::<[u8; 32]>()).prop_map(|(query_id, list, hash)| {
            RootMessage::AddHash {
                query_id,
                list,
                hash,
            }
        }),
        (q, list, any::<[u8; 32]>()).prop_map(|(query_id, list, hash)| RootMessage::DelHash {
            query_id,
            list,
            hash
        }),
        (q, entry()).prop_map(|(query_id, entry)| RootMessage::RegisterProxy { query_id, entry }),
        (q, any::<u32>())
            .prop_map(|(query_id, seqno)| RootMessage::UnregisterProxy { query_id, seqno }),
        (q, any::<u32>(), entry()).prop_map(|(query_id, seqno, entry)| {
            RootMessage::UpdateProxy {
                query_id,
                seqno,
                entry,
            }
        }),
        (q, coins(), coins()).prop_map(|(query_id, p, f)| RootMessage::ChangePrice {
            query_id,
            price_per_token: p,
            worker_fee_per_token: f
        }),
        (
            q,
            coins(),
            coins(),
            any::<u32>(),
            any::<u32>(),
            coins(),
            coins()
        )
            .prop_map(
                |(query_id, p, f, pd, cd, mps, mcs)| RootMessage::ChangeParams {
                    query_id,
                    price_per_token: p,
                    worker_fee_per_token: f,
                    proxy_delay_before_close: pd,
                    client_delay_before_close: cd,
                    min_proxy_stake: mps,
                    min_client_stake: mcs,
                }
            ),
        (q, small_cell(), small_cell(), small_cell()).prop_map(|(query_id, p, w, c)| {
            RootMessage::UpgradeContracts {
                query_id,
                proxy_code: p,
                worker_code: w,
                client_code: c,
            }
        }),
        (q, small_cell()).prop_map(|(query_id, code)| RootMessage::Upgrade { query_id, code }),
        q.prop_map(|query_id| RootMessage::Reset { query_id }),
        (q, small_cell(), small_cell()).prop_map(|(query_id, data, code)| {
            RootMessage::UpgradeFull {
                query_id,
                data,
                code,
            }
        }),
        (q, addr()).prop_map(|(query_id, owner)| RootMessage::ChangeOwner { query_id, owner }),
    ]
}

fn wallet_message() -> impl Strategy<Value = WalletMessage> {
    prop_oneof![
        (any::<u64>(), any::<u8>(), small_cell()).prop_map(|(query_id, mode, message)| {
            WalletMessage::SendMessage {
                query_id,
                mode,
                message,
            }
        }),
        Just(WalletMessage::TextWithdraw),
        Just(WalletMessage::TextBlock),
        Just(WalletMessage::TextUnblock),
    ]
}

/// A cell with random bits and up to four random children, two levels deep.
fn random_cell() -> impl Strategy<Value = Cell> {
    fn flat() -> impl Strategy<Value = Cell> {
        (proptest::collection::vec(any::<u8>(), 0..128), 0usize..8).prop_map(|(bytes, cut)| {
            let bits = (bytes.len() * 8).saturating_sub(cut);
            let mut b = CellBuilder::new();
            b.store_bits(bits, &bytes).unwrap();
            b.build().unwrap()
        })
    }
    (flat(), proptest::collection::vec(flat(), 0..=4)).prop_map(|(top, children)| {
        let mut b = CellBuilder::new();
        b.store_cell_data(&top).unwrap();
        for c in children {
            b.store_child(c).unwrap();
        }
        b.build().unwrap()
    })
}

/// Every parser of the module, on one cell; none may panic.
fn parse_everything(cell: &Cell) {
    let _ = Params::from_cell(cell);
    let _ = RootData::from_cell(cell);
    let _ = ProxyData::from_cell(cell);
    let _ = ClientData::from_cell(cell);
    let _ = ClientReport::from_cell(cell);
    let _ = WorkerData::from_cell(cell);
    let _ = WalletData::from_cell(cell);
    let _ = RootMessage::from_cell(cell);
    let _ = ProxyMessage::from_cell(cell);
    let _ = ClientMessage::from_cell(cell);
    let _ = WorkerMessage::from_cell(cell);
    let _ = WalletMessage::from_cell(cell);
    let _ = WalletExternal::from_cell(cell);
    let _ = SignedMessage::from_cell(cell);
    let _ = SignedPayload::from_cell(cell);
    let _ = ClientPayload::from_cell(cell);
    let _ = WorkerPayload::from_cell(cell);
    let _ = Excesses::from_cell(cell);
    let _ = Payout::from_cell(cell);
    let _ = SaveState::from_cell(cell);
}

/// Cuts `cut` bits off the end of the top cell.
fn truncate(cell: &Cell, cut: usize) -> Cell {
    let bits = cell.bit_len().saturating_sub(cut);
    let mut p = cell.parser();
    let data = p.load_bits(bits).unwrap();
    let mut b = CellBuilder::new();
    b.store_bits(bits, &data).unwrap();
    b.store_references(cell.references()).unwrap();
    b.build().unwrap()
}

/// Flips bit `at` of the top cell.
fn flip(cell: &Cell, at: usize) -> Cell {
    let mut data = cell.data().to_vec();
    if cell.bit_len() > 0 {
        let at = at % cell.bit_len();
        data[at / 8] ^= 0x80 >> (at % 8);
    }
    let mut b = CellBuilder::new();
    b.store_bits(cell.bit_len(), &data).unwrap();
    b.store_references(cell.references()).unwrap();
    b.build().unwrap()
}

macro_rules! round_trip {
    ($name:ident, $strategy:expr, $ty:ty) => {
        proptest! {
            #[test]
            fn $name(value in $strategy, cut in 1usize..48, at in any::<usize>()) {
                let cell = value.to_cell().unwrap();
                let back = from_boc(&to_boc(&cell).unwrap()).unwrap();
                let parsed = <$ty>::from_cell(&back).unwrap();
                prop_assert_eq!(&parsed, &value);
                prop_assert_eq!(parsed.to_cell().unwrap(), cell.clone());
                // A shorter top cell is an error (every layout ends with a fixed field or a
                // ref), and a flipped bit parses or fails, never panics.
                prop_assert!(<$ty>::from_cell(&truncate(&cell, cut)).is_err());
                let _ = <$ty>::from_cell(&flip(&cell, at));
            }
        }
    };
}

round_trip!(params_round_trip, params(), Params);
round_trip!(root_data_round_trip, root_data(), RootData);
round_trip!(root_message_round_trip, root_message(), RootMessage);
round_trip!(proxy_message_round_trip, proxy_message(), ProxyMessage);
round_trip!(client_message_round_trip, client_message(), ClientMessage);
round_trip!(worker_message_round_trip, worker_message(), WorkerMessage);
round_trip!(wallet_message_round_trip, wallet_message(), WalletMessage);
round_trip!(signed_message_round_trip, signed(), SignedMessage);
round_trip!(client_report_round_trip, report(), ClientReport);
round_trip!(client_payload_round_trip, client_payload(), ClientPayload);

proptest! {
    #[test]
    fn proxy_data_round_trip(owner in addr(), key in any::<[u8; 32]>(), root in addr(),
                             state in state(), balance in realistic_coins(), stake in realistic_coins(),
                             unlock_ts in any::<u32>(), params in params()) {
        let value = ProxyData { owner, proxy_public_key: key, root, state, balance, stake, unlock_ts, params };
        let cell = value.to_cell().unwrap();
        prop_assert_eq!(&ProxyData::from_cell(&cell).unwrap(), &value);
        prop_assert!(ProxyData::from_cell(&truncate(&cell, 1)).is_err());
    }

    #[test]
    fn client_data_round_trip(r in report(), unlock_ts in any::<u32>(), owner in addr(),
                              proxy in addr(), key in any::<[u8; 32]>(), params in params()) {
        let value = ClientData {
            state: r.state, balance: r.balance, stake: r.stake, tokens_used: r.tokens_used,
            unlock_ts, secret_hash: r.secret_hash, owner, proxy, proxy_public_key: key, params,
        };
        let cell = value.to_cell().unwrap();
        prop_assert_eq!(&ClientData::from_cell(&cell).unwrap(), &value);
        prop_assert_eq!(value.report(), r);
    }

    #[test]
    fn worker_data_round_trip(owner in addr(), proxy in addr(), key in any::<[u8; 32]>(),
                              state in state(), tokens in any::<u64>(), params in params()) {
        let value = WorkerData { owner, proxy, proxy_public_key: key, state, tokens, params };
        let cell = value.to_cell().unwrap();
        prop_assert_eq!(&WorkerData::from_cell(&cell).unwrap(), &value);
    }

    #[test]
    fn wallet_round_trips(seqno in any::<u32>(), subwallet in any::<u32>(), key in any::<[u8; 32]>(),
                          status in any::<u32>(), owner in addr(), valid_until in any::<u32>(),
                          messages in proptest::collection::vec((any::<u8>(), small_cell()), 0..=4)) {
        let data = WalletData { seqno, subwallet, public_key: key, status, owner };
        prop_assert_eq!(&WalletData::from_cell(&data.to_cell().unwrap()).unwrap(), &data);
        let signer = ProxyKey::from_seed(&key);
        let external = WalletExternal::sign(&signer, subwallet, valid_until, seqno, messages).unwrap();
        let cell = external.to_cell().unwrap();
        let parsed = WalletExternal::from_cell(&cell).unwrap();
        prop_assert_eq!(&parsed, &external);
        prop_assert!(parsed.verify(&signer.public_key()));
        prop_assert!(!parsed.verify(&ProxyKey::from_seed(&[0xee; 32]).public_key()));
    }

    #[test]
    fn signed_messages_verify_and_survive_a_repack(m in signed(), seed in any::<[u8; 32]>(), other in addr()) {
        // The signer of `m` is unknown here; sign the same payload again with a known key.
        let key = ProxyKey::from_seed(&seed);
        let m = m.payload.sign(&key, m.send_excesses_to.clone()).unwrap();
        prop_assert!(m.verify(&key.public_key()));
        prop_assert_eq!(m.payload_hash(), &m.payload.hash().unwrap());
        let repacked = SignedMessage::from_boc(&m.repack(other).to_boc().unwrap()).unwrap();
        prop_assert!(repacked.verify(&key.public_key()));
        let mut forged = m.payload.clone();
        forged.query_id = forged.query_id.wrapping_add(1);
        let forged = SignedMessage::from_cell(&SignedMessage { payload: forged, ..m.clone() }.to_cell().unwrap()).unwrap();
        prop_assert!(!forged.verify(&key.public_key()));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(cell) = from_boc(&bytes) {
            parse_everything(&cell);
        }
        let _ = SignedMessage::from_boc(&bytes);
    }

    #[test]
    fn random_cells_never_panic(cell in random_cell()) {
        parse_everything(&cell);
    }

    #[test]
    fn random_cells_with_a_known_op_never_panic(cell in random_cell(), which in 0usize..OPS.len()) {
        // Random data after a real op reaches deeper into each parser.
        let mut b = CellBuilder::new();
        b.store_u32(32, OPS[which]).unwrap();
        let bits = cell.bit_len().min(1023 - 32);
        let mut p = cell.parser();
        b.store_bits(bits, &p.load_bits(bits).unwrap()).unwrap();
        b.store_references(cell.references()).unwrap();
        parse_everything(&b.build().unwrap());
    }
}

const OPS: &[u32] = &[
    op::TEXT_COMMAND,
    op::EXCESSES,
    op::PAYOUT,
    op::DO_NOT_PROCESS,
    op::ROOT_ADD_WORKER_TYPE,
    op::ROOT_REGISTER_PROXY,
    op::ROOT_UPDATE_PROXY,
    op::ROOT_CHANGE_PARAMS,
    op::ROOT_UPGRADE_CONTRACTS,
    op::ROOT_CHANGE_OWNER,
    op::WORKER_PROXY_REQUEST,
    op::CLIENT_PROXY_REQUEST,
    op::CLIENT_PROXY_TOP_UP,
    op::EXT_PROXY_INCREASE_STAKE,
    op::EXT_PROXY_CLOSE_REQUEST_SIGNED,
    op::EXT_WORKER_PAYOUT_REQUEST_SIGNED,
    op::EXT_CLIENT_CHARGE_SIGNED,
    op::EXT_CLIENT_TOP_UP,
    op::OWNER_CLIENT_REGISTER,
    op::OWNER_WALLET_SEND_MESSAGE,
];
