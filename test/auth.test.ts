// Authentication and access control over real TLS sockets: Basic, client certificates, sessions
// bound to their owner, per-user session limits, challenges that keep the connection usable.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { makePki } from './helpers/certs.js';
import type { TestPki } from './helpers/certs.js';
import { CLI } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import type { BitsRequest, RawResponse } from './helpers/raw-http.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function addUser(users: string, name: string, password: string, groups: string[] = []): void {
  const args = [CLI, 'user', 'add', name, '--users', users, ...(groups.length ? ['--group', ...groups] : [])];
  const r = spawnSync(process.execPath, args, { input: `${password}\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('authentication and access control', () => {
  let dir: string;
  let pki: TestPki;
  let t: TestServer;
  let plain: TestServer;
  let users: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-auth-'));
    pki = makePki(dir, ['alice', 'dave']);
    users = join(dir, 'users.json');
    addUser(users, 'alice', 'alice-password');
    addUser(users, 'bob', 'bob-password', ['agents']);
    addUser(users, 'carol', 'carol-password');
    const basicAuth = { schemes: ['basic' as const], users, allow: ['alice', 'group:agents'] };
    t = await startServer({
      config: { tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert } },
      vdirs: [
        { path: '/basic', directory: './basic', auth: basicAuth },
        { path: '/limit', directory: './limit', auth: basicAuth, sessionsPerUserLimit: 2 },
        { path: '/cert', directory: './cert', auth: { schemes: ['client-certificate'] } },
        { path: '/san', directory: './san', auth: { schemes: ['client-certificate'], certificateName: 'san', allow: ['alice@example.test'] } },
        { path: '/opt', directory: './opt', auth: { schemes: ['client-certificate'], anonymous: true } },
        { path: '/open', directory: './open' },
      ],
    });
    plain = await startServer({ vdirs: [{ path: '/basic', directory: './basic', auth: basicAuth }] });
  });
  after(async () => {
    await t.stop();
    await plain.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function tlsRequest(r: BitsRequest, options: ConnectionOptions = {}): Promise<RawResponse> {
    const c = await RawConnection.connectTls(t.port, { ca: pki.read(pki.caCert), ...options });
    try {
      await c.write(bitsRequestBytes(r));
      return await c.read();
    } finally {
      c.close();
    }
  }
  const withCert = (name: string): ConnectionOptions => ({ cert: pki.read(pki.clients[name]!.cert), key: pki.read(pki.clients[name]!.key) });
  const create = (path: string, auth?: string): BitsRequest => ({
    type: 'Create-Session',
    path,
    headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...(auth ? { Authorization: auth } : {}) },
  });

  it('Basic: the right password creates a session and uploads; the file lands', async () => {
    const auth = basic('alice', 'alice-password');
    const created = await tlsRequest(create('/basic/a.bin', auth));
    assertAck(created);
    const id = created.headers['bits-session-id']!;
    const ack = await tlsRequest({ type: 'Fragment', path: '/basic/a.bin', sessionId: id, headers: { Authorization: auth, 'Content-Range': 'bytes 0-2/3' }, body: 'abc' });
    assert.equal(ack.headers['bits-received-content-range'], '3');
    assertAck(await tlsRequest({ type: 'Close-Session', path: '/basic/a.bin', sessionId: id, headers: { Authorization: auth } }));
    assert.equal(await readFile(join(t.root, 'basic', 'a.bin'), 'utf8'), 'abc');
  });

  it('no credentials, a wrong password and an unknown user all get the same 401 challenge', async () => {
    for (const auth of [undefined, basic('alice', 'wrong'), basic('mallory', 'alice-password'), 'Basic !!!notbase64']) {
      const res = await tlsRequest(create('/basic/x.bin', auth));
      assert.equal(res.status, 401, String(auth));
      assert.equal(res.headers['www-authenticate'], 'Basic realm="bits", charset="UTF-8"');
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.headers['bits-session-id'], undefined);
    }
    // Ping is challenged too (the cheap first round-trip).
    assert.equal((await tlsRequest({ type: 'Ping', path: '/basic/x.bin' })).status, 401);
  });

  it('an authenticated user the vdir does not allow gets 403 E_ACCESSDENIED; a group member is let in', async () => {
    assertErr(await tlsRequest(create('/basic/x.bin', basic('carol', 'carol-password'))), 403, '0x80070005');
    assertAck(await tlsRequest(create('/basic/x.bin', basic('bob', 'bob-password'))));
  });

  it('Basic over plain HTTP is refused (403, and no challenge offered)', async () => {
    assertErr(await plain.request(create('/basic/x.bin', basic('alice', 'alice-password'))), 403, '0x80070005');
    const bare = await plain.request(create('/basic/x.bin'));
    assertErr(bare, 403, '0x80070005');
    assert.equal(bare.headers['www-authenticate'], undefined);
  });

  it('client certificates: a trusted one is the principal; none or an untrusted one is refused', async () => {
    assertAck(await tlsRequest(create('/cert/c.bin'), withCert('alice')));
    assertErr(await tlsRequest(create('/cert/c.bin')), 403, '0x80070005');
    assertErr(await tlsRequest(create('/cert/c.bin'), { cert: pki.read(pki.rogue.cert), key: pki.read(pki.rogue.key) }), 403, '0x80070005');
    // SAN mapping with an allow list
    assertAck(await tlsRequest(create('/san/c.bin'), withCert('alice')));
    assertErr(await tlsRequest(create('/san/c.bin'), withCert('dave')), 403, '0x80070005');
  });

  it('a vdir that accepts but does not require certificates works for clients without one', async () => {
    assertAck(await tlsRequest(create('/opt/o.bin')));
    assertAck(await tlsRequest(create('/opt/o.bin'), withCert('alice')));
    assertAck(await tlsRequest(create('/open/o.bin')));
  });

  it('sessions belong to their creator: another principal gets BG_E_SESSION_NOT_FOUND on every packet', async () => {
    const alice = basic('alice', 'alice-password');
    const bob = basic('bob', 'bob-password');
    const id = (await tlsRequest(create('/basic/owned.bin', alice))).headers['bits-session-id']!;
    const frag = (auth: string): BitsRequest => ({ type: 'Fragment', path: '/basic/owned.bin', sessionId: id, headers: { Authorization: auth, 'Content-Range': 'bytes 0-2/6' }, body: 'abc' });
    assertErr(await tlsRequest(frag(bob)), 500, '0x8020001F');
    assertErr(await tlsRequest({ type: 'Close-Session', path: '/basic/owned.bin', sessionId: id, headers: { Authorization: bob } }), 500, '0x8020001F');
    assertErr(await tlsRequest({ type: 'Cancel-Session', path: '/basic/owned.bin', sessionId: id, headers: { Authorization: bob } }), 500, '0x8020001F');
    // a certificate principal named like the owner is another principal of another vdir: still not found
    assertErr(await tlsRequest({ ...frag(alice), path: '/cert/owned.bin' }, withCert('alice')), 500, '0x8020001F');
    // the owner's session is untouched
    assert.equal((await tlsRequest(frag(alice))).headers['bits-received-content-range'], '3');
  });

  it('per-user session limit: 503 with Retry-After beyond it; other users unaffected', async () => {
    const alice = basic('alice', 'alice-password');
    assertAck(await tlsRequest(create('/limit/1.bin', alice)));
    assertAck(await tlsRequest(create('/limit/2.bin', alice)));
    const third = await tlsRequest(create('/limit/3.bin', alice));
    assert.equal(third.status, 503);
    assert.equal(third.headers['retry-after'], '60');
    assert.equal(third.headers['bits-session-id'], undefined);
    assertAck(await tlsRequest(create('/limit/1.bin', basic('bob', 'bob-password'))));
  });

  it('a challenged Fragment with a large body leaves the connection usable for the authenticated retry', async () => {
    const alice = basic('alice', 'alice-password');
    const id = (await tlsRequest(create('/basic/big.bin', alice))).headers['bits-session-id']!;
    const data = randomBytes(5 * 1024 * 1024);
    const c = await RawConnection.connectTls(t.port, { ca: pki.read(pki.caCert) });
    const fragment = (headers: Record<string, string>) =>
      bitsRequestBytes({ type: 'Fragment', path: '/basic/big.bin', sessionId: id, headers: { 'Content-Range': `bytes 0-${data.length - 1}/${data.length}`, ...headers }, body: data });
    await c.write(fragment({}));
    const challenge = await c.read();
    assert.equal(challenge.status, 401);
    await c.write(fragment({ Authorization: alice }));
    const ok = await c.read();
    assertAck(ok);
    assert.equal(ok.headers['bits-received-content-range'], String(data.length));
    await c.write(bitsRequestBytes({ type: 'Close-Session', path: '/basic/big.bin', sessionId: id, headers: { Authorization: alice } }));
    assertAck(await c.read());
    c.close();
    assert.deepEqual(await readFile(join(t.root, 'basic', 'big.bin')), data);
  });

  it('client: bits upload with --user, and with --cert/--key, over TLS with --ca', async () => {
    const file = join(dir, 'client.bin');
    const sha = await randomFile(file, 300_000);
    // (asynchronously: the server runs in this process)
    const run = (args: string[]): Promise<{ status: number | null; stderr: string }> => {
      const child = spawn(process.execPath, [CLI, 'upload', file, ...args, '--ca', pki.caCert, '--state-dir', join(dir, 'jobs'), '--quiet', '--retry-delay', '0.05'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      return new Promise((resolve) => child.on('close', (status) => resolve({ status, stderr })));
    };
    const basicRun = await run([`https://localhost:${t.port}/basic/cli.bin`, '--user', 'alice:alice-password']);
    assert.equal(basicRun.status, 0, basicRun.stderr);
    assert.equal(await sha256File(join(t.root, 'basic', 'cli.bin')), sha);
    const certRun = await run([`https://localhost:${t.port}/cert/cli.bin`, '--cert', pki.clients['alice']!.cert, '--key', pki.clients['alice']!.key]);
    assert.equal(certRun.status, 0, certRun.stderr);
    assert.equal(await sha256File(join(t.root, 'cert', 'cli.bin')), sha);
    const noCert = await run([`https://localhost:${t.port}/cert/none.bin`]);
    assert.equal(noCert.status, 1, 'a required certificate that is missing is fatal');
    assert.match(noCert.stderr, /403/);
    assert.equal((await run([`https://localhost:${t.port}/cert/x.bin`, '--cert', pki.clients['alice']!.cert])).status, 2, '--cert without --key');
    const wrong = await run([`https://localhost:${t.port}/basic/w.bin`, '--user', 'alice:nope']);
    assert.equal(wrong.status, 1, 'refused credentials are fatal, no retry storm');
    assert.match(wrong.stderr, /401/);
  });

  it('client: credentials keep working across a server restart in the middle of an upload', async () => {
    const file = join(dir, 'restart.bin');
    const sha = await randomFile(file, 2_000_000);
    const job = upload({
      file,
      url: `https://localhost:${t.port}/basic/restart.bin`,
      user: 'alice:alice-password',
      ca: pki.read(pki.caCert),
      fragmentSize: 100_000,
      retryDelayMs: 50,
      stateDir: false,
    });
    let restarted = false;
    job.on('progress', (p) => {
      if (!restarted && p.bytesDone >= 500_000) {
        restarted = true;
        void t.restart();
      }
    });
    const result = await job.result.catch((err: BitsClientError) => assert.fail(err.message));
    assert.ok(restarted);
    assert.equal(result.bytes, 2_000_000);
    assert.equal(await sha256File(join(t.root, 'basic', 'restart.bin')), sha);
  });

  it('bits user remove takes effect on the running server', async () => {
    addUser(users, 'erin', 'erin-password', ['agents']);
    await sleep(1100);
    assertAck(await tlsRequest(create('/basic/e.bin', basic('erin', 'erin-password'))));
    const r = spawnSync(process.execPath, [CLI, 'user', 'remove', 'erin', '--users', users], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    await sleep(1100);
    assert.equal((await tlsRequest(create('/basic/e.bin', basic('erin', 'erin-password')))).status, 401);
  });
});

describe('custom authenticate hook', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({
      authenticate: (req) => {
        const token = req.headers['authorization']?.replace(/^Bearer\s+/i, '');
        if (!token) return { challenge: 'Bearer realm="bits"' };
        if (token === 'good') return { principal: 'svc-agent' };
        return { deny: 'unknown token' };
      },
    });
  });
  after(() => t.stop());

  it('challenges, denies and lets in through the hook; sessions bind to its principal', async () => {
    const create = (auth?: string): BitsRequest => ({
      type: 'Create-Session',
      path: '/up/h.bin',
      headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...(auth ? { Authorization: auth } : {}) },
    });
    const challenged = await t.request(create());
    assert.equal(challenged.status, 401);
    assert.equal(challenged.headers['www-authenticate'], 'Bearer realm="bits"');
    assertErr(await t.request(create('Bearer bad')), 403, '0x80070005');
    const ok = await t.request(create('Bearer good'));
    assertAck(ok);
    const record = await t.server.sessions.records.get(ok.headers['bits-session-id']!);
    assert.equal(record?.principal, 'svc-agent');
  });
});

describe('users file at start-up and while running', () => {
  let dir: string;
  let users: string;
  let t: TestServer | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-users-'));
    users = join(dir, 'users.json');
    addUser(users, 'alice', 'alice-password');
    // Many accounts, so that loading the file takes a while (the window the first logins fell into).
    const file = JSON.parse(await readFile(users, 'utf8')) as { users: Record<string, { hash: string; groups: string[] }> };
    for (let i = 0; i < 5000; i++) file.users[`filler${i}`] = { hash: file.users['alice']!.hash, groups: ['g'] };
    await writeFile(users, JSON.stringify(file));
  });
  after(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // (Ping: authenticated like every packet, and it holds no session against the per-user limit)
  const create = (auth: string): BitsRequest => ({ type: 'Ping', path: '/basic/u.bin', headers: { Authorization: auth } });
  /** `n` logins of alice at once; resolves with their statuses. */
  const logins = (server: TestServer, n: number) =>
    Promise.all(Array.from({ length: n }, () => server.request(create(basic('alice', 'alice-password'))).then((r) => r.status)));

  it('10: valid logins right after start never get 401 (32 at once), nor while the file is reloaded', async () => {
    t = await startServer({ vdirs: [{ path: '/basic', directory: './basic', auth: { schemes: ['basic'], users, allowInsecureBasic: true } }] });
    assert.deepEqual(await logins(t, 32), Array(32).fill(200));
    addUser(users, 'bob', 'bob-password'); // (a new file, a new modification time: the next check reloads it)
    await sleep(1100);
    assert.deepEqual(await logins(t, 32), Array(32).fill(200));
    assertAck(await t.request(create(basic('bob', 'bob-password'))));
  });

  it('10: a users file that disappears or breaks while running keeps the last good accounts', async () => {
    assert.ok(t);
    await rename(users, `${users}.away`);
    await sleep(1100);
    assert.deepEqual(await logins(t, 4), Array(4).fill(200), 'file gone');
    await writeFile(users, '{ "users": { broken');
    await sleep(1100);
    assert.deepEqual(await logins(t, 4), Array(4).fill(200), 'file broken');
    assert.equal((await t.request(create(basic('alice', 'wrong')))).status, 401, 'wrong passwords still fail');
    await rename(`${users}.away`, users);
  });

  it('10: a user removed right after a load, within the same timestamp tick, is reloaded and refused', async () => {
    assert.ok(t);
    // The two versions of the file get the same modification time, as two writes within one tick
    // of the filesystem clock do: only the replaced file itself (another inode, another size) differs.
    const tick = 1_700_000_000;
    addUser(users, 'erin', 'erin-password');
    await utimes(users, tick, tick);
    await sleep(1100);
    assertAck(await t.request(create(basic('erin', 'erin-password'))));
    const r = spawnSync(process.execPath, [CLI, 'user', 'remove', 'erin', '--users', users], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await utimes(users, tick, tick);
    await sleep(1100);
    assert.equal((await t.request(create(basic('erin', 'erin-password')))).status, 401, 'the removed user is refused');
    assertAck(await t.request(create(basic('alice', 'alice-password'))));
  });
});
