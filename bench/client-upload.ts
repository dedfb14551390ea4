/**
 * Client + server throughput through the CLI path: `bits serve` and `bits upload` as child processes,
 * one upload of BENCH_SIZE_MB MiB (default 1024) over loopback, checked byte for byte (sha256).
 *
 *   node dist/bench/client-upload.js
 *
 * Environment: BENCH_SIZE_MB, BENCH_ROUNDS (default 3; the median is reported), BENCH_FRAGMENT (bytes
 * per fragment, default: the client's default), BENCH_KEEP=1 (keep the temp folder).
 * Prints one line per round and a summary line `client-upload: <MiB/s> MiB/s (median of N)`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { envInt } from './env-int.js';

const MiB = 1024 * 1024;


const SIZE = envInt('BENCH_SIZE_MB', 1024) * MiB;
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const FRAGMENT = process.env['BENCH_FRAGMENT'];
const KEEP = process.env['BENCH_KEEP'] === '1';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
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

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Starts `bits serve` and resolves with its port once it logs "listening" (its log is drained). */
function serve(root: string, stateDir: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--root', root, '--state-dir', stateDir, '--allow-overwrite'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bits serve did not start')), 15_000);
    proc.once('exit', (code) => reject(new Error(`bits serve exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const e = JSON.parse(line) as { msg?: string; port?: number };
        if (e.msg === 'listening' && e.port) {
          clearTimeout(timer);
          resolve({ proc, port: e.port });
        }
      } catch {
        /* not JSON */
      }
    });
  });
}

/** Runs `bits upload --json`; resolves with the wall time and the client's own transfer time. */
function uploadOnce(file: string, url: string, stateDir: string): Promise<{ wallMs: number; ms: number; peakRssKb: number }> {
  const args = [CLI, 'upload', file, url, '--state-dir', stateDir, '--json', ...(FRAGMENT ? ['--fragment-size', FRAGMENT] : [])];
  const started = process.hrtime.bigint();
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let doneMs = Number.NaN;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as { event?: string; ms?: number };
    if (e.event === 'done') doneMs = e.ms!;
  });
  let peak = 0;
  const sampler = setInterval(() => {
    void import('node:fs/promises').then(({ readFile }) =>
      readFile(`/proc/${proc.pid}/status`, 'utf8').then(
        (s) => (peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0))),
        () => undefined,
      ),
    );
  }, 200);
  return new Promise((resolve, reject) => {
    proc.on('close', (code) => {
      clearInterval(sampler);
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`bits upload exited with ${code}: ${stderr}`));
      else resolve({ wallMs, ms: doneMs, peakRssKb: peak });
    });
  });
}

const dir = await mkdtemp(join(os.tmpdir(), 'bits-bench-client-'));
try {
  const source = join(dir, 'source.bin');
  log(`client-upload: preparing ${SIZE / MiB} MiB …`);
  const sha = await makeFile(source, SIZE);
  const server = await serve(join(dir, 'root'), join(dir, 'server-state'));
  try {
    const rates: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const r = await uploadOnce(source, `http://127.0.0.1:${server.port}/dump.bin`, join(dir, 'client-state'));
      const got = await sha256(join(dir, 'root', 'dump.bin'));
      if (got !== sha) throw new Error('the committed file differs from the source');
      const rate = SIZE / MiB / (r.wallMs / 1000);
      rates.push(rate);
      log(
        `client-upload round ${round}: ${(SIZE / MiB).toFixed(0)} MiB in ${(r.wallMs / 1000).toFixed(2)} s = ${rate.toFixed(1)} MiB/s ` +
          `(transfer ${(SIZE / MiB / (r.ms / 1000)).toFixed(1)} MiB/s, client peak RSS ${(r.peakRssKb / 1024).toFixed(0)} MiB), sha256 ok`,
      );
    }
    const sorted = [...rates].sort((a, b) => a - b);
    log(`client-upload: ${sorted[Math.floor((sorted.length - 1) / 2)]!.toFixed(1)} MiB/s (median of ${ROUNDS}, bits upload → bits serve over loopback, ${FRAGMENT ?? 'default'} fragments)`);
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
  }
} catch (err) {
  process.stderr.write(`client-upload: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  if (!KEEP) await rm(dir, { recursive: true, force: true });
}
