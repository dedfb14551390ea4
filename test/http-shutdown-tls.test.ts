// Graceful shutdown of the HTTP engine, the TLS listener, and the node:http adapter behind a proxy
// that rewrites BITS_POST into POST + X-HTTP-Method-Override.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createNodeHttpHandler } from '../src/http/node-adapter.js';
import { HttpServer } from '../src/http/server.js';
import type { HttpHandler } from '../src/http/types.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { assertAck } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { SocketReader } from './helpers/socket-reader.js';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('graceful shutdown (BitsServer)', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  it('stops accepting, closes idle connections at once, lets an in-flight fragment finish and Ack', async () => {
    const data = randomBytes(200_000);
    const id = await t.createSession('/up/grace.bin');
    const idle = await t.connect();
    await idle.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin' }));
    assertAck(await idle.read());

    const busy = await t.connect();
    const req = bitsRequestBytes(fragmentRequest('/up/grace.bin', id, 0, data, data.length));
    const half = req.length >> 1;
    await busy.write(req.subarray(0, half));
    await sleep(50);

    const startedClose = Date.now();
    const closing = t.server.close(10_000);
    let closeDone = false;
    void closing.then(() => (closeDone = true));
    // "At once": while the shutdown still waits for the fragment, whose second half is not sent yet.
    assert.ok(await idle.closed(5000), 'the idle keep-alive connection is closed at once');
    assert.equal(closeDone, false, 'the idle connection was closed only when the shutdown ended');
    assert.ok(await refused(t.port), 'new connections are refused');

    await busy.write(req.subarray(half));
    const res = await busy.read();
    assertAck(res);
    assert.equal(res.headers['bits-received-content-range'], String(data.length));
    assert.equal(res.headers['connection'], 'close');
    assert.ok(await busy.closed(2000));
    await closing;
    assert.ok(Date.now() - startedClose < 5000, 'close() did not wait for the grace period');
    idle.close();
    busy.close();
  });
});

describe('graceful shutdown (HttpServer)', () => {
  const logger = pino({ level: 'silent' });

  it('drops a stalled request when the grace period ends', { timeout: 20_000 }, async () => {
    let aborted = false;
    const http = new HttpServer({
      logger,
      handler: async (req, res) => {
        req.signal.addEventListener('abort', () => (aborted = true));
        for await (const _ of req.body) void _;
        res.send(200, { 'Content-Length': '0' });
      },
    });
    const { port } = await http.listen(0, '127.0.0.1');
    const c = await RawConnection.connect(port);
    await c.write('PUT / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc');
    await sleep(50);
    const started = Date.now();
    await http.close(400);
    const ms = Date.now() - started;
    assert.ok(ms >= 350 && ms < 2000, `${ms} ms`);
    assert.ok(await c.closed(1000));
    assert.ok(aborted);
    assert.equal(http.connectionCount, 0);
    c.close();
  });

  it('a shutdown while an unread body drains does not start the next pipelined request', { timeout: 20_000 }, async () => {
    const seen: string[] = [];
    const http = new HttpServer({
      logger,
      handler: (req, res) => {
        seen.push(req.path);
        res.send(403, { 'Content-Length': '0' });
      },
    });
    const { port } = await http.listen(0, '127.0.0.1');
    const c = await RawConnection.connect(port);
    await c.write('PUT /first HTTP/1.1\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(500));
    const res = await c.read();
    assert.equal(res.status, 403);
    const closing = http.close(3000);
    await sleep(50);
    await c.write('y'.repeat(500) + 'GET /second HTTP/1.1\r\n\r\n');
    assert.ok(await c.closed(3000));
    await closing;
    assert.deepEqual(seen, ['/first']);
    assert.equal(c.pending.length, 0);
    c.close();
  });

  it('an idle connection whose client never closes does not hold close() for the grace period', { timeout: 20_000 }, async () => {
    const http = new HttpServer({ logger, handler: (_req, res) => res.send(200, { 'Content-Length': '0' }) });
    const { port } = await http.listen(0, '127.0.0.1');
    // allowHalfOpen: when the server ends, this client keeps its side open and never ends it
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => s.once('connect', r));
    const got = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString('latin1'))));
    s.write('GET / HTTP/1.1\r\n\r\n');
    assert.match(await got, /^HTTP\/1\.1 200 /);
    const started = Date.now();
    await http.close(10_000);
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
    assert.equal(http.connectionCount, 0);
    s.destroy();
  });
});

/** Reads responses off a TLS socket (Content-Length framing). */
function tlsReader(socket: tls.TLSSocket): () => Promise<{ status: number; headers: Record<string, string> }> {
  const reader = new SocketReader(socket);
  return async () => {
    const { statusLine, status, headers } = await reader.response({ timeoutMs: 5000 });
    assert.ok(/^HTTP\/1\.1 (\d{3}) /.test(statusLine), statusLine);
    return { status, headers };
  };
}

describe('TLS listener (BitsServer)', () => {
  let t: TestServer;
  let dir: string;
  let cert: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-tls-'));
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    cert = await readFile(certPath);
    t = await startServer({ config: { tls: { cert: certPath, key: keyPath } } });
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves BITS Ping (and pipelined requests, kept alive) over tls.connect', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, ca: cert, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    assert.ok(socket.authorized);
    const read = tlsReader(socket);
    socket.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId: '{T1}' }));
    const first = await read();
    assert.equal(first.status, 200);
    assert.equal(first.headers['bits-packet-type'], 'Ack');
    assert.equal(first.headers['bits-session-id'], '{T1}');
    socket.write(Buffer.concat([bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId: '{T2}' }), bitsRequestBytes({ type: 'Ping', path: '/up/a.bin', sessionId: '{T3}' })]));
    assert.equal((await read()).headers['bits-session-id'], '{T2}');
    assert.equal((await read()).headers['bits-session-id'], '{T3}');
    socket.destroy();
  });

  it('does not speak plain HTTP on the TLS port', async () => {
    const c = await RawConnection.connect(t.port);
    await c.write(bitsRequestBytes({ type: 'Ping', path: '/up/a.bin' }));
    assert.ok(await c.closed(3000));
    assert.ok(!/^HTTP\/1\.1 200/.test(c.pending.toString('latin1')));
    c.close();
  });

  it('close() is not held up by a client that never finishes the TLS handshake', { timeout: 20_000 }, async () => {
    const key = await readFile(join(dir, 'key.pem'));
    const http = new HttpServer({ handler: (_req, res) => res.send(200, { 'Content-Length': '0' }), logger: pino({ level: 'silent' }), tls: { cert, key } });
    const { port } = await http.listen(0, '127.0.0.1');
    const c = await RawConnection.connect(port); // TCP only, no ClientHello
    await sleep(50);
    // Held up, close() would wait for the TLS handshake timeout (120 s), past the test's timeout.
    await http.close(300);
    assert.ok(await c.closed(1000));
    c.close();
  });

  it('a TLS handshake that completes during a shutdown gets a closed connection, not a kept-alive one', { timeout: 20_000 }, async () => {
    const key = await readFile(join(dir, 'key.pem'));
    const handler: HttpHandler = async (req, res) => {
      for await (const _ of req.body) void _;
      res.send(200, { 'Content-Length': '0' });
    };
    const http = new HttpServer({ handler, logger: pino({ level: 'silent' }), tls: { cert, key } });
    const { port } = await http.listen(0, '127.0.0.1');
    // an in-flight request keeps close() in its grace period
    const busy = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
    await new Promise((r) => busy.once('secureConnect', r));
    const readBusy = tlsReader(busy);
    busy.write('PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc');
    const raw = await RawConnection.connect(port); // TCP accepted before the shutdown…
    await sleep(50);
    const closing = http.close(10_000);
    let closeDone = false;
    void closing.then(() => (closeDone = true));
    // …and the handshake done after it, over the same TCP connection
    const late = tls.connect({ socket: raw.socket, ca: cert, servername: 'localhost' });
    late.on('error', () => undefined);
    await new Promise((r) => late.once('secureConnect', r));
    await new Promise<void>((r) => late.once('close', () => r()));
    assert.equal(closeDone, false, 'the late connection lived until the shutdown ended');
    busy.write('defghij');
    const res = await readBusy();
    assert.equal(res.status, 200);
    assert.equal(res.headers['connection'], 'close');
    await closing;
    busy.destroy();
    raw.close();
  });

  it('hands the handler encrypted: true (HttpServer)', async () => {
    let encrypted: boolean | undefined;
    const key = await readFile(join(dir, 'key.pem'));
    const handler: HttpHandler = (req, res) => {
      encrypted = req.encrypted;
      res.send(200, { 'Content-Length': '0' });
    };
    const http = new HttpServer({ handler, logger: pino({ level: 'silent' }), tls: { cert, key } });
    const { port } = await http.listen(0, '127.0.0.1');
    const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
    const read = tlsReader(socket);
    socket.write('BITS_POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n');
    assert.equal((await read()).status, 200);
    assert.equal(encrypted, true);
    socket.destroy();
    await http.close(100);
  });
});

describe('node:http adapter with X-HTTP-Method-Override', () => {
  let t: TestServer;
  let proxy: ReturnType<typeof createServer>;
  let base: string;
  before(async () => {
    t = await startServer();
    proxy = createServer(createNodeHttpHandler(t.server.handle, { badRequest: t.server.badRequest }));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  after(async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    await t.stop();
  });

  const post = (path: string, headers: Record<string, string>, body?: Buffer): Promise<Response> =>
    fetch(base + path, { method: 'POST', headers: { 'X-HTTP-Method-Override': 'BITS_POST', ...headers }, body });

  it('creates a session, uploads fragments and closes it', async () => {
    const data = randomBytes(100_000);
    const created = await post('/up/proxied.bin', { 'BITS-Packet-Type': 'Create-Session', 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, 'Content-Name': 'proxied.bin' });
    assert.equal(created.status, 200);
    assert.equal(created.headers.get('bits-packet-type'), 'Ack');
    const id = created.headers.get('bits-session-id');
    assert.ok(id);
    for (const [first, last] of [[0, 59_999], [60_000, 99_999]] as const) {
      const res = await post('/up/proxied.bin', { 'BITS-Packet-Type': 'Fragment', 'BITS-Session-Id': id, 'Content-Range': `bytes ${first}-${last}/${data.length}` }, data.subarray(first, last + 1));
      assert.equal(res.status, 200, JSON.stringify(Object.fromEntries(res.headers)));
      assert.equal(res.headers.get('bits-received-content-range'), String(last + 1));
    }
    const closed = await post('/up/proxied.bin', { 'BITS-Packet-Type': 'Close-Session', 'BITS-Session-Id': id });
    assert.equal(closed.status, 200);
    assert.deepEqual(await readFile(join(t.uploads, 'proxied.bin')), data);
  });

  it('a plain POST without the override is not a BITS request (405)', async () => {
    const res = await fetch(base + '/up/x.bin', { method: 'POST', headers: { 'BITS-Packet-Type': 'Ping' } });
    assert.equal(res.status, 405);
  });

  it('20: refuses the Content-Lengths the engine refuses, with the same answer', async () => {
    const proxyPort = (proxy.address() as AddressInfo).port;
    const ask = async (port: number, request: string): Promise<[number, string | undefined]> => {
      const c = await RawConnection.connect(port);
      try {
        await c.write(request);
        const res = await c.read();
        return [res.status, res.headers['bits-error-code']];
      } finally {
        c.close();
      }
    };
    // 20 digits: a value node:http itself accepts, beyond the engine's bounded parser
    for (const cl of ['00000000000000000000', '000000000000000000000000000000000000005']) {
      const ping = (method: string): string =>
        `${method} /up/a.bin HTTP/1.1\r\nHost: x\r\nX-HTTP-Method-Override: BITS_POST\r\nBITS-Packet-Type: Ping\r\nContent-Length: ${cl}\r\n\r\n`;
      assert.deepEqual(await ask(t.port, ping('BITS_POST')), [400, '0x80070057'], `engine, Content-Length ${cl}`);
      assert.deepEqual(await ask(proxyPort, ping('POST')), [400, '0x80070057'], `adapter, Content-Length ${cl}`);
      const get = `GET /up/a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\n\r\n`;
      assert.deepEqual(await ask(t.port, get), [400, undefined], `engine GET, Content-Length ${cl}`);
      assert.deepEqual(await ask(proxyPort, get), [400, undefined], `adapter GET, Content-Length ${cl}`);
    }
  });

  it('a BITS error comes back with its BITS-Error-Code', async () => {
    const res = await post('/up/x.bin', { 'BITS-Packet-Type': 'Ping' }, Buffer.from('unexpected body'));
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('bits-error-code'), '0x80070057');
  });
});
