// Server defects found by adversarial testing: commits interrupted by a crash, client disconnects,
// credentials in logs, session-capability auth, and path confinement details.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, mkdtemp, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { sessionKey } from '../src/protocol/session-id.js';
import { ConfigError, parseConfig } from '../src/server/config.js';
import { redactTarget } from '../src/server/redact.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { CLI, startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { startApp } from './helpers/notify-app.js';
import { addUser, basic } from './helpers/users.js';

describe('commit after a crash part way (a resent Close-Session)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  /** A complete session stopped at a commit crash point laid down by `crash`, then the server restarted. */
  async function crashedAt(name: string, crash: (data: string, dest: string) => Promise<void>, sealed = true): Promise<string> {
    const id = await t.createSession(`/up/${name}`);
    assertAck(await t.request(fragmentRequest(`/up/${name}`, id, 0, Buffer.from(`content of ${name}`), `content of ${name}`.length)));
    await t.server.close(1000);
    const dir = join(t.stateDir, 'sessions', sessionKey(id));
    const record = JSON.parse(await readFile(join(dir, 'record.json'), 'utf8')) as { state: string };
    record.state = 'committing';
    await writeFile(join(dir, 'record.json'), JSON.stringify(record));
    // A commit seals the data (cuts away the progress marks past it) before it places anything.
    if (sealed) await truncate(join(dir, 'data.bin'), `content of ${name}`.length);
    await crash(join(dir, 'data.bin'), join(t.uploads, name));
    await t.restart();
    return id;
  }

  it('crash between link() and unlink(): the resent Close answers 200 and the file is in place once', async () => {
    const id = await crashedAt('linked.bin', (data, dest) => link(data, dest));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/linked.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'linked.bin'), 'utf8'), 'content of linked.bin');
    assert.equal((await stat(join(t.uploads, 'linked.bin'))).nlink, 1, 'the session\'s link is gone');
    await assert.rejects(stat(join(t.stateDir, 'sessions', sessionKey(id))), { code: 'ENOENT' });
  });

  it('crash after the data left the session (rename done): the resent Close answers 200', async () => {
    const id = await crashedAt('moved.bin', (data, dest) => rename(data, dest));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/moved.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'moved.bin'), 'utf8'), 'content of moved.bin');
  });

  it('crash after the committing record, before the seal: the resent Close seals and commits exactly the bytes', async () => {
    const id = await crashedAt('unsealed.bin', async () => undefined, false);
    assertAck(await t.request({ type: 'Close-Session', path: '/up/unsealed.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'unsealed.bin'), 'utf8'), 'content of unsealed.bin');
  });

  it('crash before anything was placed: the resent Close commits', async () => {
    const id = await crashedAt('pending.bin', async () => undefined);
    assertAck(await t.request({ type: 'Close-Session', path: '/up/pending.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'pending.bin'), 'utf8'), 'content of pending.bin');
  });

  it('another file that appeared at the destination is still a conflict (409), the upload kept', async () => {
    const id = await crashedAt('taken.bin', (_data, dest) => writeFile(dest, 'someone else'));
    const res = await t.request({ type: 'Close-Session', path: '/up/taken.bin', sessionId: id });
    assertErr(res, 409, '0x80070005');
    assert.equal(await readFile(join(t.uploads, 'taken.bin'), 'utf8'), 'someone else');
  });
});

/** `bits serve` as a child process whose log lines (JSON) are collected. */
async function servedWithLog(args: string[]): Promise<{ port: number; lines: () => Record<string, unknown>[]; stop: () => void }> {
  const server = await startCli([...args, '--log-level', 'info']);
  let text = '';
  server.child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  return {
    port: server.port,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: () => server.child.kill('SIGKILL'),
  };
}

describe('request logs', () => {
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'bits-log-'));
  });
  after(() => rm(base, { recursive: true, force: true }));

  it('redactTarget covers the credential spellings clients use, reply tokens and user information', () => {
    const cases: [string, string][] = [
      ['/a?pass=x&api-key=y&jwt=z&private_key=k&keep=1', '/a?pass=REDACTED&api-key=REDACTED&jwt=REDACTED&private_key=REDACTED&keep=1'],
      ['/a?x=1;token=t', '/a?x=1;token=REDACTED'],
      ['http://u:p@ss@h/a?q=1', 'http://h/a?q=1'],
      ['/up/BITS-Sessions/Replies/{A}/0123abcd/responsefile.bin', '/up/BITS-Sessions/Replies/{A}/REDACTED/responsefile.bin'],
      ['/plain/file.bin?part=2&monkey=banana', '/plain/file.bin?part=2&monkey=banana'],
    ];
    for (const [input, want] of cases) assert.equal(redactTarget(input), want, input);
  });

  it('a client that disconnects mid-Fragment is a warning with its own code, not an internal error', async () => {
    const s = await servedWithLog(['--root', join(base, 'u1'), '--state-dir', join(base, 's1')]);
    try {
      const c = await RawConnection.connect(s.port);
      const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path: '/gone.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
      const id = created.headers['bits-session-id']!;
      const whole = bitsRequestBytes(fragmentRequest('/gone.bin', id, 0, Buffer.alloc(100_000, 7), 100_000));
      await c.write(whole.subarray(0, whole.length - 50_000));
      await sleep(200);
      c.socket.destroy();
      let entry: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && !entry; i++) {
        await sleep(100);
        entry = s.lines().find((l) => l['msg'] === 'request' && l['packet'] === 'Fragment');
      }
      assert.ok(entry, 'the fragment has a request line');
      assert.equal(entry['code'], 'BITS_CLIENT_DISCONNECTED');
      assert.equal(entry['level'], 40, 'logged at warn');
      assert.equal(s.lines().filter((l) => l['msg'] === 'internal error').length, 0);
    } finally {
      s.stop();
    }
  });

  it('credential-like query values never reach the log; the key names do', async () => {
    const s = await servedWithLog(['--root', join(base, 'u2'), '--state-dir', join(base, 's2')]);
    try {
      const c = await RawConnection.connect(s.port);
      const path = '/f.bin?access_token=SECRET-BEARER&sig=SECRET-SIG&Password=SECRET-PW&part=7';
      assertAck(await exchange(c, bitsRequestBytes({ type: 'Ping', path })));
      c.close();
      let entry: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && !entry; i++) {
        await sleep(100);
        entry = s.lines().find((l) => l['msg'] === 'request');
      }
      assert.ok(entry);
      assert.equal(entry['url'], '/f.bin?access_token=REDACTED&sig=REDACTED&Password=REDACTED&part=7');
      assert.ok(!JSON.stringify(s.lines()).includes('SECRET'));
    } finally {
      s.stop();
    }
  });
});

describe('session-capability authentication (transfervm dialect)', () => {
  let dir: string;
  let t: TestServer;
  let users: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-cap-'));
    users = join(dir, 'users.json');
    addUser(users, 'alice', 'alice-pw');
    addUser(users, 'mallory', 'mallory-pw');
    const auth = { schemes: ['basic' as const], users, allowInsecureBasic: true };
    t = await startServer({
      vdirs: [
        { path: '/cap', directory: './cap', auth: { ...auth, sessionCapability: true } },
        { path: '/strict', directory: './strict', auth },
      ],
    });
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const create = async (path: string, authorization?: string) => {
    const headers: Record<string, string> = { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID };
    if (authorization) headers['Authorization'] = authorization;
    return t.request({ type: 'Create-Session', path, headers });
  };

  it('credentials on Create-Session only: later packets with the session id go through, as its principal', async () => {
    const created = await create('/cap/a.bin', basic('alice', 'alice-pw'));
    assertAck(created);
    const id = created.headers['bits-session-id']!;
    assertAck(await t.request(fragmentRequest('/cap/a.bin', id, 0, Buffer.from('hello'), 5)));
    assertAck(await t.request({ type: 'Close-Session', path: '/cap/a.bin', sessionId: id }));
    assert.equal(await readFile(join(t.root, 'cap', 'a.bin'), 'utf8'), 'hello');
  });

  it('Create-Session still needs credentials, and an unknown id is challenged', async () => {
    assert.equal((await create('/cap/b.bin')).status, 401);
    const res = await t.request(fragmentRequest('/cap/b.bin', '{00000000-0000-0000-0000-000000000000}', 0, Buffer.from('x'), 1));
    assert.equal(res.status, 401);
  });

  it('the session stays bound to its principal: other credentials with the id are refused', async () => {
    const created = await create('/cap/c.bin', basic('alice', 'alice-pw'));
    const id = created.headers['bits-session-id']!;
    const frag = fragmentRequest('/cap/c.bin', id, 0, Buffer.from('x'), 1);
    const res = await t.request({ ...frag, headers: { ...frag.headers, Authorization: basic('mallory', 'mallory-pw') } });
    assertErr(res, 500, '0x8020001F');
  });

  it('a user removed from the users file loses the capability of its live sessions', async () => {
    const created = await create('/cap/d.bin', basic('mallory', 'mallory-pw'));
    const id = created.headers['bits-session-id']!;
    assertAck(await t.request(fragmentRequest('/cap/d.bin', id, 0, Buffer.from('he'), 4)));
    const removed = spawnSync(process.execPath, [CLI, 'user', 'remove', 'mallory', '--users', users], { encoding: 'utf8' });
    assert.equal(removed.status, 0, removed.stderr);
    await sleep(1500); // the server rereads a changed users file within a second
    assert.equal((await t.request(fragmentRequest('/cap/d.bin', id, 2, Buffer.from('ll'), 4))).status, 401);
  });

  it('off by default: without the option the same packets are challenged', async () => {
    const created = await create('/strict/a.bin', basic('alice', 'alice-pw'));
    const id = created.headers['bits-session-id']!;
    assert.equal((await t.request(fragmentRequest('/strict/a.bin', id, 0, Buffer.from('hello'), 5))).status, 401);
  });
});

describe('path confinement details', () => {
  it('a folder named "..x" is inside: the state directory may not sit there', () => {
    assert.throws(
      () => parseConfig({ stateDir: '/srv/up/..x/state', vdirs: [{ path: '/', directory: '/srv/up' }] }, '/'),
      (e: unknown) => e instanceof ConfigError && /stateDir/.test(e.message),
    );
    assert.doesNotThrow(() => parseConfig({ stateDir: '/srv/state', vdirs: [{ path: '/', directory: '/srv/up' }] }, '/'));
  });

  it('an upload to a "..x" folder lands inside the vdir', async () => {
    const t = await startServer();
    try {
      const id = await t.createSession('/up/..x/f.bin');
      assertAck(await t.request(fragmentRequest('/up/..x/f.bin', id, 0, Buffer.from('in'), 2)));
      assertAck(await t.request({ type: 'Close-Session', path: '/up/..x/f.bin', sessionId: id }));
      assert.equal(await readFile(join(t.uploads, '..x', 'f.bin'), 'utf8'), 'in');
    } finally {
      await t.stop();
    }
  });
});

describe('D8 on a vdir that notifies: a session closed without any fragment', () => {
  it('is an empty upload the application hears of; its answer decides whether the file is placed', async () => {
    const app = await startApp();
    const t = await startServer({
      vdir: { notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${app.port}/notify` },
    });
    try {
      app.set((_s, res) => res.writeHead(200, { 'Content-Length': '5', 'BITS-Copy-File-To-Destination': '1' }).end('reply'));
      const kept = await t.createSession('/up/kept.bin');
      assertAck(await t.request({ type: 'Close-Session', path: '/up/kept.bin', sessionId: kept }));
      assert.equal(app.seen.length, 1);
      assert.equal(app.seen[0]!.body.length, 0);
      assert.equal(app.seen[0]!.headers['content-length'], '0');
      assert.equal((await stat(join(t.uploads, 'kept.bin'))).size, 0);
      app.set((_s, res) => res.writeHead(200, { 'Content-Length': '0' }).end());
      const consumed = await t.createSession('/up/consumed.bin');
      assertAck(await t.request({ type: 'Close-Session', path: '/up/consumed.bin', sessionId: consumed }));
      assert.equal(app.seen.length, 2);
      await assert.rejects(stat(join(t.uploads, 'consumed.bin')), { code: 'ENOENT' });
      // an application failure is the Close's error (context 0x7), and the session stays for a resend
      app.set((_s, res) => res.writeHead(500, { 'Content-Length': '0' }).end());
      const failing = await t.createSession('/up/failing.bin');
      assertErr(await t.request({ type: 'Close-Session', path: '/up/failing.bin', sessionId: failing }), 500, '0x801901F4', '0x7');
      app.set((_s, res) => res.writeHead(200, { 'Content-Length': '0' }).end());
      assertAck(await t.request({ type: 'Close-Session', path: '/up/failing.bin', sessionId: failing }));
    } finally {
      await t.stop();
      await app.close();
    }
  });
});

describe('Transfer-Encoding is compared exactly (no request smuggling)', () => {
  it('a coding padded with a no-break space (0xA0) is not chunked: 400, the body is not taken as a request', async () => {
    const t = await startServer();
    try {
      const id = await t.createSession('/up/nbsp.bin');
      const c = await RawConnection.connect(t.port);
      const head =
        `POST /up/nbsp.bin HTTP/1.1\r\nHost: x\r\nX-HTTP-Method-Override: BITS_POST\r\nBITS-Packet-Type: Fragment\r\n` +
        `BITS-Session-Id: ${id}\r\nContent-Range: bytes 0-2/3\r\nTransfer-Encoding: \xa0chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`;
      await c.write(Buffer.from(head, 'latin1'));
      const res = await c.read();
      assertErr(res, 400, '0x80070057');
      c.close();
      await assert.rejects(readFile(join(t.uploads, 'nbsp.bin')), { code: 'ENOENT' });
    } finally {
      await t.stop();
    }
  });
});
