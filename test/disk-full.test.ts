// D9: disk full → 500 + 0x80070070; acknowledged bytes survive; the upload continues when space returns.
// Needs a small filesystem: mounts a tmpfs (root only); skipped where mounting is not allowed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

let mountPoint = '';
let mounted = false;

describe('disk full (D9)', () => {
  let t: TestServer | undefined;
  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'bits-tmpfs-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
    if (mounted) {
      t = await startServer({
        vdirs: [{ path: '/up', directory: join(mountPoint, 'uploads') }],
        config: { stateDir: join(mountPoint, 'state') },
      });
    }
  });
  after(async () => {
    await t?.stop();
    if (mounted) execFileSync('umount', ['-l', mountPoint]);
    await rmdir(mountPoint).catch(() => undefined);
  });

  it('answers 500 0x80070070 with the durable offset, then resumes when space is back', async (ctx) => {
    if (!t) {
      ctx.skip('cannot mount a tmpfs here (needs root)');
      return;
    }
    const data = randomBytes(2 * 1024 * 1024);
    const id = await t.createSession('/up/full.bin');
    const first = await t.request(fragmentRequest('/up/full.bin', id, 0, data.subarray(0, 1024 * 1024), data.length));
    assertAck(first);
    // Fill the rest of the filesystem.
    const filler = join(mountPoint, 'filler');
    await writeFile(filler, Buffer.alloc(4 * 1024 * 1024)).catch(() => undefined);
    const full = await t.request(fragmentRequest('/up/full.bin', id, 1024 * 1024, data.subarray(1024 * 1024), data.length));
    assertErr(full, 500, '0x80070070');
    const held = Number(full.headers['bits-received-content-range']);
    assert.ok(held >= 1024 * 1024, `acknowledged bytes kept (server reports ${held})`);
    // Space returns; the client resends from where the server stands.
    await rm(filler);
    const resumed = await t.request(fragmentRequest('/up/full.bin', id, held, data.subarray(held), data.length));
    assertAck(resumed);
    assert.equal(resumed.headers['bits-received-content-range'], String(data.length));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/full.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(mountPoint, 'uploads', 'full.bin')), data);
  });
});

describe('disk full: record write and inodes (D9)', () => {
  const mounts: string[] = [];
  after(async () => {
    for (const m of mounts) {
      execFileSync('umount', ['-l', m]);
      await rmdir(m).catch(() => undefined);
    }
  });
  /** A fresh tmpfs with `options`, or `undefined` where mounting is not allowed. */
  async function tmpfs(options: string): Promise<string | undefined> {
    const dir = await mkdtemp(join(tmpdir(), 'bits-tmpfs-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    } catch {
      await rmdir(dir);
      return undefined;
    }
    mounts.push(dir);
    return dir;
  }

  it('a fragment that fills the disk and then cannot record itself still answers with the durable offset', async (ctx) => {
    const m = await tmpfs('size=4m');
    if (!m) {
      ctx.skip('cannot mount a tmpfs here (needs root)');
      return;
    }
    const t = await startServer({ vdirs: [{ path: '/up', directory: join(m, 'uploads') }], config: { stateDir: join(m, 'state') } });
    try {
      const data = randomBytes(3 * 1024 * 1024);
      const id = await t.createSession('/up/r.bin');
      assertAck(await t.request(fragmentRequest('/up/r.bin', id, 0, data.subarray(0, 1024 * 1024), data.length)));
      // Leave room for part of the next fragment only: the record write after it finds no space.
      const { bavail, bsize } = await statfs(m);
      await writeFile(join(m, "filler"), Buffer.alloc(Math.max(0, bavail * bsize - 1280 * 1024)));
      const full = await t.request(fragmentRequest('/up/r.bin', id, 1024 * 1024, data.subarray(1024 * 1024), data.length));
      assertErr(full, 500, '0x80070070');
      assert.equal(full.headers['bits-received-content-range'], String(1024 * 1024), 'the offset the record durably holds');
      await rm(join(m, 'filler'));
      const resumed = await t.request(fragmentRequest('/up/r.bin', id, 1024 * 1024, data.subarray(1024 * 1024), data.length));
      assertAck(resumed);
      assertAck(await t.request({ type: 'Close-Session', path: '/up/r.bin', sessionId: id }));
      assert.deepEqual(await readFile(join(m, 'uploads', 'r.bin')), data);
    } finally {
      await t.stop();
    }
  });

  it('inode exhaustion is disk full (0x80070070), and sessions work again once inodes are free', async (ctx) => {
    const m = await tmpfs('size=8m,nr_inodes=64');
    if (!m) {
      ctx.skip('cannot mount a tmpfs here (needs root)');
      return;
    }
    const t = await startServer({ vdirs: [{ path: '/up', directory: join(m, 'uploads') }], config: { stateDir: join(m, 'state') } });
    try {
      await mkdir(join(m, 'fill'));
      let n = 0;
      for (; n < 100; n++) {
        const ok = await writeFile(join(m, 'fill', String(n)), '').then(() => true, () => false);
        if (!ok) break;
      }
      assert.ok(n < 100, 'the inodes ran out');
      const res = await t.request({ type: 'Create-Session', path: '/up/i.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } });
      assertErr(res, 500, '0x80070070');
      await rm(join(m, 'fill'), { recursive: true });
      const id = await t.createSession('/up/i.bin');
      assertAck(await t.request(fragmentRequest('/up/i.bin', id, 0, Buffer.from('ok'), 2)));
    } finally {
      await t.stop();
    }
  });
});
