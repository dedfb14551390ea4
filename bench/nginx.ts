/**
 * nginx as a benchmark peer: found on the PATH (or in /usr/sbin), installed with apt-get when it is
 * missing and the benchmark runs as root, started in the foreground with a throw-away configuration
 * in a temp folder that serves one folder on 127.0.0.1.
 *
 * @example
 * ```ts
 * const bin = findNginx(log);
 * if (bin) {
 *   const nginx = await startNginx(bin, '/tmp/served', '/tmp/nginx-prefix');
 *   try { ... } finally { await nginx.stop(); }
 * }
 * ```
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds } from './child-process.js';

/** A running nginx. */
export interface Nginx {
  readonly port: number;
  /** CPU seconds (user + system) its master and worker processes have used so far. */
  cpu(): number;
  /** Stops it (SIGQUIT, then SIGKILL) and waits for the master to exit. */
  stop(): Promise<void>;
}

function nginxOnPath(): string | undefined {
  for (const dir of [...(process.env['PATH'] ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/local/sbin']) {
    const candidate = join(dir, 'nginx');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Runs `apt-get` with `args`, its output on our stderr; whether it succeeded. */
function aptGet(args: string[]): boolean {
  const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return r.status === 0;
}

/**
 * The nginx binary, installing the Debian package first when it is missing and we are root
 * (`apt-get update` only when the first install attempt fails). Undefined, after saying so loudly
 * through `log`, when there is none.
 */
export function findNginx(log: (line: string) => void): string | undefined {
  let bin = nginxOnPath();
  if (bin) return bin;
  if (process.getuid?.() === 0) {
    log('nginx is not installed: installing it with apt-get');
    if (!aptGet(['install', '-y', 'nginx'])) {
      aptGet(['update']);
      aptGet(['install', '-y', 'nginx']);
    }
    bin = nginxOnPath();
    if (bin) return bin;
  }
  log('!!! NGINX NOT AVAILABLE (not installed, and could not be installed): THE NGINX COMPARISON IS SKIPPED !!!');
  return undefined;
}

/** A port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The pids of the direct children of `pid` (nginx's workers). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The configuration: Debian's defaults where they matter for serving files (`sendfile`,
 * `tcp_nopush`, worker processes as many as cores, an access log), every path inside `prefix`,
 * and keep-alive connections that stay open for the whole run.
 */
function config(root: string, prefix: string, port: number): string {
  const runAs = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${runAs}daemon off;
master_process on;
worker_processes auto;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  access_log ${join(prefix, 'access.log')};
  client_body_temp_path ${join(prefix, 'body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
  }
}
`;
}

/** Starts nginx serving `root` on 127.0.0.1 with its configuration, logs and pid file in `prefix`. */
export async function startNginx(bin: string, root: string, prefix: string): Promise<Nginx> {
  await mkdir(prefix, { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  await writeFile(conf, config(root, prefix, port));
  const proc: ChildProcess = spawn(bin, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  if (proc.exitCode !== null || !(await canConnect(port))) {
    proc.kill('SIGKILL');
    throw new Error(`nginx did not start: ${stderr}${readFileSync(join(prefix, 'error.log'), 'utf8').slice(-2048)}`);
  }
  const pid = proc.pid!;
  return {
    port,
    cpu: () => [pid, ...childPids(pid)].reduce((sum, p) => sum + (cpuSeconds(p) ?? 0), 0),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      proc.kill('SIGQUIT');
      await exited;
      clearTimeout(timer);
    },
  };
}
