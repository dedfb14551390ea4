#!/usr/bin/env node
// The test runner behind `npm test` and `npm run coverage`.
//
// Usage: node scripts/run-tests.mjs [node flags…] [test files…]
//        node scripts/run-tests.mjs --exec COMMAND [ARGS…]   (e.g. a benchmark: same services, any command)
//   With no test file, runs dist/test/*.test.js. Every other argument goes to `node --test` as is,
//   in order (e.g. --experimental-test-coverage, --test-reporter=spec, --test-name-pattern=…).
//   --test-concurrency=2 is added unless a --test-concurrency is given.
//
// Before the tests it starts ONE throw-away PostgreSQL cluster and ONE single-node Ceph cluster
// with its RADOS Gateway (scripts/services/*.sh) in a fresh temp dir on free 127.0.0.1 ports, and
// gives the tests (see test/helpers/services.ts):
//   BITS_TEST_PG_URL, BITS_TEST_S3_ENDPOINT, BITS_TEST_S3_REGION, AWS_ACCESS_KEY_ID,
//   AWS_SECRET_ACCESS_KEY, and for restarts: BITS_TEST_SERVICES_DIR, BITS_TEST_SERVICES_SCRIPTS,
//   BITS_TEST_PG_DIR, BITS_TEST_CEPH_DIR, BITS_TEST_CEPH_MON_PORT.
// At the end (also on failure and on SIGINT/SIGTERM) it stops them and removes the temp dir, and
// exits with the test run's status.
//
// Env:
//   BITS_TEST_SERVICES=off       start nothing (tests that need the services skip loudly)
//   BITS_TEST_SERVICES=external  start nothing, use the BITS_TEST_* variables already set
//   BITS_TEST_SERVICES_KEEP=1    leave the services running and the dir in place at the end
// When a service cannot be started, a loud WARNING is printed and the tests run anyway.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const scripts = join(root, 'scripts', 'services');

/** @param {string} msg */
function note(msg) {
  process.stderr.write(`run-tests: ${msg}\n`);
}

/** @param {string} msg */
function warn(msg) {
  const bar = '='.repeat(78);
  process.stderr.write(`\nWARNING: ${bar}\nWARNING: ${msg}\nWARNING: tests that need it will SKIP.\nWARNING: ${bar}\n\n`);
}

/** A free TCP port on 127.0.0.1 (released before returning; the race is accepted for tests). */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Distinct free ports (a port is never handed out twice in one run). */
async function freePorts(n) {
  const seen = new Set();
  for (let i = 0; seen.size < n && i < 50; i++) {
    const p = await freePort();
    if (p > 0 && !seen.has(p)) seen.add(p);
  }
  if (seen.size < n) throw new Error('no free ports on 127.0.0.1');
  return [...seen];
}

/**
 * Runs a services script, resolving with its stdout; rejects with its stderr tail.
 * @param {string} script @param {string[]} args @param {number} timeoutMs
 */
function runScript(script, args, timeoutMs) {
  return new Promise((resolveRun, reject) => {
    // own process group: a Ctrl-C reaches the runner only, which stops these and cleans up
    const child = spawn('bash', [join(scripts, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    starting.add(child);
    child.on('close', () => starting.delete(child));
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => killGroup(child), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolveRun(out);
      else reject(new Error(`${script} ${args[0]} failed (${signal ?? `exit ${code}`}):\n${err.trim().split('\n').slice(-15).join('\n')}`));
    });
  });
}

/** The signal that interrupted the run, if any. @type {NodeJS.Signals | undefined} */
let signalled;

/** Scripts still starting services. @type {Set<import('node:child_process').ChildProcess>} */
const starting = new Set();

/** @param {import('node:child_process').ChildProcess} child */
function killGroup(child) {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Parses `export A=b` / `A=b` lines. @param {string} text */
function parseEnv(text) {
  /** @type {Record<string,string>} */
  const env = {};
  for (const line of text.split('\n')) {
    const m = /^(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

function installed() {
  const pg = [17, 16, 15, 14, 13].some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  const which = (b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0;
  const ceph = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'curl'].every(which);
  return { pg, ceph };
}

/** @type {{dir: string, pg?: {dir: string, port: number}, ceph?: {dir: string, port: number}} | undefined} */
let running;
let cleanedUp = false;

function cleanup() {
  if (cleanedUp || !running) return;
  cleanedUp = true;
  if (process.env.BITS_TEST_SERVICES_KEEP === '1') {
    note(`services left running in ${running.dir} (BITS_TEST_SERVICES_KEEP=1)`);
    return;
  }
  const t0 = Date.now();
  if (running.ceph) spawnSync('bash', [join(scripts, 'ceph.sh'), 'kill', running.ceph.dir, String(running.ceph.port)], { stdio: 'ignore', timeout: 30_000 });
  if (running.pg) spawnSync('bash', [join(scripts, 'postgres.sh'), 'stop', running.pg.dir, String(running.pg.port)], { stdio: 'ignore', timeout: 30_000 });
  // clusters of single tests (privatePostgres) that a crashed test left running
  const privates = existsSync(running.dir) ? readdirSync(running.dir).filter((f) => f.startsWith('pg-private-')) : [];
  for (const f of privates) {
    spawnSync('bash', [join(scripts, 'postgres.sh'), 'stop', join(running.dir, f), '0'], { stdio: 'ignore', timeout: 30_000 });
  }
  try {
    rmSync(running.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  } catch (e) {
    note(`could not remove ${running.dir}: ${e instanceof Error ? e.message : e}`);
  }
  note(`services stopped in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

async function startServices() {
  /** @type {Record<string,string>} */
  const env = {};
  const mode = process.env.BITS_TEST_SERVICES ?? 'on';
  if (mode === 'off' || mode === '0' || mode === 'false') {
    warn('BITS_TEST_SERVICES=off: PostgreSQL and Ceph RGW not started');
    return env;
  }
  if (mode === 'external') {
    note('BITS_TEST_SERVICES=external: using the BITS_TEST_* variables already set');
    return env;
  }
  // Never let a developer's own instances leak into a run that starts its own.
  for (const k of ['BITS_TEST_PG_URL', 'BITS_TEST_S3_ENDPOINT', 'BITS_TEST_PG_DIR', 'BITS_TEST_CEPH_DIR', 'BITS_TEST_CEPH_MON_PORT', 'BITS_TEST_SERVICES_DIR']) {
    delete process.env[k];
  }
  const have = installed();
  if (!have.pg && !have.ceph) {
    warn('PostgreSQL and Ceph are not installed (run: bash scripts/services/install.sh)');
    return env;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bits-services-'));
  chmodSync(dir, 0o755);
  running = { dir };
  env.BITS_TEST_SERVICES_DIR = dir;
  env.BITS_TEST_SERVICES_SCRIPTS = scripts;
  const [pgPort, rgwPort, monPort] = await freePorts(3);
  const t0 = Date.now();
  const pgDir = join(dir, 'pg');
  const cephDir = join(dir, 'ceph');
  const pgStart = have.pg
    ? runScript('postgres.sh', ['start', pgDir, String(pgPort)], 60_000)
    : Promise.reject(new Error('PostgreSQL is not installed (run: bash scripts/services/install.sh)'));
  if (have.pg) running.pg = { dir: pgDir, port: pgPort };
  if (have.ceph) running.ceph = { dir: cephDir, port: rgwPort };
  const cephStart = have.ceph
    ? runScript('ceph.sh', ['start', cephDir, String(rgwPort), String(monPort)], 150_000)
    : Promise.reject(new Error('Ceph (mon, osd, radosgw) is not installed (run: bash scripts/services/install.sh)'));
  const [pg, ceph] = await Promise.allSettled([pgStart, cephStart]);
  if (signalled) return env;
  if (pg.status === 'fulfilled') {
    Object.assign(env, parseEnv(pg.value));
    env.BITS_TEST_PG_DIR = pgDir;
  } else {
    warn(`PostgreSQL could not be started: ${pg.reason?.message ?? pg.reason}`);
  }
  if (ceph.status === 'fulfilled') {
    Object.assign(env, parseEnv(ceph.value));
    env.BITS_TEST_CEPH_DIR = cephDir;
    env.BITS_TEST_CEPH_MON_PORT = String(monPort);
  } else {
    warn(`Ceph RGW could not be started: ${ceph.reason?.message ?? ceph.reason}`);
  }
  note(
    `services ready in ${((Date.now() - t0) / 1000).toFixed(1)}s:` +
      (env.BITS_TEST_PG_URL ? ` postgres 127.0.0.1:${pgPort}` : '') +
      (env.BITS_TEST_S3_ENDPOINT ? ` rgw 127.0.0.1:${rgwPort}` : '') +
      ` (${dir})`,
  );
  return env;
}

function testArgs(argv) {
  const args = [...argv];
  const isFile = (a) => !a.startsWith('-') && (/\.(c|m)?js$/.test(a) || existsSync(a));
  if (!args.some(isFile)) {
    const testDir = join(root, 'dist', 'test');
    const files = existsSync(testDir) ? readdirSync(testDir).filter((f) => f.endsWith('.test.js')).sort() : [];
    if (files.length === 0) note(`no test files in ${testDir} (build first: npm run build)`);
    args.push(...files.map((f) => join('dist', 'test', f)));
  }
  if (!args.some((a) => a.startsWith('--test-concurrency'))) args.unshift('--test-concurrency=2');
  return ['--test', ...args];
}

async function main() {
  process.chdir(root);
  let child;
  const onSignal = (sig) => {
    signalled = sig;
    if (child && child.exitCode === null) child.kill(sig);
    else if (!child) {
      // still starting: stop the start scripts; main cleans up once they are gone
      for (const c of starting) killGroup(c);
    } else {
      cleanup();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', cleanup);

  let env = {};
  try {
    env = await startServices();
  } catch (e) {
    warn(`services could not be started: ${e instanceof Error ? e.message : e}`);
  }
  if (signalled) {
    note(`${signalled} while starting the services: stopping them`);
    // a daemon forked by a killed start script writes its pid file a moment later
    await new Promise((r) => setTimeout(r, 1500));
    cleanup();
    process.exit(signalled === 'SIGINT' ? 130 : 143);
  }
  const argv = process.argv.slice(2);
  const [cmd, ...args] = argv[0] === '--exec' ? argv.slice(1) : [process.execPath, ...testArgs(argv)];
  if (!cmd) throw new Error('--exec needs a command');
  child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  const code = await new Promise((resolveCode) => {
    child.on('error', (e) => {
      note(`could not run ${cmd}: ${e.message}`);
      resolveCode(1);
    });
    child.on('exit', (c, sig) => resolveCode(c ?? (sig === 'SIGINT' ? 130 : 1)));
  });
  cleanup();
  process.exit(signalled ? (signalled === 'SIGINT' ? 130 : 143) : code);
}

main().catch((e) => {
  note(`failed: ${e instanceof Error ? e.stack : e}`);
  cleanup();
  process.exit(1);
});
