// Proxy contract (facts §5): notifications from its client and worker contracts (authenticated
// by derived address), the pool's payouts, stake, closing with signed messages, text commands.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Cell, toNano } from '@ton/core';
import { internal } from '@ton/sandbox';
import {
    CODE, ERR, MODE, OP, PARAMS, STATE, STORAGE, World, expectExit, expectOk, head, keyOf, paramsCell, proxyData,
    reservesOf, sentBy, stateInit, textBody, txOn,
} from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const proxyAddr = () => w.proxy.address;

function workerRequest({ from = w.worker.address, owner = w.addr.bob, state = 0, tokens = 0n, payload = null, queryId = w.nextQueryId(), value = toNano('1') } = {}) {
    const body = head(OP.worker_proxy_request, queryId).storeAddress(owner).storeUint(state, 2).storeUint(tokens, 64).storeMaybeRef(payload).endCell();
    return w.send(from, proxyAddr(), body, value);
}

const payoutPayload = (workerPart, proxyPart, excessesTo = w.addr.submitter) =>
    beginCell().storeUint(OP.worker_proxy_payout_request, 32).storeCoins(workerPart).storeCoins(proxyPart).storeAddress(excessesTo).endCell();

const clientState = () => beginCell().storeUint(0, 2).storeCoins(0).storeCoins(0).storeUint(0, 64).storeUint(0, 256).endCell();

function clientRequest({ from = w.client.address, owner = w.addr.alice, payload = null, queryId = w.nextQueryId(), value = toNano('1') } = {}) {
    const body = head(OP.client_proxy_request, queryId).storeAddress(owner).storeRef(clientState()).storeMaybeRef(payload).endCell();
    return w.send(from, proxyAddr(), body, value);
}

const amountPayload = (op, amount, excessesTo = w.addr.submitter) =>
    beginCell().storeUint(op, 32).storeCoins(amount).storeAddress(excessesTo).endCell();

function proxyOp(op, fields = (b) => b, { from = w.addr.eve, value = toNano('1'), queryId = w.nextQueryId(), excessesTo = w.addr.submitter } = {}) {
    return w.send(from, proxyAddr(), fields(head(op, queryId)).storeAddress(excessesTo).endCell(), value);
}

const closeRequest = (opts = {}) => w.send(opts.from ?? w.addr.proxyOwner, proxyAddr(),
    w.signed(OP.ext_proxy_close_request_signed, opts.target ?? proxyAddr(), opts), opts.value ?? toNano('1'));
const closeComplete = (opts = {}) => w.send(opts.from ?? w.addr.proxyOwner, proxyAddr(),
    w.signed(OP.ext_proxy_close_complete_request_signed, opts.target ?? proxyAddr(), opts), opts.value ?? toNano('1'));

/** Earns `proxyPart` of commission for the proxy via a worker payout notification. */
async function earn(proxyPart) {
    expectOk(await workerRequest({ payload: payoutPayload(0n, proxyPart) }), proxyAddr());
}

async function setState(state, { unlockTs = 0, balance = 0n, stake = 0n } = {}) {
    const c = await w.bc.getContract(proxyAddr());
    const data = proxyData({ owner: w.addr.proxyOwner, publicKey: w.proxyKey.publicKey, root: w.root.address, state, balance, stake, unlockTs, params: w.proxyParams });
    c.account = { ...c.account, account: { ...c.account.account, storage: { ...c.account.account.storage, state: { type: 'active', state: { code: CODE.proxy, data } } } } };
}

describe('proxy get method and ignored messages', () => {
    test('get_cocoon_proxy_data returns the 12 documented values', async () => {
        const d = await w.proxyData();
        assert.ok(d.owner.equals(w.addr.proxyOwner));
        assert.ok(d.root.equals(w.root.address));
        assert.equal(d.publicKey, BigInt('0x' + w.proxyKey.publicKey.toString('hex')));
        assert.deepEqual({ ...d, owner: 0, root: 0, publicKey: 0 }, {
            owner: 0, root: 0, publicKey: 0, state: 0, balance: 0n, stake: 0n, unlockTs: 0,
            pricePerToken: 20n, workerFeePerToken: 19n, minProxyStake: PARAMS.minProxyStake,
            minClientStake: PARAMS.minClientStake, paramsVersion: 1,
        });
    });

    test('an empty body is a plain top-up', async () => {
        assert.equal(sentBy(expectOk(await w.send(w.addr.eve, proxyAddr(), new Cell()), proxyAddr())).length, 0);
    });

    test('a save-state commit (do_not_process, 416 bits) from anyone is ignored', async () => {
        const body = beginCell().storeUint(OP.do_not_process, 32).storeUint(123n, 64).storeUint(OP.proxy_save_state, 32)
            .storeInt(5, 32).storeUint(0xabcdefn, 256).endCell();
        assert.equal(body.bits.length, 416);
        const before = await w.dataOf(proxyAddr());
        // As the C++ proxy sends it (1 nanoTON), the message buys no gas: the compute phase is
        // skipped and the message only lands on the chain, which is all the runner needs.
        const r1 = await w.send(w.addr.proxyOwner, proxyAddr(), body, 1n);
        assert.equal(txOn(r1, proxyAddr()).description.computePhase.type, 'skipped');
        const r = await w.send(w.addr.eve, proxyAddr(), body, toNano('0.05'));
        assert.equal(sentBy(expectOk(r, proxyAddr())).length, 0);
        assert.ok((await w.dataOf(proxyAddr())).equals(before));
    });

    test('a bounced message is ignored', async () => {
        const body = beginCell().storeUint(0xffffffff, 32).storeUint(OP.owner_proxy_close, 32).endCell();
        const r = await w.bc.sendMessage(internal({ from: w.addr.eve, to: proxyAddr(), value: toNano('1'), body, bounced: true, bounce: false }));
        assert.equal(sentBy(expectOk(r, proxyAddr())).length, 0);
    });

    test('an unknown op fails with 1012', async () => {
        expectExit(await proxyOp(0x7777), proxyAddr(), ERR.unknown_op);
    });
});

describe('proxy: worker notifications', () => {
    test('a notification without payload is accepted from anyone and changes nothing', async () => {
        const before = await w.dataOf(proxyAddr());
        const r = await workerRequest({ from: w.addr.eve, owner: w.addr.eve, tokens: 5n });
        assert.equal(sentBy(expectOk(r, proxyAddr())).length, 0);
        assert.ok((await w.dataOf(proxyAddr())).equals(before));
    });

    test('payout request: pays worker_part to the worker owner (mode 1), keeps proxy_part as commission, returns the excess', async () => {
        const q = w.nextQueryId();
        const before = await w.balanceOf(proxyAddr());
        const r = await workerRequest({ payload: payoutPayload(toNano('0.19'), toNano('0.01')), queryId: q, value: toNano('0.5') });
        const tx = expectOk(r, proxyAddr());
        const out = sentBy(tx);
        assert.equal(out.length, 2);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].value, out[0].mode, out[0].bounce], [OP.payout, q, toNano('0.19'), MODE.payFeesSeparately, false]);
        assert.ok(out[0].dest.equals(w.addr.bob));
        assert.deepEqual([out[1].op, out[1].queryId, out[1].mode, out[1].bounce], [OP.excesses, q, MODE.carryAllBalance, false]);
        assert.ok(out[1].dest.equals(w.addr.submitter));
        assert.equal((await w.proxyData()).balance, toNano('0.01'));
        // The pool paid worker_part: it keeps what it had minus worker_part (plus storage due).
        assert.equal(reservesOf(tx)[0].amount >= before - toNano('0.19'), true);
        assert.ok((await w.balanceOf(proxyAddr())) >= before - toNano('0.19'));
    });

    test('payout request from another address fails with 1014', async () => {
        expectExit(await workerRequest({ from: w.addr.eve, payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
    });

    test('payout request from the worker contract of another owner fails with 1014', async () => {
        const other = w.workerOf(w.addr.eve);
        expectExit(await workerRequest({ from: other.address, owner: w.addr.bob, payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        expectOk(await workerRequest({ from: other.address, owner: w.addr.eve, payload: payoutPayload(1n, 1n) }), proxyAddr());
    });

    test('the worker address is derived from params without code, the proxy address and key', async () => {
        const withCode = stateInit(CODE.worker, (await import('./lib.js')).workerData({
            owner: w.addr.bob, proxy: proxyAddr(), publicKey: w.proxyKey.publicKey, params: w.proxyParams,
        }));
        expectExit(await workerRequest({ from: withCode.address, payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        const otherKey = w.workerOf(w.addr.bob, { key: keyOf('other') });
        expectExit(await workerRequest({ from: otherKey.address, payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        const otherProxy = w.workerOf(w.addr.bob, { proxy: w.root.address });
        expectExit(await workerRequest({ from: otherProxy.address, payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
    });

    test('payout request to a closed proxy fails with 1006; a closing one still pays', async () => {
        await setState(STATE.closing, { unlockTs: w.bc.now + 10 });
        expectOk(await workerRequest({ payload: payoutPayload(1n, 1n) }), proxyAddr());
        await setState(STATE.closed);
        expectExit(await workerRequest({ payload: payoutPayload(1n, 1n) }), proxyAddr(), ERR.closed);
    });

    test('an unknown worker payload op fails with 1012', async () => {
        const payload = beginCell().storeUint(0x1234, 32).endCell();
        expectExit(await workerRequest({ payload }), proxyAddr(), ERR.unknown_op);
    });

    test('a malformed worker payload fails with cell underflow', async () => {
        const payload = beginCell().storeUint(OP.worker_proxy_payout_request, 32).storeCoins(1n).storeCoins(1n).endCell();
        expectExit(await workerRequest({ payload }), proxyAddr(), ERR.cell_underflow);
    });
});

describe('proxy: client notifications', () => {
    test('a notification without payload is accepted from anyone and changes nothing', async () => {
        const r = await clientRequest({ from: w.addr.eve, owner: w.addr.eve });
        assert.equal(sentBy(expectOk(r, proxyAddr())).length, 0);
    });

    test('top-up to a normal proxy: the coins stay in the pool, the rest is returned', async () => {
        const before = await w.balanceOf(proxyAddr());
        const q = w.nextQueryId();
        const tx = expectOk(await clientRequest({ payload: amountPayload(OP.client_proxy_top_up, toNano('3')), value: toNano('3.5'), queryId: q }), proxyAddr());
        const out = sentBy(tx);
        assert.equal(out.length, 1);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].mode], [OP.excesses, q, MODE.carryAllBalance]);
        assert.ok(out[0].value < toNano('0.5'));
        assert.ok((await w.balanceOf(proxyAddr())) >= before + toNano('3'));
    });

    test('top-up to a closing proxy: the coins go back to the client owner (payout, mode 0)', async () => {
        await setState(STATE.closing, { unlockTs: w.bc.now + 10 });
        const q = w.nextQueryId();
        const r0 = await clientRequest({ payload: amountPayload(OP.client_proxy_top_up, toNano('3')), value: toNano('3.5'), queryId: q });
        const out = sentBy(expectOk(r0, proxyAddr()));
        assert.equal(out.length, 2);
        // Mode 0: the forwarding fee comes out of the 3 TON.
        assert.deepEqual([out[0].op, out[0].queryId, out[0].mode, out[0].bounce], [OP.payout, q, MODE.regular, false]);
        assert.ok(out[0].value < toNano('3') && out[0].value > toNano('2.99'));
        assert.equal(txOn(r0, proxyAddr()).outActions.filter((a) => a.type === 'sendMsg')[0].outMsg.info.value.coins, toNano('3'));
        assert.ok(out[0].dest.equals(w.addr.alice));
        assert.equal(out[1].op, OP.excesses);
    });

    test('register payload: accepted without parsing the nonce, nothing sent, nothing changed', async () => {
        const before = await w.dataOf(proxyAddr());
        const payload = beginCell().storeUint(OP.client_proxy_register, 32).storeUint(99n, 64).endCell();
        assert.equal(sentBy(expectOk(await clientRequest({ payload }), proxyAddr())).length, 0);
        const odd = beginCell().storeUint(OP.client_proxy_register, 32).storeUint(1, 3).endCell();
        expectOk(await clientRequest({ payload: odd }), proxyAddr());
        assert.ok((await w.dataOf(proxyAddr())).equals(before));
    });

    test('refund granted: pays the coins to the client owner (mode 1) and returns the excess', async () => {
        const q = w.nextQueryId();
        const tx = expectOk(await clientRequest({ payload: amountPayload(OP.client_proxy_refund_granted, toNano('2')), queryId: q }), proxyAddr());
        const out = sentBy(tx);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].value, out[0].mode, out[0].bounce], [OP.payout, q, toNano('2'), MODE.payFeesSeparately, false]);
        assert.ok(out[0].dest.equals(w.addr.alice));
        assert.equal(out[1].op, OP.excesses);
        assert.ok(out[1].dest.equals(w.addr.submitter));
    });

    test('refund granted on a closed proxy fails with 1006', async () => {
        await setState(STATE.closed);
        expectExit(await clientRequest({ payload: amountPayload(OP.client_proxy_refund_granted, 1n) }), proxyAddr(), ERR.closed);
    });

    test('forced refund is capped by the stake and taken from it', async () => {
        await setState(STATE.normal, { stake: toNano('1.5') });
        const tx = expectOk(await clientRequest({ payload: amountPayload(OP.client_proxy_refund_force, toNano('2')) }), proxyAddr());
        assert.equal(sentBy(tx)[0].value, toNano('1.5'));
        assert.equal(sentBy(tx)[0].mode, MODE.payFeesSeparately);
        assert.equal((await w.proxyData()).stake, 0n);
        await setState(STATE.normal, { stake: toNano('1.5') });
        const tx2 = expectOk(await clientRequest({ payload: amountPayload(OP.client_proxy_refund_force, toNano('1')) }), proxyAddr());
        assert.equal(sentBy(tx2)[0].value, toNano('1'));
        assert.equal((await w.proxyData()).stake, toNano('0.5'));
    });

    test('forced refund on a closed proxy fails with 1006', async () => {
        await setState(STATE.closed);
        expectExit(await clientRequest({ payload: amountPayload(OP.client_proxy_refund_force, 1n) }), proxyAddr(), ERR.closed);
    });

    test('a client payload from an address that is not the derived client contract fails with 1014', async () => {
        expectExit(await clientRequest({ from: w.addr.eve, payload: amountPayload(OP.client_proxy_top_up, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        const otherOwner = w.clientOf(w.addr.eve);
        expectExit(await clientRequest({ from: otherOwner.address, payload: amountPayload(OP.client_proxy_top_up, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        // The register payload is checked too.
        const payload = beginCell().storeUint(OP.client_proxy_register, 32).storeUint(1n, 64).endCell();
        expectExit(await clientRequest({ from: w.addr.eve, payload }), proxyAddr(), ERR.contract_address_mismatch);
    });

    test('the client address is derived with stake = min_client_stake and params without code', async () => {
        const { clientData } = await import('./lib.js');
        const stakeZero = stateInit(CODE.client, clientData({ owner: w.addr.alice, proxy: proxyAddr(), publicKey: w.proxyKey.publicKey, stake: 0n, params: paramsCell() }));
        expectExit(await clientRequest({ from: stakeZero.address, payload: amountPayload(OP.client_proxy_top_up, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        const withCode = stateInit(CODE.client, clientData({ owner: w.addr.alice, proxy: proxyAddr(), publicKey: w.proxyKey.publicKey, stake: PARAMS.minClientStake, params: w.proxyParams }));
        expectExit(await clientRequest({ from: withCode.address, payload: amountPayload(OP.client_proxy_top_up, 1n) }), proxyAddr(), ERR.contract_address_mismatch);
        expectOk(await clientRequest({ from: w.client.address, payload: amountPayload(OP.client_proxy_top_up, 1n) }), proxyAddr());
    });

    test('an unknown client payload op fails with 1012', async () => {
        expectExit(await clientRequest({ payload: beginCell().storeUint(0x4242, 32).endCell() }), proxyAddr(), ERR.unknown_op);
    });
});

describe('proxy: payout of commission and stake', () => {
    test('payout request pays the whole commission to the owner (mode 1) and zeroes it', async () => {
        await earn(toNano('4'));
        const q = w.nextQueryId();
        const tx = expectOk(await proxyOp(OP.ext_proxy_payout_request, (b) => b, { queryId: q }), proxyAddr());
        const out = sentBy(tx);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].value, out[0].mode, out[0].bounce], [OP.payout, q, toNano('4'), MODE.payFeesSeparately, false]);
        assert.ok(out[0].dest.equals(w.addr.proxyOwner));
        assert.deepEqual([out[1].op, out[1].queryId, out[1].mode], [OP.excesses, q, MODE.carryAllBalance]);
        assert.ok(out[1].dest.equals(w.addr.submitter));
        assert.equal((await w.proxyData()).balance, 0n);
    });

    test('payout request needs at least 0.1 TON attached (exactly 0.1 is enough)', async () => {
        expectExit(await proxyOp(OP.ext_proxy_payout_request, (b) => b, { value: toNano('0.1') - 1n }), proxyAddr(), ERR.low_msg_value);
        expectOk(await proxyOp(OP.ext_proxy_payout_request, (b) => b, { value: toNano('0.1') }), proxyAddr());
    });

    test('payout request on a closed proxy fails with 1006', async () => {
        await setState(STATE.closed);
        expectExit(await proxyOp(OP.ext_proxy_payout_request), proxyAddr(), ERR.closed);
    });

    test('increase stake adds the amount to the stake; the amount stays in the pool', async () => {
        const before = await w.balanceOf(proxyAddr());
        const tx = expectOk(await proxyOp(OP.ext_proxy_increase_stake, (b) => b.storeCoins(toNano('3')), { value: toNano('3.1') }), proxyAddr());
        assert.equal((await w.proxyData()).stake, toNano('3'));
        assert.equal(sentBy(tx)[0].op, OP.excesses);
        assert.ok((await w.balanceOf(proxyAddr())) >= before + toNano('3'));
    });

    test('increase stake needs amount + 0.1 TON attached', async () => {
        expectExit(await proxyOp(OP.ext_proxy_increase_stake, (b) => b.storeCoins(toNano('3')), { value: toNano('3.1') - 1n }), proxyAddr(), ERR.low_msg_value);
    });

    test('increase stake on a closed proxy fails with 1006', async () => {
        await setState(STATE.closed);
        expectExit(await proxyOp(OP.ext_proxy_increase_stake, (b) => b.storeCoins(1n)), proxyAddr(), ERR.closed);
    });
});

describe('proxy: closing', () => {
    test('signed close request: state closing, unlock at now + proxy delay, excess to the chosen address', async () => {
        const q = w.nextQueryId();
        const tx = expectOk(await closeRequest({ queryId: q, from: w.addr.eve }), proxyAddr());
        const out = sentBy(tx);
        assert.equal(out.length, 1);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].mode], [OP.excesses, q, MODE.carryAllBalance]);
        assert.ok(out[0].dest.equals(w.addr.submitter));
        const d = await w.proxyData();
        assert.equal(d.state, STATE.closing);
        assert.equal(d.unlockTs, w.bc.now + PARAMS.proxyDelay);
    });

    test('signed close request with a bad signature fails with 1007', async () => {
        expectExit(await closeRequest({ secretKey: keyOf('other').secretKey }), proxyAddr(), ERR.bad_signature);
    });

    test('signed close request whose payload op or query_id differs fails with 1005', async () => {
        expectExit(await closeRequest({ payloadOp: OP.ext_proxy_close_complete_request_signed }), proxyAddr(), ERR.signed_msg_format_mismatch);
        expectExit(await closeRequest({ queryId: 5n, payloadQueryId: 6n }), proxyAddr(), ERR.signed_msg_format_mismatch);
    });

    test('signed close request for another address fails with 1015', async () => {
        expectExit(await closeRequest({ target: w.client.address }), proxyAddr(), ERR.expected_my_address);
    });

    test('signed close request needs 0.1 TON (1003) and a normal state (1006)', async () => {
        expectExit(await closeRequest({ value: toNano('0.1') - 1n }), proxyAddr(), ERR.low_msg_value);
        expectOk(await closeRequest({ value: toNano('0.1') }), proxyAddr());
        expectExit(await closeRequest(), proxyAddr(), ERR.closed);
    });

    test('signed close request with bytes after the payload ref fails with cell underflow', async () => {
        const body = w.signed(OP.ext_proxy_close_request_signed, proxyAddr());
        const longer = beginCell().storeSlice(body.beginParse()).storeBit(0).endCell();
        expectExit(await w.send(w.addr.eve, proxyAddr(), longer), proxyAddr(), ERR.cell_underflow);
    });

    test('close complete before the unlock time fails with 1011; at the unlock time it pays everything but 0.01 TON to the owner', async () => {
        expectOk(await closeRequest(), proxyAddr());
        await earn(toNano('1'));
        const unlock = (await w.proxyData()).unlockTs;
        w.bc.now = unlock - 1;
        expectExit(await closeComplete(), proxyAddr(), ERR.not_unlocked_yet);
        w.bc.now = unlock;
        const q = w.nextQueryId();
        const tx = expectOk(await closeComplete({ queryId: q }), proxyAddr());
        const out = sentBy(tx);
        assert.equal(out.length, 1);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].mode, out[0].bounce], [OP.payout, q, MODE.carryAllBalance, false]);
        assert.ok(out[0].dest.equals(w.addr.proxyOwner));
        assert.deepEqual(reservesOf(tx), [{ mode: 0, amount: STORAGE }]);
        assert.equal(await w.balanceOf(proxyAddr()), STORAGE);
        const d = await w.proxyData();
        assert.deepEqual([d.state, d.balance, d.stake, d.unlockTs], [STATE.closed, 0n, 0n, 0]);
    });

    test('close complete on a normal proxy fails with 1006, and again after closing', async () => {
        expectExit(await closeComplete(), proxyAddr(), ERR.closed);
        expectOk(await closeRequest(), proxyAddr());
        w.bc.now += PARAMS.proxyDelay;
        expectOk(await closeComplete(), proxyAddr());
        expectExit(await closeComplete(), proxyAddr(), ERR.closed);
    });

    test('close complete checks signature (1007), format (1005), value (1003) and target (1015)', async () => {
        expectOk(await closeRequest(), proxyAddr());
        w.bc.now += PARAMS.proxyDelay;
        expectExit(await closeComplete({ secretKey: keyOf('x').secretKey }), proxyAddr(), ERR.bad_signature);
        expectExit(await closeComplete({ payloadOp: OP.ext_proxy_close_request_signed }), proxyAddr(), ERR.signed_msg_format_mismatch);
        expectExit(await closeComplete({ value: toNano('0.09') }), proxyAddr(), ERR.low_msg_value);
        expectExit(await closeComplete({ target: w.worker.address }), proxyAddr(), ERR.expected_my_address);
    });

    test('owner close: owner only (1010), after the value (1003) and state (1006) checks', async () => {
        expectExit(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.eve }), proxyAddr(), ERR.expected_message_from_owner);
        expectExit(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.eve, value: toNano('0.05') }), proxyAddr(), ERR.low_msg_value);
        const q = w.nextQueryId();
        const tx = expectOk(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.proxyOwner, queryId: q }), proxyAddr());
        assert.deepEqual(sentBy(tx).map((m) => [m.op, m.queryId]), [[OP.excesses, q]]);
        assert.equal((await w.proxyData()).state, STATE.closing);
        expectExit(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.eve }), proxyAddr(), ERR.closed);
    });

    test('there is no owner-only path from closing to closed', async () => {
        expectOk(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.proxyOwner }), proxyAddr());
        w.bc.now += PARAMS.proxyDelay + 10;
        expectExit(await proxyOp(OP.owner_proxy_close, (b) => b, { from: w.addr.proxyOwner }), proxyAddr(), ERR.closed);
        expectExit(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('c')), proxyAddr(), ERR.closed);
    });
});

describe('proxy: text commands', () => {
    test('"c" from the owner starts closing; the excess goes to the owner with query_id 0', async () => {
        const tx = expectOk(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('c')), proxyAddr());
        const out = sentBy(tx);
        assert.deepEqual(out.map((m) => [m.op, m.queryId, m.mode]), [[OP.excesses, 0n, MODE.carryAllBalance]]);
        assert.ok(out[0].dest.equals(w.addr.proxyOwner));
        assert.equal((await w.proxyData()).state, STATE.closing);
    });

    test('"c" checks value (1003), state (1006), then owner (1010)', async () => {
        expectExit(await w.send(w.addr.eve, proxyAddr(), textBody('c'), toNano('0.05')), proxyAddr(), ERR.low_msg_value);
        expectExit(await w.send(w.addr.eve, proxyAddr(), textBody('c')), proxyAddr(), ERR.expected_message_from_owner);
        await setState(STATE.closing, { unlockTs: w.bc.now + 5 });
        expectExit(await w.send(w.addr.eve, proxyAddr(), textBody('c')), proxyAddr(), ERR.closed);
    });

    test('"w" sends the commission plus the rest of the message value to the owner (payout, mode 128)', async () => {
        await earn(toNano('2'));
        const before = await w.balanceOf(proxyAddr());
        const tx = expectOk(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('w'), toNano('1')), proxyAddr());
        const out = sentBy(tx);
        assert.equal(out.length, 1);
        assert.deepEqual([out[0].op, out[0].queryId, out[0].mode, out[0].bounce], [OP.payout, 0n, MODE.carryAllBalance, false]);
        assert.ok(out[0].value > toNano('2.9') && out[0].value < toNano('3'));
        assert.equal((await w.proxyData()).balance, 0n);
        assert.ok((await w.balanceOf(proxyAddr())) >= before - toNano('2'));
    });

    test('"w" checks value (1003), state (1006) and owner (1010); it works while closing', async () => {
        expectExit(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('w'), toNano('0.09')), proxyAddr(), ERR.low_msg_value);
        expectExit(await w.send(w.addr.eve, proxyAddr(), textBody('w')), proxyAddr(), ERR.expected_message_from_owner);
        await setState(STATE.closing, { unlockTs: w.bc.now + 5 });
        expectOk(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('w')), proxyAddr());
        await setState(STATE.closed);
        expectExit(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('w')), proxyAddr(), ERR.closed);
    });

    test('another text command fails with 1013; a longer text fails with cell underflow', async () => {
        expectExit(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('x')), proxyAddr(), ERR.unknown_text_op);
        expectExit(await w.send(w.addr.proxyOwner, proxyAddr(), textBody('cc')), proxyAddr(), ERR.cell_underflow);
    });
});

describe('proxy: params struct version', () => {
    test('a proxy whose params are not struct version 3 fails with 1008 where it reads them', async () => {
        const bad = paramsCell({ ...PARAMS, structVersion: 4 }, { worker: CODE.worker, client: CODE.client });
        const proxy = w.proxyOf(w.addr.proxyOwner, w.proxyKey, bad);
        await w.deploy(proxy, toNano('5'));
        const worker = stateInit(CODE.worker, (await import('./lib.js')).workerData({ owner: w.addr.bob, proxy: proxy.address, publicKey: w.proxyKey.publicKey, params: paramsCell() }));
        const body = head(OP.worker_proxy_request, 1n).storeAddress(w.addr.bob).storeUint(0, 2).storeUint(0, 64).storeMaybeRef(payoutPayload(1n, 1n)).endCell();
        expectExit(await w.send(worker.address, proxy.address, body), proxy.address, ERR.stored_data_damaged);
        await assert.rejects(w.get(proxy.address, 'get_cocoon_proxy_data'), (e) => e.exitCode === ERR.stored_data_damaged);
        // Ops that do not read the params are unaffected.
        expectOk(await w.send(w.addr.eve, proxy.address, head(OP.ext_proxy_increase_stake, 1n).storeCoins(1n).storeAddress(w.addr.eve).endCell()), proxy.address);
    });
});
