// How the client sizes its fragments against our real server: fixed when asked, growing while Acks
// come fast up to the maximum, halved on 413 and never grown past what was refused; and a fragment
// body streamed from a file that shrinks under it stops the job.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resumeJob } from '../src/client/jobs.js';
import type { UploadRecord } from '../src/client/journal.js';
import { DEFAULT_FRAGMENT_SIZE, DEFAULT_MAX_FRAGMENT_SIZE, fragmentSizing } from '../src/client/options.js';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { runCli } from './helpers/cli-run.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Checks that `sizes` (the Fragments' lengths but the last) start at `first` and only ever keep
 * their size or double it, up to `max`. Whether an Ack was fast is the machine's business: a slow one
 * only delays the doubling, so this asserts the shape, not the step at which it happens.
 */
function assertGrowth(sizes: number[], first: number, max: number): void {
  assert.equal(sizes[0], first);
  for (let i = 1; i < sizes.length; i++) {
    const grew = Math.min(max, sizes[i - 1]! * 2);
    assert.ok(sizes[i] === sizes[i - 1] || sizes[i] === grew, `fragment ${i}: ${sizes[i]} after ${sizes[i - 1]} (${sizes.join(', ')})`);
  }
}

describe('fragment sizes', () => {
  let t: TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let n = 0;
  before(async () => {
    t = await startServer({ vdir: { maxFragmentSize: 300_000 } });
    proxy = await startFaultProxy({ port: t.port });
    dir = await mkdtemp(join(tmpdir(), 'bits-fragment-size-'));
  });
  after(async () => {
    await proxy.close();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `g${n++}.bin`;
    const file = join(dir, name);
    return { name, file, sha: await randomFile(file, size), stateDir: join(dir, `state-${name}`) };
  };
  /** The lengths of the Fragments sent since request `first`. */
  const fragmentSizes = (first: number): number[] => proxy.requests.slice(first).filter((r) => r.packetType === 'Fragment').map((r) => r.contentLength);

  it('options: default growth from 8 MiB to 28 MiB, a fixed size alone, a maximum from the first size', () => {
    assert.deepEqual(fragmentSizing({}), { fragmentSize: DEFAULT_FRAGMENT_SIZE, maxFragmentSize: DEFAULT_MAX_FRAGMENT_SIZE });
    assert.deepEqual(fragmentSizing({ fragmentSize: 65536 }), { fragmentSize: 65536, maxFragmentSize: undefined });
    assert.deepEqual(fragmentSizing({ maxFragmentSize: 1 * MiB }), { fragmentSize: 1 * MiB, maxFragmentSize: 1 * MiB });
    assert.deepEqual(fragmentSizing({ fragmentSize: 65536, maxFragmentSize: 1 * MiB }), { fragmentSize: 65536, maxFragmentSize: 1 * MiB });
    assert.throws(() => fragmentSizing({ fragmentSize: 65536, maxFragmentSize: 65535 }), /maxFragmentSize \(65535\) must be at least fragmentSize \(65536\)/);
    assert.throws(() => fragmentSizing({ maxFragmentSize: 5119 }), /maxFragmentSize must be an integer >= 5120/);
  });

  it('grow while Acks are fast, up to the maximum, byte-identical', async () => {
    const f = await fresh(2 * MiB + 77);
    const first = proxy.requests.length;
    const job = upload({ file: f.file, url: `http://127.0.0.1:${proxy.port}/up/${f.name}`, fragmentSize: 8 * KiB, maxFragmentSize: 256 * KiB, stateDir: f.stateDir, retryDelayMs: 10 });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(w));
    await job.result;
    assert.equal(await sha256File(join(t.uploads, f.name)), f.sha);
    const sizes = fragmentSizes(first);
    assertGrowth(sizes.slice(0, -1), 8 * KiB, 256 * KiB);
    assert.ok(sizes.includes(256 * KiB), `reached the maximum: ${sizes.join(', ')}`);
    assert.deepEqual(warnings, [], 'no 413 below the server limit');
  });

  it('a 413 halves them and caps their growth there, also for a resumed job', async () => {
    const f = await fresh(3 * MiB);
    const first = proxy.requests.length;
    // The server takes 300,000 bytes: 64 KiB → 128 KiB → 256 KiB → 512 KiB (413) → 256 KiB from then on.
    const job = upload({ file: f.file, url: `http://127.0.0.1:${proxy.port}/up/${f.name}`, fragmentSize: 64 * KiB, maxFragmentSize: 1 * MiB, stateDir: f.stateDir, retryDelayMs: 10 });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(w));
    job.on('progress', (p) => {
      if (p.bytesDone >= 2 * MiB) job.stop();
    });
    await assert.rejects(job.result, { code: 'BITS_CLIENT_INTERRUPTED' });
    const sizes = fragmentSizes(first);
    const refused = sizes.indexOf(512 * KiB);
    assert.ok(refused > 0, `grew to 512 KiB: ${sizes.join(', ')}`);
    assertGrowth(sizes.slice(0, refused + 1), 64 * KiB, 1 * MiB);
    assert.ok(sizes.slice(refused + 1).every((s) => s === 256 * KiB), `256 KiB after the 413: ${sizes.join(', ')}`);
    assert.deepEqual(warnings, ['the server refused a 524288-byte fragment (413); now sending 262144 bytes']);
    const record = JSON.parse(await readFile(join(f.stateDir, 'jobs', `${job.id}.json`), 'utf8')) as UploadRecord;
    assert.equal(record.maxFragmentSize, 256 * KiB, 'the cap is journaled');

    const resumedAt = proxy.requests.length;
    await (await resumeJob(job.id, { stateDir: f.stateDir, retryDelayMs: 10 })).result;
    assert.equal(await sha256File(join(t.uploads, f.name)), f.sha);
    const after = fragmentSizes(resumedAt);
    assert.ok(after.length > 0 && after.every((s) => s <= 256 * KiB), `the resumed job keeps the cap: ${after.join(', ')}`);
    assert.deepEqual(await journaledJobs(f.stateDir), []);
  });

  it('a fixed --fragment-size does not grow; --max-fragment below it or 5 KiB is a usage error', async () => {
    const f = await fresh(10 * 64 * KiB);
    const first = proxy.requests.length;
    const r = await runCli(['upload', f.file, `http://127.0.0.1:${proxy.port}/up/${f.name}`, '--state-dir', f.stateDir, '--fragment-size', '65536', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fragmentSizes(first), Array(10).fill(64 * KiB));
    for (const [args, message] of [
      [['--fragment-size', '65536', '--max-fragment', '65535'], /--max-fragment \(65535\) must be at least --fragment-size \(65536\)/],
      [['--max-fragment', '5119'], /--max-fragment must be a whole number of bytes >= 5120/],
    ] as const) {
      const bad = await runCli(['upload', f.file, `http://127.0.0.1:${proxy.port}/up/${f.name}`, '--state-dir', f.stateDir, ...args]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, message);
    }
  });

  it('a source that shrinks while a fragment is on its way stops the job with BG_E_LOCAL_FILE_CHANGED', async () => {
    const big = await startServer({ vdir: { maxFragmentSize: 32 * MiB } });
    const slow = await startFaultProxy({ port: big.port }, { bytesPerSecond: 4 * MiB });
    try {
      const f = await fresh(24 * MiB);
      // Cut the file short once the one Fragment is on its way: far more of it than the socket
      // buffers hold is still to be read.
      slow.rule = (req) => {
        if (req.packetType === 'Fragment') void truncate(f.file, 0);
        return undefined;
      };
      const job = upload({ file: f.file, url: `http://127.0.0.1:${slow.port}/up/${f.name}`, fragmentSize: 24 * MiB, stateDir: f.stateDir, retryDelayMs: 10 });
      let acknowledged = 0;
      job.on('progress', (p) => (acknowledged = Math.max(acknowledged, p.bytesDone)));
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_LOCAL_FILE_CHANGED');
        assert.equal(err.kind, 'fatal');
        return true;
      });
      assert.equal(acknowledged, 0, 'stopped during the Fragment, not before the next one');
      assert.equal(slow.count('Fragment'), 1, 'not retried');
    } finally {
      await slow.close();
      await big.stop();
    }
  });
});
