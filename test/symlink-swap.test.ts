// D23 under attack: a local user who can write in the served tree swaps a folder for a symlink to
// the outside in a loop (renameat2 RENAME_EXCHANGE) while sessions close. Nothing may land outside.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { CLI } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';

/** Swaps two paths atomically, over and over, until `stop` exists (at most 120 s). */
const SWAPPER = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = (p.encode() for p in sys.argv[1:4])
deadline = time.time() + 120
n = 0
while not os.path.exists(stop) and time.time() < deadline:
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        sys.exit("renameat2: errno %d" % ctypes.get_errno())
    n += 1
print(n)
`;

const python = spawnSync('python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2'], { encoding: 'utf8' });

describe('symlink swap at Close-Session (D23)', () => {
  let t: TestServer;
  let outside: string;
  before(async () => {
    t = await startServer();
    outside = await mkdtemp(join(tmpdir(), 'bits-outside-'));
    await mkdir(join(t.uploads, 'sub'));
    await symlink(outside, join(t.uploads, 'evil'));
  });
  after(async () => {
    await t.stop();
    await rm(outside, { recursive: true, force: true });
  });

  it('uploads closed while a folder and a symlink to the outside trade places never land outside', async (ctx) => {
    if (python.status !== 0) {
      ctx.skip(`SKIPPED LOUDLY: needs python3 with ctypes and renameat2 (${python.stderr.trim() || 'not found'})`);
      return;
    }
    const stop = join(t.root, 'stop');
    const swapper = spawn('python3', ['-c', SWAPPER, join(t.uploads, 'sub'), join(t.uploads, 'evil'), stop], { stdio: ['ignore', 'pipe', 'pipe'] });
    let swaps = '';
    swapper.stdout.on('data', (d: Buffer) => (swaps += d.toString()));
    const exited = new Promise<number | null>((r) => swapper.once('exit', r));
    let committed = 0;
    let refused = 0;
    try {
      const c = await RawConnection.connect(t.port);
      for (let i = 0; i < 300; i++) {
        const path = `/up/sub/f${i}.bin`;
        const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
        if (created.status !== 200) {
          refused++;
          continue;
        }
        const id = created.headers['bits-session-id']!;
        const sent = await exchange(c, bitsRequestBytes(fragmentRequest(path, id, 0, Buffer.from(`upload ${i}`), `upload ${i}`.length)));
        assert.equal(sent.status, 200);
        const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id }));
        if (closed.status === 200) committed++;
        else {
          assert.equal(closed.status, 400, `Close answered ${closed.status} ${closed.headers['bits-error-code']}`);
          refused++;
        }
      }
      c.close();
    } finally {
      await writeFile(stop, '');
    }
    assert.equal(await exited, 0, 'the swapper ran until told to stop');
    assert.ok(Number(swaps) > 100, `the tree was really swapped (${swaps.trim()} swaps)`);
    assert.deepEqual(await readdir(outside), [], 'nothing landed outside the vdir');
    // Every committed upload is inside, in the real folder (under whichever name it has now).
    const inside = [...(await readdir(join(t.uploads, 'sub')).catch(() => [])), ...(await readdir(join(t.uploads, 'evil')).catch(() => []))];
    assert.equal(inside.filter((n) => n.endsWith('.bin')).length, committed);
    assert.ok(committed > 0, `some uploads were committed (${committed} committed, ${refused} refused)`);
  });
});

describe('symlink swap during downloads (D23)', () => {
  it('a GET while a folder and a symlink to the outside trade places never serves an outside file', async (ctx) => {
    if (python.status !== 0) {
      ctx.skip(`SKIPPED LOUDLY: needs python3 with ctypes and renameat2 (${python.stderr.trim() || 'not found'})`);
      return;
    }
    const t = await startServer({ vdir: { downloadEnabled: true } });
    const outside = await mkdtemp(join(tmpdir(), 'bits-outside-'));
    try {
      await mkdir(join(t.uploads, 'sub'));
      await writeFile(join(t.uploads, 'sub', 'file.txt'), 'public');
      await writeFile(join(outside, 'file.txt'), 'SECRET');
      await symlink(outside, join(t.uploads, 'evil'));
      const stop = join(t.root, 'stop');
      const swapper = spawn('python3', ['-c', SWAPPER, join(t.uploads, 'sub'), join(t.uploads, 'evil'), stop], { stdio: 'ignore' });
      const exited = new Promise<number | null>((r) => swapper.once('exit', r));
      const bodies = new Map<string, number>();
      try {
        const c = await RawConnection.connect(t.port);
        for (let i = 0; i < 300; i++) {
          await c.write(Buffer.from('GET /up/sub/file.txt HTTP/1.1\r\nHost: x\r\n\r\n'));
          const res = await c.read();
          const key = `${res.status} ${res.body.toString()}`;
          bodies.set(key, (bodies.get(key) ?? 0) + 1);
        }
        c.close();
      } finally {
        await writeFile(stop, '');
      }
      assert.equal(await exited, 0);
      assert.ok(![...bodies.keys()].some((k) => k.includes('SECRET')), `answers: ${JSON.stringify([...bodies])}`);
      assert.ok((bodies.get('200 public') ?? 0) > 0, `answers: ${JSON.stringify([...bodies])}`);
    } finally {
      await t.stop();
      await rm(outside, { recursive: true, force: true });
    }
  });
});

describe('served folders other users can change', () => {
  it('bits serve warns at start-up about a vdir folder writable by others', async () => {
    const base = await mkdtemp(join(tmpdir(), 'bits-perm-'));
    try {
      const open = join(base, 'shared');
      await mkdir(join(open, 'inbox'), { recursive: true });
      await chmod(join(open, 'inbox'), 0o777);
      // (the warnings come before the "listening" line, so read the log from the first byte)
      const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--root', open, '--state-dir', join(base, 'state')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      for (let i = 0; i < 100 && !text.includes('"listening"'); i++) await sleep(100);
      child.kill('SIGKILL');
      const warning = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => String(l['problem']).includes('writable by every user'));
      assert.ok(warning, `a warning names the problem; log was: ${text}`);
      assert.equal(warning['level'], 40);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
