// One named test per row of the facts page's §13 ("things a compatible implementation most often
// gets wrong"); README.md maps each row to its test.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Cell, toNano } from '@ton/core';
import { sha256_sync, sign } from '@ton/crypto';
import {
    CODE, ERR, OP, PARAMS, STATE, World, clientData, expectExit, expectOk, head, keyOf, paramsCell, readParamsCell,
    readRootDirectory, repackSigned, sentBy, stateInit, textBody, tokensField, txOn, walletData,
} from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const client = () => w.client.address;
const worker = () => w.worker.address;
const proxy = () => w.proxy.address;

/** Writes coins with `extra` more length bytes than needed (a valid but non-minimal encoding). */
const storeCoinsPadded = (b, value, extra) => {
    let len = 0;
    for (let v = value; v > 0n; v >>= 8n) len += 1;
    len += extra;
    return b.storeUint(len, 4).storeUint(value, len * 8);
};

describe('§13 pitfalls', () => {
    test('pitfall 1: the signature covers the payload cell representation hash, not the outer body or BoC bytes', async () => {
        expectOk(await w.topUp(toNano('3')), client());
        const overBoc = (payload) => sign(sha256_sync(payload.toBoc()), w.proxyKey.secretKey);
        expectExit(await w.charge(10n, { signWith: overBoc }), client(), ERR.bad_signature);
        const outer = (payload) => {
            const unsignedOuter = head(OP.ext_client_charge_signed, 7n).storeAddress(w.addr.submitter).storeRef(payload).endCell();
            return sign(unsignedOuter.hash(), w.proxyKey.secretKey);
        };
        expectExit(await w.charge(10n, { queryId: 7n, signWith: outer }), client(), ERR.bad_signature);
        expectOk(await w.charge(10n, { signWith: (payload) => sign(payload.hash(), w.proxyKey.secretKey) }), client());
    });

    test('pitfall 2: payload op and query_id must equal the outer ones, else 1005', async () => {
        expectExit(await w.charge(10n, { queryId: 1n, payloadQueryId: 2n }), client(), ERR.signed_msg_format_mismatch);
        expectExit(await w.charge(10n, { payloadOp: OP.ext_client_grant_refund_signed }), client(), ERR.signed_msg_format_mismatch);
        expectExit(await w.payout(10n, { queryId: 1n, payloadQueryId: 2n }), worker(), ERR.signed_msg_format_mismatch);
        expectExit(await w.send(w.addr.eve, proxy(), w.signed(OP.ext_proxy_close_request_signed, proxy(), { queryId: 1n, payloadQueryId: 9n })), proxy(), ERR.signed_msg_format_mismatch);
    });

    test('pitfall 3: the excess address is outside the signature: each submitter repacks its own', async () => {
        const signedByProxy = w.signed(OP.ext_worker_payout_request_signed, worker(), { tokens: 100n, excessesTo: w.addr.proxyOwner });
        const repacked = repackSigned(signedByProxy, w.addr.bob);
        const r = await w.send(w.addr.bob, worker(), repacked, toNano('0.5'));
        expectOk(r, worker());
        const proxyOut = sentBy(expectOk(r, proxy()));
        const excess = proxyOut.find((m) => m.op === OP.excesses);
        assert.ok(excess.dest.equals(w.addr.bob), 'the excess goes to the address the submitter chose');
    });

    test('pitfall 4: worker payouts need > 0.1 TON, client and proxy ops >= 0.1, top-up and stake amount + 0.1, client balance reserve + 0.1', async () => {
        expectExit(await w.payout(10n, { value: toNano('0.1') }), worker(), ERR.low_msg_value);
        expectOk(await w.payout(10n, { value: toNano('0.1') + 1n }), worker());
        expectOk(await w.charge(10n, { value: toNano('0.1') }), client());
        expectOk(await w.send(w.addr.eve, proxy(), head(OP.ext_proxy_payout_request, 1n).storeAddress(w.addr.eve).endCell(), toNano('0.1')), proxy());
        expectExit(await w.topUp(toNano('1'), { value: toNano('1.1') - 1n }), client(), ERR.low_msg_value);
        expectExit(await w.send(w.addr.eve, proxy(), head(OP.ext_proxy_increase_stake, 1n).storeCoins(toNano('1')).storeAddress(w.addr.eve).endCell(), toNano('1.1') - 1n), proxy(), ERR.low_msg_value);
        await w.setBalance(client(), toNano('0.1'));
        expectExit(await w.charge(20n, { value: toNano('0.1') }), client(), ERR.low_smc_balance);
    });

    test('pitfall 5: charge and payout are strict (>), grant_refund and last_payout non-strict (>=)', async () => {
        expectOk(await w.topUp(toNano('3')), client());
        expectOk(await w.charge(10n), client());
        expectExit(await w.charge(10n), client(), ERR.old_message);
        expectOk(await w.grantRefund(10n), client());
        expectOk(await w.payout(10n), worker());
        expectExit(await w.payout(10n), worker(), ERR.old_message);
        expectOk(await w.payout(10n, { last: true }), worker());
    });

    test('pitfall 6: expected_my_address must be the target contract itself, else 1015', async () => {
        const otherClient = w.clientOf(w.addr.eve).address;
        expectExit(await w.charge(10n, { target: otherClient }), client(), ERR.expected_my_address);
        expectExit(await w.charge(10n, { target: proxy() }), client(), ERR.expected_my_address);
        expectExit(await w.payout(10n, { target: w.addr.bob }), worker(), ERR.expected_my_address);
        expectExit(await w.send(w.addr.eve, proxy(), w.signed(OP.ext_proxy_close_request_signed, w.addr.proxyOwner)), proxy(), ERR.expected_my_address);
    });

    test('pitfall 7: non-minimal coins, or code refs in client/worker params, give another address (1014); proxy params keep both codes', async () => {
        const topUpPayload = beginCell().storeUint(OP.client_proxy_top_up, 32).storeCoins(1n).storeAddress(w.addr.eve).endCell();
        const fromClient = (from) => w.send(from, proxy(), head(OP.client_proxy_request, 1n).storeAddress(w.addr.alice)
            .storeRef(new Cell()).storeMaybeRef(topUpPayload).endCell());
        // The stake written with a padded coins encoding.
        const good = clientData({ owner: w.addr.alice, proxy: proxy(), publicKey: w.proxyKey.publicKey, stake: PARAMS.minClientStake, params: paramsCell() });
        const s = good.beginParse();
        const padded = storeCoinsPadded(beginCell().storeUint(s.loadUint(2), 2).storeCoins(s.loadCoins()), s.loadCoins(), 1)
            .storeSlice(s).endCell();
        assert.notEqual(padded.hash().toString('hex'), good.hash().toString('hex'));
        expectExit(await fromClient(stateInit(CODE.client, padded).address), proxy(), ERR.contract_address_mismatch);
        // Params variant 6 (with code) instead of 0.
        const withCode = w.clientOf(w.addr.alice, { params: PARAMS });
        const variant6 = stateInit(CODE.client, clientData({ owner: w.addr.alice, proxy: proxy(), publicKey: w.proxyKey.publicKey, stake: PARAMS.minClientStake, params: w.proxyParams }));
        expectExit(await fromClient(variant6.address), proxy(), ERR.contract_address_mismatch);
        expectOk(await fromClient(withCode.address), proxy());
        // A proxy whose params lack the codes cannot recognise any client.
        const bare = w.proxyOf(w.addr.proxyOwner, w.proxyKey, paramsCell());
        await w.deploy(bare, toNano('2'));
        const itsClient = w.clientOf(w.addr.alice, { proxy: bare.address });
        const r = await w.send(itsClient.address, bare.address, head(OP.client_proxy_request, 1n).storeAddress(w.addr.alice)
            .storeRef(new Cell()).storeMaybeRef(topUpPayload).endCell());
        expectExit(r, bare.address, ERR.contract_address_mismatch);
    });

    test('pitfall 8: the register payload carries the nonce as u64 after the op', async () => {
        const r = await w.ownerOp(OP.owner_client_register, (b) => b.storeUint(0xfeedfacecafebeefn, 64));
        const msg = sentBy(expectOk(r, client()))[0];
        const s = msg.body.beginParse();
        s.skip(32 + 64);
        s.loadAddress();
        s.loadRef();
        const payload = s.loadMaybeRef().beginParse();
        assert.equal(payload.loadUint(32), OP.client_proxy_register);
        assert.equal(payload.loadUintBig(64), 0xfeedfacecafebeefn);
        assert.equal(payload.remainingBits, 0);
    });

    test('pitfall 9: root data order is proxy_hashes, registered_proxies, last_proxy_seqno, worker_hashes, model_hashes', async () => {
        const op = (code, f) => w.send(w.addr.rootOwner, w.root.address, f(head(code, 1n)).endCell());
        expectOk(await op(OP.root_add_proxy_type, (b) => b.storeUint(1n, 256)), w.root.address);
        expectOk(await op(OP.root_add_worker_type, (b) => b.storeUint(2n, 256)), w.root.address);
        expectOk(await op(OP.root_add_model_type, (b) => b.storeUint(3n, 256)), w.root.address);
        expectOk(await op(OP.root_register_proxy, (b) => b.storeUint(0, 1).storeUint(3, 7).storeBuffer(Buffer.from('a:1'))), w.root.address);
        const dir = readRootDirectory(await w.dataOf(w.root.address));
        assert.deepEqual(dir.proxyHashes.keys(), [1n]);
        assert.deepEqual(dir.registeredProxies.keys(), [1]);
        assert.equal(dir.lastProxySeqno, 1);
        assert.deepEqual(dir.workerHashes.keys(), [2n]);
        assert.deepEqual(dir.modelHashes.keys(), [3n]);
        assert.equal(dir.version, 4);
        assert.ok(dir.params.equals(w.rootParams), 'ref 1 is the params cell');
    });

    test('pitfall 10: notifications without payload are accepted from anyone, so the software must check the source', async () => {
        const forged = head(OP.client_proxy_request, 1n).storeAddress(w.addr.alice)
            .storeRef(beginCell().storeUint(0, 2).storeCoins(toNano('1000')).storeCoins(0).storeUint(0, 64).storeUint(0, 256).endCell())
            .storeMaybeRef(null).endCell();
        expectOk(await w.send(w.addr.eve, proxy(), forged), proxy());
        const forgedWorker = head(OP.worker_proxy_request, 1n).storeAddress(w.addr.bob).storeUint(0, 2).storeUint(999n, 64).storeMaybeRef(null).endCell();
        expectOk(await w.send(w.addr.eve, proxy(), forgedWorker), proxy());
        // The sender is not the derived client address: an off-chain reader must drop both.
        assert.ok(!w.addr.eve.equals(w.client.address) && !w.addr.eve.equals(w.worker.address));
    });

    test('pitfall 11: a non-owner withdraw or request_refund fails with 1009, not 1010', async () => {
        expectOk(await w.topUp(toNano('3')), client());
        expectExit(await w.ownerOp(OP.owner_client_withdraw, (b) => b, { from: w.addr.eve }), client(), ERR.expected_owner);
        expectExit(await w.ownerOp(OP.owner_client_request_refund, (b) => b, { from: w.addr.eve }), client(), ERR.expected_owner);
        expectExit(await w.ownerOp(OP.owner_client_register, (b) => b.storeUint(1n, 64), { from: w.addr.eve }), client(), ERR.expected_message_from_owner);
    });

    test('pitfall 12: the second request_refund needs now > unlock_ts; proxy close_complete needs now >= unlock_ts', async () => {
        expectOk(await w.ownerOp(OP.owner_client_request_refund), client());
        const unlock = (await w.clientData()).unlockTs;
        w.bc.now = unlock;
        expectExit(await w.ownerOp(OP.owner_client_request_refund), client(), ERR.not_unlocked_yet);
        w.bc.now = unlock + 1;
        expectOk(await w.ownerOp(OP.owner_client_request_refund), client());
        expectOk(await w.send(w.addr.eve, proxy(), w.signed(OP.ext_proxy_close_request_signed, proxy())), proxy());
        w.bc.now = (await w.proxyData()).unlockTs;
        expectOk(await w.send(w.addr.eve, proxy(), w.signed(OP.ext_proxy_close_complete_request_signed, proxy())), proxy());
    });

    test('pitfall 13: proxy text commands have no query_id and exactly one byte', async () => {
        const withQueryId = beginCell().storeUint(0, 32).storeUint(5n, 64).storeUint(0x63, 8).endCell();
        expectExit(await w.send(w.addr.proxyOwner, proxy(), withQueryId), proxy(), ERR.cell_underflow);
        const tx = expectOk(await w.send(w.addr.proxyOwner, proxy(), textBody('c')), proxy());
        assert.equal(sentBy(tx)[0].queryId, 0n);
    });

    test('pitfall 14: owner_client_top_up_reopen and root_change_params_full are unhandled (1012)', async () => {
        expectExit(await w.ownerOp(OP.owner_client_top_up_reopen, (b) => b.storeCoins(toNano('1'))), client(), ERR.unknown_op);
        expectExit(await w.send(w.addr.rootOwner, w.root.address, head(OP.root_change_params_full, 1n).storeRef(paramsCell()).endCell()), w.root.address, ERR.unknown_op);
    });

    test('pitfall 15: the C++ builders for increase_stake (no new_stake) and proxy start-close (no query_id) do not work', async () => {
        const noNewStake = head(OP.owner_client_increase_stake, 1n).storeAddress(w.addr.alice).endCell();
        expectExit(await w.send(w.addr.alice, client(), noNewStake, toNano('0.7')), client(), ERR.cell_underflow);
        const noQueryId = beginCell().storeUint(OP.owner_proxy_close, 32).storeAddress(w.addr.proxyOwner).endCell();
        expectExit(await w.send(w.addr.proxyOwner, proxy(), noQueryId), proxy(), ERR.cell_underflow);
        assert.equal((await w.proxyData()).state, STATE.normal);
    });

    test('pitfall 16: a comment top-up from a non-owner bounces off the cocoon wallet (1040); externals need 2 TON (1035)', async () => {
        const key = keyOf('wallet');
        const wallet = stateInit(CODE.wallet, walletData({ publicKey: key.publicKey, owner: w.addr.alice }));
        await w.deploy(wallet, toNano('1.5'));
        const r = await w.send(w.addr.eve, wallet.address, textBody('top up'), toNano('5'));
        expectExit(r, wallet.address, ERR.wallet_not_owner);
        expectOk(await w.send(w.addr.eve, wallet.address, new Cell(), toNano('0.4')), wallet.address);
        const signed = beginCell().storeUint(0, 32).storeUint(w.bc.now + 60, 32).storeUint(0, 32).endCell();
        const body = beginCell().storeBuffer(sign(signed.hash(), key.secretKey)).storeSlice(signed.beginParse()).endCell();
        await assert.rejects(w.bc.sendMessage({ info: { type: 'external-in', dest: wallet.address, importFee: 0n }, body }),
            (e) => e.exitCode === ERR.wallet_low_balance);
    });

    test('pitfall 17: get_cur_params omits the prompt and completion multipliers; the params cell has them', async () => {
        const r = (await w.get(w.root.address, 'get_cur_params')).stackReader;
        const values = [];
        while (r.remaining > 0) values.push(r.readBigNumber());
        assert.equal(values.length, 14);
        assert.deepEqual(values.slice(5, 7), [BigInt(PARAMS.cachedMultiplier), BigInt(PARAMS.reasoningMultiplier)]);
        assert.ok(!values.includes(BigInt(PARAMS.promptMultiplier)) && !values.includes(BigInt(PARAMS.completionMultiplier)));
        const { params } = readParamsCell(readRootDirectory(await w.dataOf(w.root.address)).params);
        assert.deepEqual([params.promptMultiplier, params.completionMultiplier], [PARAMS.promptMultiplier, PARAMS.completionMultiplier]);
    });

    test('pitfall 18: a params change moves every address; the old proxy winds down: signed close, refunds, last payouts, close_complete', async () => {
        // Some business on the old contracts first.
        expectOk(await w.topUp(toNano('5')), client());
        expectOk(await w.charge(toNano('1') / PARAMS.pricePerToken), client());
        expectOk(await w.payout(toNano('1') / PARAMS.pricePerToken), worker());
        // The root changes the price: every derived address moves.
        expectOk(await w.send(w.addr.rootOwner, w.root.address, head(OP.root_change_price, 1n).storeCoins(30n).storeCoins(28n).endCell()), w.root.address);
        const { params: newParams, codes } = readParamsCell(readRootDirectory(await w.dataOf(w.root.address)).params);
        const newProxy = w.proxyOf(w.addr.proxyOwner, w.proxyKey, paramsCell(newParams, { worker: codes.worker, client: codes.client }));
        assert.ok(!newProxy.address.equals(proxy()));
        assert.ok(!w.clientOf(w.addr.alice, { proxy: newProxy.address, params: newParams }).address.equals(client()));
        assert.ok(!w.workerOf(w.addr.bob, { proxy: newProxy.address, params: newParams }).address.equals(worker()));
        // The old proxy keeps its old params.
        assert.equal((await w.proxyData()).paramsVersion, 1);
        // (1) signed close request.
        expectOk(await w.send(w.addr.proxyOwner, proxy(), w.signed(OP.ext_proxy_close_request_signed, proxy()), toNano('1')), proxy());
        // (2) the old client gets its final tokens and the rest of its balance back.
        const refund = await w.grantRefund(toNano('1.5') / PARAMS.pricePerToken);
        const refundPaid = sentBy(expectOk(refund, proxy())).find((m) => m.op === OP.payout);
        assert.equal(refundPaid.value, toNano('3.5'));
        assert.ok(refundPaid.dest.equals(w.addr.alice));
        assert.equal((await w.clientData()).state, STATE.closed);
        // (3) the old worker gets its last payout.
        const last = await w.payout(toNano('1.5') / PARAMS.pricePerToken, { last: true, value: toNano('1') });
        const workerPaid = sentBy(expectOk(last, proxy())).find((m) => m.op === OP.payout);
        assert.equal(workerPaid.value, (toNano('0.5') / PARAMS.pricePerToken) * PARAMS.workerFeePerToken);
        assert.equal((await w.workerData()).state, STATE.closed);
        // (4) after the delay, close complete: the owner takes the rest.
        w.bc.now = (await w.proxyData()).unlockTs;
        const done = await w.send(w.addr.proxyOwner, proxy(), w.signed(OP.ext_proxy_close_complete_request_signed, proxy()), toNano('1'));
        const ownerPaid = sentBy(expectOk(done, proxy()));
        assert.equal(ownerPaid[0].op, OP.payout);
        assert.ok(ownerPaid[0].dest.equals(w.addr.proxyOwner));
        assert.equal((await w.proxyData()).state, STATE.closed);
    });
});
