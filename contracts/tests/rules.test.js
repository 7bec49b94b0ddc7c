// One sandbox test per rule and rejection of docs/payments.md, plus what the vectors cannot say
// (message formats, addresses, authentication of internal notifications, gas handling).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Address, beginCell, Cell, toNano } from '@ton/core';
import {
    CODES, EXIT, GAS, OP, START_TIME, World, body, clientData, keyOf, paramsCell, readParams, signedBody, stateInit, stringify,
} from './lib.js';

const PARAMS = {
    price_per_token: 20, worker_fee_per_token: 19, prompt_multiplier: 10000, cached_multiplier: 10000,
    completion_multiplier: 10000, reasoning_multiplier: 10000, proxy_close_delay: 86400,
    client_close_delay: 86400, min_proxy_stake: 1000000, min_client_stake: 1000,
};

function ok(out) {
    assert.equal(out.failure, null, `unexpected failure ${stringify(out.failure)}`);
    return out;
}

/** Runs `fn`, which must fail with `code` and leave every observable value as it was. */
async function rejects(w, code, fn) {
    const before = stringify(await w.snapshot());
    const out = await fn();
    assert.equal(out.failure?.code, EXIT[code] ?? code, `exit code (got ${stringify(out.failure)})`);
    assert.equal(stringify(await w.snapshot()), before, 'a rejected operation changed something');
    return out;
}

/** A running proxy with client alice (100000, stake 10000) and worker bob. */
async function world({ stake = 1_000_000, params = PARAMS } = {}) {
    const w = await World.create(params);
    ok(await w.proxyDeploy(stake));
    ok(await w.clientDeploy('alice', 100000, 10000));
    ok(await w.workerDeploy('bob'));
    return w;
}

const alice = async (w) => (await w.clientOf('alice')).address;
const bob = async (w) => (await w.workerOf('bob')).address;

describe('addresses and initial data', () => {
    test('client and worker addresses computed from the documented initial data match the proxy contract', async () => {
        const w = await world();
        for (const name of ['alice', 'carol']) {
            const owner = (await w.wallet(name)).address;
            const args = [{ type: 'slice', cell: beginCell().storeAddress(owner).endCell() }];
            const c = (await w.get(w.proxy.address, 'get_client_address', args)).readAddress();
            assert.ok(c.equals((await w.clientOf(name)).address), `client ${name}`);
            const k = (await w.get(w.proxy.address, 'get_worker_address', args)).readAddress();
            assert.ok(k.equals((await w.workerOf(name)).address), `worker ${name}`);
        }
    });

    test('get methods return what was deployed', async () => {
        const w = await world();
        const r = await w.get(w.proxy.address, 'get_proxy_consts');
        assert.ok(r.readAddress().equals((await w.wallet('proxy')).address));
        assert.ok(r.readAddress().equals(w.root.address));
        assert.equal(r.readBigNumber(), BigInt('0x' + keyOf('proxy').publicKey.toString('hex')));
        assert.deepEqual(readParams(await w.get(w.proxy.address, 'get_params')), readParams(await w.get(w.root.address, 'get_params')));
        const codes = await w.get(w.proxy.address, 'get_codes');
        assert.ok(codes.readCell().equals(CODES.client));
        assert.ok(codes.readCell().equals(CODES.worker));
        const rc = await w.get(w.root.address, 'get_codes');
        assert.ok(rc.readCell().equals(CODES.proxy));
        const cc = await w.get(await alice(w), 'get_client_consts');
        assert.ok(cc.readAddress().equals((await w.wallet('alice')).address));
        assert.ok(cc.readAddress().equals(w.proxy.address));
        cc.readBigNumber();
        assert.equal(cc.readBigNumber(), 20n);
        assert.equal(cc.readBigNumber(), 86400n);
        assert.equal(cc.readBigNumber(), 1000n);
        const wc = await w.get(await bob(w), 'get_worker_consts');
        assert.ok(wc.readAddress().equals((await w.wallet('bob')).address));
        assert.ok(wc.readAddress().equals(w.proxy.address));
        wc.readBigNumber();
        assert.equal(wc.readBigNumber(), 19n);
        assert.ok((await w.get(w.root.address, 'get_owner')).readAddress().equals((await w.wallet('owner')).address));
        assert.ok((await w.get(w.root.address, 'get_params_cell')).readCell().equals(paramsCell(PARAMS)));
    });
});

describe('root', () => {
    test('owner-only updates; hash sets, proxy registry and params', async () => {
        const w = await World.create(PARAMS);
        const h = 0x11aan << 240n;
        for (const b of [
            body.root_add_hash(1, 0, h), body.root_remove_hash(2, 0, h), body.root_register_proxy(3, 7, '1.2.3.4:5'),
            body.root_unregister_proxy(4, 7), body.root_set_params(5, { ...PARAMS, price_per_token: 1 }),
        ]) {
            await rejects(w, 'not_owner', () => w.rootOp('mallory', b));
        }
        ok(await w.rootOp('owner', body.root_add_hash(6, 2, h)));
        ok(await w.rootOp('owner', body.root_add_hash(7, 2, h))); // twice: still one
        assert.equal((await w.rootState()).model_hashes, 1n);
        const has = async (kind, hash) => (await w.get(w.root.address, 'has_hash', [
            { type: 'int', value: BigInt(kind) }, { type: 'int', value: hash }])).readBoolean();
        assert.equal(await has(2, h), true);
        assert.equal(await has(1, h), false);
        ok(await w.rootOp('owner', body.root_remove_hash(8, 2, h)));
        ok(await w.rootOp('owner', body.root_remove_hash(9, 2, h))); // missing: nothing
        assert.equal((await w.rootState()).model_hashes, 0n);
        assert.equal(await has(2, h), false);
        await rejects(w, 'unknown_op', () => w.rootOp('owner', body.root_add_hash(10, 3, h)));

        ok(await w.rootOp('owner', body.root_register_proxy(11, 7, '10.0.0.1:5222')));
        ok(await w.rootOp('owner', body.root_register_proxy(12, 7, '10.0.0.2:5222'))); // replaces
        assert.equal((await w.rootState()).proxies, 1n);
        const ep = (await w.get(w.root.address, 'get_proxy_endpoint', [{ type: 'int', value: 7n }])).readCellOpt();
        assert.equal(ep.beginParse().loadStringTail(), '10.0.0.2:5222');
        ok(await w.rootOp('owner', body.root_unregister_proxy(13, 7)));
        assert.equal((await w.get(w.root.address, 'get_proxy_endpoint', [{ type: 'int', value: 7n }])).readCellOpt(), null);

        const next = { ...PARAMS, price_per_token: 30, min_client_stake: 5 };
        ok(await w.rootOp('owner', body.root_set_params(14, next)));
        assert.equal((await w.rootState()).params_version, 1n);
        assert.equal(readParams(await w.get(w.root.address, 'get_params')).price_per_token, 30n);
    });

    test('unknown op is 0xffff; an empty body is accepted', async () => {
        const w = await world();
        const junk = beginCell().storeUint(0xdeadbeef, 32).storeUint(0, 64).endCell();
        for (const to of [w.root.address, w.proxy.address, await alice(w), await bob(w)]) {
            await rejects(w, 'unknown_op', () => w.send('mallory', to, junk));
            ok(await w.send('mallory', to, beginCell().endCell()));
        }
    });
});

describe('proxy contract', () => {
    test('deploy: owner only, stake at least min_proxy_stake and brought with the message, once', async () => {
        const w = await World.create(PARAMS);
        await rejects(w, 'not_owner', () => w.proxyDeploy(1_000_000, { from: 'mallory' }));
        await rejects(w, 'insufficient_value', () => w.proxyDeploy(999_999));
        await rejects(w, 'insufficient_value', () => w.proxyDeploy(1_000_000, { value: 1_000_000n + toNano('0.02') }));
        assert.equal(await w.proxyState(), null);
        ok(await w.proxyDeploy(1_000_000));
        assert.equal((await w.proxyState()).stake, 1_000_000n);
        await rejects(w, 'wrong_state', () => w.proxyDeploy(1_000_000));
    });

    test('save_state: owner only, seqno strictly increasing, not after close', async () => {
        const w = await World.create(PARAMS);
        ok(await w.proxyDeploy(1_000_000));
        ok(await w.proxyOp('proxy', body.proxy_save_state(1, 5, 0xaan)));
        await rejects(w, 'stale_seqno', () => w.proxyOp('proxy', body.proxy_save_state(2, 5, 0xbbn)));
        await rejects(w, 'stale_seqno', () => w.proxyOp('proxy', body.proxy_save_state(3, 4, 0xaan)));
        await rejects(w, 'not_owner', () => w.proxyOp('mallory', body.proxy_save_state(4, 9, 0xaan)));
        ok(await w.proxyOp('proxy', body.proxy_save_state(5, 6, 0xccn)));
        const r = await w.get(w.proxy.address, 'get_saved_state');
        assert.equal(r.readBigNumber(), 6n);
        assert.equal(r.readBigNumber(), 0xccn);
        ok(await w.proxyOp('proxy', body.proxy_close(6)));
        await rejects(w, 'wrong_state', () => w.proxyOp('proxy', body.proxy_save_state(7, 8, 0xddn)));
    });

    test('close: owner only, refused with open clients or workers, pays stake + earned - paid_out, once', async () => {
        const w = await world();
        ok(await w.signed('charge_signed', await alice(w), 1000)); // earned 20000
        ok(await w.signed('worker_payout_signed', await bob(w), 1000)); // paid_out 19000
        await rejects(w, 'not_owner', () => w.proxyOp('mallory', body.proxy_close(1)));
        await rejects(w, 'open_contracts', () => w.proxyOp('proxy', body.proxy_close(2)));
        ok(await w.signed('grant_refund_signed', await alice(w), 1000));
        await rejects(w, 'open_contracts', () => w.proxyOp('proxy', body.proxy_close(3)));
        ok(await w.signed('worker_last_payout_signed', await bob(w), 1000));
        const paidBefore = w.paidTo('proxy');
        const out = ok(await w.proxyOp('proxy', body.proxy_close(4)));
        assert.equal(w.paidTo('proxy') - paidBefore, 1_000_000n + 20000n - 19000n);
        assert.equal(out.payouts.length, 1);
        assert.equal((await w.proxyState()).state, 'closed');
        await rejects(w, 'wrong_state', () => w.proxyOp('proxy', body.proxy_close(5)));
    });

    test('notifications are accepted only from this proxy\'s client and worker contracts (not_proxy)', async () => {
        const w = await world();
        const owner = (await w.wallet('alice')).address;
        const m = (await w.wallet('mallory')).address;
        const forged = [
            beginCell().storeUint(OP.proxy_client_opened, 32).storeUint(1, 64).storeAddress(owner).endCell(),
            beginCell().storeUint(OP.proxy_client_charged, 32).storeUint(1, 64).storeAddress(owner).storeCoins(5000n).storeAddress(m).endCell(),
            beginCell().storeUint(OP.proxy_client_closed, 32).storeUint(1, 64).storeAddress(owner).storeCoins(5000n).storeAddress(m).endCell(),
            beginCell().storeUint(OP.proxy_worker_opened, 32).storeUint(1, 64).storeAddress(owner).endCell(),
            beginCell().storeUint(OP.proxy_pay_worker, 32).storeUint(1, 64).storeUint(0, 64).storeUint(10, 64)
                .storeAddress(m).storeCoins(5000n).storeAddress(m).endCell(),
            beginCell().storeUint(OP.proxy_worker_closed, 32).storeUint(1, 64).storeUint(0, 64).storeUint(10, 64)
                .storeAddress(m).storeCoins(5000n).storeAddress(m).endCell(),
        ];
        for (const b of forged) {
            await rejects(w, 'not_proxy', () => w.send('mallory', w.proxy.address, b, { value: toNano('1') + 5000n }));
        }
    });
});

describe('client contract', () => {
    test('deploy: owner only, stake >= min_client_stake, amount >= stake, amount brought with the message', async () => {
        const w = await World.create(PARAMS);
        ok(await w.proxyDeploy(1_000_000));
        await rejects(w, 'not_owner', () => w.clientDeploy('alice', 5000, 1000, { from: 'mallory' }));
        await rejects(w, 'insufficient_value', () => w.clientDeploy('alice', 5000, 999));
        await rejects(w, 'insufficient_value', () => w.clientDeploy('alice', 999, 1000));
        await rejects(w, 'insufficient_value', () => w.clientDeploy('alice', 5000, 1000, { value: 5000n + toNano('0.02') }));
        ok(await w.clientDeploy('alice', 5000, 1000, { secretHash: 0x5ecn }));
        const s = await w.clientState('alice');
        assert.deepEqual([s.state, s.balance, s.stake, s.tokens_used, s.secret_hash], ['running', 5000n, 1000n, 0n, 0x5ecn]);
        assert.equal((await w.proxyState()).open_clients, 1n);
        await rejects(w, 'wrong_state', () => w.clientDeploy('alice', 5000, 1000));
    });

    test('deploy against a closed proxy is wrong_state and is undone: the owner gets everything back, no payout', async () => {
        const w = await World.create(PARAMS);
        ok(await w.proxyDeploy(1_000_000));
        ok(await w.proxyOp('proxy', body.proxy_close(1)));
        const wallet = await w.wallet('alice');
        const before = await wallet.getBalance();
        await rejects(w, 'wrong_state', () => w.clientDeploy('alice', 50000, 10000));
        assert.equal(await w.clientState('alice'), null);
        assert.equal(w.paidTo('alice'), 0n);
        // Only fees are lost (well under the 1 TON of gas attached).
        assert.ok(before - (await wallet.getBalance()) < toNano('0.05'));
        await rejects(w, 'wrong_state', () => w.workerDeploy('bob'));
        assert.equal(await w.workerState('bob'), null);
    });

    test('a client contract built with other params is refused by the proxy (not_proxy) and undone', async () => {
        const w = await World.create(PARAMS);
        ok(await w.proxyDeploy(1_000_000));
        const owner = (await w.wallet('alice')).address;
        const fake = stateInit(CODES.client, clientData({
            owner, proxy: w.proxy.address, publicKey: keyOf('proxy').publicKey, params: { ...PARAMS, price_per_token: 1 },
        }));
        w.clients.set('fake', fake);
        await rejects(w, 'not_proxy', () => w.send('alice', fake.address, body.client_deploy(1, 50000, 10000), {
            init: fake, value: 50000n + GAS,
        }));
        assert.equal((await w.get(fake.address, 'get_client_state')).readNumber(), 0);
        assert.equal((await w.proxyState()).open_clients, 0n);
    });

    test('top_up: anyone, not when closed, the amount must come with the message', async () => {
        const w = await world();
        ok(await w.clientOp('alice', 'mallory', body.top_up(1, 700), { value: toNano('1') + 700n }));
        assert.equal((await w.clientState('alice')).balance, 100700n);
        await rejects(w, 'insufficient_value', () => w.clientOp('alice', 'mallory', body.top_up(2, toNano('5')), { value: toNano('1') }));
        ok(await w.clientOp('alice', 'alice', body.owner_client_request_refund(3)));
        ok(await w.clientOp('alice', 'mallory', body.top_up(4, 300), { value: toNano('1') + 300n })); // closing: allowed
        assert.equal((await w.clientState('alice')).balance, 10300n);
        w.bc.now = START_TIME + 86400;
        ok(await w.clientOp('alice', 'alice', body.owner_client_request_refund(5)));
        await rejects(w, 'wrong_state', () => w.clientOp('alice', 'mallory', body.top_up(6, 1), { value: toNano('1') }));
    });

    test('increase_stake: owner, running, not decreasing, at most the balance', async () => {
        const w = await world();
        const inc = (from, s) => w.clientOp('alice', from, body.owner_client_increase_stake(1, s));
        await rejects(w, 'not_owner', () => inc('mallory', 20000));
        await rejects(w, 'not_increasing', () => inc('alice', 9999));
        await rejects(w, 'insufficient_value', () => inc('alice', 100001));
        ok(await inc('alice', 10000)); // equal is fine
        ok(await inc('alice', 100000));
        assert.equal((await w.clientState('alice')).stake, 100000n);
        ok(await w.clientOp('alice', 'alice', body.owner_client_request_refund(2)));
        await rejects(w, 'wrong_state', () => inc('alice', 100000));
    });

    test('withdraw: owner, running, not below the stake; pays exactly the amount as a payout message', async () => {
        const w = await world();
        const wd = (from, a) => w.clientOp('alice', from, body.owner_client_withdraw(77, a));
        await rejects(w, 'not_owner', () => wd('mallory', 1));
        await rejects(w, 'below_stake', () => wd('alice', 90001));
        const out = ok(await wd('alice', 90000));
        assert.equal(out.payouts.length, 1);
        assert.equal(out.payouts[0].value, 90000n);
        // The payout message: exactly `payout query_id`, non-bounceable, to the owner.
        const tx = out.result.transactions.find((t) => t.inMessage?.info?.dest?.equals?.((w.clients.get('alice')).address));
        const msg = [...tx.outMessages.values()].find((m) => m.body.beginParse().loadUint(32) === OP.payout);
        assert.ok(msg.info.dest.equals((await w.wallet('alice')).address));
        assert.equal(msg.info.bounce, false);
        const s = msg.body.beginParse();
        assert.equal(s.loadUint(32), OP.payout);
        assert.equal(s.loadUintBig(64), 77n);
        assert.equal(s.remainingBits + s.remainingRefs, 0);
        assert.equal((await w.clientState('alice')).balance, 10000n);
        await rejects(w, 'below_stake', () => wd('alice', 1));
    });

    test('register: owner only, sets the secret hash', async () => {
        const w = await world();
        await rejects(w, 'not_owner', () => w.clientOp('alice', 'mallory', body.owner_client_register(1, 0xabcn)));
        ok(await w.clientOp('alice', 'alice', body.owner_client_register(2, 0xabcn)));
        assert.equal((await w.clientState('alice')).secret_hash, 0xabcn);
    });

    test('charge: signature, op, target, monotonic tokens; pays min(due, balance) to the proxy contract', async () => {
        const w = await world();
        const a = await alice(w);
        await rejects(w, 'bad_signature', () => w.signed('charge_signed', a, 100, { signer: 'mallory' }));
        // A payload signed for another op (a grant_refund) is not a charge, and vice versa.
        await rejects(w, 'bad_signature', () => w.signed('charge_signed', a, 100, { payloadOp: 'grant_refund_signed' }));
        await rejects(w, 'bad_signature', () => w.signed('grant_refund_signed', a, 100, { payloadOp: 'charge_signed' }));
        ok(await w.clientDeploy('carol', 5000, 1000));
        await rejects(w, 'wrong_target', () => w.signed('charge_signed', a, 100, { target: (w.clients.get('carol')).address }));

        // A replay: the very same message, sent again by a stranger.
        const sender = await w.wallet('mallory');
        const msg = signedBody({ op: OP.charge_signed, queryId: 5, tokens: 100, target: a, secretKey: keyOf('proxy').secretKey, excessTo: sender.address });
        ok(await w.send('mallory', a, msg));
        await rejects(w, 'not_increasing', () => w.send('mallory', a, msg));
        await rejects(w, 'not_increasing', () => w.signed('charge_signed', a, 99));
        assert.equal((await w.clientState('alice')).balance, 98000n);
        assert.equal((await w.proxyState()).earned, 2000n);

        // More than the balance: the balance is all the proxy gets (the stake included).
        ok(await w.signed('charge_signed', a, 100000));
        const s = await w.clientState('alice');
        assert.equal(s.balance, 0n);
        assert.equal(s.tokens_used, 100000n);
        assert.equal((await w.proxyState()).earned, 100000n);
    });

    test('charge while closing is allowed; the close is two-phase with the delay', async () => {
        const w = await world();
        const a = await alice(w);
        const refund = (from = 'alice') => w.clientOp('alice', from, body.owner_client_request_refund(9));
        await rejects(w, 'not_owner', () => refund('mallory'));
        w.bc.now = START_TIME + 1000;
        ok(await refund());
        let s = await w.clientState('alice');
        assert.deepEqual([s.state, s.balance, s.unlock_time], ['closing', 10000n, BigInt(START_TIME + 1000 + 86400)]);
        assert.equal(w.paidTo('alice'), 90000n);
        await rejects(w, 'wrong_state', () => w.clientOp('alice', 'alice', body.owner_client_withdraw(1, 1)));
        ok(await w.signed('charge_signed', a, 100));
        await rejects(w, 'too_early', () => refund());
        w.bc.now = START_TIME + 1000 + 86399;
        await rejects(w, 'too_early', () => refund());
        w.bc.now = START_TIME + 1000 + 86400;
        ok(await refund());
        s = await w.clientState('alice');
        assert.deepEqual([s.state, s.balance], ['closed', 0n]);
        assert.equal(w.paidTo('alice'), 98000n);
        const p = await w.proxyState();
        assert.deepEqual([p.earned, p.open_clients], [2000n, 0n]);
        await rejects(w, 'wrong_state', () => refund());
        await rejects(w, 'wrong_state', () => w.signed('charge_signed', a, 200));
        await rejects(w, 'wrong_state', () => w.signed('grant_refund_signed', a, 200));
    });

    test('grant_refund: tokens >= tokens_used (equal is fine), charges, refunds the rest, closes', async () => {
        const w = await world();
        const a = await alice(w);
        ok(await w.signed('charge_signed', a, 500)); // 10000
        await rejects(w, 'not_increasing', () => w.signed('grant_refund_signed', a, 499));
        await rejects(w, 'bad_signature', () => w.signed('grant_refund_signed', a, 500, { signer: 'alice' }));
        ok(await w.signed('grant_refund_signed', a, 500, { from: 'alice' }));
        const s = await w.clientState('alice');
        assert.deepEqual([s.state, s.balance, s.tokens_used], ['closed', 0n, 500n]);
        assert.equal(w.paidTo('alice'), 90000n);
        const p = await w.proxyState();
        assert.deepEqual([p.earned, p.open_clients], [10000n, 0n]);
    });
});

describe('worker contract', () => {
    test('deploy: owner only, once; the proxy counts it', async () => {
        const w = await World.create(PARAMS);
        ok(await w.proxyDeploy(1_000_000));
        await rejects(w, 'not_owner', () => w.workerDeploy('bob', { from: 'mallory' }));
        ok(await w.workerDeploy('bob'));
        await rejects(w, 'wrong_state', () => w.workerDeploy('bob'));
        assert.equal((await w.proxyState()).open_workers, 1n);
    });

    test('payout: signed by the proxy key only, monotonic, paid by the proxy contract', async () => {
        const w = await world();
        const b = await bob(w);
        await rejects(w, 'bad_signature', () => w.signed('worker_payout_signed', b, 100, { signer: 'mallory', from: 'mallory' }));
        await rejects(w, 'bad_signature', () => w.signed('worker_payout_signed', b, 100, { signer: 'bob', from: 'bob' }));
        await rejects(w, 'bad_signature', () => w.signed('worker_payout_signed', b, 100, { payloadOp: 'charge_signed' }));
        { const a = await alice(w); await rejects(w, "wrong_target", () => w.signed("worker_payout_signed", b, 100, { target: a })); }
        await rejects(w, 'not_increasing', () => w.signed('worker_payout_signed', b, 0));
        const out = ok(await w.signed('worker_payout_signed', b, 100, { from: 'bob' }));
        assert.deepEqual(out.payouts.map((p) => p.value), [1900n]);
        await rejects(w, 'not_increasing', () => w.signed('worker_payout_signed', b, 100));
        assert.equal((await w.workerState('bob')).paid_tokens, 100n);
        assert.equal((await w.proxyState()).paid_out, 1900n);
        assert.equal(w.paidTo('bob'), 1900n);
    });

    test('insufficient_funds: refused by the proxy contract; the bounce restores paid_tokens (and state)', async () => {
        const w = await world();
        const b = await bob(w);
        // Funds: stake 1000000; 19 per token.
        ok(await w.signed('worker_payout_signed', b, 50000)); // 950000
        const before = await (await w.wallet('bob')).getBalance();
        await rejects(w, 'insufficient_funds', () => w.signed('worker_payout_signed', b, 60000, { from: 'bob' }));
        await rejects(w, 'insufficient_funds', () => w.signed('worker_last_payout_signed', b, 60000, { from: 'bob' }));
        const s = await w.workerState('bob');
        assert.deepEqual([s.state, s.paid_tokens], ['running', 50000n]);
        assert.ok(before - (await (await w.wallet('bob')).getBalance()) < toNano('0.1'), 'the gas came back');
        // The client's payment makes it possible.
        ok(await w.signed('charge_signed', await alice(w), 2500)); // earned 50000
        ok(await w.signed('worker_payout_signed', b, 52631)); // 49989
        assert.equal((await w.proxyState()).paid_out, 999989n);
        assert.equal(w.paidTo('bob'), 999989n);
    });

    test('last payout: tokens >= paid_tokens, closes, proxy open_workers - 1', async () => {
        const w = await world();
        const b = await bob(w);
        ok(await w.signed('worker_payout_signed', b, 100));
        await rejects(w, 'not_increasing', () => w.signed('worker_last_payout_signed', b, 99));
        ok(await w.signed('worker_last_payout_signed', b, 100));
        assert.equal((await w.workerState('bob')).state, 'closed');
        assert.equal((await w.proxyState()).open_workers, 0n);
        assert.equal(w.paidTo('bob'), 1900n);
        await rejects(w, 'wrong_state', () => w.signed('worker_payout_signed', b, 200));
        await rejects(w, 'wrong_state', () => w.signed('worker_last_payout_signed', b, 200));
    });
});

describe('gas', () => {
    test('contracts keep their logical amounts plus a small reserve; the rest of the gas goes back', async () => {
        const w = await world();
        const a = await alice(w);
        const b = await bob(w);
        ok(await w.signed('charge_signed', a, 1000));
        ok(await w.signed('worker_payout_signed', b, 1000));
        ok(await w.clientOp('alice', 'alice', body.owner_client_withdraw(1, 5000)));
        const bal = async (addr) => (await w.bc.getContract(addr)).balance;
        const p = await w.proxyState();
        const holdings = p.stake + p.earned - p.paid_out;
        const reserve = toNano('0.01');
        const slack = toNano('0.005');
        const check = (have, logical, what) => {
            assert.ok(have >= logical + reserve - slack, `${what}: ${have} < ${logical} + reserve`);
            assert.ok(have <= logical + reserve + slack, `${what}: ${have} keeps gas it should return`);
        };
        check(await bal(w.proxy.address), holdings, 'proxy');
        check(await bal(a), (await w.clientState('alice')).balance, 'client');
        check(await bal(b), 0n, 'worker');
        // A signed message's unused gas goes to excess_to: the submitter pays only fees.
        const m = await w.wallet('mallory');
        const before = await m.getBalance();
        ok(await w.signed('charge_signed', a, 1100, { from: 'mallory' }));
        assert.ok(before - (await m.getBalance()) < toNano('0.05'));
    });
});
