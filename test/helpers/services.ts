// Access to the real PostgreSQL and Ceph RADOS Gateway that scripts/run-tests.mjs starts once per
// test run (see scripts/services/*.sh). Everything is read from the environment it exports; a test
// whose service is absent skips loudly through requireServices / servicesSkipReason.
import { deadPort } from './dead-port.js';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import pg from 'pg';

/** Connection info of the shared PostgreSQL cluster. */
export interface PostgresService {
  /** `postgres://user:pass@127.0.0.1:PORT/db`, a superuser. */
  url: string;
  port: number;
  /** Cluster folder, when this run started it (needed for restarts). */
  dir: string | undefined;
}

/** Connection info of the shared RADOS Gateway (S3). */
export interface S3Service {
  /** `http://127.0.0.1:PORT`; use path-style addressing. */
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Ceph cluster folder, when this run started it (needed for restarts). */
  cephDir: string | undefined;
}

/**
 * A service a test can require: the two services themselves, or the ability to restart them
 * (present only when this run started them).
 */
export type ServiceName = 'postgres' | 's3' | 'postgres-restart' | 's3-restart';

/** How long a service stays down in a restart, and what to do while it is down. */
export interface RestartOptions {
  /** Milliseconds between the stop and the start (default 0). */
  downMs?: number;
  /** Runs while the service is down, after the stop, before the wait of `downMs` ends. */
  whileDown?: () => Promise<void>;
}

const PG_SCRIPT_TIMEOUT_MS = 60_000;
const CEPH_SCRIPT_TIMEOUT_MS = 120_000;

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/**
 * The shared PostgreSQL cluster, or undefined when this run has none.
 * @example
 * const pgs = postgresService();
 * if (pgs) new pg.Client({ connectionString: pgs.url });
 */
export function postgresService(): PostgresService | undefined {
  const url = process.env.BITS_TEST_PG_URL;
  if (!url) return undefined;
  return { url, port: portOf(url), dir: process.env.BITS_TEST_PG_DIR || undefined };
}

/**
 * The shared RADOS Gateway, or undefined when this run has none.
 * @example
 * const s3 = s3Service();
 * if (s3) new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true });
 */
export function s3Service(): S3Service | undefined {
  const endpoint = process.env.BITS_TEST_S3_ENDPOINT;
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return {
    endpoint,
    port: portOf(endpoint),
    region: process.env.BITS_TEST_S3_REGION || 'us-east-1',
    accessKeyId,
    secretAccessKey,
    cephDir: process.env.BITS_TEST_CEPH_DIR || undefined,
  };
}

function present(name: ServiceName): boolean {
  switch (name) {
    case 'postgres':
      return postgresService() !== undefined;
    case 's3':
      return s3Service() !== undefined;
    case 'postgres-restart':
      return postgresService()?.dir !== undefined;
    case 's3-restart':
      return s3Service()?.cephDir !== undefined;
  }
}

/**
 * Why a test needing `names` must skip (also written to stderr, loudly), or false when all are
 * there. For `test(name, { skip: servicesSkipReason([...]) }, fn)` and `describe` options.
 * @example
 * test('records survive reopen', { skip: servicesSkipReason(['postgres']) }, async () => {});
 */
export function servicesSkipReason(names: readonly ServiceName[]): string | false {
  const missing = names.filter((n) => !present(n));
  if (missing.length === 0) return false;
  const msg =
    `SKIPPED: needs ${missing.join(', ')}, which this run does not have ` +
    `(run through \`npm test\` / scripts/run-tests.mjs with the services installed: bash scripts/services/install.sh)`;
  process.stderr.write(`\n!!! ${msg}\n\n`);
  return msg;
}

/**
 * Skips the test loudly (t.skip with a message and a stderr line) when one of `names` is absent.
 * Returns true when the test may go on.
 * @example
 * test('lease', async (t) => {
 *   if (!requireServices(t, ['postgres', 's3'])) return;
 * });
 */
export function requireServices(t: TestContext, names: readonly ServiceName[]): boolean {
  const reason = servicesSkipReason(names);
  if (reason === false) return true;
  t.skip(reason);
  return false;
}

function scriptsDir(): string {
  if (process.env.BITS_TEST_SERVICES_SCRIPTS) return process.env.BITS_TEST_SERVICES_SCRIPTS;
  // dist/test/helpers/services.js → <root>/scripts/services
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'services');
}

function runScript(script: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile('bash', [join(scriptsDir(), script), ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script} ${args.join(' ')} failed: ${err.message}\n${String(stderr).trim()}`));
      else resolveRun(String(stdout));
    });
  });
}

/** Polls `probe` until it resolves true, at most `timeoutMs`. */
async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    if (await probe().catch(() => false)) return;
    if (Date.now() >= deadline) break;
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms`);
}

async function queryWorks(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function s3Answers(endpoint: string): Promise<boolean> {
  const res = await fetch(endpoint + '/', { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status === 200;
}

async function outage(stop: () => Promise<unknown>, start: () => Promise<unknown>, opts: RestartOptions): Promise<void> {
  const down = Date.now();
  await stop();
  if (opts.whileDown) await opts.whileDown();
  const rest = (opts.downMs ?? 0) - (Date.now() - down);
  if (rest > 0) await sleep(rest);
  await start();
}

/**
 * Stops the shared PostgreSQL (fast shutdown: clients are cut off), waits `downMs`, starts it
 * again and waits until a query succeeds. Other test files running at the same time see the
 * outage too: prefer {@link privatePostgres} for outage tests.
 * @example
 * await restartPostgres({ downMs: 2000 });
 */
export async function restartPostgres(opts: RestartOptions = {}): Promise<void> {
  const s = postgresService();
  if (!s?.dir) throw new Error('restartPostgres: no BITS_TEST_PG_DIR (services not started by scripts/run-tests.mjs)');
  const dir = s.dir;
  await outage(
    () => runScript('postgres.sh', ['stop', dir, String(s.port)], PG_SCRIPT_TIMEOUT_MS),
    () => runScript('postgres.sh', ['start', dir, String(s.port)], PG_SCRIPT_TIMEOUT_MS),
    opts,
  );
  await waitFor(`PostgreSQL on 127.0.0.1:${s.port}`, () => queryWorks(s.url), 30_000);
}

/**
 * Stops the shared RADOS Gateway (the Ceph cluster and its data stay), waits `downMs`, starts it
 * again and waits until S3 answers. Other test files running at the same time see the outage too:
 * prefer {@link privateRgw} for outage tests.
 * @example
 * await restartRgw({ downMs: 2000 });
 */
export async function restartRgw(opts: RestartOptions = {}): Promise<void> {
  const s = s3Service();
  if (!s?.cephDir) throw new Error('restartRgw: no BITS_TEST_CEPH_DIR (services not started by scripts/run-tests.mjs)');
  await restartGateway(s.cephDir, s.port, s.endpoint, opts);
}

async function restartGateway(cephDir: string, port: number, endpoint: string, opts: RestartOptions): Promise<void> {
  await outage(
    () => runScript('ceph.sh', ['stop-rgw', cephDir, String(port)], CEPH_SCRIPT_TIMEOUT_MS),
    () => runScript('ceph.sh', ['start-rgw', cephDir, String(port)], CEPH_SCRIPT_TIMEOUT_MS),
    opts,
  );
  await waitFor(`RGW on ${endpoint}`, () => s3Answers(endpoint), 30_000);
}

/** A PostgreSQL cluster of one test's own, to restart without disturbing other tests. */
export interface PrivatePostgres {
  url: string;
  port: number;
  /** Stop, wait `downMs`, start, wait until a query succeeds. */
  restart(opts?: RestartOptions): Promise<void>;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts a PostgreSQL cluster of the caller's own (about 1.5 s) on a free port, for outage tests.
 * Needs PostgreSQL installed ('postgres-restart' tells whether this run could start one).
 * @example
 * const db = await privatePostgres();
 * try { await db.restart({ downMs: 1000 }); } finally { await db.stop(); }
 */
export async function privatePostgres(): Promise<PrivatePostgres> {
  const base = process.env.BITS_TEST_SERVICES_DIR || tmpdir();
  const dir = mkdtempSync(join(base, 'pg-private-'));
  chmodSync(dir, 0o755);
  const port = await deadPort();
  let url: string;
  try {
    const out = await runScript('postgres.sh', ['start', dir, String(port)], PG_SCRIPT_TIMEOUT_MS);
    const m = /BITS_TEST_PG_URL=(\S+)/.exec(out);
    if (!m?.[1]) throw new Error(`postgres.sh start printed no URL: ${out}`);
    url = m[1];
  } catch (e) {
    await runScript('postgres.sh', ['stop', dir, String(port)], PG_SCRIPT_TIMEOUT_MS).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url,
    port,
    async restart(opts: RestartOptions = {}) {
      await outage(
        () => runScript('postgres.sh', ['stop', dir, String(port)], PG_SCRIPT_TIMEOUT_MS),
        () => runScript('postgres.sh', ['start', dir, String(port)], PG_SCRIPT_TIMEOUT_MS),
        opts,
      );
      await waitFor(`PostgreSQL on 127.0.0.1:${port}`, () => queryWorks(url), 30_000);
    },
    async stop() {
      await runScript('postgres.sh', ['stop', dir, String(port)], PG_SCRIPT_TIMEOUT_MS).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A RADOS Gateway of one test's own on the shared Ceph cluster (same data, same user). */
export interface PrivateRgw {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** Stop this gateway, wait `downMs`, start it, wait until S3 answers. */
  restart(opts?: RestartOptions): Promise<void>;
  /** Stops this gateway (the cluster and the shared gateway go on). */
  stop(): Promise<void>;
}

/**
 * Starts a second gateway on the shared Ceph cluster on a free port (about 1–3 s), so an outage
 * test can restart "S3" without cutting off other tests. Buckets and objects are shared with
 * {@link s3Service}; the same keys work. Needs 's3-restart'.
 * @example
 * const gw = await privateRgw();
 * try { await gw.restart({ downMs: 1000 }); } finally { await gw.stop(); }
 */
export async function privateRgw(): Promise<PrivateRgw> {
  const s = s3Service();
  if (!s?.cephDir) throw new Error('privateRgw: no BITS_TEST_CEPH_DIR (services not started by scripts/run-tests.mjs)');
  const cephDir = s.cephDir;
  const port = await deadPort();
  const endpoint = `http://127.0.0.1:${port}`;
  await runScript('ceph.sh', ['start-rgw', cephDir, String(port)], CEPH_SCRIPT_TIMEOUT_MS);
  return {
    endpoint,
    port,
    restart: (opts: RestartOptions = {}) => restartGateway(cephDir, port, endpoint, opts),
    async stop() {
      await runScript('ceph.sh', ['stop-rgw', cephDir, String(port)], CEPH_SCRIPT_TIMEOUT_MS);
    },
  };
}

function uniqueSuffix(): string {
  return `${process.pid.toString(36)}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** A database of one test's own on the shared cluster. */
export interface FreshDatabase {
  /** URL of the new database (same user as the shared cluster's, its owner). */
  url: string;
  name: string;
  /** Drops the database, cutting off any client still connected. */
  drop(): Promise<void>;
}

/**
 * Creates a new empty database with a unique name on the shared PostgreSQL cluster.
 * @example
 * const db = await freshDatabase();
 * t.after(() => db.drop());
 */
export async function freshDatabase(): Promise<FreshDatabase> {
  const s = postgresService();
  if (!s) throw new Error('freshDatabase: no BITS_TEST_PG_URL (use requireServices(t, ["postgres"]) first)');
  const name = `bits_t_${uniqueSuffix()}`;
  const admin = new pg.Client({ connectionString: s.url, connectionTimeoutMillis: 10_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const u = new URL(s.url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: s.url, connectionTimeoutMillis: 10_000 });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * An S3 client for the shared gateway (path-style, the run's keys), or for `endpoint` (e.g. a
 * {@link privateRgw}).
 * @example
 * const s3 = s3Client();
 */
export function s3Client(endpoint?: string): S3Client {
  const s = s3Service();
  if (!s) throw new Error('s3Client: no BITS_TEST_S3_ENDPOINT (use requireServices(t, ["s3"]) first)');
  return new S3Client({
    endpoint: endpoint ?? s.endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
  });
}

/** A bucket of one test's own. */
export interface FreshBucket {
  /** Unique bucket name (lower case, 3–63 characters). */
  name: string;
  /** A client for the shared gateway. */
  client: S3Client;
  /** Aborts its multipart uploads, deletes its objects and the bucket. */
  cleanup(): Promise<void>;
}

/**
 * Creates a bucket with a unique name on the shared gateway.
 * @example
 * const b = await freshBucket();
 * t.after(() => b.cleanup());
 */
export async function freshBucket(prefix = 'bits-t'): Promise<FreshBucket> {
  const client = s3Client();
  const name = `${prefix}-${uniqueSuffix()}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return {
    name,
    client,
    async cleanup() {
      await emptyAndDeleteBucket(client, name);
    },
  };
}

async function emptyAndDeleteBucket(client: S3Client, bucket: string): Promise<void> {
  for (let page = 0; page < 1000; page++) {
    const mp = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    const uploads = mp.Uploads ?? [];
    for (const u of uploads) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
    }
    if (uploads.length === 0 || !mp.IsTruncated) break;
  }
  for (let page = 0; page < 1000; page++) {
    const list = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (list.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}
