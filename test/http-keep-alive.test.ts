// HTTP engine connection reuse, over raw sockets: keep-alive, pipelining (BITS fragments with bodies
// in one write), early responses with body drain (and close beyond maxDrain), Expect: 100-continue,
// HTTP/1.0 keep-alive, half-close.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
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

async function startEngine(handler: HttpHandler, limits: Partial<HttpLimits> = {}): Promise<{ http: HttpServer; port: number }> {
  const http = new HttpServer({ handler, logger: pino({ level: 'silent' }), limits });
  const { port } = await http.listen(0, '127.0.0.1');
  return { http, port };
}

const ping = (sessionId: string, body?: string | Buffer): Buffer => bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId, body });

describe('keep-alive and pipelining (BitsServer)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  it('serves several requests one after the other on one connection', async () => {
    const c = await t.connect();
    for (let i = 0; i < 5; i++) {
      await c.write(ping(`{S${i}}`));
      const res = await c.read();
      assertAck(res);
      assert.equal(res.headers['bits-session-id'], `{S${i}}`);
      assert.equal(res.headers['connection'], undefined);
    }
    assert.equal(await c.closed(200), false);
    c.close();
  });

  it('answers pipelined requests (one TCP write) in order', async () => {
    const c = await t.connect();
    await c.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => ping(`{P${i}}`))));
    for (let i = 0; i < 20; i++) assert.equal((await c.read()).headers['bits-session-id'], `{P${i}}`);
    assert.equal(await c.closed(200), false);
    c.close();
  });

  it('pipelined fragments with bodies in one write are all stored and acknowledged in order', async () => {
    const data = randomBytes(3 * 70_000 + 17);
    const id = await t.createSession('/up/pipe.bin');
    const c = await t.connect();
    const cuts = [0, 70_000, 140_000, 210_000, data.length];
    const reqs = cuts.slice(0, -1).map((first, i) =>
      bitsRequestBytes(fragmentRequest('/up/pipe.bin', id, first, data.subarray(first, cuts[i + 1]), data.length)),
    );
    reqs.push(bitsRequestBytes({ type: 'Close-Session', path: '/up/pipe.bin', sessionId: id }));
    await c.write(Buffer.concat(reqs));
    for (const end of cuts.slice(1)) {
      const res = await c.read();
      assertAck(res);
      assert.equal(res.headers['bits-received-content-range'], String(end));
    }
    assertAck(await c.read());
    c.close();
    assert.deepEqual(await readFile(join(t.uploads, 'pipe.bin')), data);
  });

  it('a body split at every possible point still frames the next pipelined request', async () => {
    const bytes = Buffer.concat([ping('{A}'), Buffer.from('\r\n'), ping('{B}')]);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const c = await t.connect();
      await c.write(bytes.subarray(0, cut));
      await sleep(2);
      await c.write(bytes.subarray(cut));
      assert.equal((await c.read()).headers['bits-session-id'], '{A}');
      assert.equal((await c.read()).headers['bits-session-id'], '{B}');
      c.close();
    }
  });
});

describe('early responses: drain or close (BitsServer)', () => {
  let t: TestServer;
  let small: TestServer;
  before(async () => {
    t = await startServer();
    small = await startServer({ config: { limits: { maxDrain: 1000 } } });
  });
  after(async () => {
    await t.stop();
    await small.stop();
  });

  it('an unread body that looks like a request is drained, not parsed; the pipelined request after it is answered', async () => {
    const c = await t.connect();
    // Ping with a body is refused before its body is read; the body is itself a complete Ping.
    await c.write(Buffer.concat([ping('{OUTER}', ping('{IN-BODY}')), ping('{NEXT}')]));
    const first = await c.read();
    assertErr(first, 400, '0x80070057');
    assert.equal(first.headers['bits-session-id'], '{OUTER}');
    assert.equal(first.headers['connection'], undefined, 'kept alive: the body was drained');
    const second = await c.read();
    assertAck(second);
    assert.equal(second.headers['bits-session-id'], '{NEXT}');
    await sleep(100);
    assert.equal(c.pending.length, 0, 'no answer to the request inside the body');
    await c.write(ping('{AGAIN}'));
    assert.equal((await c.read()).headers['bits-session-id'], '{AGAIN}');
    c.close();
  });

  it('the answer comes before the body is sent; the body sent later is drained', async () => {
    const c = await t.connect();
    const inner = Buffer.concat([ping('{IN-BODY}'), Buffer.alloc(20_000, 'z')]);
    const full = ping('{OUTER}', inner);
    const headEnd = full.indexOf('\r\n\r\n') + 4;
    await c.write(full.subarray(0, headEnd));
    assertErr(await c.read(), 400, '0x80070057');
    await c.write(full.subarray(headEnd, headEnd + 5000));
    await sleep(20);
    await c.write(Buffer.concat([full.subarray(headEnd + 5000), ping('{NEXT}')]));
    const res = await c.read();
    assert.equal(res.headers['bits-session-id'], '{NEXT}');
    await sleep(100);
    assert.equal(c.pending.length, 0);
    c.close();
  });

  it('an unread body larger than maxDrain closes the connection after the answer', async () => {
    const c = await small.connect();
    const full = Buffer.concat([ping('{OUTER}', Buffer.concat([ping('{IN-BODY}'), Buffer.alloc(5000, 'z')])), ping('{NEXT}')]);
    // the head and the start of the body: more than maxDrain is still to come when the answer is made
    const headEnd = full.indexOf('\r\n\r\n') + 4;
    await c.write(full.subarray(0, headEnd + 100));
    const res = await c.read();
    assertErr(res, 400, '0x80070057');
    assert.equal(res.headers['connection'], 'close');
    await c.write(full.subarray(headEnd + 100)).catch(() => undefined);
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0, 'nothing parsed from the body or after it');
    c.close();
  });

  it('a body that arrived whole with its head is not drained at all: the connection stays', async () => {
    const c = await small.connect();
    await c.write(Buffer.concat([ping('{OUTER}', Buffer.alloc(5000, 'z')), ping('{NEXT}')]));
    const res = await c.read();
    assertErr(res, 400, '0x80070057');
    if (res.headers['connection'] !== 'close') assert.equal((await c.read()).headers['bits-session-id'], '{NEXT}');
    else assert.ok(await c.closed(3000));
    c.close();
  });

  it('an unread body within maxDrain keeps the connection', async () => {
    const c = await small.connect();
    await c.write(Buffer.concat([ping('{OUTER}', Buffer.alloc(1000, 'z')), ping('{NEXT}')]));
    assertErr(await c.read(), 400, '0x80070057');
    assert.equal((await c.read()).headers['bits-session-id'], '{NEXT}');
    c.close();
  });
});

describe('Expect: 100-continue (BitsServer)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  it('a handler that reads the body gets it after 100 Continue; the connection stays usable', async () => {
    const data = randomBytes(50_000);
    const id = await t.createSession('/up/cont.bin');
    const c = await t.connect();
    const req = bitsRequestBytes({ ...fragmentRequest('/up/cont.bin', id, 0, data, data.length), headers: { ...fragmentRequest('/up/cont.bin', id, 0, data, data.length).headers, Expect: '100-continue' } });
    const headEnd = req.indexOf('\r\n\r\n') + 4;
    await c.write(req.subarray(0, headEnd));
    const cont = await c.read();
    assert.equal(cont.status, 100);
    assert.equal(cont.statusLine, 'HTTP/1.1 100 Continue');
    await c.write(req.subarray(headEnd));
    const res = await c.read();
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], String(data.length));
    await c.write(ping('{AFTER}'));
    assert.equal((await c.read()).headers['bits-session-id'], '{AFTER}');
    c.close();
    assertAck(await t.request({ type: 'Close-Session', path: '/up/cont.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'cont.bin')), data);
  });

  it('a handler that refuses without reading answers at once, sends no 100, and closes', async () => {
    const c = await t.connect();
    const body = Buffer.alloc(1000, 'q');
    const req = bitsRequestBytes({
      ...fragmentRequest('/up/none.bin', '{00000000-0000-0000-0000-000000000000}', 0, body, 1000),
      headers: { 'Content-Range': 'bytes 0-999/1000', 'Content-Name': 'a.bin', Expect: '100-continue' },
    });
    await c.write(req.subarray(0, req.indexOf('\r\n\r\n') + 4));
    const res = await c.read();
    assertErr(res, 500, '0x8020001F');
    assert.equal(res.headers['connection'], 'close');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0);
    c.close();
  });

  it('a client that sends the body without waiting for 100 is served normally', async () => {
    const data = randomBytes(2000);
    const id = await t.createSession('/up/eager.bin');
    const c = await t.connect();
    const f = fragmentRequest('/up/eager.bin', id, 0, data, data.length);
    await c.write(Buffer.concat([bitsRequestBytes({ ...f, headers: { ...f.headers, Expect: '100-continue' } }), ping('{NEXT}')]));
    let res = await c.read();
    if (res.status === 100) res = await c.read();
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], '2000');
    assert.equal((await c.read()).headers['bits-session-id'], '{NEXT}');
    c.close();
  });

  it('Expect on a request without a body sends no 100', async () => {
    const c = await t.connect();
    await c.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', headers: { Expect: '100-continue' } }));
    const res = await c.read();
    assertAck(res);
    c.close();
  });
});

describe('HTTP/1.0 and Connection: close (HttpServer)', () => {
  let e: { http: HttpServer; port: number };
  let calls = 0;
  before(async () => {
    e = await startEngine(async (req, res) => {
      calls++;
      for await (const _ of req.body) void _;
      res.send(200, { 'Content-Length': '2' }, 'ok');
    });
  });
  after(() => e.http.close(100));

  it('HTTP/1.0 without keep-alive: Connection: close, then the server closes', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET / HTTP/1.0\r\n\r\nGET /second HTTP/1.0\r\n\r\n');
    const res = await c.read();
    assert.equal(res.status, 200);
    assert.equal(res.headers['connection'], 'close');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0, 'the pipelined request after it is not answered');
    c.close();
  });

  it('HTTP/1.0 with Connection: keep-alive stays open and says so', async () => {
    const c = await RawConnection.connect(e.port);
    for (let i = 0; i < 3; i++) {
      await c.write('POST / HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc');
      const res = await c.read();
      assert.equal(res.status, 200);
      assert.equal(res.headers['connection'], 'keep-alive');
    }
    assert.equal(await c.closed(200), false);
    c.close();
  });

  it('HTTP/1.1 with Connection: close gets Connection: close and a close; later pipelined requests are ignored', async () => {
    const before = calls;
    const c = await RawConnection.connect(e.port);
    await c.write('GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n\r\n');
    const res = await c.read();
    assert.equal(res.headers['connection'], 'close');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0);
    assert.equal(calls - before, 1);
    c.close();
  });

  it('HTTP/1.1 is kept alive by default, with no Connection header', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET / HTTP/1.1\r\n\r\n');
    const res = await c.read();
    assert.equal(res.headers['connection'], undefined);
    assert.equal(await c.closed(200), false);
    c.close();
  });

  it('Connection options are tokens compared exactly: NBSP (obs-text) around close or keep-alive is part of the value', async () => {
    // `\xa0close` is an unknown option: HTTP/1.1 stays persistent
    const a = await RawConnection.connect(e.port);
    await a.write(Buffer.from('GET / HTTP/1.1\r\nConnection: \xa0close\r\n\r\n', 'latin1'));
    assert.equal((await a.read()).headers['connection'], undefined);
    assert.equal(await a.closed(200), false);
    a.close();
    // `keep-alive\xa0` is an unknown option: HTTP/1.0 closes
    const b = await RawConnection.connect(e.port);
    await b.write(Buffer.from('GET / HTTP/1.0\r\nConnection: keep-alive\xa0\r\n\r\n', 'latin1'));
    assert.equal((await b.read()).headers['connection'], 'close');
    assert.ok(await b.closed(3000));
    b.close();
    // SP and HTAB inside the list are optional whitespace
    const c = await RawConnection.connect(e.port);
    await c.write('GET / HTTP/1.1\r\nConnection: te ,\t close \r\n\r\n');
    assert.equal((await c.read()).headers['connection'], 'close');
    assert.ok(await c.closed(3000));
    c.close();
  });

  it('a request followed by a half-close is answered, then the server closes', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi');
    c.socket.end();
    assert.equal((await c.read()).status, 200);
    assert.equal((await c.read()).status, 200);
    assert.ok(await c.closed(3000));
    c.close();
  });

  it('a half-close inside a head or a body closes without an answer', async () => {
    for (const bytes of ['GET / HTTP/1.1\r\nHost', 'POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc']) {
      const before = calls;
      const c = await RawConnection.connect(e.port);
      await c.write(bytes);
      c.socket.end();
      assert.ok(await c.closed(3000), bytes);
      assert.equal(c.pending.length, 0);
      c.close();
      await sleep(20);
      // a body cut short may have reached the handler, but it cannot have answered
      if (bytes.startsWith('GET')) assert.equal(calls, before);
    }
  });

  it('empty lines before a request line are ignored', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n');
    assert.equal((await c.read()).status, 200);
    assert.equal((await c.read()).status, 200);
    c.close();
  });
});

describe('a client that has sent FIN (HttpServer, default 60 s keep-alive and 120 s body idle)', () => {
  let e: { http: HttpServer; port: number };
  before(async () => {
    e = await startEngine(async (req, res) => {
      // (synchronous, before any await: answered from inside the dispatch, its body unread)
      if (req.path === '/refuse') return res.send(405, { 'Content-Length': '0' });
      if (req.path === '/slow') await sleep(300);
      for await (const _ of req.body) void _;
      res.send(200, { 'Content-Length': String(req.path.length) }, req.path);
    });
  });
  after(() => e.http.close(100));

  it('11: a stray CRLF after a request, then FIN while it is handled: answered, then closed at once', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET /slow HTTP/1.1\r\n\r\n\r\n');
    c.socket.end();
    assert.equal((await c.read()).body.toString(), '/slow');
    assert.ok(await c.closed(3000), 'still open after the answer (waiting for the keep-alive timeout)');
    c.close();
  });

  it('11: FIN during a pipelined request with an incomplete body: the earlier answer is written whole, then the connection closes', async () => {
    const c = await RawConnection.connect(e.port);
    // /slow is still being handled when the FIN arrives; the POST behind it can never be complete
    await c.write('GET /slow HTTP/1.1\r\n\r\nPOST /cut HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
    c.socket.end();
    assert.equal((await c.read()).body.toString(), '/slow');
    assert.ok(await c.closed(3000), 'still open after the answer (waiting for the body idle timeout)');
    assert.equal(c.pending.length, 0, 'no answer to the incomplete request');
    c.close();
  });

  it('11: FIN after three pipelined requests, the second answered at once without reading its body: all three answers, in order, then a close', async () => {
    const c = await RawConnection.connect(e.port);
    // The second answer is made while its body is still in the engine's hands; the body's end then
    // finishes that exchange before the third request has been buffered.
    await c.write('GET /slow HTTP/1.1\r\n\r\nPOST /refuse HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /third HTTP/1.1\r\n\r\n');
    c.socket.end();
    assert.equal((await c.read()).body.toString(), '/slow');
    assert.equal((await c.read()).status, 405);
    assert.equal((await c.read()).body.toString(), '/third');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0);
    c.close();
  });

  it('11: FIN after pipelined requests all answered at once without reading their bodies: every answer, in order, then a close', async () => {
    const c = await RawConnection.connect(e.port);
    const refuse = (i: number): string => `POST /refuse HTTP/1.1\r\nX-N: ${i}\r\nContent-Length: 5\r\n\r\nbody${i}`;
    await c.write(`GET /slow HTTP/1.1\r\n\r\n${[1, 2, 3, 4].map(refuse).join('')}GET /last HTTP/1.1\r\n\r\n`);
    c.socket.end();
    assert.equal((await c.read()).body.toString(), '/slow');
    for (let i = 1; i <= 4; i++) assert.equal((await c.read()).status, 405, `answer ${i + 1}`);
    assert.equal((await c.read()).body.toString(), '/last');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0);
    c.close();
  });

  it('11: FIN during a pipelined request with an incomplete head after a complete one: both complete answers, then a close', async () => {
    const c = await RawConnection.connect(e.port);
    await c.write('GET /slow HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n\r\nGET /c HTTP/1.1\r\nHost');
    c.socket.end();
    assert.equal((await c.read()).body.toString(), '/slow');
    assert.equal((await c.read()).body.toString(), '/b');
    assert.ok(await c.closed(3000));
    assert.equal(c.pending.length, 0);
    c.close();
  });
});

describe('early response while draining (HttpServer)', () => {
  it('a handler that answers before the body arrives keeps the connection and drains', async () => {
    let calls = 0;
    const e = await startEngine((req, res) => {
      calls++;
      res.send(403, { 'Content-Length': '0' });
      void req;
    });
    try {
      const c = await RawConnection.connect(e.port);
      await c.write('PUT /a HTTP/1.1\r\nContent-Length: 100000\r\n\r\n');
      const res = await c.read();
      assert.equal(res.status, 403);
      assert.equal(res.headers['connection'], undefined);
      // the body arrives in many small writes, with a fake request inside
      const body = Buffer.concat([Buffer.from('GET /fake HTTP/1.1\r\n\r\n'), Buffer.alloc(100000 - 22, 'b')]);
      for (let i = 0; i < body.length; i += 9999) await c.write(body.subarray(i, i + 9999));
      await c.write('GET /real HTTP/1.1\r\n\r\n');
      assert.equal((await c.read()).status, 403);
      await sleep(100);
      assert.equal(calls, 2);
      assert.equal(c.pending.length, 0);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});

describe('pipelining without reading the answers (HttpServer)', () => {
  it('the engine stops reading requests while answers pile up unread: memory stays bounded', { timeout: 30_000 }, async () => {
    let maxQueued = 0;
    let served = 0;
    const answer = Buffer.alloc(16 * 1024, 'r');
    const e = await startEngine((req, res) => {
      served++;
      maxQueued = Math.max(maxQueued, req.socket?.writableLength ?? 0);
      res.send(200, { 'Content-Length': String(answer.length) }, answer);
    });
    try {
      const c = await RawConnection.connect(e.port);
      const count = 2000; // 32 MB of answers
      c.socket.pause(); // a client that sends and does not read
      c.socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'.repeat(count)));
      await sleep(1500);
      assert.ok(served < count, `served all ${count} requests without the client reading`);
      assert.ok(maxQueued < 4 * 1024 * 1024, `${maxQueued} bytes of answers queued in memory`);
      c.socket.resume();
      for (let i = 0; i < count; i++) assert.equal((await c.read()).body.length, answer.length);
      assert.equal(served, count);
      c.close();
    } finally {
      await e.http.close(100);
    }
  });
});

describe('a client that goes away before the handler reads the body (HttpServer)', () => {
  for (const how of ['reset', 'half-close', 'close'] as const) {
    it(`${how} mid-body while the handler is busy: the handler sees an error, the server does not crash`, async () => {
      let seen: unknown;
      let aborted = false;
      const e = await startEngine(async (req, res) => {
        req.signal.addEventListener('abort', () => (aborted = true));
        await sleep(300); // e.g. waiting for a session lock: no one listens to the body yet
        try {
          for await (const _ of req.body) void _;
        } catch (err) {
          seen = err;
          return res.destroy();
        }
        res.send(200, { 'Content-Length': '0' });
      });
      try {
        const c = await RawConnection.connect(e.port);
        await c.write('PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
        await sleep(50);
        if (how === 'reset') c.socket.resetAndDestroy();
        else if (how === 'half-close') c.socket.end();
        else c.socket.destroy();
        await sleep(500);
        assert.ok(seen instanceof Error, 'reading the body failed');
        assert.ok(aborted, 'the request signal was aborted');
        assert.equal(e.http.connectionCount, 0);
      } finally {
        await e.http.close(100);
      }
    });
  }
});
