// Test harness: the contracts' cell layouts in JS (contracts/README.md), a sandbox world with the
// vector parties, and one method per operation of docs/payments.md.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Blockchain } from '@ton/sandbox';
import { Address, Cell, Dictionary, beginCell, contractAddress, toNano } from '@ton/core';
import { keyPairFromSeed, sha256_sync, sign } from '@ton/crypto';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const EXIT = {
    not_owner: 100,
    bad_signature: 101,
    not_increasing: 102,
    below_stake: 103,
    wrong_state: 104,
    too_early: 105,
    open_contracts: 106,
    stale_seqno: 107,
    wrong_target: 109,
    insufficient_value: 110,
    insufficient_funds: 111,
    not_proxy: 112,
    unknown_op: 0xffff,
};

export const OP = {
    charge_signed: 0xbb63ff93,
    grant_refund_signed: 0xefd711e1,
    worker_payout_signed: 0xa040ad28,
    worker_last_payout_signed: 0xf5f26a36,
    proxy_save_state: 0x53109c0f,
    top_up: 0xf172e6c2,
    owner_client_register: 0xc45f9f3b,
    owner_client_withdraw: 0xda068e78,
    owner_client_request_refund: 0xfafa6cc1,
    owner_client_increase_stake: 0x6a1f6a60,
    root_set_params: 0x19d12a04,
    root_add_hash: 0xaa31521e,
    root_remove_hash: 0x673d4134,
    root_register_proxy: 0x2e5a8880,
    root_unregister_proxy: 0x92708000,
    proxy_deploy: 0x20329a2d,
    proxy_close: 0xa7a87e7d,
    proxy_client_opened: 0x782b05a6,
    proxy_client_charged: 0x7ae5265e,
    proxy_client_closed: 0xd1ba6f19,
    proxy_worker_opened: 0xac2fff7c,
    proxy_worker_closed: 0x05be95c3,
    proxy_pay_worker: 0x83fb14ea,
    client_deploy: 0xc9b1f4f9,
    worker_deploy: 0x1db50e23,
    excesses: 0x97928e02,
    payout: 0x29841a33,
};

export const STATE_NAMES = ['uninit', 'running', 'closing', 'closed'];

export const START_TIME = 1_700_000_000;
// Gas attached on top of every logical amount (vectors never mention gas).
export const GAS = toNano('1');

export function loadBuild(name) {
    const j = JSON.parse(fs.readFileSync(path.join(ROOT, 'build', `${name}.json`), 'utf-8'));
    return Cell.fromBase64(j.code_boc_base64);
}

export const CODES = {
    root: loadBuild('root'),
    proxy: loadBuild('proxy'),
    client: loadBuild('client'),
    worker: loadBuild('worker'),
};

/** The Ed25519 key of a party: seed = sha256(name). */
export function keyOf(name) {
    return keyPairFromSeed(sha256_sync(Buffer.from(name, 'utf-8')));
}

// ---- cell layouts (contracts/README.md) ---------------------------------------------------------

export function paramsCell(p) {
    return beginCell()
        .storeCoins(BigInt(p.price_per_token))
        .storeCoins(BigInt(p.worker_fee_per_token))
        .storeUint(p.prompt_multiplier, 32)
        .storeUint(p.cached_multiplier, 32)
        .storeUint(p.completion_multiplier, 32)
        .storeUint(p.reasoning_multiplier, 32)
        .storeUint(p.proxy_close_delay, 32)
        .storeUint(p.client_close_delay, 32)
        .storeCoins(BigInt(p.min_proxy_stake))
        .storeCoins(BigInt(p.min_client_stake))
        .endCell();
}

const emptyDict = () => Dictionary.empty(Dictionary.Keys.BigUint(256), Dictionary.Values.Bool());

export function rootData({ owner, params }) {
    const registry = beginCell()
        .storeDict(emptyDict()) // proxy image hashes
        .storeDict(emptyDict()) // worker image hashes
        .storeDict(emptyDict()) // model hashes
        .storeDict(Dictionary.empty(Dictionary.Keys.Uint(32), Dictionary.Values.Cell())) // proxies
        .storeUint(0, 32)
        .storeUint(0, 32)
        .storeUint(0, 32)
        .storeUint(0, 32)
        .endCell();
    const codes = beginCell().storeRef(CODES.proxy).storeRef(CODES.client).storeRef(CODES.worker).endCell();
    return beginCell()
        .storeAddress(owner)
        .storeUint(0, 32) // params_version
        .storeRef(paramsCell(params))
        .storeRef(registry)
        .storeRef(codes)
        .endCell();
}

export function proxyData({ owner, root, publicKey, params }) {
    const consts = beginCell()
        .storeAddress(owner)
        .storeAddress(root)
        .storeBuffer(publicKey, 32)
        .storeRef(CODES.client)
        .storeRef(CODES.worker)
        .endCell();
    return beginCell()
        .storeUint(0, 8) // state: uninit
        .storeCoins(0n) // stake
        .storeCoins(0n) // earned
        .storeCoins(0n) // paid_out
        .storeUint(0, 64) // seqno
        .storeUint(0n, 256) // state hash
        .storeUint(0, 32) // open clients
        .storeUint(0, 32) // open workers
        .storeRef(consts)
        .storeRef(paramsCell(params))
        .endCell();
}

function partyConsts({ owner, proxy, publicKey, params }) {
    return beginCell()
        .storeAddress(owner)
        .storeAddress(proxy)
        .storeBuffer(publicKey, 32)
        .storeRef(paramsCell(params))
        .endCell();
}

export function clientData(args) {
    return beginCell()
        .storeUint(0, 8) // state: uninit
        .storeCoins(0n) // balance
        .storeCoins(0n) // stake
        .storeUint(0, 64) // tokens_used
        .storeUint(0, 32) // unlock_time
        .storeUint(0n, 256) // secret_hash
        .storeRef(partyConsts(args))
        .endCell();
}

export function workerData(args) {
    return beginCell()
        .storeUint(0, 8) // state: uninit
        .storeUint(0, 64) // paid_tokens
        .storeRef(partyConsts(args))
        .endCell();
}

export function stateInit(code, data) {
    return { code, data, address: contractAddress(0, { code, data }) };
}

// ---- message bodies ------------------------------------------------------------------------------

const head = (op, queryId) => beginCell().storeUint(op, 32).storeUint(queryId, 64);

export const body = {
    top_up: (q, amount) => head(OP.top_up, q).storeCoins(BigInt(amount)).endCell(),
    owner_client_increase_stake: (q, s) => head(OP.owner_client_increase_stake, q).storeCoins(BigInt(s)).endCell(),
    owner_client_withdraw: (q, a) => head(OP.owner_client_withdraw, q).storeCoins(BigInt(a)).endCell(),
    owner_client_request_refund: (q) => head(OP.owner_client_request_refund, q).endCell(),
    owner_client_register: (q, h) => head(OP.owner_client_register, q).storeUint(h, 256).endCell(),
    client_deploy: (q, amount, stake, secretHash = 0n) =>
        head(OP.client_deploy, q).storeCoins(BigInt(amount)).storeCoins(BigInt(stake)).storeUint(secretHash, 256).endCell(),
    worker_deploy: (q) => head(OP.worker_deploy, q).endCell(),
    proxy_deploy: (q, stake) => head(OP.proxy_deploy, q).storeCoins(BigInt(stake)).endCell(),
    proxy_save_state: (q, seqno, hash) => head(OP.proxy_save_state, q).storeUint(BigInt(seqno), 64).storeUint(hash, 256).endCell(),
    proxy_close: (q) => head(OP.proxy_close, q).endCell(),
    root_set_params: (q, params) => head(OP.root_set_params, q).storeRef(paramsCell(params)).endCell(),
    root_add_hash: (q, kind, hash) => head(OP.root_add_hash, q).storeUint(kind, 8).storeUint(hash, 256).endCell(),
    root_remove_hash: (q, kind, hash) => head(OP.root_remove_hash, q).storeUint(kind, 8).storeUint(hash, 256).endCell(),
    root_register_proxy: (q, id, endpoint) =>
        head(OP.root_register_proxy, q).storeUint(id, 32).storeRef(beginCell().storeStringTail(endpoint).endCell()).endCell(),
    root_unregister_proxy: (q, id) => head(OP.root_unregister_proxy, q).storeUint(id, 32).endCell(),
};

/** A proxy-signed message (docs/payments.md, "Proxy-signed messages"). */
export function signedBody({ op, queryId, tokens, target, secretKey, excessTo, payloadOp }) {
    const payload = beginCell()
        .storeUint(payloadOp ?? op, 32)
        .storeUint(queryId, 64)
        .storeUint(BigInt(tokens), 64)
        .storeAddress(target)
        .endCell();
    const signature = sign(payload.hash(), secretKey);
    return beginCell()
        .storeUint(op, 32)
        .storeUint(queryId, 64)
        .storeAddress(excessTo ?? null)
        .storeBuffer(signature, 64)
        .storeRef(payload)
        .endCell();
}

/** Params from a get method's stack (`get_params`). */
export function readParams(r) {
    return {
        price_per_token: r.readBigNumber(),
        worker_fee_per_token: r.readBigNumber(),
        prompt_multiplier: r.readNumber(),
        cached_multiplier: r.readNumber(),
        completion_multiplier: r.readNumber(),
        reasoning_multiplier: r.readNumber(),
        proxy_close_delay: r.readNumber(),
        client_close_delay: r.readNumber(),
        min_proxy_stake: r.readBigNumber(),
        min_client_stake: r.readBigNumber(),
    };
}

export function hexToBigInt(hex) {
    return BigInt('0x' + hex);
}

// ---- results -------------------------------------------------------------------------------------

/**
 * The outcome of one step: the exit code of the first failed transaction on one of `ours`
 * (compute phase exit code, else the action phase result code), or null when all succeeded;
 * and the payouts (op `payout`) our contracts sent, by destination.
 */
export function outcome(result, ours) {
    let failure = null;
    const payouts = [];
    for (const tx of result.transactions) {
        const addr = tx.inMessage?.info?.dest;
        if (!(addr instanceof Address) || !ours(addr)) continue;
        const d = tx.description;
        if (d.type !== 'generic') continue;
        let code = null;
        if (d.computePhase.type === 'skipped') {
            code = `skipped:${d.computePhase.reason}`;
        } else if (!d.computePhase.success) {
            code = d.computePhase.exitCode;
        } else if (d.actionPhase && !d.actionPhase.success) {
            code = `action:${d.actionPhase.resultCode}`;
        } else if (d.aborted) {
            code = 'aborted';
        }
        if (code !== null) {
            failure ??= { code, address: addr };
            continue;
        }
        for (const out of tx.outMessages.values()) {
            if (out.info.type !== 'internal') continue;
            const s = out.body.beginParse();
            if (s.remainingBits >= 32 && s.loadUint(32) === OP.payout) {
                payouts.push({ to: out.info.dest, value: out.info.value.coins });
            }
        }
    }
    return { failure, payouts };
}

// ---- the world ----------------------------------------------------------------------------------

/**
 * A sandbox world: `owner` owns the root, `proxy` is the operator whose key signs, every other
 * name is a wallet with its own key. Tracks the logical amount paid to each wallet.
 */
export class World {
    static async create(params) {
        const w = new World();
        w.params = params;
        w.bc = await Blockchain.create();
        w.bc.now = START_TIME;
        w.wallets = new Map();
        w.paid = new Map();
        w.queryId = 0;
        w.clients = new Map();
        w.workers = new Map();
        const owner = await w.wallet('owner');
        const operator = await w.wallet('proxy');
        w.root = stateInit(CODES.root, rootData({ owner: owner.address, params }));
        await w.expectOk(await owner.send({ to: w.root.address, value: GAS, init: { code: w.root.code, data: w.root.data }, body: beginCell().endCell() }));
        w.proxy = null;
        await w.fixProxy();
        return w;
    }

    /**
     * The proxy contract's initial data copies the root's current params (so a proxy deployed
     * after `root_set_params` gets the new ones); fixed once the proxy contract is deployed.
     */
    async fixProxy() {
        if (this.proxy && (await this.active(this.proxy.address))) return;
        const operator = await this.wallet('proxy');
        const params = readParams(await this.get(this.root.address, 'get_params'));
        this.proxyParams = params;
        this.proxy = stateInit(
            CODES.proxy,
            proxyData({ owner: operator.address, root: this.root.address, publicKey: keyOf('proxy').publicKey, params }),
        );
    }

    async wallet(name) {
        let t = this.wallets.get(name);
        if (!t) {
            t = await this.bc.treasury(name);
            this.wallets.set(name, t);
        }
        return t;
    }

    nextQueryId() {
        return ++this.queryId;
    }

    async clientOf(name) {
        let c = this.clients.get(name);
        if (!c) {
            const owner = await this.wallet(name);
            c = stateInit(
                CODES.client,
                clientData({ owner: owner.address, proxy: this.proxy.address, publicKey: keyOf('proxy').publicKey, params: this.proxyParams }),
            );
            this.clients.set(name, c);
        }
        return c;
    }

    async workerOf(name) {
        let c = this.workers.get(name);
        if (!c) {
            const owner = await this.wallet(name);
            c = stateInit(
                CODES.worker,
                workerData({ owner: owner.address, proxy: this.proxy.address, publicKey: keyOf('proxy').publicKey, params: this.proxyParams }),
            );
            this.workers.set(name, c);
        }
        return c;
    }

    isOurs(addr) {
        if (this.root && addr.equals(this.root.address)) return true;
        if (this.proxy && addr.equals(this.proxy.address)) return true;
        for (const c of this.clients.values()) if (addr.equals(c.address)) return true;
        for (const c of this.workers.values()) if (addr.equals(c.address)) return true;
        return false;
    }

    /** Sends `body` from wallet `from` to `to` (with `init` if given) and returns the outcome. */
    async send(from, to, body, { value = GAS, init } = {}) {
        const w = await this.wallet(from);
        const result = await w.send({ to, value, body, init: init && { code: init.code, data: init.data }, bounce: true });
        const out = outcome(result, (a) => this.isOurs(a));
        for (const p of out.payouts) {
            const name = this.nameOf(p.to);
            this.paid.set(name, (this.paid.get(name) ?? 0n) + p.value);
        }
        out.result = result;
        return out;
    }

    nameOf(addr) {
        for (const [name, t] of this.wallets) if (t.address.equals(addr)) return name;
        return addr.toString();
    }

    async expectOk(result) {
        const out = outcome(result, (a) => this.isOurs(a));
        if (out.failure) throw new Error(`unexpected failure ${out.failure.code} at ${out.failure.address}`);
    }

    paidTo(name) {
        return this.paid.get(name) ?? 0n;
    }

    // ---- operations -----------------------------------------------------------------------------

    async rootOp(from, b) {
        return this.send(from, this.root.address, b);
    }

    async proxyDeploy(stake, { from = 'proxy', value } = {}) {
        await this.fixProxy();
        return this.send(from, this.proxy.address, body.proxy_deploy(this.nextQueryId(), stake), {
            init: this.proxy,
            value: value ?? BigInt(stake) + GAS,
        });
    }

    async proxyOp(from, b) {
        return this.send(from, this.proxy.address, b);
    }

    async clientDeploy(client, amount, stake, { from = client, value, secretHash = 0n } = {}) {
        const c = await this.clientOf(client);
        return this.send(from, c.address, body.client_deploy(this.nextQueryId(), amount, stake, secretHash), {
            init: c,
            value: value ?? BigInt(amount) + GAS,
        });
    }

    async clientOp(client, from, b, { value } = {}) {
        const c = await this.clientOf(client);
        return this.send(from, c.address, b, { value });
    }

    async workerDeploy(worker, { from = worker, value } = {}) {
        const c = await this.workerOf(worker);
        return this.send(from, c.address, body.worker_deploy(this.nextQueryId()), { init: c, value });
    }

    async resolveTarget(spec) {
        const [kind, name] = spec.split(':');
        if (kind === 'client') return (await this.clientOf(name)).address;
        if (kind === 'worker') return (await this.workerOf(name)).address;
        throw new Error(`bad target ${spec}`);
    }

    /** A proxy-signed op sent to `to` (an address), signed by `signer` for `target`. */
    async signed(op, to, tokens, { from = 'proxy', signer = 'proxy', target = to, excessTo, payloadOp } = {}) {
        const sender = await this.wallet(from);
        const b = signedBody({
            op: OP[op],
            payloadOp: payloadOp === undefined ? undefined : OP[payloadOp],
            queryId: this.nextQueryId(),
            tokens,
            target,
            secretKey: keyOf(signer).secretKey,
            excessTo: excessTo ?? sender.address,
        });
        return this.send(from, to, b);
    }

    // ---- state ----------------------------------------------------------------------------------

    async active(addr) {
        const acc = await this.bc.getContract(addr);
        return acc.accountState?.type === 'active';
    }

    async get(addr, method, args = []) {
        return (await this.bc.runGetMethod(addr, method, args)).stackReader;
    }

    async clientState(name) {
        const c = await this.clientOf(name);
        if (!(await this.active(c.address))) return null;
        const r = await this.get(c.address, 'get_client_state');
        const s = {
            state: STATE_NAMES[r.readNumber()],
            balance: r.readBigNumber(),
            stake: r.readBigNumber(),
            tokens_used: r.readBigNumber(),
            unlock_time: r.readBigNumber(),
            secret_hash: r.readBigNumber(),
        };
        return s.state === 'uninit' ? null : s;
    }

    async workerState(name) {
        const c = await this.workerOf(name);
        if (!(await this.active(c.address))) return null;
        const r = await this.get(c.address, 'get_worker_state');
        const s = { state: STATE_NAMES[r.readNumber()], paid_tokens: r.readBigNumber() };
        return s.state === 'uninit' ? null : s;
    }

    async proxyState() {
        if (!(await this.active(this.proxy.address))) return null;
        const r = await this.get(this.proxy.address, 'get_proxy_state');
        const s = {
            state: STATE_NAMES[r.readNumber()],
            stake: r.readBigNumber(),
            earned: r.readBigNumber(),
            paid_out: r.readBigNumber(),
            seqno: r.readBigNumber(),
            state_hash: r.readBigNumber(),
            open_clients: r.readBigNumber(),
            open_workers: r.readBigNumber(),
        };
        return s.state === 'uninit' ? null : s;
    }

    async rootState() {
        const r = await this.get(this.root.address, 'get_root_state');
        return {
            params_version: r.readBigNumber(),
            proxy_image_hashes: r.readBigNumber(),
            worker_image_hashes: r.readBigNumber(),
            model_hashes: r.readBigNumber(),
            proxies: r.readBigNumber(),
        };
    }

    /** Everything observable: for "a rejected operation changes nothing". */
    async snapshot() {
        const s = { root: await this.rootState(), proxy: await this.proxyState(), clients: {}, workers: {}, paid: {} };
        // Contracts not deployed (or back in their initial data) are left out.
        for (const name of [...this.clients.keys()].sort()) {
            const c = await this.clientState(name);
            if (c) s.clients[name] = c;
        }
        for (const name of [...this.workers.keys()].sort()) {
            const c = await this.workerState(name);
            if (c) s.workers[name] = c;
        }
        for (const [name, v] of this.paid) s.paid[name] = v;
        return s;
    }
}

export function stringify(v) {
    return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));
}
