import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId } from '../../protocol/session-id.js';
import { PartialWriteError, UploadMissingError } from '../types.js';
import type { ByteStore } from '../types.js';
import { perCase, readAll, source } from './harness.js';
import type { MakeStore } from './harness.js';

/**
 * Registers the {@link ByteStore} contract for upload data as `node:test` cases: open, write at
 * offsets with the durable count, failures that report what was kept, read back, atomic commit
 * under the overwrite policy, discard, and that a fresh instance sees every acknowledged byte.
 * Replies and local paths have their own suites.
 *
 * @example
 * ```ts
 * byteStoreCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'bytes-'));
 *   return { store: new FsByteStore(dir), reopen: async () => new FsByteStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsByteStore');
 * ```
 */
export function byteStoreCompliance(make: MakeStore<ByteStore>, name = 'byte store'): void {
  describe(`ByteStore compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('write at offsets, report counts, commit atomically to a new folder', async () => {
      const { store, dest } = ctx();
      const id = newSessionId();
      await store.open(id);
      assert.equal(await store.exists(id), true);
      assert.equal(await store.write(id, 0, source('hello ')), 6);
      assert.equal(await store.write(id, 6, source('wor', 'ld')), 5);
      const target = join(dest, 'sub', 'dir', 'out.txt');
      await store.commit(id, { root: dest, path: ['sub', 'dir', 'out.txt'] }, { overwrite: false });
      assert.equal(await readFile(target, 'utf8'), 'hello world');
      assert.equal(await store.exists(id), false);
    });

    it('an empty source writes nothing and reports 0', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      assert.equal(await store.write(id, 0, source()), 0);
      assert.deepEqual(await readAll(store.openRead(id)), Buffer.alloc(0));
    });

    it('a large write of many chunks arrives whole and in order; openRead gives it back', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      const chunks = Array.from({ length: 80 }, (_, i) => Buffer.alloc(40_000, i));
      const sent = Buffer.concat(chunks);
      assert.equal(await store.write(id, 0, source(...chunks)), sent.length);
      const back = await readAll(store.openRead(id));
      assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(sent).digest('hex'));
    });

    it('commit without overwrite never replaces an existing file; with overwrite it does', async () => {
      const { store, dest } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.write(id, 0, source('new'));
      const target = join(dest, 'x.txt');
      await writeFile(target, 'old');
      await assert.rejects(store.commit(id, { root: dest, path: ['x.txt'] }, { overwrite: false }), { code: 'EEXIST' });
      assert.equal(await readFile(target, 'utf8'), 'old');
      assert.equal(await store.exists(id), true, 'upload kept after a refused commit');
      await store.commit(id, { root: dest, path: ['x.txt'] }, { overwrite: true });
      assert.equal(await readFile(target, 'utf8'), 'new');
    });

    it('a source that fails part way reports the bytes made durable', async () => {
      const { store, dest } = ctx();
      const id = newSessionId();
      await store.open(id);
      const input = new PassThrough();
      const writing = store.write(id, 0, input);
      input.write(Buffer.alloc(1000, 1));
      await sleep(20);
      input.destroy(new Error('client went away'));
      const err = await writing.then(
        () => assert.fail('write should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PartialWriteError);
      assert.equal(err.written, 1000);
      assert.equal(err.origin, 'source');
      // the reported bytes are really there
      await store.write(id, 1000, source('!'));
      const target = join(dest, 'partial.bin');
      await store.commit(id, { root: dest, path: ['partial.bin'] }, { overwrite: false });
      const out = await readFile(target);
      assert.equal(out.length, 1001);
      assert.equal(out[999], 1);
    });

    it('an aborted signal stops the write', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      const input = new PassThrough();
      const ac = new AbortController();
      const writing = store.write(id, 0, input, ac.signal);
      input.write(Buffer.alloc(10));
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(writing, PartialWriteError);
    });

    it('writing to an upload that is gone is UploadMissingError', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.discard(id);
      await assert.rejects(store.write(id, 0, source('late')), UploadMissingError);
    });

    it('discard removes the data and is idempotent', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.discard(id);
      assert.equal(await store.exists(id), false);
      await store.discard(id);
    });

    it('durability: a fresh instance over the same storage sees every acknowledged byte', async () => {
      const { h, store, dest } = ctx();
      const id = newSessionId();
      const other = newSessionId();
      await store.open(id);
      await store.write(id, 0, source('dur'));
      await store.write(id, 3, source('able'));
      await store.open(other);
      await store.discard(other);
      const again = await h.reopen();
      assert.equal(await again.exists(id), true);
      assert.equal(await again.exists(other), false, 'a discarded upload stays discarded');
      assert.equal((await readAll(again.openRead(id))).toString(), 'durable');
      const target = join(dest, 'reopened.bin');
      await again.commit(id, { root: dest, path: ['reopened.bin'] }, { overwrite: false });
      assert.equal(await readFile(target, 'utf8'), 'durable');
    });
  });
}
