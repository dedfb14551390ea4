// D13 revisited: chunked Fragments, as python-onedrive's put_bits sends them (POST +
// X-Http-Method-Override: BITS_POST + Transfer-Encoding: chunked, no Content-Length), over raw
// sockets and through the node:http adapter. The decoded length must equal the Content-Range length:
// longer writes only the range, shorter keeps what arrived; both are 400 + 0x80070057 with the
// session's durable BITS-Received-Content-Range. Transfer-Encoding next to Content-Length, other
// codings and malformed chunk framing are refused (no request smuggling).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNodeHttpHandler } from '../src/http/node-adapter.js';
import { BitsError } from '../src/protocol/errors.js';
import { parsePacket } from '../src/protocol/packet.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { chunkedBody, oneDriveRequestBytes, oneDriveUpload } from './helpers/onedrive-client.js';
import { RawConnection } from './helpers/raw-http.js';
import type { RawResponse } from './helpers/raw-http.js';

/** A chunked OneDrive-dialect Fragment of `body` claiming `range`. */
const chunkedFragment = (path: string, sessionId: string, range: string, body: Buffer, chunkSize = 1000): Buffer =>
  oneDriveRequestBytes({ path, type: 'Fragment', headers: { 'BITS-Session-Id': sessionId, 'Content-Range': range }, chunkedBody: body, chunkSize });

async function send(t: TestServer, bytes: Buffer | string): Promise<RawResponse> {
  const c = await t.connect();
  try {
    await c.write(bytes);
    return await c.read();
  } finally {
    c.close();
  }
}

async function close(t: TestServer, path: string, sessionId: string): Promise<Buffer> {
  assertAck(await send(t, oneDriveRequestBytes({ path, type: 'Close-Session', headers: { 'BITS-Session-Id': sessionId } })));
  return readFile(join(t.uploads, path.slice('/up/'.length)));
}

describe('D13: chunked Fragments (OneDrive dialect, BitsServer)', () => {
  let t: TestServer;
  let small: TestServer;
  before(async () => {
    t = await startServer();
    small = await startServer({ vdir: { maxFragmentSize: 1000 }, config: { limits: { maxDrain: 5000 } } });
  });
  after(async () => {
    await t.stop();
    await small.stop();
  });

  it('13: a full put_bits upload (Create, chunked Fragments, Close) on one connection; the file holds the bytes', async () => {
    const data = randomBytes(300_000 + 17);
    const upload = await oneDriveUpload(t.port, '/up/onedrive.bin', data, 100_000, 8192);
    const acks = upload.responses.slice(1, -1);
    assert.deepEqual(acks.map((r) => r.headers['bits-received-content-range']), ['100000', '200000', '300000', '300017']);
    for (const res of upload.responses) {
      assertAck(res);
      assert.equal(res.headers['connection'], undefined, 'kept alive after a chunked request');
    }
    assert.deepEqual(await readFile(join(t.uploads, 'onedrive.bin')), data);
  });

  it('13: chunks of any size (1 byte, odd sizes, one chunk for the whole fragment) give the same file', async () => {
    const data = randomBytes(5000);
    for (const [i, chunkSize] of [1, 7, 4096, 5000].entries()) {
      await oneDriveUpload(t.port, `/up/sizes-${i}.bin`, data, 2500, chunkSize);
      assert.deepEqual(await readFile(join(t.uploads, `sizes-${i}.bin`)), data, `chunks of ${chunkSize}`);
    }
  });

  it('13: a chunked body longer than its range writes only the range: 400 + 0x80070057, BITS-Received-Content-Range of what is durable', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/longer.bin');
    const c = await t.connect();
    // 150 bytes for a 100-byte range, then a Ping on the same connection
    await c.write(chunkedFragment('/up/longer.bin', id, 'bytes 0-99/300', Buffer.concat([data.subarray(0, 100), randomBytes(50)]), 64));
    const res = await c.read();
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['bits-received-content-range'], '100');
    assert.equal(res.headers['bits-session-id'], id);
    // the rest of the body was drained: the connection is still usable
    await c.write(oneDriveRequestBytes({ path: '/up/longer.bin', type: 'Ping' }));
    assertAck(await c.read());
    c.close();
    const next = await send(t, chunkedFragment('/up/longer.bin', id, 'bytes 100-299/300', data.subarray(100)));
    assertAck(next);
    assert.equal(next.headers['bits-received-content-range'], '300');
    assert.deepEqual(await close(t, '/up/longer.bin', id), data, 'nothing past the range was written');
  });

  it('13: a chunked body shorter than its range keeps its bytes but is not acknowledged as complete: 400 + 0x80070057', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/shorter.bin');
    const res = await send(t, chunkedFragment('/up/shorter.bin', id, 'bytes 0-299/300', data.subarray(0, 120), 50));
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['bits-received-content-range'], '120', 'the bytes that arrived are kept');
    // the final fragment cut short: still not complete
    const last = await send(t, chunkedFragment('/up/shorter.bin', id, 'bytes 120-299/300', data.subarray(120, 250)));
    assertErr(last, 400, '0x80070057');
    assert.equal(last.headers['bits-received-content-range'], '250');
    // an empty chunked body for a non-empty range keeps nothing and moves nothing
    const empty = await send(t, chunkedFragment('/up/shorter.bin', id, 'bytes 250-299/300', Buffer.alloc(0)));
    assertErr(empty, 400, '0x80070057');
    assert.equal(empty.headers['bits-received-content-range'], '250');
    // the client resumes from the Ack's offset
    assertAck(await send(t, chunkedFragment('/up/shorter.bin', id, 'bytes 250-299/300', data.subarray(250))));
    assert.deepEqual(await close(t, '/up/shorter.bin', id), data);
  });

  it('13: a chunked Fragment overlapping held bytes writes only its new tail (D4)', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/overlap.bin');
    assertAck(await send(t, chunkedFragment('/up/overlap.bin', id, 'bytes 0-100/300', data.subarray(0, 101))));
    const other = Buffer.concat([randomBytes(51), data.subarray(101, 151)]);
    const res = await send(t, chunkedFragment('/up/overlap.bin', id, 'bytes 50-150/300', other, 17));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '151');
    // an overlapping chunked Fragment that is too long still stops at its range
    const long = await send(t, chunkedFragment('/up/overlap.bin', id, 'bytes 100-199/300', Buffer.concat([data.subarray(100, 200), randomBytes(30)]), 33));
    assertErr(long, 400, '0x80070057');
    assert.equal(long.headers['bits-received-content-range'], '200');
    assertAck(await send(t, chunkedFragment('/up/overlap.bin', id, 'bytes 200-299/300', data.subarray(200))));
    assert.deepEqual(await close(t, '/up/overlap.bin', id), data);
  });

  it('13: a chunked Fragment answered before its body is read (gap, too large) is drained and the connection kept, or closed beyond maxDrain', async () => {
    const id = await small.createSession('/up/early.bin');
    const c = await small.connect();
    // a gap: 416 at once; the body (a Ping inside) is drained, never parsed
    const inside = oneDriveRequestBytes({ path: '/up/early.bin', type: 'Ping', headers: { 'BITS-Session-Id': '{INSIDE}' } });
    await c.write(chunkedFragment('/up/early.bin', id, `bytes 100-${99 + inside.length}/5000`, inside, 10));
    const gap = await c.read();
    assertAck(gap, 416);
    assert.equal(gap.headers['bits-received-content-range'], '0');
    await c.write(oneDriveRequestBytes({ path: '/up/early.bin', type: 'Ping', headers: { 'BITS-Session-Id': '{NEXT}' } }));
    assert.equal((await c.read()).headers['bits-session-id'], '{NEXT}');
    await sleep(50);
    assert.equal(c.pending.length, 0);
    // over maxFragmentSize: 413 at once; the body keeps coming past maxDrain: closed
    const big = chunkedFragment('/up/early.bin', id, 'bytes 0-4999/5000', Buffer.alloc(8000, 'b'), 500);
    const headEnd = big.indexOf('\r\n\r\n') + 4;
    await c.write(big.subarray(0, headEnd));
    assertAck(await c.read(), 413);
    await c.write(big.subarray(headEnd, headEnd + 6000)).catch(() => undefined);
    assert.ok(await c.closed(3000), 'closed after more than maxDrain of chunked body');
    c.close();
  });

  for (const [i, [name, body]] of ([
    ['a chunk size that is not hex', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['a negative chunk size', '-3\r\nabc\r\n0\r\n\r\n'],
    ['a chunk size beyond 2^53', '20000000000000\r\nabc\r\n0\r\n\r\n'],
    ['chunk data not followed by CRLF', '3\r\nabcdef\r\n0\r\n\r\n'],
  ] as const).entries()) {
    it(`13: ${name} on a Fragment is 400 + 0x80070057 with the received range, then a close; the session stays usable`, async () => {
      const path = `/up/framing-${i}.bin`;
      const id = await t.createSession(path);
      const head = chunkedFragment(path, id, 'bytes 0-2/3', Buffer.alloc(0));
      const c = await t.connect();
      await c.write(Buffer.concat([head.subarray(0, head.indexOf('\r\n\r\n') + 4), Buffer.from(body, 'latin1'), oneDriveRequestBytes({ path: '/up/x', type: 'Ping' })]));
      const res = await c.read();
      assertErr(res, 400, '0x80070057');
      assert.equal(res.headers['bits-received-content-range'], '0');
      assert.ok(await c.closed(3000));
      assert.equal(c.pending.length, 0, 'nothing parsed after the malformed body');
      c.close();
      assertAck(await send(t, chunkedFragment(path, id, 'bytes 0-2/3', Buffer.from('abc'))));
      assert.deepEqual(await close(t, path, id), Buffer.from('abc'));
    });
  }

  it('13: a Fragment with neither Content-Length nor Transfer-Encoding is still 400 + 0x80070057', async () => {
    const id = await t.createSession('/up/neither.bin');
    const bytes = oneDriveRequestBytes({ path: '/up/neither.bin', type: 'Fragment', headers: { 'BITS-Session-Id': id, 'Content-Range': 'bytes 0-2/3' } });
    // (the helper adds Content-Length: 0 to body-less requests: take it out)
    assertErr(await send(t, bytes.toString('latin1').replace('Content-Length: 0\r\n', '')), 400, '0x80070057');
  });

  it('D13: parsePacket takes the transport\'s chunked decision: accepted alone on a Fragment, refused anywhere else, next to Content-Length, or when the transport did not decode it', () => {
    const fragment = { 'bits-packet-type': 'Fragment', 'bits-session-id': '{A}', 'content-range': 'bytes 0-1/2' };
    const p = parsePacket({ ...fragment, 'transfer-encoding': 'Chunked' }, undefined, true);
    assert.equal(p.type === 'Fragment' && p.range.length, 2);
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (err) {
        return err instanceof BitsError ? err.code : String(err);
      }
      return undefined;
    };
    assert.equal(code(() => parsePacket({ ...fragment, 'transfer-encoding': 'chunked' }, 2, true)), 'BITS_TRANSFER_ENCODING');
    // (which codings are chunked is the transport's call: a header it did not decode is refused, whatever it says)
    for (const te of ['chunked', 'gzip, chunked', 'chunked, chunked', '\xa0chunked']) {
      assert.equal(code(() => parsePacket({ ...fragment, 'transfer-encoding': te }, undefined)), 'BITS_TRANSFER_ENCODING', te);
      assert.equal(code(() => parsePacket({ ...fragment, 'transfer-encoding': te }, 2)), 'BITS_TRANSFER_ENCODING', te);
    }
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Close-Session', 'bits-session-id': '{A}', 'transfer-encoding': 'chunked' }, undefined, true)), 'BITS_TRANSFER_ENCODING');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Close-Session', 'bits-session-id': '{A}', 'transfer-encoding': 'chunked' }, undefined)), 'BITS_TRANSFER_ENCODING');
    assert.equal(code(() => parsePacket(fragment, undefined)), 'BITS_MISSING_CONTENT_LENGTH');
  });
});

describe('D13: chunked Fragments through the node:http adapter', () => {
  let t: TestServer;
  let proxy: ReturnType<typeof createServer>;
  let port: number;
  before(async () => {
    t = await startServer();
    proxy = createServer(createNodeHttpHandler(t.server.handle, { badRequest: t.server.badRequest }));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    port = (proxy.address() as AddressInfo).port;
  });
  after(async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    await t.stop();
  });

  const sendTo = async (bytes: Buffer | string): Promise<RawResponse> => {
    const c = await RawConnection.connect(port);
    try {
      await c.write(bytes);
      return await c.read();
    } finally {
      c.close();
    }
  };

  it('13: a full put_bits upload through node:http; the file holds the bytes', async () => {
    const data = randomBytes(200_000);
    const upload = await oneDriveUpload(port, '/up/adapter.bin', data, 64_000, 5000);
    assert.deepEqual(upload.responses.slice(1, -1).map((r) => r.headers['bits-received-content-range']), ['64000', '128000', '192000', '200000']);
    assert.deepEqual(await readFile(join(t.uploads, 'adapter.bin')), data);
  });

  it('13: longer and shorter chunked bodies get the same answers as on the engine', async () => {
    const data = randomBytes(300);
    const created = await sendTo(oneDriveRequestBytes({ path: '/up/adapter-len.bin', type: 'Create-Session', headers: { 'BITS-Supported-Protocols': '{7df0354d-249b-430f-820d-3d2a9bef4931}' } }));
    const id = created.headers['bits-session-id']!;
    const longer = await sendTo(chunkedFragment('/up/adapter-len.bin', id, 'bytes 0-99/300', Buffer.concat([data.subarray(0, 100), randomBytes(40)])));
    assertErr(longer, 400, '0x80070057');
    assert.equal(longer.headers['bits-received-content-range'], '100');
    const shorter = await sendTo(chunkedFragment('/up/adapter-len.bin', id, 'bytes 100-299/300', data.subarray(100, 180)));
    assertErr(shorter, 400, '0x80070057');
    assert.equal(shorter.headers['bits-received-content-range'], '180');
    assertAck(await sendTo(chunkedFragment('/up/adapter-len.bin', id, 'bytes 180-299/300', data.subarray(180))));
    assertAck(await sendTo(oneDriveRequestBytes({ path: '/up/adapter-len.bin', type: 'Close-Session', headers: { 'BITS-Session-Id': id } })));
    assert.deepEqual(await readFile(join(t.uploads, 'adapter-len.bin')), data);
  });

  it('13: Transfer-Encoding: gzip, chunked (which node:http decodes as chunked) is refused with 400 + 0x80070057', async () => {
    const res = await sendTo(
      'POST /up/a.bin HTTP/1.1\r\nHost: x\r\nX-Http-Method-Override: BITS_POST\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {A}\r\n' +
        `Content-Range: bytes 0-2/3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n` + chunkedBody(Buffer.from('abc'), 3).toString('latin1'),
    );
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['connection'], 'close');
  });

  for (const [name, framing] of [
    ['chunked twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'],
    ['chunked with Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n'],
    ['chunked after an NBSP (obs-text, no whitespace)', 'Transfer-Encoding: \xa0chunked\r\n'],
  ] as const) {
    it(`13: Transfer-Encoding ${name} is refused with 400`, async () => {
      const res = await sendTo(
        Buffer.from(
          'POST /up/a.bin HTTP/1.1\r\nHost: x\r\nX-Http-Method-Override: BITS_POST\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {A}\r\n' +
            `Content-Range: bytes 0-2/3\r\n${framing}\r\n` + chunkedBody(Buffer.from('abc'), 3).toString('latin1'),
          'latin1',
        ),
      );
      assert.equal(res.status, 400);
      // (node:http's own parser refuses these before the adapter sees them: a bare 400, no Ack)
      if (res.headers['bits-packet-type'] !== undefined) assertErr(res, 400, '0x80070057');
    });
  }
});
