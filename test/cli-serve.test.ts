// `bits serve`: configuration file and flags, clear errors with exit code 2, graceful SIGTERM, request logs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { CLI, startCli } from './helpers/cli.js';


function runCli(args: string[], cwd: string) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 10_000 });
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
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    const rl = createInterface({ input: child.stdout });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
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
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0, 'SIGTERM is a clean exit');
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
