// upload() against our own server over real sockets: sizes around the fragment size, 50 MB, 413
// shrinking, resync, local file changes, the journal.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, utimes, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { JobProgress } from '../src/client/job-events.js';
import { BitsClientError } from '../src/client/errors.js';
import type { UploadRecord } from '../src/client/journal.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';

const FRAG = 64 * 1024;

describe('upload() against our server', () => {
  let t: TestServer;
  let dir: string;
  let stateDir: string;
  before(async () => {
    t = await startServer({ vdir: { maxFragmentSize: 16 * 1024 * 1024, downloadEnabled: true } });
    dir = await mkdtemp(join(tmpdir(), 'bits-client-'));
    stateDir = join(dir, 'state');
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const size of [0, 1, FRAG - 1, FRAG, FRAG + 1]) {
    it(`uploads ${size} bytes byte-identical (fragment size ${FRAG})`, async () => {
      const file = join(dir, `s${size}.bin`);
      const sha = await randomFile(file, size);
      const progress: JobProgress[] = [];
      const job = upload({ file, url: `http://127.0.0.1:${t.port}/up/s${size}.bin`, fragmentSize: FRAG, stateDir, retryDelayMs: 20 });
      job.on('progress', (p) => progress.push(p));
      const result = await job.result;
      assert.equal(result.bytes, size);
      assert.match(result.sessionId, /^\{[0-9A-F-]{36}\}$/);
      assert.equal(await sha256File(join(t.uploads, `s${size}.bin`)), sha);
      assert.equal(progress.at(-1)?.bytesDone, size);
      const done = progress.map((p) => p.bytesDone);
      assert.deepEqual(done, [...done].sort((a, b) => a - b), 'progress never goes back');
      assert.deepEqual(await journaledJobs(stateDir), [], 'a finished job leaves the journal');
    });
  }

  it('uploads 50 MB with the default fragment size, sha256 equal', async () => {
    const file = join(dir, 'big.bin');
    const sha = await randomFile(file, 50 * 1024 * 1024);
    const result = await upload({ file, url: `http://127.0.0.1:${t.port}/up/big.bin`, stateDir, retryDelayMs: 20 }).result;
    assert.equal(result.bytes, 50 * 1024 * 1024);
    assert.equal(await sha256File(join(t.uploads, 'big.bin')), sha);
  });

  it('journals the acknowledged offset after every fragment', async () => {
    const file = join(dir, 'journaled.bin');
    await randomFile(file, 5 * FRAG);
    const proxy = await startFaultProxy({ port: t.port });
    try {
      const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/journaled.bin`, fragmentSize: FRAG, stateDir, retryDelayMs: 20 });
      const seen: number[] = [];
      // Each fragment's request reaching the proxy means the previous Ack was journaled already.
      proxy.rule = (req) => {
        if (req.packetType === 'Fragment') {
          void readFile(join(stateDir, 'jobs', `${job.id}.json`), 'utf8').then((text) => seen.push((JSON.parse(text) as UploadRecord).offset));
        }
        return { kind: 'delay', ms: 30 };
      };
      await job.result;
      assert.deepEqual(seen, [0, FRAG, 2 * FRAG, 3 * FRAG, 4 * FRAG]);
    } finally {
      await proxy.close();
    }
  });

  it('413: halves the fragment size until the server takes it', async () => {
    const small = await startServer({ vdir: { maxFragmentSize: 20_000 } });
    const proxy = await startFaultProxy({ port: small.port });
    try {
      const file = join(dir, 'shrink.bin');
      const sha = await randomFile(file, 200_000);
      const warnings: string[] = [];
      const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/shrink.bin`, fragmentSize: 100_000, stateDir, retryDelayMs: 20 });
      job.on('warning', (w) => warnings.push(w));
      await job.result;
      assert.equal(await sha256File(join(small.uploads, 'shrink.bin')), sha);
      // 100000 → 50000 → 25000 → 12500 fits.
      assert.equal(warnings.length, 3);
      const sizes = proxy.requests.filter((r) => r.packetType === 'Fragment').map((r) => r.contentLength);
      assert.deepEqual(sizes.slice(0, 4), [100_000, 50_000, 25_000, 12_500]);
      assert.ok(sizes.slice(3).every((s) => s <= 12_500));
    } finally {
      await proxy.close();
      await small.stop();
    }
  });

  it('413 at the smallest fragment (5 KiB) is fatal, after a handful of requests', async () => {
    const tiny = await startServer({ vdir: { maxFragmentSize: 4096 } });
    const proxy = await startFaultProxy({ port: tiny.port });
    try {
      const file = join(dir, 'tiny.bin');
      await randomFile(file, 100_000);
      const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/tiny.bin`, fragmentSize: 40_960, stateDir, retryDelayMs: 20 });
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_FRAGMENT_TOO_LARGE');
        assert.equal(err.kind, 'fatal');
        assert.equal(err.status, 413);
        return true;
      });
      // 40960, 20480, 10240, 5120: four fragments, no storm.
      assert.equal(proxy.count('Fragment'), 4);
    } finally {
      await proxy.close();
      await tiny.stop();
    }
  });

  it('stops with BG_E_LOCAL_FILE_CHANGED when the source changes mid-upload', async () => {
    const file = join(dir, 'changing.bin');
    await randomFile(file, 10 * FRAG);
    const proxy = await startFaultProxy({ port: t.port });
    try {
      const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/changing.bin`, fragmentSize: FRAG, stateDir, retryDelayMs: 20 });
      let changed = false;
      job.on('progress', (p) => {
        if (!changed && p.bytesDone >= 2 * FRAG) {
          changed = true;
          void appendFile(file, 'more');
        }
      });
      proxy.rule = () => ({ kind: 'delay', ms: 20 });
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_LOCAL_FILE_CHANGED');
        assert.equal(err.hresultName, 'BG_E_LOCAL_FILE_CHANGED');
        assert.equal(err.kind, 'fatal');
        return true;
      });
      assert.ok(proxy.count('Fragment') < 10);
      // A touched (same size, new mtime) file is a change too — checked again on resume.
      const file2 = join(dir, 'touched.bin');
      await randomFile(file2, 4 * FRAG);
      const job2 = upload({ file: file2, url: `http://127.0.0.1:${proxy.port}/up/touched.bin`, fragmentSize: FRAG, stateDir, retryDelayMs: 20 });
      let touched = false;
      job2.on('progress', (p) => {
        if (!touched && p.bytesDone >= FRAG) {
          touched = true;
          void utimes(file2, new Date(), new Date(Date.now() + 5000));
        }
      });
      await assert.rejects(job2.result, { code: 'BITS_CLIENT_LOCAL_FILE_CHANGED' });
    } finally {
      await proxy.close();
    }
  });
});
