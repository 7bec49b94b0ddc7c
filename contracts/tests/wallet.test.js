// Cocoon wallet (facts §10): signed externals with their checks in order, owner-only internals.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Cell, storeMessageRelaxed, toNano } from '@ton/core';
import { sign } from '@ton/crypto';
import { internal } from '@ton/sandbox';
import { CODE, ERR, OP, STORAGE, World, expectExit, expectOk, head, keyOf, sentBy, stateInit, textBody, walletData, txOn } from './lib.js';

let w;
let wallet;
const key = keyOf('wallet');
const SUBWALLET = 0;

before(async () => {
    w = await World.create();
    wallet = stateInit(CODE.wallet, walletData({ publicKey: key.publicKey, owner: w.addr.alice, subwallet: SUBWALLET }));
    // Funded first, then deployed by its first external with its own StateInit (as the C++ does).
    await w.send(w.addr.eve, wallet.address, new Cell(), toNano('10'), { bounce: false });
    const r = await sendExternal({ init: true, messages: [] });
    expectOk(r, wallet.address);
    w.snap = w.bc.snapshot();
});
beforeEach(async () => { await w.reset(); });

function transfer(to, value, body = new Cell()) {
    return beginCell().store(storeMessageRelaxed({
        info: { type: 'internal', ihrDisabled: true, bounce: false, bounced: false, dest: to, value: { coins: value }, ihrFee: 0n, forwardFee: 0n, createdLt: 0n, createdAt: 0 },
        body,
    })).endCell();
}

function externalBody({ seqno = 0, subwallet = SUBWALLET, validUntil = w.bc.now + 3600, messages = [], secretKey = key.secretKey } = {}) {
    let b = beginCell().storeUint(subwallet, 32).storeUint(validUntil, 32).storeUint(seqno, 32);
    for (const [mode, msg] of messages) b = b.storeUint(mode, 8).storeRef(msg);
    const signed = b.endCell();
    return beginCell().storeBuffer(sign(signed.hash(), secretKey)).storeSlice(signed.beginParse()).endCell();
}

function sendExternal({ init = false, ...opts } = {}) {
    return w.bc.sendMessage({
        info: { type: 'external-in', dest: wallet.address, importFee: 0n },
        init: init ? { code: wallet.code, data: wallet.data } : undefined,
        body: externalBody(opts),
    });
}

async function rejectsExternal(opts, code) {
    await assert.rejects(sendExternal(opts), (e) => e.exitCode === code);
}

const seqno = async () => (await w.get(wallet.address, 'seqno')).stackReader.readNumber();

describe('wallet get methods', () => {
    test('seqno, get_public_key and get_owner_address read the documented storage', async () => {
        assert.equal(await seqno(), 1);
        assert.equal((await w.get(wallet.address, 'get_public_key')).stackReader.readBigNumber(), BigInt('0x' + key.publicKey.toString('hex')));
        assert.ok((await w.get(wallet.address, 'get_owner_address')).stackReader.readAddress().equals(w.addr.alice));
    });
});

describe('wallet externals', () => {
    test('a signed external sends each message with its mode and bumps seqno', async () => {
        const r = await sendExternal({ seqno: 1, messages: [[1, transfer(w.addr.bob, toNano('1'))], [0, transfer(w.addr.eve, toNano('2'))]] });
        const tx = expectOk(r, wallet.address);
        const out = sentBy(tx);
        assert.equal(out.length, 2);
        assert.deepEqual(out.map((m) => m.mode), [1, 0]);
        assert.ok(out[0].dest.equals(w.addr.bob));
        assert.equal(out[0].value, toNano('1'));
        assert.equal(await seqno(), 2);
    });

    test('expired (valid_until <= now) fails with 1030', async () => {
        await rejectsExternal({ seqno: 1, validUntil: w.bc.now }, ERR.wallet_expired);
    });

    test('a wrong seqno fails with 1032, a wrong subwallet with 1033, a bad signature with 1034', async () => {
        await rejectsExternal({ seqno: 0 }, ERR.wallet_bad_seqno);
        await rejectsExternal({ seqno: 1, subwallet: 5 }, ERR.wallet_bad_subwallet);
        await rejectsExternal({ seqno: 1, secretKey: keyOf('eve').secretKey }, ERR.wallet_bad_signature);
    });

    test('below 2 TON externals fail with 1035', async () => {
        await w.setBalance(wallet.address, toNano('2') - 1n);
        await rejectsExternal({ seqno: 1 }, ERR.wallet_low_balance);
        // (The storage phase runs first, so a little above 2 TON is needed in practice.)
        await w.setBalance(wallet.address, toNano('2.01'));
        expectOk(await sendExternal({ seqno: 1 }), wallet.address);
    });

    test('a blocked wallet refuses externals with 1031 until unblocked', async () => {
        expectOk(await w.send(w.addr.alice, wallet.address, textBody('b')), wallet.address);
        await rejectsExternal({ seqno: 1 }, ERR.wallet_blocked);
        expectOk(await w.send(w.addr.alice, wallet.address, textBody('u')), wallet.address);
        expectOk(await sendExternal({ seqno: 1 }), wallet.address);
    });

    test('the checks come in order: expiry, blocked, seqno, subwallet, signature', async () => {
        expectOk(await w.send(w.addr.alice, wallet.address, textBody('b')), wallet.address);
        await rejectsExternal({ seqno: 9, validUntil: w.bc.now - 1 }, ERR.wallet_expired);
        await rejectsExternal({ seqno: 9, subwallet: 3 }, ERR.wallet_blocked);
        expectOk(await w.send(w.addr.alice, wallet.address, textBody('u')), wallet.address);
        await rejectsExternal({ seqno: 9, subwallet: 3, secretKey: keyOf('x').secretKey }, ERR.wallet_bad_seqno);
        await rejectsExternal({ seqno: 1, subwallet: 3, secretKey: keyOf('x').secretKey }, ERR.wallet_bad_subwallet);
    });
});

describe('wallet internals', () => {
    test('excesses, payout and do_not_process are accepted from anyone', async () => {
        for (const op of [OP.excesses, OP.payout, OP.do_not_process]) {
            expectOk(await w.send(w.addr.eve, wallet.address, head(op, 1n).endCell()), wallet.address);
        }
        expectOk(await w.send(w.addr.eve, wallet.address, new Cell()), wallet.address);
    });

    test('any other body from a non-owner fails with 1040 (a comment transfer bounces)', async () => {
        const r = await w.send(w.addr.eve, wallet.address, textBody('hello'));
        const tx = expectExit(r, wallet.address, ERR.wallet_not_owner);
        assert.equal(sentBy(tx)[0].body.beginParse().loadUint(32), 0xffffffff, 'bounced back');
        expectExit(await w.send(w.addr.eve, wallet.address, head(OP.owner_wallet_send_message, 1n).endCell()), wallet.address, ERR.wallet_not_owner);
    });

    test('owner send_message sends the given message with the given mode', async () => {
        const body = head(OP.owner_wallet_send_message, 1n).storeUint(1, 8).storeRef(transfer(w.addr.bob, toNano('3'))).endCell();
        const out = sentBy(expectOk(await w.send(w.addr.alice, wallet.address, body), wallet.address));
        assert.equal(out.length, 1);
        assert.equal(out[0].mode, 1);
        assert.equal(out[0].value, toNano('3'));
        assert.ok(out[0].dest.equals(w.addr.bob));
    });

    test('"w" keeps 0.01 TON and sends the rest to the owner as a bounceable "w" comment', async () => {
        const out = sentBy(expectOk(await w.send(w.addr.alice, wallet.address, textBody('w')), wallet.address));
        assert.equal(out.length, 1);
        assert.equal(out[0].mode, 128);
        assert.equal(out[0].bounce, true);
        assert.ok(out[0].dest.equals(w.addr.alice));
        const s = out[0].body.beginParse();
        assert.deepEqual([s.loadUint(32), s.loadUint(8), s.remainingBits], [0, 0x77, 0]);
        assert.equal(await w.balanceOf(wallet.address), STORAGE);
    });

    test('another text command, or another op, from the owner fails with 1041', async () => {
        expectExit(await w.send(w.addr.alice, wallet.address, textBody('x')), wallet.address, ERR.wallet_unknown_op);
        expectExit(await w.send(w.addr.alice, wallet.address, head(0x1234, 1n).endCell()), wallet.address, ERR.wallet_unknown_op);
    });

    test('a bounced message is ignored', async () => {
        const body = beginCell().storeUint(0xffffffff, 32).storeUint(0, 32).endCell();
        const r = await w.bc.sendMessage(internal({ from: w.addr.eve, to: wallet.address, value: toNano('1'), body, bounced: true, bounce: false }));
        expectOk(r, wallet.address);
    });
});
