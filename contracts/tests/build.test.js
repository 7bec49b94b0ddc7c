// The committed build/<name>.json must be exactly what src/ compiles to: Rust code (and the
// devnet) will embed these files to compute addresses and deploy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cell } from '@ton/core';
import { CONTRACTS, ROOT, buildJson, compile } from '../scripts/build.js';

test('every contract is checked', () => {
    // An emptied list would check nothing and still pass.
    assert.deepEqual([...CONTRACTS].sort(), ['client', 'proxy', 'root', 'wallet', 'worker']);
});

for (const name of CONTRACTS) {
    test(`build/${name}.json matches src/${name}.tolk`, async () => {
        const committed = fs.readFileSync(path.join(ROOT, 'build', `${name}.json`), 'utf-8');
        const built = await compile(name);
        assert.equal(committed, buildJson(built), `build/${name}.json is stale: run \`npm run build\``);
        const cell = Cell.fromBase64(built.code_boc_base64);
        assert.equal(cell.hash().toString('hex'), built.code_hash_hex);
    });
}
