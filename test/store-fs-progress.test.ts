// Progress marks: a fragment's new length is durable with its bytes' one fdatasync, and after a
// crash the data file alone says how much of it is durable — also in the states a power loss can
// leave (the newest mark torn or cut off, the newest fragment's bytes not on disk).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { newSessionId } from '../src/protocol/session-id.js';
import { FsByteStore, FsDestinationStore } from '../src/store/index.js';
import { MARK_SIZE } from '../src/store/fs/progress-marks.js';
import type { StoredUpload } from '../src/store/types.js';
import { tempDir } from './helpers/temp-dir.js';
import type { TempDir } from './helpers/temp-dir.js';

const KiB = 1024;

/** A state directory with one upload of `data` written in `sizes`-long fragments, each made durable. */
async function uploaded(dir: TempDir, data: Buffer, sizes: readonly number[]): Promise<{ upload: StoredUpload; ends: number[]; file: string }> {
  const state = join(dir.path, 'state');
  await mkdir(state, { recursive: true });
  const store = new FsByteStore(state);
  const id = newSessionId();
  const upload: StoredUpload = { id, destination: 'x', bytes: undefined };
  await store.open(id);
  const ends: number[] = [];
  let offset = 0;
  for (const size of sizes) {
    const chunk = data.subarray(offset, offset + size);
    const done = await store.write(upload, offset, Readable.from([chunk]), { total: data.length, length: size });
    assert.equal(done.written, size);
    assert.equal(done.tracked, true, 'a fragment short of the total is tracked by a mark');
    offset += size;
    ends.push(offset);
  }
  await store.close();
  const sessions = join(state, 'sessions');
  const [folder] = await readdir(sessions);
  return { upload, ends, file: join(sessions, folder!, 'data.bin') };
}

/** What a fresh process recovers from the state directory, the record vouching for `floor` bytes. */
async function recovered(dir: TempDir, upload: StoredUpload, floor: number, total: number): Promise<number> {
  const store = new FsByteStore(join(dir.path, 'state'));
  try {
    return (await store.progress.recover(upload, { received: floor, total })).received;
  } finally {
    await store.close();
  }
}

/** Overwrites `length` bytes at `position` of `file` with `bytes` (zeros by default). */
async function overwrite(file: string, position: number, length: number, bytes = Buffer.alloc(length)): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(bytes, 0, length, position);
  } finally {
    await fh.close();
  }
}

/** Positions of the marks in `file` after `after` (they start with their magic). */
async function markPositions(file: string, after: number): Promise<number[]> {
  const content = await readFile(file);
  const found: number[] = [];
  for (let i = content.indexOf('BITSMRK1', after, 'latin1'); i >= 0; i = content.indexOf('BITSMRK1', i + 1, 'latin1')) found.push(i);
  return found;
}

describe('progress marks (filesystem byte store)', () => {
  const dirs: TempDir[] = [];
  after(async () => {
    for (const d of dirs) await d.cleanup();
  });
  const fresh = async (): Promise<TempDir> => {
    const d = await tempDir('bits-marks-');
    dirs.push(d);
    return d;
  };
  const data = randomBytes(600 * KiB);
  const sizes = [64 * KiB, 100 * KiB, 7 * KiB, 64 * KiB, 64 * KiB, 33 * KiB];

  it('the data file alone tells the durable length; the record need say no more than where it started', async () => {
    const dir = await fresh();
    const { upload, ends } = await uploaded(dir, data, sizes);
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-1));
    assert.equal(await recovered(dir, upload, ends[2]!, data.length), ends.at(-1));
  });

  it('a torn newest mark, a newest mark that never reached the disk, or junk past it: the mark before counts', async () => {
    const dir = await fresh();
    const { upload, ends, file } = await uploaded(dir, data, sizes);
    const positions = await markPositions(file, ends.at(-1)!);
    assert.ok(positions.length >= 2, `marks past the data: ${positions.join(', ')}`);
    const newest = positions.at(-1)!;
    const copy = `${file}.orig`;
    await copyFile(file, copy);

    // Torn: one byte of the newest mark differs.
    await overwrite(file, newest + 20, 1, Buffer.from([0xff ^ (await readFile(file))[newest + 20]!]));
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-2));

    // Cut off: the file ends before the newest mark.
    await copyFile(copy, file);
    await truncate(file, newest);
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-2));

    // Junk after the newest mark (a later write that never completed) changes nothing.
    await copyFile(copy, file);
    await overwrite(file, newest + MARK_SIZE, 4096, randomBytes(4096));
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-1));
  });

  it('a mark whose fragment bytes are not on disk (a power loss before the sync) fails its CRC: the previous length counts', async () => {
    const dir = await fresh();
    const { upload, ends, file } = await uploaded(dir, data, sizes);
    // The newest fragment's last 4 KiB read back as zeros, as unwritten blocks do.
    await overwrite(file, ends.at(-1)! - 4096, 4096);
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-2));
    // ... and the fragment before it too: back one more.
    await overwrite(file, ends.at(-2)! - 10, 10);
    assert.equal(await recovered(dir, upload, 0, data.length), ends.at(-3));
  });

  it('after recovery the upload goes on from the recovered length and commits exactly its bytes', async () => {
    const dir = await fresh();
    const { upload, ends, file } = await uploaded(dir, data, sizes);
    await overwrite(file, ends.at(-1)! - 1, 1, Buffer.from([data[ends.at(-1)! - 1]! ^ 1]));
    const store = new FsByteStore(join(dir.path, 'state'));
    const held = (await store.progress.recover(upload, { received: 0, total: data.length })).received;
    assert.equal(held, ends.at(-2));
    const rest = data.subarray(held);
    const done = await store.write(upload, held, Readable.from([rest]), { total: data.length, length: rest.length });
    assert.equal(done.written, rest.length);
    assert.equal(done.tracked, false, 'the write that completes the upload leaves no mark to rely on');
    await store.progress.seal(upload, data.length);
    assert.equal((await stat(file)).size, data.length, 'sealed: the marks past the data are gone');
    await mkdir(join(dir.path, 'uploads'));
    await store.commit(upload, { destinations: new FsDestinationStore(join(dir.path, 'uploads')), path: ['out.bin'] }, { overwrite: false });
    assert.deepEqual(await readFile(join(dir.path, 'uploads', 'out.bin')), data);
    await store.close();
  });

  it('a fragment of 4 MiB or more is synced before its mark, which then needs no CRC; a torn one still falls back', async () => {
    const dir = await fresh();
    const big = randomBytes(9 * 1024 * KiB);
    const { upload, ends, file } = await uploaded(dir, big, [64 * KiB, 4 * 1024 * KiB, 4 * 1024 * KiB]);
    // Bytes of the last fragment changed after the fact (which a synced mark rules out for a crash):
    // its mark vouches for them without reading them back, where a small fragment's mark would not.
    await overwrite(file, ends.at(-1)! - 10, 10);
    assert.equal(await recovered(dir, upload, 0, big.length), ends.at(-1));
    // The mark itself torn: the one before it counts, as for any mark.
    const newest = (await markPositions(file, ends.at(-1)!)).at(-1)!;
    await overwrite(file, newest + 20, 1, Buffer.from([0xff ^ (await readFile(file))[newest + 20]!]));
    assert.equal(await recovered(dir, upload, 0, big.length), ends.at(-2));
  });

  it('a completing write asked to be tracked leaves a mark with the total: a record that says nothing yet recovers all of it', async () => {
    const dir = await fresh();
    const state = join(dir.path, 'state');
    await mkdir(state, { recursive: true });
    const small = data.subarray(0, 4 * KiB);
    const id = newSessionId();
    const upload: StoredUpload = { id, destination: 'x', bytes: undefined };
    let store = new FsByteStore(state);
    await store.open(id);
    const done = await store.write(upload, 0, Readable.from([small]), { total: small.length, length: small.length, trackCompletion: true });
    assert.deepEqual(done, { written: small.length, tracked: true });
    await store.close();
    // A fresh process, the record as Create-Session wrote it (nothing received, no total yet).
    store = new FsByteStore(state);
    const found = await store.progress.recover(upload, { received: 0, total: null });
    assert.equal(found.received, small.length);
    assert.equal(found.total, small.length, 'the mark says the total the fragment gave');
    await store.progress.seal(upload, small.length);
    await mkdir(join(dir.path, 'uploads'));
    await store.commit(upload, { destinations: new FsDestinationStore(join(dir.path, 'uploads')), path: ['small.bin'] }, { overwrite: false });
    assert.deepEqual(await readFile(join(dir.path, 'uploads', 'small.bin')), small, 'exactly the bytes: the mark was cut away');
    await store.close();
  });

  it('marks of every fragment carry the total; without trackCompletion the completing write leaves none', async () => {
    const dir = await fresh();
    const { upload, ends } = await uploaded(dir, data, sizes.slice(0, 3));
    const store = new FsByteStore(join(dir.path, 'state'));
    try {
      const found = await store.progress.recover(upload, { received: 0, total: null });
      assert.deepEqual([found.received, found.total], [ends.at(-1), data.length]);
      const rest = data.subarray(found.received);
      const done = await store.write(upload, found.received, Readable.from([rest]), { total: data.length, length: rest.length });
      assert.equal(done.tracked, false);
    } finally {
      await store.close();
    }
  });

  it('a fragment larger than the room before the mark moves the mark first, and a crash still finds it', async () => {
    const dir = await fresh();
    // Small fragments, then one of 20 MiB: far more than the room left before the newest mark.
    const big = randomBytes(21 * 1024 * KiB);
    const { upload, ends, file } = await uploaded(dir, big, [4 * KiB, 4 * KiB, 20 * 1024 * KiB]);
    assert.equal(await recovered(dir, upload, 0, big.length), ends.at(-1));
    // Had the big fragment's own mark not reached the disk (it is written after its bytes are
    // synced), the moved mark of the one before counts.
    const newest = (await markPositions(file, ends.at(-1)!)).at(-1)!;
    await overwrite(file, newest, MARK_SIZE);
    assert.equal(await recovered(dir, upload, 0, big.length), ends.at(-2));
  });
});
