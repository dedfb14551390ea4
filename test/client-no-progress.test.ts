// The client's no-progress clock (§7.2 NoProgressTimeout, DESIGN principle 6: time limits are idle
// limits): what counts as a sign of life while a request is in flight, what only the job's clock
// (acknowledged or received bytes) decides, and what the limit must never hide or cost.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, constants, open, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { download } from '../src/client/download.js';
import type { BitsClientError } from '../src/client/errors.js';
import { upload } from '../src/client/upload.js';
import { randomFile } from './helpers/client-files.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import { startRangeIgnoringServer, startSlowLink } from './helpers/interop-peers.js';

const MiB = 1024 * 1024;
/**
 * The slow link's rate. Loopback socket buffers swallow about 4 MiB of a body at once, which then
 * drains unseen at this rate before the Ack: at 4 MB/s about a second, well within the 3 s limit.
 */
const LINK_RATE = 4_000_000;
const LIMIT_MS = 3000;

describe('the no-progress clock', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-no-progress-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `p${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, size);
    return { name, file, sha };
  };

  it('costs nothing per step: the job signal gathers no dependants however many steps run', async () => {
    const server = await startFakeBitsServer();
    try {
      const f = await fresh(60 * 5120);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${server.port}/up/${f.name}`, fragmentSize: 5120, stateDir: false, noProgressTimeoutMs: 60_000 });
      await job.result;
      // White-box, on purpose: Node 20 keeps a WeakRef per AbortSignal.any call in the source signal
      // (kDependantSignals) for the source's whole life, about 65 bytes a step for a long job.
      const signal = (job as unknown as { abort: AbortController }).abort.signal as unknown as Record<symbol, unknown>;
      const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
      const dependants = key === undefined ? undefined : (signal[key] as Set<unknown> | undefined);
      assert.ok((dependants?.size ?? 0) < 5, `${dependants?.size} dependants after 60 fragments`);
    } finally {
      await server.close();
    }
  });

  it('a fragment still moving is not cut: one fragment that takes longer than the limit completes', async () => {
    const server = await startFakeBitsServer();
    const link = await startSlowLink(server.port, LINK_RATE);
    try {
      const f = await fresh(16 * MiB);
      const started = Date.now();
      const job = upload({ file: f.file, url: `http://127.0.0.1:${link.port}/up/${f.name}`, fragmentSize: 16 * MiB, stateDir: false, retryDelayMs: 50, noProgressTimeoutMs: LIMIT_MS });
      const result = await job.result;
      assert.ok(Date.now() - started > LIMIT_MS, 'the premise: the one fragment took longer than the limit');
      assert.equal(result.bytes, 16 * MiB);
      assert.deepEqual(server.state.committed.get(`/up/${f.name}`), await readFile(f.file));
      assert.deepEqual(server.state.log, ['ping', 'create-session', 'fragment', 'close-session'], 'one Fragment, never cut and resent');
    } finally {
      await link.close();
      await server.close();
    }
  });

  it('bytes that move but are never acknowledged still stop the job: activity is no progress', async () => {
    const server = await startFakeBitsServer({
      override: (req) => (req.headers['bits-packet-type'] === 'Fragment' ? { status: 503, headers: { 'BITS-Packet-Type': 'Ack' } } : undefined),
    });
    const link = await startSlowLink(server.port, LINK_RATE);
    try {
      const f = await fresh(8 * MiB);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${link.port}/up/${f.name}`, fragmentSize: 8 * MiB, stateDir: false, retryDelayMs: 50, noProgressTimeoutMs: LIMIT_MS });
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_NO_PROGRESS');
        assert.equal(err.status, 503, 'names the last error');
        return true;
      });
      const fragments = server.state.log.filter((x) => x === 'fragment').length;
      assert.ok(fragments >= 1 && fragments <= 3, `${fragments} Fragments`);
    } finally {
      await link.close();
      await server.close();
    }
  });

  it('a download resumed from a server that ignores Range is not cut while it skips the bytes held', async () => {
    const body = randomBytes(600 * 1024);
    // About 400 KiB/s: skipping the 300 KiB held takes about 0.75 s, longer than the 0.4 s limit;
    // the pieces come 20 ms apart, far within it.
    const server = await startRangeIgnoringServer(body, { cutFirstGetAfter: 300 * 1024, piece: 8 * 1024, everyMs: 20 });
    try {
      const out = join(dir, `skip${n++}.bin`);
      const job = download({ url: `http://127.0.0.1:${server.port}/files/big.bin`, file: out, stateDir: false, retryDelayMs: 10, noProgressTimeoutMs: 400 });
      const warnings: string[] = [];
      job.on('warning', (w) => warnings.push(w));
      const result = await job.result;
      assert.equal(result.bytes, body.length);
      assert.deepEqual(await readFile(out), body);
      assert.equal(server.gets, 2, 'one resume, not cut and started again');
      assert.match(warnings.join('\n'), /ignores Range: skipping \d+ bytes already held/);
    } finally {
      await server.close();
    }
  });

  /**
   * Holds every thread of libuv's pool in a blocking open(2) of a FIFO until `release()`: the job's
   * file-system calls (a stat, a read) then wait for as long as the test wants, however fast the disk.
   */
  function blockThreadPool(): { release(): void } {
    const fifos: string[] = [];
    for (let i = 0; i < Number(process.env['UV_THREADPOOL_SIZE'] ?? 4); i++) {
      const fifo = join(dir, `pool-${n}-${i}.fifo`);
      execFileSync('mkfifo', [fifo]);
      fifos.push(fifo);
      open(fifo, 'r', (err, fd) => {
        if (!err) closeSync(fd);
      });
    }
    return {
      release(): void {
        for (const fifo of fifos) {
          // A reader blocked in open(2) lets a non-blocking writer in; one not there yet gives ENXIO.
          for (let attempt = 0; ; attempt++) {
            try {
              closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
              break;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || attempt >= 1000) throw err;
            }
          }
        }
      },
    };
  }

  it('a fatal error after the limit ran out is itself: LOCAL_FILE_CHANGED is not reported as no progress', { skip: process.platform === 'win32' }, async () => {
    const server = await startFakeBitsServer();
    try {
      const f = await fresh(3 * 5120);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${server.port}/up/${f.name}`, fragmentSize: 5120, stateDir: false, retryDelayMs: 50, noProgressTimeoutMs: 300 });
      let released = false;
      job.on('progress', (p) => {
        if (p.phase !== 'upload' || p.bytesDone !== 5120 || released) return;
        released = true;
        // The source changes, and the next step's stat of it waits until well after the limit.
        appendFileSync(f.file, 'changed');
        const pool = blockThreadPool();
        setTimeout(() => pool.release(), 300 + 500);
      });
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_LOCAL_FILE_CHANGED', err.message);
        assert.equal(err.kind, 'fatal');
        return true;
      });
      assert.ok(released);
      assert.equal(server.state.log.filter((x) => x === 'fragment').length, 1);
    } finally {
      await server.close();
    }
  });
});
