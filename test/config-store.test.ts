// The `store` block and s3:// destinations: what the configuration accepts and refuses, what
// `bits serve --check` reports against real PostgreSQL and RGW, and a server built from a farm
// configuration (PostgreSQL records, S3 bytes) starting, serving and stopping.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { BitsServer } from '../src/server/bits-server.js';
import { ConfigError, parseConfig } from '../src/server/config.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { POSTGRES_DEFAULTS, S3_DEFAULTS } from '../src/server/defaults.js';
import { StoreUnavailableError } from '../src/store/types.js';
import { assertAck } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import { runCli } from './helpers/cli-run.js';
import { deadPort } from './helpers/dead-port.js';
import { freshBucket, freshDatabase, requireServices, s3Service } from './helpers/services.js';

const silent = pino({ level: 'silent' });

/** The keys a ConfigError names. */
function keysOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => i.key);
  }
  assert.fail('expected a ConfigError');
}

const farmStore = (bucket = 'bits-sessions') => ({
  records: { type: 'postgres' as const, url: 'postgres://bits@db/bits' },
  bytes: { type: 's3' as const, endpoint: 'http://s3:7480', bucket, forcePathStyle: true },
});

describe('store configuration', () => {
  it('defaults to files under stateDir; a farm store gets its defaults, durations in milliseconds', () => {
    const plain = parseConfig({ vdirs: [{ path: '/', directory: 'u' }] }, '/srv');
    assert.deepEqual(plain.store, { records: { type: 'fs' }, bytes: { type: 'fs' } });
    const farm = parseConfig({ store: farmStore(), vdirs: [{ path: '/up', destination: 's3://bits-uploads/up' }] }, '/srv');
    const { records, bytes } = farm.store;
    assert.equal(records.type, 'postgres');
    assert.equal(bytes.type, 's3');
    if (records.type !== 'postgres' || bytes.type !== 's3') return;
    assert.equal(records.leaseTtlMs, POSTGRES_DEFAULTS.leaseTtl * 1000);
    assert.equal(records.connectTimeoutMs, POSTGRES_DEFAULTS.connectTimeout * 1000);
    assert.equal(records.queryTimeoutMs, POSTGRES_DEFAULTS.queryTimeout * 1000);
    assert.equal(records.schema, POSTGRES_DEFAULTS.schema);
    assert.equal(records.node, null);
    assert.equal(bytes.prefix, S3_DEFAULTS.prefix);
    assert.equal(bytes.partSize, S3_DEFAULTS.partSize);
    assert.equal(bytes.region, S3_DEFAULTS.region);
    assert.equal(bytes.credentials, null);
    assert.equal(farm.vdirs[0]!.destination, 's3://bits-uploads/up');
    assert.equal(farm.vdirs[0]!.directory, undefined);
  });

  it('a vdir has a directory or a destination, never both or neither', () => {
    assert.deepEqual(keysOf(() => parseConfig({ vdirs: [{ path: '/' } as never] }, '/srv')), ['vdirs[0].directory']);
    const both = { store: farmStore(), vdirs: [{ path: '/', directory: 'u', destination: 's3://bits-uploads/' }] };
    assert.deepEqual(keysOf(() => parseConfig(both, '/srv')), ['vdirs[0].directory']);
  });

  it('the destination kind must match the byte store', () => {
    const local = { store: farmStore(), vdirs: [{ path: '/', directory: 'u' }] };
    assert.deepEqual(keysOf(() => parseConfig(local, '/srv')), ['vdirs[0].directory']);
    const remote = { vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] };
    assert.deepEqual(keysOf(() => parseConfig(remote, '/srv')), ['vdirs[0].destination']);
  });

  it('bad values are refused, naming the key', () => {
    const cases: [ServerConfigInput, string][] = [
      [{ store: farmStore(), vdirs: [{ path: '/', destination: 'http://bits-uploads/' }] }, 'vdirs[0].destination'],
      [{ store: farmStore(), vdirs: [{ path: '/', destination: 's3://a/' }] }, 'vdirs[0].destination'],
      [{ store: farmStore(), vdirs: [{ path: '/', destination: 's3://bits-uploads/a//b/' }] }, 'vdirs[0].destination'],
      [{ store: farmStore('B'), vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] }, 'store.bytes.bucket'],
      [{ store: { ...farmStore(), bytes: { ...farmStore().bytes, partSize: '4MiB' } }, vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] }, 'store.bytes.partSize'],
      [{ store: { ...farmStore(), bytes: { ...farmStore().bytes, endpoint: 'ftp://s3' } }, vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] }, 'store.bytes.endpoint'],
      [{ store: { ...farmStore(), records: { type: 'postgres', url: 'mysql://db' } }, vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] }, 'store.records.url'],
      [{ store: { ...farmStore(), records: { type: 'postgres', url: 'postgres://db', schema: 'Bad-Name' } }, vdirs: [{ path: '/', destination: 's3://bits-uploads/' }] }, 'store.records.schema'],
      [{ store: { records: { type: 'mongo' } } as never, vdirs: [{ path: '/', directory: 'u' }] }, 'store.records.type'],
      [{ store: { bytes: { type: 's3' } } as never, vdirs: [{ path: '/', directory: 'u' }] }, 'store.bytes.bucket'],
    ];
    for (const [input, key] of cases) assert.ok(keysOf(() => parseConfig(input, '/srv')).includes(key), `${JSON.stringify(input.store)} → ${key}`);
  });
});

/** A farm configuration file on the run's PostgreSQL and RGW, with a fresh database and buckets. */
async function farmFile(dir: string, url: string, sessions: string, uploads: string, extra: object = {}): Promise<string> {
  const s3 = s3Service()!;
  const file = join(dir, 'farm.json');
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    store: { records: { type: 'postgres', url }, bytes: { type: 's3', endpoint: s3.endpoint, region: s3.region, bucket: sessions, forcePathStyle: true } },
    vdirs: [{ path: '/up', destination: `s3://${uploads}/up/`, downloadEnabled: true }],
    ...extra,
  };
  await writeFile(file, JSON.stringify(config));
  return file;
}

describe('bits serve --check', () => {
  it('passes when PostgreSQL and the buckets are there, and names each missing one', async (t) => {
    if (!requireServices(t, ['postgres', 's3'])) return;
    const dir = await mkdtemp(join(tmpdir(), 'bits-check-'));
    const db = await freshDatabase();
    const sessions = await freshBucket('bits-check-s');
    const uploads = await freshBucket('bits-check-u');
    t.after(async () => {
      await Promise.all([db.drop(), sessions.cleanup(), uploads.cleanup(), rm(dir, { recursive: true, force: true })]);
    });

    const good = await runCli(['serve', '--check', '--config', await farmFile(dir, db.url, sessions.name, uploads.name)]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /^ok {4}PostgreSQL postgres:\/\/bits@127\.0\.0\.1:\d+\/bits_t_\w+: PostgreSQL 15\.\d+.*schema "public" created at first start$/m);
    assert.match(good.stdout, new RegExp(`^ok {4}S3 s3://${sessions.name}/sessions/ at http://127\\.0\\.0\\.1:\\d+: bucket reachable`, 'm'));
    assert.match(good.stdout, new RegExp(`^ok {4}vdir /up destination s3://${uploads.name}/up/: bucket reachable`, 'm'));
    assert.match(good.stdout, /^configuration ok$/m);
    assert.ok(!good.stdout.includes(':bits@'), 'no password printed');
    // (the check wrote nothing it left behind: no probe object, no multipart upload)
    const left = await sessions.client.send(new ListObjectsV2Command({ Bucket: sessions.name }));
    assert.equal(left.KeyCount ?? 0, 0);

    const deadUrl = `postgres://bits:bits@127.0.0.1:${await deadPort()}/bits`;
    const bad = await runCli(['serve', '--check', '--config', await farmFile(dir, deadUrl, 'bits-no-such-bucket', uploads.name)]);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^FAIL {2}PostgreSQL postgres:\/\/bits@127\.0\.0\.1:\d+\/bits: ECONNREFUSED/m);
    assert.match(bad.stdout, /^FAIL {2}S3 s3:\/\/bits-no-such-bucket\/sessions\/ .*there is no bucket bits-no-such-bucket: create it first$/m);
    assert.match(bad.stdout, /^ok {4}vdir \/up destination/m);
    assert.match(bad.stdout, /^2 checks failed$/m);
  });

  it('checks the folders of a filesystem configuration', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'bits-check-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'server.json');
    await writeFile(file, JSON.stringify({ stateDir: 'state', vdirs: [{ path: '/', directory: 'up' }, { path: '/x', directory: '/proc/1/nope' }] }));
    const run = await runCli(['serve', '--check', '--config', file]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^ok {4}state directory: .*state will be created in /m);
    assert.match(run.stdout, /^ok {4}vdir \/ directory: .*up will be created in /m);
    assert.match(run.stdout, /^FAIL {2}vdir \/x directory: /m);
  });
});

describe('a server on a farm configuration', () => {
  it('takes no state-directory lock, uploads into the bucket, and stops cleanly', async (t) => {
    if (!requireServices(t, ['postgres', 's3'])) return;
    const db = await freshDatabase();
    const sessions = await freshBucket('bits-farm-s');
    const uploads = await freshBucket('bits-farm-u');
    const s3 = s3Service()!;
    const stateDir = await mkdtemp(join(tmpdir(), 'bits-farm-'));
    const node = (name: string) =>
      startServer({
        vdirs: [{ path: '/up', destination: `s3://${uploads.name}/up/` }],
        config: {
          stateDir, // (the same for both: with neither store on files, no lock is taken)
          store: { records: { type: 'postgres', url: db.url, node: name }, bytes: { type: 's3', endpoint: s3.endpoint, bucket: sessions.name, forcePathStyle: true } },
        },
      });
    const a = await node('node-a');
    const b = await node('node-b');
    t.after(async () => {
      await Promise.allSettled([a.stop(), b.stop()]);
      await Promise.all([db.drop(), sessions.cleanup(), uploads.cleanup(), rm(stateDir, { recursive: true, force: true })]);
    });

    // Created on one node, sent and closed on the other: the session is in PostgreSQL.
    const body = Buffer.from('farm mode: records in PostgreSQL, bytes in S3\n');
    const id = await a.createSession('/up/a.txt');
    assertAck(await b.request(fragmentRequest('/up/a.txt', id, 0, body, body.length)));
    assertAck(await b.request({ type: 'Close-Session', path: '/up/a.txt', sessionId: id }));
    const object = await uploads.client.send(new GetObjectCommand({ Bucket: uploads.name, Key: 'up/a.txt' }));
    assert.deepEqual(Buffer.from(await object.Body!.transformToByteArray()), body);

    await a.server.close(0);
    await assert.rejects(a.server.start(), /stores are closed/);
  });

  it('does not start while PostgreSQL cannot be reached, and bits serve says why', async (t) => {
    const url = `postgres://bits@127.0.0.1:${await deadPort()}/bits`;
    const input = {
      stateDir: join(tmpdir(), 'bits-unused'),
      store: { records: { type: 'postgres' as const, url }, bytes: { type: 's3' as const, endpoint: 'http://127.0.0.1:9', bucket: 'bits-sessions' } },
      vdirs: [{ path: '/up', destination: 's3://bits-uploads/up/' }],
    };
    const server = new BitsServer(parseConfig({ ...input, listen: { host: '127.0.0.1', port: 0 } }, '/'), { logger: silent });
    await assert.rejects(server.listen(), (err: unknown) => err instanceof StoreUnavailableError && /PostgreSQL/.test(err.message));

    const dir = await mkdtemp(join(tmpdir(), 'bits-farm-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'farm.json');
    await writeFile(file, JSON.stringify({ ...input, logLevel: 'silent' }));
    const run = await runCli(['serve', '--config', file, '--host', '127.0.0.1', '--port', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^bits serve: (cannot start: )?store\.records\.url: PostgreSQL is unavailable: connect ECONNREFUSED/m);
  });
});
