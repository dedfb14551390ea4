// Human units in the configuration and in `bits serve`'s flags: "14d", "30s", "1G", "512KiB"; plain
// numbers keep their meaning (seconds, bytes); a bad value is named by its key, or by its flag.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../src/server/config.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { durationMs, formatDuration, formatSize, sizeBytes } from '../src/server/human-units.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { CLI, startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

type VdirInput = ServerConfigInput['vdirs'][number];
const vdirConfig = (vdir: Partial<VdirInput>, top: Partial<ServerConfigInput> = {}) =>
  parseConfig({ ...top, vdirs: [{ path: '/', directory: 'u', ...vdir }] }, '/srv');

/** The message of the ConfigError that `fn` throws. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('no ConfigError');
}

describe('human units', () => {
  it('durations: a number or a string of digits is seconds, a unit is read by ms', () => {
    const cases: [number | string, number | undefined][] = [
      [300, 300_000],
      ['300', 300_000],
      [0.5, 500],
      ['30s', 30_000],
      ['2h', 7_200_000],
      ['14d', 14 * 86_400_000],
      ['1.5 hours', 5_400_000],
      ['250ms', 250],
      ['soon', undefined],
      ['', undefined],
      ['-1s', undefined],
      [-1, undefined],
      ['1e3s', undefined],
      [Number.NaN, undefined],
    ];
    for (const [value, expected] of cases) assert.equal(durationMs(value), expected, JSON.stringify(value));
  });

  it('sizes: K, M, G, T, P are powers of 1024, written K, KB or KiB; nothing is read loosely', () => {
    const cases: [number | string, number | undefined][] = [
      [1000, 1000],
      ['1000', 1000],
      ['10B', 10],
      ['1K', KiB],
      ['1KB', KiB],
      ['1kb', KiB],
      ['512KiB', 512 * KiB],
      ['32MB', 32 * MiB],
      ['1.5MiB', 1.5 * MiB],
      ['1G', GiB], // (bytes.parse alone reads "1G" as 1)
      ['1 GB', GiB],
      ['2T', 2 * 1024 * GiB],
      ['1Ki', undefined],
      ['1e3', undefined], // (bytes.parse alone reads it as 1)
      ['big', undefined],
      ['-1MB', undefined],
      [1.5, undefined],
      [-1, undefined],
      [2 ** 60, undefined],
    ];
    for (const [value, expected] of cases) assert.equal(sizeBytes(value), expected, JSON.stringify(value));
  });

  it('help texts write defaults in forms that read back to the same value', () => {
    for (const size of [0, 32 * MiB, 64 * MiB, 512 * KiB]) assert.equal(sizeBytes(formatSize(size)), size, formatSize(size));
    for (const ms of [0, 300_000, 86_400_000, 14 * 86_400_000]) assert.equal(durationMs(formatDuration(ms)), ms, formatDuration(ms));
    assert.equal(formatSize(32 * MiB), '32MiB');
    assert.equal(formatDuration(14 * 86_400_000), '14d');
  });

  it('the configuration takes human units wherever it takes a duration or a size', () => {
    const config = vdirConfig(
      { sessionTimeout: '14d', notificationTimeout: '90s', maxFragmentSize: '1G', maximumUploadSize: '2TiB', maxReplySize: '512KiB', hostIdFallbackTimeout: '1h' },
      { sweepInterval: '5m', shutdownGrace: '1m', limits: { bodyIdleTimeout: '2m', headerTimeout: 10, maxHead: '128KiB' } },
    );
    const vdir = config.vdirs[0]!;
    assert.equal(vdir.sessionTimeoutMs, 14 * 86_400_000);
    assert.equal(vdir.notificationTimeoutMs, 90_000);
    assert.equal(vdir.maxFragmentSize, GiB);
    assert.equal(vdir.maximumUploadSize, 2 * 1024 * GiB);
    assert.equal(vdir.maxReplySize, 512 * KiB);
    assert.equal(vdir.hostIdFallbackTimeout, 3600, 'sent on the wire in seconds');
    assert.equal(config.sweepIntervalMs, 300_000);
    assert.equal(config.shutdownGraceMs, 60_000);
    assert.equal(config.limits.bodyIdleTimeoutMs, 120_000);
    assert.equal(config.limits.headerTimeoutMs, 10_000, 'a plain number is seconds');
    assert.equal(config.limits.maxHead, 128 * KiB);
  });

  it('a bad value names its key and the forms accepted', () => {
    assert.match(configError(() => vdirConfig({ sessionTimeout: 'soon' })), /vdirs\[0\]\.sessionTimeout: expected seconds .* "14d"/);
    assert.match(configError(() => vdirConfig({ maxFragmentSize: '1.5' })), /vdirs\[0\]\.maxFragmentSize: expected bytes .* "512KiB"/);
    assert.match(configError(() => vdirConfig({ maxFragmentSize: '0KB' })), /vdirs\[0\]\.maxFragmentSize: must be more than 0/);
    assert.match(configError(() => vdirConfig({ notificationTimeout: 0 })), /vdirs\[0\]\.notificationTimeout: must be more than 0/);
    assert.match(configError(() => vdirConfig({ hostIdFallbackTimeout: '1500ms' })), /vdirs\[0\]\.hostIdFallbackTimeout: expected a whole number of seconds/);
    assert.match(configError(() => vdirConfig({}, { limits: { keepAliveTimeout: true as unknown as number } })), /limits\.keepAliveTimeout: expected seconds/);
  });

  it('ConfigError.withKeys renames each key it knows, also in a list of keys', () => {
    const err = new ConfigError([
      { key: 'tls.cert, tls.key', message: 'no match' },
      { key: 'stateDir', message: 'inside' },
    ]);
    const renamed = err.withKeys((key) => ({ 'tls.cert': '--tls-cert', 'tls.key': '--tls-key' })[key]);
    assert.equal(renamed.message, 'invalid configuration:\n  --tls-cert, --tls-key: no match\n  stateDir: inside');
    assert.deepEqual(renamed.issues.map((i) => i.key), ['--tls-cert, --tls-key', 'stateDir']);
  });
});

describe('bits serve flags with human units', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-units-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const serve = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--root', join(dir, 'r'), '--state-dir', join(dir, 's'), ...args], { cwd: dir, encoding: 'utf8', timeout: 10_000 });

  it('a bad flag value exits 2 naming the flag, not the key it sets', () => {
    const cases: [string[], RegExp][] = [
      [['--max-fragment-size', 'big'], /--max-fragment-size: expected bytes .* "1G"/],
      [['--session-timeout', 'soon'], /--session-timeout: expected seconds .* "14d"/],
      [['--notify-url', 'http://127.0.0.1:9/n', '--notify-timeout', '0'], /--notify-timeout: must be more than 0/],
      [['--max-reply-size', '-1'], /--max-reply-size: expected bytes/],
      [['--host-id', 'a', '--host-id-fallback-timeout', '1.5'], /--host-id-fallback-timeout: expected a whole number of seconds/],
      [['--port', 'abc'], /--port: expected a port number/],
      [['--log-level', 'loud'], /--log-level: /],
    ];
    for (const [args, pattern] of cases) {
      const r = serve(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /vdirs\[0\]|maxFragmentSize|sessionTimeout|listen\.port/, args.join(' '));
    }
  });

  it('next to --config, a file value is named by its key and a flag value by its flag', async () => {
    const file = join(dir, 'c.json');
    await writeFile(file, JSON.stringify({ stateDir: './cs', vdirs: [{ path: '/up', directory: './cu', sessionTimeout: '2 fortnights' }] }));
    const fromFile = spawnSync(process.execPath, [CLI, 'serve', '--config', file], { cwd: dir, encoding: 'utf8', timeout: 10_000 });
    assert.equal(fromFile.status, 2, fromFile.stderr);
    assert.match(fromFile.stderr, /vdirs\[0\]\.sessionTimeout: expected seconds/);
    await writeFile(file, JSON.stringify({ stateDir: './cs', vdirs: [{ path: '/up', directory: './cu' }] }));
    const fromFlag = spawnSync(process.execPath, [CLI, 'serve', '--config', file, '--port', '70000'], { cwd: dir, encoding: 'utf8', timeout: 10_000 });
    assert.equal(fromFlag.status, 2, fromFlag.stderr);
    assert.match(fromFlag.stderr, /--port: /);
    assert.doesNotMatch(fromFlag.stderr, /listen\.port/);
  });

  it('--max-fragment-size 1KiB and --session-timeout 1h are taken: a 1 KiB fragment fits, one more byte is 413', async () => {
    const { child, port } = await startCli(['--root', join(dir, 'live'), '--state-dir', join(dir, 'live-state'), '--max-fragment-size', '1KiB', '--session-timeout', '1h']);
    try {
      // (a fresh connection per request: the server may close one after a 413)
      const send = async (bytes: Buffer) => {
        const c = await RawConnection.connect(port);
        try {
          return await exchange(c, bytes);
        } finally {
          c.close();
        }
      };
      const created = await send(bitsRequestBytes({ type: 'Create-Session', path: '/x.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
      const id = created.headers['bits-session-id']!;
      const fragment = (first: number, size: number) =>
        send(bitsRequestBytes({ type: 'Fragment', path: '/x.bin', sessionId: id, headers: { 'Content-Range': `bytes ${first}-${first + size - 1}/${4 * KiB}` }, body: Buffer.alloc(size) }));
      assert.equal((await fragment(0, KiB)).status, 200);
      assert.equal((await fragment(KiB, KiB + 1)).status, 413);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
