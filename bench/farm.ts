/**
 * Farm-mode benchmark: BITS nodes (`bits serve --config farm.json`, records in PostgreSQL, bytes in
 * S3) against the S3 SDK's own multipart uploader on the same Ceph RADOS Gateway, in one run.
 *
 *   node scripts/run-tests.mjs --exec node dist/bench/farm.js   (the last step of `npm run bench`)
 *
 * The test runner starts PostgreSQL and Ceph RGW and exports their addresses (BITS_TEST_PG_URL,
 * BITS_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...); without them the benchmark says so loudly and
 * exits 0 with no figures.
 *
 * 1. One upload of BENCH_FARM_SIZE_MB MiB (default 1024) through ONE node, sent as BITS fragments
 *    by a raw client (bench/upload-clients.ts), with 8 MiB and with 1 MiB fragments; the same bytes
 *    with `@aws-sdk/lib-storage` `Upload` (8 MiB parts) with queueSize 4 and with queueSize 1 (one
 *    part in flight, like a BITS client that waits for each Ack). Rounds alternate the order.
 * 2. BENCH_FARM_CONCURRENCY (default 30) concurrent uploads of BENCH_FARM_CONCURRENT_MB MiB
 *    (default 32), 8 MiB fragments, one connection and session each: over one node, then over
 *    three nodes behind HAProxy (round-robin per connection; without HAProxy the clients are spread
 *    over the three node ports directly).
 * 3. Peak RSS (VmHWM) of every node, one fresh node process per measured configuration.
 *
 * Every object is checked (size and multipart ETag, i.e. the MD5 of each 8 MiB part) and deleted
 * after its measurement; when the run knows the Ceph folder, RGW's garbage collector is run then,
 * so that the RAM-backed OSD gets the space back. Bytes are generated from a 16 MiB random pool,
 * never held whole. The exit code is non-zero only when an upload fails or an object is wrong.
 *
 * Environment: BENCH_FARM_SIZE_MB, BENCH_FARM_ROUNDS (rounds of [1] and of [2], default 2; medians are reported),
 * BENCH_FARM_CONCURRENCY, BENCH_FARM_CONCURRENT_MB, BENCH_KEEP=1 (keep the temp folder).
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createS3Client } from '../src/store/s3/index.js';
import { haproxyInstalled, startHaproxy } from '../test/helpers/haproxy.js';
import { freshBucket, freshDatabase, postgresService, s3Service } from '../test/helpers/services.js';
import type { FreshBucket, FreshDatabase, S3Service } from '../test/helpers/services.js';
import { cpuSeconds, peakRss, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { bitsUpload } from './upload-clients.js';
import type { UploadPlan, UploadResult } from './upload-clients.js';
import { envInt } from './env-int.js';

const MiB = 1024 * 1024;
/** Part size of the nodes and of lib-storage, and the unit in which test bytes are laid out. */
const PART = 8 * MiB;
const SMALL_FRAGMENT = 1 * MiB;
const LIB_QUEUE = 4;
const RATIO_TARGET = 0.8;
const NODES = 3;


const SIZE = envInt('BENCH_FARM_SIZE_MB', 1024) * MiB;
const ROUNDS = envInt('BENCH_FARM_ROUNDS', 2);
const CONCURRENCY = envInt('BENCH_FARM_CONCURRENCY', 30);
const CONCURRENT_SIZE = envInt('BENCH_FARM_CONCURRENT_MB', 32) * MiB;
const KEEP = process.env['BENCH_KEEP'] === '1';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

const log = (s: string): void => void process.stdout.write(`${s}\n`);
const mibps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mib = (bytes: number | undefined): string => (bytes === undefined ? 'n/a' : `${fmt(bytes / MiB)} MiB`);
function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
/** The middle value; the mean of the two middle ones for an even count (two rounds give their mean). */
function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---- test bytes ----

const pool = randomFillSync(Buffer.allocUnsafe(2 * PART));

/**
 * The bytes of upload `seed`: each 8 MiB block is a view of the pool at a page-aligned offset that
 * depends on the seed and the block, so that uploads differ and a mix-up shows in the ETag.
 * Chunks must not cross a block (fragments of 1 or 8 MiB at their own multiples never do).
 */
function contentOf(seed: number): UploadPlan['chunk'] {
  const slots = PART / 4096;
  return (offset, length) => {
    const inBlock = offset % PART;
    if (inBlock + length > PART) throw new Error(`a chunk at ${offset} of ${length} bytes crosses an 8 MiB block`);
    const start = ((seed * 7919 + Math.floor(offset / PART) * 104729) % slots) * 4096 + inBlock;
    return pool.subarray(start, start + length);
  };
}

/** The ETag S3 gives a multipart upload of these bytes in 8 MiB parts. */
function multipartEtag(total: number, chunk: UploadPlan['chunk']): string {
  const digests: Buffer[] = [];
  for (let o = 0; o < total; o += PART) digests.push(createHash('md5').update(chunk(o, Math.min(PART, total - o))).digest());
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}

/** The same bytes as a stream of 1 MiB views (lib-storage's Body). */
function contentStream(total: number, chunk: UploadPlan['chunk']): Readable {
  function* pieces(): Generator<Buffer> {
    for (let o = 0; o < total; o += SMALL_FRAGMENT) yield chunk(o, Math.min(SMALL_FRAGMENT, total - o));
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** One object the benchmark expects in the uploads bucket. */
interface Expected {
  key: string;
  size: number;
  etag: string;
}

// ---- the farm ----

interface Farm {
  configPath: string;
  s3: S3Service;
  db: FreshDatabase;
  sessions: FreshBucket;
  uploads: FreshBucket;
  /** Destination keys start with it (the vdir's destination prefix). */
  keyPrefix: string;
  /** The project's S3 client settings, as the nodes use them. */
  client: S3Client;
  /** radosgw pid, when the run knows the Ceph folder. */
  rgwPid: number | undefined;
}

async function makeFarm(dir: string, s3: S3Service): Promise<Farm> {
  const db = await freshDatabase();
  const sessions = await freshBucket('bits-bench-sessions');
  const uploads = await freshBucket('bits-bench-uploads');
  const keyPrefix = 'up/';
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    stateDir: join(dir, 'state'),
    store: {
      records: { type: 'postgres', url: db.url },
      bytes: { type: 's3', endpoint: s3.endpoint, region: s3.region, bucket: sessions.name, prefix: 'sessions/', forcePathStyle: true, partSize: '8MiB' },
    },
    vdirs: [{ path: '/uploads', destination: `s3://${uploads.name}/${keyPrefix}`, uploadEnabled: true, allowOverwrites: false, sessionTimeout: '1h' }],
  };
  await mkdir(config.stateDir, { recursive: true });
  const configPath = join(dir, 'farm.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const client = createS3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true });
  return { configPath, s3, db, sessions, uploads, keyPrefix, client, rgwPid: rgwPid(s3) };
}

function rgwPid(s3: S3Service): number | undefined {
  const file = s3.cephDir ? join(s3.cephDir, `rgw.${s3.port}.pid`) : undefined;
  if (!file || !existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** The gateway's `--rgw-frontends` argument (its tcp_nodelay setting weighs on every small answer). */
function rgwFrontend(pid: number | undefined): string {
  if (pid === undefined) return 'unknown';
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = args.indexOf('--rgw-frontends');
    return i >= 0 && args[i + 1] ? `"${args[i + 1]}"` : 'from its configuration';
  } catch {
    return 'unknown';
  }
}

async function dropFarm(farm: Farm, problems: string[]): Promise<void> {
  for (const [what, done] of [
    ['uploads bucket', () => farm.uploads.cleanup()],
    ['sessions bucket', () => farm.sessions.cleanup()],
    ['database', () => farm.db.drop()],
  ] as const) {
    await done().catch((err: unknown) => problems.push(`removing the ${what}: ${(err as Error).message}`));
  }
  farm.client.destroy();
}

/** A node process; `name` tells it apart in notes and in the table. */
interface NodeRun {
  child: Child;
  name: string;
}

async function startNode(farm: Farm, name: string): Promise<NodeRun> {
  const onOtherLine = (text: string): void => void process.stderr.write(`[node ${name}] ${text}\n`);
  const child = await startChild(CLI, ['serve', '--config', farm.configPath, '--port', '0'], (line) => line['msg'] === 'listening', {
    keepLines: true,
    onOtherLine,
    timeoutMs: 30_000,
  });
  return { child, name };
}

/** Stops a node, returning its peak RSS read just before; notes its log lines of level warn and up. */
async function stopNode(node: NodeRun, problems: string[]): Promise<number | undefined> {
  const rss = peakRss(node.child.pid);
  await stopChild(node.child);
  for (const line of node.child.lines) {
    if (typeof line['level'] === 'number' && line['level'] >= 40) problems.push(`node ${node.name} log: ${JSON.stringify(line).slice(0, 400)}`);
  }
  return rss;
}

// ---- checks and cleaning between measurements ----

/** Checks the objects (size, ETag); returns how many are right and pushes a failure for each other. */
async function verify(farm: Farm, expected: readonly Expected[], failures: string[]): Promise<number> {
  let ok = 0;
  for (const e of expected) {
    try {
      const head = await farm.client.send(new HeadObjectCommand({ Bucket: farm.uploads.name, Key: e.key }));
      if (head.ContentLength !== e.size) failures.push(`${e.key}: ${head.ContentLength} bytes, sent ${e.size}`);
      else if (head.ETag !== e.etag) failures.push(`${e.key}: ETag ${head.ETag}, expected ${e.etag}`);
      else ok++;
    } catch (err) {
      failures.push(`${e.key}: ${(err as Error).name} ${(err as Error).message}`);
    }
  }
  return ok;
}

/** Deletes every object of a bucket (bounded pages). */
async function emptyBucket(client: S3Client, bucket: string): Promise<number> {
  let deleted = 0;
  for (let page = 0; page < 100; page++) {
    const list = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (list.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    deleted += keys.length;
  }
  return deleted;
}

/** Runs RGW's garbage collector now (deleted data stays in the OSD until it runs), when the run knows the Ceph folder. */
function collectGarbage(s3: S3Service): Promise<void> {
  const dir = s3.cephDir;
  if (!dir) return Promise.resolve();
  const args = ['-c', join(dir, 'ceph.conf'), '-n', 'client.admin', '-k', join(dir, 'admin.keyring'), 'gc', 'process', '--include-all'];
  return new Promise((resolve, reject) => {
    execFile('radosgw-admin', args, { timeout: 120_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`radosgw-admin gc process: ${err.message} ${String(stderr).trim()}`));
      else resolve();
    });
  });
}

/** After a measurement: the uploads bucket emptied, leftovers of sessions noted, garbage collected. */
async function clean(farm: Farm, problems: string[]): Promise<void> {
  await emptyBucket(farm.client, farm.uploads.name);
  const left = await emptyBucket(farm.client, farm.sessions.name);
  if (left > 0) problems.push(`${left} object(s) were left in the sessions bucket after the uploads were committed`);
  await collectGarbage(farm.s3).catch((err: unknown) => problems.push((err as Error).message));
}

// ---- measurements ----

/** CPU seconds used by the nodes, RGW and this process during `work` (NaN: no such process or unknown). */
interface Cpu {
  node: number;
  rgw: number;
  bench: number;
}

/** What `work` resolved with, its wall time and the CPU it cost. */
interface Measured<T> {
  value: T;
  ms: number;
  cpu: Cpu;
}

async function measured<T>(farm: Farm, nodePids: readonly number[], work: () => Promise<T>): Promise<Measured<T>> {
  const sum = (pids: readonly number[]): number => (pids.length ? pids.reduce((a, p) => a + (cpuSeconds(p) ?? Number.NaN), 0) : Number.NaN);
  const rgwPids = farm.rgwPid === undefined ? [] : [farm.rgwPid];
  const node0 = sum(nodePids);
  const rgw0 = sum(rgwPids);
  const bench0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await work();
  const ms = performance.now() - t0;
  const bench = process.cpuUsage(bench0);
  const rgw = sum(rgwPids) - rgw0;
  return { value, ms, cpu: { node: sum(nodePids) - node0, rgw, bench: (bench.user + bench.system) / 1e6 } };
}

/** One way of uploading the single large object. */
interface SingleWay {
  label: string;
  /** Uploads `key`'s bytes; resolves with the fragment round trips when there are any. */
  upload(key: string, plan: UploadPlan): Promise<number[]>;
  /** Node processes involved (for CPU). */
  pids: number[];
}

function bitsWay(farm: Farm, node: NodeRun, fragmentSize: number): SingleWay {
  return {
    label: `BITS via 1 node, ${fragmentSize / MiB} MiB fragments`,
    pids: [node.child.pid],
    async upload(key, plan) {
      const r = await bitsUpload(node.child.port, `/uploads/${key.slice(farm.keyPrefix.length)}`, { ...plan, fragmentSize });
      return r.fragmentMs;
    },
  };
}

function libStorageWay(farm: Farm, queueSize: number): SingleWay {
  return {
    label: `lib-storage Upload, 8 MiB parts, queueSize ${queueSize}`,
    pids: [],
    async upload(key, plan) {
      const upload = new Upload({
        client: farm.client,
        params: { Bucket: farm.uploads.name, Key: key, Body: contentStream(plan.total, plan.chunk) },
        partSize: PART,
        queueSize,
      });
      await upload.done();
      return [];
    },
  };
}

interface SingleResult {
  label: string;
  speeds: number[];
  cpu: Cpu[];
  fragmentMs: number[];
  /** Uploads whose object was right. */
  verified: number;
}

async function singleUploads(farm: Farm, failures: string[], problems: string[]): Promise<{ results: SingleResult[]; rss: Map<string, number | undefined> }> {
  const plan: UploadPlan = { total: SIZE, fragmentSize: PART, chunk: contentOf(0) };
  const etag = multipartEtag(SIZE, plan.chunk);
  const large = await startNode(farm, 'single-8MiB');
  const small = await startNode(farm, 'single-1MiB').catch(async (err: unknown) => {
    await stopNode(large, problems);
    throw err;
  });
  const ways = [bitsWay(farm, large, PART), bitsWay(farm, small, SMALL_FRAGMENT), libStorageWay(farm, LIB_QUEUE), libStorageWay(farm, 1)];
  const results = ways.map((w): SingleResult => ({ label: w.label, speeds: [], cpu: [], fragmentMs: [], verified: 0 }));
  const rss = new Map<string, number | undefined>();
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? ways.map((_, i) => i) : ways.map((_, i) => ways.length - 1 - i);
      for (const i of order) {
        const way = ways[i]!;
        const key = `${farm.keyPrefix}single-r${round}-w${i}.bin`;
        const m = await measured(farm, way.pids, () => way.upload(key, plan));
        const ok = (await verify(farm, [{ key, size: SIZE, etag }], failures)) === 1;
        await clean(farm, problems);
        const r = results[i]!;
        r.speeds.push(mibps(SIZE, m.ms));
        r.cpu.push(m.cpu);
        r.fragmentMs.push(...m.value);
        if (ok) r.verified++;
        const gib = SIZE / 2 ** 30;
        const frag = m.value.length ? `, fragment p50 ${fmt(median(m.value))} / p90 ${fmt(quantile(m.value, 0.9))} ms` : '';
        log(
          `  round ${round} ${way.label.padEnd(42)}: ${fmt(mibps(SIZE, m.ms))} MiB/s (${fmt(m.ms / 1000, 2)} s; CPU s/GiB node ${fmt(m.cpu.node / gib, 2)}, ` +
            `rgw ${fmt(m.cpu.rgw / gib, 2)}, bench ${fmt(m.cpu.bench / gib, 2)}${frag})${ok ? ', verified' : ' VERIFY FAILED'}`,
        );
      }
    }
  } finally {
    rss.set(large.name, await stopNode(large, problems));
    rss.set(small.name, await stopNode(small, problems));
  }
  return { results, rss };
}

interface ConcurrentResult {
  label: string;
  bytes: number;
  ms: number;
  ok: number;
  uploadMs: number[];
  rss: (number | undefined)[];
  cpu: Cpu;
}

/** The concurrent uploads' bytes and ETags (computed once, used by every run). */
function concurrentPlans(): { plan: UploadPlan; etag: string }[] {
  return Array.from({ length: CONCURRENCY }, (_, i) => {
    const plan: UploadPlan = { total: CONCURRENT_SIZE, fragmentSize: PART, chunk: contentOf(i + 1) };
    return { plan, etag: multipartEtag(CONCURRENT_SIZE, plan.chunk) };
  });
}

/** Ports the clients connect to: HAProxy's when it runs, else the nodes' own, in turn. */
async function entryPorts(nodes: readonly NodeRun[]): Promise<{ ports: number[]; how: string; stop: () => Promise<void> }> {
  const direct = nodes.map((n) => n.child.port);
  if (nodes.length === 1) return { ports: direct, how: '1 node', stop: async () => undefined };
  if (!haproxyInstalled()) {
    log(`  (HAProxy is not installed: the clients are spread over the ${nodes.length} node ports directly)`);
    return { ports: direct, how: `${nodes.length} nodes, clients spread over their ports`, stop: async () => undefined };
  }
  const lb = await startHaproxy(direct);
  return { ports: [lb.port], how: `${nodes.length} nodes behind HAProxy`, stop: () => lb.stop() };
}

async function concurrentUploads(
  farm: Farm,
  nodeCount: number,
  plans: readonly { plan: UploadPlan; etag: string }[],
  failures: string[],
  problems: string[],
): Promise<ConcurrentResult> {
  const nodes: NodeRun[] = [];
  const rss: (number | undefined)[] = [];
  let run: { how: string; m: Measured<PromiseSettledResult<UploadResult>[]> };
  try {
    // One after the other: the first one migrates the database.
    for (let i = 1; i <= nodeCount; i++) nodes.push(await startNode(farm, `concurrent-${nodeCount}-${i}`));
    const entry = await entryPorts(nodes);
    const m = await measured(
      farm,
      nodes.map((n) => n.child.pid),
      () => Promise.allSettled(plans.map(({ plan }, i) => bitsUpload(entry.ports[i % entry.ports.length]!, `/uploads/concurrent-${nodeCount}-${i}.bin`, plan))),
    ).finally(() => entry.stop());
    run = { how: entry.how, m };
  } finally {
    for (const n of nodes) rss.push(await stopNode(n, problems));
  }
  const expected: Expected[] = [];
  const uploadMs: number[] = [];
  for (const [i, s] of run.m.value.entries()) {
    if (s.status === 'rejected') failures.push(`concurrent upload ${i} (${run.how}): ${(s.reason as Error).message}`);
    else {
      expected.push({ key: `${farm.keyPrefix}concurrent-${nodeCount}-${i}.bin`, size: CONCURRENT_SIZE, etag: plans[i]!.etag });
      uploadMs.push(s.value.ms);
    }
  }
  const ok = await verify(farm, expected, failures);
  await clean(farm, problems);
  return { label: run.how, bytes: ok * CONCURRENT_SIZE, ms: run.m.ms, ok, uploadMs, rss, cpu: run.m.cpu };
}

// ---- report ----

type Row = [string, string, string, string];

function printTable(rows: readonly Row[]): void {
  const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]): string => `${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padEnd(w[2]!)}  ${r[3]}`.trimEnd();
  log(line(['measure', 'result', 'target', '']));
  log(line(['-'.repeat(w[0]!), '-'.repeat(w[1]!), '-'.repeat(w[2]!), '----']));
  for (const r of rows) log(line(r));
}

/** Rows of one concurrent configuration over its rounds: median speed, all uploads' times, each node's highest peak. */
function concurrentRows(runs: readonly ConcurrentResult[]): Row[] {
  const gib = (CONCURRENCY * CONCURRENT_SIZE) / 2 ** 30;
  const uploadMs = runs.flatMap((c) => c.uploadMs);
  const rss = runs[0]!.rss.map((_, i) => Math.max(...runs.map((c) => c.rss[i] ?? Number.NaN)));
  const cpu = (f: (c: Cpu) => number): string => fmt(median(runs.map((c) => f(c.cpu))) / gib, 2);
  return [
    [`${CONCURRENCY} x ${CONCURRENT_SIZE / MiB} MiB concurrent, ${runs[0]!.label}, total`, `${fmt(concurrentSpeed(runs))} MiB/s`, '', ''],
    ['  per upload (p50 / p90)', `${fmt(median(uploadMs) / 1000, 2)} / ${fmt(quantile(uploadMs, 0.9) / 1000, 2)} s`, '', ''],
    ['  CPU s/GiB nodes / rgw / bench', `${cpu((c) => c.node)} / ${cpu((c) => c.rgw)} / ${cpu((c) => c.bench)}`, '', ''],
    ['  node peak RSS (VmHWM) per node', rss.map((b) => mib(Number.isFinite(b) ? b : undefined)).join(' / '), '', ''],
  ];
}

const concurrentSpeed = (runs: readonly ConcurrentResult[]): number => median(runs.map((c) => mibps(c.bytes, c.ms)));

function summaryRows(single: SingleResult[], rss: Map<string, number | undefined>, conc: readonly (readonly ConcurrentResult[])[]): Row[] {
  const speed = (r: SingleResult): number => median(r.speeds);
  const [bits8, bits1, lib4, lib1] = single as [SingleResult, SingleResult, SingleResult, SingleResult];
  const ratio = (a: SingleResult, b: SingleResult): string => fmt(speed(a) / speed(b), 2);
  const mark = (pass: boolean): string => (pass ? 'PASS' : 'MISS');
  const gib = SIZE / 2 ** 30;
  const cpuOf = (r: SingleResult): string =>
    `${fmt(median(r.cpu.map((c) => c.node)) / gib, 2)} / ${fmt(median(r.cpu.map((c) => c.rgw)) / gib, 2)} / ${fmt(median(r.cpu.map((c) => c.bench)) / gib, 2)}`;
  const rows: Row[] = single.map((r) => [`${SIZE / MiB} MiB, ${r.label}`, `${fmt(speed(r))} MiB/s`, '', '']);
  rows.push(
    [`ratio node (8 MiB fragments) / lib-storage queueSize ${LIB_QUEUE}`, ratio(bits8, lib4), `>= ${RATIO_TARGET}`, mark(speed(bits8) / speed(lib4) >= RATIO_TARGET)],
    [`ratio node (1 MiB fragments) / lib-storage queueSize ${LIB_QUEUE}`, ratio(bits1, lib4), `>= ${RATIO_TARGET}`, mark(speed(bits1) / speed(lib4) >= RATIO_TARGET)],
    ['ratio node (8 MiB fragments) / lib-storage queueSize 1', ratio(bits8, lib1), '', ''],
    ...single.map((r): Row => [`  CPU s/GiB node / rgw / bench, ${r.label}`, cpuOf(r), '', '']),
    ['8 MiB fragment round trip (p50 / p90)', `${fmt(median(bits8.fragmentMs))} / ${fmt(quantile(bits8.fragmentMs, 0.9))} ms`, '', ''],
    ['1 MiB fragment round trip (p50 / p90)', `${fmt(median(bits1.fragmentMs))} / ${fmt(quantile(bits1.fragmentMs, 0.9))} ms`, '', ''],
    ...[...rss].map(([name, bytes]): Row => [`node peak RSS (VmHWM), ${name}`, mib(bytes), '', '']),
  );
  for (const runs of conc) rows.push(...concurrentRows(runs));
  const [one, many] = conc as [ConcurrentResult[], ConcurrentResult[]];
  rows.push([`aggregate ratio ${many[0]!.label} / ${one[0]!.label}`, fmt(concurrentSpeed(many) / concurrentSpeed(one), 2), '', '']);
  const ok = single.reduce((a, r) => a + r.verified, 0) + conc.flat().reduce((a, c) => a + c.ok, 0);
  const all = ROUNDS * (single.length + conc.length * CONCURRENCY);
  rows.push(['objects verified (size + multipart ETag)', `${ok}/${all}`, 'all', ok === all ? 'PASS' : 'FAIL']);
  return rows;
}

function loudSkip(): void {
  const bar = '!'.repeat(78);
  log(`\n${bar}\n!!! farm benchmark SKIPPED: needs PostgreSQL and Ceph RGW (BITS_TEST_PG_URL, BITS_TEST_S3_ENDPOINT, AWS keys).`);
  log('!!! Run it through `node scripts/run-tests.mjs --exec node dist/bench/farm.js` with the services installed');
  log(`!!! (bash scripts/services/install.sh). No figures were measured.\n${bar}\n`);
}

async function main(): Promise<number> {
  const s3 = s3Service();
  if (!postgresService() || !s3) {
    loudSkip();
    return 0;
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  log(`bits-upload farm benchmark: node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus().length} x ${cpu}, ${fmt(os.totalmem() / 2 ** 30)} GiB RAM`);
  log(`S3: ${s3.endpoint} (RGW pid ${rgwPid(s3) ?? 'unknown'}, frontend ${rgwFrontend(rgwPid(s3))}), records: PostgreSQL ${new URL(postgresService()!.url).host}`);
  const loadAtStart = os.loadavg()[0]!;
  const failures: string[] = [];
  const problems: string[] = [];
  const base = await mkdtemp(join(os.tmpdir(), 'bits-bench-farm-'));
  let farm: Farm | undefined;
  try {
    farm = await makeFarm(base, s3);
    if (!farm.s3.cephDir) log('  (the Ceph folder is unknown: RGW garbage collection is left to RGW; the RAM-backed OSD may fill up)');
    log(`\n[1] one upload of ${SIZE / MiB} MiB, ${ROUNDS} round(s), each object checked and deleted afterwards`);
    const single = await singleUploads(farm, failures, problems);
    log(`\n[2] ${CONCURRENCY} concurrent uploads of ${CONCURRENT_SIZE / MiB} MiB, 8 MiB fragments, one connection and session each`);
    const plans = concurrentPlans();
    const conc: [ConcurrentResult[], ConcurrentResult[]] = [[], []];
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which goes first, as in [1]; fresh nodes each time.
      for (const which of round % 2 === 1 ? [0, 1] : [1, 0]) {
        const c = await concurrentUploads(farm, which === 0 ? 1 : NODES, plans, failures, problems);
        conc[which]!.push(c);
        log(`  round ${round} ${c.label}: ${c.ok}/${CONCURRENCY} verified, ${fmt(mibps(c.bytes, c.ms))} MiB/s total in ${fmt(c.ms / 1000, 2)} s, node peak RSS ${c.rss.map(mib).join(' / ')}`);
      }
    }
    log(`\n==== farm summary (MiB = 2^20 bytes; medians over ${ROUNDS} round(s)) ====`);
    log(`node ${process.version}, ${os.cpus().length} x ${cpu}; nodes, HAProxy, RGW, OSD, PostgreSQL and the clients share this machine`);
    const load = `load average ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end`;
    log(loadAtStart > 0.5 ? `${load}: other work shared the machine, expect noise` : load);
    printTable(summaryRows(single.results, single.rss, conc));
    log('(lib-storage runs on the nodes\' S3 client settings: keep-alive, no optional checksums. It signs the SHA-256 of each 8 MiB part');
    log(' (a Buffer body) where a node streams its parts as UNSIGNED-PAYLOAD. queueSize 1 keeps one part in flight, as a node does for');
    log(' a client that waits for each Ack; queueSize 4 is the SDK\'s default.)');
  } catch (err) {
    failures.push(`benchmark aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (farm) await dropFarm(farm, problems);
    if (KEEP) log(`kept ${base}`);
    else await rm(base, { recursive: true, force: true });
  }
  for (const p of problems.slice(0, 20)) log(`note: ${p}`);
  if (failures.length) {
    log('\nFAILED:');
    for (const f of failures) log(`  ${f}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
