// Chunked request bodies in the HTTP engine, over raw sockets: decoding (extensions ignored, trailers
// discarded, any split), what the handler is told (chunked: true, no Content-Length), keep-alive
// after a chunked request, malformed framing (400 and close), bounded memory with backpressure, the
// body idle timeout, early answers (drain up to maxDrain, else close), 100-continue, FIN mid-body.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import type { HttpLimits } from '../src/http/limits.js';
import type { HttpHandler } from '../src/http/types.js';
import { chunkedBody } from './helpers/onedrive-client.js';
import { RawConnection } from './helpers/raw-http.js';

async function startEngine(handler: HttpHandler, limits: Partial<HttpLimits> = {}): Promise<{ http: HttpServer; port: number }> {
  const http = new HttpServer({ handler, logger: pino({ level: 'silent' }), limits });
  const { port } = await http.listen(0, '127.0.0.1');
  return { http, port };
}

/** Reads the whole body; answers with its length, its sha256 and what the engine said about it. */
const echo: HttpHandler = async (req, res) => {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of req.body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    length += chunk.length;
  }
  const body = JSON.stringify({ path: req.path, chunked: req.chunked, contentLength: req.contentLength ?? null, length, sha: hash.digest('hex') });
  res.send(200, { 'Content-Length': String(Buffer.byteLength(body)) }, body);
};

const post = (path: string, extra = ''): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n${extra}\r\n`;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('chunked request bodies (HttpServer)', () => {
  let e: { http: HttpServer; port: number };
  before(async () => {
    e = await startEngine(echo, { maxHead: 2048 });
  });
  after(() => e.http.close(100));

  it('13: decodes a chunked body (hex of any case, leading zeros, extensions, trailers) for a handler told chunked: true; the connection stays', async () => {
    const c = await RawConnection.connect(e.port);
    const body = 'a\r\n0123456789\r\n00A;name=value;q="x y"\r\n' + 'b'.repeat(10) + '\r\n1 ;ext\r\nc\r\n0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n';
    await c.write(post('/one') + body);
    const res = await c.read();
    assert.deepEqual(JSON.parse(res.body.toString()), {
      path: '/one',
      chunked: true,
      contentLength: null,
      length: 21,
      sha: sha(Buffer.from('0123456789' + 'b'.repeat(10) + 'c')),
    });
    assert.equal(res.headers['connection'], undefined);
    // the next request on the same connection, and a Content-Length one after it
    await c.write(post('/two') + '3\r\nxyz\r\n0\r\n\r\nPOST /three HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi');
    assert.equal(JSON.parse((await c.read()).body.toString()).sha, sha(Buffer.from('xyz')));
    assert.deepEqual(JSON.parse((await c.read()).body.toString()).chunked, false);
    assert.equal(await c.closed(200), false);
    c.close();
  });

  it('13: a chunked body split at every byte still decodes the same, and frames the pipelined request after it', async () => {
    const data = randomBytes(300);
    const bytes = Buffer.concat([Buffer.from(post('/split')), chunkedBody(data, 70, ';e=1'), Buffer.from('GET /after HTTP/1.1\r\n\r\n')]);
    for (let cut = 1; cut < bytes.length; cut += 13) {
      const c = await RawConnection.connect(e.port);
      await c.write(bytes.subarray(0, cut));
      await sleep(1);
      await c.write(bytes.subarray(cut));
      const first = JSON.parse((await c.read()).body.toString());
      assert.equal(first.sha, sha(data), `cut at ${cut}`);
      assert.equal(JSON.parse((await c.read()).body.toString()).path, '/after', `cut at ${cut}`);
      c.close();
    }
  });

  it('13: a zero-length chunked body is an empty body', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write(post('/empty') + '0\r\n\r\n');
    assert.equal(JSON.parse((await c.read()).body.toString()).length, 0);
    c.close();
  });

  for (const [name, body] of [
    ['a size that is not hex', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['a signed size', '+3\r\nabc\r\n0\r\n\r\n'],
    ['a 0x size', '0x3\r\nabc\r\n0\r\n\r\n'],
    ['an empty size line', '\r\nabc\r\n0\r\n\r\n'],
    ['a space after the size without an extension', '3 \r\nabc\r\n0\r\n\r\n'],
    ['a size of 17 hex digits', '00000000000000003\r\nabc\r\n0\r\n\r\n'],
    ['a size beyond 2^53', 'ffffffffffffffff\r\nabc\r\n0\r\n\r\n'],
    ['a bare LF after the size', '3\nabc\r\n0\r\n\r\n'],
    ['a bare CR in the size line', '3\r;x\r\nabc\r\n0\r\n\r\n'],
    ['a control character in an extension', '3;a\x01b\r\nabc\r\n0\r\n\r\n'],
    ['a size line over 4 KiB (long extension)', `3;${'e'.repeat(4100)}\r\nabc\r\n0\r\n\r\n`],
    ['chunk data longer than its size', '3\r\nabcd\r\n0\r\n\r\n'],
    ['chunk data not followed by CRLF', '3\r\nabc0\r\n\r\n'],
    ['a trailer without a colon', '3\r\nabc\r\n0\r\nbad trailer\r\n\r\n'],
    ['a trailer with a bare LF', '3\r\nabc\r\n0\r\nX-T: a\nb\r\n\r\n'],
    ['trailers larger than maxHead', `3\r\nabc\r\n0\r\n${`X-T: ${'t'.repeat(500)}\r\n`.repeat(5)}\r\n`],
  ] as const) {
    it(`13: ${name} is 400, the connection closes, nothing after it is parsed`, async () => {
      const c = await RawConnection.connect(e.port);
      await c.write(post('/bad') + body + 'GET /smuggled HTTP/1.1\r\n\r\n');
      const res = await c.read();
      assert.equal(res.status, 400);
      assert.equal(res.headers['connection'], 'close');
      assert.ok(await c.closed(3000));
      assert.equal(c.pending.length, 0, `bytes after the 400: ${c.pending.toString('latin1')}`);
      c.close();
    });
  }

  it('the server is healthy after all that', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write(post('/ok') + '2\r\nok\r\n0\r\n\r\n');
    assert.equal(JSON.parse((await c.read()).body.toString()).length, 2);
    c.close();
  });
});

describe('chunked bodies: backpressure, timeouts, early answers (HttpServer)', () => {
  it('13: memory stays bounded while the handler does not read: the socket is paused, then the whole body arrives', { timeout: 30_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let readBeforeRelease = 0;
    const e = await startEngine(async (req, res) => {
      await released;
      readBeforeRelease = req.socket?.bytesRead ?? 0;
      let length = 0;
      for await (const chunk of req.body as AsyncIterable<Buffer>) length += chunk.length;
      res.send(200, { 'Content-Length': String(String(length).length) }, String(length));
    });
    try {
      const c = await RawConnection.connect(e.port);
      const piece = chunkedBody(randomBytes(64 * 1024), 64 * 1024, '', false);
      const count = 512; // 32 MiB
      c.socket.write(post('/big'));
      for (let i = 0; i < count; i++) c.socket.write(piece);
      c.socket.write('0\r\n\r\n');
      await sleep(1000);
      release();
      const res = await c.read({ timeoutMs: 20_000 });
      assert.equal(res.body.toString(), String(count * 64 * 1024));
      assert.ok(readBeforeRelease < 16 * 1024 * 1024, `${readBeforeRelease} bytes read from the socket while the handler was not reading`);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  /**
   * A handler that does not read until `bytes` have come off the socket (as one waiting for a session
   * lock), then reads in flowing mode, where each 'data' event is one Buffer the body stream held.
   */
  const countingHandler = (bytes: () => number): HttpHandler => async (req, res) => {
    for (let i = 0; i < 1000 && (req.socket?.bytesRead ?? 0) < bytes(); i++) await sleep(10);
    const hash = createHash('sha256');
    let pieces = 0;
    let length = 0;
    await new Promise<void>((resolve, reject) => {
      req.body.on('data', (chunk: Buffer) => {
        pieces++;
        length += chunk.length;
        hash.update(chunk);
      });
      req.body.on('end', resolve);
      req.body.on('error', reject);
    });
    const body = JSON.stringify({ pieces, length, sha: hash.digest('hex') });
    res.send(200, { 'Content-Length': String(Buffer.byteLength(body)) }, body);
  };

  it('13: many 1-byte chunks while the handler does not read are held as a few Buffers, not one per chunk', { timeout: 30_000 }, async () => {
    const data = randomBytes(20_000);
    const bytes = Buffer.concat([Buffer.from(post('/tiny')), chunkedBody(data, 1)]);
    const e = await startEngine(countingHandler(() => bytes.length));
    try {
      const c = await RawConnection.connect(e.port);
      await c.write(bytes);
      const res = JSON.parse((await c.read({ timeoutMs: 20_000 })).body.toString());
      assert.equal(res.length, data.length);
      assert.equal(res.sha, sha(data));
      // (one per socket read at most: 120 KB arrive in a few reads)
      assert.ok(res.pieces <= 64, `${res.pieces} Buffers held for ${data.length} bytes in 1-byte chunks`);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('13: a body trickled in tiny reads while the handler does not read is held in a few Buffers (chunked and Content-Length)', { timeout: 30_000 }, async () => {
    const data = randomBytes(300);
    for (const framing of ['chunked', 'length'] as const) {
      const head = framing === 'chunked' ? post('/trickle') : `POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: ${data.length}\r\n\r\n`;
      const pieces = framing === 'chunked'
        ? [...Array.from({ length: data.length }, (_, i) => chunkedBody(data.subarray(i, i + 1), 1, '', false)), Buffer.from('0\r\n\r\n')]
        : Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
      const total = head.length + pieces.reduce((n, p) => n + p.length, 0);
      const e = await startEngine(countingHandler(() => total));
      try {
        const c = await RawConnection.connect(e.port);
        c.socket.setNoDelay(true);
        await c.write(head);
        // one piece per socket read on the server (as a client sending a byte at a time would)
        for (const piece of pieces) {
          await c.write(piece);
          await sleep(1);
        }
        const res = JSON.parse((await c.read({ timeoutMs: 20_000 })).body.toString());
        assert.equal(res.length, data.length, framing);
        assert.equal(res.sha, sha(data), framing);
        assert.ok(res.pieces <= 16, `${framing}: ${res.pieces} Buffers held for ${data.length} bytes trickled`);
        c.close();
      } finally {
        await e.http.close(100);
      }
    }
  });

  it('13: backpressure counts decoded bytes with tiny chunks too: the socket is paused, then the whole body arrives', { timeout: 30_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let readBeforeRelease = 0;
    const e = await startEngine(async (req, res) => {
      await released;
      readBeforeRelease = req.socket?.bytesRead ?? 0;
      let length = 0;
      for await (const chunk of req.body as AsyncIterable<Buffer>) length += chunk.length;
      res.send(200, { 'Content-Length': String(String(length).length) }, String(length));
    });
    try {
      const c = await RawConnection.connect(e.port);
      const body = chunkedBody(Buffer.alloc(500_000, 'k'), 1); // 3 MB on the wire
      c.socket.write(post('/tiny-big'));
      c.socket.write(body);
      await sleep(1000);
      release();
      const res = await c.read({ timeoutMs: 20_000 });
      assert.equal(res.body.toString(), '500000');
      // 64 KiB of decoded bytes held are about 400 KB of 1-byte chunks on the wire
      assert.ok(readBeforeRelease < 1_500_000, `${readBeforeRelease} bytes read from the socket while the handler was not reading`);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('13: the body idle timeout cuts a chunked body that stalls inside a chunk; the handler sees an error', async () => {
    let seen: unknown;
    const e = await startEngine(
      async (req, res) => {
        try {
          for await (const _ of req.body) void _;
        } catch (err) {
          seen = err;
          return res.destroy();
        }
        res.send(200, { 'Content-Length': '0' });
      },
      { bodyIdleTimeoutMs: 500 },
    );
    try {
      const c = await RawConnection.connect(e.port);
      await c.write(post('/stall') + '10\r\nonly part');
      assert.ok(await c.closed(5000));
      assert.ok(seen instanceof Error);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('13: an early answer to a chunked body drains it up to maxDrain and keeps the connection; beyond maxDrain it closes', async () => {
    const e = await startEngine((_req, res) => res.send(403, { 'Content-Length': '0' }), { maxDrain: 10_000 });
    try {
      const small = await RawConnection.connect(e.port);
      await small.write(post('/early'));
      assert.equal((await small.read()).status, 403);
      // the body comes after the answer, with a request inside it that must not be answered
      await small.write(chunkedBody(Buffer.concat([Buffer.from('GET /inside HTTP/1.1\r\n\r\n'), Buffer.alloc(5000, 'z')]), 1000));
      await small.write('GET /next HTTP/1.1\r\n\r\n');
      assert.equal((await small.read()).status, 403);
      await sleep(100);
      assert.equal(small.pending.length, 0, 'nothing answered from inside the body');
      small.close();

      const big = await RawConnection.connect(e.port);
      await big.write(post('/early'));
      assert.equal((await big.read()).status, 403);
      // more than maxDrain arrives while the body is still incomplete (a body read whole at once costs nothing more)
      const rest = Buffer.concat([chunkedBody(Buffer.alloc(20_000, 'z'), 1000), Buffer.from('GET /next HTTP/1.1\r\n\r\n')]);
      await big.write(rest.subarray(0, 15_000));
      assert.ok(await big.closed(3000), 'closed after more than maxDrain');
      await big.write(rest.subarray(15_000)).catch(() => undefined);
      await sleep(100);
      assert.equal(big.pending.length, 0);
      big.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('13: Expect: 100-continue with a chunked body: 100 when the handler reads, then the decoded body', async () => {
    const e = await startEngine(echo);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write(post('/continue', 'Expect: 100-continue\r\n'));
      const interim = await c.read();
      assert.equal(interim.status, 100);
      await c.write('5\r\nhello\r\n0\r\n\r\n');
      const res = await c.read();
      assert.equal(JSON.parse(res.body.toString()).sha, sha(Buffer.from('hello')));
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('13: FIN inside a chunked body: the handler sees an error, the connection closes without an answer', async () => {
    let seen: unknown;
    const e = await startEngine(async (req, res) => {
      try {
        for await (const _ of req.body) void _;
      } catch (err) {
        seen = err;
        return;
      }
      res.send(200, { 'Content-Length': '0' });
    });
    try {
      const c = await RawConnection.connect(e.port);
      await c.write(post('/fin') + '5\r\nhel');
      c.socket.end();
      assert.ok(await c.closed(3000));
      assert.equal(c.pending.length, 0);
      await sleep(50);
      assert.ok(seen instanceof Error);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});
