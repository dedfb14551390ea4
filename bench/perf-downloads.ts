/**
 * Downloads against nginx: the server (`bits serve --downloads`, a child process) and nginx (started
 * with a throw-away configuration, see bench/nginx.ts) serve the same folder on 127.0.0.1.
 *
 * 1. One file of BENCH_DOWNLOAD_MB MiB (default 1024) fetched whole on a fresh connection, once per
 *    variant per round. Each variant's bytes are checked once (size and sha256) before the timed
 *    rounds; every timed fetch checks its size.
 * 2. 4 KiB range GETs at random offsets of that file over BENCH_RANGE_CONNECTIONS (default 32)
 *    keep-alive connections, BENCH_RANGE_REQUESTS (default 20,000) per round, at most
 *    BENCH_RANGE_SECONDS (default 60) each: requests/s and CPU per request of the serving process(es).
 *    Every answer is checked (206, its Content-Range, its bytes).
 *
 * Each variant first answers a checked whole-file GET and 2,000 range GETs (warm-up, not timed).
 * Both comparisons alternate for BENCH_ROUNDS rounds (default 5, at least 3); medians and paired ratios
 * server / nginx are printed, then a summary. Without nginx (not installed and not installable) the
 * server's figures alone are printed and the comparison is said to be skipped. The exit code is
 * non-zero only when a download is wrong or fails. BENCH_KEEP=1 keeps the temp folder;
 * BENCH_SERVER_NODE_ARGS="--cpu-prof ..." passes node flags to the server child.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, printComparison, printVerdicts } from './ab.js';
import type { Sample, Variant, Verdict } from './ab.js';
import { cpuSeconds, startChild, stopChild } from './child-process.js';
import type { Child } from './child-process.js';
import { envInt } from './env-int.js';
import { findNginx, startNginx } from './nginx.js';

const MiB = 1024 * 1024;
const SIZE = envInt('BENCH_DOWNLOAD_MB', 1024) * MiB;
const ROUNDS = envInt('BENCH_ROUNDS', 5);
const RANGE = 4096;
const RANGE_REQUESTS = envInt('BENCH_RANGE_REQUESTS', 20_000);
const RANGE_CONNECTIONS = envInt('BENCH_RANGE_CONNECTIONS', 32);
const RANGE_SECONDS = envInt('BENCH_RANGE_SECONDS', 60);
const KEEP = process.env['BENCH_KEEP'] === '1';
const SERVER_NODE_ARGS = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
/** Range GETs each peer answers (checked) before the timed rounds. */
const WARM_UP_REQUESTS = 2000;
/** Longest a whole-file fetch may take. */
const FETCH_TIMEOUT_MS = 300_000;

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const FILE = 'big.bin';

/** The file is this pool repeated; its first RANGE bytes again at the end, so every range is one slice. */
const POOL = 16 * MiB;
const pool = randomFillSync(Buffer.allocUnsafe(POOL + RANGE));
pool.copy(pool, POOL, 0, RANGE);
const expectedSlice = (offset: number): Buffer => pool.subarray(offset % POOL, (offset % POOL) + RANGE);

const log = (s: string): void => void process.stdout.write(`${s}\n`);

/** Writes the served file; its sha256. */
async function writeServedFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let at = 0; at < SIZE; at += POOL) {
      const chunk = pool.subarray(0, Math.min(POOL, SIZE - at));
      hash.update(chunk);
      await fh.write(chunk);
    }
    // (on disk before anything is timed: no writeback competes with the downloads)
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** What one response head says. */
interface Head {
  status: number;
  length: number;
  contentRange: string | undefined;
}

function parseHead(text: string): Head {
  const status = Number(text.slice(9, 12));
  const length = /\r\ncontent-length: *(\d+)/i.exec(text);
  if (!length) throw new Error(`response without Content-Length: ${text.slice(0, 200)}`);
  const range = /\r\ncontent-range: *([^\r]+)/i.exec(text);
  return { status, length: Number(length[1]), contentRange: range?.[1] };
}

/**
 * A keep-alive connection that sends one request at a time and hands back each response (head and
 * body), reading with as little work as it can.
 */
class Connection {
  private buffered: Buffer[] = [];
  private bufferedLength = 0;
  private head: Head | undefined;
  private waiter: { resolve: (r: { head: Head; body: Buffer[] }) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  private constructor(
    readonly socket: net.Socket,
    private readonly onBody?: (chunk: Buffer) => void,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number, onBody?: (chunk: Buffer) => void): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(new Connection(socket, onBody));
      });
      socket.once('error', reject);
    });
  }

  /** Sends `request` and waits for its whole response. */
  exchange(request: string): Promise<{ head: Head; body: Buffer[] }> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.write(request, 'latin1');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  private onData(d: Buffer): void {
    if (!this.head) {
      this.buffered.push(d);
      this.bufferedLength += d.length;
      const all = this.buffered.length === 1 ? d : Buffer.concat(this.buffered);
      const end = all.indexOf('\r\n\r\n');
      if (end === -1) {
        this.buffered = [all];
        return;
      }
      this.head = parseHead(all.toString('latin1', 0, end));
      this.buffered = [];
      this.bufferedLength = 0;
      d = all.subarray(end + 4);
    }
    if (d.length > 0) {
      if (this.onBody) this.onBody(d);
      else this.buffered.push(d);
      this.bufferedLength += d.length;
    }
    if (this.bufferedLength >= this.head.length) this.finish();
  }

  private finish(): void {
    const head = this.head!;
    if (this.bufferedLength > head.length) {
      this.fail(new Error(`${this.bufferedLength - head.length} bytes beyond the response's Content-Length`));
      return;
    }
    const body = this.buffered;
    this.head = undefined;
    this.buffered = [];
    this.bufferedLength = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve({ head, body });
  }
}

/** A process serving the folder: where, and how much CPU it has used. */
interface Peer {
  readonly port: number;
  cpu(): number;
}

/** Fetches the whole file on a fresh connection; its size, the seconds it took and (if asked) its sha256. */
async function fetchWhole(peer: Peer, hashIt: boolean): Promise<{ bytes: number; seconds: number; sha256?: string }> {
  const hash = hashIt ? createHash('sha256') : undefined;
  let bytes = 0;
  const c = await Connection.open(peer.port, (chunk) => {
    bytes += chunk.length;
    hash?.update(chunk);
  });
  const timer = setTimeout(() => c.socket.destroy(new Error('whole-file fetch timed out')), FETCH_TIMEOUT_MS);
  try {
    const started = process.hrtime.bigint();
    const { head } = await c.exchange(`GET /${FILE} HTTP/1.1\r\nHost: bench\r\n\r\n`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (head.status !== 200) throw new Error(`GET /${FILE} answered ${head.status}`);
    if (bytes !== SIZE) throw new Error(`GET /${FILE} gave ${bytes} bytes, the file has ${SIZE}`);
    return { bytes, seconds, ...(hash ? { sha256: hash.digest('hex') } : {}) };
  } finally {
    clearTimeout(timer);
    c.close();
  }
}

/** One round of `requests` range GETs (at most); requests/s and the serving process' CPU per request. */
async function rangeRound(peer: Peer, requests = RANGE_REQUESTS): Promise<Sample> {
  const connections = await Promise.all(Array.from({ length: RANGE_CONNECTIONS }, () => Connection.open(peer.port)));
  const deadline = Date.now() + RANGE_SECONDS * 1000;
  let issued = 0;
  let done = 0;
  const cpu0 = peer.cpu();
  const client0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  const worker = async (c: Connection): Promise<void> => {
    while (issued < requests && Date.now() < deadline) {
      issued++;
      const offset = Math.floor(Math.random() * (SIZE - RANGE + 1));
      const last = offset + RANGE - 1;
      const { head, body } = await c.exchange(`GET /${FILE} HTTP/1.1\r\nHost: bench\r\nRange: bytes=${offset}-${last}\r\n\r\n`);
      if (head.status !== 206) throw new Error(`range ${offset}-${last} answered ${head.status}`);
      if (head.contentRange !== `bytes ${offset}-${last}/${SIZE}`) throw new Error(`range ${offset}-${last} answered Content-Range ${head.contentRange}`);
      const got = body.length === 1 ? body[0]! : Buffer.concat(body);
      if (!got.equals(expectedSlice(offset))) throw new Error(`range ${offset}-${last}: wrong bytes`);
      done++;
    }
  };
  try {
    await Promise.all(connections.map(worker));
  } finally {
    for (const c of connections) c.close();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = peer.cpu() - cpu0;
  const client = process.cpuUsage(client0);
  const clientMicros = client.user + client.system;
  return { value: done / seconds, cpu, extra: { 'CPU µs/request': (cpu / done) * 1e6, 'client CPU µs/request': clientMicros / done } };
}

/** The server child as a peer. */
function serverPeer(child: Child): Peer {
  return { port: child.port, cpu: () => cpuSeconds(child.pid) ?? Number.NaN };
}

async function startServer(base: string, served: string): Promise<Child> {
  const state = join(base, 'state');
  await mkdir(state, { recursive: true });
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--root', served, '--state-dir', state, '--downloads'];
  const onOtherLine = (text: string): void => void process.stderr.write(`[server] ${text}\n`);
  return startChild(CLI, args, (line) => line['msg'] === 'listening', { nodeArgs: SERVER_NODE_ARGS, onOtherLine });
}

/** Checks a peer's whole-file answer against the file once (size and sha256). */
async function verifyWhole(name: string, peer: Peer, sha256: string): Promise<void> {
  const got = await fetchWhole(peer, true);
  if (got.sha256 !== sha256) throw new Error(`${name}: GET /${FILE} sha256 ${got.sha256}, the file's is ${sha256}`);
  log(`${name}: whole file checked (${got.bytes} bytes, sha256 matches)`);
  // (a short round of ranges first, so that neither is measured while it warms up)
  await rangeRound(peer, WARM_UP_REQUESTS);
}

async function main(): Promise<number> {
  const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
  log(`downloads benchmark: node ${process.version}, ${os.cpus().length} x ${cpuModel}`);
  log(`file ${SIZE / MiB} MiB, ${ROUNDS} rounds; ranges: ${RANGE_REQUESTS} x ${RANGE} B over ${RANGE_CONNECTIONS} connections (at most ${RANGE_SECONDS} s) per round`);
  const nginxBin = findNginx(log);
  const base = await mkdtemp(join(os.tmpdir(), 'bits-bench-downloads-'));
  let server: Child | undefined;
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    const served = join(base, 'files');
    await mkdir(served);
    const sha256 = await writeServedFile(join(served, FILE));
    server = await startServer(base, served);
    const peers: { name: string; peer: Peer }[] = [];
    if (nginxBin) {
      nginx = await startNginx(nginxBin, served, join(base, 'nginx')).catch((err: Error) => {
        log(`!!! NGINX DID NOT START: THE NGINX COMPARISON IS SKIPPED !!!\n${err.message}`);
        return undefined;
      });
      if (nginx) peers.push({ name: 'nginx', peer: nginx });
    }
    peers.push({ name: 'server', peer: serverPeer(server) });
    for (const { name, peer } of peers) await verifyWhole(name, peer, sha256);

    const whole: Variant[] = peers.map(({ name, peer }) => ({
      name,
      run: async () => {
        const cpu0 = peer.cpu();
        const client0 = process.cpuUsage();
        const { bytes, seconds } = await fetchWhole(peer, false);
        const cpu = peer.cpu() - cpu0;
        const client = process.cpuUsage(client0);
        const gib = bytes / (1024 * MiB);
        return { value: bytes / 1e6 / seconds, cpu, extra: { 'CPU s/GiB': cpu / gib, 'client CPU s/GiB': (client.user + client.system) / 1e6 / gib } };
      },
    }));
    const ranges: Variant[] = peers.map(({ name, peer }) => ({ name, run: () => rangeRound(peer) }));

    const verdicts: Verdict[] = [];
    const target = (ratio: number) => (nginx ? { ratio } : undefined);
    verdicts.push(printComparison(await alternate(`GET ${SIZE / MiB} MiB, server / nginx`, ROUNDS, whole), { unit: 'MB/s', target: target(0.6) }));
    verdicts.push(
      printComparison(await alternate(`${RANGE} B range GETs over ${RANGE_CONNECTIONS} connections, server / nginx`, ROUNDS, ranges), {
        unit: 'requests/s',
        target: target(0.3),
      }),
    );
    if (!nginx) log('!!! nginx is not available: the figures above are the server alone, THE NGINX COMPARISON WAS SKIPPED !!!');
    printVerdicts(verdicts);
    return 0;
  } catch (err) {
    log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    if (server) process.stderr.write(server.stderr());
    return 1;
  } finally {
    if (server) await stopChild(server);
    await nginx?.stop();
    if (KEEP) log(`kept ${base}`);
    else await rm(base, { recursive: true, force: true });
  }
}

process.exitCode = await main();
