/**
 * `npm run bench`, the upload paths against the limits of this machine, each comparison alternating
 * A/B for BENCH_ROUNDS rounds (default 3) and reported as medians and paired ratios (bench/ab.ts):
 *
 * 1. Single upload through the whole protocol (one keep-alive connection, each Ack waited for, as
 *    Windows does) against the raw sink (bench/raw-sink.ts: the bytes to a file, one fdatasync per
 *    chunk, nothing else): BENCH_SMALL_FRAG_MB MiB (default 64) in 64 KiB and in 168,000-byte
 *    fragments (target server / sink ≥ 0.9), BENCH_SIZE_MB MiB (default 1024) in 8 MiB ones (≥ 0.95).
 * 2. Small-file intake: BENCH_INTAKE_FILES uploads (default 2000) of 4 KiB, each Create-Session, one
 *    Fragment, Close-Session, over BENCH_INTAKE_CONNECTIONS keep-alive connections (default 50),
 *    against bench/intake-limit.c (open, write, fdatasync, close, rename, fsync the folder; as many
 *    threads; bytes from memory), built with `cc -O2 -pthread` when there is a `cc` (target ≥ 0.8).
 * 3. Concurrency: BENCH_CONC_LEVELS (default 10,100,1000) uploads at once, each BENCH_CONC_MB MiB
 *    (default 8, and 1 at 1000 and more) in 1 MiB fragments, against the raw sink taking as many
 *    connections (`--dir`); aggregate MiB/s, the ratio, the server's peak RSS (targets < 150 MiB at
 *    100, < 250 MiB at 1000) and the p99 fragment Ack latency. A fresh server per round, so that its
 *    peak RSS is that round's.
 *
 * Every committed file is checked (size and content). The exit code is non-zero only when a file is
 * wrong or a transfer fails; targets missed are reported, not fatal.
 *
 * Also: BENCH_ONLY=single,intake,conc (a part of the run), BENCH_RAW_RECORD=1 (the single-upload
 * sink also writes an atomic record per chunk, the old baseline), BENCH_RUN_TIMEOUT_S (one run's
 * limit, default 600), BENCH_CPU_PROF=<dir> (server children run with --cpu-prof into <dir>),
 * BENCH_SERVER_NODE_ARGS="--trace-gc ..." (more node flags for the server children; what they print
 * that is not a JSON log line goes to stderr), BENCH_KEEP=1 (keep the temp folder).
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { alternate, median, printComparison, printVerdicts, quantile } from './ab.js';
import type { Sample, Target, Variant, Verdict } from './ab.js';
import { cpuSeconds, peakRss, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { envInt } from './env-int.js';
import { BitsConnection, bitsUpload, rawUpload } from './upload-clients.js';
import type { UploadPlan, UploadResult } from './upload-clients.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const ROUNDS = envInt('BENCH_ROUNDS', 3);
const SMALL_TOTAL = envInt('BENCH_SMALL_FRAG_MB', 64) * MiB;
const LARGE_TOTAL = envInt('BENCH_SIZE_MB', 1024) * MiB;
const INTAKE_FILES = envInt('BENCH_INTAKE_FILES', 2000);
const INTAKE_CONNECTIONS = envInt('BENCH_INTAKE_CONNECTIONS', 50);
const INTAKE_SIZE = 4 * KiB;
const CONC_MB = process.env['BENCH_CONC_MB'] ? envInt('BENCH_CONC_MB', 8) : undefined;
const CONC_LEVELS = intList('BENCH_CONC_LEVELS', [10, 100, 1000]);
const CONC_FRAGMENT = MiB;
const RUN_TIMEOUT_MS = envInt('BENCH_RUN_TIMEOUT_S', 600) * 1000;
const ONLY = new Set((process.env['BENCH_ONLY'] ?? 'single,intake,conc').split(',').map((s) => s.trim()));
const RAW_RECORD = process.env['BENCH_RAW_RECORD'] === '1';
const CPU_PROF = process.env['BENCH_CPU_PROF'];
const KEEP = process.env['BENCH_KEEP'] === '1';
const SERVER_NODE_ARGS = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
/** The largest fragment of any part: the server is started with it as its limit. */
const MAX_FRAGMENT = 8 * MiB;

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const SINK = join(here, 'raw-sink.js');
/** The C source is not compiled by tsc: it stays in bench/ beside this file's source. */
const LIMIT_SOURCE = join(here, '..', '..', 'bench', 'intake-limit.c');

/** 16 MiB of random bytes, which every upload takes its bytes from. */
const pool = randomFillSync(Buffer.allocUnsafe(16 * MiB));

const log = (s: string): void => void process.stdout.write(`${s}\n`);
const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mibps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
const toMiB = (bytes: number | undefined): number => (bytes === undefined ? Number.NaN : bytes / MiB);
const sizeName = (n: number): string => (n % MiB === 0 ? `${n / MiB} MiB` : n % KiB === 0 ? `${n / KiB} KiB` : `${n.toLocaleString('en')} B`);

/** A comma-separated list of positive integers from the environment (exit 2 when malformed). */
function intList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const xs = raw.split(',').map(Number);
  if (xs.some((x) => !Number.isSafeInteger(x) || x < 1)) {
    process.stderr.write(`bench: ${name} must be a comma-separated list of integers >= 1\n`);
    process.exit(2);
  }
  return xs;
}

/** Rejects when `promise` takes longer than a run may (a stalled transfer must not hang the bench). */
async function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${RUN_TIMEOUT_MS / 1000} s`)), RUN_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The soft and hard limits on open files of this process (Linux), or undefined. */
function openFileLimits(): { soft: number; hard: number } | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const n = (s: string | undefined): number => (s === 'unlimited' ? Infinity : Number(s));
    return m ? { soft: n(m[1]), hard: n(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Descriptors the concurrency part needs in each process at `level` connections: the bench holds a
 * socket per upload, the server a socket and a file (and a session's folder), the sink the same.
 */
const fdsFor = (level: number): number => 3 * level + 256;

/**
 * Makes room for the concurrency levels: when the soft limit on open files is below what the
 * largest needs and the hard limit allows it, runs this benchmark again under a shell that raises
 * the soft limit (the children inherit it) and exits with its status. Returns the levels that fit.
 */
function ensureFdHeadroom(levels: number[]): number[] {
  const limits = openFileLimits();
  const need = fdsFor(Math.max(...levels));
  if (!limits || limits.soft >= need) return levels;
  if (limits.hard >= need && process.env['BENCH_FD_RAISED'] !== '1') {
    log(`open files: soft limit ${limits.soft} < ${need} needed; running again with ulimit -n ${need}`);
    const args = ['-c', 'ulimit -n "$0" && exec "$@"', String(need), process.execPath, ...process.execArgv, ...process.argv.slice(1)];
    const r = spawnSync('/bin/sh', args, { stdio: 'inherit', env: { ...process.env, BENCH_FD_RAISED: '1' } });
    process.exit(r.status ?? 1);
  }
  const fit = levels.filter((l) => fdsFor(l) <= limits.soft);
  log(`!!! open files: soft limit ${limits.soft}, hard ${limits.hard}: too few for ${levels.filter((l) => !fit.includes(l)).join(', ')} connections, which are SKIPPED`);
  return fit;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks a committed file against what the client sent (size, sha256); a failure message or undefined. */
async function verify(path: string, sent: UploadResult): Promise<string | undefined> {
  const size = await stat(path).then(
    (s) => s.size,
    (err: Error) => err.message,
  );
  if (typeof size === 'string') return `${path}: ${size}`;
  if (size !== sent.bytes) return `${path}: ${size} bytes, sent ${sent.bytes}`;
  const sha = await sha256File(path);
  return sha === sent.sha256 ? undefined : `${path}: sha256 ${sha}, sent ${sent.sha256}`;
}

/** Checks, then removes, the files of a run; throws with the first failures (a wrong file fails the bench). */
async function verifyAll(what: string, files: readonly { path: string; sent: UploadResult }[]): Promise<void> {
  const bad: string[] = [];
  for (const f of files) {
    const why = await verify(f.path, f.sent);
    if (why) bad.push(why);
    await rm(f.path, { force: true });
  }
  if (bad.length) throw new Error(`${what}: ${bad.length} of ${files.length} files wrong: ${bad.slice(0, 5).join('; ')}`);
}

interface ServerRun {
  readonly child: Child;
  /** Its folder: the root it serves and its state dir are in there. */
  readonly dir: string;
  readonly root: string;
}

let serverCount = 0;

/** A `bits serve` child with its own root and state folder under `base`. */
async function startServer(base: string): Promise<ServerRun> {
  const name = `server-${++serverCount}`;
  const dir = join(base, name);
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  await mkdir(root, { recursive: true });
  await mkdir(state, { recursive: true });
  const nodeArgs = [
    ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`] : []),
    ...SERVER_NODE_ARGS,
  ];
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--root', root, '--state-dir', state, '--max-fragment-size', String(MAX_FRAGMENT)];
  const onOtherLine = (text: string): void => void process.stderr.write(`[${name}] ${text}\n`);
  const child = await startChild(CLI, args, (line) => line['msg'] === 'listening', { nodeArgs, keepLines: true, onOtherLine });
  return { child, dir, root };
}

/** Stops a server child and removes its folder; its log lines of level warn and above go to `notes`. */
async function stopServer(run: ServerRun, notes: string[]): Promise<void> {
  await stopChild(run.child);
  for (const line of run.child.lines) {
    if (typeof line['level'] === 'number' && line['level'] >= 40) notes.push(`server log: ${JSON.stringify(line)}`);
  }
  run.child.lines.length = 0;
  await rm(run.dir, { recursive: true, force: true });
}

/** The server's handler time (ms) of the Fragment requests it logged since line `from`. */
function handlerMs(child: Child, from: number): number[] {
  return child.lines
    .slice(from)
    .filter((l) => l['msg'] === 'request' && 'range' in l && typeof l['ms'] === 'number')
    .map((l) => l['ms'] as number);
}

/** CPU seconds `pid` spends while `work` runs. */
async function measuredCpu<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const before = cpuSeconds(pid) ?? Number.NaN;
  const result = await work();
  return { result, cpu: (cpuSeconds(pid) ?? Number.NaN) - before };
}

const logRun = (label: string, s: Sample, unit: string): void =>
  log(`    ${label.padEnd(12)} ${fmt(s.value)} ${unit}${Object.entries(s.extra ?? {}).map(([k, v]) => `, ${k} ${fmt(v)}`).join('')}`);

// ---- 1. single upload ----------------------------------------------------------------------

/** One upload's figures: speed, CPU per GiB of the receiver, Ack latency. */
function uploadSample(r: UploadResult, cpu: number, more: Record<string, number> = {}): Sample {
  return {
    value: mibps(r.bytes, r.ms),
    cpu,
    extra: { 'CPU s/GiB': cpu / (r.bytes / GiB), 'Ack p50 ms': median(r.fragmentMs), 'Ack p99 ms': quantile(r.fragmentMs, 0.99), ...more },
  };
}

async function singleUpload(base: string, total: number, fragmentSize: number, target: Target, notes: string[]): Promise<Verdict> {
  const plan: UploadPlan = { total, fragmentSize, chunk: (_offset, length) => pool.subarray(0, length) };
  const label = `single ${sizeName(total)} upload, ${sizeName(fragmentSize)} fragments`;
  const server = await startServer(base);
  let run = 0;
  const sink: Variant = {
    name: RAW_RECORD ? 'raw sink + record' : 'raw sink',
    run: async () => {
      const dir = join(base, `raw-${++run}`);
      await mkdir(dir, { recursive: true });
      const path = join(dir, 'raw.bin');
      const child = await startChild(SINK, ['--file', path, ...(RAW_RECORD ? ['--record', dir] : [])], () => true);
      let sample: Sample;
      try {
        const { result, cpu } = await measuredCpu(child.pid, () => bounded(rawUpload(child.port, plan), label));
        // (no peak RSS: the sink exits as the upload ends, before it could be read)
        sample = uploadSample(result, cpu);
        await verifyAll(`${label}, raw sink`, [{ path, sent: result }]);
      } finally {
        await stopChild(child, false, 5000);
        await rm(dir, { recursive: true, force: true });
      }
      logRun('raw sink', sample, 'MiB/s');
      return sample;
    },
  };
  const bits: Variant = {
    name: 'server',
    run: async () => {
      const name = `single-${++run}.bin`;
      const from = server.child.lines.length;
      const { result, cpu } = await measuredCpu(server.child.pid, () => bounded(bitsUpload(server.child.port, `/${name}`, plan), label));
      const sample = uploadSample(result, cpu, { 'handler p50 ms': median(handlerMs(server.child, from)), 'peak RSS MiB': toMiB(peakRss(server.child.pid)) });
      await verifyAll(`${label}, server`, [{ path: join(server.root, name), sent: result }]);
      logRun('server', sample, 'MiB/s');
      return sample;
    },
  };
  try {
    return printComparison(await alternate(label, ROUNDS, [sink, bits]), { unit: 'MiB/s', target });
  } finally {
    await stopServer(server, notes);
  }
}

// ---- 2. small-file intake ------------------------------------------------------------------

/** Builds the C limit program into `base`; undefined (said loudly) when there is no compiler. */
async function buildLimit(base: string): Promise<string | undefined> {
  const out = join(base, 'intake-limit');
  const cc = spawnSync('cc', ['-O2', '-pthread', '-o', out, LIMIT_SOURCE], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    log(`!!! no C compiler (cc -O2 -pthread ${LIMIT_SOURCE}: ${cc.error?.message ?? cc.stderr.trim()}): the intake comparison is SKIPPED`);
    return undefined;
  }
  return out;
}

/** Checks that every intake file is there with its bytes (file i is the i-th INTAKE_SIZE block of `bytes`), then removes it. */
async function verifyIntake(what: string, pathOf: (i: number) => string, bytes: Buffer): Promise<void> {
  const bad: string[] = [];
  for (let i = 0; i < INTAKE_FILES; i++) {
    const got = await readFile(pathOf(i)).catch((err: Error) => err);
    if (got instanceof Error) bad.push(got.message);
    else if (!got.equals(bytes.subarray(i * INTAKE_SIZE, (i + 1) * INTAKE_SIZE))) bad.push(`${pathOf(i)}: ${got.length} bytes, not those sent`);
    await rm(pathOf(i), { force: true });
  }
  if (bad.length) throw new Error(`${what}: ${bad.length} of ${INTAKE_FILES} files wrong: ${bad.slice(0, 5).join('; ')}`);
}

async function intake(base: string, notes: string[]): Promise<Verdict> {
  const label = `intake ${INTAKE_FILES} x 4 KiB, ${INTAKE_CONNECTIONS} connections`;
  const target: Target = { ratio: 0.8 };
  const limit = await buildLimit(base);
  if (!limit) return { label: `${label} (SKIPPED: no cc)`, ratio: Number.NaN, target, met: undefined };
  const bytes = randomFillSync(Buffer.allocUnsafe(INTAKE_FILES * INTAKE_SIZE));
  const poolFile = join(base, 'intake-pool.bin');
  await writeFile(poolFile, bytes);
  const server = await startServer(base);
  let run = 0;
  const c: Variant = {
    name: 'C limit',
    run: async () => {
      const dir = join(base, `limit-${++run}`);
      const staging = join(dir, 'staging');
      const dest = join(dir, 'dest');
      await mkdir(staging, { recursive: true });
      await mkdir(dest, { recursive: true });
      try {
        const args = [poolFile, staging, dest, String(INTAKE_FILES), String(INTAKE_SIZE), String(INTAKE_CONNECTIONS)];
        const { stdout } = await promisify(execFile)(limit, args, { timeout: RUN_TIMEOUT_MS });
        const { seconds } = JSON.parse(stdout) as { seconds: number };
        await verifyIntake(`${label}, C limit`, (i) => join(dest, `f${i}.bin`), bytes);
        const sample: Sample = { value: INTAKE_FILES / seconds };
        logRun('C limit', sample, 'uploads/s');
        return sample;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  const bits: Variant = {
    name: 'server',
    run: async () => {
      const prefix = `in${++run}-`;
      const conns = await Promise.all(Array.from({ length: INTAKE_CONNECTIONS }, () => BitsConnection.open(server.child.port)));
      const ackMs: number[] = [];
      let next = 0;
      const worker = async (conn: BitsConnection): Promise<void> => {
        for (let i = next++; i < INTAKE_FILES; i = next++) {
          const offset = i * INTAKE_SIZE;
          const plan: UploadPlan = { total: INTAKE_SIZE, fragmentSize: INTAKE_SIZE, chunk: (o, n) => bytes.subarray(offset + o, offset + o + n) };
          ackMs.push(...(await conn.upload(`/${prefix}${i}.bin`, plan)).fragmentMs);
        }
      };
      const t0 = performance.now();
      let cpu: number;
      try {
        ({ cpu } = await measuredCpu(server.child.pid, () => bounded(Promise.all(conns.map(worker)), label)));
      } finally {
        for (const conn of conns) conn.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      await verifyIntake(`${label}, server`, (i) => join(server.root, `${prefix}${i}.bin`), bytes);
      const sample: Sample = {
        value: INTAKE_FILES / seconds,
        cpu,
        extra: { 'CPU ms/upload': (cpu * 1000) / INTAKE_FILES, 'Ack p99 ms': quantile(ackMs, 0.99), 'peak RSS MiB': toMiB(peakRss(server.child.pid)) },
      };
      logRun('server', sample, 'uploads/s');
      return sample;
    },
  };
  try {
    return printComparison(await alternate(label, ROUNDS, [c, bits]), { unit: 'uploads/s', target });
  } finally {
    await stopServer(server, notes);
  }
}

// ---- 3. concurrency ------------------------------------------------------------------------

/**
 * Upload `i` of a concurrent run: its own bytes (fragment k of upload i is a view at a page-aligned
 * offset of the pool that depends on i and k), so that a mix-up between sessions cannot go unnoticed.
 */
function concurrentPlan(i: number, total: number): UploadPlan {
  const slots = (pool.length - CONC_FRAGMENT) / 4096;
  return {
    total,
    fragmentSize: CONC_FRAGMENT,
    chunk: (offset, length) => {
      const start = ((i * 7919 + (offset / CONC_FRAGMENT) * 104729) % slots) * 4096;
      return pool.subarray(start, start + length);
    },
  };
}

/** Runs `level` uploads at once; returns the aggregate speed and the Ack latencies; checks every file. */
async function concurrentRun(
  what: string,
  level: number,
  total: number,
  upload: (i: number, plan: UploadPlan) => Promise<UploadResult>,
  pathOf: (i: number) => string,
): Promise<{ mibps: number; ackMs: number[] }> {
  const t0 = performance.now();
  const results = await bounded(Promise.all(Array.from({ length: level }, (_, i) => upload(i, concurrentPlan(i, total)))), what);
  const ms = performance.now() - t0;
  await verifyAll(what, results.map((sent, i) => ({ path: pathOf(i), sent })));
  return { mibps: mibps(level * total, ms), ackMs: results.flatMap((r) => r.fragmentMs) };
}

async function concurrency(base: string, level: number, notes: string[]): Promise<Verdict[]> {
  const total = (CONC_MB ?? (level >= 1000 ? 1 : 8)) * MiB;
  const label = `${level} concurrent x ${sizeName(total)}, 1 MiB fragments`;
  let run = 0;
  const sink: Variant = {
    name: 'raw sink',
    run: async () => {
      const dir = join(base, `raw-conc-${++run}`);
      await mkdir(dir, { recursive: true });
      const child = await startChild(SINK, ['--dir', dir], () => true);
      try {
        const r = await concurrentRun(`${label}, raw sink`, level, total, (i, plan) => rawUpload(child.port, plan, `c${i}.bin`), (i) => join(dir, `c${i}.bin`));
        const sample: Sample = { value: r.mibps, extra: { 'Ack p99 ms': quantile(r.ackMs, 0.99), 'peak RSS MiB': toMiB(peakRss(child.pid)) } };
        logRun('raw sink', sample, 'MiB/s');
        return sample;
      } finally {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  const bits: Variant = {
    name: 'server',
    run: async () => {
      const server = await startServer(base);
      try {
        const { result: r, cpu } = await measuredCpu(server.child.pid, () =>
          concurrentRun(`${label}, server`, level, total, (i, plan) => bitsUpload(server.child.port, `/c${i}.bin`, plan), (i) => join(server.root, `c${i}.bin`)),
        );
        const sample: Sample = {
          value: r.mibps,
          cpu,
          extra: { 'Ack p99 ms': quantile(r.ackMs, 0.99), 'CPU s/GiB': cpu / ((level * total) / GiB), 'peak RSS MiB': toMiB(peakRss(server.child.pid)) },
        };
        logRun('server', sample, 'MiB/s');
        return sample;
      } finally {
        await stopServer(server, notes);
      }
    },
  };
  const c = await alternate(label, ROUNDS, [sink, bits]);
  const verdict = printComparison(c, { unit: 'MiB/s' });
  const rssLimit = level <= 100 ? 150 : level <= 1000 ? 250 : undefined;
  const rss = median(c.samples[1]!.map((s) => s.extra?.['peak RSS MiB'] ?? Number.NaN));
  const rssVerdict: Verdict = {
    label: `${level} concurrent: server peak RSS, MiB`,
    ratio: rss,
    target: rssLimit === undefined ? undefined : { ratio: rssLimit, atMost: true },
    met: rssLimit === undefined ? undefined : rss < rssLimit,
  };
  if (rssLimit !== undefined) log(`  server peak RSS median ${fmt(rss)} MiB (target < ${rssLimit} MiB: ${rssVerdict.met ? 'met' : 'MISSED'})`);
  return [verdict, rssVerdict];
}

// ---- the run -------------------------------------------------------------------------------

async function main(): Promise<number> {
  const levels = ONLY.has('conc') ? ensureFdHeadroom(CONC_LEVELS) : [];
  const base = await mkdtemp(join(os.tmpdir(), 'bits-perf-store-'));
  const notes: string[] = [];
  const verdicts: Verdict[] = [];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  log(`bits-upload store benchmark: node ${process.version}, ${os.cpus().length} x ${cpu}, ${fmt(os.totalmem() / GiB)} GiB RAM`);
  log(`temp folder ${base} (server root, state dir and baseline files on the same disk); ${ROUNDS} rounds per comparison, alternating`);
  const loadAtStart = os.loadavg()[0]!;
  let failure: unknown;
  try {
    if (ONLY.has('single')) {
      log('\n[1] single upload, server against the raw fdatasync sink');
      verdicts.push(await singleUpload(base, SMALL_TOTAL, 64 * KiB, { ratio: 0.9 }, notes));
      verdicts.push(await singleUpload(base, SMALL_TOTAL, 168_000, { ratio: 0.9 }, notes));
      verdicts.push(await singleUpload(base, LARGE_TOTAL, 8 * MiB, { ratio: 0.95 }, notes));
    }
    if (ONLY.has('intake')) {
      log('\n[2] small-file intake, server against the C limit program');
      verdicts.push(await intake(base, notes));
    }
    if (levels.length) log('\n[3] concurrent uploads, server against the raw sink at the same concurrency');
    for (const level of levels) verdicts.push(...(await concurrency(base, level, notes)));
  } catch (err) {
    failure = err;
  } finally {
    if (KEEP) log(`kept ${base}`);
    else await rm(base, { recursive: true, force: true });
  }
  log('');
  printVerdicts(verdicts);
  const load = `load average ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end`;
  log(loadAtStart > 0.5 ? `${load}: other work shared the machine, expect noise` : load);
  for (const n of notes.slice(0, 20)) log(`note: ${n}`);
  if (failure !== undefined) {
    log(`\nFAILED: ${(failure as Error).stack ?? String(failure)}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
