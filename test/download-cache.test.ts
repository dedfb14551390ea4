// Downloads keep the files they open for the next GET of the same path; whatever changes on disk in
// between (a file replaced, rewritten, grown, deleted; a folder swapped, moved out, a link repointed)
// must be seen by the very next GET, and the files kept open stay bounded.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readdir, readlink, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InlineIo } from '../src/store/fs/file-object.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import type { RawResponse } from './helpers/raw-http.js';

describe('downloads of files that change between GETs', () => {
  let t: TestServer;
  let outside: string;
  before(async () => {
    t = await startServer({ vdir: { downloadEnabled: true } });
    // (next to the vdir, on the same filesystem, so that folders can be renamed out of it)
    outside = await mkdtemp(join(t.root, 'outside-'));
  });
  after(async () => {
    await t.stop();
    await rm(outside, { recursive: true, force: true });
  });

  /** One GET on a fresh connection. */
  async function get(path: string, headers: string[] = []): Promise<RawResponse> {
    const c = await t.connect();
    try {
      await c.write([`GET /up/${path} HTTP/1.1`, 'Host: x', ...headers, '', ''].join('\r\n'));
      return await c.read();
    } finally {
      c.close();
    }
  }

  /** The descriptors this process holds open on files below `dir`. */
  async function openBelow(dir: string): Promise<string[]> {
    const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    return targets.filter((p) => p.startsWith(dir + '/'));
  }

  /** Looks again (at most `tries` times, 20 ms apart) until at most `n` descriptors are open below `dir`; the last count. */
  async function settlesAt(dir: string, n: number, tries = 100): Promise<number> {
    let open = await openBelow(dir);
    for (let i = 0; i < tries && open.length > n; i++) {
      await sleep(20);
      open = await openBelow(dir);
    }
    return open.length;
  }

  it('a file replaced by a rename is served in its new version at once', async () => {
    await writeFile(join(t.uploads, 'replaced.txt'), 'one');
    const first = await get('replaced.txt');
    assert.equal(first.body.toString(), 'one');
    assert.equal((await get('replaced.txt')).body.toString(), 'one');
    await writeFile(join(t.uploads, 'replaced.tmp'), 'two!');
    await rename(join(t.uploads, 'replaced.tmp'), join(t.uploads, 'replaced.txt'));
    const second = await get('replaced.txt');
    assert.equal(second.status, 200);
    assert.equal(second.body.toString(), 'two!');
    assert.notEqual(second.headers['etag'], first.headers['etag']);
  });

  it('a file rewritten in place is described by its new version (tag, time, length)', async () => {
    const file = join(t.uploads, 'rewritten.txt');
    await writeFile(file, 'aaaa');
    await utimes(file, 1_000_000, 1_000_000);
    const first = await get('rewritten.txt');
    assert.equal(first.body.toString(), 'aaaa');
    const fh = await open(file, 'r+');
    await fh.write('bbbb', 0);
    await fh.close();
    await utimes(file, 2_000_000, 2_000_000);
    const second = await get('rewritten.txt');
    assert.equal(second.body.toString(), 'bbbb');
    assert.notEqual(second.headers['etag'], first.headers['etag']);
    assert.equal(second.headers['last-modified'], new Date(2_000_000_000).toUTCString());
    await appendFile(file, 'cc');
    const third = await get('rewritten.txt');
    assert.equal(third.headers['content-length'], '6');
    assert.equal(third.body.toString(), 'bbbbcc');
  });

  it('an If-Range with the old tag after a replacement gets the whole new file', async () => {
    await writeFile(join(t.uploads, 'if-range.txt'), '0123456789');
    const first = await get('if-range.txt');
    await writeFile(join(t.uploads, 'if-range.tmp'), 'abcdefghij');
    await rename(join(t.uploads, 'if-range.tmp'), join(t.uploads, 'if-range.txt'));
    const res = await get('if-range.txt', ['Range: bytes=0-3', `If-Range: ${first.headers['etag']}`]);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'abcdefghij');
  });

  it('a file deleted, or replaced by a folder, is a 404 at once', async () => {
    await writeFile(join(t.uploads, 'deleted.txt'), 'here');
    assert.equal((await get('deleted.txt')).status, 200);
    await rm(join(t.uploads, 'deleted.txt'));
    assert.equal((await get('deleted.txt')).status, 404);
    await mkdir(join(t.uploads, 'deleted.txt'));
    assert.equal((await get('deleted.txt')).status, 404);
  });

  it('a folder swapped for a symlink to the outside serves nothing, and the folder again once it is back', async () => {
    await mkdir(join(t.uploads, 'swapped'));
    await writeFile(join(t.uploads, 'swapped', 'f.txt'), 'public');
    await writeFile(join(outside, 'f.txt'), 'SECRET');
    assert.equal((await get('swapped/f.txt')).body.toString(), 'public');
    await rename(join(t.uploads, 'swapped'), join(t.uploads, 'swapped-away'));
    await symlink(outside, join(t.uploads, 'swapped'));
    const res = await get('swapped/f.txt');
    assert.equal(res.status, 404);
    assert.ok(!res.body.toString().includes('SECRET'));
    await rm(join(t.uploads, 'swapped'));
    await rename(join(t.uploads, 'swapped-away'), join(t.uploads, 'swapped'));
    assert.equal((await get('swapped/f.txt')).body.toString(), 'public');
  });

  it('a folder moved out of the vdir is not served from the file kept open', async () => {
    await mkdir(join(t.uploads, 'moved'));
    await writeFile(join(t.uploads, 'moved', 'f.txt'), 'was inside');
    assert.equal((await get('moved/f.txt')).status, 200);
    await rename(join(t.uploads, 'moved'), join(outside, 'moved'));
    // …and a link put where it was leads to it, outside
    await symlink(join(outside, 'moved'), join(t.uploads, 'moved'));
    assert.equal((await get('moved/f.txt')).status, 404);
  });

  it('a folder replaced by another folder serves the new folder\'s file', async () => {
    await mkdir(join(t.uploads, 'release'));
    await writeFile(join(t.uploads, 'release', 'f.txt'), 'v1');
    assert.equal((await get('release/f.txt')).body.toString(), 'v1');
    await rename(join(t.uploads, 'release'), join(t.uploads, 'release-old'));
    await mkdir(join(t.uploads, 'release'));
    await writeFile(join(t.uploads, 'release', 'f.txt'), 'v2');
    assert.equal((await get('release/f.txt')).body.toString(), 'v2');
  });

  it('a path through a symlink inside the vdir follows the link as it is now', async () => {
    await mkdir(join(t.uploads, 'real-a'));
    await mkdir(join(t.uploads, 'real-b'));
    await writeFile(join(t.uploads, 'real-a', 'f.txt'), 'from a');
    await writeFile(join(t.uploads, 'real-b', 'f.txt'), 'from b');
    await symlink(join(t.uploads, 'real-a'), join(t.uploads, 'current'));
    assert.equal((await get('current/f.txt')).body.toString(), 'from a');
    assert.equal((await get('current/f.txt')).body.toString(), 'from a');
    await rm(join(t.uploads, 'current'));
    await symlink(join(t.uploads, 'real-b'), join(t.uploads, 'current'));
    assert.equal((await get('current/f.txt')).body.toString(), 'from b');
  });

  it('serves small ranges, the last byte, and a large file whole (several reads) exactly', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(join(t.uploads, 'large.bin'), bytes);
    for (const [start, end] of [
      [0, 4095],
      [1_000_001, 1_004_096],
      [bytes.length - 1, bytes.length - 1],
    ] as const) {
      const res = await get('large.bin', [`Range: bytes=${start}-${end}`]);
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${bytes.length}`);
      assert.ok(res.body.equals(bytes.subarray(start, end + 1)), `bytes ${start}-${end}`);
    }
    const whole = await get('large.bin');
    assert.equal(whole.body.length, bytes.length);
    assert.equal(createHash('sha256').update(whole.body).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
  });

  it('concurrent first GETs of a file all get it, and leave at most one descriptor open on it', async (ctx) => {
    if (!existsSync('/proc/self/fd')) {
      ctx.skip('needs /proc/self/fd to count open files');
      return;
    }
    await mkdir(join(t.uploads, 'crowd'));
    await writeFile(join(t.uploads, 'crowd', 'f.txt'), 'everyone');
    const answers = await Promise.all(Array.from({ length: 20 }, () => get('crowd/f.txt')));
    assert.deepEqual(new Set(answers.map((r) => `${r.status} ${r.body.toString()}`)), new Set(['200 everyone']));
    assert.ok((await settlesAt(join(t.uploads, 'crowd'), 1)) <= 1);
  });

  it('keeps a bounded number of files open however many are downloaded', async (ctx) => {
    if (!existsSync('/proc/self/fd')) {
      ctx.skip('needs /proc/self/fd to count open files');
      return;
    }
    const dir = join(t.uploads, 'many');
    await mkdir(dir);
    for (let i = 0; i < 100; i++) await writeFile(join(dir, `f${i}.txt`), `file ${i}`);
    for (let i = 0; i < 100; i++) assert.equal((await get(`many/f${i}.txt`)).body.toString(), `file ${i}`);
    const kept = await settlesAt(dir, 64);
    assert.ok(kept <= 64, `${kept} files kept open`);
  });

  it('closes a kept file that is deleted and never asked for again (its space comes back)', async (ctx) => {
    if (!existsSync('/proc/self/fd')) {
      ctx.skip('needs /proc/self/fd to count open files');
      return;
    }
    const dir = join(t.uploads, 'forgotten');
    await mkdir(dir);
    await writeFile(join(dir, 'f.txt'), 'soon gone');
    assert.equal((await get('forgotten/f.txt')).status, 200);
    await rm(join(dir, 'f.txt'));
    assert.equal(await settlesAt(dir, 0, 500), 0);
  });
});

describe('inline file operations', () => {
  const slow = (): void => {
    const until = performance.now() + 20;
    while (performance.now() < until);
  };

  it('pass their result and their failure on, and stop for a while after two slow ones in a row', () => {
    const inline = new InlineIo();
    assert.equal(inline.enabled, true);
    assert.equal(inline.run(() => 42), 42);
    const failing = (): never => {
      throw new Error('EIO');
    };
    assert.throws(() => inline.run(failing), /EIO/);
    const slowed = new InlineIo();
    slowed.run(slow);
    assert.equal(slowed.enabled, true, 'one slow operation alone does not stop them');
    slowed.run(slow);
    // (off for at least a second from now: this line comes well within it)
    assert.equal(slowed.enabled, false);
  });
});
