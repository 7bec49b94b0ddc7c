//! One test per rejection rule of the `cocoon::` module docs (address forms, coins, opcodes,
//! params version, states, signed payloads, dictionary size), plus dictionaries and address
//! derivation on fixed values.

use std::sync::Arc;

use tonlib_core::cell::{ArcCell, Cell, CellBuilder};
use tonlib_core::{TonAddress, TonHash};

use super::super::address::{client_contract, proxy_contract, wallet_contract, worker_contract};
use super::super::cell::Writer;
use super::super::*;
use crate::keys::ProxyKey;
use crate::Coins;

fn a(byte: u8) -> TonAddress {
    TonAddress::new(0, TonHash::from([byte; 32]))
}

fn sample_params() -> Params {
    Params {
        params_version: 1,
        unique_id: 77,
        is_test: true,
        price_per_token: Coins(20),
        worker_fee_per_token: Coins(19),
        prompt_tokens_price_multiplier: 10_001,
        cached_tokens_price_multiplier: 10_002,
        completion_tokens_price_multiplier: 10_003,
        reasoning_tokens_price_multiplier: 10_004,
        proxy_delay_before_close: 3600,
        client_delay_before_close: 1800,
        min_proxy_stake: Coins::ton(2),
        min_client_stake: Coins::ton(1),
        proxy_code: None,
        worker_code: None,
        client_code: None,
    }
}

/// `op query_id` followed by the given raw bits.
fn body_with(opcode: u32, bits: &[(usize, u64)]) -> Cell {
    let mut b = CellBuilder::new();
    b.store_u32(32, opcode).unwrap().store_u64(64, 5).unwrap();
    for &(n, v) in bits {
        b.store_u64(n, v).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn addresses_other_than_addr_std_are_typed_errors() {
    // addr_none (00) as the excess address of a payout request.
    let none = body_with(op::EXT_PROXY_PAYOUT_REQUEST, &[(2, 0)]);
    assert_eq!(
        ProxyMessage::from_cell(&none),
        Err(CodecError::UnsupportedAddress {
            field: "send_excesses_to",
            tag: 0
        })
    );
    // addr_var (11).
    let var = body_with(op::EXT_PROXY_PAYOUT_REQUEST, &[(2, 3), (64, 0)]);
    assert!(matches!(
        ProxyMessage::from_cell(&var),
        Err(CodecError::UnsupportedAddress { tag: 3, .. })
    ));
    // addr_std with an anycast prefix.
    let anycast = body_with(op::EXT_PROXY_PAYOUT_REQUEST, &[(3, 0b101), (64, 0)]);
    assert!(matches!(
        ProxyMessage::from_cell(&anycast),
        Err(CodecError::AnycastAddress { .. })
    ));
    // A workchain that does not fit int8 cannot be written.
    let wide = TonAddress::new(1000, TonHash::from([1; 32]));
    assert!(matches!(
        (ProxyMessage::PayoutRequest {
            query_id: 1,
            send_excesses_to: wide
        })
        .to_cell(),
        Err(CodecError::WorkchainOutOfRange { .. })
    ));
}

#[test]
fn coins_must_be_minimal_and_fit_120_bits() {
    // Length 2, value 0x0005: a leading zero byte.
    let body = body_with(op::EXT_PROXY_INCREASE_STAKE, &[(4, 2), (16, 5)]);
    assert_eq!(
        ProxyMessage::from_cell(&body),
        Err(CodecError::NonMinimalCoins { field: "grams" })
    );
    // Length 15 but only 8 bytes follow.
    let short = body_with(op::EXT_PROXY_INCREASE_STAKE, &[(4, 15), (64, u64::MAX)]);
    assert_eq!(
        ProxyMessage::from_cell(&short),
        Err(CodecError::Truncated { field: "grams" })
    );
    let too_big = ProxyMessage::IncreaseStake {
        query_id: 0,
        grams: Coins(1 << 120),
        send_excesses_to: a(1),
    };
    assert_eq!(
        too_big.to_cell(),
        Err(CodecError::CoinsTooLarge { field: "grams" })
    );
    // The largest value fits.
    let max = ProxyMessage::IncreaseStake {
        query_id: 0,
        grams: Coins((1 << 120) - 1),
        send_excesses_to: a(1),
    };
    assert_eq!(ProxyMessage::from_cell(&max.to_cell().unwrap()), Ok(max));
}

#[test]
fn wrong_opcodes_and_empty_bodies_are_typed_errors() {
    let empty = CellBuilder::new().build().unwrap();
    assert_eq!(ClientMessage::from_cell(&empty), Err(CodecError::EmptyBody));
    let unhandled = body_with(op::OWNER_CLIENT_TOP_UP_REOPEN, &[]);
    assert!(matches!(
        ClientMessage::from_cell(&unhandled),
        Err(CodecError::UnknownOp {
            op: op::OWNER_CLIENT_TOP_UP_REOPEN,
            ..
        })
    ));
    let unhandled = body_with(op::ROOT_CHANGE_PARAMS_FULL, &[]);
    assert!(matches!(
        RootMessage::from_cell(&unhandled),
        Err(CodecError::UnknownOp { .. })
    ));
    let mut text = CellBuilder::new();
    text.store_u32(32, 0).unwrap().store_u8(8, b'x').unwrap();
    assert!(matches!(
        ProxyMessage::from_cell(&text.build().unwrap()),
        Err(CodecError::UnknownTextCommand { command: b'x', .. })
    ));
    // A query id after a text command is trailing data (facts §13).
    let mut text = CellBuilder::new();
    text.store_u32(32, 0).unwrap().store_u8(8, b'c').unwrap();
    text.store_u64(64, 1).unwrap();
    assert!(matches!(
        ProxyMessage::from_cell(&text.build().unwrap()),
        Err(CodecError::TrailingData { .. })
    ));
}

#[test]
fn params_version_and_states_are_checked() {
    let cell = sample_params().to_cell().unwrap();
    let mut data = cell.data().to_vec();
    data[0] = 2;
    let mut b = CellBuilder::new();
    b.store_bits(cell.bit_len(), &data).unwrap();
    assert_eq!(
        Params::from_cell(&b.build().unwrap()),
        Err(CodecError::ParamsStructVersion(2))
    );
    let worker = WorkerData::initial(a(1), a(2), [3; 32], &sample_params());
    let cell = worker.to_cell().unwrap();
    // The state sits after two addresses and the key.
    let state_bit = 267 * 2 + 256;
    let mut data = cell.data().to_vec();
    data[state_bit / 8] |= 0xc0 >> (state_bit % 8);
    let mut b = CellBuilder::new();
    b.store_bits(cell.bit_len(), &data).unwrap();
    b.store_references(cell.references()).unwrap();
    assert_eq!(
        WorkerData::from_cell(&b.build().unwrap()),
        Err(CodecError::InvalidState(3))
    );
}

#[test]
fn signed_payload_must_repeat_op_and_query_id() {
    let key = ProxyKey::from_seed(&[7; 32]);
    let m = SignedPayload {
        action: SignedAction::ClientCharge {
            new_tokens_used: 10,
        },
        query_id: 9,
        expected_address: a(1),
    }
    .sign(&key, a(2))
    .unwrap();
    let good = m.to_cell().unwrap();
    // Same payload, other outer query id.
    let mut b = CellBuilder::new();
    b.store_u32(32, op::EXT_CLIENT_CHARGE_SIGNED).unwrap();
    b.store_u64(64, 10).unwrap();
    let mut p = good.parser();
    p.load_bits(96).unwrap();
    b.store_remaining_bits(&mut p).unwrap();
    b.store_references(good.references()).unwrap();
    assert!(matches!(
        ClientMessage::from_cell(&b.build().unwrap()),
        Err(CodecError::SignedPayloadMismatch {
            query_id: 10,
            payload_query_id: 9,
            ..
        })
    ));
    // A charge is not a worker message.
    assert!(matches!(
        WorkerMessage::from_cell(&good),
        Err(CodecError::UnknownOp { .. })
    ));
    // Layout sizes of facts §8.
    assert_eq!(good.bit_len(), 32 + 64 + 267 + 512);
    assert_eq!(good.references()[0].bit_len(), 32 + 64 + 64 + 267);
    let close = SignedPayload {
        action: SignedAction::ProxyClose,
        query_id: 1,
        expected_address: a(1),
    };
    assert_eq!(close.to_cell().unwrap().bit_len(), 32 + 64 + 267);
}

#[test]
fn a_dictionary_that_unfolds_into_too_many_leaves_is_refused() {
    // A 256-bit-key dictionary whose forks share one child: 2^20 leaves from 21 cells.
    let mut node = {
        let mut b = CellBuilder::new();
        // hml_same, 0 bits of length 236: label of 236 zeros in `#<= 236` (8 bits).
        b.store_u8(3, 0b110).unwrap().store_u8(8, 236).unwrap();
        Arc::new(b.build().unwrap())
    };
    for _ in 0..20 {
        // An empty short label (`0` + `0`), then two refs to the same subtree.
        let mut b = CellBuilder::new();
        b.store_u8(2, 0).unwrap();
        b.store_reference(&node)
            .unwrap()
            .store_reference(&node)
            .unwrap();
        node = Arc::new(b.build().unwrap());
    }
    let mut data = CellBuilder::new();
    data.store_bit(true)
        .unwrap()
        .store_reference(&node)
        .unwrap();
    data.store_bit(false).unwrap().store_u32(32, 0).unwrap();
    data.store_bit(false).unwrap().store_bit(false).unwrap();
    let root = CellBuilder::new()
        .store_address(&a(1))
        .unwrap()
        .store_u32(32, 0)
        .unwrap()
        .store_child(data.build().unwrap())
        .unwrap()
        .store_child(sample_params().to_cell().unwrap())
        .unwrap()
        .build()
        .unwrap();
    assert!(matches!(
        RootData::from_cell(&root),
        Err(CodecError::Dictionary {
            reason: "too many entries",
            ..
        })
    ));
}

#[test]
fn root_dictionaries_round_trip_with_dense_and_sparse_keys() {
    let mut root = RootData::new(a(9), sample_params());
    for seqno in 1..=40u32 {
        root.registered_proxies.insert(
            seqno,
            ProxyEntry::new(&format!("10.0.0.{seqno}:8000")).unwrap(),
        );
    }
    root.registered_proxies.remove(&7);
    root.last_proxy_seqno = 40;
    for b in 0..=255u8 {
        root.worker_hashes.insert([b; 32]);
    }
    root.model_hashes.insert([0; 32]);
    root.model_hashes.insert([0xff; 32]);
    let cell = root.to_cell().unwrap();
    let back = RootData::from_cell(&cell).unwrap();
    assert_eq!(back, root);
    assert_eq!(back.to_cell().unwrap(), cell);
    let entry = ProxyEntry::new("1.2.3.4:5 6.7.8.9:10").unwrap();
    assert_eq!(entry.endpoints(), ("1.2.3.4:5", "6.7.8.9:10"));

    // An entry of type 1 (or with bits after its text) is set aside, not fatal: the others
    // still parse, and the cell rebuilds bit for bit.
    let type_one = Writer::new()
        .bit(true)
        .unwrap()
        .uint(7, 3)
        .unwrap()
        .bytes(b"abc")
        .unwrap()
        .build()
        .unwrap();
    let trailing = Writer::new()
        .bit(false)
        .unwrap()
        .uint(7, 1)
        .unwrap()
        .bytes(b"x")
        .unwrap()
        .bit(true)
        .unwrap()
        .build()
        .unwrap();
    root.unusable_proxies.insert(7, type_one);
    root.unusable_proxies.insert(41, trailing);
    let cell = root.to_cell().unwrap();
    let back = RootData::from_cell(&cell).unwrap();
    assert_eq!(back.registered_proxies.len(), 39);
    assert_eq!(back.unusable_proxies.len(), 2);
    assert_eq!(back, root);
    assert_eq!(back.to_cell().unwrap(), cell);
    root.registered_proxies
        .insert(7, ProxyEntry::new("1.1.1.1:1").unwrap());
    assert!(root.to_cell().is_err(), "one seqno cannot be both");
    assert!(ProxyEntry::new(&"x".repeat(128)).is_err());
}

#[test]
fn derived_addresses_follow_the_params_variants() {
    let code = |b: u8| -> ArcCell {
        Arc::new(CellBuilder::new().store_u8(8, b).unwrap().build().unwrap())
    };
    let root_params = Params {
        proxy_code: Some(code(1)),
        worker_code: Some(code(2)),
        client_code: Some(code(3)),
        ..sample_params()
    };
    assert_eq!(root_params.variant(), 7);
    assert_eq!(root_params.for_proxy().variant(), 6);
    assert_eq!(root_params.without_code().variant(), 0);
    let proxy = proxy_contract(&a(1), &root_params, &a(2), &[3; 32]).unwrap();
    let proxy_data = ProxyData::from_cell(&proxy.data).unwrap();
    assert_eq!(proxy_data.params.variant(), 6);
    let proxy_address = proxy.address().unwrap();
    assert_eq!(
        proxy_address,
        TonAddress::derive(0, proxy.code.clone(), proxy.data.clone()).unwrap()
    );
    // The client derived from the root's params and from the proxy's params is the same.
    let from_root = client_contract(&proxy_address, &root_params, &[3; 32], &a(4)).unwrap();
    let from_proxy = client_contract(&proxy_address, &proxy_data.params, &[3; 32], &a(4)).unwrap();
    assert_eq!(from_root, from_proxy);
    let client = ClientData::from_cell(&from_root.data).unwrap();
    assert_eq!(client.stake, root_params.min_client_stake);
    assert_eq!(client.params.variant(), 0);
    let worker = worker_contract(&proxy_address, &root_params, &[3; 32], &a(4)).unwrap();
    assert_ne!(worker.address().unwrap(), from_root.address().unwrap());
    // A params change moves every address.
    let bumped = Params {
        params_version: 2,
        ..root_params.clone()
    };
    assert_ne!(
        proxy_contract(&a(1), &bumped, &a(2), &[3; 32])
            .unwrap()
            .address()
            .unwrap(),
        proxy_address
    );
    // No client code, no client address.
    assert_eq!(
        client_contract(&proxy_address, &sample_params(), &[3; 32], &a(4)),
        Err(CodecError::MissingCode("client"))
    );
    let wallet = wallet_contract(code(5), &[6; 32], &a(7)).unwrap();
    assert_eq!(WalletData::from_cell(&wallet.data).unwrap().seqno, 0);
    let deployment = address::Deployment::from_root(a(1), &RootData::new(a(8), root_params));
    assert_eq!(
        deployment.client(&a(2), &[3; 32], &a(4)).unwrap(),
        from_root
    );
}
