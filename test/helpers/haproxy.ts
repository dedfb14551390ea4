// A real HAProxy (Debian's) in front of test nodes: TCP mode, round-robin per connection, no
// affinity, health checks fast enough that a killed node is marked down within about 1–2 s.
import { deadPort } from './dead-port.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

/** A running HAProxy child process. */
export interface Haproxy {
  /** Frontend port on 127.0.0.1. */
  port: number;
  /** The child's output so far (startup errors, alerts). */
  output(): string;
  /** Stops HAProxy (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. */
  stop(): Promise<void>;
}

/** Tuning of {@link startHaproxy}. */
export interface HaproxyOptions {
  /** Health-check interval in ms (default 300; with fall 2 a dead node is down in ~0.6–1 s). */
  checkIntervalMs?: number;
  /** Client and server inactivity timeout in ms (default 10 minutes). */
  idleTimeoutMs?: number;
  /** Connect timeout to a backend in ms (default 1000). */
  connectTimeoutMs?: number;
}

const HAPROXY = '/usr/sbin/haproxy';

/**
 * Whether Debian's haproxy can be run here.
 * @example
 * if (!haproxyInstalled()) console.error('no haproxy');
 */
export function haproxyInstalled(): boolean {
  const r = spawnSync(HAPROXY, ['-v'], { stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

/**
 * Skips the test loudly (t.skip with a message and a stderr line) when haproxy is not installed;
 * returns true when the test may go on.
 * @example
 * test('balancer', async (t) => { if (!requireHaproxy(t)) return; });
 */
export function requireHaproxy(t: TestContext): boolean {
  if (haproxyInstalled()) return true;
  const msg = `SKIPPED: needs HAProxy (${HAPROXY}), not installed (bash scripts/services/install.sh)`;
  process.stderr.write(`\n!!! ${msg}\n\n`);
  t.skip(msg);
  return false;
}

/** The HAProxy configuration {@link startHaproxy} runs (exported for documentation and tests). */
export function haproxyConfig(port: number, backendPorts: readonly number[], opts: HaproxyOptions = {}): string {
  const inter = opts.checkIntervalMs ?? 300;
  const idle = opts.idleTimeoutMs ?? 600_000;
  const servers = backendPorts
    .map((p, i) => `    server node${i + 1} 127.0.0.1:${p} check inter ${inter}ms fastinter ${inter}ms downinter ${inter}ms fall 2 rise 1`)
    .join('\n');
  return `global
    maxconn 4096

defaults
    mode tcp
    timeout connect ${opts.connectTimeoutMs ?? 1000}ms
    timeout client ${idle}ms
    timeout server ${idle}ms
    timeout check 1000ms
    retries 2
    option redispatch

frontend bits
    bind 127.0.0.1:${port}
    default_backend nodes

backend nodes
    balance roundrobin
${servers}
`;
}

/**
 * Waits until something accepts TCP connections on 127.0.0.1:`port` (bounded by `timeoutMs`).
 * @example
 * await waitForPort(8080, 5000);
 */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host: '127.0.0.1', port });
      s.setTimeout(1000);
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('timeout', () => {
        s.destroy();
        res(false);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() >= deadline) break;
    await sleep(50);
  }
  throw new Error(`nothing accepts connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/**
 * Runs HAProxy in the foreground as a child process, balancing 127.0.0.1:`backendPorts` round-robin
 * per connection, and resolves once its frontend accepts connections.
 * @example
 * const lb = await startHaproxy([nodeA.port, nodeB.port, nodeC.port]);
 * try { await upload(`http://127.0.0.1:${lb.port}/uploads/x`); } finally { await lb.stop(); }
 */
export async function startHaproxy(backendPorts: readonly number[], opts: HaproxyOptions = {}): Promise<Haproxy> {
  if (backendPorts.length === 0) throw new Error('startHaproxy: no backend ports');
  const dir = mkdtempSync(join(tmpdir(), 'bits-haproxy-'));
  const port = await deadPort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(port, backendPorts, opts));
  const check = spawnSync(HAPROXY, ['-c', '-q', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
  if (check.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`haproxy rejected its config: ${check.stderr || check.stdout || check.error?.message}`);
  }
  let out = '';
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then(() => {
        throw new Error(`haproxy exited at startup: ${out}`);
      }),
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, output: () => out, stop };
}
