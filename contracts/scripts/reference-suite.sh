#!/usr/bin/env bash
# Optional compatibility check, not part of `npm test`: runs the jest suite of the reference
# mirror (github.com/1IxI1/cocoon-contracts, written against the deployed FunC) against this
# build. Needs the mirror as a git directory (first argument; the `fetch` tool puts it under
# /work/.mirror/1IxI1+cocoon-contracts/repo) and network access to the npm registry. Works in a
# temporary directory; nothing is written here. `@ton/blueprint` is replaced by a stub whose
# compile(name) returns build/<name>.json, so the suite runs our code instead of compiling FunC.
set -euo pipefail
mirror=${1:-/work/.mirror/1IxI1+cocoon-contracts/repo}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git --git-dir="$mirror" archive HEAD tests wrappers tsconfig.json | tar -x -C "$work"
mkdir -p "$work/stub"
cat > "$work/stub/blueprint.js" <<JS
const fs = require('fs');
const { Cell } = require('@ton/core');
const names = { CocoonRoot: 'root', CocoonProxy: 'proxy', CocoonClient: 'client', CocoonWorker: 'worker', CocoonWallet: 'wallet' };
exports.compile = async (name) =>
    Cell.fromBase64(JSON.parse(fs.readFileSync('$here/build/' + names[name] + '.json', 'utf-8')).code_boc_base64);
exports.buildAllTact = async () => {};
exports.sleep = async () => {};
JS
# That repo's root wrapper lacks the two getters some of its tests call; add them (read in the
# order of facts §4) so that those tests run too.
cat > "$work/stub/root-getters.js" <<'JS'
const { CocoonRoot } = require('../wrappers/CocoonRoot');
CocoonRoot.prototype.getData = async function (provider) {
    const s = (await provider.get('get_cocoon_data', [])).stack;
    return {
        version: s.readNumber(), lastProxySeqno: s.readNumber(), paramsVersion: s.readNumber(), uniqueId: s.readNumber(),
        isTest: s.readNumber(), pricePerToken: s.readNumber(), workerFeePerToken: s.readNumber(),
        minProxyStake: s.readNumber(), minClientStake: s.readNumber(), ownerAddress: s.readAddress(),
    };
};
CocoonRoot.prototype.getCurParams = async function (provider) {
    const s = (await provider.get('get_cur_params', [])).stack;
    return {
        paramsVersion: s.readNumber(), uniqueId: s.readNumber(), isTest: s.readNumber(), pricePerToken: s.readBigNumber(),
        workerFeePerToken: s.readBigNumber(), cachedTokensPriceMultiplier: s.readNumber(),
        reasoningTokensPriceMultiplier: s.readNumber(), proxyDelayBeforeClose: s.readNumber(),
        clientDelayBeforeClose: s.readNumber(), minProxyStake: s.readBigNumber(), minClientStake: s.readBigNumber(),
        proxyScHash: s.readBigNumber(), workerScHash: s.readBigNumber(), clientScHash: s.readBigNumber(),
    };
};
JS
cat > "$work/jest.config.js" <<'JS'
module.exports = {
    transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
    testEnvironment: '@ton/sandbox/jest-environment',
    moduleNameMapper: { '^@ton/blueprint$': '<rootDir>/stub/blueprint.js' },
    setupFilesAfterEnv: ['<rootDir>/stub/root-getters.js'],
};
JS
echo '{ "name": "reference-suite", "private": true }' > "$work/package.json"
cd "$work"
npm install --no-audit --no-fund --silent jest@30 ts-jest@29 typescript@5 @types/jest@30 \
    @ton/core@0.63.1 @ton/sandbox@0.41.0 @ton/test-utils @ton/crypto@3.3.0
npx jest --runInBand "${@:2}"
