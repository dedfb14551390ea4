// D10: a newer request for a session supersedes one still streaming; what the old one wrote is kept.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertAck } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { bitsRequestBytes } from './helpers/raw-http.js';

describe('per-session serialization and supersede (D10)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  it('a retry on a new connection does not wait behind a stalled fragment, and keeps its durable bytes', async () => {
    const data = randomBytes(1_000_000);
    const id = await t.createSession('/up/stall.bin');
    const stalled = await t.connect();
    const whole = bitsRequestBytes(fragmentRequest('/up/stall.bin', id, 0, data, data.length));
    const headLength = whole.length - data.length;
    // The old request: head and the first 300,000 body bytes, then silence.
    await stalled.write(whole.subarray(0, headLength + 300_000));
    await sleep(300);

    const started = Date.now();
    const retry = await t.request(fragmentRequest('/up/stall.bin', id, 0, data, data.length));
    assertAck(retry);
    assert.equal(retry.headers['bits-received-content-range'], String(data.length));
    assert.ok(Date.now() - started < 10_000, 'the retry waited for the stalled request');
    // The stalled request was stopped: its connection ends (with or without an answer).
    assert.equal(await stalled.closed(5000), true);
    assertAck(await t.request({ type: 'Close-Session', path: '/up/stall.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'stall.bin')), data);
  });

  it('requests for one session are serialized: concurrent overlapping fragments give a consistent file', async () => {
    const data = randomBytes(400_000);
    const id = await t.createSession('/up/par.bin');
    const sends = [0, 100_000, 0, 50_000].map((first) =>
      t.request(fragmentRequest('/up/par.bin', id, first, data.subarray(first, first + 200_000), data.length)),
    );
    await Promise.allSettled(sends);
    // whatever order they ran in, finish from where the server stands
    let next = Number((await t.request(fragmentRequest('/up/par.bin', id, 0, data.subarray(0, 1), data.length))).headers['bits-received-content-range']);
    while (next < data.length) {
      const res = await t.request(fragmentRequest('/up/par.bin', id, next, data.subarray(next, next + 100_000), data.length));
      next = Number(res.headers['bits-received-content-range']);
    }
    assertAck(await t.request({ type: 'Close-Session', path: '/up/par.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'par.bin')), data);
  });

  it('a late duplicate of bytes already held does not supersede the live request', async () => {
    const data = randomBytes(600_000);
    const id = await t.createSession('/up/late.bin');
    assertAck(await t.request(fragmentRequest('/up/late.bin', id, 0, data.subarray(0, 200_000), data.length)));
    const live = await t.connect();
    const whole = bitsRequestBytes(fragmentRequest('/up/late.bin', id, 200_000, data.subarray(200_000), data.length));
    const split = whole.length - 400_000 + 100_000;
    await live.write(whole.subarray(0, split));
    await sleep(200);
    // the stale retry of the first fragment
    const stale = await t.request(fragmentRequest('/up/late.bin', id, 0, data.subarray(0, 200_000), data.length));
    assertAck(stale);
    assert.equal(stale.headers['bits-received-content-range'], '200000');
    // the live request was not cut: it completes
    await live.write(whole.subarray(split));
    const ack = await live.read();
    assertAck(ack);
    assert.equal(ack.headers['bits-received-content-range'], String(data.length));
    live.close();
    assertAck(await t.request({ type: 'Close-Session', path: '/up/late.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'late.bin')), data);
  });
});
