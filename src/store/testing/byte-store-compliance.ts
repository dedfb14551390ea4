import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DestinationExistsError, PartialWriteError, UploadMissingError } from '../types.js';
import { contentOf, perCase, readAll, source, TestUpload } from './harness.js';
import type { MakeByteStore } from './harness.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Registers the {@link ByteStore} contract for upload data as `node:test` cases, driven as the
 * server drives a store (the memo of every write threaded into the record and the next call):
 * open, write at offsets with the durable count, failures that report what was kept (and its
 * memo), commit to a destination read back through `destinations.open`, the overwrite policy
 * (also under a race), repeated commits, read-back uploads, discard, and that a fresh instance
 * given the durable memo sees every acknowledged byte. Replies, local files and remote objects
 * have their own suites.
 *
 * @example
 * ```ts
 * byteStoreCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'bytes-'));
 *   const destinations = new FsDestinationStore(join(dir, 'dest'));
 *   return { store: new FsByteStore(dir), destinations, reopen: async () => new FsByteStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsByteStore');
 * ```
 */
export function byteStoreCompliance(make: MakeByteStore, name = 'byte store'): void {
  describe(`ByteStore compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('write at offsets, report counts, commit to a nested path, read it back from the destination', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['sub', 'dir', 'out.txt']);
      assert.equal(up.destination, await h.destinations.resolve(['sub', 'dir', 'out.txt']));
      assert.equal(await up.exists(), true);
      assert.equal(await h.destinations.exists(['sub', 'dir', 'out.txt']), false, 'nothing at the destination before commit');
      assert.equal(await up.write('hello '), 6);
      assert.equal(await up.write(['wor', 'ld']), 5);
      assert.equal(up.received, 11);
      assert.equal(await h.destinations.exists(['sub', 'dir', 'out.txt']), false, 'nothing at the destination before commit');
      await up.commit(false);
      assert.equal((await contentOf(await h.destinations.open(['sub', 'dir', 'out.txt'])))?.toString(), 'hello world');
      assert.equal(await up.exists(), false, 'the upload has left the session');
    });

    it('an empty source writes nothing and reports 0; an upload without bytes commits as an empty object', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['empty.bin']);
      assert.equal(await up.write([]), 0);
      assert.equal(await up.write(source(), { length: undefined }), 0);
      await up.commit(false);
      const object = await h.destinations.open(['empty.bin']);
      assert.equal(object?.size, 0);
      assert.deepEqual(await contentOf(object), Buffer.alloc(0));
    });

    it('a large write of many chunks arrives whole and in order, with or without its length announced', async () => {
      const { h, store } = ctx();
      const chunks = Array.from({ length: 80 }, (_, i) => Buffer.alloc(40_000, i));
      const sent = Buffer.concat(chunks);
      const known = await TestUpload.open(store, h.destinations, ['known.bin']);
      assert.equal(await known.write(chunks), sent.length);
      await known.commit(false);
      const unknown = await TestUpload.open(store, h.destinations, ['unknown.bin']);
      assert.equal(await unknown.write(source(...chunks), { length: undefined }), sent.length);
      await unknown.commit(false);
      for (const path of [['known.bin'], ['unknown.bin']]) {
        const back = await contentOf(await h.destinations.open(path));
        assert.equal(back?.length, sent.length, path[0]);
        assert.equal(sha256(back!), sha256(sent), path[0]);
      }
    });

    it('commit without overwrite never replaces what is there (both are kept); with overwrite it does', async () => {
      const { h, store } = ctx();
      const first = await TestUpload.open(store, h.destinations, ['x.txt']);
      await first.write('old');
      await first.commit(false);
      const second = await TestUpload.open(store, h.destinations, ['x.txt']);
      await second.write('new');
      const err = await second.commit(false).then(
        () => assert.fail('commit should be refused'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DestinationExistsError, String(err));
      assert.equal(err.code, 'EEXIST');
      assert.equal((await contentOf(await h.destinations.open(['x.txt'])))?.toString(), 'old');
      assert.equal(await second.exists(), true, 'upload kept after a refused commit');
      await second.commit(true);
      assert.equal((await contentOf(await h.destinations.open(['x.txt'])))?.toString(), 'new');
      assert.equal(await second.exists(), false);
    });

    it('two uploads committing the same path at once without overwrite: exactly one wins', async () => {
      const { h, store } = ctx();
      const contenders = await Promise.all(['A', 'B', 'C'].map(async (tag) => {
        const up = await TestUpload.open(store, h.destinations, ['race.bin']);
        await up.write(Buffer.alloc(10_000, tag));
        return { tag, up };
      }));
      const results = await Promise.allSettled(contenders.map(({ up }) => up.commit(false)));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [contenders[i]!] : []));
      assert.equal(won.length, 1, `exactly one commit wins: ${results.map((r) => r.status).join(', ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof DestinationExistsError, String(r.reason));
      const back = await contentOf(await h.destinations.open(['race.bin']));
      assert.deepEqual(back, Buffer.alloc(10_000, won[0]!.tag), 'the destination holds the winner, whole');
    });

    it('a commit repeated after it succeeded succeeds and changes nothing', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['again.bin']);
      await up.write('once');
      await up.commit(false);
      const before = await h.destinations.open(['again.bin']);
      await before?.close();
      await up.commit(false);
      const after = await h.destinations.open(['again.bin']);
      assert.equal(after?.etag, before?.etag);
      assert.equal((await contentOf(after))?.toString(), 'once');
    });

    it('a source that fails part way reports the durable prefix and its memo; the upload resumes from there', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['partial.bin']);
      const whole = Buffer.concat([Buffer.alloc(1000, 1), Buffer.alloc(1000, 2)]);
      const input = new PassThrough();
      const writing = up.write(input, { length: whole.length });
      input.write(whole.subarray(0, 1000));
      await sleep(20);
      input.destroy(new Error('client went away'));
      const err = await writing.then(
        () => assert.fail('write should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PartialWriteError, String(err));
      assert.equal(err.origin, 'source');
      assert.ok(err.written >= 0 && err.written <= 1000, `written ${err.written}`);
      assert.equal(up.received, err.written);
      // The reported prefix is really there: resume from it, as a client does.
      assert.equal(await up.write(whole.subarray(up.received)), whole.length - err.written);
      await up.commit(false);
      assert.deepEqual(await contentOf(await h.destinations.open(['partial.bin'])), whole);
    });

    it('an aborted signal stops the write as a source failure', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['aborted.bin']);
      const input = new PassThrough();
      const ac = new AbortController();
      const writing = up.write(input, { signal: ac.signal, length: 100 });
      input.write(Buffer.alloc(10));
      setTimeout(() => ac.abort(), 20);
      const err = await writing.then(
        () => assert.fail('write should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PartialWriteError, String(err));
      assert.equal(err.origin, 'source');
    });

    it('writing to an upload that is gone is UploadMissingError', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['gone.bin']);
      await up.write('early');
      await up.discard();
      await assert.rejects(up.write('late'), UploadMissingError);
    });

    it('discard removes the data and is idempotent', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['discarded.bin']);
      await up.write('some bytes');
      await up.discard();
      assert.equal(await up.exists(), false);
      await up.discard();
      assert.equal(await h.destinations.exists(['discarded.bin']), false);
    });

    it('read back: a readBack upload is readable once the write that reaches its total is made', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['notified.bin'], { readBack: true });
      const whole = Buffer.concat([Buffer.alloc(70_000, 7), Buffer.from('end')]);
      await up.write(whole.subarray(0, 70_000), { total: whole.length });
      await up.write(whole.subarray(70_000), { total: whole.length });
      assert.equal(await h.destinations.exists(['notified.bin']), false, 'nothing at the destination before commit');
      assert.deepEqual(await readAll(store.openRead(up.upload)), whole);
      assert.deepEqual(await readAll(store.openRead(up.upload)), whole, 'it can be read again');
      await up.commit(false);
      assert.deepEqual(await contentOf(await h.destinations.open(['notified.bin'])), whole);
      assert.equal(await up.exists(), false);
    });

    it('read back: an upload without bytes reads as empty and commits as an empty object', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['nothing.bin'], { readBack: true });
      assert.deepEqual(await readAll(store.openRead(up.upload)), Buffer.alloc(0));
      await up.commit(false);
      assert.equal((await h.destinations.open(['nothing.bin']))?.size, 0);
    });

    it('durability: a fresh instance given the durable memo sees every acknowledged byte', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['reopened.bin']);
      await up.write('dur');
      await up.write('able');
      const other = await TestUpload.open(store, h.destinations, ['other.bin']);
      await other.write('x');
      await other.discard();
      const again = await h.reopen();
      const resumed = up.on(again);
      assert.equal(await resumed.exists(), true);
      assert.equal(await other.on(again).exists(), false, 'a discarded upload stays discarded');
      await resumed.write(' bytes');
      await resumed.commit(false);
      assert.equal((await contentOf(await h.destinations.open(['reopened.bin'])))?.toString(), 'durable bytes');
    });

    it('durability: a fresh instance reads a sealed readBack upload back', async () => {
      const { h, store } = ctx();
      const up = await TestUpload.open(store, h.destinations, ['kept.bin'], { readBack: true });
      await up.write('read me back', { total: 12 });
      const again = await h.reopen();
      assert.equal((await readAll(again.openRead(up.upload))).toString(), 'read me back');
      await up.on(again).commit(false);
      assert.equal((await contentOf(await h.destinations.open(['kept.bin'])))?.toString(), 'read me back');
    });
  });
}
