// HTTP engine limits and framing rules, over raw sockets: any method token, request line (414),
// header value (400 / E_INVALIDARG for BITS), header count and head size (431), obs-fold,
// Content-Length rules, CR/LF injection, Transfer-Encoding (only a single chunked, never with
// Content-Length).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import type { HttpLimits } from '../src/http/limits.js';
import type { HttpHandler } from '../src/http/types.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import type { RawResponse } from './helpers/raw-http.js';

/** Reads the whole body and answers with what the engine handed over. */
const echo: HttpHandler = async (req, res) => {
  let length = 0;
  for await (const chunk of req.body as AsyncIterable<Buffer>) length += chunk.length;
  const body = JSON.stringify({ method: req.method, path: req.path, headers: Object.keys(req.headers).length, length });
  res.send(200, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }, body);
};

async function startEngine(handler: HttpHandler, limits: Partial<HttpLimits> = {}): Promise<{ http: HttpServer; port: number }> {
  const http = new HttpServer({ handler, logger: pino({ level: 'silent' }), limits });
  const { port } = await http.listen(0, '127.0.0.1');
  return { http, port };
}

/** Sends `bytes` on a fresh connection, reads one response, and reports whether the server then closed. */
async function exchange(port: number, bytes: string | Buffer): Promise<{ res: RawResponse; closed: boolean; extra: Buffer }> {
  const c = await RawConnection.connect(port);
  try {
    await c.write(bytes);
    const res = await c.read();
    // a close is announced: wait for it a while; otherwise a short look shows the connection stays
    const closed = await c.closed(res.headers['connection'] === 'close' ? 3000 : 200);
    return { res, closed, extra: Buffer.from(c.pending) };
  } finally {
    c.close();
  }
}

const get = (target: string, headers = ''): string => `GET ${target} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;

describe('HTTP engine: method tokens and request line', () => {
  let e: { http: HttpServer; port: number };
  before(async () => {
    e = await startEngine(echo);
  });
  after(() => e.http.close(100));

  it('hands any method token to the handler as sent', async () => {
    for (const method of ['BITS_POST', 'bits_post', 'M-SEARCH', "X!#$%&'*+-.^_`|~9", 'GET']) {
      const c = await RawConnection.connect(e.port);
      await c.write(`${method} /m HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`);
      const res = await c.read();
      c.close();
      assert.equal(res.status, 200, method);
      assert.deepEqual(JSON.parse(res.body.toString()), { method, path: '/m', headers: 2, length: 3 });
    }
  });

  it('refuses a method that is not a token, and a malformed request line, with 400 and a close', async () => {
    for (const line of ['BITS POST /m HTTP/1.1', 'GET(x) /m HTTP/1.1', 'GET /m', 'GET  /m HTTP/1.1', 'GET /m HTTP/1.1 x']) {
      const { res, closed } = await exchange(e.port, `${line}\r\nHost: x\r\n\r\n`);
      assert.equal(res.status, 400, line);
      assert.equal(res.headers['connection'], 'close', line);
      assert.ok(closed, line);
    }
  });

  it('refuses HTTP/2.0 in the request line with 505', async () => {
    const { res, closed } = await exchange(e.port, 'GET / HTTP/2.0\r\nHost: x\r\n\r\n');
    assert.equal(res.status, 505);
    assert.ok(closed);
  });

  it('accepts a request line of exactly 8 KiB', async () => {
    const target = '/' + 'a'.repeat(8192 - 'GET / HTTP/1.1'.length);
    assert.equal(`GET ${target} HTTP/1.1`.length, 8192);
    const { res, closed } = await exchange(e.port, get(target));
    assert.equal(res.status, 200);
    assert.equal(closed, false);
  });

  it('answers a request line one byte over 8 KiB with 414 and closes', async () => {
    const target = '/' + 'a'.repeat(8193 - 'GET / HTTP/1.1'.length);
    const { res, closed } = await exchange(e.port, get(target));
    assert.equal(res.status, 414);
    assert.equal(res.headers['connection'], 'close');
    assert.ok(closed);
  });

  it('answers 414 at once while the over-long request line is still arriving (no newline yet)', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET /' + 'a'.repeat(9000));
    const res = await c.read({ timeoutMs: 2000 });
    assert.equal(res.status, 414);
    assert.ok(await c.closed(1500));
    c.close();
  });

  it('answers 414 at once when an over-long request line is followed by an incomplete head', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET /' + 'a'.repeat(9000) + ' HTTP/1.1\r\nHost: x\r\n');
    const res = await c.read({ timeoutMs: 2000 });
    assert.equal(res.status, 414);
    assert.ok(await c.closed(1500));
    c.close();
  });

  it('does not take a request line of exactly 8 KiB for 414 when its CR and LF arrive separately', async () => {
    const target = '/' + 'a'.repeat(8192 - 'GET / HTTP/1.1'.length);
    const c = await RawConnection.connect(e.port);
    await c.write(`GET ${target} HTTP/1.1\r`);
    await sleep(100);
    await c.write('\nHost: x\r\n\r\n');
    const res = await c.read({ timeoutMs: 2000 });
    c.close();
    assert.equal(res.status, 200);
  });
});

describe('HTTP engine: headers and head size', () => {
  let e: { http: HttpServer; port: number };
  before(async () => {
    e = await startEngine(echo);
  });
  after(() => e.http.close(100));

  it('accepts a 4 KiB header value and refuses 4 KiB + 1 with 400 and a close', async () => {
    const ok = await exchange(e.port, get('/v', `X-Big: ${'v'.repeat(4096)}\r\n`));
    assert.equal(ok.res.status, 200);
    assert.equal(ok.closed, false);
    const bad = await exchange(e.port, get('/v', `X-Big: ${'v'.repeat(4097)}\r\n`));
    assert.equal(bad.res.status, 400);
    assert.ok(bad.closed);
  });

  it('accepts 100 header fields and refuses 101 with 431', async () => {
    // get() already sends Host
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const ok = await exchange(e.port, get('/h', fields(99)));
    assert.equal(ok.res.status, 200);
    assert.equal(JSON.parse(ok.res.body.toString()).headers, 100);
    const bad = await exchange(e.port, get('/h', fields(100)));
    assert.equal(bad.res.status, 431);
    assert.equal(bad.res.headers['connection'], 'close');
    assert.ok(bad.closed);
  });

  it('accepts a head just under 64 KiB and refuses one over 64 KiB with 431', async () => {
    const value = 'w'.repeat(4000);
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-W${String(i).padStart(2, '0')}: ${value}\r\n`).join('');
    // each field line is 4009 bytes: 16 fields ≈ 64,144 bytes > 65,536? no: 16 × 4009 = 64,144 < 65,536
    const ok = await exchange(e.port, get('/s', fields(16)));
    assert.equal(ok.res.status, 200);
    const bad = await exchange(e.port, get('/s', fields(17)));
    assert.equal(bad.res.status, 431);
    assert.ok(bad.closed);
  });

  it('answers 431 for an endless head without waiting for its end', async () => {
    const c = await RawConnection.connect(e.port);
    const line = `X-Filler: ${'f'.repeat(1000)}\r\n`;
    await c.write('GET / HTTP/1.1\r\n' + line.repeat(70));
    const res = await c.read({ timeoutMs: 2000 });
    assert.equal(res.status, 431);
    assert.ok(await c.closed(1500));
    c.close();
  });

  for (const [name, head] of [
    ['obs-fold (continuation line with a space)', get('/f', 'X-A: a\r\n  folded\r\n')],
    ['obs-fold (continuation line with a tab)', get('/f', 'X-A: a\r\n\tfolded\r\n')],
    ['a bare LF inside a header line', get('/f', 'X-A: a\nContent-Length: 5\r\n')],
    ['a bare CR inside a header value', get('/f', 'X-A: a\rb\r\n')],
    ['a NUL in a header value', get('/f', 'X-A: a\0b\r\n')],
    ['a space before the colon', get('/f', 'X-A : a\r\n')],
    ['a header line without a colon', get('/f', 'X-A a\r\n')],
    ['a repeated Content-Length with the same value', get('/f', 'Content-Length: 0\r\nContent-Length: 0\r\n')],
    ['conflicting Content-Lengths', 'POST /f HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde'],
    ['a Content-Length list', 'POST /f HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['a signed Content-Length', 'POST /f HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc'],
    ['a hexadecimal Content-Length', 'POST /f HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc'],
    ['an absurd Content-Length', 'POST /f HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\nabc'],
    ['a Content-Length of 17 digits', 'POST /f HTTP/1.1\r\nContent-Length: 00000000000000003\r\n\r\nabc'],
    ['Transfer-Encoding with Content-Length', 'POST /f HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc'],
    ['Transfer-Encoding before Content-Length', 'POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc'],
    ['Transfer-Encoding: gzip, chunked', 'POST /f HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked, chunked', 'POST /f HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked twice', 'POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: identity', 'POST /f HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\nabc'],
    ['an empty Transfer-Encoding', 'POST /f HTTP/1.1\r\nTransfer-Encoding: \r\n\r\nabc'],
    ['Transfer-Encoding on HTTP/1.0', 'POST /f HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  ] as const) {
    it(`refuses ${name} with 400, closes, and parses nothing after it`, async () => {
      // a complete request after the bad one must not be answered
      const { res, closed, extra } = await exchange(e.port, head + get('/after'));
      assert.equal(res.status, 400);
      assert.equal(res.headers['connection'], 'close');
      assert.ok(closed);
      assert.equal(extra.length, 0, `bytes after the 400: ${extra.toString('latin1')}`);
    });
  }

  // Byte 0xA0 (NBSP once decoded as latin1) is obs-text, a legal part of a field value: unlike SP and
  // HTAB it is no whitespace, so ` \xa0chunked` is an unknown coding. A proxy in front sees it so.
  for (const [name, value] of [
    ['NBSP before chunked', '\xa0chunked'],
    ['NBSP after chunked', 'chunked\xa0'],
    ['NBSP on both sides of chunked', '\xa0chunked\xa0'],
  ] as const) {
    it(`refuses Transfer-Encoding with ${name} (obs-text is no whitespace) with 400, closes, and parses nothing after it`, async () => {
      const bytes = Buffer.from(`POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${value}\r\n\r\n3\r\nabc\r\n0\r\n\r\n${get('/after')}`, 'latin1');
      const { res, closed, extra } = await exchange(e.port, bytes);
      assert.equal(res.status, 400);
      assert.equal(res.headers['connection'], 'close');
      assert.ok(closed);
      assert.equal(extra.length, 0, `bytes after the 400: ${extra.toString('latin1')}`);
    });
  }

  it('refuses a Content-Length with NBSP around its digits with 400 and a close', async () => {
    for (const value of ['\xa03', '3\xa0']) {
      const { res, closed } = await exchange(e.port, Buffer.from(`POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\nabc`, 'latin1'));
      assert.equal(res.status, 400, JSON.stringify(value));
      assert.ok(closed, JSON.stringify(value));
    }
  });

  it('SP and HTAB around chunked are optional whitespace: the body is decoded', async () => {
    const { res } = await exchange(e.port, 'POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \t chunked \t\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body.toString()).length, 3);
  });

  it('leaves the server healthy after all that', async () => {
    const { res } = await exchange(e.port, get('/ok'));
    assert.equal(res.status, 200);
  });
});

describe('HTTP engine limits on BITS requests (BitsServer)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ config: { limits: { maxHeaderValue: 4096, maxHeaders: 100, maxHead: 65536, maxRequestLine: 8192 } } });
  });
  after(() => t.stop());

  it('BITS_POST goes through the engine (Ping → 200 Ack)', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/a.bin' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['bits-packet-type'], 'Ack');
  });

  it('a header value over 4 KiB on BITS_POST is 400 + 0x80070057, then the connection closes', async () => {
    const c = await t.connect();
    await c.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', headers: { 'X-Big': 'x'.repeat(4097) } }));
    assertErr(await c.read(), 400, '0x80070057');
    assert.ok(await c.closed(1500));
    c.close();
    // exactly 4 KiB is fine
    const ok = await t.request({ type: 'Ping', path: '/up/a.bin', headers: { 'X-Big': 'x'.repeat(4096) } });
    assert.equal(ok.status, 200);
  });

  it('D13: Transfer-Encoding: chunked on a BITS_POST other than a Fragment is 400 + 0x80070057; its body is framed, drained, never parsed as a request', async () => {
    const c = await t.connect();
    const inner = bitsRequestBytes({ type: 'Ping', path: '/up/x', sessionId: '{INNER}' });
    const chunk = `${inner.length.toString(16)}\r\n${inner.toString('latin1')}\r\n0\r\n\r\n`;
    await c.write(
      Buffer.concat([
        bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId: '{OUTER}', headers: { 'Transfer-Encoding': 'chunked' }, noContentLength: true }),
        Buffer.from(chunk, 'latin1'),
        bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId: '{NEXT}' }),
      ]),
    );
    const refused = await c.read();
    assertErr(refused, 400, '0x80070057');
    assert.equal(refused.headers['bits-session-id'], '{OUTER}');
    assert.equal((await c.read()).headers['bits-session-id'], '{NEXT}', 'the request after the chunked body is the next answered');
    assert.equal(await c.closed(200), false);
    assert.equal(c.pending.length, 0);
    c.close();
  });

  for (const [name, te] of [
    ['Transfer-Encoding with Content-Length', { 'Transfer-Encoding': 'chunked', 'Content-Length': '3' }],
    ['Transfer-Encoding: gzip, chunked', { 'Transfer-Encoding': 'gzip, chunked' }],
    ['Transfer-Encoding: chunked, chunked', { 'Transfer-Encoding': 'chunked, chunked' }],
  ] as const) {
    it(`D13: ${name} on a Fragment is 400 + 0x80070057, then the connection closes unparsed`, async () => {
      const c = await t.connect();
      const inner = bitsRequestBytes({ type: 'Ping', path: '/up/x', sessionId: '{INNER}' });
      await c.write(
        Buffer.concat([
          bitsRequestBytes({ type: 'Fragment', path: '/up/a.bin', sessionId: '{F}', headers: { 'Content-Range': 'bytes 0-2/3', ...te }, noContentLength: true }),
          Buffer.from(`3\r\nabc\r\n0\r\n\r\n`),
          inner,
        ]),
      );
      assertErr(await c.read(), 400, '0x80070057');
      assert.ok(await c.closed(1500));
      assert.equal(c.pending.length, 0);
      c.close();
    });
  }

  it('D13: a Fragment with Transfer-Encoding: \\xa0chunked is 400 + 0x80070057 and stores nothing; the connection closes unparsed', async () => {
    const id = await t.createSession('/up/nbsp.bin');
    const c = await t.connect();
    const head = bitsRequestBytes({ type: 'Fragment', path: '/up/nbsp.bin', sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, noContentLength: true });
    const te = Buffer.from('Transfer-Encoding: \xa0chunked\r\n\r\n', 'latin1');
    await c.write(Buffer.concat([head.subarray(0, head.length - 2), te, Buffer.from('3\r\nabc\r\n0\r\n\r\n'), bitsRequestBytes({ type: 'Ping', path: '/up/x', sessionId: '{INNER}' })]));
    assertErr(await c.read(), 400, '0x80070057');
    assert.ok(await c.closed(1500));
    assert.equal(c.pending.length, 0);
    c.close();
    // the session holds nothing: a Fragment at 0 is still the next one it wants
    const next = await t.request(fragmentRequest('/up/nbsp.bin', id, 0, Buffer.from('abc'), 3));
    assert.equal(next.status, 200);
    assert.equal(next.headers['bits-received-content-range'], '3');
  });

  it('BITS-Packet-Type and BITS-Session-Id are compared exactly: NBSP around them is part of the value', async () => {
    for (const type of ['\xa0Ping', 'Ping\xa0']) {
      const req = Buffer.from(`BITS_POST /up/a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: ${type}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
      const c = await t.connect();
      await c.write(req);
      assertErr(await c.read(), 400, '0x80070057');
      c.close();
    }
    const id = await t.createSession('/up/nbsp-id.bin');
    const close = Buffer.from(`BITS_POST /up/nbsp-id.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Close-Session\r\nBITS-Session-Id: \xa0${id}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
    const c = await t.connect();
    await c.write(close);
    assertErr(await c.read(), 400, '0x80070057');
    c.close();
    // the session is still open: its real id still works
    assertAck(await t.request({ type: 'Cancel-Session', path: '/up/nbsp-id.bin', sessionId: id }));
  });

  it('obs-fold and CR/LF injection on BITS_POST are 400 + 0x80070057', async () => {
    for (const headers of [{ 'X-A': 'a\r\n folded' }, { 'X-A': 'a\nBITS-Packet-Type: Ping' }, { 'X-A': 'a\rb' }]) {
      const res = await t.request({ type: 'Ping', path: '/up/a.bin', headers });
      assertErr(res, 400, '0x80070057');
    }
  });

  it('conflicting Content-Lengths on BITS_POST are 400 + 0x80070057', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/a.bin', headers: { 'Content-Length': 3 }, body: '' });
    assertErr(res, 400, '0x80070057');
  });

  it('a request line over 8 KiB is 414', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/' + 'a'.repeat(8200) });
    assert.equal(res.status, 414);
  });

  it('a head over 64 KiB is 431', async () => {
    const headers = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`X-W${i}`, 'w'.repeat(4000)]));
    const res = await t.request({ type: 'Ping', path: '/up/a.bin', headers });
    assert.equal(res.status, 431);
  });

  it('more than 100 header fields on a non-BITS request is 431', async () => {
    const headers = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-H${i}`, String(i)]));
    const res = await t.request({ method: 'GET', path: '/up/a.bin', headers });
    assert.equal(res.status, 431);
  });

  it('more than 100 header fields on BITS_POST is 431', async () => {
    const headers = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-H${i}`, String(i)]));
    const res = await t.request({ type: 'Ping', path: '/up/a.bin', headers });
    assert.equal(res.status, 431);
  });
});
