// NTLM on the server (a vdir with "schemes": ["ntlm", ...]) over real sockets: the three-leg
// handshake bound to its connection, full uploads by curl --ntlm and by our own client (also across
// a server restart), refusals, sessions bound to their principal, and a 401 on a large Fragment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildAuthenticate, buildNegotiate } from '../src/auth/ntlm/index.js';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { BitsServer } from '../src/server/bits-server.js';
import { parseConfig } from '../src/server/config.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { pino } from 'pino';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { CLI } from './helpers/cli.js';
import { curl, curlHas } from './helpers/curl.js';
import { runCli } from './helpers/cli-run.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import type { BitsRequest, RawResponse } from './helpers/raw-http.js';
import { addUser, basic } from './helpers/users.js';

const DOMAIN = 'BITSTEST';

/** The NTLM challenge token of a 401, if any. */
function ntlmChallenge(res: RawResponse, scheme = 'NTLM'): Buffer | undefined {
  const m = new RegExp(`(?:^|, )${scheme} ([A-Za-z0-9+/]+={0,2})`).exec(res.headers['www-authenticate'] ?? '');
  return m ? Buffer.from(m[1]!, 'base64') : undefined;
}

async function exchange(c: RawConnection, r: BitsRequest): Promise<RawResponse> {
  await c.write(bitsRequestBytes(r));
  return c.read();
}

/**
 * Runs the NTLM handshake on `c` with a Ping (or the request given): returns the answer to the
 * third leg.
 */
async function ntlmLogin(c: RawConnection, path: string, user: string, password: string, domain = '', scheme = 'NTLM'): Promise<RawResponse> {
  const negotiate = buildNegotiate();
  const first = await exchange(c, { type: 'Ping', path, headers: { Authorization: `${scheme} ${negotiate.toString('base64')}` } });
  assert.equal(first.status, 401, 'the negotiate message is answered by a challenge');
  const challenge = ntlmChallenge(first, scheme);
  assert.ok(challenge, `a ${scheme} challenge: ${first.headers['www-authenticate']}`);
  const authenticate = buildAuthenticate({ negotiate, challenge, user, domain, password });
  return exchange(c, { type: 'Ping', path, headers: { Authorization: `${scheme} ${authenticate.toString('base64')}` } });
}

const create = (path: string, headers: Record<string, string> = {}): BitsRequest => ({
  type: 'Create-Session',
  path,
  headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...headers },
});



describe('NTLM authentication', () => {
  let dir: string;
  let users: string;
  let t: TestServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-ntlm-'));
    users = join(dir, 'users.json');
    const warning = addUser(users, 'alice', 'alice-password', [], { ntlm: true });
    assert.match(warning, /password-equivalent/, 'bits user add --ntlm says the NT hash is password-equivalent');
    addUser(users, 'bob', 'bob-password', ['agents'], { ntlm: true });
    addUser(users, 'carol', 'carol-password'); // Basic only: no NT hash
    addUser(users, 'dave', 'dave-password', [], { ntlm: true });
    t = await startServer({
      vdirs: [
        { path: '/win', directory: './win', downloadEnabled: true, auth: { schemes: ['ntlm', 'basic'], users, ntlmDomain: DOMAIN, allowInsecureBasic: true, allow: ['alice', 'group:agents', 'carol'] } },
        { path: '/big', directory: './big', auth: { schemes: ['ntlm'], users, ntlmDomain: DOMAIN }, maxFragmentSize: 16 * 1024 * 1024 },
      ],
    });
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the users file holds an NT hash for --ntlm accounts only, and is readable by its owner only', async () => {
    const file = JSON.parse(await readFile(users, 'utf8')) as { users: Record<string, { nt?: string }> };
    assert.match(file.users['alice']!.nt ?? '', /^[0-9a-f]{32}$/);
    assert.equal(file.users['carol']!.nt, undefined);
    assert.equal(statSync(users).mode & 0o777, 0o600);
    const list = spawnSync(process.execPath, [CLI, 'user', 'list', '--users', users], { encoding: 'utf8' });
    assert.match(list.stdout, /^alice\t\tntlm$/m);
    assert.match(list.stdout, /^carol$/m);
  });

  it('a 401 offers every configured scheme, in the configured order, one line each', async () => {
    const c = await RawConnection.connect(t.port);
    try {
      await c.write(bitsRequestBytes(create('/win/a.bin')));
      const res = await c.read();
      assert.equal(res.status, 401);
      // (the test reader joins repeated headers with ", ": two WWW-Authenticate lines)
      assert.equal(res.headers['www-authenticate'], 'NTLM, Basic realm="bits", charset="UTF-8"');
      assert.equal(await c.closed(300), false, 'the connection stays open after the 401');
    } finally {
      c.close();
    }
  });

  it('a handshake binds the connection: a whole upload follows with no Authorization header; a new connection starts over', async () => {
    const c = await RawConnection.connect(t.port);
    try {
      assertAck(await ntlmLogin(c, '/win/bound.bin', 'alice', 'alice-password', DOMAIN));
      const created = await exchange(c, create('/win/bound.bin'));
      assertAck(created);
      const id = created.headers['bits-session-id']!;
      const data = randomBytes(3000);
      for (let at = 0; at < data.length; at += 1000) {
        const ack = await exchange(c, { type: 'Fragment', path: '/win/bound.bin', sessionId: id, headers: { 'Content-Range': `bytes ${at}-${at + 999}/3000` }, body: data.subarray(at, at + 1000) });
        assertAck(ack);
        assert.equal(ack.headers['bits-received-content-range'], String(at + 1000));
      }
      assertAck(await exchange(c, { type: 'Close-Session', path: '/win/bound.bin', sessionId: id }));
      assert.deepEqual(await readFile(join(t.root, 'win', 'bound.bin')), data);
      // Another connection is not alice's.
      const other = await t.request({ type: 'Ping', path: '/win/bound.bin' });
      assert.equal(other.status, 401);
    } finally {
      c.close();
    }
  });

  it('user names are case-insensitive and the domain may be empty or the server\'s; raw NTLM under the Negotiate name is accepted', async () => {
    for (const [user, domain] of [['ALICE', ''], ['alice', DOMAIN.toLowerCase()], ['alice', '.']] as const) {
      const c = await RawConnection.connect(t.port);
      try {
        assertAck(await ntlmLogin(c, '/win/x.bin', user, 'alice-password', domain));
      } finally {
        c.close();
      }
    }
    const c = await RawConnection.connect(t.port);
    try {
      assertAck(await ntlmLogin(c, '/win/x.bin', 'alice', 'alice-password', '', 'Negotiate'));
    } finally {
      c.close();
    }
  });

  it('refuses a wrong password, an unknown user, an account without an NT hash, a foreign domain and an answer without a challenge', async () => {
    for (const [user, password, domain] of [
      ['alice', 'wrong-password', ''],
      ['mallory', 'alice-password', ''],
      ['carol', 'carol-password', ''],
      ['alice', 'alice-password', 'OTHERDOMAIN'],
    ] as const) {
      const c = await RawConnection.connect(t.port);
      try {
        const res = await ntlmLogin(c, '/win/x.bin', user, password, domain);
        assert.equal(res.status, 401, `${domain}\\${user}`);
        assert.equal(res.headers['www-authenticate'], 'NTLM, Basic realm="bits", charset="UTF-8"');
        // nothing is bound: the next request is challenged again
        assert.equal((await exchange(c, { type: 'Ping', path: '/win/x.bin' })).status, 401);
      } finally {
        c.close();
      }
    }
    // A Type 3 message on a connection that was never challenged (replayed from another connection).
    const a = await RawConnection.connect(t.port);
    const b = await RawConnection.connect(t.port);
    try {
      const negotiate = buildNegotiate();
      const first = await exchange(a, { type: 'Ping', path: '/win/x.bin', headers: { Authorization: `NTLM ${negotiate.toString('base64')}` } });
      const authenticate = buildAuthenticate({ negotiate, challenge: ntlmChallenge(first)!, user: 'alice', domain: '', password: 'alice-password' });
      const header = { Authorization: `NTLM ${authenticate.toString('base64')}` };
      assert.equal((await exchange(b, { type: 'Ping', path: '/win/x.bin', headers: header })).status, 401, 'replayed on another connection');
      assertAck(await exchange(a, { type: 'Ping', path: '/win/x.bin', headers: header }));
      // and once used, the same answer cannot be used again on its own connection
      assert.equal((await exchange(a, { type: 'Ping', path: '/win/x.bin', headers: header })).status, 401, 'replayed on its connection');
      assert.equal((await exchange(a, { type: 'Ping', path: '/win/x.bin', headers: { Authorization: 'NTLM !!!' } })).status, 401, 'malformed');
    } finally {
      a.close();
      b.close();
    }
  });

  it('sessions stay bound to their principal: another NTLM account, or Basic, cannot touch them', async () => {
    const a = await RawConnection.connect(t.port);
    const b = await RawConnection.connect(t.port);
    try {
      assertAck(await ntlmLogin(a, '/win/owned.bin', 'alice', 'alice-password'));
      const id = (await exchange(a, create('/win/owned.bin'))).headers['bits-session-id']!;
      assertAck(await ntlmLogin(b, '/win/owned.bin', 'bob', 'bob-password'));
      const frag: BitsRequest = { type: 'Fragment', path: '/win/owned.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' };
      assertErr(await exchange(b, frag), 500, '0x8020001F');
      // Basic "carol" is let in to the vdir but is not alice either
      assertErr(await t.request({ ...frag, headers: { ...frag.headers, Authorization: basic('carol', 'carol-password') } }), 500, '0x8020001F');
      assertAck(await exchange(a, frag));
      // the allow list applies to NTLM principals too: dave authenticates but is not allowed
      const d = await RawConnection.connect(t.port);
      try {
        assertErr(await ntlmLogin(d, '/win/x.bin', 'dave', 'dave-password'), 403, '0x80070005');
      } finally {
        d.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('a changed password or a removed account ends the binding of a live connection', async () => {
    const local = join(dir, 'users-2.json');
    addUser(local, 'erin', 'erin-password', [], { ntlm: true });
    const s = await startServer({ vdirs: [{ path: '/w', directory: './w', auth: { schemes: ['ntlm'], users: local } }] });
    const c = await RawConnection.connect(s.port);
    try {
      assertAck(await ntlmLogin(c, '/w/x.bin', 'erin', 'erin-password'));
      assertAck(await exchange(c, { type: 'Ping', path: '/w/x.bin' }));
      addUser(local, 'erin', 'erin-new-password', [], { ntlm: true });
      // (the server checks the users file at most once a second)
      const deadline = Date.now() + 5000;
      let status = 200;
      while (status !== 401 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        status = (await exchange(c, { type: 'Ping', path: '/w/x.bin' })).status;
      }
      assert.equal(status, 401);
    } finally {
      c.close();
      await s.stop();
    }
  });

  it('a 401 on a large Fragment keeps the connection usable; after the handshake a 13 MB Fragment goes through unchallenged', async () => {
    const c = await RawConnection.connect(t.port);
    try {
      assertAck(await ntlmLogin(c, '/big/a.bin', 'bob', 'bob-password'));
      const id = (await exchange(c, create('/big/a.bin'))).headers['bits-session-id']!;
      const big = randomBytes(13_000_000);
      // another connection: the body of a challenged Fragment is drained, the connection stays open
      const fresh = await RawConnection.connect(t.port);
      try {
        const frag: BitsRequest = { type: 'Fragment', path: '/big/a.bin', sessionId: id, headers: { 'Content-Range': `bytes 0-${big.length - 1}/${big.length}` }, body: big };
        const challenged = await exchange(fresh, frag);
        assert.equal(challenged.status, 401);
        assert.equal(challenged.headers['connection'], undefined, 'no Connection: close');
        assertAck(await ntlmLogin(fresh, '/big/a.bin', 'bob', 'bob-password'));
        const ack = await exchange(fresh, frag);
        assertAck(ack);
        assert.equal(ack.headers['bits-received-content-range'], String(big.length));
      } finally {
        fresh.close();
      }
      assertAck(await exchange(c, { type: 'Close-Session', path: '/big/a.bin', sessionId: id }));
      assert.deepEqual(await readFile(join(t.root, 'big', 'a.bin')), big);
    } finally {
      c.close();
    }
  });

  it('curl --ntlm drives a whole BITS upload: Create-Session, Fragments, Close-Session', async (ctx) => {
    if (!curlHas('NTLM')) {
      console.warn('WARNING: curl without NTLM support: the curl --ntlm upload is SKIPPED');
      ctx.skip('curl without NTLM support');
      return;
    }
    const url = `http://127.0.0.1:${t.port}/win/curl.bin`;
    const common = ['--ntlm', '-u', `${DOMAIN}\\alice:alice-password`, '-X', 'BITS_POST', '-o', '/dev/null', '-D', '-'];
    const created = await curl([...common, '-H', 'BITS-Packet-Type: Create-Session', '-H', `BITS-Supported-Protocols: ${BITS_PROTOCOL_GUID}`, url]);
    assert.equal(created.code, 0, created.err);
    const id = /BITS-Session-Id: (\S+)/i.exec(created.out)?.[1];
    assert.ok(id, created.out);
    const data = randomBytes(200_000);
    const file = join(dir, 'curl-fragment');
    for (let at = 0; at < data.length; at += 100_000) {
      await writeFile(file, data.subarray(at, at + 100_000));
      const frag = await curl([...common, '-H', 'BITS-Packet-Type: Fragment', '-H', `BITS-Session-Id: ${id}`, '-H', `Content-Range: bytes ${at}-${at + 99_999}/${data.length}`, '--data-binary', `@${file}`, url]);
      assert.equal(frag.code, 0, frag.err);
      assert.match(frag.out, /^HTTP\/1\.1 200/m, frag.out);
      assert.match(frag.out, new RegExp(`BITS-Received-Content-Range: ${at + 100_000}`, 'i'));
    }
    const closed = await curl([...common, '-H', 'BITS-Packet-Type: Close-Session', '-H', `BITS-Session-Id: ${id}`, url]);
    assert.match(closed.out, /^HTTP\/1\.1 200/m, closed.out);
    assert.deepEqual(await readFile(join(t.root, 'win', 'curl.bin')), data);
    // a wrong password and an unknown user end at 401
    for (const user of [`${DOMAIN}\\alice:wrong-password`, 'mallory:alice-password']) {
      const refused = await curl(['--ntlm', '-u', user, '-X', 'BITS_POST', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'BITS-Packet-Type: Ping', url]);
      assert.equal(refused.out, '401', user);
    }
  });

  it('our client uploads with --ntlm, the library with auth: "ntlm", and carries on across a server restart', async () => {
    const src = join(dir, 'client.bin');
    await randomFile(src, 300_000);
    // (not spawnSync: the server runs in this process)
    const cli = await runCli(['upload', src, `http://127.0.0.1:${t.port}/win/cli.bin`, '--ntlm', '--user', `${DOMAIN}\\bob:bob-password`, '--state-dir', join(dir, 'jobs'), '--fragment-size', '65536', '--quiet']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(await sha256File(join(t.root, 'win', 'cli.bin')), await sha256File(src));

    const job = upload({ file: src, url: `http://127.0.0.1:${t.port}/win/restart.bin`, auth: 'ntlm', user: 'bob:bob-password', stateDir: false, fragmentSize: 32 * 1024, retryDelayMs: 50 });
    let restarted: Promise<void> | undefined;
    job.on('progress', (p) => {
      if (!restarted && p.bytesDone >= 64 * 1024) restarted = t.restart();
    });
    await job.result;
    assert.ok(restarted, 'the server was restarted during the upload');
    await restarted;
    assert.equal(await sha256File(join(t.root, 'win', 'restart.bin')), await sha256File(src));

    // downloads authenticate their connection with a HEAD
    const fetched = join(dir, 'fetched.bin');
    const dl = await runCli(['download', `http://127.0.0.1:${t.port}/win/cli.bin`, fetched, '--ntlm', '--user', 'bob:bob-password', '--state-dir', join(dir, 'jobs'), '--quiet']);
    assert.equal(dl.code, 0, dl.stderr);
    assert.equal(await sha256File(fetched), await sha256File(src));
    const anonymous = await runCli(['download', `http://127.0.0.1:${t.port}/win/cli.bin`, join(dir, 'no.bin'), '--state-dir', join(dir, 'jobs'), '--quiet']);
    assert.equal(anonymous.code, 1, 'without credentials the download is refused');

    // wrong credentials are the server's refusal (401), not retried
    const refused = upload({ file: src, url: `http://127.0.0.1:${t.port}/win/no.bin`, auth: 'ntlm', user: 'bob:wrong', stateDir: false, retryDelayMs: 50 });
    await assert.rejects(refused.result, (err: BitsClientError) => err.status === 401 && err.kind === 'fatal');
  });

  it('configuration mistakes are refused, naming the key', async () => {
    const vdir = (auth: Record<string, unknown>, path = '/v'): ServerConfigInput['vdirs'][number] =>
      ({ path, directory: './v', auth }) as unknown as ServerConfigInput['vdirs'][number];
    const bad = (vdirs: ServerConfigInput['vdirs'], key: string, message: RegExp): void => {
      assert.throws(
        () => parseConfig({ vdirs }, dir),
        (err: Error) => err.message.includes(key) && message.test(err.message),
        key,
      );
    };
    bad([vdir({ schemes: ['ntlm'] })], 'vdirs[0].auth.users', /ntlm needs a users file/);
    bad([vdir({ schemes: ['ntlm', 'ntlm'], users })], 'vdirs[0].auth.schemes', /listed twice/);
    bad([vdir({ schemes: ['negotiate'], stripRealm: true, servicePrincipal: 'HTTP/h' })], 'vdirs[0].auth.stripRealm', /realm/);
    bad([vdir({ schemes: ['negotiate'], servicePrincipal: 'alice' })], 'vdirs[0].auth.servicePrincipal', /SERVICE\/host/);
    bad([vdir({ schemes: ['ntlm'], users, ntlmDomain: 'A B' })], 'vdirs[0].auth.ntlmDomain', /NetBIOS/);
    bad([vdir({ schemes: ['negotiate'], keytab: 'a.keytab' }), vdir({ schemes: ['negotiate'], keytab: 'b.keytab' }, '/w')], 'vdirs[1].auth.keytab', /same keytab/);
    // a keytab that is not there stops the server at start-up
    const config = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, stateDir: join(dir, 'state-missing'), vdirs: [vdir({ schemes: ['negotiate'], keytab: 'missing.keytab' })] }, dir);
    const server = new BitsServer(config, { logger: pino({ level: 'silent' }) });
    await assert.rejects(server.listen(), (err: Error) => /vdirs\[0\]\.auth\.(keytab|schemes)/.test(err.message));
    await server.close(100).catch(() => undefined);
  });
});
