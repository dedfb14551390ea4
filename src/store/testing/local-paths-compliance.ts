import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { ByteStore, LocalFiles } from '../types.js';
import { contentOf, perCase, TestUpload } from './harness.js';
import type { MakeByteStore } from './harness.js';

function localOf(store: ByteStore): LocalFiles {
  assert.ok(store.local, 'the store has the local capability');
  return store.local;
}

/**
 * Registers the `local` capability of a {@link ByteStore} ({@link LocalFiles}: by-reference
 * notification hands the application file paths) as `node:test` cases: `dataPath` is a file with
 * exactly the written bytes, `replyPath` is where the application writes its reply and
 * `adoptReply` makes that the reply (an empty one when it wrote none), paths are stable across id
 * spellings and instances, nothing is left after discard, and no client string becomes a path.
 * Stores without local files do not run this suite.
 *
 * @example
 * ```ts
 * localPathsCompliance(makeBytes, 'FsByteStore');
 * ```
 */
export function localPathsCompliance(make: MakeByteStore, name = 'byte store'): void {
  describe(`ByteStore local files compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('dataPath is a file holding exactly the written bytes', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await up.write(['by ', 'reference'], { total: 12 });
      const path = localOf(store).dataPath(up.upload);
      assert.ok(path !== undefined);
      assert.equal(await readFile(path, 'utf8'), 'by reference');
    });

    it('adoptReply makes what the application wrote at replyPath the reply; nothing written is an empty reply', async () => {
      const { h, store } = ctx();
      const local = localOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const path = local.replyPath(up.upload);
      assert.ok(path !== undefined);
      await writeFile(path, '<reply/>');
      assert.equal(await local.adoptReply(up.upload), 8);
      assert.equal((await contentOf(await store.openReply(up.upload)))?.toString(), '<reply/>');
      const silent = await TestUpload.open(store, h.destinations, ['b.bin'], { readBack: true });
      assert.equal(await local.adoptReply(silent.upload), 0);
      assert.equal((await store.openReply(silent.upload))?.size, 0);
    });

    it('removeReply removes what is at replyPath, and is idempotent', async () => {
      const { h, store } = ctx();
      const local = localOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const path = local.replyPath(up.upload)!;
      await writeFile(path, 'left behind');
      await local.removeReply(up.upload);
      await assert.rejects(stat(path), { code: 'ENOENT' });
      await local.removeReply(up.upload);
    });

    it('dataPath and replyPath are stable across ids spelt differently and across instances', async () => {
      const { h, store } = ctx();
      const local = localOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const lower = { ...up.upload, id: up.id.toLowerCase() };
      const bare = { ...up.upload, id: up.id.slice(1, -1) };
      assert.equal(local.dataPath(lower), local.dataPath(up.upload));
      assert.equal(local.replyPath(bare), local.replyPath(up.upload));
      const again = localOf(await h.reopen());
      assert.equal(again.dataPath(up.upload), local.dataPath(up.upload));
      assert.equal(again.replyPath(up.upload), local.replyPath(up.upload));
    });

    it('after discard nothing is left at dataPath', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await up.write('gone', { total: 4 });
      const path = localOf(store).dataPath(up.upload)!;
      await up.discard();
      await assert.rejects(stat(path), { code: 'ENOENT' });
    });

    it('ids that are not session ids have no path', async () => {
      const { store } = ctx();
      const local = localOf(store);
      for (const bad of ['../../etc/passwd', '12345', '', '{not-a-guid}']) {
        const upload = { id: bad, destination: '/nowhere', bytes: undefined };
        assert.equal(local.dataPath(upload), undefined, bad);
        assert.equal(local.replyPath(upload), undefined, bad);
      }
    });
  });
}
