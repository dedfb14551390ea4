// Spec §15 cases 1–20 and 70: Ping, Create-Session and the generic checks.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

const GUID = BITS_PROTOCOL_GUID;
const create = (path: string, protocols: string | null = GUID, extra: Record<string, string> = {}) => ({
  type: 'Create-Session',
  path,
  headers: { ...(protocols === null ? {} : { 'BITS-Supported-Protocols': protocols }), 'Content-Name': 'a.bin', ...extra },
});

describe('session setup (spec §15 1–20, 70)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({
      vdirs: [
        { path: '/up', directory: './uploads' },
        { path: '/off', directory: './off', uploadEnabled: false },
        { path: '/farm', directory: './farm', hostId: 'node1', hostIdFallbackTimeout: 110 },
        { path: '/ow', directory: './ow', allowOverwrites: true },
      ],
    });
    await mkdir(join(t.uploads, 'subdir'), { recursive: true });
  });
  after(() => t.stop());

  it('1: Ping without a session gets 200 Ack with no error headers', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/a.bin' });
    assertAck(res);
    assert.equal(res.headers['bits-session-id'], undefined);
  });

  it('2: Ping with a body is 400 E_INVALIDARG', async () => {
    assertErr(await t.request({ type: 'Ping', path: '/up/a.bin', body: 'hello' }), 400, '0x80070057');
  });

  it('3: Create-Session answers protocol, a braced uppercase id and Accept-Encoding: identity', async () => {
    const res = await t.request(create('/up/a.bin'));
    assertAck(res);
    assert.equal(res.headers['bits-protocol'], GUID);
    assert.match(res.headers['bits-session-id']!, /^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$/);
    assert.equal(res.headers['accept-encoding'], 'identity');
    assert.equal(res.headers['bits-host-id'], undefined);
    assert.equal(res.headers['bits-host-id-fallback-timeout'], undefined);
  });

  it('4: protocol GUID is compared case-insensitively', async () => {
    const res = await t.request(create('/up/a.bin', GUID.toUpperCase()));
    assertAck(res);
    assert.equal(res.headers['bits-protocol'], GUID);
  });

  it('5: protocol lists separated by spaces or commas, ours not first', async () => {
    for (const list of [`{00000000-0000-0000-0000-000000000001} ${GUID}`, `{00000000-0000-0000-0000-000000000001},${GUID}`, `{00000000-0000-0000-0000-000000000001}, ${GUID}`]) {
      const res = await t.request(create('/up/a.bin', list));
      assertAck(res);
      assert.equal(res.headers['bits-protocol'], GUID);
    }
  });

  it('6: no common protocol is 400 and creates no session', async () => {
    const res = await t.request(create('/up/a.bin', '{00000000-0000-0000-0000-000000000001}'));
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['bits-protocol'], undefined);
    assert.equal(res.headers['bits-session-id'], undefined);
  });

  it('7: missing BITS-Supported-Protocols is 400', async () => {
    assertErr(await t.request(create('/up/a.bin', null)), 400, '0x80070057');
  });

  it('8: Create-Session with a body is 400', async () => {
    assertErr(await t.request({ ...create('/up/a.bin'), body: 'abc' }), 400, '0x80070057');
  });

  it('9: two sessions get different ids', async () => {
    const a = await t.createSession('/up/a.bin');
    const b = await t.createSession('/up/a.bin');
    assert.notEqual(a, b);
  });

  it('10: uploads disabled on the vdir is 501 E_ACCESSDENIED; so is a URL under no vdir', async () => {
    assertErr(await t.request(create('/off/a.bin')), 501, '0x80070005');
    assertErr(await t.request(create('/nowhere/a.bin')), 501, '0x80070005');
  });

  it('12: destination is a directory (or the vdir itself) is 400', async () => {
    assertErr(await t.request(create('/up/subdir')), 400, '0x80070057');
    assertErr(await t.request(create('/up')), 400, '0x80070057');
  });

  it('13: destination exists with overwrites off is 409 E_ACCESSDENIED', async () => {
    await writeFile(join(t.uploads, 'exists.bin'), 'old');
    assertErr(await t.request(create('/up/exists.bin')), 409, '0x80070005');
  });

  it('14: Host-Id and its fallback timeout only where configured', async () => {
    const res = await t.request(create('/farm/a.bin'));
    assertAck(res);
    assert.equal(res.headers['bits-host-id'], 'node1');
    assert.equal(res.headers['bits-host-id-fallback-timeout'], '110');
    const plain = await t.request(create('/up/a.bin'));
    assert.equal(plain.headers['bits-host-id'], undefined);
    assert.equal(plain.headers['bits-host-id-fallback-timeout'], undefined);
  });

  it('15: a 5 KB header value is 400 E_INVALIDARG and the session id is echoed', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/a.bin', sessionId: '{X}', headers: { 'X-Big': 'x'.repeat(5000) } });
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['bits-session-id'], '{X}');
    assertErr(await t.request({ ...create('/up/a.bin'), headers: { 'BITS-Supported-Protocols': GUID, 'Content-Name': 'n'.repeat(5000) } }), 400, '0x80070057');
  });

  it('16: missing BITS-Packet-Type is 400', async () => {
    assertErr(await t.request({ path: '/up/a.bin' }), 400, '0x80070057');
  });

  it('17: unknown BITS-Packet-Type is 400', async () => {
    assertErr(await t.request({ type: 'Foo', path: '/up/a.bin' }), 400, '0x80070057');
  });

  it('18: packet types are case-insensitive', async () => {
    for (const type of ['CREATE-SESSION', 'create-session', 'Create-Session']) {
      const res = await t.request({ ...create('/up/a.bin'), type });
      assertAck(res);
      assert.ok(res.headers['bits-session-id']);
    }
    assertAck(await t.request({ type: 'PING', path: '/up/a.bin' }));
  });

  it('19: Fragment with neither Content-Length nor Transfer-Encoding, or a non-Fragment BITS_POST with Transfer-Encoding, is 400', async () => {
    const id = await t.createSession('/up/te.bin');
    assertErr(
      await t.request({ type: 'Fragment', path: '/up/te.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-9/10' }, noContentLength: true }),
      400,
      '0x80070057',
    );
    assertErr(
      await t.request({ type: 'Ping', path: '/up/te.bin', headers: { 'Transfer-Encoding': 'chunked' }, noContentLength: true, body: '0\r\n\r\n' }),
      400,
      '0x80070057',
    );
  });

  it('19 (D13): a Fragment with Transfer-Encoding: chunked and no Content-Length is accepted', async () => {
    const id = await t.createSession('/up/te-chunked.bin');
    const res = await t.request({
      type: 'Fragment',
      path: '/up/te-chunked.bin',
      sessionId: id,
      headers: { 'Content-Range': 'bytes 0-9/10', 'Transfer-Encoding': 'chunked' },
      noContentLength: true,
      body: '4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n',
    });
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '10');
  });

  it('19: body-less packets without Content-Length are handled normally (D13)', async () => {
    assertAck(await t.request({ type: 'Ping', path: '/up/a.bin', noContentLength: true }));
    const res = await t.request({ ...create('/up/nocl.bin'), noContentLength: true });
    assertAck(res);
    const id = res.headers['bits-session-id']!;
    assertAck(await t.request({ type: 'Cancel-Session', path: '/up/nocl.bin', sessionId: id, noContentLength: true }));
  });

  it('20: Ping after Create-Session without id, and with an unknown id, is 200', async () => {
    await t.createSession('/up/a.bin');
    assertAck(await t.request({ type: 'Ping', path: '/up/a.bin' }));
    const res = await t.request({ type: 'Ping', path: '/up/a.bin', sessionId: '{00000000-0000-0000-0000-00000000DEAD}' });
    assertAck(res);
    assert.equal(res.headers['bits-session-id'], '{00000000-0000-0000-0000-00000000DEAD}');
  });

  it('70: HTTP/1.0 BITS_POST is 400 E_INVALIDARG', async () => {
    assertErr(await t.request({ type: 'Ping', path: '/up/a.bin', version: 'HTTP/1.0' }), 400, '0x80070057');
  });

  it('D19: POST with X-HTTP-Method-Override: BITS_POST is a BITS_POST', async () => {
    const res = await t.request({ ...create('/up/a.bin'), method: 'POST', headers: { 'X-HTTP-Method-Override': 'bits_post', 'BITS-Supported-Protocols': GUID } });
    assertAck(res);
    assert.ok(res.headers['bits-session-id']);
    const plain = await t.request({ type: 'Ping', path: '/up/a.bin', method: 'POST' });
    assert.equal(plain.status, 405);
  });

  it('D23: traversal, encoded traversal, backslashes and NUL are 400', async () => {
    for (const p of ['/up/../a.bin', '/up/%2e%2e/a.bin', '/up/a%5c..%5cb.bin', '/up/a%00.bin', '/up/c:x.bin', '/up/%2e%2e%2fa.bin']) {
      assertErr(await t.request(create(p)), 400, '0x80070057');
    }
  });
});
