// upload() through a fault-injecting proxy: every transient fault is survived byte-identical; fatal
// errors end the job at once with a clear error and no retry storm.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { UploadOptions } from '../src/client/upload.js';
import { describeClientError } from '../src/client/errors.js';
import type { BitsClientError } from '../src/client/errors.js';
import { resumeJob } from '../src/client/jobs.js';
import type { UploadRecord } from '../src/client/journal.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { Fault, FaultProxy, ProxiedRequest } from './helpers/fault-proxy.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';

const FRAG = 32 * 1024;
const SIZE = 10 * FRAG + 123;
const SNF = { 'BITS-Error-Code': '0x8020001F', 'BITS-Error-Context': '0x5' };

/** The n-th (0-based) request of a packet type gets `fault`. */
function nth(type: string, faults: Record<number, Fault>): (req: ProxiedRequest) => Fault | undefined {
  let seen = -1;
  return (req) => {
    if (req.packetType?.toLowerCase() !== type.toLowerCase()) return undefined;
    seen++;
    return faults[seen];
  };
}

describe('upload() through a fault-injecting proxy', () => {
  let t: TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let stateDir: string;
  let n = 0;
  before(async () => {
    t = await startServer({ vdir: { maxFragmentSize: 16 * FRAG } });
    proxy = await startFaultProxy({ port: t.port });
    dir = await mkdtemp(join(tmpdir(), 'bits-faults-'));
    stateDir = join(dir, 'state');
  });
  after(async () => {
    await proxy.close();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Uploads a fresh random file through the proxy with `rule`; returns the job's retries and the proxy log. */
  async function survive(rule: FaultProxy['rule'], extra: Partial<UploadOptions> = {}, size = SIZE) {
    const name = `f${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, size);
    const first = proxy.requests.length;
    proxy.rule = rule;
    const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/${name}`, fragmentSize: FRAG, stateDir, retryDelayMs: 10, ...extra });
    const retries: BitsClientError[] = [];
    const sessions: string[] = [];
    job.on('retry', (r) => retries.push(r.error));
    job.on('session', (s) => sessions.push(s.sessionId));
    try {
      await job.result;
    } finally {
      proxy.rule = undefined;
    }
    assert.equal(await sha256File(join(t.uploads, name)), sha, 'byte-identical');
    return { retries, sessions, requests: proxy.requests.slice(first) };
  }

  it('survives connections cut mid-fragment', async () => {
    const { retries, requests } = await survive(nth('Fragment', { 1: { kind: 'cut', afterBytes: FRAG / 2 }, 4: { kind: 'cut', afterBytes: 10 } }));
    assert.equal(retries.length, 2);
    assert.ok(retries.every((e) => e.code === 'BITS_CLIENT_NETWORK' && e.kind === 'transient'));
    // After each cut: Ping, then the fragment again (the server kept what arrived).
    assert.equal(requests.filter((r) => r.packetType === 'Ping').length, 3);
  });

  it('survives delays, and a request delayed past the idle timeout', async () => {
    let i = 0;
    const { retries } = await survive(
      (req) => {
        if (req.packetType !== 'Fragment') return { kind: 'delay', ms: 20 };
        return i++ === 2 ? { kind: 'delay', ms: 800 } : { kind: 'delay', ms: 20 };
      },
      { idleTimeoutMs: 300 },
    );
    assert.match(retries[0]!.message, /idle timeout/);
    // The stale request reaches the server late; if a live fragment is streaming then, the server lets
    // the later arrival supersede it (D10) and the client retries that one too.
    assert.ok(retries.length <= 2, `${retries.length} retries`);
  });

  it('survives an injected 413 (shrinks), 500 and 503 (retries)', async () => {
    const { retries, requests } = await survive(
      nth('Fragment', {
        1: { kind: 'respond', status: 413 },
        3: { kind: 'respond', status: 500 },
        5: { kind: 'respond', status: 503 },
        6: { kind: 'respond', status: 500, headers: { 'BITS-Error-Code': '0x80070070', 'BITS-Error-Context': '0x5' } },
      }),
    );
    assert.deepEqual(retries.map((e) => e.status), [500, 503, 500]);
    assert.equal(retries[2]!.hresultName, 'ERROR_DISK_FULL');
    const sizes = requests.filter((r) => r.packetType === 'Fragment').map((r) => r.contentLength);
    assert.equal(sizes[2], FRAG / 2, 'the fragment after the 413 is half as long');
  });

  it('honours Retry-After on a 503 (e.g. the per-user session limit)', async () => {
    const started = Date.now();
    const { retries } = await survive(nth('Create-Session', { 0: { kind: 'respond', status: 503, headers: { 'Retry-After': 1 } } }));
    assert.equal(retries.length, 1);
    assert.equal(retries[0]!.retryAfterMs, 1000);
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After, not the 10 ms retry delay');
  });

  it('resyncs to BITS-Received-Content-Range on 200 and 416, forwards and backwards', async () => {
    let fragments = 0;
    const { retries } = await survive((req) => {
      if (req.packetType !== 'Fragment') return undefined;
      const [, first] = /bytes (\d+)-/.exec(req.headers['content-range'] ?? '') ?? [];
      const start = Number(first);
      switch (fragments++) {
        case 3: // 416 backwards: "I only have FRAG bytes"
          return { kind: 'respond', status: 416, headers: { 'BITS-Received-Content-Range': FRAG } };
        case 6: // 200 forwards, past what the server really has: the server's own 416 brings the client back
          return { kind: 'respond', status: 200, headers: { 'BITS-Received-Content-Range': start + 3 * FRAG } };
        case 9: // 416 forwards
          return { kind: 'respond', status: 416, headers: { 'BITS-Received-Content-Range': start + 2 * FRAG } };
      }
      return undefined;
    });
    assert.equal(retries.length, 0, 'resync is not an error');
  });

  it('starts a new session on BG_E_SESSION_NOT_FOUND (Fragment and Close-Session)', async () => {
    const a = await survive(nth('Fragment', { 4: { kind: 'respond', status: 500, headers: SNF } }));
    assert.equal(a.sessions.length, 2);
    assert.equal(a.retries.length, 0);
    // The new session starts at 0: every byte sent again.
    const b = await survive(nth('Close-Session', { 0: { kind: 'respond', status: 500, headers: SNF } }));
    assert.equal(b.sessions.length, 2);
    assert.equal(b.requests.filter((r) => r.packetType === 'Close-Session').length, 2);
  });

  it('survives Acks lost after the server stored the bytes (dropped or withheld), also for Close-Session', async () => {
    const a = await survive(nth('Fragment', { 2: { kind: 'drop-response' }, 5: { kind: 'hang-response' } }), { idleTimeoutMs: 400 });
    assert.equal(a.retries.length, 2);
    // The Close-Session Ack is lost: the server committed; the resent Close gets BG_E_SESSION_NOT_FOUND.
    const warnings: string[] = [];
    const name = `f${n}.bin`;
    const b = await survive(nth('Close-Session', { 0: { kind: 'drop-response' } }));
    assert.equal(b.sessions.length, 1, 'no new session: the first Close did commit');
    assert.ok((await stat(join(t.uploads, name))).size > 0);
    void warnings;
  });

  it('survives a seeded storm of mixed faults', async () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const menu: Fault[] = [
      { kind: 'cut', afterBytes: 100 },
      { kind: 'delay', ms: 30 },
      { kind: 'respond', status: 503 },
      { kind: 'respond', status: 500 },
      { kind: 'drop-response' },
      { kind: 'respond', status: 416, headers: { 'BITS-Received-Content-Range': 0 } },
    ];
    const { retries, requests } = await survive(
      (req) => (req.packetType === 'Fragment' && random() < 0.35 ? menu[Math.floor(random() * menu.length)] : undefined),
      {},
      40 * FRAG + 7,
    );
    assert.ok(requests.some((r) => r.fault !== undefined));
    assert.ok(retries.length > 3, `faults happened (${retries.length} retries)`);
  });

  describe('fatal errors end the job at once', () => {
    async function fatal(rule: FaultProxy['rule'], url: (name: string) => string, expect: Partial<BitsClientError>) {
      const name = `fatal${n++}.bin`;
      const file = join(dir, name);
      await randomFile(file, SIZE);
      const first = proxy.requests.length;
      proxy.rule = rule;
      const job = upload({ file, url: url(name), fragmentSize: FRAG, stateDir, retryDelayMs: 10 });
      let retries = 0;
      job.on('retry', () => retries++);
      let error: BitsClientError | undefined;
      try {
        await job.result;
      } catch (err) {
        error = err as BitsClientError;
      } finally {
        proxy.rule = undefined;
      }
      assert.ok(error, 'the job failed');
      for (const [k, v] of Object.entries(expect)) assert.equal((error as unknown as Record<string, unknown>)[k], v, k);
      assert.equal(error.kind, 'fatal');
      assert.equal(retries, 0, 'no retry');
      const record = JSON.parse(await readFile(join(stateDir, 'jobs', `${job.id}.json`), 'utf8')) as UploadRecord;
      assert.equal(record.state, 'error');
      return { error, requests: proxy.requests.slice(first) };
    }

    it('403 on Create-Session', async () => {
      const { error, requests } = await fatal(
        nth('Create-Session', { 0: { kind: 'respond', status: 403, headers: { 'BITS-Error-Code': '0x80070005', 'BITS-Error-Context': '0x5' } } }),
        (name) => `http://127.0.0.1:${proxy.port}/up/${name}`,
        { status: 403, hresultName: 'E_ACCESSDENIED', request: 'Create-Session', context: 5 },
      );
      assert.equal(requests.length, 2, 'Ping + Create-Session');
      assert.match(describeClientError(error), /Create-Session http:\/\/127\.0\.0\.1:\d+\/up\/fatal\d+\.bin: HTTP 403, E_ACCESSDENIED \(0x80070005\), context 0x5 \(remote file\) — access denied/);
    });

    it('501 from a vdir with uploads disabled (the real server)', async () => {
      const off = await startServer({ vdir: { uploadEnabled: false } });
      const p2 = await startFaultProxy({ port: off.port });
      try {
        const name = `fatal${n++}.bin`;
        const file = join(dir, name);
        await randomFile(file, 100);
        const job = upload({ file, url: `http://127.0.0.1:${p2.port}/up/${name}`, stateDir, retryDelayMs: 10 });
        await assert.rejects(job.result, (err: BitsClientError) => {
          assert.equal(err.status, 501);
          assert.equal(err.hresultName, 'E_ACCESSDENIED');
          assert.equal(err.kind, 'fatal');
          assert.match(describeClientError(err), /BITS uploads are not enabled/);
          return true;
        });
        assert.equal(p2.requests.length, 1, 'one request (Ping), no storm');
      } finally {
        await p2.close();
        await off.stop();
      }
    });

    it('BG_E_TOO_LARGE (0x80200020) from a size-limited vdir (the real server)', async () => {
      const limited = await startServer({ vdir: { maximumUploadSize: 1000 } });
      const p2 = await startFaultProxy({ port: limited.port });
      try {
        const name = `fatal${n++}.bin`;
        const file = join(dir, name);
        await randomFile(file, 5000);
        const job = upload({ file, url: `http://127.0.0.1:${p2.port}/up/${name}`, stateDir, retryDelayMs: 10 });
        await assert.rejects(job.result, (err: BitsClientError) => {
          assert.equal(err.status, 500);
          assert.equal(err.hresultName, 'BG_E_TOO_LARGE');
          assert.equal(err.request, 'Fragment');
          return true;
        });
        assert.equal(p2.count('Fragment'), 1);
        assert.equal(p2.requests.length, 3, 'Ping, Create-Session, one Fragment');
      } finally {
        await p2.close();
        await limited.stop();
      }
    });

    it('401 without credentials and 409 (destination exists)', async () => {
      await fatal(nth('Fragment', { 0: { kind: 'respond', status: 401, headers: { 'WWW-Authenticate': 'Basic realm="x"' } } }), (name) => `http://127.0.0.1:${proxy.port}/up/${name}`, {
        status: 401,
        hresultName: 'BG_E_HTTP_ERROR_401',
      });
      const { requests } = await fatal(
        nth('Create-Session', { 0: { kind: 'respond', status: 409, headers: { 'BITS-Error-Code': '0x80070005', 'BITS-Error-Context': '0x5' } } }),
        (name) => `http://127.0.0.1:${proxy.port}/up/${name}`,
        { status: 409 },
      );
      assert.equal(requests.length, 2);
    });
  });

  it('transient errors for longer than the no-progress timeout stop the job resumably, with backoff', async () => {
    const name = `stuck${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, SIZE);
    const first = proxy.requests.length;
    proxy.rule = (req) => (req.packetType === 'Fragment' && req.headers['content-range']?.startsWith(`bytes ${2 * FRAG}-`) ? { kind: 'respond', status: 503 } : undefined);
    const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/${name}`, fragmentSize: FRAG, stateDir, retryDelayMs: 20, noProgressTimeoutMs: 600 });
    const delays: number[] = [];
    job.on('retry', (r) => delays.push(r.delayMs));
    await assert.rejects(job.result, (err: BitsClientError) => {
      assert.equal(err.code, 'BITS_CLIENT_NO_PROGRESS');
      assert.equal(err.kind, 'interrupted');
      assert.equal(err.hresultName, 'BG_E_NO_PROGRESS');
      return true;
    });
    proxy.rule = undefined;
    assert.ok(delays.length >= 3 && delays.length <= 8, `backoff, not a storm: ${delays.length} retries`);
    assert.ok(delays[1]! >= 40 && delays[2]! >= 80, `exponential: ${delays.join(', ')}`);
    const record = JSON.parse(await readFile(join(stateDir, 'jobs', `${job.id}.json`), 'utf8')) as UploadRecord;
    assert.equal(record.state, 'interrupted');
    assert.equal(record.offset, 2 * FRAG);
    // Resumed once the server is fine again: continues where the server stands.
    const mark = proxy.bytesUp;
    const resumed = await resumeJob(job.id, { stateDir, retryDelayMs: 10 });
    await resumed.result;
    assert.equal(await sha256File(join(t.uploads, name)), sha);
    assert.ok(proxy.bytesUp - mark <= SIZE - 2 * FRAG, 'did not start over');
    assert.ok(proxy.requests.length > first);
  });

  it('stop() interrupts resumably; cancel() sends Cancel-Session and forgets the job', async () => {
    const name = `stopped${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, SIZE);
    proxy.rule = () => ({ kind: 'delay', ms: 20 });
    try {
      const job = upload({ file, url: `http://127.0.0.1:${proxy.port}/up/${name}`, fragmentSize: FRAG, stateDir, retryDelayMs: 10 });
      job.on('progress', (p) => {
        if (p.bytesDone >= 3 * FRAG) job.stop();
      });
      await assert.rejects(job.result, { code: 'BITS_CLIENT_INTERRUPTED', kind: 'interrupted' });
      assert.ok((await journaledJobs(stateDir)).includes(job.id));
      const resumed = await resumeJob(job.id, { stateDir, retryDelayMs: 10 });
      await resumed.result;
      assert.equal(await sha256File(join(t.uploads, name)), sha);

      const name2 = `cancelled${n++}.bin`;
      const file2 = join(dir, name2);
      await randomFile(file2, SIZE);
      const before = proxy.count('Cancel-Session');
      const job2 = upload({ file: file2, url: `http://127.0.0.1:${proxy.port}/up/${name2}`, fragmentSize: FRAG, stateDir, retryDelayMs: 10 });
      job2.on('progress', (p) => {
        if (p.bytesDone >= 2 * FRAG) void job2.cancel();
      });
      await assert.rejects(job2.result, { code: 'BITS_CLIENT_CANCELLED' });
      assert.equal(proxy.count('Cancel-Session'), before + 1);
      assert.ok(!(await journaledJobs(stateDir)).includes(job2.id));
      await assert.rejects(stat(join(t.uploads, name2)), { code: 'ENOENT' });
    } finally {
      proxy.rule = undefined;
    }
  });
});
