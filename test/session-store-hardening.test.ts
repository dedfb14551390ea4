// Session records under concurrency and damage: creates racing the sweep and each other, unreadable
// records, session folders deleted under a running server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { sessionKey } from '../src/protocol/session-id.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { addUser, basic } from './helpers/users.js';


/** Create, one fragment, Close on `c`; returns the first unexpected answer, or `undefined`. */
async function oneUpload(c: RawConnection, path: string, auth: string, body: Buffer): Promise<string | undefined> {
  const headers = { Authorization: auth };
  const created = await exchange(
    c,
    bitsRequestBytes({ type: 'Create-Session', path, headers: { ...headers, 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }),
  );
  const id = created.headers['bits-session-id'];
  if (created.status !== 200 || !id) return `Create ${created.status} ${created.headers['bits-error-code']}`;
  const frag = fragmentRequest(path, id, 0, body, body.length);
  const sent = await exchange(c, bitsRequestBytes({ ...frag, headers: { ...frag.headers, ...headers } }));
  if (sent.status !== 200) return `Fragment ${sent.status} ${sent.headers['bits-error-code']}`;
  const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id, headers }));
  if (closed.status !== 200) return `Close ${closed.status} ${closed.headers['bits-error-code']}`;
  return undefined;
}

describe('session records under concurrency', () => {
  let t: TestServer;
  let users: string;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-users-'));
    users = join(dir, 'users.json');
    addUser(users, 'alice', 'alice-password');
    t = await startServer({
      config: { sweepInterval: 1 },
      vdir: { auth: { schemes: ['basic'], users, allowInsecureBasic: true }, sessionsPerUserLimit: 1000 },
    });
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('16 authenticated clients, 1,000 Create/Fragment/Close runs with the sweep at 1 s: no failure', async () => {
    const auth = basic('alice', 'alice-password');
    const failures: string[] = [];
    let next = 0;
    const worker = async (w: number): Promise<void> => {
      const c = await RawConnection.connect(t.port);
      try {
        for (let n = next++; n < 1000; n = next++) {
          const failure = await oneUpload(c, `/up/w${w}/f${n}.bin`, auth, randomBytes(4096));
          if (failure) failures.push(`#${n}: ${failure}`);
        }
      } finally {
        c.close();
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)));
    assert.deepEqual(failures.filter((f) => !f.includes("401")).slice(0, 10), [], `${failures.length} failures`);
    let files = 0;
    for (const d of await readdir(t.uploads)) files += (await readdir(join(t.uploads, d))).length;
    assert.equal(files, 1000);
  });

  it('the per-user limit holds exactly under simultaneous creates, and acknowledged sessions survive a restart', async () => {
    const limited = await startServer({
      vdir: { auth: { schemes: ['basic'], users, allowInsecureBasic: true }, sessionsPerUserLimit: 5 },
    });
    try {
      const headers = { Authorization: basic('alice', 'alice-password'), 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID };
      const answers = await Promise.all(Array.from({ length: 20 }, () => limited.request({ type: 'Create-Session', path: '/up/x.bin', headers })));
      const ok = answers.filter((a) => a.status === 200);
      assert.equal(ok.length, 5);
      assert.ok(answers.every((a) => a.status === 200 || a.status === 503));
      await limited.restart();
      for (const a of ok) {
        const id = a.headers['bits-session-id']!;
        const frag = fragmentRequest('/up/x.bin', id, 0, Buffer.from('abc'), 3);
        const res = await limited.request({ ...frag, headers: { ...frag.headers, Authorization: headers.Authorization } });
        assertAck(res);
      }
    } finally {
      await limited.stop();
    }
  });
});

describe('damaged and vanished sessions', () => {
  it('an unreadable record is quarantined and skipped; bits serve starts and every other session works', async () => {
    const t = await startServer();
    try {
      const good = await t.createSession('/up/good.bin');
      const bad = await t.createSession('/up/bad.bin');
      const garbled = await t.createSession('/up/garbled.bin');
      await t.server.close(1000);
      const recordOf = (id: string) => join(t.stateDir, 'sessions', sessionKey(id), 'record.json');
      await writeFile(recordOf(bad), '{"id": "trunc');
      await writeFile(recordOf(garbled), JSON.stringify({ id: garbled, hello: 'world' }));
      const server = await startCli(['--root', t.uploads, '--state-dir', t.stateDir]);
      try {
        const c = await RawConnection.connect(server.port);
        const res = await exchange(c, bitsRequestBytes(fragmentRequest('/up/good.bin', good, 0, Buffer.from('hello'), 5)));
        assertAck(res);
        assert.equal(res.headers['bits-received-content-range'], '5');
        // the damaged ones are simply unknown to clients, who start over
        assertErr(await exchange(c, bitsRequestBytes(fragmentRequest('/up/bad.bin', bad, 0, Buffer.from('x'), 1))), 500, '0x8020001F');
        const created = await exchange(
          c,
          bitsRequestBytes({ type: 'Create-Session', path: '/up/new.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }),
        );
        assertAck(created);
        c.close();
      } finally {
        server.child.kill('SIGKILL');
      }
      const quarantined = await readdir(join(t.stateDir, 'quarantine'));
      assert.equal(quarantined.length, 2);
      // moved aside, not deleted: the operator can still read what was there
      const kept = quarantined.find((q) => q.startsWith(sessionKey(bad)));
      assert.ok(kept, 'the truncated record is in quarantine/');
      assert.equal(await readFile(join(t.stateDir, 'quarantine', kept, 'record.json'), 'utf8'), '{"id": "trunc');
    } finally {
      await rm(t.root, { recursive: true, force: true });
    }
  });

  it('a retransmission of bytes whose data file was deleted is session-not-found, not a promise of lost bytes', async () => {
    const t = await startServer();
    try {
      const id = await t.createSession('/up/d.bin');
      assertAck(await t.request(fragmentRequest('/up/d.bin', id, 0, Buffer.from('12345'), 10)));
      await rm(join(t.stateDir, 'sessions', sessionKey(id), 'data.bin'));
      assertErr(await t.request(fragmentRequest('/up/d.bin', id, 0, Buffer.from('12345'), 10)), 500, '0x8020001F');
      const other = await t.createSession('/up/e.bin');
      assertAck(await t.request(fragmentRequest('/up/e.bin', other, 0, Buffer.from('12345'), 10)));
      await rm(join(t.stateDir, 'sessions', sessionKey(other)), { recursive: true });
      assertErr(await t.request(fragmentRequest('/up/e.bin', other, 0, Buffer.from('12345'), 10)), 500, '0x8020001F');
    } finally {
      await t.stop();
    }
  });

  it('a session folder deleted while the server runs is session-not-found, and the client can start over', async () => {
    const t = await startServer();
    try {
      const id = await t.createSession('/up/v.bin');
      assertAck(await t.request(fragmentRequest('/up/v.bin', id, 0, Buffer.from('12345'), 10)));
      await rm(join(t.stateDir, 'sessions', sessionKey(id)), { recursive: true, force: true });
      const res = await t.request(fragmentRequest('/up/v.bin', id, 5, Buffer.from('67890'), 10));
      assertErr(res, 500, '0x8020001F');
      // the record went with it: the same id stays not-found, also on Close
      assertErr(await t.request({ type: 'Close-Session', path: '/up/v.bin', sessionId: id }), 500, '0x8020001F');
      const again = await t.createSession('/up/v.bin');
      assertAck(await t.request(fragmentRequest('/up/v.bin', again, 0, Buffer.from('1234567890'), 10)));
      assertAck(await t.request({ type: 'Close-Session', path: '/up/v.bin', sessionId: again }));
      assert.equal(await readFile(join(t.uploads, 'v.bin'), 'utf8'), '1234567890');
    } finally {
      await t.stop();
    }
  });
});
