// The flows of facts §11, with the values the C++ runners attach, end to end across contracts.
import { before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toNano } from '@ton/core';
import { OP, PARAMS, STATE, World, expectOk, head, sentBy, txOn } from './lib.js';

let w;
before(async () => { w = await World.create(); });
beforeEach(async () => { await w.reset(); });

const payoutsTo = (r, address) => r.transactions
    .flatMap((tx) => [...tx.outMessages.values()])
    .filter((m) => m.info.type === 'internal' && m.info.dest.equals(address) && m.body.beginParse().loadUint(32) === OP.payout)
    .reduce((sum, m) => sum + m.info.value.coins, 0n);

describe('flows', () => {
    test('client: register (1 TON), top-up (0.7 + amount), proxy charge (0.7), withdraw, close I, close II', async () => {
        const client = w.client.address;
        const register = await w.ownerOp(OP.owner_client_register, (b) => b.storeUint(42n, 64), { value: toNano('1') });
        expectOk(register, client);
        const stake = (await w.clientData()).stake;
        const amount = (stake / PARAMS.pricePerToken) * PARAMS.pricePerToken;
        expectOk(await w.topUp(amount * 3n), client);
        expectOk(await w.topUp(amount), client);
        assert.equal((await w.clientData()).balance, amount * 4n);
        // The proxy charges 1 TON worth of tokens, submitted from its own wallet.
        const tokens = toNano('1') / PARAMS.pricePerToken;
        expectOk(await w.charge(tokens, { from: w.addr.proxyOwner, excessesTo: w.addr.proxyOwner }), client);
        assert.equal((await w.clientData()).balance, amount * 4n - toNano('1'));
        // Withdraw: everything above the stake comes back from the proxy contract's pool.
        const withdraw = await w.ownerOp(OP.owner_client_withdraw);
        assert.equal(payoutsTo(withdraw, w.addr.alice), amount * 4n - toNano('1') - stake);
        // Close I, then close II after the delay: the stake is forced out of the proxy's stake.
        expectOk(await w.send(w.addr.eve, w.proxy.address, head(OP.ext_proxy_increase_stake, 1n).storeCoins(toNano('2')).storeAddress(w.addr.eve).endCell(), toNano('2.2')), w.proxy.address);
        expectOk(await w.ownerOp(OP.owner_client_request_refund), client);
        assert.equal((await w.clientData()).state, STATE.closing);
        w.bc.now += PARAMS.clientDelay + 1;
        const close2 = await w.ownerOp(OP.owner_client_request_refund);
        assert.equal(payoutsTo(close2, w.addr.alice), stake);
        assert.equal((await w.clientData()).state, STATE.closed);
        assert.equal((await w.proxyData()).stake, toNano('2') - stake);
    });

    test('worker: deploy (0.3 TON), signed payouts repacked by the worker (0.5 TON), commission paid to the proxy owner', async () => {
        const fee = PARAMS.workerFeePerToken;
        const commission = PARAMS.pricePerToken - fee;
        const r1 = await w.payout(1_000_000n);
        assert.equal(payoutsTo(r1, w.addr.bob), 1_000_000n * fee);
        const r2 = await w.payout(3_000_000n);
        assert.equal(payoutsTo(r2, w.addr.bob), 2_000_000n * fee);
        assert.equal((await w.proxyData()).balance, 3_000_000n * commission);
        const r3 = await w.send(w.addr.proxyOwner, w.proxy.address, head(OP.ext_proxy_payout_request, 9n).storeAddress(w.addr.proxyOwner).endCell(), toNano('0.2'));
        const paid = sentBy(txOn(r3, w.proxy.address)).find((m) => m.op === OP.payout);
        assert.equal(paid.value, 3_000_000n * commission);
        assert.equal((await w.proxyData()).balance, 0n);
    });

    test('the client deposit stays in the proxy contract; the client contract keeps only its gas reserve', async () => {
        const clientBefore = await w.balanceOf(w.client.address);
        const proxyBefore = await w.balanceOf(w.proxy.address);
        expectOk(await w.topUp(toNano('10')), w.client.address);
        assert.ok((await w.balanceOf(w.proxy.address)) - proxyBefore >= toNano('10'));
        assert.ok((await w.balanceOf(w.client.address)) <= clientBefore);
        assert.ok((await w.balanceOf(w.client.address)) >= toNano('0.11'));
    });
});
