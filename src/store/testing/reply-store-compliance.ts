import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { contentOf, perCase, readAll, source, TestUpload } from './harness.js';
import type { MakeByteStore } from './harness.js';

/**
 * Registers the reply side of a {@link ByteStore} (upload-reply sessions) as `node:test` cases:
 * `writeReply` stores a stream durably and reports its size, `openReply` serves it whole and in
 * ranges, a failed reply leaves nothing behind, `discard` removes it, and a fresh instance still
 * has it.
 *
 * @example
 * ```ts
 * replyStoreCompliance(makeBytes, 'S3ByteStore');
 * ```
 */
export function replyStoreCompliance(make: MakeByteStore, name = 'byte store'): void {
  describe(`ByteStore reply compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('writeReply stores the whole stream and returns its size; a second reply replaces it', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      assert.equal(await store.openReply(up.upload), undefined, 'no reply before one is written');
      assert.equal(await store.writeReply(up.upload, source('<ok ', 'id="1"/>')), 12);
      assert.equal((await contentOf(await store.openReply(up.upload)))?.toString(), '<ok id="1"/>');
      assert.equal(await store.writeReply(up.upload, source('2')), 1);
      assert.equal((await contentOf(await store.openReply(up.upload)))?.toString(), '2');
    });

    it('openReply serves ranges, with a size, a quoted etag and a date', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await store.writeReply(up.upload, source('0123456789'));
      const reply = await store.openReply(up.upload);
      assert.ok(reply);
      try {
        assert.equal(reply.size, 10);
        assert.match(reply.etag, /^"[^"]+"$/);
        assert.ok(reply.modified instanceof Date && !Number.isNaN(reply.modified.getTime()));
        assert.equal((await readAll(reply.read(2, 4))).toString(), '234');
        assert.equal((await readAll(reply.read(9, 9))).toString(), '9');
        assert.equal((await readAll(reply.read(5, 4))).length, 0);
      } finally {
        await reply.close();
      }
    });

    it('an empty reply is a reply of 0 bytes', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      assert.equal(await store.writeReply(up.upload, source()), 0);
      const reply = await store.openReply(up.upload);
      assert.equal(reply?.size, 0);
      assert.deepEqual(await contentOf(reply), Buffer.alloc(0));
    });

    it('a reply whose source fails leaves nothing behind', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const input = new PassThrough();
      const writing = store.writeReply(up.upload, input);
      input.write('half a rep');
      await sleep(20);
      input.destroy(new Error('application went away'));
      await assert.rejects(writing, /application went away/);
      assert.equal(await store.openReply(up.upload), undefined);
    });

    it('discard removes the reply with the data', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await up.write('data', { total: 4 });
      await store.writeReply(up.upload, source('reply'));
      await up.discard();
      assert.equal(await store.openReply(up.upload), undefined);
      assert.equal(await up.exists(), false);
    });

    it('durability: a fresh instance over the same storage has the reply', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await store.writeReply(up.upload, source('kept'));
      const again = await h.reopen();
      assert.equal((await contentOf(await again.openReply(up.upload)))?.toString(), 'kept');
    });
  });
}
