/**
 * Concurrency soak (part of `npm run bench`): BENCH_SOAK_CLIENTS (default 64) authenticated clients
 * upload files of mixed sizes (4 KiB to 4 MiB, 1 MiB fragments) to one `bits serve` child for
 * BENCH_SOAK_SECONDS (default 20) or BENCH_SOAK_UPLOADS uploads (default 3000), whichever ends
 * first, while the sweep runs every second and other clients leave sessions behind for it to expire.
 * Every committed file is checked (size and sha256). Prints uploads/s, p50/p99 fragment Ack latency
 * and failures; the exit code is non-zero when any upload failed or a file is wrong.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { peakRss, startChild, stopChild } from './child-process.js';
import { SocketReader } from '../test/helpers/socket-reader.js';
import { bitsUpload } from './upload-clients.js';
import { envInt } from './env-int.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');

const CLIENTS = envInt('BENCH_SOAK_CLIENTS', 64);
const SECONDS = envInt('BENCH_SOAK_SECONDS', 20);
const MAX_UPLOADS = envInt('BENCH_SOAK_UPLOADS', 3000);
const SIZES = [4 * KiB, 64 * KiB, 168_000, 1 * MiB, 4 * MiB];
const ABANDONERS = 4;

const log = (s: string): void => void process.stdout.write(`${s}\n`);
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : Number.NaN;
};

/** Creates a session and walks away from it. */
async function leaveSession(port: number, path: string, authorization: string): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  try {
    const reader = new SocketReader(socket);
    socket.write(
      `BITS_POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\nBITS-Packet-Type: Create-Session\r\n` +
        `BITS-Supported-Protocols: {7df0354d-249b-430f-820d-3d2a9bef4931}\r\nContent-Length: 0\r\n\r\n`,
    );
    const res = await reader.response({ skipInterim: true });
    if (res.status !== 200) throw new Error(`Create-Session answered ${res.status}`);
  } finally {
    socket.destroy();
  }
}

async function main(): Promise<number> {
  const base = await mkdtemp(join(os.tmpdir(), 'bits-soak-'));
  const root = join(base, 'root');
  await mkdir(root, { recursive: true });
  const users = join(base, 'users.json');
  const added = spawnSync(process.execPath, [CLI, 'user', 'add', 'fleet', '--users', users], { input: 'fleet-password\n', encoding: 'utf8' });
  if (added.status !== 0) throw new Error(`bits user add: ${added.stderr}`);
  const config = join(base, 'server.json');
  await writeFile(
    config,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      stateDir: join(base, 'state'),
      sweepInterval: 1,
      vdirs: [
        {
          path: '/',
          directory: root,
          sessionTimeout: 5,
          sessionsPerUserLimit: 0,
          auth: { schemes: ['basic'], users, allowInsecureBasic: true },
        },
      ],
    }),
  );
  const server = await startChild(CLI, ['serve', '--config', config], (l) => l['msg'] === 'listening', { keepLines: true });
  const auth = { Authorization: `Basic ${Buffer.from('fleet:fleet-password').toString('base64')}` };
  const pool = randomFillSync(Buffer.alloc(4 * MiB));
  const failures: string[] = [];
  const ackMs: number[] = [];
  let started = 0;
  let done = 0;
  let abandoned = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  const more = (): boolean => performance.now() < deadline && started < MAX_UPLOADS;

  const uploader = async (w: number): Promise<void> => {
    while (more()) {
      const n = started++;
      const size = SIZES[n % SIZES.length]!;
      const offset = (n * 4099) % (pool.length - size + 1);
      const name = `c${w}-${n}.bin`;
      try {
        const r = await bitsUpload(server.port, `/${name}`, { total: size, fragmentSize: MiB, chunk: (o, len) => pool.subarray(offset + o, offset + o + len) }, auth);
        ackMs.push(...r.fragmentMs);
        const file = join(root, name);
        const got = await readFile(file);
        if (got.length !== size || createHash('sha256').update(got).digest('hex') !== r.sha256) failures.push(`${name}: committed bytes differ`);
        await rm(file);
        done++;
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    }
  };
  // Sessions left behind on purpose (Create-Session, then gone), for the sweep to expire meanwhile.
  const abandoner = async (): Promise<void> => {
    while (more()) {
      await leaveSession(server.port, `/abandoned-${abandoned++}.bin`, auth.Authorization).catch((err: unknown) => {
        failures.push(`abandoned session: ${(err as Error).message}`);
      });
      await sleep(50);
    }
  };

  log(`bits-upload soak: ${CLIENTS} authenticated clients, mixed sizes ${SIZES.map((s) => (s >= MiB ? `${s / MiB} MiB` : `${Math.round(s / KiB)} KiB`)).join(' / ')}, sweep every 1 s, ${SECONDS} s or ${MAX_UPLOADS} uploads`);
  await Promise.all([...Array.from({ length: CLIENTS }, (_, w) => uploader(w)), ...Array.from({ length: ABANDONERS }, () => abandoner())]);
  const seconds = (performance.now() - t0) / 1000;
  const rss = peakRss(server.pid);
  await stopChild(server);
  const expired = server.lines.filter((l) => l['msg'] === 'session expired').length;
  const internal = server.lines.filter((l) => typeof l['level'] === 'number' && (l['level'] as number) >= 50).length;
  await rm(base, { recursive: true, force: true });

  log(`  uploads committed and verified: ${done} in ${fmt(seconds, 1)} s = ${fmt(done / seconds)} uploads/s`);
  log(`  fragment Ack latency: p50 ${fmt(quantile(ackMs, 0.5))} ms, p99 ${fmt(quantile(ackMs, 0.99))} ms (${ackMs.length} Acks)`);
  log(`  sessions expired by the sweep meanwhile: ${expired}; server error log lines: ${internal}; server peak RSS ${rss === undefined ? 'n/a' : `${fmt(rss / MiB)} MiB`}`);
  log(`  failures: ${failures.length}`);
  for (const f of failures.slice(0, 20)) log(`    ${f}`);
  return failures.length || internal ? 1 : 0;
}

process.exitCode = await main();
