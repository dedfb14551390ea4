// download(): BITS-style resumable downloads from our server (ranges) and from a server that ignores
// Range; restarts when the remote file changes; a missing Content-Length; the journal.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { download } from '../src/client/download.js';
import type { BitsClientError } from '../src/client/errors.js';
import { resumeJob } from '../src/client/jobs.js';
import type { DownloadRecord } from '../src/client/journal.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import { startFakeServer } from './helpers/fake-http-server.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';

describe('download()', () => {
  let t: TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let stateDir: string;
  before(async () => {
    t = await startServer({ vdir: { downloadEnabled: true } });
    proxy = await startFaultProxy({ port: t.port });
    dir = await mkdtemp(join(tmpdir(), 'bits-download-'));
    stateDir = join(dir, 'state');
  });
  after(async () => {
    await proxy.close();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('downloads with HEAD then one GET without Range; empty files too', async () => {
    const sha = await randomFile(join(t.uploads, 'plain.bin'), 3_000_000);
    await writeFile(join(t.uploads, 'empty.bin'), '');
    const first = proxy.requests.length;
    const out = join(dir, 'plain.bin');
    const result = await download({ url: `http://127.0.0.1:${proxy.port}/up/plain.bin`, file: out, stateDir, retryDelayMs: 10 }).result;
    assert.equal(result.bytes, 3_000_000);
    assert.equal(await sha256File(out), sha);
    const reqs = proxy.requests.slice(first);
    assert.deepEqual(reqs.map((r) => r.method), ['HEAD', 'GET']);
    assert.equal(reqs[1]!.headers['range'], undefined);
    assert.equal(reqs[1]!.headers['accept-encoding'], 'identity');
    await rm(out);
    await assert.rejects(stat(out + '.bits-part'), { code: 'ENOENT' });
    const empty = join(dir, 'empty.bin');
    await download({ url: `http://127.0.0.1:${proxy.port}/up/empty.bin`, file: empty, stateDir, retryDelayMs: 10 }).result;
    assert.equal((await stat(empty)).size, 0);
    assert.deepEqual(await journaledJobs(stateDir), []);
  });

  it('resumes with Range + If-Range after the connection is cut mid-body', async () => {
    const sha = await randomFile(join(t.uploads, 'cut.bin'), 2_000_000);
    const first = proxy.requests.length;
    let gets = 0;
    proxy.rule = (req) => (req.method === 'GET' && gets++ === 0 ? { kind: 'cut-response', afterBytes: 700_000 } : undefined);
    try {
      const out = join(dir, 'cut.bin');
      const job = download({ url: `http://127.0.0.1:${proxy.port}/up/cut.bin`, file: out, stateDir, retryDelayMs: 10 });
      let retries = 0;
      job.on('retry', () => retries++);
      await job.result;
      assert.equal(await sha256File(out), sha);
      assert.equal(retries, 1);
      const getReqs = proxy.requests.slice(first).filter((r) => r.method === 'GET');
      assert.equal(getReqs.length, 2);
      // From what the client held when the body broke off (at most what the proxy passed).
      const from = Number(/^bytes=(\d+)-1999999$/.exec(getReqs[1]!.headers['range'] ?? '')?.[1]);
      assert.ok(from > 0 && from <= 700_000, `resumed at ${from}`);
      assert.match(getReqs[1]!.headers['if-range'] ?? '', /^"/, 'the strong ETag as validator');
    } finally {
      proxy.rule = undefined;
    }
  });

  it('starts over when the remote file changes between two requests', async () => {
    const path = join(t.uploads, 'changing.bin');
    await randomFile(path, 1_000_000);
    let gets = 0;
    let newSha = '';
    proxy.rule = (req) => {
      if (req.method !== 'GET') return undefined;
      return gets++ === 0 ? { kind: 'cut-response', afterBytes: 400_000 } : undefined;
    };
    try {
      const out = join(dir, 'changing.bin');
      const job = download({ url: `http://127.0.0.1:${proxy.port}/up/changing.bin`, file: out, stateDir, retryDelayMs: 200 });
      const restarts: string[] = [];
      job.on('restart', (r) => restarts.push(r.reason));
      job.on('retry', () => {
        // Replace the remote file (same size, new content and time) while the client waits to retry.
        void randomFile(path, 1_000_000).then((sha) => (newSha = sha));
      });
      const result = await job.result;
      assert.equal(await sha256File(out), newSha);
      assert.equal(result.restarts, 1);
      assert.match(restarts[0]!, /changed/);
    } finally {
      proxy.rule = undefined;
    }
  });

  it('handles a server that ignores Range (200 to a ranged GET): skips what it holds', async () => {
    const body = randomBytes(1_500_000);
    let gets = 0;
    const noRange = await startFakeServer((req) => {
      const headers = { 'Last-Modified': 'Tue, 01 Jan 2030 00:00:00 GMT' };
      if (req.method === 'HEAD') return { status: 200, headers, body };
      gets++;
      return gets === 1 ? { status: 200, headers, body, cutAfter: 600_000 } : { status: 200, headers, body };
    });
    try {
      const out = join(dir, 'norange.bin');
      const job = download({ url: `http://127.0.0.1:${noRange.port}/f.bin`, file: out, stateDir, retryDelayMs: 10 });
      const warnings: string[] = [];
      const restarts: string[] = [];
      job.on('warning', (w) => warnings.push(w));
      job.on('restart', (r) => restarts.push(r.reason));
      await job.result;
      assert.deepEqual(await readFile(out), body);
      assert.equal(gets, 2);
      assert.match(noRange.requests.filter((r) => r.method === 'GET')[1]!.headers['range'] ?? '', /^bytes=\d+-1499999$/);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /ignores Range/);
      assert.deepEqual(restarts, []);
    } finally {
      await noRange.close();
    }
  });

  it('fails without retrying: 404, and a file without Content-Length (BG_E_MISSING_FILE_SIZE)', async () => {
    await assert.rejects(
      download({ url: `http://127.0.0.1:${t.port}/up/missing.bin`, file: join(dir, 'missing.bin'), stateDir, retryDelayMs: 10 }).result,
      (err: BitsClientError) => err.status === 404 && err.kind === 'fatal' && err.hresultName === 'BG_E_HTTP_ERROR_404',
    );
    const dynamic = await startFakeServer((req) =>
      req.method === 'HEAD' ? { status: 405 } : { raw: Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello') },
    );
    try {
      await assert.rejects(
        download({ url: `http://127.0.0.1:${dynamic.port}/x`, file: join(dir, 'dyn.bin'), stateDir, retryDelayMs: 10 }).result,
        (err: BitsClientError) => err.code === 'BITS_CLIENT_MISSING_FILE_SIZE' && err.hresultName === 'BG_E_MISSING_FILE_SIZE',
      );
      assert.equal(dynamic.requests.length, 2, 'HEAD, GET, no retry');
    } finally {
      await dynamic.close();
    }
  });

  it('journals its progress; a stopped download resumes from its part file', async () => {
    const sha = await randomFile(join(t.uploads, 'stop.bin'), 12 * 1024 * 1024);
    proxy.bytesPerSecond = undefined;
    const out = join(dir, 'stop.bin');
    let gets = 0;
    proxy.rule = (req) => (req.method === 'GET' && gets++ === 0 ? { kind: 'cut-response', afterBytes: 9 * 1024 * 1024 } : undefined);
    const first = proxy.requests.length;
    try {
      const job = download({ url: `http://127.0.0.1:${proxy.port}/up/stop.bin`, file: out, stateDir, retryDelayMs: 5000 });
      await new Promise<void>((resolve) => job.once('retry', () => resolve()));
      job.stop();
      await assert.rejects(job.result, { code: 'BITS_CLIENT_INTERRUPTED' });
      const record = JSON.parse(await readFile(join(stateDir, 'jobs', `${job.id}.json`), 'utf8')) as DownloadRecord;
      assert.equal(record.state, 'interrupted');
      const held = record.progress.offset;
      assert.ok(held > 8 * 1024 * 1024 && held <= 9 * 1024 * 1024, `the bytes received before the cut are journaled (${held})`);
      assert.equal((await stat(out + '.bits-part')).size, held);
      const resumed = await resumeJob(job.id, { stateDir, retryDelayMs: 10 });
      await resumed.result;
      assert.equal(await sha256File(out), sha);
      const getReqs = proxy.requests.slice(first).filter((r) => r.method === 'GET');
      assert.equal(getReqs.at(-1)!.headers['range'], `bytes=${held}-${12 * 1024 * 1024 - 1}`);
    } finally {
      proxy.rule = undefined;
    }
  });
});
