// fixtures/codecs.json must be exactly what scripts/codec-fixtures.js produces from this build:
// the Rust codecs (crates/cocoon-ton/tests/cocoon_codecs.rs) are pinned against that file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { FIXTURE, fixtureJson, generate } from '../scripts/codec-fixtures.js';

test('fixtures/codecs.json matches scripts/codec-fixtures.js', async () => {
    const committed = fs.readFileSync(FIXTURE, 'utf-8');
    assert.equal(committed, fixtureJson(await generate()), 'fixtures/codecs.json is stale: run `node scripts/codec-fixtures.js`');
});
