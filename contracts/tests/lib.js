// Test harness for contracts: the COCOON cell layouts written out in JS (facts §3-§10), a
// sandbox world with a root, a proxy contract, a client and a worker contract, and helpers that
// read transactions (exit codes, out-messages with their send modes, reserves).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Blockchain, internal } from '@ton/sandbox';
import { Address, Cell, Dictionary, beginCell, contractAddress, toNano } from '@ton/core';
import { keyPairFromSeed, sha256_sync, sign } from '@ton/crypto';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const OP = {
    excesses: 0x2565934c,
    payout: 0xc59a7cd3,
    do_not_process: 0x9a1247c0,
    proxy_save_state: 0x53109c0f,
    root_add_worker_type: 0xe34b1c60,
    root_del_worker_type: 0x8d94a79a,
    root_add_model_type: 0xc146134d,
    root_del_model_type: 0x92b11c18,
    root_add_proxy_type: 0x71860e80,
    root_del_proxy_type: 0x3c41d0b2,
    root_register_proxy: 0x927c7cb5,
    root_unregister_proxy: 0x6d49eaf2,
    root_update_proxy: 0x9c7924ba,
    root_change_price: 0xc52ed8d4,
    root_change_params: 0x022fa189,
    root_change_params_full: 0x9f1e69dc,
    root_upgrade_contracts: 0xa2370f61,
    root_upgrade: 0x11aefd51,
    root_reset: 0x563c1d96,
    root_upgrade_full: 0x4f7c5789,
    root_change_owner: 0xc4a1ae54,
    worker_proxy_request: 0x4d725d2c,
    worker_proxy_payout_request: 0x08e7d036,
    client_proxy_request: 0x65448ff4,
    client_proxy_top_up: 0x5cfc6b87,
    client_proxy_register: 0xa35cb580,
    client_proxy_refund_granted: 0xc68ebc7b,
    client_proxy_refund_force: 0xf4c354c9,
    ext_proxy_increase_stake: 0x9713f187,
    ext_proxy_payout_request: 0x7610e6eb,
    owner_proxy_close: 0xb51d5a01,
    ext_proxy_close_request_signed: 0x636a4391,
    ext_proxy_close_complete_request_signed: 0xe511abc7,
    ext_worker_payout_request_signed: 0xa040ad28,
    ext_worker_last_payout_request_signed: 0xf5f26a36,
    owner_worker_register: 0x26ed7f65,
    ext_client_top_up: 0xf172e6c2,
    ext_client_charge_signed: 0xbb63ff93,
    ext_client_grant_refund_signed: 0xefd711e1,
    owner_client_top_up_reopen: 0x29111ceb,
    owner_client_register: 0xc45f9f3b,
    owner_client_change_secret_hash: 0xa9357034,
    owner_client_change_secret_hash_and_top_up: 0x8473b408,
    owner_client_request_refund: 0xfafa6cc1,
    owner_client_increase_stake: 0x6a1f6a60,
    owner_client_withdraw: 0xda068e78,
    owner_wallet_send_message: 0x9c69f376,
};

export const ERR = {
    cell_underflow: 9,
    old_message: 1000,
    low_smc_balance: 1001,
    low_msg_value: 1003,
    msg_format_mismatch: 1004,
    signed_msg_format_mismatch: 1005,
    closed: 1006,
    bad_signature: 1007,
    stored_data_damaged: 1008,
    expected_owner: 1009,
    expected_message_from_owner: 1010,
    not_unlocked_yet: 1011,
    unknown_op: 1012,
    unknown_text_op: 1013,
    contract_address_mismatch: 1014,
    expected_my_address: 1015,
    unknown_proxy_type: 2000,
    wallet_expired: 1030,
    wallet_blocked: 1031,
    wallet_bad_seqno: 1032,
    wallet_bad_subwallet: 1033,
    wallet_bad_signature: 1034,
    wallet_low_balance: 1035,
    wallet_not_owner: 1040,
    wallet_unknown_op: 1041,
};

export const STATE = { normal: 0, closing: 1, closed: 2 };
export const FLAGS = { bounceable: 0x18, nonBounceable: 0x10 };
export const MODE = { regular: 0, payFeesSeparately: 1, carryAllBalance: 128 };
export const COMMISSION = toNano('0.1');
export const STORAGE = toNano('0.01');
export const START_TIME = 1_750_000_000;

export function loadCode(name) {
    const j = JSON.parse(fs.readFileSync(path.join(ROOT, 'build', `${name}.json`), 'utf-8'));
    return Cell.fromBase64(j.code_boc_base64);
}

export const CODE = {
    root: loadCode('root'),
    proxy: loadCode('proxy'),
    client: loadCode('client'),
    worker: loadCode('worker'),
    wallet: loadCode('wallet'),
};

/** An Ed25519 key pair with seed sha256(name). */
export function keyOf(name) {
    return keyPairFromSeed(sha256_sync(Buffer.from(name, 'utf-8')));
}

export const bigKey = (kp) => BigInt('0x' + kp.publicKey.toString('hex'));

// ---- params (facts §3) --------------------------------------------------------------------------

export const PARAMS = {
    structVersion: 3,
    paramsVersion: 1,
    uniqueId: 77,
    isTest: 1,
    pricePerToken: 20n,
    workerFeePerToken: 19n,
    promptMultiplier: 10001,
    cachedMultiplier: 10002,
    completionMultiplier: 10003,
    reasoningMultiplier: 10004,
    proxyDelay: 3600,
    clientDelay: 1800,
    minProxyStake: toNano('2'),
    minClientStake: toNano('1'),
};

/** The params cell; `codes` picks the variant: {proxy, worker, client} code cells or absent. */
export function paramsCell(p = PARAMS, codes = {}) {
    return beginCell()
        .storeUint(p.structVersion, 8)
        .storeUint(p.paramsVersion, 32)
        .storeUint(p.uniqueId, 32)
        .storeUint(p.isTest, 1)
        .storeCoins(p.pricePerToken)
        .storeCoins(p.workerFeePerToken)
        .storeUint(p.promptMultiplier, 32)
        .storeUint(p.cachedMultiplier, 32)
        .storeUint(p.completionMultiplier, 32)
        .storeUint(p.reasoningMultiplier, 32)
        .storeUint(p.proxyDelay, 32)
        .storeUint(p.clientDelay, 32)
        .storeCoins(p.minProxyStake)
        .storeCoins(p.minClientStake)
        .storeMaybeRef(codes.proxy ?? null)
        .storeMaybeRef(codes.worker ?? null)
        .storeMaybeRef(codes.client ?? null)
        .endCell();
}

export const ALL_CODES = { proxy: CODE.proxy, worker: CODE.worker, client: CODE.client };

export function readParamsCell(cell) {
    const s = cell.beginParse();
    const p = {
        structVersion: s.loadUint(8),
        paramsVersion: s.loadUint(32),
        uniqueId: s.loadUint(32),
        isTest: s.loadUint(1),
        pricePerToken: s.loadCoins(),
        workerFeePerToken: s.loadCoins(),
        promptMultiplier: s.loadUint(32),
        cachedMultiplier: s.loadUint(32),
        completionMultiplier: s.loadUint(32),
        reasoningMultiplier: s.loadUint(32),
        proxyDelay: s.loadUint(32),
        clientDelay: s.loadUint(32),
        minProxyStake: s.loadCoins(),
        minClientStake: s.loadCoins(),
    };
    const codes = { proxy: s.loadMaybeRef(), worker: s.loadMaybeRef(), client: s.loadMaybeRef() };
    s.endParse();
    return { params: p, codes };
}

// ---- storage layouts (facts §4-§7, §10) ---------------------------------------------------------

const hashDict = () => Dictionary.empty(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell());

export function rootData({ owner, version = 0, lastProxySeqno = 0, params = paramsCell(PARAMS, ALL_CODES) }) {
    const directory = beginCell()
        .storeDict(null) // proxy_hashes
        .storeDict(null) // registered_proxies
        .storeUint(lastProxySeqno, 32)
        .storeDict(null) // worker_hashes
        .storeDict(null) // model_hashes
        .endCell();
    return beginCell().storeAddress(owner).storeUint(version, 32).storeRef(directory).storeRef(params).endCell();
}

/** The root's data cell, read in the deployed order (facts §4). */
export function readRootDirectory(data) {
    const s = data.beginParse();
    const owner = s.loadAddress();
    const version = s.loadUint(32);
    const d = s.loadRef().beginParse();
    const params = s.loadRef();
    const valueSlice = { serialize: () => { throw new Error('read only'); }, parse: (v) => v };
    const dir = {
        proxyHashes: d.loadDict(Dictionary.Keys.BigUint(256), valueSlice),
        registeredProxies: d.loadDict(Dictionary.Keys.Uint(32), valueSlice),
        lastProxySeqno: d.loadUint(32),
        workerHashes: d.loadDict(Dictionary.Keys.BigUint(256), valueSlice),
        modelHashes: d.loadDict(Dictionary.Keys.BigUint(256), valueSlice),
    };
    d.endParse();
    return { owner, version, params, ...dir };
}

export function proxyData({ owner, publicKey, root, state = 0, balance = 0n, stake = 0n, unlockTs = 0, params }) {
    return beginCell()
        .storeAddress(owner)
        .storeBuffer(publicKey, 32)
        .storeAddress(root)
        .storeUint(state, 2)
        .storeCoins(balance)
        .storeCoins(stake)
        .storeUint(unlockTs, 32)
        .storeRef(params)
        .endCell();
}

export function clientData({ owner, proxy, publicKey, state = 0, balance = 0n, stake, tokensUsed = 0n, unlockTs = 0, secretHash = 0n, params }) {
    const constData = beginCell().storeAddress(owner).storeAddress(proxy).storeBuffer(publicKey, 32).endCell();
    return beginCell()
        .storeUint(state, 2)
        .storeCoins(balance)
        .storeCoins(stake)
        .storeUint(tokensUsed, 64)
        .storeUint(unlockTs, 32)
        .storeUint(secretHash, 256)
        .storeRef(constData)
        .storeRef(params)
        .endCell();
}

export function workerData({ owner, proxy, publicKey, state = 0, tokens = 0n, params }) {
    return beginCell()
        .storeAddress(owner)
        .storeAddress(proxy)
        .storeBuffer(publicKey, 32)
        .storeUint(state, 2)
        .storeUint(tokens, 64)
        .storeRef(params)
        .endCell();
}

export function walletData({ seqno = 0, subwallet = 0, publicKey, status = 0, owner }) {
    return beginCell()
        .storeUint(seqno, 32)
        .storeUint(subwallet, 32)
        .storeBuffer(publicKey, 32)
        .storeUint(status, 32)
        .storeAddress(owner)
        .endCell();
}

export function stateInit(code, data) {
    return { code, data, address: contractAddress(0, { code, data }) };
}

// ---- message bodies ------------------------------------------------------------------------------

export const head = (op, queryId) => beginCell().storeUint(op, 32).storeUint(queryId, 64);

/** A proxy-signed message (facts §8). `fields` appends the op-specific payload fields. */
export function signedBody({
    op, queryId, target, secretKey, excessesTo = null, fields = (b) => b,
    payloadOp = op, payloadQueryId = queryId, signWith,
}) {
    const payload = fields(beginCell().storeUint(payloadOp, 32).storeUint(payloadQueryId, 64)).storeAddress(target).endCell();
    const signature = signWith ? signWith(payload) : sign(payload.hash(), secretKey);
    return beginCell()
        .storeUint(op, 32)
        .storeUint(queryId, 64)
        .storeAddress(excessesTo)
        .storeBuffer(signature, 64)
        .storeRef(payload)
        .endCell();
}

/** Replaces the excess address of a signed message, keeping its signature (the C++ "repack"). */
export function repackSigned(body, excessesTo) {
    const s = body.beginParse();
    const op = s.loadUint(32);
    const queryId = s.loadUintBig(64);
    s.loadAddressAny();
    const signature = s.loadBuffer(64);
    const payload = s.loadRef();
    return beginCell().storeUint(op, 32).storeUint(queryId, 64).storeAddress(excessesTo)
        .storeBuffer(signature, 64).storeRef(payload).endCell();
}

export const tokensField = (tokens) => (b) => b.storeUint(BigInt(tokens), 64);

export function textBody(text) {
    return beginCell().storeUint(0, 32).storeStringTail(text).endCell();
}

// ---- reading transactions -------------------------------------------------------------------------

const sameAddr = (a, b) => a instanceof Address && b instanceof Address && a.equals(b);

/** All transactions of `result` on `address` (optionally only those with inbound op `op`). */
export function txsOn(result, address, op) {
    return result.transactions.filter((tx) => {
        if (!sameAddr(tx.inMessage?.info?.dest, address)) return false;
        if (op === undefined) return true;
        const s = tx.inMessage.body.beginParse();
        return s.remainingBits >= 32 && s.loadUint(32) === op;
    });
}

export function txOn(result, address, op) {
    const txs = txsOn(result, address, op);
    assert.ok(txs.length > 0, `no transaction on ${address}${op === undefined ? '' : ` with op ${op.toString(16)}`}`);
    return txs[0];
}

/** The compute exit code of `tx`; 'skipped' if no compute phase ran. */
export function exitOf(tx) {
    const d = tx.description;
    if (d.computePhase.type === 'skipped') return 'skipped';
    return d.computePhase.exitCode;
}

/** Asserts the first transaction on `address` ran with `code` (0: success, not aborted). */
export function expectExit(result, address, code, op) {
    const tx = txOn(result, address, op);
    const d = tx.description;
    assert.equal(exitOf(tx), code, `exit code on ${address}`);
    if (code === 0 || code === 1) {
        assert.equal(d.aborted, false, `transaction aborted (action phase ${d.actionPhase?.resultCode})`);
    } else {
        assert.equal(d.aborted, true);
    }
    return tx;
}

export const expectOk = (result, address, op) => expectExit(result, address, 0, op);

/**
 * The messages `tx` sent, each with its send mode (from the action list) and its body read as
 * op + query_id where it has them.
 */
export function sentBy(tx) {
    const modes = (tx.outActions ?? []).filter((a) => a.type === 'sendMsg').map((a) => a.mode);
    const out = [];
    let i = 0;
    for (const msg of tx.outMessages.values()) {
        const body = msg.body;
        const s = body.beginParse();
        out.push({
            dest: msg.info.dest,
            value: msg.info.value?.coins,
            bounce: msg.info.bounce,
            mode: modes[i],
            body,
            op: s.remainingBits >= 32 ? s.loadUint(32) : undefined,
            queryId: s.remainingBits >= 64 ? s.loadUintBig(64) : undefined,
        });
        i += 1;
    }
    return out;
}

/** The reserve actions of `tx`: [{mode, amount}]. */
export function reservesOf(tx) {
    return (tx.outActions ?? []).filter((a) => a.type === 'reserve').map((a) => ({ mode: a.mode, amount: a.currency.coins }));
}

// ---- the sandbox world ---------------------------------------------------------------------------

/**
 * A root (owned by `rootOwner`) with all three codes, a proxy contract (owner `proxyOwner`, key
 * `keyOf('proxy')`) deployed from the root's params the way the C++ runner derives it, a client
 * contract of `alice` and a worker contract of `bob` for that proxy. Each test restores the same
 * snapshot, so tests do not depend on each other.
 */
export class World {
    static async create({ params = PARAMS, proxyValue = toNano('20'), clientValue = toNano('0.8'), workerValue = toNano('0.3') } = {}) {
        const w = new World();
        w.bc = await Blockchain.create();
        w.bc.now = START_TIME;
        w.params = params;
        w.proxyKey = keyOf('proxy');
        w.addr = {};
        for (const name of ['rootOwner', 'proxyOwner', 'alice', 'bob', 'eve', 'submitter']) {
            w.addr[name] = (await w.bc.treasury(name)).address;
        }
        w.rootParams = paramsCell(params, ALL_CODES);
        w.root = stateInit(CODE.root, rootData({ owner: w.addr.rootOwner, params: w.rootParams }));
        await w.deploy(w.root, toNano('5'));
        w.proxyParams = paramsCell(params, { worker: CODE.worker, client: CODE.client });
        w.proxy = w.proxyOf(w.addr.proxyOwner, w.proxyKey);
        await w.deploy(w.proxy, proxyValue);
        w.client = w.clientOf(w.addr.alice);
        await w.deploy(w.client, clientValue);
        w.worker = w.workerOf(w.addr.bob);
        await w.deploy(w.worker, workerValue);
        w.snap = w.bc.snapshot();
        w.queryId = 1000n;
        return w;
    }

    async reset() {
        await this.bc.loadFrom(this.snap);
        this.bc.now = START_TIME;
    }

    proxyOf(owner, key, params = this.proxyParams, root = this.root.address) {
        return stateInit(CODE.proxy, proxyData({ owner, publicKey: key.publicKey, root, params }));
    }

    /** The client contract of `owner` for `proxy` (facts §9): stake = min_client_stake, params variant 0. */
    clientOf(owner, { proxy = this.proxy.address, key = this.proxyKey, params = this.params, code = CODE.client } = {}) {
        return stateInit(code, clientData({
            owner, proxy, publicKey: key.publicKey, stake: params.minClientStake, params: paramsCell(params),
        }));
    }

    workerOf(owner, { proxy = this.proxy.address, key = this.proxyKey, params = this.params, code = CODE.worker } = {}) {
        return stateInit(code, workerData({ owner, proxy, publicKey: key.publicKey, params: paramsCell(params) }));
    }

    async deploy(si, value, from = this.addr.eve) {
        const r = await this.bc.sendMessage(internal({ from, to: si.address, value, stateInit: { code: si.code, data: si.data }, body: new Cell() }));
        expectOk(r, si.address);
        return r;
    }

    nextQueryId() {
        this.queryId += 1n;
        return this.queryId;
    }

    /** Sends an internal message as `from` (any address: the sandbox does not check senders). */
    send(from, to, body, value = toNano('1'), extra = {}) {
        return this.bc.sendMessage(internal({ from, to, value, body, bounce: true, ...extra }));
    }

    async get(address, method, args = []) {
        return (await this.bc.getContract(address)).get(method, args);
    }

    async balanceOf(address) {
        return (await this.bc.getContract(address)).balance;
    }

    async dataOf(address) {
        const st = (await this.bc.getContract(address)).accountState;
        return st?.type === 'active' ? st.state.data : null;
    }

    async codeOf(address) {
        const st = (await this.bc.getContract(address)).accountState;
        return st?.type === 'active' ? st.state.code : null;
    }

    async setBalance(address, balance) {
        (await this.bc.getContract(address)).balance = balance;
    }

    async proxyData() {
        const r = (await this.get(this.proxy.address, 'get_cocoon_proxy_data')).stackReader;
        return {
            owner: r.readAddress(), publicKey: r.readBigNumber(), root: r.readAddress(), state: r.readNumber(),
            balance: r.readBigNumber(), stake: r.readBigNumber(), unlockTs: r.readNumber(),
            pricePerToken: r.readBigNumber(), workerFeePerToken: r.readBigNumber(),
            minProxyStake: r.readBigNumber(), minClientStake: r.readBigNumber(), paramsVersion: r.readNumber(),
        };
    }

    async clientData(address = this.client.address) {
        const r = (await this.get(address, 'get_cocoon_client_data')).stackReader;
        return {
            owner: r.readAddress(), proxy: r.readAddress(), publicKey: r.readBigNumber(), state: r.readNumber(),
            balance: r.readBigNumber(), stake: r.readBigNumber(), tokensUsed: r.readBigNumber(),
            unlockTs: r.readNumber(), secretHash: r.readBigNumber(),
        };
    }

    async workerData(address = this.worker.address) {
        const r = (await this.get(address, 'get_cocoon_worker_data')).stackReader;
        return {
            owner: r.readAddress(), proxy: r.readAddress(), publicKey: r.readBigNumber(), state: r.readNumber(),
            tokens: r.readBigNumber(),
        };
    }

    /** A proxy-signed message for `target`, signed with the proxy key unless told otherwise. */
    signed(op, target, { queryId = this.nextQueryId(), tokens, excessesTo = this.addr.submitter, ...rest } = {}) {
        return signedBody({
            op, queryId, target, secretKey: this.proxyKey.secretKey, excessesTo,
            fields: tokens === undefined ? undefined : tokensField(tokens), ...rest,
        });
    }

    // Client operations as the C++ client sends them (facts §6, §11).
    topUp(amount, { from = this.addr.alice, value = amount + toNano('0.7'), excessesTo = from, queryId = this.nextQueryId(), to = this.client.address } = {}) {
        return this.send(from, to, head(OP.ext_client_top_up, queryId).storeCoins(amount).storeAddress(excessesTo).endCell(), value);
    }

    charge(tokens, { value = toNano('0.7'), from = this.addr.submitter, to = this.client.address, ...rest } = {}) {
        return this.send(from, to, this.signed(OP.ext_client_charge_signed, to, { tokens, ...rest }), value);
    }

    grantRefund(tokens, { value = toNano('1'), from = this.addr.proxyOwner, to = this.client.address, ...rest } = {}) {
        return this.send(from, to, this.signed(OP.ext_client_grant_refund_signed, to, { tokens, ...rest }), value);
    }

    ownerOp(op, fields = (b) => b, { from = this.addr.alice, value = toNano('0.7'), excessesTo = from, queryId = this.nextQueryId(), to = this.client.address } = {}) {
        return this.send(from, to, fields(head(op, queryId)).storeAddress(excessesTo).endCell(), value);
    }

    payout(tokens, { last = false, value = toNano('0.5'), from = this.addr.bob, to = this.worker.address, ...rest } = {}) {
        const op = last ? OP.ext_worker_last_payout_request_signed : OP.ext_worker_payout_request_signed;
        return this.send(from, to, this.signed(op, to, { tokens, ...rest }), value);
    }
}
