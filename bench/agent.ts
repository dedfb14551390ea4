/**
 * `npm run bench`, the background agent: how exactly it keeps to its bandwidth limits, and how
 * much of a busy link it leaves to other traffic when it yields.
 *
 * 1. **Throttling accuracy** (loopback): one upload job limited to BENCH_AGENT_RATE (default 1M,
 *    bytes/s) by its own `maxRate`, then three unlimited jobs under the agent's global
 *    `--max-rate` of twice that. Each measures the bytes acknowledged over BENCH_AGENT_SECONDS
 *    (default 30) after a 5-second start, from the agent's own job events (first and last Ack of
 *    the window), against the limit. Target: within 10 %.
 * 2. **Yield** (three network namespaces, client, router and server, joined by veth pairs; the
 *    router's link to the server is a `tbf` qdisc of BENCH_YIELD_MBIT, default 20 Mbit/s, with a
 *    400 ms queue): an agent upload runs alone
 *    for 5 s, then a bulk TCP flow starts beside it for BENCH_YIELD_SECONDS (default 20). The link's
 *    own byte counter, less what the bulk flow's sink received, is the agent's share. Once with
 *    yield on (the default for background jobs), once with it off. Needs root and iproute2 (`ip`,
 *    `tc`); without them this part says so loudly and is skipped.
 *
 *   node dist/bench/agent.js      (BENCH_ONLY=throttle or yield runs one part; BENCH_AGENT_LOG=debug shows the agent's log)
 *
 * Exits non-zero only when a transfer fails; a missed target is reported.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { AgentClient } from '../src/client/agent-client.js';
import type { AgentJobInfo, AgentJobSpec } from '../src/client/agent-protocol.js';
import { parseRate } from '../src/client/agent-protocol.js';
import { envInt } from './env-int.js';
import { listeningPort } from '../test/helpers/cli.js';

const MiB = 1024 * 1024;
const RATE = parseRate(process.env['BENCH_AGENT_RATE'] ?? '1M')!;
const SECONDS = envInt('BENCH_AGENT_SECONDS', 30);
const YIELD_MBIT = envInt('BENCH_YIELD_MBIT', 20);
const YIELD_SECONDS = envInt('BENCH_YIELD_SECONDS', 20);
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const log = (s: string): void => void process.stdout.write(`${s}\n`);
let failed = false;

/** A child process (maybe inside a network namespace), its stderr tail kept. */
interface Proc {
  readonly proc: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

function run(argv: string[], netns?: string): Proc {
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0]!, argv.slice(1)];
  const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8192)));
  proc.stdout!.resume();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `bits serve` on host:port (a child, maybe in a namespace); resolves once it listens. */
async function serve(dir: string, host: string, port: number, netns?: string): Promise<Proc & { port: number }> {
  await mkdir(join(dir, 'uploads'), { recursive: true });
  const argv = [process.execPath, CLI, 'serve', '--host', host, '--port', String(port), '--root', join(dir, 'uploads'), '--state-dir', join(dir, 'srv'), '--allow-overwrite'];
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0]!, argv.slice(1)];
  const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const listening = await listeningPort(proc, 15_000, () => `: ${err}`);
  return {
    proc,
    port: listening,
    stderr: () => err,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** `bits agent` on a state directory (maybe in a namespace) and a control connection to it. */
async function agent(stateDir: string, args: string[], netns?: string): Promise<{ p: Proc; client: AgentClient }> {
  const p = run([process.execPath, CLI, 'agent', '--state-dir', stateDir, '--log-level', process.env['BENCH_AGENT_LOG'] ?? 'warn', ...args], netns);
  if (process.env['BENCH_AGENT_LOG']) p.proc.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  for (let i = 0; ; i++) {
    try {
      return { p, client: await AgentClient.connect({ stateDir }) };
    } catch (err) {
      if (i > 300 || p.proc.exitCode !== null) throw new Error(`bits agent did not start: ${(err as Error).message}\n${p.stderr()}`);
      await sleep(50);
    }
  }
}

/** A file of `size` bytes (random content, so that nothing compresses it). */
async function makeFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  const pool = Buffer.alloc(4 * MiB);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  try {
    for (let done = 0; done < size; done += pool.length) await fh.write(pool, 0, Math.min(pool.length, size - done));
  } finally {
    await fh.close();
  }
}

/**
 * Bytes per second acknowledged over [from, to] ms after `t0`, summed over `ids`: for each job, the
 * first and the last progress it reported inside the window.
 */
function windowRate(events: { t: number; id: string; bytes: number }[], ids: readonly string[], t0: number, from: number, to: number): number {
  let rate = 0;
  for (const id of ids) {
    const inside = events.filter((e) => e.id === id && e.t >= t0 + from && e.t <= t0 + to);
    if (inside.length < 2) continue;
    const a = inside[0]!;
    const b = inside.at(-1)!;
    rate += ((b.bytes - a.bytes) * 1000) / (b.t - a.t);
  }
  return rate;
}

/** Runs jobs for 5 s + SECONDS, recording their progress; cancels them at the end. */
async function measureRate(client: AgentClient, specs: AgentJobSpec[]): Promise<number> {
  const events: { t: number; id: string; bytes: number }[] = [];
  client.on('job', (j: AgentJobInfo) => {
    events.push({ t: Date.now(), id: j.id, bytes: j.bytesDone });
    if (j.state === 'ERROR') {
      failed = true;
      log(`  job ${j.id} failed: ${j.error?.message}`);
    }
  });
  await client.watch();
  const t0 = Date.now();
  const jobs = [];
  for (const s of specs) jobs.push(await client.enqueue(s));
  await sleep((5 + SECONDS) * 1000);
  for (const j of jobs) await client.cancel(j.id).catch(() => undefined);
  return windowRate(
    events,
    jobs.map((j) => j.id),
    t0,
    5_000,
    (5 + SECONDS) * 1000,
  );
}

async function throttling(dir: string): Promise<void> {
  log(`\n## Throttling accuracy: ${SECONDS} s windows on loopback`);
  const server = await serve(join(dir, 'srv1'), '127.0.0.1', 0);
  const size = RATE * (SECONDS + 20);
  const src = join(dir, 'throttle.bin');
  await makeFile(src, size * 2);
  const url = (name: string): string => `http://127.0.0.1:${server.port}/${name}`;
  const rows: string[] = ['| limit | measured | measured / limit | target |', '|---|---|---|---|'];
  const verdict = (what: string, limit: number, measured: number): void => {
    const ratio = measured / limit;
    const ok = Math.abs(ratio - 1) <= 0.1;
    rows.push(`| ${what}: ${(limit / MiB).toFixed(2)} MiB/s | ${(measured / MiB).toFixed(3)} MiB/s | ${ratio.toFixed(3)} | 0.9–1.1 ${ok ? 'met' : 'MISSED'} |`);
  };
  try {
    const a = await agent(join(dir, 'agent-job'), []);
    try {
      const measured = await measureRate(a.client, [{ type: 'upload', files: [{ url: url('one.bin'), file: src }], maxRateBps: RATE, yield: false }]);
      verdict('one job, its own maxRate', RATE, measured);
    } finally {
      a.client.close();
      await a.p.stop();
    }
    const b = await agent(join(dir, 'agent-global'), ['--max-rate', String(2 * RATE), '--max-concurrent', '3']);
    try {
      const specs: AgentJobSpec[] = [1, 2, 3].map((i) => ({ type: 'upload', files: [{ url: url(`g${i}.bin`), file: src }], yield: false }));
      const measured = await measureRate(b.client, specs);
      verdict('three jobs, the global --max-rate', 2 * RATE, measured);
    } finally {
      b.client.close();
      await b.p.stop();
    }
  } finally {
    await server.stop();
  }
  for (const r of rows) log(r);
}

/** Runs a command, failing loudly. */
function sh(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

const NS_C = 'bitsbench-c';
const NS_R = 'bitsbench-r';
const NS_S = 'bitsbench-s';
const IP_C = '10.213.7.1';
const IP_S = '10.213.8.2';

function teardown(): void {
  for (const ns of [NS_C, NS_R, NS_S]) spawnSync('ip', ['netns', 'del', ns]);
}

/**
 * client (10.213.7.1) ── router ── server (10.213.8.2): the router's link to the server is the
 * bottleneck, a tbf with a deep queue, as a home router's uplink. (The queue must not be on the
 * sending host itself: there, TCP small queues keep each local flow from filling it.)
 */
function setupNamespaces(): void {
  teardown();
  for (const ns of [NS_C, NS_R, NS_S]) {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh(['ip', 'link', 'add', 'bitsb-c', 'netns', NS_C, 'type', 'veth', 'peer', 'name', 'bitsb-rc', 'netns', NS_R]);
  sh(['ip', 'link', 'add', 'bitsb-s', 'netns', NS_S, 'type', 'veth', 'peer', 'name', 'bitsb-rs', 'netns', NS_R]);
  const links: [string, string, string][] = [
    [NS_C, 'bitsb-c', `${IP_C}/24`],
    [NS_R, 'bitsb-rc', '10.213.7.254/24'],
    [NS_R, 'bitsb-rs', '10.213.8.254/24'],
    [NS_S, 'bitsb-s', `${IP_S}/24`],
  ];
  for (const [ns, dev, cidr] of links) {
    sh(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  sh(['ip', '-n', NS_C, 'route', 'add', 'default', 'via', '10.213.7.254']);
  sh(['ip', '-n', NS_S, 'route', 'add', 'default', 'via', '10.213.8.254']);
  sh(['ip', 'netns', 'exec', NS_R, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  sh(['ip', 'netns', 'exec', NS_R, 'tc', 'qdisc', 'add', 'dev', 'bitsb-rs', 'root', 'tbf', 'rate', `${YIELD_MBIT}mbit`, 'burst', '32kbit', 'latency', '400ms']);
}

/** The client side's transmitted bytes on the veth. */
async function txBytes(): Promise<number> {
  const r = spawnSync('ip', ['netns', 'exec', NS_C, 'cat', '/sys/class/net/bitsb-c/statistics/tx_bytes'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

const SINK = `
const net = require('node:net');
let bytes = 0;
net.createServer((s) => { s.on('data', (d) => (bytes += d.length)); s.on('error', () => {}); }).listen(9000, '${IP_S}', () => console.log('ready'));
process.on('SIGTERM', () => { console.log(JSON.stringify({ bytes })); process.exit(0); });
`;

const BULK = `
const net = require('node:net');
const chunk = Buffer.alloc(256 * 1024, 7);
const s = net.connect(9000, '${IP_S}', () => { const pump = () => { while (s.write(chunk)); }; s.on('drain', pump); pump(); });
s.on('error', () => {});
setTimeout(() => { s.destroy(); process.exit(0); }, ${YIELD_SECONDS * 1000});
`;

/** One yield round: the agent's share of the link while a bulk flow competes. */
async function yieldRound(dir: string, withYield: boolean, serverPort: number): Promise<{ agent: number; bulk: number }> {
  const stateDir = join(dir, `agent-yield-${withYield}`);
  const a = await agent(stateDir, [], NS_C);
  const sinkProc = spawn('ip', ['netns', 'exec', NS_S, process.execPath, '-e', SINK], { stdio: ['ignore', 'pipe', 'inherit'] });
  const sinkOut: string[] = [];
  createInterface({ input: sinkProc.stdout! }).on('line', (l) => sinkOut.push(l));
  try {
    for (let i = 0; i < 100 && !sinkOut.includes('ready'); i++) await sleep(50);
    const src = join(dir, 'yield.bin');
    const job = await a.client.enqueue({ type: 'upload', files: [{ url: `http://${IP_S}:${serverPort}/yield-${withYield}.bin`, file: src }], yield: withYield, minRetryDelayMs: 500 });
    await sleep(5_000);
    const alone = (await a.client.info(job.id)).bytesDone;
    const tx0 = await txBytes();
    const bulk = run([process.execPath, '-e', BULK], NS_C);
    await new Promise<void>((resolve) => bulk.proc.once('exit', () => resolve()));
    const tx1 = await txBytes();
    const info = await a.client.info(job.id);
    if (info.state === 'ERROR') {
      failed = true;
      log(`  the agent's upload failed: ${info.error?.message}`);
    }
    sinkProc.kill('SIGTERM');
    await new Promise<void>((resolve) => sinkProc.once('exit', () => resolve()));
    const bulkBytes = (JSON.parse(sinkOut.find((l) => l.startsWith('{')) ?? '{"bytes":0}') as { bytes: number }).bytes;
    const agentBytes = Math.max(0, tx1 - tx0 - bulkBytes);
    log(`  yield ${withYield ? 'on ' : 'off'}: alone ${((alone * 8) / 5 / 1e6).toFixed(1)} Mbit/s; with the bulk flow: agent ${((agentBytes * 8) / YIELD_SECONDS / 1e6).toFixed(1)} Mbit/s, bulk ${((bulkBytes * 8) / YIELD_SECONDS / 1e6).toFixed(1)} Mbit/s`);
    await a.client.cancel(job.id).catch(() => undefined);
    return { agent: agentBytes, bulk: bulkBytes };
  } finally {
    a.client.close();
    await a.p.stop();
    if (sinkProc.exitCode === null) sinkProc.kill('SIGKILL');
  }
}

async function yielding(dir: string): Promise<void> {
  log(`\n## Yield: a ${YIELD_MBIT} Mbit/s uplink (tbf, 400 ms queue) on a router between two network namespaces, ${YIELD_SECONDS} s of a competing bulk TCP flow`);
  const why = process.getuid?.() !== 0 ? 'not root' : spawnSync('tc', ['-V']).error ? 'tc (iproute2) is not installed' : undefined;
  if (why) {
    log(`*** SKIPPED LOUDLY: the yield benchmark needs network namespaces: ${why} ***`);
    return;
  }
  try {
    setupNamespaces();
  } catch (err) {
    log(`*** SKIPPED LOUDLY: cannot make the network namespaces: ${(err as Error).message} ***`);
    teardown();
    return;
  }
  const server = await serve(join(dir, 'srv2'), IP_S, 8080, NS_S);
  try {
    await makeFile(join(dir, 'yield.bin'), 512 * MiB);
    const rows = ['| yield | agent share | bulk flow share |', '|---|---|---|'];
    for (const withYield of [true, false]) {
      const r = await yieldRound(dir, withYield, server.port);
      const total = r.agent + r.bulk;
      rows.push(`| ${withYield ? 'on' : 'off'} | ${((100 * r.agent) / total).toFixed(1)} % | ${((100 * r.bulk) / total).toFixed(1)} % |`);
    }
    for (const r of rows) log(r);
  } finally {
    await server.stop();
    teardown();
  }
}

const dir = await mkdtemp(join(os.tmpdir(), 'bits-bench-agent-'));
try {
  log(`# bits agent benchmark (${os.cpus().length} cores, Node ${process.version})`);
  const only = process.env['BENCH_ONLY'];
  if (!only || only.includes('throttle')) await throttling(dir);
  if (!only || only.includes('yield')) await yielding(dir);
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
