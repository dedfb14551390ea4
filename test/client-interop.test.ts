// The client against peers that behave like third-party servers met in interop testing: hung and
// unframed answers (the no-progress limit holds during a request), servers that refuse an empty
// Fragment, download servers that parse only closed ranges, and the misspelt 416 resync header.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { download } from '../src/client/download.js';
import type { BitsClientError } from '../src/client/errors.js';
import type { UploadRecord } from '../src/client/journal.js';
import { upload } from '../src/client/upload.js';
import { startServer } from './helpers/bits-server.js';
import { runCli } from './helpers/cli-run.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import type { FakeServer } from './helpers/fake-http-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import {
  startClosedRangeServer,
  startEmptyRangeRejectingPeer,
  startMisspeltRangePeer,
  startSilentPeer,
  startUnframedAckPeer,
} from './helpers/interop-peers.js';

/** The request idle timeout is 120 s; a client that only checks between attempts stops after it. */
const WELL_BEFORE_IDLE_TIMEOUT_MS = 30_000;

describe('client interop with third-party peers', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-interop-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `i${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, size);
    return { name, file, sha, stateDir: join(dir, `state-${name}`) };
  };

  describe('--no-progress-timeout holds while a request hangs (exit 3, resumable)', () => {
    async function stopsAtLimit(url: (name: string) => string, extra: string[] = []): Promise<void> {
      const f = await fresh(50_000);
      const r = await runCli(
        ['upload', f.file, url(f.name), '--state-dir', f.stateDir, '--retry-delay', '0.05', '--no-progress-timeout', '1', ...extra],
        {},
        WELL_BEFORE_IDLE_TIMEOUT_MS,
      );
      assert.equal(r.code, 3, `exit ${r.code} (${r.signal ?? 'no signal'}) after ${r.ms} ms: ${r.stderr}`);
      assert.match(r.stderr, /interrupted: .*no progress for 1 s/);
      assert.match(r.stderr, /can be resumed: bits resume [0-9a-f]{12}/);
      const [id] = await journaledJobs(f.stateDir);
      const record = JSON.parse(await readFile(join(f.stateDir, 'jobs', `${id}.json`), 'utf8')) as UploadRecord;
      assert.equal(record.state, 'interrupted');
      assert.equal(record.error?.['code'], 'BITS_CLIENT_NO_PROGRESS');
    }

    it('a peer that answers without Content-Length on a kept-alive connection', async () => {
      const peer = await startUnframedAckPeer();
      try {
        await stopsAtLimit((name) => `http://127.0.0.1:${peer.port}/up/${name}`);
        assert.ok(peer.requests.length >= 1);
      } finally {
        await peer.close();
      }
    });

    it('a peer that never answers, and TLS to a plain-HTTP port', async () => {
      const silent = await startSilentPeer();
      const plain = await startFakeBitsServer();
      try {
        await stopsAtLimit((name) => `http://127.0.0.1:${silent.port}/up/${name}`);
        await stopsAtLimit((name) => `https://127.0.0.1:${plain.port}/up/${name}`, ['--insecure']);
        assert.equal(plain.requests.length, 0, 'the plain server never saw a request head');
      } finally {
        await silent.close();
        await plain.close();
      }
    });

    it('a limit longer than a Node timer holds (30 days) does not cut the first request', async () => {
      const peer = await startFakeBitsServer();
      try {
        const f = await fresh(20_000);
        const result = await upload({ file: f.file, url: `http://127.0.0.1:${peer.port}/up/${f.name}`, stateDir: false, noProgressTimeoutMs: 30 * 86_400_000 }).result;
        assert.equal(result.bytes, 20_000);
      } finally {
        await peer.close();
      }
    });

    it('acknowledged bytes reset the clock: a slow upload and a slow download that keep progressing finish', async () => {
      const t = await startServer({ vdir: { downloadEnabled: true } });
      const proxy = await startFaultProxy({ port: t.port }, { rule: (req) => (req.packetType === 'Fragment' ? { kind: 'delay', ms: 250 } : undefined) });
      const body = randomBytes(64 * 1024);
      const trickle = http.createServer((req, res) => {
        res.writeHead(200, { 'Content-Length': body.length, 'Last-Modified': new Date(0).toUTCString() });
        if (req.method === 'HEAD') return res.end();
        let at = 0;
        const timer = setInterval(() => {
          res.write(body.subarray(at, at + 4096));
          at += 4096;
          if (at >= body.length) {
            clearInterval(timer);
            res.end();
          }
        }, 40);
        res.on('close', () => clearInterval(timer));
      });
      await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
      try {
        const f = await fresh(8 * 8192);
        const started = Date.now();
        await upload({ file: f.file, url: `http://127.0.0.1:${proxy.port}/up/${f.name}`, fragmentSize: 8192, stateDir: false, retryDelayMs: 10, noProgressTimeoutMs: 700 }).result;
        assert.ok(Date.now() - started > 700, 'the upload as a whole took longer than the limit');
        assert.equal(await sha256File(join(t.uploads, f.name)), f.sha);
        const out = join(dir, 'trickled.bin');
        const port = (trickle.address() as AddressInfo).port;
        await download({ url: `http://127.0.0.1:${port}/slow.bin`, file: out, stateDir: false, retryDelayMs: 10, noProgressTimeoutMs: 300 }).result;
        assert.deepEqual(await readFile(out), body);
      } finally {
        await new Promise<void>((resolve) => trickle.close(() => resolve()));
        trickle.closeAllConnections();
        await proxy.close();
        await t.stop();
      }
    });
  });

  describe('D8: a zero-length file is Create-Session then Close-Session, no Fragment', () => {
    it('a peer that refuses `bytes */0` takes the empty file', async () => {
      const peer = await startEmptyRangeRejectingPeer();
      try {
        const f = await fresh(0);
        const result = await upload({ file: f.file, url: `http://127.0.0.1:${peer.port}/up/${f.name}`, stateDir: false, retryDelayMs: 10 }).result;
        assert.equal(result.bytes, 0);
        assert.deepEqual(peer.state.log, ['ping', 'create-session', 'close-session']);
        assert.deepEqual(peer.state.committed.get(`/up/${f.name}`), Buffer.alloc(0));
      } finally {
        await peer.close();
      }
    });

    it('our own server commits an empty destination file for the same packets (D18 exception)', async () => {
      const t = await startServer();
      const proxy = await startFaultProxy({ port: t.port });
      try {
        const f = await fresh(0);
        const progress: number[] = [];
        const job = upload({ file: f.file, url: `http://127.0.0.1:${proxy.port}/up/${f.name}`, stateDir: f.stateDir, retryDelayMs: 10 });
        job.on('progress', (p) => progress.push(p.bytesDone));
        await job.result;
        assert.deepEqual(proxy.requests.map((r) => r.packetType), ['Ping', 'Create-Session', 'Close-Session']);
        assert.equal((await stat(join(t.uploads, f.name))).size, 0);
        assert.deepEqual(progress.at(-1), 0);
        assert.deepEqual(await journaledJobs(f.stateDir), []);
      } finally {
        await proxy.close();
        await t.stop();
      }
    });
  });

  it('download resume sends a closed range (bytes=N-(size-1)), which a closed-range-only server serves', async () => {
    const body = randomBytes(100_000);
    const server: FakeServer = await startClosedRangeServer(body, 30_000);
    try {
      const out = join(dir, 'closed.bin');
      const job = download({ url: `http://127.0.0.1:${server.port}/files/closed.bin`, file: out, stateDir: false, retryDelayMs: 10 });
      const errors: BitsClientError[] = [];
      job.on('retry', (r) => errors.push(r.error));
      await job.result;
      assert.deepEqual(await readFile(out), body);
      assert.equal(errors.length, 1, 'one retry, after the cut');
      const ranges = server.requests.filter((r) => r.method === 'GET').map((r) => r.headers['range']);
      assert.equal(ranges.length, 2);
      assert.equal(ranges[0], undefined, 'the first GET asks for the whole file');
      const m = /^bytes=(\d+)-(\d+)$/.exec(ranges[1] ?? '');
      assert.ok(m, `closed range: ${ranges[1]}`);
      assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 30_000);
      assert.equal(Number(m[2]), body.length - 1);
    } finally {
      await server.close();
    }
  });

  it('416 with the misspelt BITS-Recieved-Content-Range (gobits/bitsrv) resyncs instead of failing', async () => {
    const peer = await startMisspeltRangePeer(1);
    try {
      const f = await fresh(5 * 8192 + 17);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${peer.port}/up/${f.name}`, fragmentSize: 8192, stateDir: false, retryDelayMs: 10 });
      let retries = 0;
      job.on('retry', () => retries++);
      await job.result;
      assert.equal(retries, 1, 'the lost Ack');
      assert.ok(peer.state.fragments.includes('416 bytes 8192-16383/40977'), peer.state.fragments.join(', '));
      assert.equal(peer.state.fragments.filter((x) => x.startsWith('416')).length, 1);
      const committed = peer.state.committed.get(`/up/${f.name}`);
      assert.ok(committed);
      await writeFile(join(dir, 'committed.bin'), committed);
      assert.equal(await sha256File(join(dir, 'committed.bin')), f.sha);
    } finally {
      await peer.close();
    }
  });
});
