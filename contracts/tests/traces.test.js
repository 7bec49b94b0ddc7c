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
    // What the scenario holds now: losing steps or transactions (down to an empty fixture,
    // which an empty run would match) fails; after extending the scenario, raise these.
    assert.ok(fixture.steps.length >= 27, `the scenario lost steps (${fixture.steps.length})`);
    assert.ok(transactions.length >= 39, `the scenario lost transactions (${transactions.length})`);
    assert.ok(Object.keys(fixture.addresses).length >= 11, 'the scenario lost accounts');
    assert.ok(transactions.some((tx) => tx.exit_code !== null && tx.exit_code > 1), 'no rejection in the scenario');
    assert.ok(transactions.some((tx) => tx.out_messages.some((m) => m.bounced)), 'no bounce in the scenario');
});
