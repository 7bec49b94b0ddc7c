//! The network's own guarantees: a message loop ends in an error and changes nothing, bad input
//! is an error (never a panic) and changes nothing, a restored snapshot continues identically,
//! and code-less addresses behave as the sandbox's.

mod common;

use cocoon_tvm::{AccountStatus, Address, Error, InternalMessage, Network, StackValue};
use tycho_types::boc::Boc;
use tycho_types::cell::{Cell, CellBuilder, CellFamily};

const START: u32 = 1_750_000_000;
const TON: u128 = 1_000_000_000;

/// A contract that sends each inbound message's remaining value back to itself (send mode 64),
/// forever. Compiled with func-js 0.10 from:
///
/// ```text
/// () recv_internal(int balance, int value, cell in_msg, slice body) impure {
///   send_raw_message(begin_cell().store_uint(0x10, 6).store_slice(my_address())
///     .store_uint(0, 4 + 1 + 4 + 4 + 64 + 32 + 1 + 1).end_cell(), 64);
/// }
/// ```
const LOOP_CODE_HEX: &str = "b5ee9c72410102010023000114ff00f4a413f4bcf2c80b010028d35f04708010c8cb05f828cf16cb6ec98040fb00184a1c67";

/// The loop contract's `StateInit` (empty data), as a BOC.
fn loop_state_init() -> Vec<u8> {
    let code = hex::decode(LOOP_CODE_HEX).unwrap();
    cocoon_tvm::state_init(&code, &Boc::encode(Cell::empty_cell())).unwrap()
}

/// A cell of 32 bits: a valid BOC that is neither a StateInit nor a snapshot.
fn cell_of_u32(value: u32) -> Vec<u8> {
    let mut builder = CellBuilder::new();
    builder.store_u32(value).unwrap();
    Boc::encode(builder.build().unwrap())
}

fn plain(byte: u8) -> Address {
    Address::basechain([byte; 32])
}

fn value_to(to: Address, value: u128, bounce: bool) -> InternalMessage {
    InternalMessage {
        from: plain(1),
        to,
        value,
        bounce,
        body: Vec::new(),
        state_init: None,
    }
}

#[test]
fn a_message_loop_ends_with_an_error_and_changes_nothing() {
    let mut network = Network::new(START).unwrap();
    network
        .send_internal(&value_to(plain(9), TON, false))
        .unwrap();
    let before = network.snapshot().unwrap();
    let init = loop_state_init();
    let looping = Network::address_of(&init).unwrap();
    let deploy = InternalMessage {
        state_init: Some(init.clone()),
        ..value_to(looping, 1_000 * TON, true)
    };

    network.set_max_transactions(50);
    let error = network.send_internal(&deploy).unwrap_err();
    assert!(
        matches!(error, Error::TooManyTransactions { limit: 50 }),
        "{error}"
    );
    network.set_max_transactions(cocoon_tvm::DEFAULT_MAX_TRANSACTIONS);
    assert_eq!(
        network.snapshot().unwrap(),
        before,
        "a failed send must change nothing"
    );
    assert_eq!(network.balance(&looping).unwrap(), 0);

    // The default bound stops it too.
    let error = network.send_internal(&deploy).unwrap_err();
    assert!(
        matches!(error, Error::TooManyTransactions { limit } if limit == cocoon_tvm::DEFAULT_MAX_TRANSACTIONS)
    );
    assert_eq!(network.snapshot().unwrap(), before);

    // A trace that fits the bound goes through: one transaction for a plain transfer.
    network.set_max_transactions(1);
    let trace = network
        .send_internal(&value_to(plain(9), TON, false))
        .unwrap();
    assert_eq!(trace.transactions.len(), 1);
    assert_eq!(network.balance(&plain(9)).unwrap(), 2 * TON);
}

#[test]
fn bad_input_is_an_error_and_changes_nothing() {
    let mut network = Network::new(START).unwrap();
    network
        .send_internal(&value_to(plain(9), TON, false))
        .unwrap();
    let before = network.snapshot().unwrap();
    let garbage = b"not a bag of cells".to_vec();
    let truncated = before[..before.len() / 2].to_vec();

    let bad_body = InternalMessage {
        body: garbage.clone(),
        ..value_to(plain(9), TON, false)
    };
    assert!(matches!(
        network.send_internal(&bad_body),
        Err(Error::BadBoc {
            what: "message body",
            ..
        })
    ));
    let bad_init = InternalMessage {
        state_init: Some(truncated.clone()),
        ..value_to(plain(9), TON, false)
    };
    assert!(matches!(
        network.send_internal(&bad_init),
        Err(Error::BadBoc {
            what: "state init",
            ..
        })
    ));
    // A valid BOC whose cell is not a StateInit (a 32-bit body cell: underflow on parse).
    let not_init = InternalMessage {
        state_init: Some(cell_of_u32(1)),
        ..value_to(plain(9), TON, false)
    };
    assert!(matches!(
        network.send_internal(&not_init),
        Err(Error::Cell(_))
    ));
    assert!(matches!(
        network.send_external(&plain(9), &garbage, None),
        Err(Error::BadBoc { .. })
    ));
    let empty = Boc::encode(Cell::empty_cell());
    let other_workchain = Address {
        workchain: -1,
        hash: [9; 32],
    };
    assert!(matches!(
        network.send_internal(&value_to(other_workchain, TON, false)),
        Err(Error::UnsupportedWorkchain(_))
    ));
    assert!(matches!(
        network.run_get_method(&plain(9), "seqno", &[]),
        Err(Error::AccountNotActive(_))
    ));
    assert!(matches!(
        Network::restore(&garbage),
        Err(Error::BadBoc { .. })
    ));
    assert!(matches!(
        Network::restore(&truncated),
        Err(Error::BadBoc { .. })
    ));
    assert!(matches!(Network::restore(&empty), Err(Error::Cell(_))));
    assert!(matches!(
        Network::restore(&cell_of_u32(1)),
        Err(Error::BadSnapshot(_))
    ));
    assert!(matches!(
        Network::address_of(&garbage),
        Err(Error::BadBoc { .. })
    ));
    assert!(matches!(
        network.run_get_method(&plain(9), "seqno", &[StackValue::Cell(garbage.clone())]),
        Err(Error::AccountNotActive(_))
    ));
    // Time running backwards (before an account's last storage payment) is refused by the
    // executor: an error, and nothing changes.
    network.set_now(START - 1_000).unwrap();
    let error = network
        .send_internal(&value_to(plain(9), TON, false))
        .unwrap_err();
    assert!(matches!(error, Error::Executor(_)), "{error}");
    network.set_now(START).unwrap();
    assert_eq!(network.snapshot().unwrap(), before);

    // A code-less account rejects every external; as in the sandbox, the attempt uses up an
    // lt step and nothing else.
    assert!(matches!(
        network.send_external(&plain(9), &empty, None),
        Err(Error::ExternalNotAccepted {
            exit_code: None,
            ..
        })
    ));
    let lt = network.lt();
    let after = Network::restore(&network.snapshot().unwrap()).unwrap();
    assert_eq!(
        lt,
        Network::restore(&before).unwrap().lt() + cocoon_tvm::LT_STEP
    );
    assert_eq!(after.balance(&plain(9)).unwrap(), TON);
}

#[test]
fn code_less_addresses_accept_value_and_bounce_bounceable_messages() {
    let mut network = Network::new(START).unwrap();
    let account = network.account(&plain(7)).unwrap();
    assert_eq!(
        (account.status, account.balance, account.code),
        (AccountStatus::Uninit, 0, None)
    );

    let trace = network
        .send_internal(&value_to(plain(7), 3 * TON, false))
        .unwrap();
    assert_eq!(trace.transactions.len(), 1);
    assert_eq!(network.balance(&plain(7)).unwrap(), 3 * TON);

    let trace = network
        .send_internal(&value_to(plain(8), TON, true))
        .unwrap();
    assert_eq!(
        trace.transactions.len(),
        2,
        "the bounce comes back to the sender"
    );
    let bounce = &trace.transactions[0].out_messages[0];
    assert!(bounce.bounced && bounce.dest == Some(plain(1)));
    assert_eq!(network.balance(&plain(8)).unwrap(), 0);

    network.set_balance(&plain(7), 5 * TON).unwrap();
    assert_eq!(network.balance(&plain(7)).unwrap(), 5 * TON);
}

/// Replays the sandbox scenario on one network, snapshots it halfway, and checks that the
/// restored copy produces the same traces, get-method results and final state as the original.
#[test]
fn a_restored_snapshot_continues_identically() {
    let fixture = common::fixture();
    let steps = fixture["steps"].as_array().unwrap();
    let half = steps.len() / 2;
    let mut original = Network::new(common::now_of(&steps[0])).unwrap();
    original.set_rand_seed([3; 32]);
    original.set_max_transactions(77);
    for step in &steps[..half] {
        original.set_now(common::now_of(step)).unwrap();
        if let Some(message) = step.get("message") {
            let _ = common::send(&mut original, message);
        }
    }
    let snapshot = original.snapshot().unwrap();
    let mut restored = Network::restore(&snapshot).unwrap();
    assert_eq!(
        restored.snapshot().unwrap(),
        snapshot,
        "restore then snapshot is the identity"
    );
    assert_eq!(
        (restored.now(), restored.lt()),
        (original.now(), original.lt())
    );

    let mut compared = 0;
    for step in &steps[half..] {
        for network in [&mut original, &mut restored] {
            network.set_now(common::now_of(step)).unwrap();
        }
        if let Some(message) = step.get("message") {
            let a = common::send(&mut original, message).map_err(|e| e.to_string());
            let b = common::send(&mut restored, message).map_err(|e| e.to_string());
            assert_eq!(a, b, "step {}", step["name"]);
            compared += a.map_or(0, |trace| trace.transactions.len());
        } else {
            let get = &step["get"];
            let account = common::address(&get["account"]);
            let method = get["method"].as_str().unwrap();
            let args: Vec<StackValue> = get["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|arg| StackValue::Int(arg["value"].as_str().unwrap().parse().unwrap()))
                .collect();
            assert_eq!(
                original.run_get_method(&account, method, &args).unwrap(),
                restored.run_get_method(&account, method, &args).unwrap()
            );
        }
    }
    assert!(
        compared > 10,
        "the second half ran only {compared} transactions"
    );
    assert_eq!(original.snapshot().unwrap(), restored.snapshot().unwrap());
}
