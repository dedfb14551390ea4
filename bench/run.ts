/**
 * `npm run bench`: throughput and memory of the BITS server against a raw socket → file baseline.
 *
 * 1. One upload of BENCH_SIZE_MB MiB (default 1024) in 8 MiB fragments through the whole protocol
 *    (Create-Session, Fragments on one keep-alive connection, Close-Session) to a server child
 *    process; the same bytes to a minimal raw sink child (bench/raw-sink.ts) with the same fsync
 *    policy. Prints both speeds, their ratio and the server's peak RSS.
 * 2. BENCH_CONCURRENCY (default 50) concurrent uploads of BENCH_CONCURRENT_MB MiB (default 20) to a
 *    fresh server child. Prints the total speed and the server's peak RSS.
 *
 * Every committed file is checked (size, sha256 of what was sent); the exit code is non-zero only
 * when one is wrong or an upload fails. Targets missed are reported, not fatal.
 *
 * Environment: BENCH_SIZE_MB, BENCH_ROUNDS (single-upload rounds, default 3; medians are reported),
 * BENCH_CONCURRENCY, BENCH_CONCURRENT_MB, BENCH_RAW_RECORD=0 (baseline without the per-chunk record
 * write), BENCH_CPU_PROF=<dir> (server children run with --cpu-prof into <dir>), BENCH_KEEP=1 (keep
 * the temp folder), BENCH_SERVER_NODE_ARGS="--trace-gc ..." (more node flags for the server children;
 * what they print that is not a JSON log line goes to stderr).
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, peakRss, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { bitsUpload, rawUpload } from './upload-clients.js';
import type { UploadPlan, UploadResult } from './upload-clients.js';
import { envInt } from './env-int.js';

const MiB = 1024 * 1024;
const FRAGMENT = 8 * MiB;
const RSS_TARGET = 150 * MiB;
const RATIO_TARGET = 0.8;


const SIZE = envInt('BENCH_SIZE_MB', 1024) * MiB;
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const CONCURRENCY = envInt('BENCH_CONCURRENCY', 50);
const CONCURRENT_SIZE = envInt('BENCH_CONCURRENT_MB', 20) * MiB;
const RAW_RECORD = process.env['BENCH_RAW_RECORD'] !== '0';
const CPU_PROF = process.env['BENCH_CPU_PROF'];
const KEEP = process.env['BENCH_KEEP'] === '1';
const SERVER_NODE_ARGS = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const SINK = join(here, 'raw-sink.js');

/** 16 MiB of random bytes: the single upload sends its first 8 MiB again and again. */
const pool = randomFillSync(Buffer.allocUnsafe(2 * FRAGMENT));
const repeated: UploadPlan['chunk'] = (_offset, length) => pool.subarray(0, length);

const log = (s: string): void => void process.stdout.write(`${s}\n`);
const mibps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
const fmt = (n: number, digits = 1): string => n.toFixed(digits);
const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const latency = (xs: number[]): string => `p50 ${fmt(median(xs))} ms, p90 ${fmt(quantile(xs, 0.9))} ms, max ${fmt(Math.max(...xs))} ms`;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: FRAGMENT })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks a committed file against what the client sent; returns a failure message or undefined. */
async function verify(path: string, sent: UploadResult): Promise<string | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    return `${path}: ${(err as Error).message}`;
  }
  if (size !== sent.bytes) return `${path}: ${size} bytes, sent ${sent.bytes}`;
  const sha = await sha256File(path);
  if (sha !== sent.sha256) return `${path}: sha256 ${sha}, sent ${sent.sha256}`;
  return undefined;
}

interface ServerRun {
  child: Child;
  root: string;
}

async function startServer(base: string, name: string): Promise<ServerRun> {
  const root = join(base, name, 'root');
  const state = join(base, name, 'state');
  await mkdir(root, { recursive: true });
  await mkdir(state, { recursive: true });
  const nodeArgs = [
    ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`, `--cpu-prof-name=server-${name}.cpuprofile`] : []),
    ...SERVER_NODE_ARGS,
  ];
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--root', root, '--state-dir', state, '--max-fragment-size', String(FRAGMENT)];
  const onOtherLine = (text: string): void => void process.stderr.write(`[server ${name}] ${text}\n`);
  const child = await startChild(CLI, args, (line) => line['msg'] === 'listening', { nodeArgs, keepLines: true, onOtherLine });
  return { child, root };
}

/** Stops a server child, returning its peak RSS read just before; notes log lines of level warn+. */
async function stopServer(run: ServerRun, problems: string[]): Promise<number | undefined> {
  const rss = peakRss(run.child.pid);
  await stopChild(run.child);
  for (const line of run.child.lines) {
    if (typeof line['level'] === 'number' && line['level'] >= 40) problems.push(`server log: ${JSON.stringify(line)}`);
  }
  return rss;
}

/** Handler times (ms) of the Fragment requests in a server's log. */
function serverFragmentMs(child: Child): number[] {
  return child.lines.filter((l) => l['msg'] === 'request' && 'range' in l && typeof l['ms'] === 'number').map((l) => l['ms'] as number);
}

interface SingleResult {
  server: UploadResult[];
  raw: UploadResult[];
  /** server / raw speed of each round (the two runs of a round meet the same disk weather). */
  ratios: number[];
  /** CPU seconds per GiB uploaded. */
  serverCpu: number[];
  rawCpu: number[];
  rawRss: number | undefined;
  serverRss: number | undefined;
  serverHandlerMs: number[];
}

async function singleUploads(base: string, failures: string[], problems: string[]): Promise<SingleResult> {
  const plan: UploadPlan = { total: SIZE, fragmentSize: FRAGMENT, chunk: repeated };
  const server = await startServer(base, 'single');
  const out: SingleResult = { server: [], raw: [], ratios: [], serverCpu: [], rawCpu: [], rawRss: undefined, serverRss: undefined, serverHandlerMs: [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which goes first so neither always meets a colder or busier disk.
      const order = round % 2 === 1 ? (['server', 'raw'] as const) : (['raw', 'server'] as const);
      for (const which of order) {
        if (which === 'server') {
          const name = `single-${round}.bin`;
          const cpu0 = cpuSeconds(server.child.pid);
          const r = await bitsUpload(server.child.port, `/${name}`, plan);
          const cpu = (cpuSeconds(server.child.pid) ?? Number.NaN) - (cpu0 ?? Number.NaN);
          out.serverCpu.push(cpu / (r.bytes / 2 ** 30));
          const path = join(server.root, name);
          const bad = await verify(path, r);
          if (bad) failures.push(`server single upload: ${bad}`);
          await rm(path, { force: true });
          out.server.push(r);
          log(`  round ${round} BITS server : ${fmt(mibps(r.bytes, r.ms))} MiB/s (${fmt(r.ms / 1000, 2)} s, ${fmt(cpu, 2)} s CPU, fragment ${latency(r.fragmentMs)})${bad ? ' VERIFY FAILED' : ', verified'}`);
        } else {
          const dir = join(base, `raw-${round}`);
          await mkdir(dir, { recursive: true });
          const path = join(dir, 'raw.bin');
          const sinkArgs = ['--file', path, ...(RAW_RECORD ? ['--record', dir] : [])];
          const sink = await startChild(SINK, sinkArgs, () => true);
          let r: UploadResult;
          let cpu: number;
          try {
            const cpu0 = cpuSeconds(sink.pid);
            r = await rawUpload(sink.port, plan);
            cpu = (cpuSeconds(sink.pid) ?? Number.NaN) - (cpu0 ?? Number.NaN);
            out.rawCpu.push(cpu / (r.bytes / 2 ** 30));
            out.rawRss = Math.max(out.rawRss ?? 0, peakRss(sink.pid) ?? 0);
          } finally {
            await stopChild(sink, false, 5000).catch(() => undefined);
          }
          const bad = await verify(path, r);
          if (bad) failures.push(`raw sink: ${bad}`);
          await rm(dir, { recursive: true, force: true });
          out.raw.push(r);
          log(`  round ${round} raw sink    : ${fmt(mibps(r.bytes, r.ms))} MiB/s (${fmt(r.ms / 1000, 2)} s, ${fmt(cpu, 2)} s CPU, chunk ${latency(r.fragmentMs)})${bad ? ' VERIFY FAILED' : ', verified'}`);
        }
      }
      const s = out.server[out.server.length - 1]!;
      const r = out.raw[out.raw.length - 1]!;
      out.ratios.push(mibps(s.bytes, s.ms) / mibps(r.bytes, r.ms));
    }
  } finally {
    out.serverRss = await stopServer(server, problems);
    out.serverHandlerMs = serverFragmentMs(server.child);
  }
  return out;
}

interface ConcurrentResult {
  bytes: number;
  ms: number;
  ok: number;
  uploadMs: number[];
  serverRss: number | undefined;
}

async function concurrentUploads(base: string, failures: string[], problems: string[]): Promise<ConcurrentResult> {
  const server = await startServer(base, 'concurrent');
  const slots = FRAGMENT / 4096;
  // Each upload gets its own bytes: fragment k of upload i is a view at a page-aligned offset of
  // the pool that depends on i and k, so a mix-up between sessions cannot go unnoticed.
  const planOf = (i: number): UploadPlan => ({
    total: CONCURRENT_SIZE,
    fragmentSize: FRAGMENT,
    chunk: (offset, length) => {
      const start = ((i * 7919 + (offset / FRAGMENT) * 104729) % slots) * 4096;
      return pool.subarray(start, start + length);
    },
  });
  let rss: number | undefined;
  let settled: PromiseSettledResult<UploadResult>[];
  const t0 = performance.now();
  try {
    settled = await Promise.allSettled(Array.from({ length: CONCURRENCY }, (_, i) => bitsUpload(server.child.port, `/concurrent-${i}.bin`, planOf(i))));
  } finally {
    rss = await stopServer(server, problems);
  }
  const ms = performance.now() - t0;
  let ok = 0;
  let bytes = 0;
  const uploadMs: number[] = [];
  for (const [i, s] of settled.entries()) {
    if (s.status === 'rejected') {
      failures.push(`concurrent upload ${i}: ${(s.reason as Error).message}`);
      continue;
    }
    const bad = await verify(join(server.root, `concurrent-${i}.bin`), s.value);
    if (bad) {
      failures.push(`concurrent upload ${i}: ${bad}`);
      continue;
    }
    ok++;
    bytes += s.value.bytes;
    uploadMs.push(s.value.ms);
  }
  return { bytes, ms, ok, uploadMs, serverRss: rss };
}

const mib = (bytes: number | undefined): string => (bytes === undefined ? 'n/a' : `${fmt(bytes / MiB)} MiB`);
const mark = (pass: boolean): string => (pass ? 'PASS' : 'MISS');

async function main(): Promise<number> {
  const base = await mkdtemp(join(os.tmpdir(), 'bits-bench-'));
  const failures: string[] = [];
  const problems: string[] = [];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  log(`bits-upload benchmark: node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus().length} x ${cpu}`);
  log(`temp folder ${base} (server root, state dir and baseline file on the same disk)`);
  const loadAtStart = os.loadavg()[0]!;
  try {
    log(`\n[1] one upload of ${SIZE / MiB} MiB in ${FRAGMENT / MiB} MiB fragments, ${ROUNDS} round(s)`);
    const single = await singleUploads(base, failures, problems);
    log(`  server/raw ratio per round: ${single.ratios.map((x) => fmt(x, 2)).join(', ')}`);
    log(`\n[2] ${CONCURRENCY} concurrent uploads of ${CONCURRENT_SIZE / MiB} MiB, ${FRAGMENT / MiB} MiB fragments, one connection and session each`);
    const conc = await concurrentUploads(base, failures, problems);
    log(`  ${conc.ok}/${CONCURRENCY} verified, ${fmt(mibps(conc.bytes, conc.ms))} MiB/s total in ${fmt(conc.ms / 1000, 2)} s, per upload ${latency(conc.uploadMs)}`);

    const serverSpeed = median(single.server.map((r) => mibps(r.bytes, r.ms)));
    const rawSpeed = median(single.raw.map((r) => mibps(r.bytes, r.ms)));
    const ratio = median(single.ratios);
    const serverFrag = single.server.flatMap((r) => r.fragmentMs);
    const rawFrag = single.raw.flatMap((r) => r.fragmentMs);
    const concSpeed = mibps(conc.bytes, conc.ms);
    const baseline = RAW_RECORD ? 'raw sink (data fdatasync + atomic record per chunk)' : 'raw sink (data fdatasync per chunk)';
    const rows: [string, string, string, string][] = [
      [`single ${SIZE / MiB} MiB upload, BITS server`, `${fmt(serverSpeed)} MiB/s`, '', ''],
      [`single ${SIZE / MiB} MiB upload, ${baseline}`, `${fmt(rawSpeed)} MiB/s`, '', ''],
      [
        'ratio server / raw (median, range over rounds)',
        `${fmt(ratio, 2)} (${fmt(Math.min(...single.ratios), 2)}-${fmt(Math.max(...single.ratios), 2)})`,
        `>= ${RATIO_TARGET}`,
        mark(ratio >= RATIO_TARGET),
      ],
      ['CPU per GiB, server / raw sink', `${fmt(median(single.serverCpu), 2)} / ${fmt(median(single.rawCpu), 2)} s`, '', ''],
      ['server peak RSS (VmHWM), single upload', mib(single.serverRss), '< 150 MiB', single.serverRss === undefined ? 'n/a' : mark(single.serverRss < RSS_TARGET)],
      ['8 MiB fragment round trip, server (p50 / p90)', `${fmt(median(serverFrag))} / ${fmt(quantile(serverFrag, 0.9))} ms`, '', ''],
      ['  of which server handler time (p50 / p90)', `${fmt(median(single.serverHandlerMs))} / ${fmt(quantile(single.serverHandlerMs, 0.9))} ms`, '', ''],
      ['8 MiB chunk round trip, raw sink (p50 / p90)', `${fmt(median(rawFrag))} / ${fmt(quantile(rawFrag, 0.9))} ms`, '', ''],
      [`${CONCURRENCY} x ${CONCURRENT_SIZE / MiB} MiB concurrent uploads, total`, `${fmt(concSpeed)} MiB/s`, '', ''],
      ['server peak RSS (VmHWM), concurrent', mib(conc.serverRss), '< 150 MiB', conc.serverRss === undefined ? 'n/a' : mark(conc.serverRss < RSS_TARGET)],
      ['uploads verified (size + sha256)', `${single.server.length + single.raw.length + conc.ok}/${single.server.length + single.raw.length + CONCURRENCY}`, 'all', failures.length ? 'FAIL' : 'PASS'],
    ];
    const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    const line = (r: string[]): string => `${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padEnd(w[2]!)}  ${r[3]}`.trimEnd();
    log(`\n==== summary (MiB = 2^20 bytes; medians over ${ROUNDS} round(s)) ====`);
    log(`node ${process.version}, ${os.cpus().length} x ${cpu}, ${fmt(os.totalmem() / 2 ** 30)} GiB RAM, ${FRAGMENT / MiB} MiB fragments, fsync per fragment`);
    const load = `load average ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end`;
    log(loadAtStart > 0.5 ? `${load}: other work shared the machine, expect noise` : load);
    log(line(['measure', 'result', 'target', '']));
    log(line(['-'.repeat(w[0]!), '-'.repeat(w[1]!), '-'.repeat(w[2]!), '----']));
    for (const r of rows) log(line(r));
    if (RAW_RECORD) log('(the baseline also writes a small record per chunk: temp file, fsync, rename, fsync dir, like the server)');
    log(`(baseline peak RSS ${mib(single.rawRss)})`);
  } catch (err) {
    failures.push(`benchmark aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
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
