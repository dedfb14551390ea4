// Spec §15 cases 21–38: Fragment.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

const P = '/up/f.bin';

describe('fragments (spec §15 21–38)', () => {
  let t: TestServer;
  let small: TestServer;
  before(async () => {
    t = await startServer({ vdir: { maxFragmentSize: 14 * 1024 * 1024 } });
    small = await startServer({ vdir: { maximumUploadSize: 1000, maxFragmentSize: 200 } });
  });
  after(async () => {
    await t.stop();
    await small.stop();
  });

  async function committed(server: TestServer, path: string, id: string): Promise<Buffer> {
    assertAck(await server.request({ type: 'Close-Session', path, sessionId: id }));
    return readFile(join(server.uploads, path.slice('/up/'.length)));
  }

  it('21: a whole file in one fragment', async () => {
    const data = randomBytes(4892);
    const id = await t.createSession('/up/one.bin');
    const res = await t.request(fragmentRequest('/up/one.bin', id, 0, data, 4892));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '4892');
    assert.equal(res.headers['bits-session-id'], id);
    assert.equal(res.headers['bits-reply-url'], undefined);
    assert.deepEqual(await committed(t, '/up/one.bin', id), data);
  });

  it('22: sequential fragments', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/seq.bin');
    for (const [i, n] of [[0, '100'], [100, '200'], [200, '300']] as const) {
      const res = await t.request(fragmentRequest('/up/seq.bin', id, i, data.subarray(i, i + 100), 300));
      assertAck(res);
      assert.equal(res.headers['bits-received-content-range'], n);
    }
    assert.deepEqual(await committed(t, '/up/seq.bin', id), data);
  });

  it('23: a gap is 416 with the next expected offset, nothing written', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/gap.bin');
    assertAck(await t.request(fragmentRequest('/up/gap.bin', id, 0, data.subarray(0, 100), 300)));
    const res = await t.request(fragmentRequest('/up/gap.bin', id, 200, data.subarray(200), 300));
    assertAck(res, 416);
    assert.equal(res.headers['bits-received-content-range'], '100');
    assert.ok(res.headers['bits-error-code'] === undefined || res.headers['bits-error-code'] === '0');
    // the session continues from 100
    const next = await t.request(fragmentRequest('/up/gap.bin', id, 100, data.subarray(100), 300));
    assert.equal(next.headers['bits-received-content-range'], '300');
    assert.deepEqual(await committed(t, '/up/gap.bin', id), data);
  });

  it('24: an overlap keeps stored bytes and writes only the new tail', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/ov.bin');
    assertAck(await t.request(fragmentRequest('/up/ov.bin', id, 0, data.subarray(0, 101), 300)));
    const overlap = Buffer.concat([Buffer.alloc(51, 0xee), data.subarray(101, 151)]);
    const res = await t.request(fragmentRequest('/up/ov.bin', id, 50, overlap, 300));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '151');
    assertAck(await t.request(fragmentRequest('/up/ov.bin', id, 151, data.subarray(151), 300)));
    assert.deepEqual(await committed(t, '/up/ov.bin', id), data);
  });

  it('25: a pure retransmission changes nothing', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/re.bin');
    assertAck(await t.request(fragmentRequest('/up/re.bin', id, 0, data.subarray(0, 200), 300)));
    const res = await t.request(fragmentRequest('/up/re.bin', id, 100, Buffer.alloc(100, 1), 300));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '200');
    assertAck(await t.request(fragmentRequest('/up/re.bin', id, 200, data.subarray(200), 300)));
    assert.deepEqual(await committed(t, '/up/re.bin', id), data);
  });

  it('26: the last fragment resent after completion gets the same Ack', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/last.bin');
    for (let i = 0; i < 300; i += 100) assertAck(await t.request(fragmentRequest('/up/last.bin', id, i, data.subarray(i, i + 100), 300)));
    const res = await t.request(fragmentRequest('/up/last.bin', id, 200, data.subarray(200), 300));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '300');
    assert.deepEqual(await committed(t, '/up/last.bin', id), data);
  });

  it('27: a changed total is 400', async () => {
    const id = await t.createSession('/up/tot.bin');
    assertAck(await t.request(fragmentRequest('/up/tot.bin', id, 0, Buffer.alloc(100), 300)));
    const res = await t.request(fragmentRequest('/up/tot.bin', id, 100, Buffer.alloc(100), 400));
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['bits-received-content-range'], '100');
  });

  it('28: malformed ranges are 400', async () => {
    const id = await t.createSession('/up/mal.bin');
    for (const [range, len] of [['bytes 0-99', 100], ['0-99/300', 100], ['bytes 10-9/10', 0], ['bytes 0-300/300', 301], ['bytes a-b/c', 3], ['bytes -5-10/20', 16], ['bytes 0-99/99999999999999999999', 100]] as const) {
      const res = await t.request({ type: 'Fragment', path: '/up/mal.bin', sessionId: id, headers: { 'Content-Range': range }, body: Buffer.alloc(len) });
      assertErr(res, 400, '0x80070057');
    }
    // nothing was stored
    const ok = await t.request(fragmentRequest('/up/mal.bin', id, 0, Buffer.from('x'), 1));
    assert.equal(ok.headers['bits-received-content-range'], '1');
  });

  it('28: the unit is case-insensitive', async () => {
    const id = await t.createSession('/up/unit.bin');
    const res = await t.request({ type: 'Fragment', path: '/up/unit.bin', sessionId: id, headers: { 'Content-Range': 'Bytes 0-2/3' }, body: 'abc' });
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '3');
  });

  it('29: missing Content-Range is 400', async () => {
    const id = await t.createSession('/up/norange.bin');
    assertErr(await t.request({ type: 'Fragment', path: '/up/norange.bin', sessionId: id, body: 'abc' }), 400, '0x80070057');
  });

  it('30: Content-Length different from the range length is 400', async () => {
    const id = await t.createSession('/up/len.bin');
    const res = await t.request({ type: 'Fragment', path: '/up/len.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-99/300' }, body: Buffer.alloc(50) });
    assertErr(res, 400, '0x80070057');
  });

  it('31: an unknown session on Fragment is 500 BG_E_SESSION_NOT_FOUND', async () => {
    const res = await t.request(fragmentRequest(P, '{00000000-0000-0000-0000-000000000000}', 0, Buffer.alloc(10), 10));
    assertErr(res, 500, '0x8020001F');
    assert.equal(res.headers['bits-session-id'], '{00000000-0000-0000-0000-000000000000}');
    assertErr(await t.request(fragmentRequest(P, 'not-a-guid', 0, Buffer.alloc(10), 10)), 500, '0x8020001F');
  });

  it('31: a session is found by its id in any case, braces optional', async () => {
    const id = await t.createSession('/up/case.bin');
    const res = await t.request(fragmentRequest('/up/case.bin', id.toLowerCase().slice(1, -1), 0, Buffer.from('ab'), 4));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '2');
  });

  it('32: Fragment without BITS-Session-Id is 400', async () => {
    const res = await t.request({ type: 'Fragment', path: P, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' });
    assertErr(res, 400, '0x80070057');
  });

  it('33: non-identity Content-Encoding is 400; identity is fine', async () => {
    const id = await t.createSession('/up/enc.bin');
    const gz = await t.request({ ...fragmentRequest('/up/enc.bin', id, 0, Buffer.from('abc'), 3), headers: { 'Content-Range': 'bytes 0-2/3', 'Content-Encoding': 'gzip' } });
    assertErr(gz, 400, '0x80070057');
    const ok = await t.request({ ...fragmentRequest('/up/enc.bin', id, 0, Buffer.from('abc'), 3), headers: { 'Content-Range': 'bytes 0-2/3', 'Content-Encoding': 'identity' } });
    assertAck(ok);
  });

  it('34: a fragment body over the per-request limit is 413', async () => {
    const id = await small.createSession('/up/big.bin');
    const res = await small.request(fragmentRequest('/up/big.bin', id, 0, Buffer.alloc(201), 900));
    assert.equal(res.status, 413);
    assert.equal(res.headers['bits-packet-type'], 'Ack');
    assert.equal(res.headers['bits-received-content-range'], '0');
    const ok = await small.request(fragmentRequest('/up/big.bin', id, 0, Buffer.alloc(200), 900));
    assert.equal(ok.headers['bits-received-content-range'], '200');
  });

  it('35: a total over the maximum upload size is 500 BG_E_TOO_LARGE', async () => {
    const id = await small.createSession('/up/huge.bin');
    assertErr(await small.request(fragmentRequest('/up/huge.bin', id, 0, Buffer.alloc(100), 5000)), 500, '0x80200020');
  });

  it('36: Content-Name never changes status or destination', async () => {
    const data = randomBytes(30);
    const id = await t.createSession('/up/named.bin');
    const names = [undefined, '..\\x', '../../etc/passwd'];
    for (let i = 0; i < 3; i++) {
      const req = fragmentRequest('/up/named.bin', id, i * 10, data.subarray(i * 10, i * 10 + 10), 30);
      const headers: Record<string, string | number> = { 'Content-Range': req.headers!['Content-Range']! };
      if (names[i] !== undefined) headers['Content-Name'] = names[i]!;
      assertAck(await t.request({ ...req, headers }));
    }
    assert.deepEqual(await committed(t, '/up/named.bin', id), data);
    const files = await readdir(t.uploads);
    assert.ok(!files.some((f) => f.includes('..') || f === 'x'));
  });

  it('37: 1-byte and 13 MB fragments are accepted', async () => {
    const data = randomBytes(13 * 1024 * 1024 + 1);
    const id = await t.createSession('/up/13mb.bin');
    const one = await t.request(fragmentRequest('/up/13mb.bin', id, 0, data.subarray(0, 1), data.length));
    assert.equal(one.headers['bits-received-content-range'], '1');
    const big = await t.request(fragmentRequest('/up/13mb.bin', id, 1, data.subarray(1), data.length));
    assertAck(big);
    assert.equal(big.headers['bits-received-content-range'], String(data.length));
    assert.deepEqual(await committed(t, '/up/13mb.bin', id), data);
  });

  it('D8: a zero-length upload by an empty fragment', async () => {
    for (const range of ['bytes */0', 'bytes 0--1/0']) {
      const id = await t.createSession('/up/empty.bin');
      const res = await t.request({ type: 'Fragment', path: '/up/empty.bin', sessionId: id, headers: { 'Content-Range': range }, body: '' });
      assertAck(res);
      assert.equal(res.headers['bits-received-content-range'], '0');
      assert.equal((await committed(t, '/up/empty.bin', id)).length, 0);
      await import('node:fs/promises').then((fs) => fs.rm(join(t.uploads, 'empty.bin')));
    }
  });

  it('a session is bound to its URL: a fragment for another path is BG_E_SESSION_NOT_FOUND', async () => {
    const id = await t.createSession('/up/mine.bin');
    assertErr(await t.request(fragmentRequest('/up/other.bin', id, 0, Buffer.from('x'), 1)), 500, '0x8020001F');
  });
});

describe('session timeout (spec §15 38)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ vdir: { sessionTimeout: 1 }, config: { sweepInterval: 1 } });
  });
  after(() => t.stop());

  it('38: an idle session expires: 500 BG_E_SESSION_NOT_FOUND and its data is gone', async () => {
    const id = await t.createSession('/up/idle.bin');
    assertAck(await t.request(fragmentRequest('/up/idle.bin', id, 0, Buffer.from('abc'), 10)));
    const sessionDir = join(t.stateDir, 'sessions', id.slice(1, -1));
    assert.ok((await readdir(sessionDir)).includes('data.bin'));
    await sleep(1600);
    assertErr(await t.request(fragmentRequest('/up/idle.bin', id, 3, Buffer.from('def'), 10)), 500, '0x8020001F');
    await assert.rejects(readdir(sessionDir), { code: 'ENOENT' });
  });

  it('38: the sweeper removes expired sessions nobody asks about', async () => {
    const id = await t.createSession('/up/swept.bin');
    const sessionDir = join(t.stateDir, 'sessions', id.slice(1, -1));
    await readdir(sessionDir);
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await readdir(sessionDir);
      } catch {
        break;
      }
      assert.ok(Date.now() < deadline, 'session folder still there after 5 s');
      await sleep(200);
    }
  });
});
