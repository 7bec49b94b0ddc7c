// Compiles every contract of contracts with tolk-js. `node scripts/build.js` writes
// build/<name>.json ({"code_boc_base64", "code_hash_hex"}, the format of contracts/build);
// tests/build.test.js calls compile() to check that the committed build matches the sources.
import { runTolkCompiler } from '@ton/tolk-js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CONTRACTS = ['root', 'proxy', 'client', 'worker', 'wallet'];

export async function compile(name) {
    const src = path.join(ROOT, 'src');
    const result = await runTolkCompiler({
        entrypointFileName: `${name}.tolk`,
        fsReadCallback: (p) => fs.readFileSync(path.join(src, p), 'utf-8'),
    });
    if (result.status !== 'ok') {
        throw new Error(`${name}.tolk: ${result.message}`);
    }
    return { code_boc_base64: result.codeBoc64, code_hash_hex: result.codeHashHex.toLowerCase() };
}

export function buildJson(built) {
    return JSON.stringify(built, null, 2) + '\n';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const only = process.argv.slice(2);
    fs.mkdirSync(path.join(ROOT, 'build'), { recursive: true });
    for (const name of CONTRACTS) {
        if (only.length && !only.includes(name)) continue;
        if (!fs.existsSync(path.join(ROOT, 'src', `${name}.tolk`))) continue;
        const built = await compile(name);
        fs.writeFileSync(path.join(ROOT, 'build', `${name}.json`), buildJson(built));
        console.log(`build/${name}.json ${built.code_hash_hex}`);
    }
}
