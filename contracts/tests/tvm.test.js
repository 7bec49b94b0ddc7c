// cocoon-ton's view of these contracts on a real TVM (crates/cocoon-ton/src/tvm.rs), checked
// both ways (crates/cocoon-ton/tests/tvm_fixtures.rs is the other half):
// - fixtures/addresses.json is written by Rust: the addresses it derives from initial data must
//   be the ones these layouts give.
// - fixtures/storage.json is written here: the storage cells the contracts hold after a scenario,
//   with what their get methods answer; Rust must read the same values from the cells.
//   After an intended change: `COCOON_UPDATE_FIXTURES=1 npm test`, and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Address, beginCell } from '@ton/core';
import {
    CODES, ROOT, World, body, clientData, keyOf, proxyData, rootData, stateInit, stringify, workerData,
} from './lib.js';

const fixture = (name) => path.join(ROOT, 'fixtures', name);

test('addresses derived by cocoon-ton are the contracts\' addresses', () => {
    const { cases } = JSON.parse(fs.readFileSync(fixture('addresses.json'), 'utf-8'));
    assert.ok(cases.length >= 7);
    for (const c of cases) {
        const owner = Address.parse(c.owner);
        const publicKey = c.public_key && Buffer.from(c.public_key, 'hex');
        let si;
        switch (c.kind) {
            case 'root': si = stateInit(CODES.root, rootData({ owner, params: c.params })); break;
            case 'proxy': si = stateInit(CODES.proxy, proxyData({ owner, root: Address.parse(c.root), publicKey, params: c.params })); break;
            case 'client': si = stateInit(CODES.client, clientData({ owner, proxy: Address.parse(c.proxy), publicKey, params: c.params })); break;
            case 'worker': si = stateInit(CODES.worker, workerData({ owner, proxy: Address.parse(c.proxy), publicKey, params: c.params })); break;
            default: assert.fail(`unknown kind ${c.kind}`);
        }
        assert.equal(si.address.toRawString(), c.address, `${c.kind} address`);
    }
});

const PARAMS = {
    price_per_token: 20, worker_fee_per_token: 19, prompt_multiplier: 10000, cached_multiplier: 10000,
    completion_multiplier: 10000, reasoning_multiplier: 10000, proxy_close_delay: 86400,
    client_close_delay: 3600, min_proxy_stake: 1000000, min_client_stake: 1000,
};

const hex256 = (n) => n.toString(16).padStart(64, '0');
const dataOf = async (w, addr) => (await w.bc.getContract(addr)).accountState.state.data.toBoc().toString('base64');

test('storage written by the contracts (fixtures/storage.json)', async () => {
    const w = await World.create(PARAMS);
    const model = 0xabcdefn;
    await w.expectOk((await w.rootOp('owner', body.root_add_hash(w.nextQueryId(), 2, model))).result);
    await w.expectOk((await w.rootOp('owner', body.root_register_proxy(w.nextQueryId(), 3, '10.0.0.1:8888'))).result);
    await w.expectOk((await w.proxyDeploy(1_000_000)).result);
    const secret = 0x5ec2e7n;
    await w.expectOk((await w.clientDeploy('alice', 100000, 10000, { secretHash: secret })).result);
    await w.expectOk((await w.workerDeploy('bob')).result);
    const alice = await w.clientOf('alice');
    const bob = await w.workerOf('bob');
    await w.expectOk((await w.signed('charge_signed', alice.address, 100)).result);
    await w.expectOk((await w.signed('worker_payout_signed', bob.address, 60)).result);
    await w.expectOk((await w.proxyOp('proxy', body.proxy_save_state(w.nextQueryId(), 7, 0x1234n))).result);
    w.bc.now += 10;
    await w.expectOk((await w.clientOp('alice', 'alice', body.owner_client_request_refund(w.nextQueryId()))).result);

    const root = await w.rootState();
    const proxy = await w.proxyState();
    const client = await w.clientState('alice');
    const worker = await w.workerState('bob');
    const actual = {
        params: PARAMS,
        root: {
            data: await dataOf(w, w.root.address),
            address: w.root.address.toRawString(),
            owner: (await w.wallet('owner')).address.toRawString(),
            params_version: root.params_version,
            model_hashes: [hex256(model)],
            proxies: root.proxies,
            endpoints: { 3: '10.0.0.1:8888' },
        },
        proxy: {
            data: await dataOf(w, w.proxy.address),
            address: w.proxy.address.toRawString(),
            owner: (await w.wallet('proxy')).address.toRawString(),
            public_key: keyOf('proxy').publicKey.toString('hex'),
            ...proxy,
            state_hash_hex: hex256(proxy.state_hash),
        },
        client: {
            data: await dataOf(w, alice.address),
            address: alice.address.toRawString(),
            owner: (await w.wallet('alice')).address.toRawString(),
            ...client,
            secret_hash_hex: hex256(client.secret_hash),
        },
        worker: {
            data: await dataOf(w, bob.address),
            address: bob.address.toRawString(),
            owner: (await w.wallet('bob')).address.toRawString(),
            ...worker,
        },
    };
    assert.equal(client.state, 'closing');
    const text = JSON.stringify(JSON.parse(stringify(actual)), null, 2) + '\n';
    if (process.env.COCOON_UPDATE_FIXTURES) fs.writeFileSync(fixture('storage.json'), text);
    assert.equal(fs.readFileSync(fixture('storage.json'), 'utf-8'), text, 'fixtures/storage.json is stale: see this file\'s header');
});
