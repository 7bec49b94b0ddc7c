// fixtures/codecs.json must be exactly what scripts/codec-fixtures.js produces from this build:
// the Rust codecs (crates/cocoon-ton/tests/cocoon_codecs.rs) are pinned against that file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { FIXTURE, fixtureJson, generate } from '../scripts/codec-fixtures.js';

// How many vectors of each kind the fixture holds now. A generator that quietly produced
// fewer (or none: an empty fixture matches an empty generation) would leave the Rust codecs
// pinned against nothing, so losing vectors fails; after adding some, raise these.
const MINIMUM = { storage: 15, bodies: 123, addresses: 10, signed: 3 };
const MINIMUM_LAYOUTS = {
    storage: ['client', 'proxy', 'root', 'wallet', 'worker'],
    bodies: ['client', 'excesses', 'payout', 'proxy', 'root', 'wallet', 'wallet_external', 'worker'],
    addresses: ['client', 'proxy', 'wallet', 'worker'],
};

test('fixtures/codecs.json matches scripts/codec-fixtures.js', async () => {
    const committed = fs.readFileSync(FIXTURE, 'utf-8');
    assert.equal(committed, fixtureJson(await generate()), 'fixtures/codecs.json is stale: run `node scripts/codec-fixtures.js`');
});

test('fixtures/codecs.json holds at least as many vectors as it did', () => {
    const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf-8'));
    for (const [kind, minimum] of Object.entries(MINIMUM)) {
        assert.ok(Array.isArray(fixture[kind]), `${kind} is not a list`);
        assert.ok(fixture[kind].length >= minimum, `${kind}: ${fixture[kind].length} vectors, expected at least ${minimum}`);
    }
    for (const [kind, layouts] of Object.entries(MINIMUM_LAYOUTS)) {
        const present = new Set(fixture[kind].map((vector) => vector.layout));
        for (const layout of layouts) {
            assert.ok(present.has(layout), `${kind}: no ${layout} vector`);
        }
    }
    assert.deepEqual(Object.keys(fixture.params).sort(), ['proxy', 'root'], 'params of root and proxy');
});
