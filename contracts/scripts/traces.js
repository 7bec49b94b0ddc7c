// Parity fixtures for the embedded TVM (crates/cocoon-tvm): runs a fixed set of scenarios on
// @ton/sandbox with the contracts of build/*.json and writes fixtures/traces.json, holding every
// input (messages as BOCs, the time of each step, get-method arguments) and everything the
// sandbox answered (per transaction: exit code, phase flags, gas, fees, balances, out-messages;
// per get-method: exit code, gas, stack). crates/cocoon-tvm/tests/parity.rs replays the inputs
// on the Rust network and requires the same answers; tests/traces.test.js fails when this file
// no longer produces the committed fixture.
//
// Messages come from plain addresses (sha256 of a name, no code), so every transaction of a trace
// happens on both sides; nothing here uses sandbox treasuries.
//
//   npm run traces        # (node scripts/traces.js) rewrites fixtures/traces.json
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Blockchain, internal } from '@ton/sandbox';
import { Address, Cell, beginCell, storeMessageRelaxed, storeStateInit, toNano } from '@ton/core';
import { sha256_sync, sign } from '@ton/crypto';
import {
    ALL_CODES, CODE, OP, PARAMS, ROOT, START_TIME, clientData, head, keyOf, paramsCell, proxyData,
    rootData, signedBody, stateInit, tokensField, walletData, workerData,
} from '../tests/lib.js';

export const FIXTURE = path.join(ROOT, 'fixtures', 'traces.json');

const DAY = 86_400;
const plain = (name) => new Address(0, sha256_sync(Buffer.from(name, 'utf-8')));
const b64 = (cell) => cell.toBoc().toString('base64');
const raw = (address) => address.toRawString();
const str = (n) => (n === undefined || n === null ? null : n.toString());

/** The accounts of the scenario, by name: plain wallets and the contracts. */
function accounts() {
    const a = {};
    for (const name of ['rootOwner', 'proxyOwner', 'alice', 'bob', 'eve', 'nobody']) a[name] = { address: plain(name) };
    const proxyKey = keyOf('proxy');
    a.root = stateInit(CODE.root, rootData({ owner: a.rootOwner.address, params: paramsCell(PARAMS, ALL_CODES) }));
    const proxyParams = paramsCell(PARAMS, { worker: CODE.worker, client: CODE.client });
    a.proxy = stateInit(CODE.proxy, proxyData({
        owner: a.proxyOwner.address, publicKey: proxyKey.publicKey, root: a.root.address, params: proxyParams,
    }));
    const common = { proxy: a.proxy.address, publicKey: proxyKey.publicKey, params: paramsCell(PARAMS) };
    a.client = stateInit(CODE.client, clientData({ owner: a.alice.address, stake: PARAMS.minClientStake, ...common }));
    a.worker = stateInit(CODE.worker, workerData({ owner: a.bob.address, ...common }));
    a.wallet = stateInit(CODE.wallet, walletData({ publicKey: keyOf('wallet').publicKey, owner: a.alice.address }));
    return a;
}

const stateInitBoc = (si) => b64(beginCell().store(storeStateInit({ code: si.code, data: si.data })).endCell());

/** A cocoon-wallet external (facts §10): signature, then subwallet, valid_until, seqno, (mode ^msg)*. */
function walletExternal({ seqno, validUntil, messages = [] }) {
    let b = beginCell().storeUint(0, 32).storeUint(validUntil, 32).storeUint(seqno, 32);
    for (const [mode, msg] of messages) b = b.storeUint(mode, 8).storeRef(msg);
    const signed = b.endCell();
    return beginCell().storeBuffer(sign(signed.hash(), keyOf('wallet').secretKey)).storeSlice(signed.beginParse()).endCell();
}

function transfer(to, value) {
    return beginCell().store(storeMessageRelaxed({
        info: {
            type: 'internal', ihrDisabled: true, bounce: false, bounced: false, dest: to, value: { coins: value },
            ihrFee: 0n, forwardFee: 0n, createdLt: 0n, createdAt: 0,
        },
        body: new Cell(),
    })).endCell();
}

/**
 * The scenario: a list of steps, each {name, now, message} or {name, now, get}. `now` is absolute.
 * Money values follow the C++ runners (flows.test.js); times follow PARAMS' delays.
 */
function scenario(a) {
    const t0 = START_TIME;
    const proxyKey = keyOf('proxy');
    const int = (name, now, from, to, value, body, { bounce = true, init = null } = {}) => ({
        name, now,
        message: {
            kind: 'internal', from: raw(a[from].address), to: raw(a[to].address), value: value.toString(), bounce,
            body: b64(body), state_init: init ? stateInitBoc(a[init]) : null,
        },
    });
    const ext = (name, now, to, body, { init = null } = {}) => ({
        name, now, message: { kind: 'external', to: raw(a[to].address), body: b64(body), state_init: init ? stateInitBoc(a[init]) : null },
    });
    const get = (name, now, account, method, args = []) => ({ name, now, get: { account: raw(a[account].address), method, args } });
    const signed = (op, target, queryId, tokens, excessesTo) => signedBody({
        op, queryId, target: a[target].address, secretKey: proxyKey.secretKey, excessesTo: a[excessesTo].address,
        fields: tokensField(tokens),
    });
    const modelHash = BigInt('0x' + sha256_sync(Buffer.from('Qwen/Qwen3-0.6B@main:weights', 'utf-8')).toString('hex'));
    const stake = PARAMS.minClientStake;
    const amount = (stake / PARAMS.pricePerToken) * PARAMS.pricePerToken;
    const later = t0 + 30 * DAY;
    return [
        int('root deploy', t0, 'eve', 'root', toNano('5'), new Cell(), { init: 'root' }),
        int('root add model hash', t0 + 10, 'rootOwner', 'root', toNano('1'),
            head(OP.root_add_model_type, 1n).storeUint(modelHash, 256).endCell()),
        int('root add model hash, not the owner (1010, bounced)', t0 + 20, 'eve', 'root', toNano('1'),
            head(OP.root_add_model_type, 2n).storeUint(modelHash, 256).endCell()),
        get('root model_hash_is_valid', t0 + 20, 'root', 'model_hash_is_valid', [{ type: 'int', value: modelHash.toString() }]),
        get('root get_cur_params', t0 + 20, 'root', 'get_cur_params'),
        int('proxy deploy', t0 + 30, 'eve', 'proxy', toNano('20'), new Cell(), { init: 'proxy' }),
        int('client deploy', t0 + 40, 'eve', 'client', toNano('0.8'), new Cell(), { init: 'client' }),
        int('worker deploy', t0 + 50, 'eve', 'worker', toNano('0.3'), new Cell(), { init: 'worker' }),
        int('client register', t0 + 60, 'alice', 'client', toNano('1'),
            head(OP.owner_client_register, 3n).storeUint(42n, 64).storeAddress(a.alice.address).endCell()),
        int('client top-up', t0 + 70, 'alice', 'client', amount * 3n + toNano('0.7'),
            head(OP.ext_client_top_up, 4n).storeCoins(amount * 3n).storeAddress(a.alice.address).endCell()),
        int('client signed charge', t0 + 80, 'proxyOwner', 'client', toNano('0.7'),
            signed(OP.ext_client_charge_signed, 'client', 5n, toNano('1') / PARAMS.pricePerToken, 'proxyOwner')),
        int('client signed charge replayed (1000, bounced)', t0 + 90, 'proxyOwner', 'client', toNano('0.7'),
            signed(OP.ext_client_charge_signed, 'client', 5n, toNano('1') / PARAMS.pricePerToken, 'proxyOwner')),
        get('client get_cocoon_client_data', t0 + 90, 'client', 'get_cocoon_client_data'),
        int('worker signed payout', t0 + 100, 'bob', 'worker', toNano('0.5'),
            signed(OP.ext_worker_payout_request_signed, 'worker', 6n, 1_000_000n, 'bob')),
        int('worker signed payout, exactly 0.1 TON (1003, bounced)', t0 + 110, 'bob', 'worker', toNano('0.1'),
            signed(OP.ext_worker_payout_request_signed, 'worker', 7n, 2_000_000n, 'bob')),
        get('worker get_cocoon_worker_data', t0 + 110, 'worker', 'get_cocoon_worker_data'),
        // Thirty days later: storage fees on every account, plain wallets included.
        int('client withdraw after 30 days', later, 'alice', 'client', toNano('0.7'),
            head(OP.owner_client_withdraw, 8n).storeAddress(a.alice.address).endCell()),
        int('proxy commission payout', later + 10, 'proxyOwner', 'proxy', toNano('0.2'),
            head(OP.ext_proxy_payout_request, 9n).storeAddress(a.proxyOwner.address).endCell()),
        get('proxy get_cocoon_proxy_data', later + 10, 'proxy', 'get_cocoon_proxy_data'),
        int('bounceable value to a code-less address (bounced back)', later + 20, 'eve', 'nobody', toNano('1'), new Cell()),
        int('wallet funded before deploy', later + 30, 'eve', 'wallet', toNano('10'), new Cell(), { bounce: false }),
        ext('wallet deployed by its first external', later + 40, 'wallet',
            walletExternal({ seqno: 0, validUntil: later + 3600 }), { init: 'wallet' }),
        ext('wallet external transfer', later + 50, 'wallet',
            walletExternal({ seqno: 1, validUntil: later + 3600, messages: [[3, transfer(a.bob.address, toNano('1'))]] })),
        ext('wallet external replayed (1032, not accepted)', later + 60, 'wallet',
            walletExternal({ seqno: 1, validUntil: later + 3600, messages: [[3, transfer(a.bob.address, toNano('1'))]] })),
        // The rejected external leaves no trace, in logical time either: the next lt follows on.
        int('value to a code-less address after the rejected external', later + 70, 'eve', 'bob', toNano('0.5'), new Cell(), { bounce: false }),
        get('wallet seqno', later + 60, 'wallet', 'seqno'),
        get('wallet get_owner_address', later + 60, 'wallet', 'get_owner_address'),
    ];
}

function stackItem(item) {
    switch (item.type) {
        case 'int': return { type: 'int', value: item.value.toString() };
        case 'null': return { type: 'null' };
        case 'cell': return { type: 'cell', boc: b64(item.cell) };
        case 'slice': return { type: 'slice', boc: b64(item.cell) };
        case 'builder': return { type: 'builder', boc: b64(item.cell) };
        case 'tuple': return { type: 'tuple', items: item.items.map(stackItem) };
        default: throw new Error(`stack item ${item.type}`);
    }
}

function stackArg(arg) {
    if (arg.type === 'int') return { type: 'int', value: BigInt(arg.value) };
    if (arg.type === 'slice') return { type: 'slice', cell: Cell.fromBase64(arg.boc) };
    throw new Error(`argument ${arg.type}`);
}

function outMessage(m) {
    const i = m.info;
    if (i.type === 'internal') {
        return {
            kind: 'internal', dest: raw(i.dest), value: str(i.value.coins), bounce: i.bounce, bounced: i.bounced,
            fwd_fee: str(i.forwardFee), created_lt: str(i.createdLt), body: b64(m.body),
        };
    }
    return { kind: 'external', dest: null, value: null, bounce: null, bounced: null, fwd_fee: null, created_lt: str(i.createdLt), body: b64(m.body) };
}

function transaction(tx, before, after) {
    const d = tx.description;
    const c = d.computePhase;
    return {
        account: raw(new Address(0, Buffer.from(tx.address.toString(16).padStart(64, '0'), 'hex'))),
        lt: str(tx.lt),
        orig_status: tx.oldStatus,
        end_status: tx.endStatus,
        compute_skip_reason: c.type === 'skipped' ? c.reason : null,
        exit_code: c.type === 'vm' ? c.exitCode : null,
        compute_success: c.type === 'vm' ? c.success : false,
        gas_used: c.type === 'vm' ? str(c.gasUsed) : '0',
        gas_fees: c.type === 'vm' ? str(c.gasFees) : '0',
        action_success: d.actionPhase ? d.actionPhase.success : null,
        action_result_code: d.actionPhase ? d.actionPhase.resultCode : null,
        aborted: d.aborted,
        storage_fees: str(d.storagePhase?.storageFeesCollected ?? 0n),
        total_fees: str(tx.totalFees.coins),
        balance_before: str(before),
        balance_after: str(after),
        out_messages: [...tx.outMessages.values()].map(outMessage),
    };
}

/** Runs the scenario on a fresh sandbox and returns the fixture object. */
export async function traces() {
    const a = accounts();
    const bc = await Blockchain.create();
    const balance = async (address) => (await bc.getContract(address)).balance;
    const steps = [];
    for (const step of scenario(a)) {
        bc.now = step.now;
        if (step.get) {
            const g = step.get;
            const r = await (await bc.getContract(Address.parse(g.account))).get(g.method, g.args.map(stackArg));
            steps.push({ ...step, result: { exit_code: r.exitCode, gas_used: str(r.gasUsed), stack: r.stack.map(stackItem) } });
            continue;
        }
        const m = step.message;
        const init = m.state_init ? (() => {
            const s = Cell.fromBase64(m.state_init).beginParse();
            s.loadMaybeUint(5); // split_depth
            s.loadBit(); // special
            return { code: s.loadMaybeRef(), data: s.loadMaybeRef() };
        })() : undefined;
        const message = m.kind === 'internal'
            ? internal({ from: Address.parse(m.from), to: Address.parse(m.to), value: BigInt(m.value), bounce: m.bounce, body: Cell.fromBase64(m.body), stateInit: init })
            : { info: { type: 'external-in', dest: Address.parse(m.to), importFee: 0n }, init, body: Cell.fromBase64(m.body) };
        // Balances are read around every transaction, so each is followed one at a time.
        const known = new Map();
        const transactions = [];
        let rejected = null;
        try {
            for (const name of Object.keys(a)) known.set(raw(a[name].address), await balance(a[name].address));
            const iter = await bc.sendMessageIter(message);
            for await (const tx of iter) {
                const account = raw(new Address(0, Buffer.from(tx.address.toString(16).padStart(64, '0'), 'hex')));
                const after = await balance(Address.parse(account));
                transactions.push(transaction(tx, known.get(account) ?? 0n, after));
                known.set(account, after);
            }
        } catch (e) {
            if (e.exitCode === undefined) throw e;
            rejected = { exit_code: e.exitCode };
        }
        const balances = {};
        for (const name of Object.keys(a)) balances[name] = str(await balance(a[name].address));
        steps.push({ ...step, result: { rejected, transactions, balances } });
    }
    const addresses = {};
    for (const name of Object.keys(a)) addresses[name] = raw(a[name].address);
    return {
        about: 'Written by contracts/scripts/traces.js on @ton/sandbox; replayed by crates/cocoon-tvm/tests/parity.rs.',
        addresses,
        steps,
    };
}

export const render = (fixture) => JSON.stringify(fixture, null, 1) + '\n';

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const fixture = await traces();
    fs.mkdirSync(path.dirname(FIXTURE), { recursive: true });
    fs.writeFileSync(FIXTURE, render(fixture));
    const txs = fixture.steps.reduce((n, s) => n + (s.result.transactions?.length ?? 0), 0);
    console.log(`wrote ${path.relative(process.cwd(), FIXTURE)}: ${fixture.steps.length} steps, ${txs} transactions`);
}
