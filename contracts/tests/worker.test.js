// Worker contract (facts §7): signed payouts and the last payout, owner register, the closed state.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Cell, toNano } from '@ton/core';
import { internal } from '@ton/sandbox';
import {
    CODE, ERR, MODE, OP, PARAMS, STATE, STORAGE, World, expectExit, expectOk, head, keyOf, reservesOf, sentBy, txOn,
} from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const worker = () => w.worker.address;

/** Reads the worker_proxy_request of the worker's transaction. */
function reportOf(r) {
    const out = sentBy(expectOk(r, worker()));
    const m = out[0];
    assert.ok(m.dest.equals(w.proxy.address));
    assert.equal(m.op, OP.worker_proxy_request);
    assert.equal(m.bounce, true);
    const s = m.body.beginParse();
    s.skip(32 + 64);
    const rep = { msg: m, out, owner: s.loadAddress(), state: s.loadUint(2), tokens: s.loadUintBig(64) };
    const payload = s.loadMaybeRef();
    s.endParse();
    if (payload) {
        const ps = payload.beginParse();
        rep.payload = { op: ps.loadUint(32), workerPart: ps.loadCoins(), proxyPart: ps.loadCoins(), excessesTo: ps.loadAddress() };
        ps.endParse();
    } else {
        rep.payload = null;
    }
    return rep;
}

describe('worker get method and ignored messages', () => {
    test('get_cocoon_worker_data returns owner, proxy, key, state, tokens', async () => {
        const d = await w.workerData();
        assert.ok(d.owner.equals(w.addr.bob));
        assert.ok(d.proxy.equals(w.proxy.address));
        assert.equal(d.publicKey, BigInt('0x' + w.proxyKey.publicKey.toString('hex')));
        assert.deepEqual([d.state, d.tokens], [0, 0n]);
    });

    test('an empty body, do_not_process and bounced messages are ignored', async () => {
        assert.equal(sentBy(expectOk(await w.send(w.addr.eve, worker(), new Cell()), worker())).length, 0);
        assert.equal(sentBy(expectOk(await w.send(w.addr.eve, worker(), beginCell().storeUint(OP.do_not_process, 32).endCell()), worker())).length, 0);
        const body = beginCell().storeUint(0xffffffff, 32).storeUint(OP.worker_proxy_request, 32).endCell();
        const r = await w.bc.sendMessage(internal({ from: w.proxy.address, to: worker(), value: toNano('1'), body, bounced: true, bounce: false }));
        assert.equal(sentBy(expectOk(r, worker())).length, 0);
    });

    test('an unknown op fails with 1012', async () => {
        expectExit(await w.send(w.addr.bob, worker(), head(0x9999, 1n).endCell()), worker(), ERR.unknown_op);
    });
});

describe('worker payouts', () => {
    test('payout: worker_part = delta x fee and proxy_part = delta x (price - fee) go to the proxy contract (mode 128)', async () => {
        const q = w.nextQueryId();
        const r = await w.payout(1000n, { queryId: q, from: w.addr.eve, excessesTo: w.addr.submitter });
        const rep = reportOf(r);
        assert.deepEqual([rep.msg.queryId, rep.msg.mode], [q, MODE.carryAllBalance]);
        assert.ok(rep.owner.equals(w.addr.bob));
        assert.deepEqual([rep.state, rep.tokens], [0, 1000n]);
        assert.equal(rep.payload.op, OP.worker_proxy_payout_request);
        assert.equal(rep.payload.workerPart, 1000n * PARAMS.workerFeePerToken);
        assert.equal(rep.payload.proxyPart, 1000n * (PARAMS.pricePerToken - PARAMS.workerFeePerToken));
        assert.ok(rep.payload.excessesTo.equals(w.addr.submitter));
        assert.equal((await w.workerData()).tokens, 1000n);
        // The proxy contract pays the worker owner and keeps the commission.
        const paid = sentBy(expectOk(r, w.proxy.address));
        assert.deepEqual([paid[0].op, paid[0].value, paid[0].queryId], [OP.payout, 19000n, q]);
        assert.ok(paid[0].dest.equals(w.addr.bob));
        assert.equal((await w.proxyData()).balance, 1000n);
        // A second payout pays only the delta.
        const rep2 = reportOf(await w.payout(1500n));
        assert.equal(rep2.payload.workerPart, 500n * PARAMS.workerFeePerToken);
    });

    test('payout needs strictly more than 0.1 TON (exactly 0.1 fails with 1003)', async () => {
        expectExit(await w.payout(10n, { value: toNano('0.1') }), worker(), ERR.low_msg_value);
        expectOk(await w.payout(10n, { value: toNano('0.1') + 1n }), worker());
    });

    test('payout is strict: the same or a lower count fails with 1000', async () => {
        expectOk(await w.payout(10n), worker());
        expectExit(await w.payout(10n), worker(), ERR.old_message);
        expectExit(await w.payout(9n), worker(), ERR.old_message);
    });

    test('payout rejects a bad signature (1007), a format mismatch (1005), another target (1015)', async () => {
        expectExit(await w.payout(10n, { secretKey: keyOf('eve').secretKey }), worker(), ERR.bad_signature);
        expectExit(await w.payout(10n, { payloadOp: OP.ext_worker_last_payout_request_signed }), worker(), ERR.signed_msg_format_mismatch);
        expectExit(await w.payout(10n, { queryId: 3n, payloadQueryId: 4n }), worker(), ERR.signed_msg_format_mismatch);
        expectExit(await w.payout(10n, { target: w.client.address }), worker(), ERR.expected_my_address);
        expectExit(await w.payout(10n, { target: w.workerOf(w.addr.eve).address }), worker(), ERR.expected_my_address);
    });

    test('payout checks value and target before the token count', async () => {
        expectOk(await w.payout(10n), worker());
        expectExit(await w.payout(5n, { value: toNano('0.1') }), worker(), ERR.low_msg_value);
        expectExit(await w.payout(5n, { target: w.client.address }), worker(), ERR.expected_my_address);
    });

    test('last payout is non-strict, closes the worker and keeps only 0.01 TON', async () => {
        expectOk(await w.payout(10n), worker());
        expectExit(await w.payout(9n, { last: true }), worker(), ERR.old_message);
        const r = await w.payout(10n, { last: true });
        const rep = reportOf(r);
        assert.deepEqual([rep.state, rep.tokens, rep.payload.workerPart, rep.payload.proxyPart], [STATE.closed, 10n, 0n, 0n]);
        assert.deepEqual(reservesOf(txOn(r, worker())), [{ mode: 0, amount: STORAGE }]);
        assert.equal(await w.balanceOf(worker()), STORAGE);
        assert.deepEqual(Object.values(await w.workerData()).slice(3), [STATE.closed, 10n]);
    });

    test('a closed worker answers every message with 1006, unknown ops included', async () => {
        expectOk(await w.payout(10n, { last: true }), worker());
        expectExit(await w.payout(20n), worker(), ERR.closed);
        expectExit(await w.payout(20n, { last: true }), worker(), ERR.closed);
        expectExit(await w.send(w.addr.bob, worker(), head(OP.owner_worker_register, 1n).storeAddress(w.addr.bob).endCell()), worker(), ERR.closed);
        expectExit(await w.send(w.addr.bob, worker(), head(0x9999, 1n).endCell()), worker(), ERR.closed);
        // Still ignored: empty bodies and do_not_process.
        expectOk(await w.send(w.addr.bob, worker(), new Cell()), worker());
    });
});

describe('worker register', () => {
    const register = (from = w.addr.bob, value = toNano('0.5'), q = w.nextQueryId()) =>
        w.send(from, worker(), head(OP.owner_worker_register, q).storeAddress(w.addr.submitter).endCell(), value);

    test('register sends worker_proxy_request without payload (1 nanoTON, mode 1), then excesses', async () => {
        const q = w.nextQueryId();
        const rep = reportOf(await register(w.addr.bob, toNano('0.5'), q));
        assert.equal(rep.payload, null);
        assert.deepEqual([rep.msg.value, rep.msg.mode, rep.msg.queryId, rep.state, rep.tokens], [1n, MODE.payFeesSeparately, q, 0, 0n]);
        assert.deepEqual([rep.out[1].op, rep.out[1].queryId, rep.out[1].mode], [OP.excesses, q, MODE.carryAllBalance]);
        assert.ok(rep.out[1].dest.equals(w.addr.submitter));
    });

    test('register: value > 0.1 TON (1003) is checked before the owner (1010)', async () => {
        expectExit(await register(w.addr.eve, toNano('0.1')), worker(), ERR.low_msg_value);
        expectExit(await register(w.addr.eve), worker(), ERR.expected_message_from_owner);
        expectExit(await register(w.addr.bob, toNano('0.1')), worker(), ERR.low_msg_value);
    });

    test('register checks the owner before reading the rest of the body', async () => {
        const r = await w.send(w.addr.eve, worker(), head(OP.owner_worker_register, 1n).endCell(), toNano('0.5'));
        expectExit(r, worker(), ERR.expected_message_from_owner);
        const r2 = await w.send(w.addr.bob, worker(), head(OP.owner_worker_register, 1n).endCell(), toNano('0.5'));
        expectExit(r2, worker(), ERR.cell_underflow);
    });
});

describe('worker params struct version', () => {
    test('a payout with params of struct version != 3 fails with 1008', async () => {
        const k = w.workerOf(w.addr.eve, { params: { ...PARAMS, structVersion: 0 } });
        await w.deploy(k, toNano('1'));
        expectExit(await w.payout(10n, { to: k.address }), k.address, ERR.stored_data_damaged);
    });
});
