import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ByteStore, RemoteObjects } from '../types.js';
import { contentOf, perCase, readAll, TestUpload } from './harness.js';
import type { MakeByteStore } from './harness.js';

function remoteOf(store: ByteStore): RemoteObjects {
  assert.ok(store.remote, 'the store has the remote capability');
  return store.remote;
}

/**
 * Registers the `remote` capability of a {@link ByteStore} ({@link RemoteObjects}: by-reference
 * notification from an object store) as `node:test` cases: `request` names the sealed read-back
 * upload and presigns a GET of exactly its bytes, `response` presigns a PUT that `adoptReply`
 * makes the reply (an empty one when nothing was put), and `removeReply` removes what was put.
 * The presigned URLs are fetched as an application would.
 *
 * @example
 * ```ts
 * remoteObjectsCompliance(makeBytes, 'S3ByteStore');
 * ```
 */
export function remoteObjectsCompliance(make: MakeByteStore, name = 'byte store'): void {
  describe(`ByteStore remote objects compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('request: an s3:// name and a presigned GET of the upload, before and after another instance reads it', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const whole = Buffer.concat([Buffer.alloc(50_000, 3), Buffer.from('tail')]);
      await up.write(whole, { total: whole.length });
      const { name: objectName, url } = await remoteOf(store).request(up.upload, 60);
      assert.match(objectName, /^s3:\/\/[^/]+\/.+/);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), whole);
      const again = await h.reopen();
      assert.deepEqual(await readAll(again.openRead(up.upload)), whole);
    });

    it('request of an upload without bytes presigns an empty object', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['empty.bin'], { readBack: true });
      const { url } = await remoteOf(store).request(up.upload, 60);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
    });

    it('response: what the application PUTs becomes the reply once adopted', async () => {
      const { h, store } = ctx();
      const remote = remoteOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const { name: objectName, url } = await remote.response(up.upload, 60);
      assert.match(objectName, /^s3:\/\/[^/]+\/.+/);
      const put = await fetch(url, { method: 'PUT', body: '<reply id="7"/>' });
      assert.equal(put.status, 200);
      assert.equal(await remote.adoptReply(up.upload), 15);
      assert.equal((await contentOf(await store.openReply(up.upload)))?.toString(), '<reply id="7"/>');
      await remote.removeReply(up.upload);
      assert.equal((await contentOf(await store.openReply(up.upload)))?.toString(), '<reply id="7"/>', 'the adopted reply stays');
    });

    it('adoptReply when nothing was put is an empty reply; removeReply is idempotent', async () => {
      const { h, store } = ctx();
      const remote = remoteOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      await remote.removeReply(up.upload);
      assert.equal(await remote.adoptReply(up.upload), 0);
      assert.equal((await store.openReply(up.upload))?.size, 0);
    });

    it('removeReply removes what was put and not adopted', async () => {
      const { h, store } = ctx();
      const remote = remoteOf(store);
      const up = await TestUpload.open(store, h.destinations, ['a.bin'], { readBack: true });
      const { url } = await remote.response(up.upload, 60);
      assert.equal((await fetch(url, { method: 'PUT', body: 'stale' })).status, 200);
      await remote.removeReply(up.upload);
      assert.equal(await remote.adoptReply(up.upload), 0, 'nothing left to adopt');
    });
  });
}
