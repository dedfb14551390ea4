// The S3 stores run the store compliance suites against a real Ceph RADOS Gateway, plus the cases
// that only an object store has: parts of a fixed layout built from tiny fragments, stale writers,
// read-back objects and what discard leaves behind.
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BitsError } from '../src/protocol/errors.js';
import { createS3Client, InProcessClaims, parseS3Url, partSizeFor, S3ByteStore, S3DestinationStore } from '../src/store/s3/index.js';
import {
  byteStoreCompliance,
  contentOf,
  destinationStoreCompliance,
  readAll,
  remoteObjectsCompliance,
  replyStoreCompliance,
  TestUpload,
} from '../src/store/testing/index.js';
import type { ByteStoreHarness, DestinationStoreHarness } from '../src/store/testing/index.js';
import { PartialWriteError, StoreUnavailableError } from '../src/store/types.js';
import type { DestinationStore } from '../src/store/types.js';

const endpoint = process.env['BITS_TEST_S3_ENDPOINT'];
const region = process.env['BITS_TEST_S3_REGION'] ?? 'us-east-1';
const MiB = 1024 * 1024;
/** The smallest part size S3 allows, so that cases cross part boundaries with few bytes. */
const P = 5 * MiB;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const newClient = (): S3Client => createS3Client({ endpoint, region, forcePathStyle: true });

/** A fresh bucket (names need 3+ characters on RGW), emptied and removed by `drop`. */
async function freshBucket(client: S3Client): Promise<{ bucket: string; drop(): Promise<void> }> {
  const bucket = `bits-test-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    bucket,
    async drop() {
      for (let i = 0; i < 100; i++) {
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        for (const u of uploads.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
        const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
        const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (objects.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
        if (!uploads.IsTruncated && !listed.IsTruncated) break;
      }
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    },
  };
}

/** Objects under a prefix, and multipart uploads in progress, of a bucket. */
async function leftovers(client: S3Client, bucket: string, prefix = ''): Promise<{ objects: string[]; uploads: string[] }> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return { objects: (listed.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).map((u) => u.Key!) };
}

interface S3Case extends ByteStoreHarness {
  readonly client: S3Client;
  readonly bucket: string;
  readonly store: S3ByteStore;
  readonly destinations: S3DestinationStore;
  reopen(): Promise<S3ByteStore>;
}

/** An S3ByteStore over a fresh bucket (sessions under `sessions/`, destination `s3://bucket/uploads/`). */
async function s3Case(options: { partSize?: number } = {}): Promise<S3Case> {
  const client = newClient();
  const { bucket, drop } = await freshBucket(client);
  const claims = new InProcessClaims();
  const reopened: S3Client[] = [];
  const open = (c: S3Client, withClaims = claims): S3ByteStore =>
    new S3ByteStore({ client: c, bucket, prefix: 'sessions/', partSize: options.partSize ?? P, claims: withClaims });
  return {
    client,
    bucket,
    store: open(client),
    destinations: new S3DestinationStore({ client, bucket, prefix: 'uploads/' }),
    // A restarted node: its own client and its own (empty) claims.
    reopen: async () => {
      const c = newClient();
      reopened.push(c);
      return open(c, new InProcessClaims());
    },
    cleanup: async () => {
      await drop();
      for (const c of [client, ...reopened]) c.destroy();
    },
  };
}

if (!endpoint) {
  const why = 'BITS_TEST_S3_ENDPOINT is not set: the S3 store tests need a RADOS Gateway (see the services scripts); SKIPPED';
  process.stderr.write(`\n*** store-s3: ${why} ***\n\n`);
  describe('S3 stores', () => {
    it('run against a real S3 service', (t) => {
      t.skip(why);
    });
  });
} else {
  byteStoreCompliance(() => s3Case(), 'S3ByteStore on RGW');
  replyStoreCompliance(() => s3Case(), 'S3ByteStore on RGW');
  remoteObjectsCompliance(() => s3Case(), 'S3ByteStore on RGW');
  destinationStoreCompliance(async (): Promise<DestinationStoreHarness> => {
    const client = newClient();
    const { bucket, drop } = await freshBucket(client);
    const other = newClient();
    return {
      store: new S3DestinationStore({ client, bucket, prefix: 'vdir/' }),
      reopen: async () => new S3DestinationStore({ client: other, bucket, prefix: 'vdir/' }),
      put: async (path, content) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: `vdir/${path.join('/')}`, Body: content, ContentLength: content.length }));
      },
      cleanup: async () => {
        await drop();
        client.destroy();
        other.destroy();
      },
    };
  }, 'S3DestinationStore on RGW');

  describe('S3ByteStore on RGW, beyond the contract', () => {
    let c: S3Case;
    before(async () => {
      c = await s3Case();
    });
    after(async () => {
      await c?.cleanup();
    });

    it('many 5 KB fragments spanning several parts commit to an object with the source sha256', async () => {
      const source = randomBytes(2 * P + 300_000);
      const up = await TestUpload.open(c.store, c.destinations, ['tiny', 'fragments.bin']);
      const started = Date.now();
      for (let at = 0, i = 0; at < source.length && i < 10_000; at += 5000, i++) {
        assert.equal(await up.write(source.subarray(at, at + 5000), { total: source.length }), Math.min(5000, source.length - at));
      }
      assert.equal(up.received, source.length);
      const memo = up.bytes as { parts: string[]; tail: unknown[]; partSize: number };
      assert.equal(memo.partSize, P);
      assert.equal(memo.parts.length, 2, 'two full parts');
      await up.commit(false);
      const back = await contentOf(await c.destinations.open(['tiny', 'fragments.bin']));
      assert.equal(sha256(back!), sha256(source));
      process.stderr.write(`store-s3: ${Math.ceil(source.length / 5000)} fragments of 5 KB in ${Date.now() - started} ms\n`);
    });

    it('mixed fragment sizes across part boundaries, one larger than two parts', async () => {
      const sizes = [1, 4999, 3 * MiB, 2 * MiB - 5000, 2 * MiB + 17, 11 * MiB + 3, 100, P - 1, 1, 1, 777_777];
      const source = randomBytes(sizes.reduce((a, b) => a + b, 0));
      const up = await TestUpload.open(c.store, c.destinations, ['mixed.bin']);
      let at = 0;
      for (const [i, size] of sizes.entries()) {
        // Every other fragment withholds its length, as a chunked body would.
        const options = i % 2 === 0 ? { total: source.length } : { total: source.length, length: undefined };
        assert.equal(await up.write([source.subarray(at, at + size)], options), size);
        at += size;
      }
      await up.commit(false);
      const back = await contentOf(await c.destinations.open(['mixed.bin']));
      assert.equal(back?.length, source.length);
      assert.equal(sha256(back!), sha256(source));
    });

    it('a source failing after a whole part keeps that part: the error reports it with its memo', async () => {
      const source = randomBytes(P + 100_000);
      const up = await TestUpload.open(c.store, c.destinations, ['resumed.bin']);
      const input = new PassThrough();
      const writing = up.write(input, { length: source.length });
      input.write(source.subarray(0, P + 50_000));
      await sleep(300);
      input.destroy(new Error('client went away'));
      const err = await writing.then(
        () => assert.fail('the write should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PartialWriteError, String(err));
      assert.equal(err.origin, 'source');
      assert.equal(err.written, P);
      assert.equal((err.bytes as { parts: string[] }).parts.length, 1);
      await up.write(source.subarray(up.received));
      await up.commit(false);
      assert.equal(sha256((await contentOf(await c.destinations.open(['resumed.bin'])))!), sha256(source));
    });

    it('a stale writer (a write from an older memo after a newer one was recorded) cannot corrupt the object', async () => {
      const source = randomBytes(3 * P);
      for (const stale of ['same bytes', 'other bytes'] as const) {
        const path = [`stale-${stale.replace(' ', '-')}.bin`];
        const up = await TestUpload.open(c.store, c.destinations, path);
        await up.write(source.subarray(0, P - 1000));
        const older = up.on(c.store);
        // The superseding request fills part 1 and goes on; its memo is recorded.
        await up.write(source.subarray(P - 1000, 2 * P + 10));
        // The stalled node wakes up and writes from the memo it had: it re-uploads part 1.
        const staleBytes = stale === 'same bytes' ? source.subarray(P - 1000, P + 5) : randomBytes(1005);
        await older.write(staleBytes).catch(() => undefined);
        await up.write(source.subarray(up.received));
        const committed = await up.commit(false).then(
          () => true,
          () => false,
        );
        if (stale === 'same bytes') assert.equal(committed, true, 'the same bytes at the same part make the same part');
        if (committed) assert.equal(sha256((await contentOf(await c.destinations.open(path)))!), sha256(source), `${stale}: committed, so whole`);
        else assert.equal(await c.destinations.exists(path), false, `${stale}: refused, so nothing there`);
        await up.discard();
      }
    });

    it('two nodes committing the same key at once without overwrite, sharing claims: exactly one wins', async () => {
      const claims = new InProcessClaims();
      const nodes = [newClient(), newClient()];
      try {
        const stores = nodes.map((client) => new S3ByteStore({ client, bucket: c.bucket, prefix: 'sessions/', claims }));
        const destinations = nodes.map((client) => new S3DestinationStore({ client, bucket: c.bucket, prefix: 'uploads/' }));
        const ups = await Promise.all(
          stores.map(async (store, i) => {
            const up = await TestUpload.open(store, destinations[i]!, ['contended.bin']);
            await up.write(Buffer.alloc(P + 10, i === 0 ? 'a' : 'b'));
            return up;
          }),
        );
        const results = await Promise.allSettled(ups.map((up) => up.commit(false)));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, results.map((r) => r.status).join());
        const winner = results.findIndex((r) => r.status === 'fulfilled');
        const back = await contentOf(await c.destinations.open(['contended.bin']));
        assert.deepEqual(back, Buffer.alloc(P + 10, winner === 0 ? 'a' : 'b'));
        await Promise.all(ups.map((up) => up.discard()));
      } finally {
        for (const n of nodes) n.destroy();
      }
    });

    it('a commit resent after success succeeds, for direct and read-back uploads, on another node too', async () => {
      for (const readBack of [false, true]) {
        const path = [`resent-${readBack}.bin`];
        const up = await TestUpload.open(c.store, c.destinations, path, { readBack });
        const source = randomBytes(P + 1234);
        await up.write(source, { total: source.length });
        await up.commit(false);
        const again = await c.reopen();
        await up.on(again).commit(false);
        await up.commit(true);
        assert.equal(sha256((await contentOf(await c.destinations.open(path)))!), sha256(source));
        assert.equal(await up.exists(), false);
      }
    });

    it('read back: a multi-part upload is sealed by its last write, read, presigned, then copied at commit', async () => {
      const source = randomBytes(2 * P + 99);
      const up = await TestUpload.open(c.store, c.destinations, ['read-back.bin'], { readBack: true });
      assert.equal((await leftovers(c.client, c.bucket, 'uploads/')).uploads.includes('uploads/read-back.bin'), false, 'not at the destination');
      await up.write(source.subarray(0, P + 7), { total: source.length });
      await assert.rejects(readAll(c.store.openRead(up.upload)), /not complete/);
      await up.write(source.subarray(P + 7), { total: source.length });
      assert.equal((up.bytes as { sealed: boolean }).sealed, true);
      assert.equal(sha256(await readAll(c.store.openRead(up.upload))), sha256(source));
      const { name, url } = await c.store.remote.request(up.upload, 60);
      assert.equal(name, `s3://${c.bucket}/${c.store.dataKey(up.id)}`);
      assert.equal(sha256(Buffer.from(await (await fetch(url)).arrayBuffer())), sha256(source));
      await up.commit(false);
      assert.equal(sha256((await contentOf(await c.destinations.open(['read-back.bin'])))!), sha256(source));
      await up.discard();
    });

    it('discard leaves no object under the session prefix and no multipart upload', async () => {
      for (const readBack of [false, true]) {
        const up = await TestUpload.open(c.store, c.destinations, [`discarded-${readBack}.bin`], { readBack });
        await up.write(randomBytes(P + 3000), { total: P + 6000 });
        await up.write(randomBytes(1000), { total: P + 6000 });
        await c.store.writeReply(up.upload, PassThrough.from(['reply']));
        const prefix = c.store.sessionPrefix(up.id);
        assert.ok((await leftovers(c.client, c.bucket, prefix)).objects.length >= 2, 'tail segments and a reply are there');
        await up.discard();
        const left = await leftovers(c.client, c.bucket, prefix);
        assert.deepEqual(left.objects, []);
        assert.deepEqual(left.uploads, []);
        await up.discard();
      }
    });

    it('a reply larger than a part is stored as a multipart object; one failing part way leaves nothing', async () => {
      const up = await TestUpload.open(c.store, c.destinations, ['big-reply.bin'], { readBack: true });
      const reply = randomBytes(2 * P + 12345);
      // (in uneven chunks, so that parts are cut inside them)
      const chunks = [reply.subarray(0, 1000), reply.subarray(1000, P + 7), reply.subarray(P + 7)];
      assert.equal(await c.store.writeReply(up.upload, PassThrough.from(chunks)), reply.length);
      const stored = await c.store.openReply(up.upload);
      assert.equal(stored?.size, reply.length);
      assert.equal(sha256((await contentOf(stored))!), sha256(reply));

      const failing = new PassThrough();
      const written = c.store.writeReply(up.upload, failing);
      failing.write(randomBytes(P + 100)); // (a whole part goes out)
      await sleep(200);
      failing.destroy(new Error('the application went away'));
      await assert.rejects(written, /went away/);
      const uploads = (await leftovers(c.client, c.bucket, c.store.replyKey(up.id))).uploads;
      assert.ok(!uploads.includes(c.store.replyKey(up.id)), 'the multipart upload was aborted');
      // (the earlier reply stays as it was: a failure leaves nothing of its own)
      assert.equal(sha256((await contentOf(await c.store.openReply(up.upload)))!), sha256(reply));
      await up.discard();
    });

    it('an upload cannot be opened for a destination that is not in S3', async () => {
      const local: DestinationStore = { name: '/srv/uploads', resolve: async () => '/srv/uploads/a', exists: async () => false, open: async () => undefined };
      await assert.rejects(c.store.open('{00000000-0000-4000-8000-000000000001}', { destinations: local, path: ['a'] }), /only to s3:\/\/ destinations/);
    });
  });

  describe('S3 stores when S3 is unreachable', () => {
    it('open and write fail with StoreUnavailableError (the server answers 503)', async () => {
      const client = createS3Client({ endpoint: 'http://127.0.0.1:1', region, forcePathStyle: true, maxAttempts: 1, connectionTimeoutMs: 1000 });
      try {
        const store = new S3ByteStore({ client, bucket: 'bits-nowhere', prefix: 'sessions/' });
        const destinations = new S3DestinationStore({ client, bucket: 'bits-nowhere', prefix: 'uploads/' });
        const id = '{00000000-0000-4000-8000-000000000002}';
        await assert.rejects(store.open(id, { destinations, path: ['a.bin'] }), StoreUnavailableError);
        const bytes = { v: 1, bucket: 'bits-nowhere', key: 'uploads/a.bin', uploadId: 'x', readBack: false, partSize: null, parts: [], tail: [], obsolete: [], sealed: false };
        await assert.rejects(store.write({ id, destination: 's3://bits-nowhere/uploads/a.bin', bytes }, 0, PassThrough.from(['abc']), { length: 3 }), StoreUnavailableError);
        await assert.rejects(destinations.exists(['a.bin']), StoreUnavailableError);
      } finally {
        client.destroy();
      }
    });
  });
}

describe('S3 names and layout', () => {
  it('parseS3Url', () => {
    assert.deepEqual(parseS3Url('s3://bits-uploads/uploads/'), { bucket: 'bits-uploads', prefix: 'uploads/' });
    assert.deepEqual(parseS3Url('s3://bits-uploads/a/b'), { bucket: 'bits-uploads', prefix: 'a/b/' });
    assert.deepEqual(parseS3Url('s3://bits-uploads'), { bucket: 'bits-uploads', prefix: '' });
    for (const bad of ['http://x/y', 's3://ab/', 's3://Upper/', 's3://bits-uploads/a//b/', 's3://bits-uploads/../x/']) assert.throws(() => parseS3Url(bad), bad);
  });

  it('partSizeFor keeps the configured size unless the total needs more than 10,000 parts', () => {
    assert.equal(partSizeFor(8 * MiB, undefined), 8 * MiB);
    assert.equal(partSizeFor(8 * MiB, 1024 * MiB), 8 * MiB);
    assert.equal(partSizeFor(1, 10), 5 * MiB);
    assert.equal(partSizeFor(8 * MiB, 200 * 1024 * MiB), 21 * MiB);
  });

  it('S3DestinationStore.resolve names keys and refuses what S3 cannot hold', async () => {
    const client = newClient();
    try {
      const d = S3DestinationStore.fromUrl(client, 's3://bits-uploads/uploads/');
      assert.equal(await d.resolve(['a', 'b.bin']), 's3://bits-uploads/uploads/a/b.bin');
      await assert.rejects(d.resolve([]), (e: unknown) => e instanceof BitsError && e.code === 'BITS_DESTINATION_IS_DIRECTORY');
      await assert.rejects(d.resolve(['x'.repeat(1020)]), (e: unknown) => e instanceof BitsError && e.code === 'BITS_BAD_PATH');
      await assert.rejects(d.resolve(['..', 'x']), (e: unknown) => e instanceof BitsError && e.code === 'BITS_BAD_PATH');
    } finally {
      client.destroy();
    }
  });
});
