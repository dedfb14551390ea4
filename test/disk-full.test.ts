// D9: disk full → 500 + 0x80070070; acknowledged bytes survive; the upload continues when space returns.
// Needs a small filesystem: mounts a tmpfs (root only); skipped where mounting is not allowed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
