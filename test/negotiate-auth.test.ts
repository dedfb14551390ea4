// Negotiate (Kerberos through SPNEGO) on the server, against a real MIT Kerberos KDC started for the
// test (a throw-away realm BITS.TEST): curl --negotiate drives a whole BITS upload, our client does
// too (also across a server restart), tokens that must fail do (no ticket, expired, replayed,
// garbage), sessions stay bound to the Kerberos principal, and realm stripping and group mapping
// work.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gssapiAvailable, NegotiateInitiator } from '../src/auth/gssapi.js';
import { download } from '../src/client/download.js';
import { upload } from '../src/client/upload.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { runCli } from './helpers/cli-run.js';
import { curl, curlHas } from './helpers/curl.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import { startKdc } from './helpers/kdc.js';
import type { Kdc } from './helpers/kdc.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import type { BitsRequest, RawResponse } from './helpers/raw-http.js';
import { addUser, basic } from './helpers/users.js';

const REALM = 'BITS.TEST';

async function exchange(c: RawConnection, r: BitsRequest): Promise<RawResponse> {
  await c.write(bitsRequestBytes(r));
  return c.read();
}

const create = (path: string, headers: Record<string, string> = {}): BitsRequest => ({
  type: 'Create-Session',
  path,
  headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...headers },
});

/** A fresh SPNEGO token for HTTP/localhost from the credential cache `ccache`. */
async function negotiateToken(ccache: string): Promise<string> {
  const previous = process.env['KRB5CCNAME'];
  process.env['KRB5CCNAME'] = ccache;
  try {
    return await new NegotiateInitiator({ service: 'HTTP@localhost' }).step();
  } finally {
    if (previous === undefined) delete process.env['KRB5CCNAME'];
    else process.env['KRB5CCNAME'] = previous;
  }
}


describe('Negotiate (Kerberos) authentication', () => {
  let skip: string | undefined;
  let kdc: Kdc;
  let dir: string;
  let t: TestServer;
  let alice: string;
  let bob: string;
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    const gss = gssapiAvailable();
    if (!gss.ok) {
      skip = `GSSAPI cannot be used: ${gss.reason}`;
      return;
    }
    const started = await startKdc();
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    kdc = started;
    for (const [k, v] of Object.entries(kdc.env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    await kdc.addPrincipal('alice', 'alice-password');
    await kdc.addPrincipal('bob', 'bob-password');
    alice = await kdc.kinit('alice', 'alice-password');
    bob = await kdc.kinit('bob', 'bob-password', { ccache: join(kdc.dir, 'bob.ccache') });
    process.env['KRB5CCNAME'] = alice;
    dir = await mkdtemp(join(tmpdir(), 'bits-negotiate-'));
    const users = join(dir, 'users.json');
    addUser(users, 'alice', 'local-alice-password', [], { ntlm: true });
    addUser(users, 'carol@BITS.TEST', 'carol-password');
    const groups = join(dir, 'groups.json');
    await writeFile(groups, JSON.stringify({ groups: { uploaders: [`alice@${REALM}`] } }));
    const servicePrincipal = `HTTP/localhost@${REALM}`;
    const negotiate = { keytab: kdc.keytab, servicePrincipal, users, allowInsecureBasic: true };
    t = await startServer({
      vdirs: [
        { path: '/kerb', directory: './kerb', downloadEnabled: true, auth: { schemes: ['negotiate', 'ntlm', 'basic'], ...negotiate } },
        { path: '/strip', directory: './strip', auth: { schemes: ['negotiate', 'basic'], ...negotiate, stripRealm: true } },
        { path: '/group', directory: './group', auth: { schemes: ['negotiate'], ...negotiate, groups, allow: ['group:uploaders'] } },
        { path: '/other', directory: './other', auth: { schemes: ['negotiate'], ...negotiate, servicePrincipal: `HTTP/bits.example.test@${REALM}` } },
      ],
    });
  });
  after(async () => {
    await t?.stop();
    await kdc?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function skipped(ctx: TestContext): boolean {
    if (skip === undefined) return false;
    console.warn(`WARNING: Negotiate tests SKIPPED: ${skip}`);
    ctx.skip(skip);
    return true;
  }

  it('a 401 offers Negotiate, NTLM and Basic in the configured order', async (ctx) => {
    if (skipped(ctx)) return;
    const res = await t.request(create('/kerb/a.bin'));
    assert.equal(res.status, 401);
    assert.equal(res.headers['www-authenticate'], 'Negotiate, NTLM, Basic realm="bits", charset="UTF-8"');
  });

  it('a Kerberos token logs in with mutual authentication; the connection stays bound; a replayed token is refused', async (ctx) => {
    if (skipped(ctx)) return;
    const token = await negotiateToken(alice);
    const c = await RawConnection.connect(t.port);
    const other = await RawConnection.connect(t.port);
    try {
      const created = await exchange(c, create('/kerb/bound.bin', { Authorization: `Negotiate ${token}` }));
      assertAck(created);
      assert.match(created.headers['www-authenticate'] ?? '', /^Negotiate [A-Za-z0-9+/]+=*$/, 'the mutual-authentication token');
      const id = created.headers['bits-session-id']!;
      assertAck(await exchange(c, { type: 'Fragment', path: '/kerb/bound.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' }));
      assertAck(await exchange(c, { type: 'Close-Session', path: '/kerb/bound.bin', sessionId: id }));
      assert.equal(await readFile(join(t.root, 'kerb', 'bound.bin'), 'utf8'), 'abc');
      // the same token again, on another connection: GSSAPI's replay cache refuses it
      const replayed = await exchange(other, { type: 'Ping', path: '/kerb/x.bin', headers: { Authorization: `Negotiate ${token}` } });
      assert.equal(replayed.status, 401);
      assert.equal((await exchange(other, { type: 'Ping', path: '/kerb/x.bin', headers: { Authorization: 'Negotiate AAAAAAAA' } })).status, 401, 'garbage');
      // a fresh connection is not bound
      assert.equal((await t.request({ type: 'Ping', path: '/kerb/x.bin' })).status, 401);
    } finally {
      c.close();
      other.close();
    }
  });

  it('a ticket for another service than servicePrincipal is refused', async (ctx) => {
    if (skipped(ctx)) return;
    const res = await t.request(create('/other/o.bin', { Authorization: `Negotiate ${await negotiateToken(alice)}` }));
    assert.equal(res.status, 401);
    assertAck(await t.request(create('/kerb/o.bin', { Authorization: `Negotiate ${await negotiateToken(alice)}` })));
  });

  it('an expired ticket is refused', async (ctx) => {
    if (skipped(ctx)) return;
    const short = await kdc.kinit('bob', 'bob-password', { ccache: join(kdc.dir, 'short.ccache'), lifetime: '3s' });
    const token = await negotiateToken(short);
    await sleep(kdc.expiryWaitMs(3000));
    const res = await t.request({ type: 'Ping', path: '/kerb/x.bin', headers: { Authorization: `Negotiate ${token}` } });
    assert.equal(res.status, 401);
  });

  it('sessions stay bound to the Kerberos principal: a local account of the same name is another principal', async (ctx) => {
    if (skipped(ctx)) return;
    const c = await RawConnection.connect(t.port);
    try {
      const id = (await exchange(c, create('/kerb/owned.bin', { Authorization: `Negotiate ${await negotiateToken(alice)}` }))).headers['bits-session-id']!;
      const frag = (auth: string): BitsRequest => ({ type: 'Fragment', path: '/kerb/owned.bin', sessionId: id, headers: { Authorization: auth, 'Content-Range': 'bytes 0-2/3' }, body: 'abc' });
      assertErr(await t.request(frag(basic('alice', 'local-alice-password'))), 500, '0x8020001F');
      assertErr(await t.request(frag(`Negotiate ${await negotiateToken(bob)}`)), 500, '0x8020001F');
      // a local name with @ cannot pose as a Kerberos principal
      assert.equal((await t.request(frag(basic(`carol@${REALM}`, 'carol-password')))).status, 401);
      assertAck(await exchange(c, { type: 'Fragment', path: '/kerb/owned.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' }));
    } finally {
      c.close();
    }
  });

  it('stripRealm maps the realm onto local names; a group mapping file feeds group: entries', async (ctx) => {
    if (skipped(ctx)) return;
    const id = (await t.request(create('/strip/s.bin', { Authorization: `Negotiate ${await negotiateToken(alice)}` }))).headers['bits-session-id'];
    assert.ok(id);
    // the Basic account alice is the same principal as alice@BITS.TEST here
    assertAck(await t.request({ type: 'Cancel-Session', path: '/strip/s.bin', sessionId: id, headers: { Authorization: basic('alice', 'local-alice-password') } }));
    assertAck(await t.request(create('/group/g.bin', { Authorization: `Negotiate ${await negotiateToken(alice)}` })));
    assertErr(await t.request(create('/group/g.bin', { Authorization: `Negotiate ${await negotiateToken(bob)}` })), 403, '0x80070005');
  });

  it('curl --negotiate drives a whole BITS upload; without a ticket it gets 401', async (ctx) => {
    if (skipped(ctx)) return;
    if (!curlHas('SPNEGO')) {
      console.warn('WARNING: curl without SPNEGO support: the curl --negotiate upload is SKIPPED');
      ctx.skip('curl without SPNEGO support');
      return;
    }
    const url = `http://localhost:${t.port}/kerb/curl.bin`;
    const env = { ...kdc.env, KRB5CCNAME: alice };
    const common = ['--negotiate', '-u', ':', '-X', 'BITS_POST', '-o', '/dev/null', '-D', '-'];
    const created = await curl([...common, '-H', 'BITS-Packet-Type: Create-Session', '-H', `BITS-Supported-Protocols: ${BITS_PROTOCOL_GUID}`, url], env);
    assert.equal(created.code, 0, created.err);
    const id = /BITS-Session-Id: (\S+)/i.exec(created.out)?.[1];
    assert.ok(id, created.out);
    const data = randomBytes(200_000);
    const file = join(dir, 'curl-fragment');
    for (let at = 0; at < data.length; at += 100_000) {
      await writeFile(file, data.subarray(at, at + 100_000));
      const frag = await curl([...common, '-H', 'BITS-Packet-Type: Fragment', '-H', `BITS-Session-Id: ${id}`, '-H', `Content-Range: bytes ${at}-${at + 99_999}/${data.length}`, '--data-binary', `@${file}`, url], env);
      assert.match(frag.out, /^HTTP\/1\.1 200/m, frag.out);
    }
    const closed = await curl([...common, '-H', 'BITS-Packet-Type: Close-Session', '-H', `BITS-Session-Id: ${id}`, url], env);
    assert.match(closed.out, /^HTTP\/1\.1 200/m, closed.out);
    assert.deepEqual(await readFile(join(t.root, 'kerb', 'curl.bin')), data);
    const none = await curl(['--negotiate', '-u', ':', '-X', 'BITS_POST', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'BITS-Packet-Type: Ping', url], { ...kdc.env, KRB5CCNAME: join(kdc.dir, 'empty.ccache') });
    assert.equal(none.out, '401');
  });

  it('our client uploads with --negotiate, and the library with auth: "negotiate" across a server restart', async (ctx) => {
    if (skipped(ctx)) return;
    const src = join(dir, 'client.bin');
    await randomFile(src, 300_000);
    // (not spawnSync: the server runs in this process)
    const cli = await runCli(['upload', src, `http://localhost:${t.port}/kerb/cli.bin`, '--negotiate', '--state-dir', join(dir, 'jobs'), '--fragment-size', '65536', '--quiet'], { ...kdc.env, KRB5CCNAME: alice });
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(await sha256File(join(t.root, 'kerb', 'cli.bin')), await sha256File(src));

    const job = upload({ file: src, url: `http://localhost:${t.port}/kerb/restart.bin`, auth: 'negotiate', stateDir: false, fragmentSize: 32 * 1024, retryDelayMs: 50 });
    let restarted: Promise<void> | undefined;
    job.on('progress', (p) => {
      if (!restarted && p.bytesDone >= 64 * 1024) restarted = t.restart();
    });
    await job.result;
    assert.ok(restarted);
    await restarted;
    assert.equal(await sha256File(join(t.root, 'kerb', 'restart.bin')), await sha256File(src));

    // a download authenticates its connection with a HEAD; the answer's mutual token is checked
    const fetched = join(dir, 'fetched.bin');
    await download({ url: `http://localhost:${t.port}/kerb/restart.bin`, file: fetched, auth: 'negotiate', stateDir: false, retryDelayMs: 50 }).result;
    assert.equal(await sha256File(fetched), await sha256File(src));
  });
});
