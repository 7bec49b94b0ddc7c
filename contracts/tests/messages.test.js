// The message bodies cocoon-ton builds (pinned by crates/cocoon-ton/tests/message_fixtures.rs in
// fixtures/messages.json) must be exactly the bodies these tests send to the contracts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Address } from '@ton/core';
import { OP, ROOT, body, keyOf, signedBody } from './lib.js';

const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'messages.json'), 'utf-8'));
const h = (hex) => BigInt('0x' + hex);

function build(m) {
    const q = m.query_id;
    switch (m.op) {
        case 'top_up': return body.top_up(q, m.amount);
        case 'owner_client_increase_stake': return body.owner_client_increase_stake(q, m.amount);
        case 'owner_client_withdraw': return body.owner_client_withdraw(q, m.amount);
        case 'owner_client_request_refund': return body.owner_client_request_refund(q);
        case 'owner_client_register': return body.owner_client_register(q, h(m.hash));
        case 'client_deploy': return body.client_deploy(q, m.amount, m.stake, h(m.hash));
        case 'worker_deploy': return body.worker_deploy(q);
        case 'proxy_deploy': return body.proxy_deploy(q, m.amount);
        case 'proxy_save_state': return body.proxy_save_state(q, m.seqno, h(m.hash));
        case 'proxy_close': return body.proxy_close(q);
        case 'root_set_params': return body.root_set_params(q, m.params);
        case 'root_add_hash': return body.root_add_hash(q, m.kind, h(m.hash));
        case 'root_remove_hash': return body.root_remove_hash(q, m.kind, h(m.hash));
        case 'root_register_proxy': return body.root_register_proxy(q, m.id, m.endpoint);
        case 'root_unregister_proxy': return body.root_unregister_proxy(q, m.id);
        default:
            return signedBody({
                op: OP[m.op],
                queryId: q,
                tokens: m.tokens,
                target: Address.parse(m.target),
                secretKey: keyOf(m.signer).secretKey,
                excessTo: m.excess_to ? Address.parse(m.excess_to) : null,
            });
    }
}

test('fixture covers every opcode the daemons send', () => {
    const ops = new Set(fixture.messages.map((m) => m.op));
    assert.ok(ops.size >= 19, `only ${ops.size} ops in fixtures/messages.json`);
});

for (const [i, m] of fixture.messages.entries()) {
    test(`message ${i} ${m.op}${m.excess_to ? ' with excess_to' : ''} is bit-identical to cocoon-ton's`, () => {
        assert.equal(build(m).hash().toString('hex'), m.cell_hash);
    });
}
