// Smoke test of the real services farm mode relies on, used the way the stores will use them:
// PostgreSQL (queries, LISTEN/NOTIFY, restarts), Ceph RGW (multipart with a small last part,
// ranges, ETags, conditional create, presigned URLs, restarts) and HAProxy (round-robin per
// connection).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, connect, type Server } from 'node:net';
import { describe, test } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import pg from 'pg';
import { requireHaproxy, startHaproxy } from './helpers/haproxy.js';
import { freshBucket, freshDatabase, privatePostgres, privateRgw, requireServices, s3Client } from './helpers/services.js';

const MiB = 1024 * 1024;

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

describe('PostgreSQL', () => {
  test('a fresh database answers queries and is dropped', async (t) => {
    if (!requireServices(t, ['postgres'])) return;
    const db = await freshDatabase();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query('create table r (id text primary key, version int not null)');
      await c.query("insert into r values ('a', 1)");
      const upd = await c.query("update r set version = 2 where id = 'a' and version = 1");
      assert.equal(upd.rowCount, 1);
      const stale = await c.query("update r set version = 3 where id = 'a' and version = 1");
      assert.equal(stale.rowCount, 0, 'a conditional update on a stale version changes nothing');
    } finally {
      await c.end();
    }
    await db.drop();
    const again = new pg.Client({ connectionString: db.url });
    await assert.rejects(again.connect(), /does not exist/);
    await again.end().catch(() => undefined);
  });

  test('LISTEN/NOTIFY crosses connections', async (t) => {
    if (!requireServices(t, ['postgres'])) return;
    const db = await freshDatabase();
    t.after(() => db.drop());
    const listener = new pg.Client({ connectionString: db.url });
    const notifier = new pg.Client({ connectionString: db.url });
    await listener.connect();
    await notifier.connect();
    try {
      await listener.query('LISTEN lease_superseded');
      const got = new Promise<pg.Notification>((res, rej) => {
        const timer = setTimeout(() => rej(new Error('no notification within 5 s')), 5000);
        listener.once('notification', (n) => {
          clearTimeout(timer);
          res(n);
        });
      });
      await notifier.query("SELECT pg_notify('lease_superseded', 'session-42')");
      const n = await got;
      assert.equal(n.channel, 'lease_superseded');
      assert.equal(n.payload, 'session-42');
    } finally {
      await listener.end();
      await notifier.end();
    }
  });

  test('a restarted cluster cuts clients off and answers new ones', async (t) => {
    if (!requireServices(t, ['postgres-restart'])) return;
    const db = await privatePostgres();
    t.after(() => db.stop());
    const before = new pg.Client({ connectionString: db.url });
    before.on('error', () => undefined);
    await before.connect();
    let refusedWhileDown = false;
    await db.restart({
      downMs: 300,
      whileDown: async () => {
        const c = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 1000 });
        refusedWhileDown = await c.connect().then(
          () => false,
          () => true,
        );
        await c.end().catch(() => undefined);
      },
    });
    assert.ok(refusedWhileDown, 'connections are refused while the server is down');
    await assert.rejects(before.query('select 1'), 'the old connection is gone');
    await before.end().catch(() => undefined);
    const after = new pg.Client({ connectionString: db.url });
    await after.connect();
    try {
      assert.equal((await after.query('select 1 as one')).rows[0].one, 1);
    } finally {
      await after.end();
    }
  });
});

describe('Ceph RGW', () => {
  test('multipart upload with a 5 MiB part and a small last part, ranges, ETag', async (t) => {
    if (!requireServices(t, ['s3'])) return;
    const b = await freshBucket();
    t.after(() => b.cleanup());
    const s3 = b.client;
    const key = 'uploads/crash.dmp';
    const part1 = Buffer.alloc(5 * MiB, 7);
    part1.write('start', 0);
    const part2 = Buffer.from('the last part may be small');
    const whole = Buffer.concat([part1, part2]);

    const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: b.name, Key: key }));
    assert.ok(mp.UploadId);
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: b.name, Key: key })), 'no object before Complete');
    const p1 = await s3.send(new UploadPartCommand({ Bucket: b.name, Key: key, UploadId: mp.UploadId, PartNumber: 1, Body: part1 }));
    const p2 = await s3.send(new UploadPartCommand({ Bucket: b.name, Key: key, UploadId: mp.UploadId, PartNumber: 2, Body: part2 }));
    assert.equal(p1.ETag, `"${md5(part1)}"`);

    const parts = await s3.send(new ListPartsCommand({ Bucket: b.name, Key: key, UploadId: mp.UploadId }));
    assert.deepEqual(
      parts.Parts?.map((p) => [p.PartNumber, p.Size]),
      [
        [1, part1.length],
        [2, part2.length],
      ],
    );

    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: b.name,
        Key: key,
        UploadId: mp.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] },
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: b.name, Key: key }));
    assert.equal(head.ContentLength, whole.length);
    assert.match(head.ETag ?? '', /^"[0-9a-f]{32}-2"$/, 'multipart ETag');

    const start = part1.length - 3;
    const range = await s3.send(new GetObjectCommand({ Bucket: b.name, Key: key, Range: `bytes=${start}-${start + 9}` }));
    assert.equal(range.ContentRange, `bytes ${start}-${start + 9}/${whole.length}`);
    assert.deepEqual(Buffer.from(await range.Body!.transformToByteArray()), whole.subarray(start, start + 10));

    const full = await s3.send(new GetObjectCommand({ Bucket: b.name, Key: key }));
    assert.equal(md5(Buffer.from(await full.Body!.transformToByteArray())), md5(whole));
  });

  test('PutObject with If-None-Match: * answers 412 when the object exists', async (t) => {
    if (!requireServices(t, ['s3'])) return;
    const b = await freshBucket();
    t.after(() => b.cleanup());
    await b.client.send(new PutObjectCommand({ Bucket: b.name, Key: 'k', Body: 'first', IfNoneMatch: '*' }));
    const err = await b.client.send(new PutObjectCommand({ Bucket: b.name, Key: 'k', Body: 'second', IfNoneMatch: '*' })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof S3ServiceException, `expected an S3 error, got ${String(err)}`);
    assert.equal(err.$metadata.httpStatusCode, 412);
    const got = await b.client.send(new GetObjectCommand({ Bucket: b.name, Key: 'k' }));
    assert.equal(await got.Body!.transformToString(), 'first');
  });

  test('AbortMultipartUpload removes the upload', async (t) => {
    if (!requireServices(t, ['s3'])) return;
    const b = await freshBucket();
    t.after(() => b.cleanup());
    const mp = await b.client.send(new CreateMultipartUploadCommand({ Bucket: b.name, Key: 'gone' }));
    await b.client.send(new UploadPartCommand({ Bucket: b.name, Key: 'gone', UploadId: mp.UploadId, PartNumber: 1, Body: 'x' }));
    await b.client.send(new AbortMultipartUploadCommand({ Bucket: b.name, Key: 'gone', UploadId: mp.UploadId }));
    const list = await b.client.send(new ListMultipartUploadsCommand({ Bucket: b.name }));
    assert.equal(list.Uploads?.length ?? 0, 0);
    await assert.rejects(b.client.send(new ListPartsCommand({ Bucket: b.name, Key: 'gone', UploadId: mp.UploadId })));
  });

  test('a presigned GET URL is fetched without credentials', async (t) => {
    if (!requireServices(t, ['s3'])) return;
    const b = await freshBucket();
    t.after(() => b.cleanup());
    await b.client.send(new PutObjectCommand({ Bucket: b.name, Key: 'dir/reply.bin', Body: 'reply bytes' }));
    const url = await getSignedUrl(b.client, new GetObjectCommand({ Bucket: b.name, Key: 'dir/reply.bin' }), { expiresIn: 60 });
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'reply bytes');
    const ranged = await fetch(url, { headers: { Range: 'bytes=0-4' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'reply');
    const unsigned = await fetch(url.split('?')[0]!);
    assert.equal(unsigned.status, 403, 'the object itself is private');
    await unsigned.arrayBuffer();
  });

  test('a restarted gateway refuses, then serves the same data', async (t) => {
    if (!requireServices(t, ['s3-restart'])) return;
    const b = await freshBucket();
    t.after(() => b.cleanup());
    await b.client.send(new PutObjectCommand({ Bucket: b.name, Key: 'kept', Body: 'survives' }));
    const gw = await privateRgw();
    t.after(() => gw.stop());
    const s3 = s3Client(gw.endpoint);
    assert.equal(await (await s3.send(new GetObjectCommand({ Bucket: b.name, Key: 'kept' }))).Body!.transformToString(), 'survives');
    let refusedWhileDown = false;
    await gw.restart({
      downMs: 300,
      whileDown: async () => {
        refusedWhileDown = await fetch(gw.endpoint + '/', { signal: AbortSignal.timeout(2000) }).then(
          () => false,
          () => true,
        );
      },
    });
    assert.ok(refusedWhileDown, 'the gateway refuses connections while down');
    const got = await s3.send(new GetObjectCommand({ Bucket: b.name, Key: 'kept' }));
    assert.equal(await got.Body!.transformToString(), 'survives');
    s3.destroy();
  });
});

describe('HAProxy', () => {
  test('round-robins per connection, without affinity, and drops a dead node', async (t) => {
    if (!requireHaproxy(t)) return;
    const servers: Server[] = [];
    const ports: number[] = [];
    for (const name of ['A', 'B']) {
      // health checks connect and hang up at once: ignore their resets
      const srv = createServer((sock) => {
        sock.on('error', () => undefined);
        sock.end(name);
      });
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
      const addr = srv.address();
      ports.push(typeof addr === 'object' && addr ? addr.port : 0);
      servers.push(srv);
    }
    const lb = await startHaproxy(ports);
    t.after(async () => {
      await lb.stop();
      for (const s of servers) s.close();
    });
    const ask = () =>
      new Promise<string>((res, rej) => {
        let got = '';
        const s = connect({ host: '127.0.0.1', port: lb.port });
        s.setTimeout(3000, () => s.destroy(new Error('timeout')));
        s.on('data', (d) => (got += d.toString()));
        s.on('end', () => res(got));
        s.on('error', rej);
      });
    // (until both have passed their first health check: a node that failed it is out for a moment)
    const warmUp: string[] = [];
    for (let i = 0; i < 40 && !(warmUp.includes('A') && warmUp.includes('B')); i++) {
      warmUp.push(await ask());
      if (!warmUp.includes('B') || !warmUp.includes('A')) await new Promise((r) => setTimeout(r, 100));
    }
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(await ask());
    assert.deepEqual(new Set(answers), new Set(['A', 'B']), `both nodes answer: ${answers.join('')}`);
    for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], `alternates per connection: ${answers.join('')}`);

    // kill B: within ~1-2 s every connection goes to A
    const down = Date.now();
    await new Promise<void>((res) => {
      servers[1]!.close(() => res());
    });
    let onlyA = false;
    for (let i = 0; i < 100 && Date.now() - down < 5000; i++) {
      const batch = [await ask().catch(() => 'x'), await ask().catch(() => 'x'), await ask().catch(() => 'x')];
      if (batch.every((a) => a === 'A')) {
        onlyA = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(onlyA, `a dead node is taken out within 5 s (haproxy output: ${lb.output()})`);
  });
});
