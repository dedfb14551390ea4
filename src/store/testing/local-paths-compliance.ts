import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { newSessionId } from '../../protocol/session-id.js';
import type { ByteStore } from '../types.js';
import { perCase, source } from './harness.js';
import type { MakeStore } from './harness.js';

/**
 * Registers the optional local-paths capability of a {@link ByteStore} (by-reference
 * notification hands the application file paths) as `node:test` cases: `localPath` is a file
 * with exactly the written bytes, gone after discard, and no client string becomes a path.
 * A store without local files skips this suite.
 *
 * @example
 * ```ts
 * localPathsCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'bytes-'));
 *   return { store: new FsByteStore(dir), reopen: async () => new FsByteStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsByteStore');
 * ```
 */
export function localPathsCompliance(make: MakeStore<ByteStore>, name = 'byte store'): void {
  describe(`ByteStore local paths compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('localPath is a file holding exactly the written bytes', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.write(id, 0, source('by ', 'reference'));
      const path = store.localPath(id);
      assert.ok(path !== undefined);
      assert.equal(await readFile(path, 'utf8'), 'by reference');
    });

    it('localPath and replyPath are stable across ids spelt differently and across instances', async () => {
      const { h, store } = ctx();
      const id = newSessionId();
      await store.open(id);
      assert.equal(store.localPath(id.toLowerCase()), store.localPath(id));
      assert.equal(store.replyPath(id.slice(1, -1)), store.replyPath(id));
      const again = await h.reopen();
      assert.equal(again.localPath(id), store.localPath(id));
      assert.equal(again.replyPath(id), store.replyPath(id));
    });

    it('after discard nothing is left at localPath', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.write(id, 0, source('gone'));
      await store.discard(id);
      await assert.rejects(stat(store.localPath(id)!), { code: 'ENOENT' });
    });

    it('ids that are not session ids have no path', async () => {
      const { store } = ctx();
      for (const bad of ['../../etc/passwd', '12345', '', '{not-a-guid}']) {
        assert.equal(store.localPath(bad), undefined, bad);
        assert.equal(store.replyPath(bad), undefined, bad);
      }
    });
  });
}
