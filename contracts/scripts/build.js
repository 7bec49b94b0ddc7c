// Compiles every contract with tolk-js. `node scripts/build.js` writes build/<name>.json;
// tests import compileAll() to check that the committed build matches the sources.
import { runTolkCompiler } from '@ton/tolk-js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CONTRACTS = ['root', 'proxy', 'client', 'worker'];

export async function compile(name) {
    const src = path.join(ROOT, 'src');
    const r = await runTolkCompiler({
        entrypointFileName: `${name}.tolk`,
        fsReadCallback: (p) => fs.readFileSync(path.join(src, p), 'utf-8'),
    });
    if (r.status !== 'ok') {
        throw new Error(`${name}.tolk: ${r.message}`);
    }
    return { code_boc_base64: r.codeBoc64, code_hash_hex: r.codeHashHex.toLowerCase() };
}

export async function compileAll() {
    const out = {};
    for (const name of CONTRACTS) {
        out[name] = await compile(name);
    }
    return out;
}

export function buildJson(built) {
    return JSON.stringify(built, null, 2) + '\n';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const only = process.argv.slice(2);
    const all = await compileAll();
    fs.mkdirSync(path.join(ROOT, 'build'), { recursive: true });
    for (const [name, built] of Object.entries(all)) {
        if (only.length && !only.includes(name)) continue;
        fs.writeFileSync(path.join(ROOT, 'build', `${name}.json`), buildJson(built));
        console.log(`build/${name}.json ${built.code_hash_hex}`);
    }
}
