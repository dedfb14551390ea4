// HTTP engine idle timeouts, with small limits: header timeout (slowloris), body idle (stalled body;
// the session keeps what was acknowledged), keep-alive idle, and a slow-but-never-idle body that
// takes longer than the body idle timeout in total and still succeeds.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import { HttpError } from '../src/http/errors.js';
import type { HttpLimits } from '../src/http/limits.js';
import type { HttpHandler } from '../src/http/types.js';
import { assertAck } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';

interface Engine {
  http: HttpServer;
  port: number;
  /** The codes of the timeouts the engine has logged so far, in order. */
  timeouts(): string[];
}

async function startEngine(handler: HttpHandler, limits: Partial<HttpLimits> = {}): Promise<Engine> {
  const lines: { msg?: string; code?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const http = new HttpServer({ handler, logger, limits });
  const { port } = await http.listen(0, '127.0.0.1');
  const timeouts = (): string[] => lines.filter((l) => l.msg === 'connection timed out').map((l) => l.code ?? '');
  return { http, port, timeouts };
}

/** The code of `err`, which must be an HttpError. */
function codeOf(err: unknown): string {
  assert.ok(err instanceof HttpError, `not an HttpError: ${String(err)}`);
  return err.code;
}

/** Milliseconds until the server closes `c` (rejects after `max`). */
async function msUntilClosed(c: RawConnection, started: number, max = 5000): Promise<number> {
  assert.ok(await c.closed(max), `still open after ${max} ms`);
  return Date.now() - started;
}

describe('idle timeouts (BitsServer, 1 s limits)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ config: { limits: { headerTimeout: 1, bodyIdleTimeout: 1, keepAliveTimeout: 1 } } });
  });
  after(() => t.stop());

  it('header timeout: a connection that sends nothing is closed after ~1 s', async () => {
    const c = await t.connect();
    const ms = await msUntilClosed(c, Date.now());
    assert.ok(ms >= 900 && ms < 2500, `${ms} ms`);
    c.close();
  });

  it('header timeout: a slowloris head (a byte every 100 ms) is closed after ~1 s in total', async () => {
    const c = await t.connect();
    const started = Date.now();
    let stop = false;
    const drip = (async () => {
      await c.write('BITS_POST /up/a.bin HTTP/1.1\r\n');
      for (let i = 0; !stop && i < 40; i++) {
        await sleep(100);
        if (c.socket.destroyed) break;
        await c.write(i % 2 ? 'X' : 'x').catch(() => undefined);
      }
    })();
    const ms = await msUntilClosed(c, started);
    stop = true;
    await drip;
    assert.ok(ms >= 900 && ms < 2500, `${ms} ms`);
    assert.equal(c.pending.length, 0, 'closed without an answer');
    c.close();
  });

  it('keep-alive idle: closed ~1 s after the last answer, but each request re-arms the timer', async () => {
    const c = await t.connect();
    for (let i = 0; i < 3; i++) {
      await c.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin' }));
      assertAck(await c.read());
      await sleep(600); // 1.8 s in total: more than one timeout, never idle for one
    }
    const started = Date.now();
    await c.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin' }));
    assertAck(await c.read());
    const ms = await msUntilClosed(c, started);
    assert.ok(ms >= 900 && ms < 2500, `${ms} ms`);
    c.close();
  });

  it('body idle: a stalled fragment body closes the connection; the session keeps what was acknowledged', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/up/stall.bin');
    const c = await t.connect();
    await c.write(bitsRequestBytes(fragmentRequest('/up/stall.bin', id, 0, data.subarray(0, 100), 300)));
    const first = await c.read();
    assertAck(first);
    assert.equal(first.headers['bits-received-content-range'], '100');
    const second = bitsRequestBytes(fragmentRequest('/up/stall.bin', id, 100, data.subarray(100, 300), 300));
    await c.write(second.subarray(0, second.length - 150)); // head + 50 of 200 body bytes
    const started = Date.now();
    const ms = await msUntilClosed(c, started);
    assert.ok(ms >= 900 && ms < 3000, `${ms} ms`);
    assert.equal(c.pending.length, 0, 'no Ack for a fragment that was never complete');
    c.close();
    // the client resends from what was acknowledged; the session accepts it and the file is right
    const res = await t.request(fragmentRequest('/up/stall.bin', id, 100, data.subarray(100, 300), 300));
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '300');
    assertAck(await t.request({ type: 'Close-Session', path: '/up/stall.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'stall.bin')), data);
  });

  it('body idle is an idle limit: a fragment trickled over ~3 s (a piece every 100 ms) succeeds', async () => {
    const data = randomBytes(30 * 1024);
    const id = await t.createSession('/up/trickle.bin');
    const c = await t.connect();
    const req = bitsRequestBytes(fragmentRequest('/up/trickle.bin', id, 0, data, data.length));
    const headEnd = req.indexOf('\r\n\r\n') + 4;
    // the head itself trickles too, within the 1 s header timeout
    await c.write(req.subarray(0, 40));
    await sleep(300);
    await c.write(req.subarray(40, headEnd));
    const started = Date.now();
    for (let i = headEnd; i < req.length; i += 1024) {
      await sleep(100);
      await c.write(req.subarray(i, i + 1024));
    }
    assert.ok(Date.now() - started > 2500, 'the body took longer than the idle timeout in total');
    const res = await c.read();
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], String(data.length));
    c.close();
    assertAck(await t.request({ type: 'Close-Session', path: '/up/trickle.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'trickle.bin')), data);
  });

  it('the header timeout of a keep-alive connection restarts with each head', async () => {
    const c = await t.connect();
    for (let i = 0; i < 3; i++) {
      const req = bitsRequestBytes({ type: 'Ping', path: '/up/a.bin' });
      await c.write(req.subarray(0, 20));
      await sleep(600);
      await c.write(req.subarray(20));
      assertAck(await c.read());
    }
    c.close();
  });
});

describe('idle timeouts count only while the engine waits for the client (HttpServer)', () => {
  const limits: Partial<HttpLimits> = { headerTimeoutMs: 300, bodyIdleTimeoutMs: 300, keepAliveTimeoutMs: 5000 };

  it('a handler busy for longer than the body idle timeout before it reads (backpressure) still gets the body', async () => {
    const e = await startEngine(async (req, res) => {
      await sleep(1000);
      let n = 0;
      for await (const chunk of req.body as AsyncIterable<Buffer>) n += chunk.length;
      res.send(200, { 'Content-Length': String(String(n).length) }, String(n));
    }, limits);
    try {
      const c = await RawConnection.connect(e.port);
      const size = 4 * 1024 * 1024;
      void c.write(Buffer.concat([Buffer.from(`PUT /big HTTP/1.1\r\nContent-Length: ${size}\r\n\r\n`), Buffer.alloc(size, 7)])).catch(() => undefined);
      const res = await c.read({ timeoutMs: 8000 });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), String(size));
      assert.deepEqual(e.timeouts(), [], 'no timeout fired');
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('Expect: 100-continue with a handler that starts reading after the body idle timeout', async () => {
    const e = await startEngine(async (req, res) => {
      await sleep(1000);
      let n = 0;
      for await (const chunk of req.body as AsyncIterable<Buffer>) n += chunk.length;
      res.send(200, { 'Content-Length': String(String(n).length) }, String(n));
    }, limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
      const cont = await c.read({ timeoutMs: 4000 });
      assert.equal(cont.status, 100);
      await c.write('hello');
      const res = await c.read({ timeoutMs: 4000 });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), '5');
      assert.deepEqual(e.timeouts(), [], 'no timeout fired');
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('a body that stalls while the handler reads is cut after the body idle timeout, and the handler sees an error', async () => {
    let seen: unknown;
    const e = await startEngine(async (req, res) => {
      try {
        for await (const _ of req.body) void _;
        res.send(200, { 'Content-Length': '0' });
      } catch (err) {
        seen = err;
        throw err;
      }
    }, limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /s HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
      const started = Date.now();
      const ms = await msUntilClosed(c, started);
      assert.ok(ms >= 250 && ms < 2000, `${ms} ms`);
      await sleep(50);
      assert.ok(seen instanceof Error, 'the body stream failed');
      assert.equal(codeOf(seen), 'HTTP_BODY_IDLE_TIMEOUT');
      assert.deepEqual(e.timeouts(), ['HTTP_BODY_IDLE_TIMEOUT']);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('drain of an unread body is bounded by the body idle timeout', async () => {
    const e = await startEngine((_req, res) => res.send(403, { 'Content-Length': '0' }), limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /d HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc');
      assert.equal((await c.read()).status, 403);
      const ms = await msUntilClosed(c, Date.now());
      assert.ok(ms >= 250 && ms < 2000, `${ms} ms`);
      assert.deepEqual(e.timeouts(), ['HTTP_DRAIN_TIMEOUT']);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});

describe('body idle timeout before the handler reads (HttpServer)', () => {
  it('a stalled body times out while the handler is still busy: no crash, the handler sees an error', async () => {
    let seen: unknown;
    const e = await startEngine(async (req, res) => {
      await sleep(700);
      try {
        for await (const _ of req.body) void _;
        res.send(200, { 'Content-Length': '0' });
      } catch (err) {
        seen = err;
      }
    }, { bodyIdleTimeoutMs: 300 });
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
      const ms = await msUntilClosed(c, Date.now());
      assert.ok(ms >= 250 && ms < 2000, `${ms} ms`);
      await sleep(700);
      assert.ok(seen instanceof Error, 'reading the body failed');
      assert.equal(codeOf(seen), 'HTTP_BODY_IDLE_TIMEOUT');
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});

describe('each idle timeout fails the connection with its own code (HttpServer)', () => {
  const limits: Partial<HttpLimits> = { headerTimeoutMs: 300, bodyIdleTimeoutMs: 300, keepAliveTimeoutMs: 300, writeIdleTimeoutMs: 300 };
  const ok: HttpHandler = (_req, res) => res.send(200, { 'Content-Length': '0' });

  it('a connection that sends nothing, and a slowloris head, are HTTP_HEADER_TIMEOUT', async () => {
    const e = await startEngine(ok, limits);
    try {
      const silent = await RawConnection.connect(e.port);
      const slow = await RawConnection.connect(e.port);
      await slow.write('GET / HTTP/1.1\r\n');
      const drip = setInterval(() => void slow.write('X').catch(() => undefined), 50);
      assert.ok(await silent.closed(3000));
      assert.ok(await slow.closed(3000));
      clearInterval(drip);
      assert.equal(slow.pending.length, 0, 'closed without an answer');
      assert.deepEqual(e.timeouts(), ['HTTP_HEADER_TIMEOUT', 'HTTP_HEADER_TIMEOUT']);
      silent.close();
      slow.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('an idle connection after an answer is HTTP_KEEP_ALIVE_TIMEOUT', async () => {
    const e = await startEngine(ok, limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('GET / HTTP/1.1\r\n\r\n');
      assert.equal((await c.read()).status, 200);
      assert.ok(await c.closed(3000));
      assert.deepEqual(e.timeouts(), ['HTTP_KEEP_ALIVE_TIMEOUT']);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('a stalled body aborts the request with HTTP_BODY_IDLE_TIMEOUT, which is also the reason of its signal', async () => {
    let reason: unknown;
    const e = await startEngine(async (req, res) => {
      req.signal.addEventListener('abort', () => (reason = req.signal.reason));
      for await (const _ of req.body) void _;
      res.send(200, { 'Content-Length': '0' });
    }, limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /s HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
      assert.ok(await c.closed(3000));
      await sleep(50);
      assert.equal(codeOf(reason), 'HTTP_BODY_IDLE_TIMEOUT');
      c.close();
    } finally {
      await e.http.close(100);
    }
  });

  it('a client that does not read a streamed answer is HTTP_WRITE_IDLE_TIMEOUT', { timeout: 20_000 }, async () => {
    let reason: unknown;
    let failStream: (err: unknown) => void = () => undefined;
    const streamed = new Promise<unknown>((resolve) => (failStream = resolve));
    const size = 512 * 1024 * 1024;
    const e = await startEngine(async (req, res) => {
      req.signal.addEventListener('abort', () => (reason = req.signal.reason));
      const chunk = Buffer.alloc(64 * 1024);
      const body = Readable.from((function* () {
        for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
      })());
      await res.stream(200, { 'Content-Length': String(size) }, body).catch(failStream);
    }, limits);
    const socket = net.connect(e.port, '127.0.0.1');
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.pause(); // never reads: the server's writes stop making progress
      socket.write('GET /big HTTP/1.1\r\n\r\n');
      const failure = await streamed;
      assert.deepEqual(e.timeouts(), ['HTTP_WRITE_IDLE_TIMEOUT']);
      assert.equal(codeOf(reason), 'HTTP_WRITE_IDLE_TIMEOUT');
      assert.equal(codeOf(failure), 'HTTP_CONNECTION_CLOSED', 'stream() fails: the connection was dropped');
    } finally {
      socket.destroy();
      await e.http.close(100);
    }
  });

  it('a handler that never answers a malformed chunked body is HTTP_ANSWER_TIMEOUT', async () => {
    let bodyError: unknown;
    const e = await startEngine(async (req) => {
      try {
        for await (const _ of req.body) void _;
      } catch (err) {
        bodyError = err;
      }
      await new Promise(() => undefined); // never answers
    }, limits);
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
      assert.ok(await c.closed(3000));
      assert.equal(codeOf(bodyError), 'HTTP_BAD_CHUNKED_BODY');
      assert.deepEqual(e.timeouts(), ['HTTP_ANSWER_TIMEOUT']);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});
