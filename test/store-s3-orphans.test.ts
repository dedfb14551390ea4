// What ended sessions leave in the bucket of sessions (a superseded request that finished its write
// after its session was closed) is collected by the sweep: only old objects, only of sessions that
// have no record, a bounded number of sessions per pass.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { newSessionId } from '../src/protocol/session-id.js';
import { Sessions } from '../src/server/sessions.js';
import { PostgresRecordStore } from '../src/store/postgres/postgres-record-store.js';
import { S3ByteStore } from '../src/store/s3/s3-byte-store.js';
import { sampleRecord } from '../src/store/testing/harness.js';
import { freshBucket, freshDatabase, requireServices } from './helpers/services.js';
import type { FreshBucket } from './helpers/services.js';

const MINUTE = 60_000;
const silent = pino({ level: 'silent' });

async function keys(b: FreshBucket): Promise<string[]> {
  const listed = await b.client.send(new ListObjectsV2Command({ Bucket: b.name, Prefix: 'sessions/' }));
  return (listed.Contents ?? []).map((o) => o.Key!).sort();
}

async function put(b: FreshBucket, key: string): Promise<void> {
  await b.client.send(new PutObjectCommand({ Bucket: b.name, Key: key, Body: 'left behind' }));
}

describe('S3 orphan collection', () => {
  it('the sweep deletes the old objects of sessions without a record, and nothing else', async (t) => {
    if (!requireServices(t, ['postgres', 's3'])) return;
    const db = await freshDatabase();
    const bucket = await freshBucket('bits-orphans');
    const records = await PostgresRecordStore.open({ url: db.url, node: 'orphans-test' });
    t.after(async () => {
      await records.close();
      await Promise.all([db.drop(), bucket.cleanup()]);
    });
    const bytes = new S3ByteStore({ client: bucket.client, bucket: bucket.name, prefix: 'sessions/' });
    const live = sampleRecord({ timeoutMs: 60 * MINUTE }); // (not expired by the later sweep)
    await records.create(live);
    const dead = newSessionId();
    const liveKey = `${bytes.sessionPrefix(live.id)}tail/000000000000000-a`;
    const deadKeys = [`${bytes.sessionPrefix(dead)}tail/000000025165824-b`, `${bytes.sessionPrefix(dead)}reply`];
    const foreign = 'sessions/not-a-session/x';
    for (const key of [liveKey, ...deadKeys, foreign]) await put(bucket, key);

    // Not old enough yet: a request of the session might still be writing.
    assert.equal(await new Sessions(records, bytes, silent).sweep(), 0);
    assert.deepEqual(await keys(bucket), [liveKey, ...deadKeys, foreign].sort());

    // Past the grace: the dead session's objects go; the live one's and what is not a session's stay.
    const later = new Sessions(records, bytes, silent, { now: () => Date.now() + 11 * MINUTE });
    await later.sweep();
    assert.deepEqual(await keys(bucket), [liveKey, foreign].sort());
  });

  it('a pass looks at a bounded number of sessions and the next goes on where it stopped', async (t) => {
    if (!requireServices(t, ['s3'])) return;
    const bucket = await freshBucket('bits-orphans');
    t.after(() => bucket.cleanup());
    const bytes = new S3ByteStore({ client: bucket.client, bucket: bucket.name, prefix: 'sessions/' });
    const dead = [newSessionId(), newSessionId(), newSessionId()];
    for (const id of dead) await put(bucket, `${bytes.sessionPrefix(id)}tail/x`);
    const seen: string[] = [];
    const isLive = async (id: string) => {
      seen.push(id);
      return false;
    };
    const before = Date.now() + MINUTE;
    assert.equal(await bytes.collectOrphans(isLive, { before, limit: 2 }), 2);
    assert.equal((await keys(bucket)).length, 1);
    assert.equal(await bytes.collectOrphans(isLive, { before, limit: 2 }), 1);
    assert.deepEqual(await keys(bucket), []);
    // Each session was looked at once, in key order, by id (`{GUID}`).
    const slugs = dead.map((id) => bytes.sessionPrefix(id).slice('sessions/'.length, -1)).sort();
    assert.deepEqual(seen, slugs.map((s) => `{${s}}`));
  });
});
