// The conformance runner: every contracts/vectors/*.json, step by step, on the sandbox
// (docs/payments.md, "Conformance vectors").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, ROOT, World, body, hexToBigInt, stringify } from './lib.js';

const DIR = path.join(ROOT, 'vectors');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

const FIELDS = {
    client: ['balance', 'stake', 'tokens_used', 'state'],
    worker: ['paid_tokens', 'state'],
    proxy: ['stake', 'earned', 'paid_out', 'seqno', 'open_clients', 'open_workers', 'state'],
    root: ['params_version', 'proxy_image_hashes', 'worker_image_hashes', 'model_hashes', 'proxies'],
};

const SIGNED = ['charge_signed', 'grant_refund_signed', 'worker_payout_signed', 'worker_last_payout_signed'];

async function runStep(w, step) {
    const q = () => w.nextQueryId();
    switch (step.op) {
        case 'root_set_params':
            return w.rootOp(step.from ?? 'owner', body.root_set_params(q(), step.params));
        case 'root_add_hash':
        case 'root_remove_hash':
            return w.rootOp(step.from ?? 'owner', body[step.op](q(), step.kind, hexToBigInt(step.hash)));
        case 'root_register_proxy':
            return w.rootOp(step.from ?? 'owner', body.root_register_proxy(q(), step.id, step.endpoint));
        case 'root_unregister_proxy':
            return w.rootOp(step.from ?? 'owner', body.root_unregister_proxy(q(), step.id));
        case 'proxy_deploy':
            return w.proxyDeploy(step.stake, { from: step.from ?? 'proxy' });
        case 'proxy_save_state':
            return w.proxyOp(step.from ?? 'proxy', body.proxy_save_state(q(), step.seqno, hexToBigInt(step.hash)));
        case 'proxy_close':
            return w.proxyOp(step.from ?? 'proxy', body.proxy_close(q()));
        case 'client_deploy':
            return w.clientDeploy(step.client, step.amount, step.stake, { from: step.from ?? step.client });
        case 'top_up':
            return w.clientOp(step.client, step.from ?? step.client, body.top_up(q(), step.amount), {
                value: BigInt(step.amount) + 1_000_000_000n,
            });
        case 'owner_client_increase_stake':
            return w.clientOp(step.client, step.from ?? step.client, body.owner_client_increase_stake(q(), step.new_stake));
        case 'owner_client_withdraw':
            return w.clientOp(step.client, step.from ?? step.client, body.owner_client_withdraw(q(), step.amount));
        case 'owner_client_request_refund':
            return w.clientOp(step.client, step.from ?? step.client, body.owner_client_request_refund(q()));
        case 'worker_deploy':
            return w.workerDeploy(step.worker, { from: step.from ?? step.worker });
        default:
            if (SIGNED.includes(step.op)) {
                const to = step.client !== undefined ? (await w.clientOf(step.client)).address : (await w.workerOf(step.worker)).address;
                const target = step.target ? await w.resolveTarget(step.target) : to;
                return w.signed(step.op, to, step.tokens, { from: step.from ?? 'proxy', signer: step.signer ?? 'proxy', target });
            }
            throw new Error(`unknown step op ${step.op}`);
    }
}

async function checkExpect(w, expect, where) {
    for (const [key, want] of Object.entries(expect)) {
        const [kind, name] = key.split(':');
        if (kind === 'paid') {
            assert.equal(w.paidTo(name), BigInt(want), `${where}: ${key}`);
            continue;
        }
        let got;
        if (kind === 'client') got = await w.clientState(name);
        else if (kind === 'worker') got = await w.workerState(name);
        else if (kind === 'proxy') got = await w.proxyState();
        else if (kind === 'root') got = await w.rootState();
        else throw new Error(`${where}: unknown expect key ${key}`);
        assert.ok(got, `${where}: ${key} is not deployed`);
        for (const [field, value] of Object.entries(want)) {
            assert.ok(FIELDS[kind].includes(field), `${where}: unknown field ${key}.${field}`);
            const g = got[field];
            if (typeof value === 'string') assert.equal(g, value, `${where}: ${key}.${field}`);
            else assert.equal(g, BigInt(value), `${where}: ${key}.${field}`);
        }
    }
}

for (const file of files) {
    const vector = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf-8'));
    test(`vector ${vector.name}`, async () => {
        assert.equal(`${vector.name}.json`, file, 'vector name matches its file');
        const w = await World.create(vector.params);
        for (const [i, step] of vector.steps.entries()) {
            const where = `${file} step ${i} ${stringify(step)}`;
            if (step.advance_time !== undefined) {
                w.bc.now += step.advance_time;
                continue;
            }
            if (step.expect) {
                await checkExpect(w, step.expect, where);
                continue;
            }
            if (step.error) {
                assert.ok(step.error in EXIT, `${where}: unknown error name`);
                const before = stringify(await w.snapshot());
                const out = await runStep(w, step);
                assert.equal(out.failure?.code, EXIT[step.error], `${where}: exit code`);
                assert.equal(stringify(await w.snapshot()), before, `${where}: a rejected step changed something`);
            } else {
                const out = await runStep(w, step);
                assert.equal(out.failure, null, `${where}: failed with ${stringify(out.failure)}`);
            }
        }
    });
}
