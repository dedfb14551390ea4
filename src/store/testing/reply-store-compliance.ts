import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId } from '../../protocol/session-id.js';
import type { ByteStore } from '../types.js';
import { perCase, source } from './harness.js';
import type { MakeStore } from './harness.js';

/** The reply's bytes at the store's reply path, or `undefined` when there is no reply file. */
async function replyAt(store: ByteStore, id: string): Promise<Buffer | undefined> {
  const path = store.replyPath(id);
  assert.ok(path !== undefined, 'a store with replies names where each reply is');
  return readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * Registers the reply capability of a {@link ByteStore} (upload-reply sessions) as `node:test`
 * cases: `writeReply` stores a stream durably and reports its size, a failed reply leaves nothing
 * behind, `replyPath` names where it is, `discard` removes it, and a fresh instance still has it.
 *
 * @example
 * ```ts
 * replyStoreCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'bytes-'));
 *   return { store: new FsByteStore(dir), reopen: async () => new FsByteStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsByteStore');
 * ```
 */
export function replyStoreCompliance(make: MakeStore<ByteStore>, name = 'byte store'): void {
  describe(`ByteStore reply compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('writeReply stores the whole stream and returns its size; a second reply replaces it', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      assert.equal(await replyAt(store, id), undefined, 'no reply before one is written');
      assert.equal(await store.writeReply(id, source('<ok ', 'id="1"/>')), 12);
      assert.equal((await replyAt(store, id))?.toString(), '<ok id="1"/>');
      assert.equal(await store.writeReply(id, source('2')), 1);
      assert.equal((await replyAt(store, id))?.toString(), '2');
    });

    it('an empty reply is a reply of 0 bytes', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      assert.equal(await store.writeReply(id, source()), 0);
      assert.equal((await replyAt(store, id))?.length, 0);
    });

    it('a reply whose source fails leaves nothing behind', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      const input = new PassThrough();
      const writing = store.writeReply(id, input);
      input.write('half a rep');
      await sleep(20);
      input.destroy(new Error('application went away'));
      await assert.rejects(writing, /application went away/);
      assert.equal(await replyAt(store, id), undefined);
    });

    it('discard removes the reply with the data', async () => {
      const { store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.writeReply(id, source('reply'));
      await store.discard(id);
      assert.equal(await replyAt(store, id), undefined);
    });

    it('durability: a fresh instance over the same storage has the reply', async () => {
      const { h, store } = ctx();
      const id = newSessionId();
      await store.open(id);
      await store.writeReply(id, source('kept'));
      const again = await h.reopen();
      assert.equal((await replyAt(again, id))?.toString(), 'kept');
    });
  });
}
