// `bits serve`: configuration file and flags, clear errors with exit code 2, graceful SIGTERM, request logs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { CLI, startCli } from './helpers/cli.js';
import { deadPort } from './helpers/dead-port.js';
import { addUser, basic } from './helpers/users.js';

function runCli(args: string[], cwd: string) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 10_000 });
}

/** A `bits serve` child whose JSON log lines are collected as they come. */
interface LoggedServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: Record<string, unknown>[];
}

/** Starts `bits serve <args>` in `cwd` and resolves with its port once it logs "listening". */
async function serveLogged(args: string[], cwd: string): Promise<LoggedServer> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const rl = createInterface({ input: child.stdout! });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    // (a failure says what the server printed, and whether it exited)
    const fail = (why: string): void => reject(new Error(`${why}; stdout ${JSON.stringify(lines)}; stderr ${stderr}`));
    const timer = setTimeout(() => fail('no listening line within 10 s'), 10_000);
    child.once('exit', (code, signal) => fail(`bits serve exited (${code ?? signal}) before listening`));
    rl.on('line', (l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      lines.push(e);
      if (e['msg'] === 'listening') {
        clearTimeout(timer);
        resolve(e['port'] as number);
      }
    });
  });
  return { child, port, lines };
}

/** Stops a server with SIGTERM and resolves with its exit code. */
async function stopServer(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  child.kill('SIGTERM');
  return exited;
}

type LogLine = Record<string, unknown>;

/** Waits (up to 5 s) for the request log line whose `reqId` is `id`, or that `match` picks. */
async function requestLine(lines: readonly LogLine[], id: string | ((l: LogLine) => boolean)): Promise<LogLine> {
  const match = typeof id === 'string' ? (l: LogLine) => l['reqId'] === id : id;
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => l['msg'] === 'request' && match(l));
    if (line) return line;
    await sleep(50);
  }
  assert.fail(`no such request line in ${JSON.stringify(lines)}`);
}

/** A port held by another listener, until `close()`. */
async function heldPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** The pino level numbers. */
const LEVEL = { info: 30, warn: 40, error: 50, fatal: 60 } as const;

/**
 * Asserts a start-up failure: `code`, one stderr line `bits serve: <message>` whose message matches
 * `pattern`, no stack, and the same message as a JSON log line without one.
 */
function assertStartFailure(r: ReturnType<typeof runCli>, code: number, pattern: RegExp): void {
  assert.equal(r.status, code, r.stderr);
  const errLines = r.stderr.trimEnd().split('\n');
  assert.equal(errLines.length, 1, `one line on stderr: ${r.stderr}`);
  const [prefix, message] = [errLines[0]!.slice(0, 12), errLines[0]!.slice(12)];
  assert.equal(prefix, 'bits serve: ');
  assert.match(message, pattern);
  assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
  // stdout is a pipe here, not a terminal: the log has the failure as JSON
  const fatal = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'cannot start');
  assert.ok(fatal, `a "cannot start" log line: ${r.stdout}`);
  assert.equal(fatal['level'], LEVEL.fatal);
  assert.equal(fatal['reason'], message);
  assert.equal(fatal['err'], undefined, 'no error object (stack) for a known cause');
}

describe('bits serve', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-cli-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('an invalid config names the key and exits 2', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ vdirs: [{ path: '/up', directory: './u', maxFragmentSize: 'big' }] }));
    const r = runCli(['serve', '--config', file], dir);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /vdirs\[0\]\.maxFragmentSize/);
  });

  it('an unknown key, a state dir inside a vdir, and bad JSON are refused with exit 2', async () => {
    const cases: [string, RegExp][] = [
      [JSON.stringify({ vdirs: [{ path: '/up', directory: './u', bogus: 1 }] }), /vdirs\[0\].*bogus/],
      [JSON.stringify({ stateDir: './u/.state', vdirs: [{ path: '/up', directory: './u' }] }), /stateDir/],
      [JSON.stringify({ vdirs: [{ path: 'up/', directory: './u' }] }), /vdirs\[0\]\.path/],
      ['{ not json', /not valid JSON/],
    ];
    for (const [text, pattern] of cases) {
      const file = join(dir, 'c.json');
      await writeFile(file, text);
      const r = runCli(['serve', '--config', file], dir);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });

  it('bad flags exit 2: a non-numeric port, vdir flags with --config, an unknown option', () => {
    assert.equal(runCli(['serve', '--port', 'abc'], dir).status, 2);
    assert.equal(runCli(['serve', '--config', 'x.json', '--root', 'r'], dir).status, 2);
    assert.equal(runCli(['serve', '--no-such-flag'], dir).status, 2);
  });

  it('10: a missing users file or TLS file stops start-up with exit 2 naming the key', async () => {
    await writeFile(join(dir, 'garbage.pem'), 'not a certificate');
    const cases: [object, RegExp][] = [
      [{ vdirs: [{ path: '/up', directory: './u', auth: { schemes: ['basic'], users: './no-such-users.json' } }] }, /vdirs\[0\]\.auth\.users: .*no-such-users\.json does not exist/],
      [{ tls: { cert: './no-such-cert.pem', key: './garbage.pem' }, vdirs: [{ path: '/up', directory: './u' }] }, /tls\.cert: cannot read .*no-such-cert\.pem/],
      [{ tls: { cert: './garbage.pem', key: './no-such-key.pem' }, vdirs: [{ path: '/up', directory: './u' }] }, /tls\.key: cannot read .*no-such-key\.pem/],
      [{ tls: { cert: './garbage.pem', key: './garbage.pem', ca: './no-such-ca.pem' }, vdirs: [{ path: '/up', directory: './u' }] }, /tls\.ca: cannot read/],
      [{ tls: { cert: './garbage.pem', key: './garbage.pem' }, vdirs: [{ path: '/up', directory: './u' }] }, /tls\.cert, tls\.key: /],
    ];
    for (const [config, pattern] of cases) {
      const file = join(dir, 'start.json');
      await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, stateDir: './start-state', ...config }));
      const r = runCli(['serve', '--config', file], dir);
      assert.equal(r.status, 2, `${JSON.stringify(config)}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  });

  it('10: a missing or broken TLS file given by flag stops start-up with exit 2 naming the flag', async () => {
    await writeFile(join(dir, 'garbage.pem'), 'not a certificate');
    const cases: [string[], RegExp][] = [
      [['--tls-cert', './no-such-cert.pem', '--tls-key', './garbage.pem'], /--tls-cert: cannot read .*no-such-cert\.pem/],
      [['--tls-cert', './garbage.pem', '--tls-key', './no-such-key.pem'], /--tls-key: cannot read .*no-such-key\.pem/],
      [['--tls-cert', './garbage.pem', '--tls-key', './garbage.pem'], /--tls-cert, --tls-key: /],
    ];
    for (const [flags, pattern] of cases) {
      const r = runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--root', join(dir, 't'), '--state-dir', join(dir, 't-state'), ...flags], dir);
      assert.equal(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  });

  it('5: a host-looking --notify-url without a scheme is refused with exit 2', () => {
    const r = runCli(['serve', '--port', '0', '--root', join(dir, 'n'), '--state-dir', join(dir, 'n-state'), '--notify-url', 'app.example.com/n'], dir);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--notify-url: "app\.example\.com" looks like a host name/);
  });

  it('serves a config file with two vdirs (relative paths resolved against the file), logs each request', async () => {
    const file = join(dir, 'server.json');
    await writeFile(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        stateDir: './state',
        vdirs: [
          { path: '/uploads', directory: './up-a' },
          { path: '/uploads/deep', directory: './up-b', hostId: 'nodeB', hostIdFallbackTimeout: 7 },
        ],
      }),
    );
    const { child, port, lines } = await serveLogged(['--config', file], tmpdir());
    try {
      const c = await RawConnection.connect(port);
      const res = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path: '/uploads/deep/x.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
      assert.equal(res.headers['bits-host-id'], 'nodeB', 'longest vdir prefix wins');
      const id = res.headers['bits-session-id']!;
      await exchange(c, bitsRequestBytes({ type: 'Fragment', path: '/uploads/deep/x.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' }));
      await exchange(c, bitsRequestBytes({ type: 'Close-Session', path: '/uploads/deep/x.bin', sessionId: id }));
      c.close();
      assert.equal(await readFile(join(dir, 'up-b', 'x.bin'), 'utf8'), 'abc');
      await sleep(100);
      const fragmentLog = lines.find((l) => l['msg'] === 'request' && l['packet'] === 'Fragment');
      assert.ok(fragmentLog, 'a log line for the fragment');
      assert.equal(fragmentLog['session'], id);
      assert.equal(fragmentLog['range'], '0-2/3');
      assert.equal(fragmentLog['status'], 200);
      assert.equal(fragmentLog['vdir'], '/uploads/deep');
      assert.equal(fragmentLog['bytes'], 3);
      assert.equal(typeof fragmentLog['ms'], 'number');
      assert.equal(fragmentLog['remote'], '127.0.0.1');
      assert.equal(fragmentLog['hostname'], hostname(), 'the hostname is kept');
      assert.equal(fragmentLog['ua'], 'Microsoft BITS/7.8');
      assert.equal(fragmentLog['host'], 'localhost');
      assert.match(String(fragmentLog['reqId']), /^[0-9a-f-]{36}$/, 'a request id made by the server');
    } finally {
      assert.equal(await stopServer(child), 0, 'SIGTERM is a clean exit');
    }
  });

  it('12: a port in use stops start-up with exit 1, one line naming the flag or the key', async () => {
    const held = await heldPort();
    try {
      const base = ['serve', '--host', '127.0.0.1', '--root', join(dir, 'p'), '--state-dir', join(dir, 'p-state')];
      assertStartFailure(runCli([...base, '--port', String(held.port)], dir), 1, new RegExp(`^cannot start: --port: 127\\.0\\.0\\.1:${held.port} is already in use`));
      assertStartFailure(runCli([...base, '--port', '0', '--admin-port', String(held.port)], dir), 1, new RegExp(`^cannot start: --admin-port: 127\\.0\\.0\\.1:${held.port} is already in use`));
      const file = join(dir, 'in-use.json');
      await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: held.port }, stateDir: './p-state', vdirs: [{ path: '/up', directory: './p' }] }));
      assertStartFailure(runCli(['serve', '--config', file], dir), 1, /^cannot start: listen\.port: .* is already in use/);
    } finally {
      await held.close();
    }
  });

  it('12: a state dir or upload folder that cannot be used stops start-up with exit 1 naming it', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a folder');
    const base = ['serve', '--host', '127.0.0.1', '--port', '0'];
    assertStartFailure(runCli([...base, '--root', join(dir, 'f'), '--state-dir', blocker], dir), 1, /^cannot start: --state-dir: cannot use .*a-file: exists and is not a directory$/);
    assertStartFailure(runCli([...base, '--root', join(blocker, 'up'), '--state-dir', join(dir, 'f-state')], dir), 1, /^cannot start: --root: cannot use .*a-file\/up: a part of the path is not a directory$/);
    const file = join(dir, 'bad-state.json');
    await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, stateDir: './a-file/state', vdirs: [{ path: '/up', directory: './f' }] }));
    assertStartFailure(runCli(['serve', '--config', file], dir), 1, /^cannot start: stateDir: cannot use .*a-file\/state: a part of the path is not a directory$/);
  });

  it('12: PostgreSQL unreachable stops start-up with exit 1 naming store.records.url', async () => {
    const file = join(dir, 'pg-down.json');
    const url = `postgres://bits:bits@127.0.0.1:${await deadPort()}/bits`;
    await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, stateDir: './pg-state', store: { records: { type: 'postgres', url } }, vdirs: [{ path: '/up', directory: './pg-up' }] }));
    assertStartFailure(runCli(['serve', '--config', file], dir), 1, /^cannot start: store\.records\.url: PostgreSQL is unavailable: .*ECONNREFUSED/);
  });

  it('12: a configuration error at start-up is one line too (exit 2)', async () => {
    const file = join(dir, 'tls-missing.json');
    await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, stateDir: './t2-state', tls: { cert: './none.pem', key: './none.pem' }, vdirs: [{ path: '/up', directory: './t2' }] }));
    assertStartFailure(runCli(['serve', '--config', file], dir), 2, /^tls\.cert(, tls\.key)?: cannot read .*none\.pem/);
  });

  it('12: on a terminal a start-up failure is the one line alone, no JSON', async (t) => {
    // (script(1) from util-linux runs the server on a pseudo-terminal)
    if (spawnSync('script', ['--version'], { encoding: 'utf8' }).status !== 0) {
      t.skip('SKIPPED LOUDLY: script(1) (util-linux) is not installed, so no terminal can be given to bits serve');
      return;
    }
    const held = await heldPort();
    try {
      const command = [process.execPath, CLI, 'serve', '--host', '127.0.0.1', '--port', String(held.port), '--root', join(dir, 'tty'), '--state-dir', join(dir, 'tty-state')];
      const quoted = command.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      const r = spawnSync('script', ['-qec', quoted, '/dev/null'], { cwd: dir, encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 1, r.stdout);
      const screen = r.stdout.replace(/\r/g, '').trim().split('\n');
      assert.deepEqual(screen, [`bits serve: cannot start: --port: 127.0.0.1:${held.port} is already in use by another program`]);
    } finally {
      await held.close();
    }
  });

  it('12: request log levels: 4xx and 5xx at warn, own failures at error, a bare challenge at info; request id, Host, User-Agent', async () => {
    const users = join(dir, 'lv-users.json');
    addUser(users, 'alice', 'correct horse');
    const state = join(dir, 'lv-state');
    const file = join(dir, 'levels.json');
    await writeFile(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        stateDir: state,
        vdirs: [
          { path: '/up', directory: './lv-up' },
          { path: '/auth', directory: './lv-auth', auth: { schemes: ['basic'], users, allowInsecureBasic: true } },
        ],
      }),
    );
    const { child, port, lines } = await serveLogged(['--config', file], dir);
    try {
      const protocols = { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID };
      const send = async (reqId: string, r: Parameters<typeof bitsRequestBytes>[0]) => {
        const c = await RawConnection.connect(port);
        try {
          const res = await exchange(c, bitsRequestBytes({ ...r, headers: { ...r.headers, 'X-Request-Id': reqId } }));
          return { status: res.status, line: await requestLine(lines, reqId) };
        } finally {
          c.close();
        }
      };
      const ping = await send('lb-ping-1', { type: 'Ping', path: '/up/x.bin', host: 'bits.example.com' });
      assert.equal(ping.status, 200);
      assert.equal(ping.line['level'], LEVEL.info);
      assert.equal(ping.line['host'], 'bits.example.com');
      assert.equal(ping.line['ua'], 'Microsoft BITS/7.8');
      assert.equal(ping.line['hostname'], hostname());

      const gone = await send('lb-gone', { type: 'Fragment', path: '/up/x.bin', sessionId: `{${randomUUID()}}`, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' });
      assert.equal(gone.status, 500);
      assert.equal(gone.line['code'], 'BITS_SESSION_NOT_FOUND');
      assert.equal(gone.line['level'], LEVEL.warn, "a 5xx that is the protocol's answer, not a failure of the server");

      const badPath = await send('lb-path', { type: 'Create-Session', path: '/up/../x.bin', headers: protocols });
      assert.ok(badPath.status >= 400 && badPath.status < 500, String(badPath.status));
      assert.equal(badPath.line['level'], LEVEL.warn);

      const bare = await send('lb-bare', { type: 'Create-Session', path: '/auth/a.bin', headers: protocols });
      assert.equal(bare.status, 401);
      assert.equal(bare.line['level'], LEVEL.info, 'the challenge to a request without credentials is routine');
      const wrong = await send('lb-wrong', { type: 'Create-Session', path: '/auth/a.bin', headers: { ...protocols, Authorization: basic('alice', 'wrong') } });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.line['level'], LEVEL.warn);

      // The state directory taken away under the running server: its own failure, at error.
      await rm(state, { recursive: true, force: true });
      await writeFile(state, 'not a folder any more');
      const broken = await send('lb-broken', { type: 'Create-Session', path: '/up/b.bin', headers: protocols });
      assert.ok(broken.status >= 500, String(broken.status));
      assert.equal(broken.line['level'], LEVEL.error, JSON.stringify(broken.line));

      // An unusable X-Request-Id (a space in it) is replaced by one of the server's.
      const c = await RawConnection.connect(port);
      await exchange(c, bitsRequestBytes({ type: 'Ping', path: '/up/odd-id.bin', headers: { 'X-Request-Id': 'has space' } }));
      c.close();
      const odd = await requestLine(lines, (l) => l['url'] === '/up/odd-id.bin');
      assert.match(String(odd['reqId']), /^[0-9a-f-]{36}$/);
    } finally {
      await stopServer(child);
    }
  });

  it('refuses a state dir that a live server holds', async () => {
    const args = ['--root', join(dir, 'r'), '--state-dir', join(dir, 'held')];
    const first = await startCli(args);
    try {
      const r = spawnSync(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 1);
      assert.match(r.stdout + r.stderr, /in use by process/);
    } finally {
      first.child.kill('SIGTERM');
      await new Promise((r) => first.child.once('exit', r));
    }
  });
});
