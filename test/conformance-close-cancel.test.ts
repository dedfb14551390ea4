// Spec §15 cases 39–46 (Close-Session, Cancel-Session, atomic commit) and 60–61 (Host-Id, farms).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('close and cancel (spec §15 39–46)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({
      vdirs: [
        { path: '/up', directory: './uploads' },
        { path: '/ow', directory: './ow', allowOverwrites: true },
      ],
    });
  });
  after(() => t.stop());

  async function upload(path: string, data: Buffer): Promise<string> {
    const id = await t.createSession(path);
    assertAck(await t.request(fragmentRequest(path, id, 0, data, data.length)));
    return id;
  }

  it('39: close after complete commits exactly the bytes, removes the session, later fragments are not found', async () => {
    const data = randomBytes(1000);
    const id = await upload('/up/done.bin', data);
    const res = await t.request({ type: 'Close-Session', path: '/up/done.bin', sessionId: id });
    assertAck(res);
    assert.equal(res.headers['bits-session-id'], id);
    assert.deepEqual(await readFile(join(t.uploads, 'done.bin')), data);
    assert.deepEqual(await readdir(join(t.stateDir, 'sessions')).then((d) => d.filter((n) => n === id.slice(1, -1))), []);
    assertErr(await t.request(fragmentRequest('/up/done.bin', id, 0, data, data.length)), 500, '0x8020001F');
  });

  it('40: close with an unknown session is 500 BG_E_SESSION_NOT_FOUND', async () => {
    assertErr(await t.request({ type: 'Close-Session', path: '/up/x.bin', sessionId: '{00000000-0000-0000-0000-000000000001}' }), 500, '0x8020001F');
  });

  it('41: close before complete commits nothing and ends the session', async () => {
    const id = await t.createSession('/up/partial.bin');
    assertAck(await t.request(fragmentRequest('/up/partial.bin', id, 0, Buffer.alloc(100), 300)));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/partial.bin', sessionId: id }));
    assert.equal(await exists(join(t.uploads, 'partial.bin')), false);
    assertErr(await t.request(fragmentRequest('/up/partial.bin', id, 100, Buffer.alloc(100), 300)), 500, '0x8020001F');
  });

  it('42: close with a body is 400 and the session survives', async () => {
    const id = await upload('/up/cb.bin', Buffer.from('abc'));
    assertErr(await t.request({ type: 'Close-Session', path: '/up/cb.bin', sessionId: id, body: 'xyz' }), 400, '0x80070057');
    assertAck(await t.request({ type: 'Close-Session', path: '/up/cb.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'cb.bin'), 'utf8'), 'abc');
  });

  it('43: a repeated close (lost Ack) is 500 BG_E_SESSION_NOT_FOUND', async () => {
    const id = await upload('/up/twice.bin', Buffer.from('abc'));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/twice.bin', sessionId: id }));
    assertErr(await t.request({ type: 'Close-Session', path: '/up/twice.bin', sessionId: id }), 500, '0x8020001F');
  });

  it('44: cancel mid-upload deletes the data, leaves the destination, ends the session', async () => {
    await writeFile(join(t.uploads, 'keep.bin'), 'original');
    const id = await t.createSession('/ow/keep.bin');
    // a different vdir: create an existing destination there too
    await writeFile(join(t.root, 'ow', 'keep.bin'), 'original');
    assertAck(await t.request(fragmentRequest('/ow/keep.bin', id, 0, Buffer.alloc(100, 7), 300)));
    const res = await t.request({ type: 'Cancel-Session', path: '/ow/keep.bin', sessionId: id });
    assertAck(res);
    assert.equal(res.headers['bits-session-id'], id);
    assert.equal(await readFile(join(t.root, 'ow', 'keep.bin'), 'utf8'), 'original');
    assert.equal(await exists(join(t.stateDir, 'sessions', id.slice(1, -1))), false);
    assertErr(await t.request(fragmentRequest('/ow/keep.bin', id, 100, Buffer.alloc(100), 300)), 500, '0x8020001F');
    assertErr(await t.request({ type: 'Close-Session', path: '/ow/keep.bin', sessionId: id }), 500, '0x8020001F');
  });

  it('45: cancel with an unknown session is 500 BG_E_SESSION_NOT_FOUND', async () => {
    assertErr(await t.request({ type: 'Cancel-Session', path: '/up/x.bin', sessionId: '{00000000-0000-0000-0000-000000000002}' }), 500, '0x8020001F');
  });

  it('46: the destination shows the old file or nothing until Close, then the new bytes', async () => {
    await writeFile(join(t.root, 'ow', 'atomic.bin'), 'old content');
    const data = randomBytes(5000);
    const id = await t.createSession('/ow/atomic.bin');
    for (let i = 0; i < 5000; i += 1000) {
      assertAck(await t.request(fragmentRequest('/ow/atomic.bin', id, i, data.subarray(i, i + 1000), 5000)));
      assert.equal(await readFile(join(t.root, 'ow', 'atomic.bin'), 'utf8'), 'old content');
    }
    const fresh = await t.createSession('/up/new.bin');
    assertAck(await t.request(fragmentRequest('/up/new.bin', fresh, 0, data.subarray(0, 1000), 5000)));
    assert.equal(await exists(join(t.uploads, 'new.bin')), false);
    assertAck(await t.request({ type: 'Close-Session', path: '/ow/atomic.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.root, 'ow', 'atomic.bin')), data);
    // no temp or partial files were ever left in the vdir folder
    assert.deepEqual((await readdir(join(t.root, 'ow'))).sort(), ['atomic.bin', 'keep.bin']);
  });

  it('D5: a destination that appears during the upload is not overwritten at Close (409)', async () => {
    const id = await upload('/up/race.bin', Buffer.from('new'));
    await writeFile(join(t.uploads, 'race.bin'), 'someone else');
    assertErr(await t.request({ type: 'Close-Session', path: '/up/race.bin', sessionId: id }), 409, '0x80070005');
    assert.equal(await readFile(join(t.uploads, 'race.bin'), 'utf8'), 'someone else');
  });

  it('D8: close without any fragment commits an empty file', async () => {
    const id = await t.createSession('/up/zero.bin');
    assertAck(await t.request({ type: 'Close-Session', path: '/up/zero.bin', sessionId: id }));
    assert.equal((await stat(join(t.uploads, 'zero.bin'))).size, 0);
  });

  it('commits into sub-folders that do not exist yet, inside the vdir', async () => {
    const id = await upload('/up/a/b/c.bin', Buffer.from('deep'));
    assertAck(await t.request({ type: 'Close-Session', path: '/up/a/b/c.bin', sessionId: id }));
    assert.equal(await readFile(join(t.uploads, 'a', 'b', 'c.bin'), 'utf8'), 'deep');
  });
});

describe('Host-Id and farms (spec §15 60–61)', () => {
  let node1: TestServer;
  let node2: TestServer;
  before(async () => {
    node1 = await startServer({ vdir: { hostId: 'node1', hostIdFallbackTimeout: 110 } });
    node2 = await startServer();
  });
  after(async () => {
    await node1.stop();
    await node2.stop();
  });

  it('60: Ping then fragments sent to the Host-Id host (Host header rewritten) succeed', async () => {
    const res = await node1.request({ type: 'Create-Session', path: '/up/h.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } });
    assert.equal(res.headers['bits-host-id'], 'node1');
    const id = res.headers['bits-session-id']!;
    const c = await node1.connect();
    const data = randomBytes(200);
    const head = (type: string, extra: string, body = Buffer.alloc(0)) =>
      Buffer.concat([Buffer.from(`BITS_POST /up/h.bin HTTP/1.1\r\nHost: node1\r\nBITS-Packet-Type: ${type}\r\nBITS-Session-Id: ${id}\r\n${extra}Content-Length: ${body.length}\r\n\r\n`), body]);
    await c.write(head('Ping', ''));
    assertAck(await c.read());
    await c.write(head('Fragment', 'Content-Range: bytes 0-99/200\r\n', data.subarray(0, 100)));
    assert.equal((await c.read()).headers['bits-received-content-range'], '100');
    await c.write(head('Fragment', 'Content-Range: bytes 100-199/200\r\n', data.subarray(100)));
    assert.equal((await c.read()).headers['bits-received-content-range'], '200');
    await c.write(head('Close-Session', ''));
    assertAck(await c.read());
    c.close();
    assert.deepEqual(await readFile(join(node1.uploads, 'h.bin')), data);
  });

  it('61: a session id from another node is not found there, and a fresh session works', async () => {
    const id = await node1.createSession('/up/f.bin');
    assertErr(await node2.request(fragmentRequest('/up/f.bin', id, 0, Buffer.from('abc'), 3)), 500, '0x8020001F');
    const id2 = await node2.createSession('/up/f.bin');
    const res = await node2.request(fragmentRequest('/up/f.bin', id2, 0, Buffer.from('abc'), 3));
    assert.equal(res.headers['bits-received-content-range'], '3');
  });
});
