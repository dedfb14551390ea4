// Farm mode under faults, with real processes: nodes of `bits serve` (records in PostgreSQL, bytes
// in RGW) behind HAProxy, and the project's client uploading through it. A node SIGKILLed mid-upload
// and restarted, a node SIGSTOPped while it holds the session's lease (superseded, then continued:
// its late writes are fenced), PostgreSQL and RGW restarted mid-upload: every upload completes and
// the object in RGW is exactly the source.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { randomFile } from './helpers/client-files.js';
import { objectSha256, sessionLease, sessionRow, startFarm, startUpload } from './helpers/farm.js';
import type { Farm, FarmOptions, UploadRun } from './helpers/farm.js';
import { requireHaproxy } from './helpers/haproxy.js';
import { freshBucket, freshDatabase, privatePostgres, privateRgw, requireServices } from './helpers/services.js';
import type { FreshBucket, ServiceName } from './helpers/services.js';
import { tempDir } from './helpers/temp-dir.js';

const MiB = 1024 * 1024;
const FRAGMENT = MiB;
/** A new connection per request, so that every node serves part of the upload. */
const CLOSE = ['--header', 'Connection: close'];

/** Cleanups run last-in first-out after the test, also when it fails or times out. */
function cleanups(t: TestContext): (undo: () => Promise<unknown>) => void {
  const stack: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const undo of stack.reverse()) {
      await undo().catch((err: unknown) => process.stderr.write(`farm-faults cleanup: ${String(err)}\n`));
    }
  });
  return (undo) => stack.push(undo);
}

/** True when the test may go on: the services and HAProxy are there (else skipped loudly). */
function ready(t: TestContext, services: readonly ServiceName[]): boolean {
  return requireServices(t, services) && requireHaproxy(t);
}

/** A bucket, a source file of `size` random bytes, and a journal dir for the client. */
interface Fixture {
  bucket: FreshBucket;
  file: string;
  sha: string;
  stateDir: string;
}

async function fixture(t: TestContext, defer: ReturnType<typeof cleanups>, size: number): Promise<Fixture> {
  const dir = await tempDir('bits-farm-faults-');
  defer(() => dir.cleanup());
  const bucket = await freshBucket('bits-faults');
  defer(() => bucket.cleanup());
  const file = join(dir.path, 'source.bin');
  const sha = await randomFile(file, size);
  t.diagnostic(`source: ${size / MiB} MiB, sha256 ${sha}`);
  return { bucket, file, sha, stateDir: join(dir.path, 'jobs') };
}

async function farmFor(defer: ReturnType<typeof cleanups>, o: FarmOptions): Promise<Farm> {
  const farm = await startFarm(o);
  defer(() => farm.stop());
  return farm;
}

function upload(defer: ReturnType<typeof cleanups>, f: Fixture, url: string, args: string[]): UploadRun {
  const run = startUpload(f.file, url, { stateDir: f.stateDir, args });
  defer(() => run.stop());
  return run;
}

/** The last log lines of every node, for assertion messages. */
function logs(farm: Farm): string {
  return Array.from({ length: farm.size }, (_, i) => `--- node ${i}\n${farm.output(i).split('\n').slice(-20).join('\n')}`).join('\n');
}

/** The last request log line of node `i` about session `id`: its packet, range and outcome. */
function lastRequest(farm: Farm, i: number, id: string): string {
  for (const line of farm.output(i).split('\n').reverse()) {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line.slice(line.indexOf(' ') + 1)) as Record<string, unknown>;
    } catch {
      continue; // not a log line (stderr)
    }
    if (entry.msg === 'request' && entry.session === id) return `${String(entry.packet)} ${String(entry.range ?? '')} → ${String(entry.status)}`;
  }
  return 'none logged';
}

/** What the client retried, e.g. `2 × BITS_CLIENT_SERVER_ERROR 503, 1 × BITS_CLIENT_NETWORK`. */
function retrySummary(run: UploadRun): string {
  const counts = new Map<string, number>();
  for (const e of run.retryErrors()) {
    const what = `${String(e.code)}${e.status === undefined ? '' : ` ${String(e.status)}`}`;
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts].map(([what, n]) => `${n} × ${what}`).join(', ') || 'none';
}

/** The session's lease holder, polled while the upload runs (a lease lives while a packet is handled). */
async function awaitLeaseHolder(farm: Farm, id: string, timeoutMs: number): Promise<{ node: number; token: number } | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const holder = await farm.leaseHolder(id);
    if (holder) return holder;
    await sleep(5);
  }
  return undefined;
}

/**
 * Waits for the client to end and checks it succeeded without the server ever losing the session,
 * and what the object in the bucket holds.
 */
async function assertCompleted(t: TestContext, run: UploadRun, farm: Farm, f: Fixture, name: string): Promise<void> {
  const exit = await run.done;
  t.diagnostic(`client retries: ${retrySummary(run)}`);
  assert.equal(exit.code, 0, `the client failed (${exit.signal ?? exit.code}): ${exit.stderr}\n${logs(farm)}`);
  const restarts = run.events.filter((e) => e.event === 'restart');
  assert.deepEqual(restarts, [], 'the server never lost the session');
  assert.equal(await objectSha256(f.bucket.client, f.bucket.name, farm.key(name)), f.sha, 'the object is exactly the source');
}

/** Every retry was of a transient failure an outage explains: a lost connection or 503. */
function assertOnlyTransient(run: UploadRun): void {
  const errors = run.retryErrors();
  assert.ok(errors.length >= 1, 'the client noticed the outage (at least one retry)');
  for (const e of errors) {
    const expected = e.code === 'BITS_CLIENT_NETWORK' || (e.code === 'BITS_CLIENT_SERVER_ERROR' && e.status === 503);
    assert.ok(expected && e.kind === 'transient', `a transient error: ${JSON.stringify(e)}`);
  }
}

describe('farm faults', () => {
  it('a node SIGKILLed mid-fragment and restarted: the upload completes, the object is the source', async (t) => {
    if (!ready(t, ['postgres', 's3'])) return;
    const defer = cleanups(t);
    const size = 200 * MiB;
    const f = await fixture(t, defer, size);
    const db = await freshDatabase();
    defer(() => db.drop());
    const farm = await farmFor(defer, { nodes: 3, pgUrl: db.url, bucket: f.bucket.name });
    const run = upload(defer, f, farm.url('kill.bin'), CLOSE);

    await run.until('40% acknowledged', () => run.bytesDone() >= 0.4 * size, 120_000);
    // Mid-fragment for certain: the holder is stopped while it holds the lease (a fragment takes a
    // few milliseconds), then killed.
    const holder = await stopLeaseHolder(farm, run.sessionId()!);
    const victim = holder.node;
    const at = run.bytesDone();
    await farm.kill(victim, 'SIGKILL');
    t.diagnostic(`SIGKILLed node ${victim} holding lease ${holder.token} at ${at} bytes`);
    await sleep(3000);
    await farm.restart(victim);

    await assertCompleted(t, run, farm, f, 'kill.bin');
    assert.ok(at < size, `killed mid-upload (${at} of ${size} bytes acknowledged)`);
    assert.ok(run.retryErrors().length >= 1, 'the client noticed the kill (at least one retry)');
  });

  it('a node SIGSTOPped holding the lease is superseded; continued, its late writes change nothing', async (t) => {
    if (!ready(t, ['postgres', 's3'])) return;
    const defer = cleanups(t);
    const size = 64 * MiB;
    const f = await fixture(t, defer, size);
    const db = await freshDatabase();
    defer(() => db.drop());
    // The client's request idle timeout (--idle-timeout 5) gives up the request stuck on the stopped
    // node, and the client retries on a new connection. It keeps that connection alive, so after the
    // retry it stays on a running node (HAProxy still sends new connections to the stopped one: its
    // port accepts them).
    const farm = await farmFor(defer, { nodes: 3, pgUrl: db.url, bucket: f.bucket.name, leaseTtl: '3s' });
    const name = 'stall.bin';
    const run = upload(defer, f, farm.url(name), ['--idle-timeout', '5']);

    await run.until('a third acknowledged', () => run.bytesDone() >= size / 3, 90_000);
    const id = run.sessionId()!;
    const stopped = await stopLeaseHolder(farm, id);
    const stalledAt = run.bytesDone();
    t.diagnostic(`SIGSTOPped node ${stopped.node} holding lease ${stopped.token} at ${stalledAt} bytes`);
    await run.until('progress past the stalled fragment', () => run.bytesDone() > stalledAt + FRAGMENT, 60_000);
    const taken = await sessionLease(db.url, id);
    assert.ok(taken === undefined || taken.token > stopped.token, `another request took the session over: ${JSON.stringify(taken)}`);

    await assertCompleted(t, run, farm, f, name);
    const key = farm.key(name);
    const head = await f.bucket.client.send(new HeadObjectCommand({ Bucket: f.bucket.name, Key: key }));

    await farm.kill(stopped.node, 'SIGCONT');
    await settle(farm, stopped.node);
    assert.equal(await sessionRow(db.url, id), undefined, 'the session is closed');
    assert.equal(await sessionLease(db.url, id), undefined, 'nobody holds its lease');
    const after = await f.bucket.client.send(new HeadObjectCommand({ Bucket: f.bucket.name, Key: key }));
    assert.equal(after.ETag, head.ETag, 'the object was not written again');
    assert.equal(await objectSha256(f.bucket.client, f.bucket.name, key), f.sha, 'the object is still exactly the source');
    const left = await f.bucket.client.send(new ListObjectsV2Command({ Bucket: f.bucket.name, Prefix: 'sessions/' }));
    t.diagnostic(`the stopped node's last request of the session: ${lastRequest(farm, stopped.node, id)}`);
    const completedAt = head.LastModified?.getTime() ?? 0;
    const leftovers = (left.Contents ?? []).map((o) => `${o.Key} (written ${((o.LastModified?.getTime() ?? 0) - completedAt) / 1000} s after the object)`);
    t.diagnostic(`session objects left after the stopped node went on: ${leftovers.join(', ') || 'none'}`);
  });

  it('PostgreSQL restarted mid-upload: only transient errors, the object is the source', async (t) => {
    if (!ready(t, ['postgres-restart', 's3'])) return;
    const defer = cleanups(t);
    const size = 64 * MiB;
    const f = await fixture(t, defer, size);
    const db = await privatePostgres();
    defer(() => db.stop());
    const farm = await farmFor(defer, { nodes: 2, pgUrl: db.url, bucket: f.bucket.name });
    const run = upload(defer, f, farm.url('pg-outage.bin'), CLOSE);

    await run.until('30% acknowledged', () => run.bytesDone() >= 0.3 * size, 90_000);
    const at = run.bytesDone();
    await db.restart({ downMs: 2000 });
    t.diagnostic(`PostgreSQL restarted at ${at} bytes`);

    await assertCompleted(t, run, farm, f, 'pg-outage.bin');
    assertOnlyTransient(run);
  });

  it('RGW restarted mid-upload: only transient errors, the object is the source', async (t) => {
    if (!ready(t, ['postgres', 's3-restart'])) return;
    const defer = cleanups(t);
    const size = 64 * MiB;
    const f = await fixture(t, defer, size);
    const db = await freshDatabase();
    defer(() => db.drop());
    const gw = await privateRgw();
    defer(() => gw.stop());
    const farm = await farmFor(defer, { nodes: 2, pgUrl: db.url, s3Endpoint: gw.endpoint, bucket: f.bucket.name });
    const run = upload(defer, f, farm.url('rgw-outage.bin'), CLOSE);

    await run.until('30% acknowledged', () => run.bytesDone() >= 0.3 * size, 90_000);
    const at = run.bytesDone();
    await gw.restart({ downMs: 2000 });
    t.diagnostic(`RGW restarted at ${at} bytes`);

    await assertCompleted(t, run, farm, f, 'rgw-outage.bin');
    assertOnlyTransient(run);
  });
});

/**
 * SIGSTOPs the node holding the session's lease, and makes sure it was stopped holding it (the
 * lease row still names it under the same token a moment later): else it continues it and tries
 * again, a bounded number of times.
 */
async function stopLeaseHolder(farm: Farm, id: string): Promise<{ node: number; token: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const holder = await awaitLeaseHolder(farm, id, 5000);
    if (!holder) continue;
    await farm.kill(holder.node, 'SIGSTOP');
    await sleep(300);
    const still = await farm.leaseHolder(id);
    if (still?.node === holder.node && still.token === holder.token) return holder;
    await farm.kill(holder.node, 'SIGCONT');
  }
  throw new Error(`could not stop the holder of ${id}'s lease while it held it`);
}

/**
 * Lets a continued node settle: it answers HTTP again (its event loop runs), then gets a little
 * longer than its lease heartbeat (leaseTtl 3 s: every second) to finish what it was doing.
 */
async function settle(farm: Farm, node: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let i = 0; i < 100; i++) {
    const answered = await fetch(`http://127.0.0.1:${farm.nodePort(node)}/`, { signal: AbortSignal.timeout(1000) })
      .then(async (r) => (await r.arrayBuffer(), true))
      .catch(() => false);
    if (answered) break;
    if (Date.now() >= deadline) throw new Error(`node ${node} does not answer after SIGCONT\n${farm.output(node)}`);
    await sleep(100);
  }
  await sleep(3000);
}
