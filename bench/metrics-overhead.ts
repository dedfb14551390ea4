/**
 * `npm run bench`, metrics overhead: the same single upload (BENCH_METRICS_MB MiB, default 512, in
 * 8 MiB fragments through the whole protocol) to two server children, one without an admin
 * listener (nothing is counted) and one with it while `/metrics` is scraped every second.
 * BENCH_METRICS_ROUNDS rounds (default 7), alternating which goes first, in /dev/shm where there is one; prints the median of each and
 * their ratio (target: within 3 %). Uploads are checked by size and deleted.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { bitsUpload } from './upload-clients.js';
import { envInt } from './env-int.js';
import type { UploadPlan } from './upload-clients.js';
import { Metrics } from '../src/server/admin/metrics.js';
import type { RequestLogFields } from '../src/server/request-log.js';

const MiB = 1024 * 1024;
const FRAGMENT = 8 * MiB;
const SIZE = envInt('BENCH_METRICS_MB', 512) * MiB;
const ROUNDS = envInt('BENCH_METRICS_ROUNDS', 7);
const TARGET = 0.97;

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const pool = randomFillSync(Buffer.allocUnsafe(FRAGMENT));
const plan: UploadPlan = { total: SIZE, fragmentSize: FRAGMENT, chunk: (_offset, length) => pool.subarray(0, length) };
const log = (s: string): void => void process.stdout.write(`${s}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Server {
  readonly child: Child;
  readonly root: string;
  /** The admin port, when the server has an admin listener. */
  readonly admin: number | undefined;
}

async function startServer(base: string, name: string, withAdmin: boolean): Promise<Server> {
  const root = join(base, name, 'root');
  const state = join(base, name, 'state');
  await mkdir(root, { recursive: true });
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--root', root, '--state-dir', state, ...(withAdmin ? ['--admin-port', '0'] : [])];
  const child = await startChild(CLI, args, (line) => line['msg'] === 'listening', { keepLines: true });
  const adminLine = child.lines.find((l) => l['msg'] === 'admin listening');
  return { child, root, admin: typeof adminLine?.['port'] === 'number' ? adminLine['port'] : undefined };
}

/** One upload; with an admin port, `/metrics` is scraped every second meanwhile. Returns MiB/s and the server's CPU s/GiB. */
async function timedUpload(server: Server, name: string): Promise<{ speed: number; cpu: number }> {
  let scrapes = 0;
  const scraper = server.admin === undefined ? undefined : setInterval(() => {
    void fetch(`http://127.0.0.1:${server.admin}/metrics`).then(async (r) => {
      await r.text();
      scrapes++;
    });
  }, 1000);
  try {
    const cpu0 = cpuSeconds(server.child.pid) ?? Number.NaN;
    const r = await bitsUpload(server.child.port, `/${name}`, plan);
    const cpu = (cpuSeconds(server.child.pid) ?? Number.NaN) - cpu0;
    const size = (await stat(join(server.root, name))).size;
    if (size !== SIZE) throw new Error(`${name}: ${size} bytes committed, not ${SIZE}`);
    await rm(join(server.root, name));
    if (scraper && scrapes === 0 && r.ms > 2000) throw new Error('the metrics were never scraped');
    return { speed: r.bytes / MiB / (r.ms / 1000), cpu: cpu / (r.bytes / 2 ** 30) };
  } finally {
    if (scraper) clearInterval(scraper);
  }
}

/** CPU µs of `work` per call, over `n` calls after as many to warm up. */
function microsPerCall(n: number, work: (i: number) => void): number {
  for (let i = 0; i < n; i++) work(i);
  const started = process.cpuUsage();
  for (let i = 0; i < n; i++) work(i);
  const used = process.cpuUsage(started);
  return (used.user + used.system) / n;
}

/**
 * The cost of counting itself, measured in this process where nothing else competes: what one
 * request's counting costs (a Fragment's log line through {@link Metrics.request}) and what one
 * scrape costs, against the server CPU one fragment takes (measured by the throughput runs).
 */
async function countingCost(cpuPerGiB: number): Promise<void> {
  const metrics = new Metrics({ liveSessions: async () => new Map([['/', 3]]), folders: () => [] }, { enabled: true });
  const fields: RequestLogFields = { reqId: 'r', remote: '127.0.0.1', method: 'BITS_POST', url: '/x', vdir: '/', packet: 'Fragment', bytes: FRAGMENT, status: 200, ms: 12.5 };
  const perRequest = microsPerCall(200_000, () => metrics.request(fields));
  for (let i = 0; i < 20; i++) await metrics.registry.metrics();
  const scrapeStarted = process.cpuUsage();
  for (let i = 0; i < 50; i++) await metrics.registry.metrics();
  const scrape = process.cpuUsage(scrapeStarted);
  const perScrape = (scrape.user + scrape.system) / 50;
  const perFragment = (cpuPerGiB * 1e6 * FRAGMENT) / 2 ** 30;
  log(`| counting one request | ${perRequest.toFixed(2)} µs CPU | ${((100 * perRequest) / perFragment).toFixed(3)} % of the ${perFragment.toFixed(0)} µs the server spends per ${FRAGMENT / MiB} MiB fragment |`);
  log(`| one scrape of /metrics (every second) | ${(perScrape / 1000).toFixed(2)} ms CPU | ${(perScrape / 1e4).toFixed(3)} % of one core |`);
}

async function main(): Promise<void> {
  // In memory where there is /dev/shm: the disk's fsync times vary by more than the 3 % measured
  // here, and without them the server is CPU-bound, which shows the cost of counting at its largest.
  const base = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bits-bench-metrics-'));
  const off = await startServer(base, 'off', false);
  const on = await startServer(base, 'on', true);
  const speeds = { off: [] as number[], on: [] as number[] };
  const cpus = { off: [] as number[], on: [] as number[] };
  try {
    log(`\nmetrics overhead: ${SIZE / MiB} MiB in ${FRAGMENT / MiB} MiB fragments, ${ROUNDS} rounds`);
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const which of order) {
        const { speed, cpu } = await timedUpload(which === 'on' ? on : off, `m-${which}-${round}.bin`);
        speeds[which].push(speed);
        cpus[which].push(cpu);
        log(`  round ${round} metrics ${which.padEnd(3)}: ${speed.toFixed(1)} MiB/s, server CPU ${cpu.toFixed(3)} s/GiB`);
      }
    }
  } finally {
    await Promise.all([stopChild(off.child), stopChild(on.child)]);
    await rm(base, { recursive: true, force: true });
  }
  const ratio = median(speeds.on) / median(speeds.off);
  const cpuRatio = median(cpus.on) / median(cpus.off);
  log(`| metrics off (no admin listener) | ${median(speeds.off).toFixed(1)} MiB/s | server CPU ${median(cpus.off).toFixed(3)} s/GiB |`);
  log(`| metrics on, /metrics scraped every second | ${median(speeds.on).toFixed(1)} MiB/s | server CPU ${median(cpus.on).toFixed(3)} s/GiB |`);
  log(`| ratio on / off | speed ${ratio.toFixed(3)} ${ratio >= TARGET ? '(within 3 %)' : '(MISSED: more than 3 % slower)'} | CPU ${cpuRatio.toFixed(3)} |`);
  await countingCost(median(cpus.off));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench metrics-overhead: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
