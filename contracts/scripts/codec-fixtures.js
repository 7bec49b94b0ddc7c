// Writes fixtures/codecs.json: cells made by the contracts of contracts in the sandbox (and
// by tests/lib.js, the way the tests build them), for the Rust codecs of
// crates/cocoon-ton/src/cocoon to parse and rebuild bit for bit (crates/cocoon-ton/tests/
// cocoon_codecs.rs). `node scripts/codec-fixtures.js` rewrites the file;
// tests/codec-fixtures.test.js checks that the committed file is what this script produces.
//
// Everything is deterministic: fixed time, keys from fixed names, query ids from a counter.
// Contents:
//   storage    storage cells read from deployed accounts after operations, with get-method results
//   bodies     every inbound body as tests/lib.js builds it, and every outbound body the contracts
//              sent while the operations ran (client/worker reports, payouts, excesses), each with
//              the layout it belongs to
//   addresses  client and worker addresses computed by the contracts' own derivation code
//              (src/common.tolk, in a helper compiled here) and accepted by the proxy contract as
//              senders; proxy and wallet addresses where the sandbox deployed them
//   signed     proxy-signed messages with the seed of the key that signed them
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTolkCompiler } from '@ton/tolk-js';
import { Address, Cell, beginCell, external, toNano } from '@ton/core';
import { sha256_sync, sign } from '@ton/crypto';
import {
    CODE, OP, PARAMS, START_TIME, World, bigKey, expectOk, head, keyOf, stateInit, walletData,
} from '../tests/lib.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURE = path.join(ROOT, 'fixtures', 'codecs.json');

// A contract with get methods that run the address derivation of src/common.tolk, the code the
// proxy contract runs to authenticate its client and worker contracts.
const DERIVE_TOLK = `tolk 1.3
import "common"

fun onInternalMessage(in: InMessage) {
}

get fun derived_worker_address(owner: slice, proxy: slice, proxyPublicKey: int, params: cell): slice {
    val p = CocoonParams.unpack(params);
    val data = workerInitialData(owner as any_address, proxy as any_address, proxyPublicKey, p.packWithoutCode());
    return addressOfStateInit(p.workerCode, data) as slice;
}

get fun derived_client_address(owner: slice, proxy: slice, proxyPublicKey: int, params: cell): slice {
    val p = CocoonParams.unpack(params);
    val data = clientInitialData(owner as any_address, proxy as any_address, proxyPublicKey, p.minClientStake, p.packWithoutCode());
    return addressOfStateInit(p.clientCode, data) as slice;
}
`;

async function compileDeriver() {
    const result = await runTolkCompiler({
        entrypointFileName: 'derive.tolk',
        fsReadCallback: (p) => (p === 'derive.tolk' ? DERIVE_TOLK : fs.readFileSync(path.join(ROOT, 'src', p), 'utf-8')),
    });
    if (result.status !== 'ok') throw new Error(`derive.tolk: ${result.message}`);
    return Cell.fromBase64(result.codeBoc64);
}

const boc = (cell) => cell.toBoc({ idx: false, crc32: true }).toString('base64');
const raw = (address) => address.toRawString();
const hex = (buf) => Buffer.from(buf).toString('hex');
const num = (v) => (typeof v === 'bigint' ? v.toString() : v);

export async function generate() {
    const w = await World.create();
    const out = { storage: [], bodies: [], addresses: [], signed: [] };
    const seen = new Set();
    const layoutOf = new Map([
        [raw(w.root.address), 'root'],
        [raw(w.proxy.address), 'proxy'],
        [raw(w.client.address), 'client'],
        [raw(w.worker.address), 'worker'],
    ]);

    // Records a body once, under the layout of its destination (or of its op for answers).
    const record = (name, dest, body) => {
        if (body.bits.length === 0 && body.refs.length === 0) return;
        const key = boc(body);
        if (seen.has(key)) return;
        seen.add(key);
        let layout = layoutOf.get(raw(dest));
        if (!layout) {
            const op = body.beginParse().loadUint(32);
            layout = op === OP.excesses ? 'excesses' : op === OP.payout ? 'payout' : op === 0 ? 'wallet' : `op ${op.toString(16)}`;
        }
        out.bodies.push({ name, layout, boc: key });
    };
    // Sends `body`, expects success on `to`, records the body and every body the contracts sent.
    const run = async (name, from, to, body, value = toNano('1')) => {
        const r = await w.send(from, to, body, value);
        expectOk(r, to);
        record(name, to, body);
        for (const tx of r.transactions) {
            for (const m of tx.outMessages.values()) {
                if (m.info.type === 'internal') record(`${name}: sent by ${layoutOf.get(raw(m.info.src)) ?? 'wallet'}`, m.info.dest, m.body);
            }
        }
        return r;
    };
    const storage = async (name, layout, address, getters = {}) => {
        const entry = { name, layout, address: raw(address), boc: boc(await w.dataOf(address)) };
        for (const [method, read] of Object.entries(getters)) {
            entry[method] = read((await w.get(address, method)).stackReader);
        }
        out.storage.push(entry);
    };
    const rootGetters = {
        get_cocoon_data: (r) => [r.readNumber(), r.readNumber(), r.readNumber(), r.readNumber(), r.readNumber(),
            r.readBigNumber(), r.readBigNumber(), r.readBigNumber(), r.readBigNumber(), raw(r.readAddress())].map(num),
        // Numbers in decimal, the three code hashes as 64 hex digits.
        get_cur_params: (r) => Array.from({ length: 14 }, (_, i) => (i < 11 ? r.readBigNumber().toString() : r.readBigNumber().toString(16).padStart(64, '0'))),
    };
    const { alice, bob, eve, rootOwner, proxyOwner, submitter } = w.addr;

    // ---- root ----
    await storage('root at deploy', 'root', w.root.address, rootGetters);
    const rootOp = (name, op, fields = (b) => b) => run(name, rootOwner, w.root.address, fields(head(op, w.nextQueryId())).endCell());
    const hash = (s) => sha256_sync(Buffer.from(s, 'utf-8'));
    for (const s of ['worker-a', 'worker-b', 'worker-c']) await rootOp(`root add worker ${s}`, OP.root_add_worker_type, (b) => b.storeBuffer(hash(s)));
    // Hashes sharing long prefixes, so that the dictionary uses every label form.
    for (const h of ['00'.repeat(32), '00'.repeat(31) + '01', '80' + '00'.repeat(31), 'ff'.repeat(32)]) {
        await rootOp(`root add model ${h.slice(0, 4)}…${h.slice(-2)}`, OP.root_add_model_type, (b) => b.storeBuffer(Buffer.from(h, 'hex')));
    }
    await rootOp('root add model qwen', OP.root_add_model_type, (b) => b.storeBuffer(hash('Qwen/Qwen3-8B@main:abc')));
    await rootOp('root add proxy image', OP.root_add_proxy_type, (b) => b.storeBuffer(hash('proxy-image')));
    await rootOp('root del worker', OP.root_del_worker_type, (b) => b.storeBuffer(hash('worker-b')));
    await rootOp('root del model', OP.root_del_model_type, (b) => b.storeBuffer(hash('absent')));
    await rootOp('root del proxy image', OP.root_del_proxy_type, (b) => b.storeBuffer(hash('absent')));
    const entry = (text) => (b) => b.storeUint(0, 1).storeUint(text.length, 7).storeBuffer(Buffer.from(text, 'ascii'));
    for (let i = 1; i <= 9; i++) {
        await rootOp(`root register proxy ${i}`, OP.root_register_proxy, entry(i % 3 ? `10.0.0.${i}:8000` : `10.0.0.${i}:8001 10.0.1.${i}:8002`));
    }
    await rootOp('root update proxy', OP.root_update_proxy, (b) => entry('[192.168.1.1]:9000')(b.storeUint(2, 32)));
    await rootOp('root unregister proxy', OP.root_unregister_proxy, (b) => b.storeUint(5, 32));
    await storage('root after hash, proxy and registry changes', 'root', w.root.address, rootGetters);
    await rootOp('root change price', OP.root_change_price, (b) => b.storeCoins(25n).storeCoins(21n));
    await rootOp('root change params', OP.root_change_params, (b) => b.storeCoins(30n).storeCoins(27n).storeUint(7200, 32)
        .storeUint(900, 32).storeCoins(toNano('3')).storeCoins(toNano('1.5')));
    await rootOp('root upgrade contracts', OP.root_upgrade_contracts, (b) => b.storeRef(CODE.proxy).storeRef(CODE.worker).storeRef(CODE.client));
    await storage('root after params changes', 'root', w.root.address, rootGetters);
    await rootOp('root reset', OP.root_reset);
    await rootOp('root change owner', OP.root_change_owner, (b) => b.storeAddress(eve));
    await storage('root after reset and owner change', 'root', w.root.address, rootGetters);
    // Bodies the root accepts but that replace its code or data: built only.
    record('root upgrade', w.root.address, head(OP.root_upgrade, 77n).storeRef(CODE.root).endCell());
    record('root upgrade full', w.root.address, head(OP.root_upgrade_full, 78n).storeRef(await w.dataOf(w.root.address)).storeRef(CODE.root).endCell());

    // ---- client ----
    await storage('client at deploy', 'client', w.client.address);
    const ownerOp = (name, op, fields, value = toNano('0.7')) =>
        run(name, alice, w.client.address, fields(head(op, w.nextQueryId())).storeAddress(alice).endCell(), value);
    await ownerOp('client register', OP.owner_client_register, (b) => b.storeUint(0x1234_5678_9abc_def0n, 64), toNano('1'));
    await run('client top up', eve, w.client.address, head(OP.ext_client_top_up, w.nextQueryId()).storeCoins(toNano('5')).storeAddress(eve).endCell(), toNano('5.7'));
    await ownerOp('client change secret hash', OP.owner_client_change_secret_hash, (b) => b.storeBuffer(hash('secret')));
    await ownerOp('client change secret hash and top up', OP.owner_client_change_secret_hash_and_top_up,
        (b) => b.storeCoins(toNano('2')).storeBuffer(hash('secret 2')), toNano('2.7'));
    await ownerOp('client increase stake', OP.owner_client_increase_stake, (b) => b.storeCoins(toNano('1.25')));
    await run('client charge', submitter, w.client.address, w.signed(OP.ext_client_charge_signed, w.client.address, { tokens: 50_000_000n }), toNano('0.7'));
    await storage('client after register, top-ups, secret hash, stake and a charge', 'client', w.client.address);
    await ownerOp('client withdraw', OP.owner_client_withdraw, (b) => b);
    await ownerOp('client request refund', OP.owner_client_request_refund, (b) => b);
    await storage('client closing', 'client', w.client.address);
    await run('client grant refund', proxyOwner, w.client.address, w.signed(OP.ext_client_grant_refund_signed, w.client.address, { tokens: 60_000_000n }));
    await storage('client closed by grant refund', 'client', w.client.address);

    // ---- worker ----
    await storage('worker at deploy', 'worker', w.worker.address);
    await run('worker register', bob, w.worker.address, head(OP.owner_worker_register, w.nextQueryId()).storeAddress(bob).endCell(), toNano('0.5'));
    await run('worker payout', bob, w.worker.address, w.signed(OP.ext_worker_payout_request_signed, w.worker.address, { tokens: 1_000_000n, excessesTo: bob }), toNano('0.5'));
    await storage('worker after a payout', 'worker', w.worker.address);
    await run('worker last payout', bob, w.worker.address, w.signed(OP.ext_worker_last_payout_request_signed, w.worker.address, { tokens: 3_000_000n, excessesTo: bob }), toNano('0.5'));
    await storage('worker closed by the last payout', 'worker', w.worker.address);

    // ---- proxy ----
    const proxyOp = (name, op, fields = (b) => b, from = eve, value = toNano('1')) =>
        run(name, from, w.proxy.address, fields(head(op, w.nextQueryId())).storeAddress(eve).endCell(), value);
    await proxyOp('proxy increase stake', OP.ext_proxy_increase_stake, (b) => b.storeCoins(toNano('3')), eve, toNano('3.2'));
    await storage('proxy with commission and stake', 'proxy', w.proxy.address);
    // A second client closes without a grant: close I, then close II forces the refund out of
    // the proxy's stake (the refund_force payload).
    const carol = w.clientOf(submitter);
    layoutOf.set(raw(carol.address), 'client');
    await w.deploy(carol, toNano('0.8'));
    const carolOp = (name, op) => run(name, submitter, carol.address, head(op, w.nextQueryId()).storeAddress(submitter).endCell(), toNano('0.7'));
    await carolOp('second client request refund (close I)', OP.owner_client_request_refund);
    w.bc.now += PARAMS.clientDelay + 1;
    await carolOp('second client request refund (close II)', OP.owner_client_request_refund);
    await proxyOp('proxy payout request', OP.ext_proxy_payout_request, (b) => b, eve, toNano('0.2'));
    const saveState = beginCell().storeUint(OP.do_not_process, 32).storeUint(0x0102030405060708n, 64).storeUint(OP.proxy_save_state, 32)
        .storeInt(-3, 32).storeBuffer(hash('session')).endCell();
    await run('proxy save state', proxyOwner, w.proxy.address, saveState);
    await run('proxy text withdraw', proxyOwner, w.proxy.address, beginCell().storeUint(0, 32).storeUint(0x77, 8).endCell(), toNano('0.2'));
    await run('proxy close request signed', proxyOwner, w.proxy.address, w.signed(OP.ext_proxy_close_request_signed, w.proxy.address, { excessesTo: proxyOwner }));
    await storage('proxy closing', 'proxy', w.proxy.address);
    w.bc.now += PARAMS.proxyDelay + 10;
    await run('proxy close complete signed', proxyOwner, w.proxy.address, w.signed(OP.ext_proxy_close_complete_request_signed, w.proxy.address, { excessesTo: proxyOwner }));
    await storage('proxy closed', 'proxy', w.proxy.address);
    // The owner's close ops need a proxy in state normal: built only.
    record('proxy owner close', w.proxy.address, head(OP.owner_proxy_close, 79n).storeAddress(proxyOwner).endCell());
    record('proxy text close', w.proxy.address, beginCell().storeUint(0, 32).storeUint(0x63, 8).endCell());

    // ---- addresses ----
    const deriver = stateInit(await compileDeriver(), new Cell());
    await w.deploy(deriver, toNano('1'));
    const proxyParams = w.proxyParams;
    for (const [layout, method] of [['client', 'derived_client_address'], ['worker', 'derived_worker_address']]) {
        for (const owner of [alice, bob, Address.parse('0:' + '11'.repeat(32)), Address.parse('-1:' + 'ab'.repeat(32))]) {
            const args = [
                { type: 'slice', cell: beginCell().storeAddress(owner).endCell() },
                { type: 'slice', cell: beginCell().storeAddress(w.proxy.address).endCell() },
                { type: 'int', value: bigKey(w.proxyKey) },
                { type: 'cell', cell: proxyParams },
            ];
            const derived = (await w.get(deriver.address, method, args)).stackReader.readAddress();
            const expected = layout === 'client' ? w.clientOf(owner).address : w.workerOf(owner).address;
            if (!derived.equals(expected)) throw new Error(`${layout} address of ${owner}: contract ${derived}, lib ${expected}`);
            out.addresses.push({
                layout, owner: raw(owner), proxy: raw(w.proxy.address), proxy_public_key: hex(w.proxyKey.publicKey),
                params_from: 'root at deploy', address: raw(derived), computed_by: `src/common.tolk via ${method}`,
            });
        }
    }
    // The proxy contract accepts reports (with payload) only from these addresses (else 1014).
    await w.reset();
    const register = (owner) => head(OP.client_proxy_request, 5n).storeAddress(owner)
        .storeRef(beginCell().storeUint(0, 2).storeCoins(0).storeCoins(0).storeUint(0, 64).storeUint(0, 256).endCell())
        .storeMaybeRef(beginCell().storeUint(OP.client_proxy_register, 32).storeUint(9n, 64).endCell()).endCell();
    for (const a of out.addresses.filter((x) => x.layout === 'client')) {
        const owner = Address.parseRaw(a.owner);
        expectOk(await w.send(Address.parseRaw(a.address), w.proxy.address, register(owner)), w.proxy.address);
    }
    out.addresses.push({
        layout: 'proxy', owner: raw(proxyOwner), root: raw(w.root.address), proxy_public_key: hex(w.proxyKey.publicKey),
        params_from: 'root at deploy', address: raw(w.proxy.address), computed_by: 'StateInit hash (@ton/core); deployed there in the sandbox',
    });
    const walletKey = keyOf('wallet');
    const wallet = stateInit(CODE.wallet, walletData({ publicKey: walletKey.publicKey, owner: alice }));
    await w.deploy(wallet, toNano('3'));
    out.addresses.push({
        layout: 'wallet', owner: raw(alice), public_key: hex(walletKey.publicKey), code: 'build/wallet.json',
        address: raw(wallet.address), computed_by: 'StateInit hash (@ton/core); deployed there in the sandbox',
    });

    // ---- cocoon wallet: one external with two messages, one owner message, text commands ----
    const msg = (to, value, body) => beginCell().storeUint(0x18, 6).storeAddress(to).storeCoins(value).storeUint(0, 1 + 4 + 4 + 64 + 32 + 1 + 1)
        .storeSlice(body.beginParse()).endCell();
    const unsigned = beginCell().storeUint(0, 32).storeUint(START_TIME + 3600, 32).storeUint(0, 32)
        .storeUint(0, 8).storeRef(msg(bob, toNano('0.1'), beginCell().endCell()))
        .storeUint(1, 8).storeRef(msg(eve, 1n, head(OP.excesses, 3n).endCell()));
    const ext = beginCell().storeBuffer(sign(unsigned.endCell().hash(), walletKey.secretKey)).storeBuilder(unsigned).endCell();
    const r = await w.bc.sendMessage(external({ to: wallet.address, body: ext }));
    expectOk(r, wallet.address);
    out.bodies.push({ name: 'wallet external with two messages', layout: 'wallet_external', boc: boc(ext), public_key: hex(walletKey.publicKey) });
    layoutOf.set(raw(wallet.address), 'wallet');
    await run('wallet send message', alice, wallet.address, head(OP.owner_wallet_send_message, 11n).storeUint(1, 8).storeRef(msg(bob, 1n, beginCell().endCell())).endCell());
    await run('wallet block', alice, wallet.address, beginCell().storeUint(0, 32).storeUint(0x62, 8).endCell());
    out.storage.push({ name: 'wallet after an external, blocked', layout: 'wallet', address: raw(wallet.address), boc: boc(await w.dataOf(wallet.address)) });
    await run('wallet unblock', alice, wallet.address, beginCell().storeUint(0, 32).storeUint(0x75, 8).endCell());
    await run('wallet withdraw', alice, wallet.address, beginCell().storeUint(0, 32).storeUint(0x77, 8).endCell());

    // ---- proxy-signed messages with their key ----
    for (const [op, target, tokens] of [
        [OP.ext_client_charge_signed, w.client.address, 123_456_789n],
        [OP.ext_worker_last_payout_request_signed, w.worker.address, 42n],
        [OP.ext_proxy_close_request_signed, w.proxy.address, undefined],
    ]) {
        const body = w.signed(op, target, { queryId: 0xfedcba9876543210n, tokens, excessesTo: submitter });
        out.signed.push({
            seed: hex(sha256_sync(Buffer.from('proxy', 'utf-8'))), public_key: hex(w.proxyKey.publicKey),
            payload_hash: hex(body.refs[0].hash()), target: raw(target), boc: boc(body),
        });
    }
    out.params = { root: boc(w.rootParams), proxy: boc(proxyParams) };
    return out;
}

export function fixtureJson(fixture) {
    return JSON.stringify(fixture, null, 1) + '\n';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const fixture = await generate();
    fs.mkdirSync(path.dirname(FIXTURE), { recursive: true });
    fs.writeFileSync(FIXTURE, fixtureJson(fixture));
    console.log(`${path.relative(ROOT, FIXTURE)}: ${fixture.storage.length} storage cells, ${fixture.bodies.length} bodies, ${fixture.addresses.length} addresses, ${fixture.signed.length} signed messages`);
}
