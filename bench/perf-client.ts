/**
 * `npm run bench`, the client: `bits upload FILE URL` (the CLI as its own process, default options)
 * to a `bits serve` child with a plain vdir, against `curl -T FILE URL` (a plain PUT) to
 * bench/put-sink.ts, a trivial sink that writes the body to a file and fdatasyncs once at the end.
 * The same BENCH_CLIENT_MB MiB file (default 1024) goes to both, alternating A/B for
 * BENCH_CLIENT_ROUNDS rounds (default 3, at least 3). Per variant: speed (file size over the client
 * process's wall time, start-up included), CPU of the client process (user + system, from
 * /usr/bin/time) per GiB, its peak RSS, and the receiver's CPU per GiB; then the paired ratios
 * bits / curl (targets: speed ≥ 0.8, CPU per GiB ≤ 1.5).
 *
 * The source file, the server's root and state, the client's journal and the sink's file are in one
 * temp folder under BENCH_CLIENT_DIR (default the system temp folder), so on the same disk for both.
 * Every uploaded file is checked (size and sha256) and deleted; the folder is removed at the end.
 * BENCH_CLIENT_FLAGS adds flags to `bits upload` (e.g. "--fragment-size 8388608").
 *
 *   node dist/bench/perf-client.js
 *
 * Exits non-zero only when an upload fails or a file arrives wrong; a missed target is reported.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, pairedRatio, printComparison, printVerdicts } from './ab.js';
import type { Sample, Verdict } from './ab.js';
import { cpuSeconds, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { envInt } from './env-int.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SIZE = envInt('BENCH_CLIENT_MB', 1024) * MiB;
const ROUNDS = envInt('BENCH_CLIENT_ROUNDS', 3);
const BASE = process.env['BENCH_CLIENT_DIR'] || os.tmpdir();
const FLAGS = (process.env['BENCH_CLIENT_FLAGS'] ?? '').split(/\s+/).filter(Boolean);
const SPEED_TARGET = 0.8;
const CPU_TARGET = 1.5;
/** No single upload may take longer than this (a hung one fails the benchmark). */
const UPLOAD_TIMEOUT_MS = 10 * 60_000;
const TIME = '/usr/bin/time';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const SINK = join(here, 'put-sink.js');
const log = (s: string): void => void process.stdout.write(`${s}\n`);

/** Writes `size` bytes (a 16 MiB random pool, repeated) and returns their sha256. */
async function makeFile(path: string, size: number): Promise<string> {
  const pool = randomFillSync(Buffer.allocUnsafe(16 * MiB));
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < size; ) {
      const chunk = pool.subarray(0, Math.min(pool.length, size - done));
      hash.update(chunk);
      await fh.write(chunk);
      done += chunk.length;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Checks an uploaded file's size and sha256, then deletes it. */
async function verifyAndDelete(path: string, sha: string): Promise<void> {
  const size = (await stat(path)).size;
  if (size !== SIZE) throw new Error(`${path}: ${size} bytes, sent ${SIZE}`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB })) hash.update(chunk as Buffer);
  if (hash.digest('hex') !== sha) throw new Error(`${path}: sha256 differs from the source's`);
  await rm(path);
}

/** What one client process cost: wall time, and (when /usr/bin/time is there) CPU and peak RSS. */
interface Run {
  readonly wallMs: number;
  readonly cpu: number;
  readonly peakRssMiB: number;
}

/**
 * Runs `command args` to its end under /usr/bin/time (user + system CPU and peak RSS of that process
 * alone) and times it. Rejects when it exits non-zero or runs past {@link UPLOAD_TIMEOUT_MS}.
 */
async function timedRun(command: string, args: string[], accounting: string): Promise<Run> {
  const timed = existsSync(TIME);
  const argv = timed ? [TIME, '-f', '%U %S %M', '-o', accounting, command, ...args] : [command, ...args];
  const started = performance.now();
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
  const timer = setTimeout(() => proc.kill('SIGKILL'), UPLOAD_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr}`);
  if (!timed) return { wallMs, cpu: Number.NaN, peakRssMiB: Number.NaN };
  const [user, sys, rssKb] = (await readFile(accounting, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wallMs, cpu: user! + sys!, peakRssMiB: rssKb! / 1024 };
}

/** One upload by a client process to a receiver child, measured, checked, its file deleted. */
async function measure(receiver: Child, command: string, args: string[], uploaded: string, sha: string, accounting: string): Promise<Sample> {
  const receiverCpu0 = cpuSeconds(receiver.pid) ?? Number.NaN;
  const run = await timedRun(command, args, accounting);
  const receiverCpu = (cpuSeconds(receiver.pid) ?? Number.NaN) - receiverCpu0;
  await verifyAndDelete(uploaded, sha);
  return {
    value: SIZE / MiB / (run.wallMs / 1000),
    cpu: run.cpu,
    extra: { 'CPU s/GiB': run.cpu / (SIZE / GiB), 'peak RSS MiB': run.peakRssMiB, 'receiver CPU s/GiB': receiverCpu / (SIZE / GiB) },
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(BASE, 'bits-bench-client-'));
  const children: Child[] = [];
  try {
    const source = join(dir, 'source.bin');
    const sinkDir = join(dir, 'sink');
    const root = join(dir, 'root');
    await Promise.all([mkdir(sinkDir), mkdir(root)]);
    log(`\nclient: ${SIZE / MiB} MiB from ${dir} (source, server state, client journal and sink file on one disk)`);
    const sha = await makeFile(source, SIZE);
    const serveArgs = ['serve', '--host', '127.0.0.1', '--port', '0', '--root', root, '--state-dir', join(dir, 'server-state'), '--allow-overwrite'];
    const server = await startChild(CLI, serveArgs, (line) => line['msg'] === 'listening');
    children.push(server);
    const sink = await startChild(SINK, ['--dir', sinkDir], () => true);
    children.push(sink);
    const accounting = join(dir, 'time.txt');
    const bitsArgs = [CLI, 'upload', source, `http://127.0.0.1:${server.port}/bits.bin`, '--state-dir', join(dir, 'client-state'), '--quiet', ...FLAGS];
    const curlArgs = ['-sS', '--fail', '-o', '/dev/null', '-T', source, `http://127.0.0.1:${sink.port}/curl.bin`];
    const c = await alternate(`client: ${SIZE / MiB} MiB, bits upload → bits serve vs curl -T → put-sink (PUT, one fdatasync at the end)`, ROUNDS, [
      { name: 'curl → put-sink', run: () => measure(sink, 'curl', curlArgs, join(sinkDir, 'curl.bin'), sha, accounting) },
      { name: 'bits upload → bits serve', run: () => measure(server, process.execPath, bitsArgs, join(root, 'bits.bin'), sha, accounting) },
    ]);
    const verdicts: Verdict[] = [printComparison(c, { unit: 'MiB/s', target: { ratio: SPEED_TARGET } })];
    const cpuRatio = pairedRatio(c, 1, 0, (s) => s.cpu ?? Number.NaN);
    const cpuMet = Number.isFinite(cpuRatio) ? cpuRatio <= CPU_TARGET : undefined;
    log(`  client CPU per GiB, bits / curl: ${cpuRatio.toFixed(2)} (target ≤ ${CPU_TARGET}: ${cpuMet === undefined ? 'n/a' : cpuMet ? 'met' : 'MISSED'})`);
    verdicts.push({ label: 'client CPU per GiB, bits / curl', ratio: cpuRatio, target: { ratio: CPU_TARGET, atMost: true }, met: cpuMet });
    printVerdicts(verdicts);
  } finally {
    await Promise.all(children.map((child) => stopChild(child)));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench perf-client: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
