// A farm of real `bits serve` nodes (records in PostgreSQL, bytes in S3) behind a real HAProxy,
// and the project's own client run against it as a child process, for fault tests: nodes can be
// killed, stopped, continued and restarted on their ports while an upload runs.
//
//   const farm = await startFarm({ pgUrl: db.url, s3Endpoint: s3.endpoint, bucket: bucket.name });
//   try {
//     const run = startUpload(file, farm.url('a.bin'), { stateDir });
//     await run.until('a third sent', () => run.bytesDone() >= size / 3, 60_000);
//     const holder = await farm.leaseHolder(run.sessionId()!);
//     await farm.kill(holder?.node ?? 0, 'SIGKILL');
//     await farm.restart(holder?.node ?? 0);
//     assert.equal((await run.done).code, 0);
//   } finally {
//     await farm.stop();
//   }
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { sessionKey } from '../../src/protocol/session-id.js';
import { CLI, startCli } from './cli.js';
import { deadPort } from './dead-port.js';
import { startHaproxy } from './haproxy.js';
import type { Haproxy, HaproxyOptions } from './haproxy.js';
import { s3Service } from './services.js';

/** What {@link startFarm} builds. */
export interface FarmOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /** PostgreSQL database of the records (e.g. a `freshDatabase()`'s or a `privatePostgres()`'s URL). */
  pgUrl: string;
  /** S3 endpoint of the bytes (e.g. a `privateRgw()`'s); default the shared gateway's. */
  s3Endpoint?: string;
  /** Bucket of both the session objects (under `sessions/`) and the uploads (under `uploads/`). */
  bucket: string;
  /** `store.records.leaseTtl` (default: the server's, 10 s). */
  leaseTtl?: string;
  /** Keys added to (or replacing) those of the vdir `/uploads` (e.g. `{ sessionTimeout: '10m' }`). */
  vdir?: Record<string, unknown>;
  /** Tuning of the HAProxy in front (e.g. `idleTimeoutMs` to cut requests to a stalled node). */
  haproxy?: HaproxyOptions;
}

/** A running farm; nodes are numbered from 0. */
export interface Farm {
  /** HAProxy's frontend port on 127.0.0.1. */
  readonly port: number;
  /** Number of nodes. */
  readonly size: number;
  /** The vdir's URL of `name` through HAProxy: `http://127.0.0.1:PORT/uploads/<name>`. */
  url(name: string): string;
  /** The key `name` is uploaded to in the bucket (`uploads/<name>`). */
  key(name: string): string;
  /** The port node `i` listens on (kept across restarts: HAProxy's backend). */
  nodePort(i: number): number;
  /** The pid of node `i`'s current process. */
  pidOf(i: number): number;
  /** Node `i`'s id in the records (`hostname:pid`, the server's default). */
  nodeId(i: number): string;
  /**
   * Sends `signal` to node `i`. SIGKILL, SIGTERM and SIGINT wait until the process has exited
   * (bounded: SIGKILL after 10 s); SIGSTOP and SIGCONT return at once.
   */
  kill(i: number, signal: NodeJS.Signals): Promise<void>;
  /** Starts node `i` again on its port (ending its process first if it still runs). */
  restart(i: number): Promise<void>;
  /**
   * The node whose current process holds the lease of `sessionId` in PostgreSQL, and the lease's
   * fencing token; undefined when no lease row exists or its holder is none of these processes.
   */
  leaseHolder(sessionId: string): Promise<{ node: number; token: number } | undefined>;
  /** The last log lines of node `i` (all its processes), for assertion messages. */
  output(i: number): string;
  /** Stops HAProxy and every node (continuing stopped ones first), and removes the temp dir. */
  stop(): Promise<void>;
}

/** A node's process and what it printed. */
interface Node {
  readonly port: number;
  readonly stateDir: string;
  child: ChildProcess;
  exited: Promise<void>;
  log: string[];
}

const VDIR = '/uploads';
/** Log lines kept per node. */
const LOG_LINES = 200;
const EXIT_WAIT_MS = 10_000;

/**
 * The farm configuration file of {@link startFarm} (contract: `store` block, vdir `destination`),
 * exported for documentation and for tests that start nodes themselves.
 * @example
 * JSON.stringify(farmConfig({ pgUrl, bucket: 'b' }, '/tmp/x/state'));
 */
export function farmConfig(o: FarmOptions, stateDir: string): Record<string, unknown> {
  const s3 = s3Service();
  const endpoint = o.s3Endpoint ?? s3?.endpoint;
  if (!endpoint) throw new Error('farmConfig: no S3 endpoint (use requireServices(t, ["s3"]) first)');
  return {
    listen: { host: '127.0.0.1', port: 0 },
    stateDir,
    store: {
      records: { type: 'postgres', url: o.pgUrl, ...(o.leaseTtl ? { leaseTtl: o.leaseTtl } : {}) },
      bytes: { type: 's3', endpoint, region: s3?.region ?? 'us-east-1', bucket: o.bucket, prefix: 'sessions/', forcePathStyle: true },
    },
    vdirs: [{ path: VDIR, destination: `s3://${o.bucket}/uploads/`, uploadEnabled: true, ...o.vdir }],
  };
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Keeps the last {@link LOG_LINES} lines of a stream in `log`. */
function keepLines(stream: NodeJS.ReadableStream | null, log: string[], tag: string): void {
  let partial = '';
  stream?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) log.push(`${tag} ${line}`);
    if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
  });
}

async function launch(node: Node, configFile: string): Promise<void> {
  const { child } = await startCli(['--config', configFile, '--port', String(node.port), '--state-dir', node.stateDir]);
  node.child = child;
  node.exited = new Promise<void>((resolve) => {
    if (!alive(child)) resolve();
    else child.once('exit', () => resolve());
  });
  keepLines(child.stdout, node.log, `[${child.pid}]`);
  keepLines(child.stderr, node.log, `[${child.pid} stderr]`);
}

async function signal(node: Node, sig: NodeJS.Signals): Promise<void> {
  if (!alive(node.child)) return;
  node.child.kill(sig);
  if (sig === 'SIGSTOP' || sig === 'SIGCONT') return;
  const gone = await Promise.race([node.exited.then(() => true), sleep(EXIT_WAIT_MS).then(() => false)]);
  if (!gone) {
    node.child.kill('SIGKILL');
    await node.exited;
  }
}

/**
 * Writes a farm configuration into a temp dir, starts `nodes` nodes of `bits serve --config` on
 * free ports (each with a state dir of its own), and HAProxy in front of them (round-robin per
 * connection; a node that is down is skipped within about a second, but a SIGSTOPped one still
 * accepts connections and is not). Rejects, with nothing left running, when a node or HAProxy does
 * not start.
 * @example
 * const farm = await startFarm({ pgUrl: db.url, bucket: b.name });
 * t.after(() => farm.stop());
 */
export async function startFarm(o: FarmOptions): Promise<Farm> {
  const count = o.nodes ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'bits-farm-'));
  const configFile = join(dir, 'farm.json');
  const nodes: Node[] = [];
  let lb: Haproxy | undefined;
  const stop = async (): Promise<void> => {
    await lb?.stop();
    await Promise.all(
      nodes.filter(Boolean).map(async (n) => {
        await signal(n, 'SIGCONT');
        await signal(n, 'SIGTERM');
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await writeFile(configFile, JSON.stringify(farmConfig(o, join(dir, 'state')), null, 2));
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await deadPort());
    const started = await Promise.allSettled(
      ports.map(async (port, i) => {
        const node: Node = { port, stateDir: join(dir, `node${i}`), child: undefined!, exited: Promise.resolve(), log: [] };
        await launch(node, configFile);
        nodes[i] = node;
      }),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    lb = await startHaproxy(ports, o.haproxy);
  } catch (err) {
    await stop();
    throw err;
  }
  const port = lb.port;
  const at = (i: number): Node => {
    const n = nodes[i];
    if (!n) throw new RangeError(`no node ${i} in a farm of ${count}`);
    return n;
  };
  const pidOf = (i: number): number => at(i).child.pid!;
  const nodeId = (i: number): string => `${hostname()}:${pidOf(i)}`;
  return {
    port,
    size: count,
    url: (name) => `http://127.0.0.1:${port}${VDIR}/${encodeURIComponent(name)}`,
    key: (name) => `uploads/${name}`,
    nodePort: (i) => at(i).port,
    pidOf,
    nodeId,
    kill: (i, sig) => signal(at(i), sig),
    async restart(i) {
      const n = at(i);
      await signal(n, 'SIGCONT');
      await signal(n, 'SIGTERM');
      await launch(n, configFile);
    },
    async leaseHolder(sessionId) {
      const lease = await sessionLease(o.pgUrl, sessionId);
      if (lease === undefined) return undefined;
      const node = nodes.findIndex((_, k) => alive(at(k).child) && nodeId(k) === lease.node);
      return node < 0 ? undefined : { node, token: lease.token };
    },
    output: (i) => at(i).log.join('\n'),
    stop,
  };
}

/** Runs one query on a connection of its own (bounded: 5 s to connect, 5 s per statement). */
async function queryOnce<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 5000 });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The lease row of `sessionId` in `bits_leases`: the holder's node id and the fencing token; or
 * undefined when there is none (a lease lives while a packet of the session is being handled, or
 * until a dead holder's expires or is taken over).
 * @example
 * await sessionLease(db.url, '{0F5B...}'); // { node: 'host:4242', token: 17 }
 */
export async function sessionLease(pgUrl: string, sessionId: string): Promise<{ node: string; token: number } | undefined> {
  const rows = await queryOnce<{ node: string; token: string }>(pgUrl, 'SELECT node, token::text FROM bits_leases WHERE key = $1', [
    sessionKey(sessionId),
  ]);
  const r = rows[0];
  return r && { node: r.node, token: Number(r.token) };
}

/** A session's row in `bits_sessions`, as far as fault tests look at it. */
export interface SessionRow {
  /** Contiguous bytes the session holds. */
  received: number;
  state: string;
  /** The node that last wrote the record. */
  node: string;
}

/**
 * The session's record in PostgreSQL, or undefined once it is gone (closed or cancelled).
 * @example
 * assert.equal(await sessionRow(db.url, id), undefined);
 */
export async function sessionRow(pgUrl: string, sessionId: string): Promise<SessionRow | undefined> {
  const rows = await queryOnce<{ received: string; state: string; node: string }>(
    pgUrl,
    `SELECT record->>'received' AS received, record->>'state' AS state, node FROM bits_sessions WHERE key = $1`,
    [sessionKey(sessionId)],
  );
  const r = rows[0];
  return r && { received: Number(r.received), state: r.state, node: r.node };
}

/**
 * sha256 (hex) of an object, streamed from S3.
 * @example
 * assert.equal(await objectSha256(bucket.client, bucket.name, farm.key('a.bin')), sha);
 */
export async function objectSha256(client: S3Client, bucket: string, key: string): Promise<string> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: AbortSignal.timeout(120_000) });
  const hash = createHash('sha256');
  for await (const chunk of res.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
  return hash.digest('hex');
}

/** One `--json` event of the client (`progress`, `retry`, `session`, `restart`, `done`, ...). */
export interface ClientEvent {
  readonly event: string;
  readonly [field: string]: unknown;
}

/** How the client process ended. */
export interface UploadExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** A `bits upload --json` child process and the events it printed so far. */
export interface UploadRun {
  /** Every event so far, in order. */
  readonly events: readonly ClientEvent[];
  /** Bytes the server acknowledged (the last progress event's `bytesDone`; 0 before one). */
  bytesDone(): number;
  /** The session id (from the last `session` event), once there is one. */
  sessionId(): string | undefined;
  /** The `error` of every `retry` event so far (`code`, `status`, `message`, ...). */
  retryErrors(): Record<string, unknown>[];
  /** Resolves once `ready()` holds (polled); rejects naming `what` after `timeoutMs`, or when the client exits first. */
  until(what: string, ready: () => boolean, timeoutMs: number): Promise<void>;
  /** The process's end (it is SIGKILLed after `killAfterMs`). */
  readonly done: Promise<UploadExit>;
  /** SIGKILLs the client if it still runs, and waits for its end (for cleanup). */
  stop(): Promise<UploadExit>;
}

/** Options of {@link startUpload}. */
export interface UploadRunOptions {
  /** The client's journal directory (`--state-dir`). */
  stateDir: string;
  /** More flags (e.g. `['--header', 'Connection: close']`). */
  args?: string[];
  /** SIGKILL the client after this long (default 180 s). */
  killAfterMs?: number;
}

/**
 * Starts `bits upload <file> <url> --json --fragment-size 1048576 --retry-delay 1` (plus
 * `o.args`, which may override those) and follows its events.
 * @example
 * const run = startUpload(file, farm.url('a.bin'), { stateDir, args: ['--header', 'Connection: close'] });
 * assert.equal((await run.done).code, 0);
 */
export function startUpload(file: string, url: string, o: UploadRunOptions): UploadRun {
  const args = ['upload', file, url, '--json', '--fragment-size', '1048576', '--retry-delay', '1', '--state-dir', o.stateDir, ...(o.args ?? [])];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: ClientEvent[] = [];
  let partial = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        events.push(JSON.parse(line) as ClientEvent);
      } catch {
        events.push({ event: 'text', line });
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 180_000);
  let exited = false;
  const done = new Promise<UploadExit>((resolve) =>
    child.on('close', (code, sig) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, signal: sig, stderr });
    }),
  );
  const last = (name: string): ClientEvent | undefined => events.findLast((e) => e.event === name);
  return {
    events,
    bytesDone: () => Number(last('progress')?.bytesDone ?? 0),
    sessionId: () => last('session')?.sessionId as string | undefined,
    retryErrors: () => events.filter((e) => e.event === 'retry').map((e) => e.error as Record<string, unknown>),
    async until(what, ready, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 100_000; i++) {
        if (ready()) return;
        if (exited) throw new Error(`the client exited before ${what}: ${stderr.trim()}`);
        if (Date.now() >= deadline) break;
        await sleep(25);
      }
      throw new Error(`not within ${timeoutMs} ms: ${what}`);
    },
    done,
    stop() {
      if (!exited) child.kill('SIGKILL');
      return done;
    },
  };
}
