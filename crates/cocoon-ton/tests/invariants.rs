//! Random operation sequences against the native rules: no money is created or destroyed, a
//! refused message changes nothing, and what clients paid equals what workers got plus the
//! proxy's commission.

use cocoon_ton::messages::{Body, ProxyKey, SignedPayload};
use cocoon_ton::ops::{op, ContractStatus, Params};
use cocoon_ton::rules::{Init, Message, World};
use cocoon_ton::{Coins, Wallet};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    TopUp(usize, u64),
    Withdraw(usize, u64),
    Stake(usize, u64),
    Refund(usize),
    Charge(usize, u64, bool),
    GrantRefund(usize, u64),
    Payout(usize, u64, bool),
    Wait(u32),
    ProxyClose,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..50_000u64).prop_map(|(c, a)| Op::TopUp(c, a)),
        (0..3usize, 0..50_000u64).prop_map(|(c, a)| Op::Withdraw(c, a)),
        (0..3usize, 0..80_000u64).prop_map(|(c, a)| Op::Stake(c, a)),
        (0..3usize).prop_map(Op::Refund),
        (0..3usize, 0..5_000u64, any::<bool>()).prop_map(|(c, t, f)| Op::Charge(c, t, f)),
        (0..3usize, 0..5_000u64).prop_map(|(c, t)| Op::GrantRefund(c, t)),
        (0..2usize, 0..8_000u64, any::<bool>()).prop_map(|(w, t, l)| Op::Payout(w, t, l)),
        (0..200_000u32).prop_map(Op::Wait),
        Just(Op::ProxyClose),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn money_is_conserved(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let owner = Wallet::from_seed(&[0; 32]);
        let operator = Wallet::from_seed(&[1; 32]);
        let signer = ProxyKey::from_seed(&[2; 32]);
        let forger = ProxyKey::from_seed(&[3; 32]);
        let clients: Vec<Wallet> = (10..13).map(|i| Wallet::from_seed(&[i; 32])).collect();
        let workers: Vec<Wallet> = (20..22).map(|i| Wallet::from_seed(&[i; 32])).collect();
        let params = Params { min_proxy_stake: 10_000, min_client_stake: 1_000, ..Params::default() };
        let mut world = World::new(owner.address().clone(), params, 1_700_000_000);
        for w in [&operator].into_iter().chain(&clients).chain(&workers) {
            world.mint(w.address(), Coins::ton(1));
        }
        let supply = world.total_supply();
        let pinit = Init::Proxy { owner: operator.address().clone(), public_key: signer.public_key() };
        let proxy = pinit.address(&world.root_address);
        let send = |world: &mut World, from: &Wallet, to, value: u128, body: Body, init| {
            world.execute(&Message { from: from.address().clone(), to, value: Coins(value), body: body.to_cell().unwrap(), init })
        };
        send(&mut world, &operator, proxy.clone(), 10_000, Body::ProxyDeploy { query_id: 0, stake: Coins(10_000) }, Some(pinit)).unwrap();
        let mut caddr = Vec::new();
        for c in &clients {
            let init = Init::Client { proxy: proxy.clone(), owner: c.address().clone() };
            let to = init.address(&world.root_address);
            send(&mut world, c, to.clone(), 100_000, Body::ClientDeploy { query_id: 0, amount: Coins(100_000), stake: Coins(5_000), secret_hash: [0; 32] }, Some(init)).unwrap();
            caddr.push(to);
        }
        let mut waddr = Vec::new();
        for w in &workers {
            let init = Init::Worker { proxy: proxy.clone(), owner: w.address().clone() };
            let to = init.address(&world.root_address);
            send(&mut world, w, to.clone(), 0, Body::WorkerDeploy { query_id: 0 }, Some(init)).unwrap();
            waddr.push(to);
        }
        prop_assert_eq!(world.total_supply(), supply);
        for o in ops {
            let before = world.clone();
            let result = match o {
                Op::TopUp(c, a) => send(&mut world, &clients[c], caddr[c].clone(), a.into(), Body::TopUp { query_id: 0, amount: Coins(a.into()) }, None),
                Op::Withdraw(c, a) => send(&mut world, &clients[c], caddr[c].clone(), 0, Body::Withdraw { query_id: 0, amount: Coins(a.into()) }, None),
                Op::Stake(c, a) => send(&mut world, &clients[c], caddr[c].clone(), 0, Body::IncreaseStake { query_id: 0, new_stake: Coins(a.into()) }, None),
                Op::Refund(c) => send(&mut world, &clients[c], caddr[c].clone(), 0, Body::RequestRefund { query_id: 0 }, None),
                Op::Charge(c, t, forged) => {
                    let key = if forged { &forger } else { &signer };
                    let m = SignedPayload { op: op::CHARGE_SIGNED, query_id: 0, tokens: t, target: caddr[c].clone() }.sign(key, operator.address().clone()).unwrap();
                    send(&mut world, &operator, caddr[c].clone(), 0, Body::Signed(m), None)
                }
                Op::GrantRefund(c, t) => {
                    let m = SignedPayload { op: op::GRANT_REFUND_SIGNED, query_id: 0, tokens: t, target: caddr[c].clone() }.sign(&signer, operator.address().clone()).unwrap();
                    send(&mut world, &operator, caddr[c].clone(), 0, Body::Signed(m), None)
                }
                Op::Payout(w, t, last) => {
                    let opcode = if last { op::WORKER_LAST_PAYOUT_SIGNED } else { op::WORKER_PAYOUT_SIGNED };
                    let m = SignedPayload { op: opcode, query_id: 0, tokens: t, target: waddr[w].clone() }.sign(&signer, operator.address().clone()).unwrap();
                    send(&mut world, &workers[w], waddr[w].clone(), 0, Body::Signed(m), None)
                }
                Op::Wait(s) => { world.now += s; Ok(Default::default()) }
                Op::ProxyClose => send(&mut world, &operator, proxy.clone(), 0, Body::ProxyClose { query_id: 0 }, None),
            };
            if result.is_err() {
                prop_assert_eq!(&world, &before, "a refused message changed the world");
            }
            prop_assert_eq!(world.total_supply(), supply, "money created or destroyed by {:?}", result);
            let p = &world.proxies[&proxy];
            // Every client's paid charges went to the proxy.
            let charged: u128 = caddr.iter().map(|a| u128::from(world.clients[a].tokens_used) * 20).sum();
            prop_assert!(p.earned <= charged);
            let paid_tokens: u128 = waddr.iter().map(|a| u128::from(world.workers[a].paid_tokens)).sum();
            prop_assert_eq!(p.paid_out, paid_tokens * 19);
            prop_assert!(p.status != ContractStatus::Closed || (p.open_clients == 0 && p.open_workers == 0));
            for c in caddr.iter().map(|a| &world.clients[a]) {
                prop_assert!(c.status != ContractStatus::Closed || c.balance == 0);
            }
        }
    }
}
