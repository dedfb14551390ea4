// Host-Id (spec §8) against our server: later packets go to the Host-Id host (Ping first), and back
// to the original URL when that host stays unreachable past the fallback timeout.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { startServer } from './helpers/bits-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import { deadPort } from './helpers/dead-port.js';

const FRAG = 32 * 1024;

describe('Host-Id', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-hostid-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('sends Ping, Fragments and Close-Session to the Host-Id host:port', async () => {
    const target = { port: 0 };
    const node = await startFaultProxy(target);
    const t = await startServer({ vdir: { hostId: `127.0.0.1:${node.port}`, hostIdFallbackTimeout: 60 } });
    target.port = t.port;
    try {
      const file = join(dir, 'a.bin');
      const sha = await randomFile(file, 5 * FRAG);
      const job = upload({ file, url: `http://127.0.0.1:${t.port}/up/a.bin`, fragmentSize: FRAG, stateDir: false, retryDelayMs: 10 });
      const switched: string[] = [];
      job.on('host-id', (h) => switched.push(h.url));
      await job.result;
      assert.equal(await sha256File(join(t.uploads, 'a.bin')), sha);
      assert.deepEqual(switched, [`http://127.0.0.1:${node.port}/up/a.bin`]);
      assert.deepEqual(
        node.requests.map((r) => r.packetType),
        ['Ping', 'Fragment', 'Fragment', 'Fragment', 'Fragment', 'Fragment', 'Close-Session'],
        'everything after Create-Session, Ping first',
      );
      assert.ok(node.requests.every((r) => r.headers['host'] === `127.0.0.1:${node.port}`));
    } finally {
      await node.close();
      await t.stop();
    }
  });

  it('a bare host name keeps the port: Host-Id "127.0.0.2" reaches 127.0.0.2:<same port>', async (ctx) => {
    const t = await startServer({ vdir: { hostId: '127.0.0.2' } });
    let node;
    try {
      node = await startFaultProxy({ port: t.port }, { host: '127.0.0.2', port: t.port });
    } catch {
      await t.stop();
      ctx.skip('127.0.0.2 is not a loopback address here');
      return;
    }
    try {
      const file = join(dir, 'b.bin');
      const sha = await randomFile(file, 3 * FRAG);
      await upload({ file, url: `http://127.0.0.1:${t.port}/up/b.bin`, fragmentSize: FRAG, stateDir: false, retryDelayMs: 10 }).result;
      assert.equal(await sha256File(join(t.uploads, 'b.bin')), sha);
      assert.equal(node.count('Fragment'), 3);
      assert.equal(node.count('Create-Session'), 0);
      assert.ok(node.requests.every((r) => r.headers['host'] === `127.0.0.2:${t.port}`));
    } finally {
      await node.close();
      await t.stop();
    }
  });

  it('falls back to the original URL when the Host-Id host is unreachable past the fallback timeout', async () => {
    const t = await startServer({ vdir: { hostId: `127.0.0.1:${await deadPort()}`, hostIdFallbackTimeout: 1 } });
    try {
      const file = join(dir, 'c.bin');
      const sha = await randomFile(file, 3 * FRAG);
      const started = Date.now();
      const job = upload({ file, url: `http://127.0.0.1:${t.port}/up/c.bin`, fragmentSize: FRAG, stateDir: false, retryDelayMs: 50 });
      const events: string[] = [];
      job.on('host-id', () => events.push('host-id'));
      job.on('fallback', () => events.push(`fallback after ${Date.now() - started} ms`));
      job.on('retry', (r) => events.push(`retry ${r.error.code}`));
      await job.result;
      assert.equal(await sha256File(join(t.uploads, 'c.bin')), sha);
      const fallback = events.find((e) => e.startsWith('fallback'));
      assert.ok(fallback, events.join('; '));
      const ms = Number(/after (\d+)/.exec(fallback)![1]);
      assert.ok(ms >= 1000 && ms < 3000, `fell back after ${ms} ms`);
      assert.ok(events.filter((e) => e === 'retry BITS_CLIENT_NETWORK').length >= 2);
      // The session was created again? Not here: this server still knows it (a farm node would not).
      assert.equal(events.filter((e) => e === 'host-id').length, 1, 'a failed Host-Id is not used again');
    } finally {
      await t.stop();
    }
  });

  it('falls back when the Host-Id host dies mid-upload; the original host does not know the session → new session', async () => {
    // Node 2 (the Host-Id host) and node 1 (the URL) know their own sessions only: the first session
    // created on node 1 moves to node 2 when node 2 first hears of it (Host-Id affinity, no shared store).
    let node1Sessions: Map<string, unknown> | undefined;
    let moved = false;
    const node2 = await startFakeBitsServer({
      override: (req, state) => {
        const id = req.headers['bits-session-id'];
        const s = id ? node1Sessions?.get(id) : undefined;
        if (!moved && id && s) {
          moved = true;
          state.sessions.set(id, s as never);
          node1Sessions!.delete(id);
        }
        return undefined;
      },
    });
    const node1 = await startFakeBitsServer({ hostId: `127.0.0.1:${node2.port}`, hostIdFallbackTimeout: 1 });
    node1Sessions = node1.state.sessions;
    try {
      const file = join(dir, 'd.bin');
      await randomFile(file, 6 * FRAG);
      const job = upload({ file, url: `http://127.0.0.1:${node1.port}/up/d.bin`, fragmentSize: FRAG, stateDir: false, retryDelayMs: 50 });
      const sessions: string[] = [];
      job.on('session', (s) => sessions.push(s.sessionId));
      job.on('progress', (p) => {
        if (p.bytesDone >= 2 * FRAG && node2.requests.length > 0) void node2.close();
      });
      let fallbacks = 0;
      job.on('fallback', () => fallbacks++);
      await job.result;
      assert.equal(fallbacks, 1);
      assert.equal(sessions.length, 2, 'node 1 did not know the session: a new one');
      const committed = node1.state.committed.get('/up/d.bin');
      assert.equal(committed?.length, 6 * FRAG);
    } finally {
      await node1.close();
      await node2.close().catch(() => undefined);
    }
  });

  it('without BITS-Host-Id-Fallback-Timeout the client never falls back (no-progress timeout ends it)', async () => {
    const server = await startFakeBitsServer({ hostId: `127.0.0.1:${await deadPort()}` });
    try {
      const file = join(dir, 'e.bin');
      await randomFile(file, FRAG);
      const job = upload({ file, url: `http://127.0.0.1:${server.port}/up/e.bin`, stateDir: false, retryDelayMs: 20, noProgressTimeoutMs: 500 });
      let fallbacks = 0;
      job.on('fallback', () => fallbacks++);
      await assert.rejects(job.result, (err: BitsClientError) => err.code === 'BITS_CLIENT_NO_PROGRESS' && err.kind === 'interrupted');
      assert.equal(fallbacks, 0);
    } finally {
      await server.close();
    }
  });
});
