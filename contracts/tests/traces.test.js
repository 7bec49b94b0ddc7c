// fixtures/traces.json (the sandbox's answers that crates/cocoon-tvm/tests/parity.rs must
// reproduce) must be exactly what scripts/traces.js produces from the current build: after
// changing a contract or the scenario, run `node scripts/traces.js` and commit the fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { FIXTURE, render, traces } from '../scripts/traces.js';

test('fixtures/traces.json matches what scripts/traces.js produces now', async () => {
    const committed = fs.readFileSync(FIXTURE, 'utf-8');
    const produced = render(await traces());
    assert.ok(produced === committed, 'fixtures/traces.json is stale: run `node scripts/traces.js` and commit it');
    const fixture = JSON.parse(committed);
    const transactions = fixture.steps.flatMap((s) => s.result.transactions ?? []);
    assert.ok(transactions.length >= 30, 'the scenario lost transactions');
    assert.ok(transactions.some((tx) => tx.exit_code !== null && tx.exit_code > 1), 'no rejection in the scenario');
    assert.ok(transactions.some((tx) => tx.out_messages.some((m) => m.bounced)), 'no bounce in the scenario');
});
