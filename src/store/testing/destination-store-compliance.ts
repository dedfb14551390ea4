import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BitsError } from '../../protocol/errors.js';
import { perCase, readAll } from './harness.js';
import type { MakeDestinationStore } from './harness.js';

/**
 * Registers the {@link DestinationStore} contract as `node:test` cases: `resolve` names where a
 * path lands (one name per path) and refuses the vdir itself, `exists` and `open` see what is
 * there, reads serve ranges, a replaced object has a new ETag and an open of the old version never
 * mixes versions, and a fresh instance sees the same objects.
 *
 * @example
 * ```ts
 * destinationStoreCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'dest-'));
 *   const open = () => new FsDestinationStore(dir);
 *   return { store: open(), reopen: async () => open(), put: (p, b) => writeFile(join(dir, ...p), b), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsDestinationStore');
 * ```
 */
export function destinationStoreCompliance(make: MakeDestinationStore, name = 'destination store'): void {
  describe(`DestinationStore compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('resolve names each path, the same one every time', async () => {
      const { store } = ctx();
      const a = await store.resolve(['dir', 'a.bin']);
      assert.equal(await store.resolve(['dir', 'a.bin']), a);
      assert.notEqual(await store.resolve(['dir', 'b.bin']), a);
      assert.notEqual(await store.resolve(['a.bin']), a);
      assert.ok(a.endsWith('a.bin'), a);
      assert.equal(typeof store.name, 'string');
    });

    it('resolve refuses the empty path (the vdir itself) with BITS_DESTINATION_IS_DIRECTORY', async () => {
      const { store } = ctx();
      await assert.rejects(store.resolve([]), (err: unknown) => err instanceof BitsError && err.code === 'BITS_DESTINATION_IS_DIRECTORY');
    });

    it('exists and open see what is there; open of nothing is undefined', async () => {
      const { h, store } = ctx();
      assert.equal(await store.exists(['d', 'x.bin']), false);
      assert.equal(await store.open(['d', 'x.bin']), undefined);
      await h.put(['d', 'x.bin'], Buffer.from('0123456789'));
      assert.equal(await store.exists(['d', 'x.bin']), true);
      const object = await store.open(['d', 'x.bin']);
      assert.ok(object);
      try {
        assert.equal(object.size, 10);
        assert.match(object.etag, /^"[^"]+"$/);
        assert.ok(object.modified instanceof Date && !Number.isNaN(object.modified.getTime()));
        assert.equal((await readAll(object.read(0, 9))).toString(), '0123456789');
        assert.equal((await readAll(object.read(3, 5))).toString(), '345');
        assert.equal((await readAll(object.read(9, 9))).toString(), '9');
        assert.equal((await readAll(object.read(4, 3))).length, 0);
      } finally {
        await object.close();
      }
    });

    it('an empty object opens with size 0', async () => {
      const { h, store } = ctx();
      await h.put(['empty.bin'], Buffer.alloc(0));
      const object = await store.open(['empty.bin']);
      assert.equal(object?.size, 0);
      assert.equal((await readAll(object!.read(0, -1))).length, 0);
      await object?.close();
    });

    it('a replaced object has another etag; a read of the old version never mixes the two', async () => {
      const { h, store } = ctx();
      await h.put(['v.bin'], Buffer.alloc(1000, 'a'));
      const old = await store.open(['v.bin']);
      assert.ok(old);
      await h.put(['v.bin'], Buffer.alloc(1000, 'b'));
      const current = await store.open(['v.bin']);
      assert.ok(current);
      assert.notEqual(current.etag, old.etag);
      assert.deepEqual(await readAll(current.read(0, 999)), Buffer.alloc(1000, 'b'));
      const oldRead = await readAll(old.read(0, 999)).then(
        (buf) => buf,
        () => undefined,
      );
      if (oldRead !== undefined) assert.deepEqual(oldRead, Buffer.alloc(1000, 'a'), 'the old version, whole, or an error');
      await old.close();
      await current.close();
    });

    it('durability: a fresh instance sees the same objects', async () => {
      const { h } = ctx();
      await h.put(['kept.bin'], Buffer.from('kept'));
      const again = await h.reopen();
      assert.equal(await again.exists(['kept.bin']), true);
      const object = await again.open(['kept.bin']);
      assert.equal((await readAll(object!.read(0, 3))).toString(), 'kept');
      await object?.close();
    });
  });
}
