// Root contract (facts §4): every op's happy path and rejection, the excess rule, the get methods.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Address, beginCell, Cell, toNano } from '@ton/core';
import { internal } from '@ton/sandbox';
import {
    ALL_CODES, CODE, ERR, FLAGS, MODE, OP, PARAMS, STORAGE, World, expectExit, expectOk, head, paramsCell,
    readParamsCell, readRootDirectory, reservesOf, rootData, sentBy, stateInit, txOn,
} from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const H1 = 0x1111n;
const H2 = 0x2222n;

function rootOp(op, fields = (b) => b, { from = w.addr.rootOwner, value = toNano('1'), queryId = w.nextQueryId() } = {}) {
    return w.send(from, w.root.address, fields(head(op, queryId)).endCell(), value);
}

const hashField = (h) => (b) => b.storeUint(h, 256);

function proxyEntry(text, type = 0) {
    const bytes = Buffer.from(text, 'ascii');
    return (b) => b.storeUint(type, 1).storeUint(bytes.length, 7).storeBuffer(bytes);
}

async function cocoonData() {
    const r = (await w.get(w.root.address, 'get_cocoon_data')).stackReader;
    return {
        version: r.readNumber(), lastProxySeqno: r.readNumber(), paramsVersion: r.readNumber(), uniqueId: r.readNumber(),
        isTest: r.readNumber(), pricePerToken: r.readBigNumber(), workerFeePerToken: r.readBigNumber(),
        minProxyStake: r.readBigNumber(), minClientStake: r.readBigNumber(), owner: r.readAddress(),
    };
}

async function curParams(address = w.root.address) {
    const r = (await w.get(address, 'get_cur_params')).stackReader;
    const names = ['paramsVersion', 'uniqueId', 'isTest', 'pricePerToken', 'workerFeePerToken', 'cachedMultiplier',
        'reasoningMultiplier', 'proxyDelay', 'clientDelay', 'minProxyStake', 'minClientStake',
        'proxyCodeHash', 'workerCodeHash', 'clientCodeHash'];
    const out = {};
    for (const n of names) out[n] = r.readBigNumber();
    assert.equal(r.remaining, 0, 'get_cur_params returns exactly 14 values');
    return out;
}

async function isValid(method, hash) {
    return (await w.get(w.root.address, method, [{ type: 'int', value: hash }])).stackReader.readNumber();
}

const directory = async () => readRootDirectory(await w.dataOf(w.root.address));

/** The reply of every successful root op: excesses with the query id, to the sender, mode 128. */
function expectExcessReply(r, queryId, to = w.addr.rootOwner) {
    const out = sentBy(expectOk(r, w.root.address));
    assert.equal(out.length, 1);
    assert.equal(out[0].op, OP.excesses);
    assert.equal(out[0].queryId, queryId);
    assert.ok(out[0].dest.equals(to));
    assert.equal(out[0].bounce, false);
    assert.equal(out[0].mode, MODE.carryAllBalance);
    return out[0];
}

describe('root get methods', () => {
    test('get_cocoon_data returns version, last seqno, params and owner in the documented order', async () => {
        const d = await cocoonData();
        assert.deepEqual(d, {
            version: 0, lastProxySeqno: 0, paramsVersion: PARAMS.paramsVersion, uniqueId: PARAMS.uniqueId, isTest: 1,
            pricePerToken: PARAMS.pricePerToken, workerFeePerToken: PARAMS.workerFeePerToken,
            minProxyStake: PARAMS.minProxyStake, minClientStake: PARAMS.minClientStake, owner: d.owner,
        });
        assert.ok(d.owner.equals(w.addr.rootOwner));
    });

    test('is_test is returned as 0 or 1, not -1', async () => {
        const root = stateInit(CODE.root, rootData({ owner: w.addr.rootOwner, params: paramsCell({ ...PARAMS, isTest: 0 }, ALL_CODES) }));
        await w.deploy(root, toNano('1'));
        const r = (await w.get(root.address, 'get_cocoon_data')).stackReader;
        for (let i = 0; i < 4; i++) r.readBigNumber();
        assert.equal(r.readNumber(), 0);
        const r1 = (await w.get(w.root.address, 'get_cocoon_data')).stackReader;
        for (let i = 0; i < 4; i++) r1.readBigNumber();
        assert.equal(r1.readNumber(), 1);
    });

    test('get_cur_params returns 14 values with the code hashes', async () => {
        const p = await curParams();
        assert.deepEqual(p, {
            paramsVersion: 1n, uniqueId: 77n, isTest: 1n, pricePerToken: 20n, workerFeePerToken: 19n,
            cachedMultiplier: 10002n, reasoningMultiplier: 10004n, proxyDelay: 3600n, clientDelay: 1800n,
            minProxyStake: PARAMS.minProxyStake, minClientStake: PARAMS.minClientStake,
            proxyCodeHash: BigInt('0x' + CODE.proxy.hash().toString('hex')),
            workerCodeHash: BigInt('0x' + CODE.worker.hash().toString('hex')),
            clientCodeHash: BigInt('0x' + CODE.client.hash().toString('hex')),
        });
    });

    test('get_cur_params returns 0 for a missing code', async () => {
        const root = stateInit(CODE.root, rootData({ owner: w.addr.rootOwner, params: paramsCell(PARAMS, { worker: CODE.worker }) }));
        await w.deploy(root, toNano('1'));
        const p = await curParams(root.address);
        assert.equal(p.proxyCodeHash, 0n);
        assert.equal(p.workerCodeHash, BigInt('0x' + CODE.worker.hash().toString('hex')));
        assert.equal(p.clientCodeHash, 0n);
    });

    test('hash checks return -1 when found and 0 when not; last_proxy_seqno is a number', async () => {
        assert.equal(await isValid('worker_hash_is_valid', H1), 0);
        expectOk(await rootOp(OP.root_add_worker_type, hashField(H1)), w.root.address);
        assert.equal(await isValid('worker_hash_is_valid', H1), -1);
        assert.equal(await isValid('model_hash_is_valid', H1), 0);
        assert.equal(await isValid('proxy_hash_is_valid', H1), 0);
        assert.equal((await w.get(w.root.address, 'last_proxy_seqno')).stackReader.readNumber(), 0);
    });
});

describe('root messages that are ignored', () => {
    test('an empty body is a plain top-up: accepted, nothing sent', async () => {
        const r = await w.send(w.addr.eve, w.root.address, new Cell(), toNano('3'));
        assert.equal(sentBy(expectOk(r, w.root.address)).length, 0);
        assert.equal((await cocoonData()).version, 0);
    });

    test('do_not_process from anyone is ignored before query_id or the sender are read', async () => {
        const r = await w.send(w.addr.eve, w.root.address, beginCell().storeUint(OP.do_not_process, 32).endCell());
        assert.equal(sentBy(expectOk(r, w.root.address)).length, 0);
        assert.equal((await cocoonData()).version, 0);
    });

    test('a bounced message is ignored', async () => {
        const body = beginCell().storeUint(0xffffffff, 32).storeUint(OP.root_add_worker_type, 32).endCell();
        const r = await w.bc.sendMessage(internal({ from: w.addr.eve, to: w.root.address, value: toNano('1'), body, bounced: true, bounce: false }));
        assert.equal(sentBy(expectOk(r, w.root.address)).length, 0);
    });
});

describe('root ops are owner-only', () => {
    const ops = ['root_add_worker_type', 'root_del_worker_type', 'root_add_model_type', 'root_del_model_type',
        'root_add_proxy_type', 'root_del_proxy_type', 'root_register_proxy', 'root_unregister_proxy',
        'root_update_proxy', 'root_change_price', 'root_change_params', 'root_upgrade_contracts', 'root_upgrade',
        'root_reset', 'root_upgrade_full', 'root_change_owner', 'root_change_params_full'];
    for (const name of ops) {
        test(`${name} from a non-owner fails with 1010`, async () => {
            const r = await rootOp(OP[name], (b) => b, { from: w.addr.eve });
            expectExit(r, w.root.address, ERR.expected_message_from_owner);
        });
    }

    test('an unknown op from a non-owner is still 1010 (the owner is checked first)', async () => {
        expectExit(await rootOp(0x12345678, (b) => b, { from: w.addr.eve }), w.root.address, ERR.expected_message_from_owner);
    });

    test('a body with op but no query_id fails with cell underflow', async () => {
        const r = await w.send(w.addr.rootOwner, w.root.address, beginCell().storeUint(OP.root_reset, 32).endCell());
        expectExit(r, w.root.address, ERR.cell_underflow);
    });
});

describe('root hash lists', () => {
    const kinds = [
        ['worker', OP.root_add_worker_type, OP.root_del_worker_type, 'worker_hash_is_valid', 'workerHashes'],
        ['model', OP.root_add_model_type, OP.root_del_model_type, 'model_hash_is_valid', 'modelHashes'],
        ['proxy', OP.root_add_proxy_type, OP.root_del_proxy_type, 'proxy_hash_is_valid', 'proxyHashes'],
    ];
    for (const [kind, addOp, delOp, getter, field] of kinds) {
        test(`add and delete a ${kind} hash: each bumps version and answers with excesses`, async () => {
            const q = w.nextQueryId();
            expectExcessReply(await rootOp(addOp, hashField(H1), { queryId: q }), q);
            assert.equal(await isValid(getter, H1), -1);
            const dir = await directory();
            assert.equal(dir.version, 1);
            assert.deepEqual(dir[field].keys(), [H1]);
            assert.equal(dir[field].get(H1).remainingBits, 0, 'the value is empty');
            const q2 = w.nextQueryId();
            expectExcessReply(await rootOp(delOp, hashField(H1), { queryId: q2 }), q2);
            assert.equal(await isValid(getter, H1), 0);
            assert.equal((await cocoonData()).version, 2);
            assert.equal((await cocoonData()).paramsVersion, PARAMS.paramsVersion, 'params_version unchanged');
        });

        test(`deleting a missing ${kind} hash succeeds and still bumps version`, async () => {
            expectOk(await rootOp(delOp, hashField(H2)), w.root.address);
            assert.equal((await cocoonData()).version, 1);
        });

        test(`a ${kind} hash op with extra bits fails with cell underflow`, async () => {
            expectExit(await rootOp(addOp, (b) => b.storeUint(H1, 256).storeBit(1)), w.root.address, ERR.cell_underflow);
            expectExit(await rootOp(addOp, (b) => b.storeUint(1, 255)), w.root.address, ERR.cell_underflow);
        });
    }
});

describe('root proxy registry', () => {
    test('register_proxy stores the entry under last_proxy_seqno + 1 and bumps version', async () => {
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('10.0.0.1:8000')), w.root.address);
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('10.0.0.2:8000 10.0.0.2:9000')), w.root.address);
        const dir = await directory();
        assert.equal(dir.lastProxySeqno, 2);
        assert.equal(dir.version, 2);
        const e2 = dir.registeredProxies.get(2);
        assert.equal(e2.loadUint(1), 0);
        const len = e2.loadUint(7);
        assert.equal(e2.loadBuffer(len).toString('ascii'), '10.0.0.2:8000 10.0.0.2:9000');
        assert.equal(e2.remainingBits, 0);
        assert.equal((await w.get(w.root.address, 'last_proxy_seqno')).stackReader.readNumber(), 2);
        assert.equal((await cocoonData()).lastProxySeqno, 2);
    });

    test('register_proxy with type bit 1 fails with 1004', async () => {
        expectExit(await rootOp(OP.root_register_proxy, proxyEntry('10.0.0.1:8000', 1)), w.root.address, ERR.msg_format_mismatch);
    });

    test('register_proxy whose length does not match the bytes fails with cell underflow', async () => {
        const tooShort = (b) => b.storeUint(0, 1).storeUint(5, 7).storeBuffer(Buffer.from('1.2.3.4:5'));
        expectExit(await rootOp(OP.root_register_proxy, tooShort), w.root.address, ERR.cell_underflow);
        const withRef = (b) => proxyEntry('1.2.3.4:5')(b).storeRef(new Cell());
        expectExit(await rootOp(OP.root_register_proxy, withRef), w.root.address, ERR.cell_underflow);
    });

    test('unregister_proxy deletes the seqno and bumps version (a missing seqno is fine)', async () => {
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('10.0.0.1:8000')), w.root.address);
        expectOk(await rootOp(OP.root_unregister_proxy, (b) => b.storeUint(1, 32)), w.root.address);
        expectOk(await rootOp(OP.root_unregister_proxy, (b) => b.storeUint(9, 32)), w.root.address);
        const dir = await directory();
        assert.equal(dir.registeredProxies.size, 0);
        assert.equal(dir.lastProxySeqno, 1, 'seqnos are not reused');
        assert.equal(dir.version, 3);
    });

    test('update_proxy replaces an existing entry', async () => {
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('10.0.0.1:8000')), w.root.address);
        expectOk(await rootOp(OP.root_update_proxy, (b) => proxyEntry('10.9.9.9:1')(b.storeUint(1, 32))), w.root.address);
        const dir = await directory();
        const e = dir.registeredProxies.get(1);
        e.skip(1);
        assert.equal(e.loadBuffer(e.loadUint(7)).toString('ascii'), '10.9.9.9:1');
        assert.equal(dir.version, 2);
        assert.equal(dir.lastProxySeqno, 1);
    });

    test('update_proxy on a seqno that is not registered fails with 2000', async () => {
        expectExit(await rootOp(OP.root_update_proxy, (b) => proxyEntry('10.9.9.9:1')(b.storeUint(5, 32))), w.root.address, ERR.unknown_proxy_type);
    });

    test('update_proxy checks the entry format before the seqno (1004 for an unknown seqno)', async () => {
        expectExit(await rootOp(OP.root_update_proxy, (b) => proxyEntry('x', 1)(b.storeUint(5, 32))), w.root.address, ERR.msg_format_mismatch);
    });
});

describe('root params', () => {
    test('change_price sets price and worker fee, bumps version and params_version, keeps the rest', async () => {
        expectOk(await rootOp(OP.root_change_price, (b) => b.storeCoins(30n).storeCoins(25n)), w.root.address);
        const dir = await directory();
        const { params, codes } = readParamsCell(dir.params);
        assert.deepEqual(params, { ...PARAMS, paramsVersion: 2, pricePerToken: 30n, workerFeePerToken: 25n });
        assert.ok(codes.proxy.equals(CODE.proxy) && codes.worker.equals(CODE.worker) && codes.client.equals(CODE.client));
        const d = await cocoonData();
        assert.equal(d.version, 1);
        assert.equal(d.paramsVersion, 2);
    });

    test('change_params sets price, fee, both delays and both min stakes', async () => {
        const fields = (b) => b.storeCoins(31n).storeCoins(29n).storeUint(100, 32).storeUint(50, 32).storeCoins(toNano('7')).storeCoins(toNano('3'));
        expectOk(await rootOp(OP.root_change_params, fields), w.root.address);
        const { params } = readParamsCell((await directory()).params);
        assert.deepEqual(params, {
            ...PARAMS, paramsVersion: 2, pricePerToken: 31n, workerFeePerToken: 29n, proxyDelay: 100, clientDelay: 50,
            minProxyStake: toNano('7'), minClientStake: toNano('3'),
        });
        assert.equal((await cocoonData()).version, 1);
    });

    test('change_params with a field missing fails with cell underflow', async () => {
        const fields = (b) => b.storeCoins(31n).storeCoins(29n).storeUint(100, 32).storeUint(50, 32).storeCoins(toNano('7'));
        expectExit(await rootOp(OP.root_change_params, fields), w.root.address, ERR.cell_underflow);
    });

    test('upgrade_contracts replaces the three codes and bumps params_version', async () => {
        const [p, k, c] = [beginCell().storeUint(1, 8).endCell(), beginCell().storeUint(2, 8).endCell(), beginCell().storeUint(3, 8).endCell()];
        expectOk(await rootOp(OP.root_upgrade_contracts, (b) => b.storeRef(p).storeRef(k).storeRef(c)), w.root.address);
        const cur = await curParams();
        assert.equal(cur.paramsVersion, 2n);
        assert.equal(cur.proxyCodeHash, BigInt('0x' + p.hash().toString('hex')));
        assert.equal(cur.workerCodeHash, BigInt('0x' + k.hash().toString('hex')));
        assert.equal(cur.clientCodeHash, BigInt('0x' + c.hash().toString('hex')));
        assert.equal((await cocoonData()).version, 1);
    });

    test('a params change moves the derived proxy address; hash and registry changes do not', async () => {
        const before = w.proxyOf(w.addr.proxyOwner, w.proxyKey, (await directory()).params).address;
        expectOk(await rootOp(OP.root_add_model_type, hashField(H1)), w.root.address);
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('1.1.1.1:1')), w.root.address);
        const sameParams = (await directory()).params;
        assert.ok(sameParams.equals(w.rootParams));
        expectOk(await rootOp(OP.root_change_price, (b) => b.storeCoins(30n).storeCoins(25n)), w.root.address);
        const { params, codes } = readParamsCell((await directory()).params);
        const after = w.proxyOf(w.addr.proxyOwner, w.proxyKey, paramsCell(params, { worker: codes.worker, client: codes.client })).address;
        assert.ok(!before.equals(after));
    });

    test('a params cell with struct version other than 3 fails with 1008', async () => {
        const root = stateInit(CODE.root, rootData({ owner: w.addr.rootOwner, params: paramsCell({ ...PARAMS, structVersion: 2 }, ALL_CODES) }));
        await w.deploy(root, toNano('1'));
        const r = await w.send(w.addr.rootOwner, root.address, head(OP.root_change_price, 1n).storeCoins(1n).storeCoins(1n).endCell());
        expectExit(r, root.address, ERR.stored_data_damaged);
        await assert.rejects(w.get(root.address, 'get_cur_params'), (e) => e.exitCode === ERR.stored_data_damaged);
        // Ops that do not read the params still work.
        const r2 = await w.send(w.addr.rootOwner, root.address, head(OP.root_add_model_type, 1n).storeUint(H1, 256).endCell());
        expectOk(r2, root.address);
    });
});

describe('root code, reset, owner', () => {
    test('upgrade replaces the code only: no version bump, data kept, excesses sent', async () => {
        const before = await w.dataOf(w.root.address);
        const q = w.nextQueryId();
        expectExcessReply(await rootOp(OP.root_upgrade, (b) => b.storeRef(CODE.wallet), { queryId: q }), q);
        assert.ok((await w.codeOf(w.root.address)).equals(CODE.wallet));
        assert.ok((await w.dataOf(w.root.address)).equals(before));
    });

    test('reset clears the four dicts, keeps last_proxy_seqno, bumps version', async () => {
        expectOk(await rootOp(OP.root_add_worker_type, hashField(H1)), w.root.address);
        expectOk(await rootOp(OP.root_add_model_type, hashField(H1)), w.root.address);
        expectOk(await rootOp(OP.root_add_proxy_type, hashField(H1)), w.root.address);
        expectOk(await rootOp(OP.root_register_proxy, proxyEntry('1.1.1.1:1')), w.root.address);
        expectOk(await rootOp(OP.root_reset), w.root.address);
        const dir = await directory();
        assert.equal(dir.proxyHashes.size + dir.workerHashes.size + dir.modelHashes.size + dir.registeredProxies.size, 0);
        assert.equal(dir.lastProxySeqno, 1);
        assert.equal(dir.version, 5);
    });

    test('reset with a body after query_id fails with cell underflow', async () => {
        expectExit(await rootOp(OP.root_reset, (b) => b.storeBit(0)), w.root.address, ERR.cell_underflow);
    });

    test('upgrade_full replaces data and code wholesale and answers with excesses', async () => {
        const newData = beginCell().storeUint(42, 16).endCell();
        const q = w.nextQueryId();
        expectExcessReply(await rootOp(OP.root_upgrade_full, (b) => b.storeRef(newData).storeRef(CODE.wallet), { queryId: q }), q);
        assert.ok((await w.dataOf(w.root.address)).equals(newData));
        assert.ok((await w.codeOf(w.root.address)).equals(CODE.wallet));
    });

    test('change_owner hands the root over and bumps version', async () => {
        expectOk(await rootOp(OP.root_change_owner, (b) => b.storeAddress(w.addr.eve)), w.root.address);
        const d = await cocoonData();
        assert.ok(d.owner.equals(w.addr.eve));
        assert.equal(d.version, 1);
        expectExit(await rootOp(OP.root_reset), w.root.address, ERR.expected_message_from_owner);
        expectOk(await rootOp(OP.root_reset, (b) => b, { from: w.addr.eve }), w.root.address);
    });

    test('change_params_full is defined but unhandled: 1012', async () => {
        expectExit(await rootOp(OP.root_change_params_full, (b) => b.storeRef(paramsCell())), w.root.address, ERR.unknown_op);
    });

    test('an unknown op from the owner fails with 1012', async () => {
        expectExit(await rootOp(0x12345678), w.root.address, ERR.unknown_op);
    });
});

describe('root excess rule', () => {
    test('the root keeps its balance before the message and returns the rest of the value', async () => {
        const before = await w.balanceOf(w.root.address);
        const r = await rootOp(OP.root_add_model_type, hashField(H1), { value: toNano('3') });
        const tx = expectOk(r, w.root.address);
        const [reserve] = reservesOf(tx);
        assert.equal(reserve.mode, 0);
        assert.ok(reserve.amount >= before, 'reserves at least the balance it had');
        assert.ok(reserve.amount - before < toNano('0.001'), 'plus at most the storage due');
        const [excess] = sentBy(tx);
        assert.ok(excess.value > toNano('2.99') && excess.value < toNano('3'));
        assert.ok((await w.balanceOf(w.root.address)) >= before);
    });

    test('a root with less than 0.01 TON keeps 0.01 TON', async () => {
        await w.setBalance(w.root.address, toNano('0.001'));
        const tx = expectOk(await rootOp(OP.root_add_model_type, hashField(H1), { value: toNano('1') }), w.root.address);
        assert.equal(reservesOf(tx)[0].amount, STORAGE);
        assert.equal(await w.balanceOf(w.root.address), STORAGE);
    });
});
