// Farm mode end to end: two or three nodes (servers in this process, each with its own PostgreSQL
// record store and S3 byte store) over one real database and one real RADOS Gateway bucket, the
// packets of one session spread over the nodes. Commits of one key racing on two nodes, the expiry
// sweep, Cancel-Session through another node, upload-reply by value and by reference from object
// storage, and downloads from an s3:// destination.
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { sessionKey } from '../src/protocol/session-id.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { get, resolveReply, startApp } from './helpers/notify-app.js';
import type { TestApp } from './helpers/notify-app.js';
import { RawConnection } from './helpers/raw-http.js';
import type { RawResponse } from './helpers/raw-http.js';
import { freshBucket, freshDatabase, s3Service, servicesSkipReason } from './helpers/services.js';
import type { FreshBucket, FreshDatabase } from './helpers/services.js';
import { uploadAll } from './helpers/upload.js';

type VdirInput = ServerConfigInput['vdirs'][number];

const MiB = 1024 * 1024;
/** The part size of the farm's uploads: the smallest S3 allows, so that parts come from few bytes. */
const PART = 5 * MiB;
const VDIR = '/up';
/** Where the vdir's uploads land in the bucket, and where the sessions' own objects are. */
const DEST_PREFIX = 'uploads/';
const SESSIONS_PREFIX = 'sessions/';
const NOT_FOUND = '0x8020001F';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Nodes of one farm over a database and a bucket of this test's own. */
interface Farm {
  readonly nodes: readonly TestServer[];
  readonly db: FreshDatabase;
  readonly bucket: FreshBucket;
  /** Node `i` modulo the farm's size (round robin). */
  node(i: number): TestServer;
}

/**
 * Starts `nodes` servers sharing a fresh database (records, leases) and a fresh bucket (sessions
 * under `sessions/`, the vdir `/up` → `s3://<bucket>/uploads/`); all of it goes after the test.
 */
async function startFarm(
  t: TestContext,
  options: { vdir?: Partial<VdirInput>; config?: Partial<ServerConfigInput>; nodes?: number } = {},
): Promise<Farm> {
  const s3 = s3Service()!;
  const db = await freshDatabase();
  const bucket = await freshBucket('bits-farm');
  const nodes: TestServer[] = [];
  t.after(async () => {
    for (const n of nodes) await n.stop();
    await bucket.cleanup();
    await db.drop();
  });
  for (let i = 0; i < (options.nodes ?? 2); i++) {
    nodes.push(
      await startServer({
        vdirs: [{ path: VDIR, destination: `s3://${bucket.name}/${DEST_PREFIX}`, ...options.vdir }],
        config: {
          store: {
            records: { type: 'postgres', url: db.url, node: `node-${i + 1}` },
            bytes: {
              type: 's3',
              endpoint: s3.endpoint,
              region: s3.region,
              bucket: bucket.name,
              prefix: SESSIONS_PREFIX,
              forcePathStyle: true,
              partSize: '5MiB',
            },
          },
          ...options.config,
        },
      }),
    );
  }
  return { nodes, db, bucket, node: (i) => nodes[i % nodes.length]! };
}

/**
 * Sends `data` as the first bytes of a `total`-byte upload in fragments of `size`, fragment k to
 * node k (round robin), each acknowledged in full; returns the last Ack.
 */
async function sendSpread(farm: Farm, path: string, id: string, data: Buffer, size: number, total = data.length): Promise<RawResponse> {
  let last: RawResponse | undefined;
  for (let at = 0, k = 0; at < data.length; at += size, k++) {
    const body = data.subarray(at, at + size);
    last = await farm.node(k).request(fragmentRequest(path, id, at, body, total));
    assertAck(last);
    assert.equal(last.headers['bits-received-content-range'], String(at + body.length));
  }
  if (!last) throw new Error('nothing to send');
  return last;
}

/** Keys of the bucket's multipart uploads in progress. */
async function pendingUploads(bucket: FreshBucket): Promise<string[]> {
  const listed = await bucket.client.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }));
  return (listed.Uploads ?? []).map((u) => u.Key!);
}

/** Keys of the session's own objects (tail segments, read-back data, reply). */
async function sessionObjects(bucket: FreshBucket, id: string): Promise<string[]> {
  const prefix = `${SESSIONS_PREFIX}${sessionKey(id).toLowerCase()}/`;
  const listed = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: prefix }));
  return (listed.Contents ?? []).map((o) => o.Key!);
}

/** The bytes of the object at the vdir path `name`, or undefined when there is none. */
async function destinationObject(bucket: FreshBucket, name: string): Promise<Buffer | undefined> {
  try {
    const res = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.name, Key: `${DEST_PREFIX}${name}` }));
    return Buffer.from(await res.Body!.transformToByteArray());
  } catch (err) {
    if ((err as Error).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

/** How many rows of bits_sessions hold the session (0 or 1). */
async function recordRows(farm: Farm, id: string): Promise<number> {
  const c = new pg.Client({ connectionString: farm.db.url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM bits_sessions WHERE key = $1', [sessionKey(id)]);
    return rows[0]!.n;
  } finally {
    await c.end();
  }
}

/** Polls `probe` every 100 ms until it holds, at most `timeoutMs`. */
async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await probe()) return;
    await sleep(100);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms`);
}

/** A HEAD on a fresh connection. */
async function head(port: number, path: string): Promise<RawResponse> {
  const c = await RawConnection.connect(port);
  try {
    await c.write(`HEAD ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    return await c.read({ head: true });
  } finally {
    c.close();
  }
}

/**
 * Checks that the session left nothing behind: no record, no multipart upload, no object of its
 * own; and that a packet for it, on any node, finds no session.
 */
async function assertGone(farm: Farm, path: string, id: string, next: number, total: number): Promise<void> {
  assert.equal(await recordRows(farm, id), 0, 'the record is gone from PostgreSQL');
  assert.deepEqual(await pendingUploads(farm.bucket), [], 'no multipart upload is left');
  assert.deepEqual(await sessionObjects(farm.bucket, id), [], 'no object of the session is left');
  for (const node of farm.nodes) {
    assertErr(await node.request(fragmentRequest(path, id, next, Buffer.from('more'), total)), 500, NOT_FOUND);
  }
}

/**
 * Creates a session on node 0 and sends one full part and a shorter tail of a larger upload,
 * fragments spread over the nodes; checks that the part and the tail segments are in S3.
 */
async function partlyUploaded(farm: Farm, name: string): Promise<{ id: string; path: string; sent: number; total: number }> {
  const path = `${VDIR}/${name}`;
  const total = 3 * PART;
  const sent = PART + Math.floor(1.5 * MiB);
  const id = await farm.node(0).createSession(path);
  await sendSpread(farm, path, id, randomBytes(sent), 2 * MiB, total);
  assert.equal(await recordRows(farm, id), 1);
  assert.deepEqual(await pendingUploads(farm.bucket), [`${DEST_PREFIX}${name}`], 'the upload is a multipart upload at its destination key');
  const objects = await sessionObjects(farm.bucket, id);
  assert.ok(objects.some((k) => k.includes('/tail/')), `the bytes short of a part are tail segments: ${objects.join(', ')}`);
  return { id, path, sent, total };
}

describe('farm mode over PostgreSQL and S3', { skip: servicesSkipReason(['postgres', 's3']) }, () => {
  test('overwrites off: of two nodes committing one key at once, exactly one wins, with its bytes', async (t) => {
    const farm = await startFarm(t, { vdir: { allowOverwrites: false } });
    for (let round = 0; round < 5; round++) {
      const name = `race-${round}.bin`;
      const path = `${VDIR}/${name}`;
      // Different bytes and sizes, each a tail of 4 MiB that the commit uploads as the last part:
      // the time that takes keeps both commits in flight together.
      const bodies = [randomBytes(4 * MiB + round), randomBytes(4 * MiB + 1000 + round)];
      const ids = [await farm.node(0).createSession(path), await farm.node(1).createSession(path)];
      for (const i of [0, 1]) assertAck(await farm.node(i).request(fragmentRequest(path, ids[i]!, 0, bodies[i]!, bodies[i]!.length)));
      // odd rounds close each session through the node that did not create it
      const closes = await Promise.all([0, 1].map((i) => farm.node(i + round).request({ type: 'Close-Session', path, sessionId: ids[i]! })));
      const winners = [0, 1].filter((i) => closes[i]!.status === 200);
      assert.equal(winners.length, 1, `round ${round}: statuses ${closes.map((c) => `${c.status} ${c.headers['bits-error-code']}`).join(', ')}`);
      const winner = winners[0]!;
      const loser = 1 - winner;
      assertErr(closes[loser]!, 409, '0x80070005');
      const placed = await destinationObject(farm.bucket, name);
      assert.ok(placed, `round ${round}: the winner's object is there`);
      assert.equal(sha256(placed), sha256(bodies[winner]!), `round ${round}: the object holds exactly the winner's bytes`);
      // The losing session lives on (its data untouched) until it is cancelled.
      assert.equal(await recordRows(farm, ids[loser]!), 1);
      assertAck(await farm.node(loser).request({ type: 'Cancel-Session', path, sessionId: ids[loser]! }));
      assert.deepEqual(await pendingUploads(farm.bucket), [], `round ${round}: the loser's upload is aborted`);
      assert.equal(sha256((await destinationObject(farm.bucket, name))!), sha256(bodies[winner]!), 'the cancel left the object alone');
    }
  });

  test('overwrites on: a later commit of the key replaces the object, and simultaneous ones leave one whole', async (t) => {
    const farm = await startFarm(t, { vdir: { allowOverwrites: true } });
    const name = 'replaced.bin';
    const path = `${VDIR}/${name}`;
    const [a, b] = [randomBytes(300_000), randomBytes(200_000)];
    const ids = [await farm.node(0).createSession(path), await farm.node(1).createSession(path)];
    assertAck(await farm.node(0).request(fragmentRequest(path, ids[0]!, 0, a, a.length)));
    assertAck(await farm.node(1).request(fragmentRequest(path, ids[1]!, 0, b, b.length)));
    assertAck(await farm.node(1).request({ type: 'Close-Session', path, sessionId: ids[0]! }));
    assert.equal(sha256((await destinationObject(farm.bucket, name))!), sha256(a));
    assertAck(await farm.node(0).request({ type: 'Close-Session', path, sessionId: ids[1]! }));
    assert.equal(sha256((await destinationObject(farm.bucket, name))!), sha256(b), 'the later commit replaced the object');

    const [c, d] = [randomBytes(150_000), randomBytes(250_000)];
    const more = [await farm.node(0).createSession(path), await farm.node(1).createSession(path)];
    assertAck(await farm.node(0).request(fragmentRequest(path, more[0]!, 0, c, c.length)));
    assertAck(await farm.node(1).request(fragmentRequest(path, more[1]!, 0, d, d.length)));
    const closes = await Promise.all([0, 1].map((i) => farm.node(i).request({ type: 'Close-Session', path, sessionId: more[i]! })));
    for (const res of closes) assertAck(res);
    const placed = sha256((await destinationObject(farm.bucket, name))!);
    assert.ok(placed === sha256(c) || placed === sha256(d), 'the object is one of the two uploads, whole');
    assert.deepEqual(await pendingUploads(farm.bucket), []);
  });

  test('an expired session is swept by one node: record, multipart upload and tail segments go', async (t) => {
    const farm = await startFarm(t, { vdir: { sessionTimeout: '3s' }, config: { sweepInterval: '1s' }, nodes: 3 });
    const expired: string[] = [];
    farm.nodes.forEach((n, i) => n.server.on('session-expired', (record) => expired.push(`node-${i + 1} ${record.id}`)));
    // (nothing is sent after this until the record is gone: a packet would find it expired itself)
    const { id, path, sent, total } = await partlyUploaded(farm, 'expiring.bin');
    await eventually('a sweep removes the expired session', async () => expired.length > 0, 30_000);
    assert.ok(expired[0]!.endsWith(id), expired[0]);
    await assertGone(farm, path, id, sent, total);
    assert.equal(await destinationObject(farm.bucket, 'expiring.bin'), undefined, 'nothing reached the destination');
    // every node has swept again by now; none found the session a second time
    await sleep(1500);
    assert.equal(expired.length, 1, `one node swept it: ${expired.join('; ')}`);
  });

  test('Cancel-Session through another node than the one that created the session cleans up everywhere', async (t) => {
    const farm = await startFarm(t);
    const { id, path, sent, total } = await partlyUploaded(farm, 'cancelled.bin');
    assertAck(await farm.node(1).request({ type: 'Cancel-Session', path, sessionId: id }));
    await assertGone(farm, path, id, sent, total);
    assert.equal(await destinationObject(farm.bucket, 'cancelled.bin'), undefined, 'the destination is untouched');
  });

  test('upload-reply by value: the application gets the whole upload from S3; the reply is served by any node', async (t) => {
    const app: TestApp = await startApp();
    t.after(() => app.close());
    const farm = await startFarm(t, { vdir: { notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${app.port}/notify` } });
    app.set((s, res) => {
      const reply = Buffer.from(`sha256=${sha256(s.body)} size=${s.body.length}`);
      res.writeHead(200, { 'Content-Length': String(reply.length), 'BITS-Copy-File-To-Destination': '1' }).end(reply);
    });
    const path = `${VDIR}/dump.bin`;
    const data = randomBytes(2 * PART + 123_457);
    const size = Math.floor(1.5 * MiB);
    const fragments = Math.ceil(data.length / size);
    const id = await farm.node(0).createSession(path);
    const ack = await sendSpread(farm, path, id, data, size);
    const replyUrl = ack.headers['bits-reply-url'];
    assert.ok(replyUrl, 'the completing Ack names the reply');

    assert.equal(app.seen.length, 1);
    const seen = app.seen[0]!;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/notify');
    assert.equal(seen.headers['content-length'], String(data.length));
    assert.equal(sha256(seen.body), sha256(data), 'the application received the whole upload');
    const notifier = farm.node(fragments - 1);
    assert.equal(seen.headers['bits-original-request-url'], `http://127.0.0.1:${notifier.port}${path}`);

    const expected = `sha256=${sha256(data)} size=${data.length}`;
    const replyPath = resolveReply(replyUrl, path);
    for (const node of farm.nodes) {
      const reply = await get(node.port, replyPath);
      assert.equal(reply.status, 200);
      assert.equal(reply.body.toString(), expected);
    }
    const ranged = await get(farm.node(fragments).port, replyPath, { Range: 'bytes=0-5' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.toString(), 'sha256');
    assert.equal(ranged.headers['content-range'], `bytes 0-5/${expected.length}`);

    // The last fragment resent to another node: the same reply, no second notification.
    const last = (fragments - 1) * size;
    const again = await farm.node(fragments).request(fragmentRequest(path, id, last, data.subarray(last), data.length));
    assertAck(again);
    assert.equal(again.headers['bits-reply-url'], replyUrl);
    assert.equal(app.seen.length, 1);

    assertAck(await farm.node(fragments + 1).request({ type: 'Close-Session', path, sessionId: id }));
    assert.equal(sha256((await destinationObject(farm.bucket, 'dump.bin'))!), sha256(data), 'copied to the destination as asked');
    assert.equal((await get(farm.node(0).port, replyPath)).status, 404, 'the reply ends with the session');
    assert.deepEqual(await sessionObjects(farm.bucket, id), []);
    assert.deepEqual(await pendingUploads(farm.bucket), []);
  });

  test('upload-reply by reference in object mode: presigned URLs to read the upload and to PUT the reply', async (t) => {
    const app: TestApp = await startApp();
    t.after(() => app.close());
    const farm = await startFarm(t, { vdir: { notificationType: 'by-reference', notificationUrl: `http://127.0.0.1:${app.port}/ref` } });
    const s3 = s3Service()!;
    let fetched: Buffer | undefined;
    let putStatus: number | undefined;
    app.set(async (s, res) => {
      const got = await fetch(String(s.headers['bits-request-datafile-name']));
      fetched = Buffer.from(await got.arrayBuffer());
      const reply = `<ticket sha256="${sha256(fetched)}"/>`;
      putStatus = (await fetch(String(s.headers['bits-response-datafile-name']), { method: 'PUT', body: reply })).status;
      res.writeHead(200, { 'Content-Length': '0' }).end();
    });
    const path = `${VDIR}/ref.bin`;
    const data = randomBytes(PART + 777);
    const id = await farm.node(0).createSession(path);
    const ack = await sendSpread(farm, path, id, data, 2 * MiB);
    assert.equal(app.seen.length, 1);
    const seen = app.seen[0]!;
    assert.equal(seen.headers['content-length'], '0');
    assert.equal(seen.body.length, 0);
    const sessionUrl = `${s3.endpoint}/${farm.bucket.name}/${SESSIONS_PREFIX}${sessionKey(id).toLowerCase()}/`;
    for (const h of ['bits-request-datafile-name', 'bits-response-datafile-name']) {
      const url = String(seen.headers[h]);
      assert.ok(url.startsWith(sessionUrl), `${h} is an object of the session: ${url}`);
      assert.match(url, /[?&]X-Amz-Signature=/, `${h} is presigned`);
    }
    assert.equal(sha256(fetched!), sha256(data), 'the presigned GET gives the upload');
    assert.equal(putStatus, 200, 'the presigned PUT is accepted');

    const expected = `<ticket sha256="${sha256(data)}"/>`;
    const replyPath = resolveReply(ack.headers['bits-reply-url']!, path);
    const reply = await get(farm.node(1).port, replyPath);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.toString(), expected);
    const ranged = await get(farm.node(0).port, replyPath, { Range: 'bytes=1-6' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.toString(), 'ticket');

    assertAck(await farm.node(1).request({ type: 'Close-Session', path, sessionId: id }));
    assert.equal(await destinationObject(farm.bucket, 'ref.bin'), undefined, 'not placed: the application did not ask for it');
    assert.deepEqual(await sessionObjects(farm.bucket, id), []);
    assert.deepEqual(await pendingUploads(farm.bucket), []);
  });

  test('downloads from an s3:// destination: HEAD, ETag, ranges, multipart ranges, If-Range, 416', async (t) => {
    const farm = await startFarm(t, { vdir: { downloadEnabled: true } });
    const path = `${VDIR}/dl.bin`;
    const data = randomBytes(300_000);
    await uploadAll(farm.node(0).port, path, data, 100_000);
    const port = farm.node(1).port;

    const h = await head(port, path);
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], String(data.length));
    assert.equal(h.headers['accept-ranges'], 'bytes');
    assert.ok(h.headers['last-modified']);
    const etag = h.headers['etag']!;
    assert.match(etag, /^"[^"]+"$/, 'a strong ETag');
    assert.equal(h.body.length, 0);

    const whole = await get(port, path);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['etag'], etag);
    assert.equal(sha256(whole.body), sha256(data));

    const one = await get(port, path, { Range: 'bytes=100000-100099' });
    assert.equal(one.status, 206);
    assert.equal(one.headers['content-range'], `bytes 100000-100099/${data.length}`);
    assert.deepEqual(one.body, data.subarray(100000, 100100));

    const multi = await get(port, path, { Range: 'bytes=0-9,-10' });
    assert.equal(multi.status, 206);
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(multi.headers['content-type'] ?? '')?.[1];
    assert.ok(boundary, multi.headers['content-type']);
    const part = (start: number, end: number, first: boolean): Buffer =>
      Buffer.concat([
        Buffer.from(`${first ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${start}-${end}/${data.length}\r\n\r\n`),
        data.subarray(start, end + 1),
      ]);
    const n = data.length;
    assert.deepEqual(multi.body, Buffer.concat([part(0, 9, true), part(n - 10, n - 1, false), Buffer.from(`\r\n--${boundary}--\r\n`)]));

    const current = await get(port, path, { Range: 'bytes=5-9', 'If-Range': etag });
    assert.equal(current.status, 206);
    assert.deepEqual(current.body, data.subarray(5, 10));
    const stale = await get(port, path, { Range: 'bytes=5-9', 'If-Range': '"not-this-version"' });
    assert.equal(stale.status, 200);
    assert.equal(stale.body.length, data.length);

    const past = await get(port, path, { Range: `bytes=${data.length}-` });
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${data.length}`);
    assert.equal((await get(port, `${VDIR}/absent.bin`)).status, 404);
  });
});
