// Client contract (facts §6): every op's happy path and rejections, in the documented order of
// checks, and the client_proxy_request each op sends to the proxy contract.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Cell, toNano } from '@ton/core';
import { internal } from '@ton/sandbox';
import {
    CODE, ERR, MODE, OP, PARAMS, STATE, STORAGE, World, clientData, expectExit, expectOk, head, keyOf, paramsCell,
    reservesOf, sentBy, stateInit, txOn,
} from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const client = () => w.client.address;
const TOKENS = (ton) => toNano(ton) / PARAMS.pricePerToken; // tokens worth `ton` TON

/** Reads the client_proxy_request the client sent (the first message of its transaction). */
function reportOf(r, to = client()) {
    const out = sentBy(expectOk(r, to));
    const m = out[0];
    assert.ok(m.dest.equals(w.proxy.address));
    assert.equal(m.op, OP.client_proxy_request);
    assert.equal(m.bounce, true);
    const s = m.body.beginParse();
    s.skip(32 + 64);
    const owner = s.loadAddress();
    const st = s.loadRef().beginParse();
    const state = { state: st.loadUint(2), balance: st.loadCoins(), stake: st.loadCoins(), tokensUsed: st.loadUintBig(64), secretHash: st.loadUintBig(256) };
    st.endParse();
    const payload = s.loadMaybeRef();
    s.endParse();
    let p = null;
    if (payload) {
        const ps = payload.beginParse();
        p = { op: ps.loadUint(32), rest: ps };
    }
    return { msg: m, out, owner, state, payload: p };
}

/** A client with `balance` TON deposited (topped up through the proxy). */
async function funded(balance = '5') {
    expectOk(await w.topUp(toNano(balance)), client());
}

async function setClient(fields) {
    const c = await w.bc.getContract(client());
    const data = clientData({
        owner: w.addr.alice, proxy: w.proxy.address, publicKey: w.proxyKey.publicKey, stake: PARAMS.minClientStake,
        params: paramsCell(), ...fields,
    });
    c.account = { ...c.account, account: { ...c.account.account, storage: { ...c.account.account.storage, state: { type: 'active', state: { code: CODE.client, data } } } } };
}

describe('client get method, address and ignored messages', () => {
    test('get_cocoon_client_data returns the 9 documented values; stake at deploy = min_client_stake', async () => {
        const d = await w.clientData();
        assert.ok(d.owner.equals(w.addr.alice));
        assert.ok(d.proxy.equals(w.proxy.address));
        assert.equal(d.publicKey, BigInt('0x' + w.proxyKey.publicKey.toString('hex')));
        assert.deepEqual([d.state, d.balance, d.stake, d.tokensUsed, d.unlockTs, d.secretHash], [0, 0n, PARAMS.minClientStake, 0n, 0, 0n]);
    });

    test('the client address derived off-chain is the one the proxy contract accepts', async () => {
        const r = await w.topUp(toNano('1'));
        expectOk(r, client());
        expectOk(r, w.proxy.address);
    });

    test('an empty body, do_not_process and bounced messages are ignored', async () => {
        assert.equal(sentBy(expectOk(await w.send(w.addr.eve, client(), new Cell()), client())).length, 0);
        assert.equal(sentBy(expectOk(await w.send(w.addr.eve, client(), beginCell().storeUint(OP.do_not_process, 32).endCell()), client())).length, 0);
        const body = beginCell().storeUint(0xffffffff, 32).storeUint(OP.client_proxy_request, 32).endCell();
        const r = await w.bc.sendMessage(internal({ from: w.proxy.address, to: client(), value: toNano('1'), body, bounced: true, bounce: false }));
        assert.equal(sentBy(expectOk(r, client())).length, 0);
    });

    test('unknown ops fail with 1012, owner_client_top_up_reopen included', async () => {
        expectExit(await w.ownerOp(0x5555), client(), ERR.unknown_op);
        expectExit(await w.ownerOp(OP.owner_client_top_up_reopen), client(), ERR.unknown_op);
    });
});

describe('client top-up', () => {
    test('ext top-up: balance += amount; top_up payload with everything above the reserve (mode 128)', async () => {
        const q = w.nextQueryId();
        const r = await w.topUp(toNano('2'), { from: w.addr.eve, excessesTo: w.addr.submitter, queryId: q });
        const rep = reportOf(r);
        assert.equal(rep.msg.queryId, q);
        assert.equal(rep.msg.mode, MODE.carryAllBalance);
        assert.ok(rep.owner.equals(w.addr.alice));
        assert.deepEqual(rep.state, { state: 0, balance: toNano('2'), stake: PARAMS.minClientStake, tokensUsed: 0n, secretHash: 0n });
        assert.equal(rep.payload.op, OP.client_proxy_top_up);
        assert.equal(rep.payload.rest.loadCoins(), toNano('2'));
        assert.ok(rep.payload.rest.loadAddress().equals(w.addr.submitter));
        assert.ok(rep.msg.value > toNano('2.6'));
        // The proxy keeps the amount and returns the rest to the excess address.
        const proxyOut = sentBy(expectOk(r, w.proxy.address));
        assert.equal(proxyOut[0].op, OP.excesses);
        assert.ok(proxyOut[0].dest.equals(w.addr.submitter));
        assert.equal((await w.clientData()).balance, toNano('2'));
    });

    test('top-up needs amount + 0.1 TON attached (exactly that is enough)', async () => {
        expectExit(await w.topUp(toNano('2'), { value: toNano('2.1') - 1n }), client(), ERR.low_msg_value);
        expectOk(await w.topUp(toNano('2'), { value: toNano('2.1') }), client());
    });

    test('top-up fails with 1001 when the contract cannot keep its 0.11 TON reserve', async () => {
        await w.setBalance(client(), toNano('0.05'));
        // value covers amount + 0.1, but not the missing reserve (0.11 - 0.05).
        expectExit(await w.topUp(toNano('2'), { value: toNano('2.15') }), client(), ERR.low_smc_balance);
        expectOk(await w.topUp(toNano('2'), { value: toNano('2.17') }), client());
    });

    test('top-up works while closing and fails with 1006 once closed', async () => {
        await setClient({ state: STATE.closing, unlockTs: w.bc.now + 5 });
        expectOk(await w.topUp(toNano('1')), client());
        await setClient({ state: STATE.closed });
        expectExit(await w.topUp(toNano('1')), client(), ERR.closed);
    });

    test('change_secret_hash_and_top_up: owner only (1010), sets the hash and tops up', async () => {
        const fields = (b) => b.storeCoins(toNano('1')).storeUint(0xbeefn, 256);
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash_and_top_up, fields, { from: w.addr.eve, value: toNano('1.2') }), client(), ERR.expected_message_from_owner);
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash_and_top_up, fields, { value: toNano('1.1') - 1n }), client(), ERR.low_msg_value);
        const rep = reportOf(await w.ownerOp(OP.owner_client_change_secret_hash_and_top_up, fields, { value: toNano('1.2') }));
        assert.equal(rep.state.secretHash, 0xbeefn);
        assert.equal(rep.state.balance, toNano('1'));
        assert.equal(rep.payload.op, OP.client_proxy_top_up);
        assert.equal(rep.msg.mode, MODE.carryAllBalance);
        const d = await w.clientData();
        assert.deepEqual([d.balance, d.secretHash], [toNano('1'), 0xbeefn]);
    });
});

describe('client owner ops', () => {
    test('register: register payload with the nonce (1 nanoTON, mode 1), then excesses', async () => {
        const q = w.nextQueryId();
        const r = await w.ownerOp(OP.owner_client_register, (b) => b.storeUint(0x1234567890n, 64), { queryId: q, excessesTo: w.addr.submitter });
        const rep = reportOf(r);
        assert.deepEqual([rep.msg.value, rep.msg.mode, rep.msg.queryId], [1n, MODE.payFeesSeparately, q]);
        assert.equal(rep.payload.op, OP.client_proxy_register);
        assert.equal(rep.payload.rest.loadUintBig(64), 0x1234567890n);
        assert.equal(rep.payload.rest.remainingBits, 0);
        assert.deepEqual([rep.out[1].op, rep.out[1].queryId, rep.out[1].mode], [OP.excesses, q, MODE.carryAllBalance]);
        assert.ok(rep.out[1].dest.equals(w.addr.submitter));
        // 1 nanoTON buys no gas: the proxy contract does not run, the proxy software reads the
        // nonce from the message itself.
        assert.equal(txOn(r, w.proxy.address).description.computePhase.type, 'skipped');
    });

    test('register: 1010 from a non-owner, 1003 below 0.1 TON, 1006 when closed', async () => {
        const nonce = (b) => b.storeUint(1n, 64);
        expectExit(await w.ownerOp(OP.owner_client_register, nonce, { from: w.addr.eve }), client(), ERR.expected_message_from_owner);
        expectExit(await w.ownerOp(OP.owner_client_register, nonce, { value: toNano('0.1') - 1n }), client(), ERR.low_msg_value);
        expectOk(await w.ownerOp(OP.owner_client_register, nonce, { value: toNano('0.1') }), client());
        await setClient({ state: STATE.closed });
        expectExit(await w.ownerOp(OP.owner_client_register, nonce), client(), ERR.closed);
    });

    test('change_secret_hash: owner only, sets the hash, info (no payload, 1 nanoTON, mode 1) and excesses', async () => {
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(7n, 256), { from: w.addr.eve }), client(), ERR.expected_message_from_owner);
        const rep = reportOf(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(7n, 256)));
        assert.equal(rep.payload, null);
        assert.deepEqual([rep.msg.value, rep.msg.mode], [1n, MODE.payFeesSeparately]);
        assert.equal(rep.state.secretHash, 7n);
        assert.equal(rep.out[1].op, OP.excesses);
        assert.equal((await w.clientData()).secretHash, 7n);
    });

    test('increase_stake: must grow (1003), owner only (1010); info and excesses, no TON moves', async () => {
        const stake = (s) => (b) => b.storeCoins(s);
        expectExit(await w.ownerOp(OP.owner_client_increase_stake, stake(PARAMS.minClientStake)), client(), ERR.low_msg_value);
        expectExit(await w.ownerOp(OP.owner_client_increase_stake, stake(toNano('3')), { from: w.addr.eve }), client(), ERR.expected_message_from_owner);
        const rep = reportOf(await w.ownerOp(OP.owner_client_increase_stake, stake(toNano('3'))));
        assert.equal(rep.payload, null);
        assert.equal(rep.state.stake, toNano('3'));
        assert.equal((await w.clientData()).stake, toNano('3'));
    });

    test('withdraw: refund_granted(balance - stake) with mode 128; balance = stake; the proxy pays the owner', async () => {
        await funded('5');
        const q = w.nextQueryId();
        const r = await w.ownerOp(OP.owner_client_withdraw, (b) => b, { queryId: q });
        const rep = reportOf(r);
        assert.equal(rep.msg.mode, MODE.carryAllBalance);
        assert.equal(rep.payload.op, OP.client_proxy_refund_granted);
        assert.equal(rep.payload.rest.loadCoins(), toNano('4'));
        assert.equal(rep.state.balance, PARAMS.minClientStake);
        const paid = sentBy(expectOk(r, w.proxy.address));
        assert.deepEqual([paid[0].op, paid[0].value, paid[0].queryId], [OP.payout, toNano('4'), q]);
        assert.ok(paid[0].dest.equals(w.addr.alice));
    });

    test('withdraw: 1009 (not 1010) from a non-owner; 1001 when balance <= stake; 1006 unless normal', async () => {
        await funded('5');
        expectExit(await w.ownerOp(OP.owner_client_withdraw, (b) => b, { from: w.addr.eve }), client(), ERR.expected_owner);
        await setClient({ balance: PARAMS.minClientStake });
        expectExit(await w.ownerOp(OP.owner_client_withdraw), client(), ERR.low_smc_balance);
        await setClient({ state: STATE.closing, balance: toNano('5'), unlockTs: w.bc.now + 10 });
        expectExit(await w.ownerOp(OP.owner_client_withdraw), client(), ERR.closed);
    });

    test('request_refund from normal: closing, unlock = now + client delay, the part above the stake comes back', async () => {
        await funded('5');
        const rep = reportOf(await w.ownerOp(OP.owner_client_request_refund));
        assert.equal(rep.payload.op, OP.client_proxy_refund_granted);
        assert.equal(rep.payload.rest.loadCoins(), toNano('4'));
        assert.deepEqual([rep.state.state, rep.state.balance], [STATE.closing, PARAMS.minClientStake]);
        const d = await w.clientData();
        assert.deepEqual([d.state, d.balance, d.unlockTs], [STATE.closing, PARAMS.minClientStake, w.bc.now + PARAMS.clientDelay]);
    });

    test('request_refund from normal with balance <= stake sends info instead', async () => {
        const rep = reportOf(await w.ownerOp(OP.owner_client_request_refund));
        assert.equal(rep.payload, null);
        assert.deepEqual([rep.msg.value, rep.msg.mode], [1n, MODE.payFeesSeparately]);
        assert.equal(rep.out[1].op, OP.excesses);
        assert.equal((await w.clientData()).state, STATE.closing);
    });

    test('request_refund while closing: strictly after unlock_ts, refund_force(balance), closed', async () => {
        await setClient({ state: STATE.closing, balance: toNano('1'), unlockTs: w.bc.now + 100 });
        w.bc.now += 100;
        expectExit(await w.ownerOp(OP.owner_client_request_refund), client(), ERR.not_unlocked_yet);
        w.bc.now += 1;
        const rep = reportOf(await w.ownerOp(OP.owner_client_request_refund));
        assert.equal(rep.payload.op, OP.client_proxy_refund_force);
        assert.equal(rep.payload.rest.loadCoins(), toNano('1'));
        assert.equal(rep.msg.mode, MODE.carryAllBalance);
        const d = await w.clientData();
        assert.deepEqual([d.state, d.balance], [STATE.closed, 0n]);
    });

    test('request_refund: 1009 from a non-owner, 1006 when closed, 1003 below 0.1 TON', async () => {
        expectExit(await w.ownerOp(OP.owner_client_request_refund, (b) => b, { from: w.addr.eve }), client(), ERR.expected_owner);
        expectExit(await w.ownerOp(OP.owner_client_request_refund, (b) => b, { value: toNano('0.09') }), client(), ERR.low_msg_value);
        await setClient({ state: STATE.closed });
        expectExit(await w.ownerOp(OP.owner_client_request_refund), client(), ERR.closed);
    });

    test('owner ops check state, then value, then the contract balance, then the sender', async () => {
        await setClient({ state: STATE.closed });
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(1n, 256), { from: w.addr.eve, value: toNano('0.05') }), client(), ERR.closed);
        await setClient({});
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(1n, 256), { from: w.addr.eve, value: toNano('0.05') }), client(), ERR.low_msg_value);
        await w.setBalance(client(), 0n);
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(1n, 256), { from: w.addr.eve, value: toNano('0.15') }), client(), ERR.low_smc_balance);
        expectExit(await w.ownerOp(OP.owner_client_change_secret_hash, (b) => b.storeUint(1n, 256), { from: w.addr.eve, value: toNano('0.21') }), client(), ERR.expected_message_from_owner);
    });
});

describe('client signed charge', () => {
    test('charge lowers the balance by delta x price, sets tokens_used, sends info and the excess to the chosen address', async () => {
        await funded('5');
        const q = w.nextQueryId();
        const r = await w.charge(TOKENS('1.5'), { queryId: q, from: w.addr.eve, excessesTo: w.addr.submitter });
        const rep = reportOf(r);
        assert.equal(rep.payload, null);
        assert.deepEqual([rep.msg.value, rep.msg.mode, rep.msg.queryId], [1n, MODE.payFeesSeparately, q]);
        assert.deepEqual([rep.state.balance, rep.state.tokensUsed], [toNano('3.5'), TOKENS('1.5')]);
        assert.deepEqual([rep.out[1].op, rep.out[1].queryId], [OP.excesses, q]);
        assert.ok(rep.out[1].dest.equals(w.addr.submitter));
        const d = await w.clientData();
        assert.deepEqual([d.balance, d.tokensUsed], [toNano('3.5'), TOKENS('1.5')]);
    });

    test('charge stops the balance at 0', async () => {
        await funded('1');
        expectOk(await w.charge(TOKENS('3')), client());
        const d = await w.clientData();
        assert.deepEqual([d.balance, d.tokensUsed], [0n, TOKENS('3')]);
    });

    test('charge is strict: the same or a lower count fails with 1000', async () => {
        await funded('5');
        expectOk(await w.charge(100n), client());
        expectExit(await w.charge(100n), client(), ERR.old_message);
        expectExit(await w.charge(99n), client(), ERR.old_message);
        expectOk(await w.charge(101n), client());
    });

    test('charge rejects a bad signature (1007), a format mismatch (1005), another target (1015)', async () => {
        await funded('5');
        expectExit(await w.charge(10n, { secretKey: keyOf('eve').secretKey }), client(), ERR.bad_signature);
        expectExit(await w.charge(10n, { payloadOp: OP.ext_client_grant_refund_signed }), client(), ERR.signed_msg_format_mismatch);
        expectExit(await w.charge(10n, { queryId: 1n, payloadQueryId: 2n }), client(), ERR.signed_msg_format_mismatch);
        expectExit(await w.charge(10n, { target: w.proxy.address }), client(), ERR.expected_my_address);
        const other = w.clientOf(w.addr.eve);
        expectExit(await w.send(w.addr.eve, client(), w.signed(OP.ext_client_charge_signed, other.address, { tokens: 10n })), client(), ERR.expected_my_address);
    });

    test('charge checks the signature before the payload query_id (1007 wins over 1005)', async () => {
        expectExit(await w.charge(10n, { queryId: 1n, payloadQueryId: 2n, secretKey: keyOf('eve').secretKey }), client(), ERR.bad_signature);
    });

    test('charge: 1006 when closed, 1003 below 0.1 TON, 1001 when the contract is short of its reserve', async () => {
        expectExit(await w.charge(10n, { value: toNano('0.1') - 1n }), client(), ERR.low_msg_value);
        expectOk(await w.charge(10n, { value: toNano('0.1') }), client());
        await w.setBalance(client(), toNano('0.05'));
        expectExit(await w.charge(20n, { value: toNano('0.15') }), client(), ERR.low_smc_balance);
        await setClient({ state: STATE.closed });
        expectExit(await w.charge(30n), client(), ERR.closed);
    });

    test('charge with a payload that has extra bits or an outer body with extra bits fails with cell underflow', async () => {
        expectExit(await w.charge(10n, { fields: (b) => b.storeUint(10n, 64).storeBit(0) }), client(), ERR.cell_underflow);
    });
});

describe('client signed grant refund', () => {
    test('grant refund charges the delta, closes, and refunds the rest keeping only 0.01 TON', async () => {
        await funded('5');
        expectOk(await w.charge(TOKENS('1')), client());
        const q = w.nextQueryId();
        const r = await w.grantRefund(TOKENS('2'), { queryId: q });
        const tx = txOn(r, client());
        const rep = reportOf(r);
        assert.equal(rep.payload.op, OP.client_proxy_refund_granted);
        assert.equal(rep.payload.rest.loadCoins(), toNano('3'));
        assert.ok(rep.payload.rest.loadAddress().equals(w.addr.submitter));
        assert.equal(rep.msg.mode, MODE.carryAllBalance);
        assert.deepEqual(reservesOf(tx), [{ mode: 0, amount: STORAGE }]);
        assert.equal(await w.balanceOf(client()), STORAGE);
        const d = await w.clientData();
        assert.deepEqual([d.state, d.balance, d.tokensUsed, d.unlockTs], [STATE.closed, 0n, TOKENS('2'), 0]);
        const paid = sentBy(expectOk(r, w.proxy.address));
        assert.deepEqual([paid[0].op, paid[0].value], [OP.payout, toNano('3')]);
        assert.ok(paid[0].dest.equals(w.addr.alice));
    });

    test('grant refund is non-strict: the same count is accepted, a lower one fails with 1000', async () => {
        await funded('2');
        expectOk(await w.charge(50n), client());
        expectExit(await w.grantRefund(49n), client(), ERR.old_message);
        expectOk(await w.grantRefund(50n), client());
    });

    test('grant refund from closing state, and after close only while balance > 0 (1006 when 0)', async () => {
        await setClient({ state: STATE.closing, balance: toNano('1'), unlockTs: w.bc.now + 50 });
        expectOk(await w.grantRefund(0n), client());
        expectExit(await w.grantRefund(0n), client(), ERR.closed);
        await setClient({ state: STATE.closed, balance: toNano('1') });
        expectOk(await w.grantRefund(0n), client());
    });

    test('grant refund checks signature (1007), format (1005), value (1003), target (1015)', async () => {
        expectExit(await w.grantRefund(1n, { secretKey: keyOf('eve').secretKey }), client(), ERR.bad_signature);
        expectExit(await w.grantRefund(1n, { payloadOp: OP.ext_client_charge_signed }), client(), ERR.signed_msg_format_mismatch);
        expectExit(await w.grantRefund(1n, { value: toNano('0.09') }), client(), ERR.low_msg_value);
        expectExit(await w.grantRefund(1n, { target: w.worker.address }), client(), ERR.expected_my_address);
    });
});

describe('client params struct version', () => {
    test('with params of struct version != 3, a charge that moves tokens fails with 1008 and so does close I', async () => {
        const bad = { ...PARAMS, structVersion: 1 };
        const c = w.clientOf(w.addr.eve, { params: bad });
        await w.deploy(c, toNano('1'));
        expectExit(await w.charge(10n, { to: c.address }), c.address, ERR.stored_data_damaged);
        expectExit(await w.ownerOp(OP.owner_client_request_refund, (b) => b, { from: w.addr.eve, to: c.address }), c.address, ERR.stored_data_damaged);
        // A grant refund that does not move tokens never reads the params.
        expectOk(await w.grantRefund(0n, { to: c.address }), c.address);
    });
});
