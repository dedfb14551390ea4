// The agent's pure parts: the scheduler's rule, rate schedules and rates, the token bucket, sealed
// passwords, the yield controller's reaction to delay, and the socket path.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { agentSocketPath, parseRate } from '../src/client/agent-protocol.js';
import { defaultStateDir } from '../src/client/journal.js';
import { RateSchedule } from '../src/agent/rate-schedule.js';
import { effectiveLevel, pickRunning } from '../src/agent/scheduler.js';
import type { Schedulable } from '../src/agent/scheduler.js';
import { Secrets } from '../src/agent/secrets.js';
import { TokenBucket } from '../src/agent/token-bucket.js';
import { YIELD_MIN_RATE, YieldController } from '../src/agent/yield-controller.js';
import { hasUsableNetwork, isLocalHost } from '../src/agent/network.js';
import { tempDir } from './helpers/temp-dir.js';

const MIN = 60_000;
const policy = { maxConcurrent: 2, sliceMs: 5 * MIN, agingMs: 10 * MIN };

function job(id: string, o: Partial<Schedulable> = {}): Schedulable {
  return { id, priority: 'normal', state: 'QUEUED', completing: false, createdAt: 0, queuedAt: 0, servedAt: undefined, running: undefined, routable: true, ...o };
}

describe('agent scheduler', () => {
  it('serves by priority, within the limit; foreground and pending completes run outside it', () => {
    const jobs = [
      job('low', { priority: 'low' }),
      job('normal'),
      job('high', { priority: 'high' }),
      job('fg', { priority: 'foreground' }),
      job('closing', { state: 'TRANSFERRED', completing: true, priority: 'low' }),
      job('held', { state: 'TRANSFERRED' }),
      job('suspended', { state: 'SUSPENDED', priority: 'high' }),
      job('failed', { state: 'ERROR', priority: 'high' }),
    ];
    assert.deepEqual([...pickRunning(jobs, 0, policy)].sort(), ['closing', 'fg', 'high', 'normal']);
  });

  it('a higher priority takes the slot of a running lower one', () => {
    const jobs = [job('low', { priority: 'low', running: { since: 0, level: 3 } }), job('high', { priority: 'high', createdAt: 5 })];
    assert.deepEqual([...pickRunning(jobs, 10, { ...policy, maxConcurrent: 1 })], ['high']);
  });

  it('round-robin within a level: a running job keeps its slot for a slice, then the one served longest ago goes', () => {
    const running = job('a', { running: { since: 0, level: 2 }, servedAt: 0 });
    const waiting = job('b', { servedAt: undefined, createdAt: 1 });
    const one = { ...policy, maxConcurrent: 1 };
    assert.deepEqual([...pickRunning([running, waiting], 4 * MIN, one)], ['a']);
    assert.deepEqual([...pickRunning([running, waiting], 5 * MIN, one)], ['b']);
  });

  it('no job starves: waiting raises the level one step per agingMs, up to high', () => {
    const low = { priority: 'low' as const, queuedAt: 0, running: undefined };
    assert.equal(effectiveLevel(low, 9 * MIN, policy), 3);
    assert.equal(effectiveLevel(low, 10 * MIN, policy), 2);
    assert.equal(effectiveLevel(low, 60 * MIN, policy), 1);
    assert.equal(effectiveLevel({ ...low, priority: 'foreground' }, 60 * MIN, policy), 0);
    // After 20 minutes a low job competes as high, and wins over high jobs served since.
    const jobs = [job('old-low', { priority: 'low', queuedAt: 0, createdAt: 0 }), job('high', { priority: 'high', servedAt: 19 * MIN, createdAt: 1 })];
    assert.deepEqual([...pickRunning(jobs, 20 * MIN, { ...policy, maxConcurrent: 1 })], ['old-low']);
  });

  it('a job retrying a transient error keeps running without a slot; a job without a route does not run', () => {
    const jobs = [
      job('retrying', { state: 'TRANSIENT_ERROR', running: { since: 0, level: 2 } }),
      job('next', { createdAt: 1 }),
      job('offline', { priority: 'high', routable: false }),
    ];
    assert.deepEqual([...pickRunning(jobs, 1, { ...policy, maxConcurrent: 1 })].sort(), ['next', 'retrying']);
  });
});

describe('agent rates and schedules', () => {
  it('parses rates in bytes per second, powers of 1024', () => {
    assert.equal(parseRate('2M'), 2 * 1024 * 1024);
    assert.equal(parseRate('512KiB/s'), 512 * 1024);
    assert.equal(parseRate('1.5g'), 1.5 * 1024 ** 3);
    assert.equal(parseRate('65536'), 65536);
    assert.equal(parseRate('unlimited'), undefined);
    assert.throws(() => parseRate('fast'), /not a rate/);
    assert.throws(() => parseRate('100'), /below 1 KiB/);
  });

  it('a schedule of weekly windows, first match wins, windows past midnight belong to their first day', () => {
    const s = RateSchedule.parse({ 'Mon-Fri 08:00-18:00': '1M', 'Sat,Sun 22:00-06:00': '2M', default: '8M' });
    const at = (iso: string): number | undefined => s.rateAt(new Date(iso));
    assert.equal(at('2026-12-07T09:30:00'), 1024 * 1024); // Monday
    assert.equal(at('2026-12-07T18:00:00'), 8 * 1024 * 1024); // the end is exclusive
    assert.equal(at('2026-12-05T23:00:00'), 2 * 1024 * 1024); // Saturday night
    assert.equal(at('2026-12-07T05:00:00'), 2 * 1024 * 1024); // Monday morning, Sunday's window
    assert.equal(at('2026-12-08T05:00:00'), 8 * 1024 * 1024); // Tuesday morning: Monday has no night window
    assert.equal(RateSchedule.parse({ 'Mon 00:00-24:00': '1M' }).rateAt(new Date('2026-12-08T12:00:00')), undefined);
    assert.throws(() => RateSchedule.parse({ 'Someday 08:00-18:00': '1M' }), /"Someday" is not a day/);
    assert.throws(() => RateSchedule.parse({ 'Mon 8-18': '1M' }), /"8" is not a time \(HH:MM\)/);
    assert.throws(() => RateSchedule.parse({ 'Mon-Fri': '1M' }), /expected "Days HH:MM-HH:MM"/);
    assert.throws(() => RateSchedule.parse({ 'Mon 08:00-25:00': '1M' }), /not a time/);
    assert.throws(() => RateSchedule.parse({ default: 'lots' }), /not a rate/);
    assert.throws(() => RateSchedule.parse([]), /an object/);
  });

  it('a token bucket lets through its rate (plus its burst) and waits for the rest', async () => {
    const bucket = new TokenBucket(200 * 1024, 0.1);
    const started = performance.now();
    for (let i = 0; i < 10; i++) await bucket.take(20 * 1024);
    const ms = performance.now() - started;
    // 200 KiB at 200 KiB/s with a 20 KiB burst: at least 0.9 s.
    assert.ok(ms >= 850, `200 KiB at 200 KiB/s passed in ${ms} ms`);
    const unlimited = new TokenBucket(undefined);
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) await unlimited.take(1024 * 1024);
    assert.ok(performance.now() - t0 < 1000);
  });

  it('a waiting taker gives up when its signal aborts', async () => {
    const bucket = new TokenBucket(16 * 1024, 0.1);
    await bucket.take(16 * 1024);
    await assert.rejects(bucket.take(1024 * 1024, AbortSignal.timeout(50)), { name: 'AbortError' });
  });
});

describe('agent yield controller', () => {
  const logger = pino({ level: 'silent' });

  it('grows while the Acks come without queueing delay, and falls to the floor while a queue builds', () => {
    const y = new YieldController(logger);
    let now = 0;
    // 256 KiB fragments whose Acks come 5 ms after their bytes needed: the base delay.
    for (let i = 0; i < 20; i++) {
      const needed = ((256 * 1024) / y.rate) * 1000;
      y.sample(256 * 1024, needed + 5, (now += 100));
    }
    const grown = y.rate;
    assert.ok(grown > 2 * 1024 * 1024, `rate ${grown} after 20 quick Acks`);
    // Someone fills the bottleneck's queue: every Ack comes 200 ms late.
    for (let i = 0; i < 30; i++) {
      const needed = ((256 * 1024) / y.rate) * 1000;
      y.sample(256 * 1024, needed + 205, (now += 300));
    }
    assert.equal(y.rate, YIELD_MIN_RATE);
    // The queue drains: the rate comes back.
    for (let i = 0; i < 30; i++) {
      const needed = ((64 * 1024) / y.rate) * 1000;
      y.sample(64 * 1024, needed + 5, (now += 100));
    }
    assert.ok(y.rate > 1024 * 1024, `rate ${y.rate} after the queue drained`);
  });
});

describe('agent odds and ends', () => {
  it('sealed passwords open with their key only', async () => {
    const dir = await tempDir('bits-secrets-');
    try {
      const a = await Secrets.open(dir.path);
      const sealed = a.seal('p@ss:word');
      assert.doesNotMatch(sealed, /p@ss/);
      assert.equal((await Secrets.open(dir.path)).unseal(sealed), 'p@ss:word');
      assert.equal((await stat(join(dir.path, 'secret.key'))).mode & 0o777, 0o600);
      const other = await tempDir('bits-secrets-');
      try {
        const b = await Secrets.open(other.path);
        assert.throws(() => b.unseal(sealed), /auth|decrypt/i);
        assert.throws(() => a.unseal(sealed.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))), /auth|decrypt/i);
      } finally {
        await other.cleanup();
      }
    } finally {
      await dir.cleanup();
    }
  });

  it('the socket lives with its state directory; the default one under XDG_RUNTIME_DIR', () => {
    assert.equal(agentSocketPath('/tmp/s', {}), '/tmp/s/agent.sock');
    assert.equal(agentSocketPath(defaultStateDir(), { XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/bits-upload/agent.sock');
    assert.equal(agentSocketPath(defaultStateDir(), {}), join(defaultStateDir(), 'agent.sock'));
    assert.throws(() => agentSocketPath(`/tmp/${'x'.repeat(120)}`, {}), /longer than/);
  });

  it('loopback hosts need no network; a machine with only loopback has none', () => {
    assert.equal(isLocalHost(new URL('http://127.0.0.1:1/')), true);
    assert.equal(isLocalHost(new URL('http://[::1]:1/')), true);
    assert.equal(isLocalHost(new URL('http://localhost/')), true);
    assert.equal(isLocalHost(new URL('http://10.0.0.1/')), false);
    const lo = { lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }] };
    assert.equal(hasUsableNetwork(lo), false);
    const linkLocal = { eth0: [{ address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 }] };
    assert.equal(hasUsableNetwork({ ...lo, ...linkLocal }), false);
    const up = { eth0: [{ address: '10.1.2.3', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: '10.1.2.3/24' }] };
    assert.equal(hasUsableNetwork({ ...lo, ...up }), true);
  });
});
