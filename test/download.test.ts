import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import { serveFile } from '../src/server/serve-file.js';
import { SocketReader } from './helpers/socket-reader.js';

/** One response as read off the wire. */
interface RawResponse {
  status: number;
  /** Lowercase names. */
  headers: Record<string, string>;
  body: Buffer;
}

/** A raw HTTP/1.1 client connection: writes request text, reads responses framed by Content-Length. */
class RawConnection {
  private readonly reader: SocketReader;

  private constructor(readonly socket: net.Socket) {
    this.reader = new SocketReader(socket);
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a request: `lines` are the request line and headers, without the final empty line. */
  send(...lines: string[]): void {
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  }

  /** Reads one response; `head` means the request was HEAD (no body follows whatever Content-Length says). */
  async read(head = false): Promise<RawResponse> {
    const { statusLine, status, headers, rawHeaders, body } = await this.reader.response({ head });
    assert.ok(/^HTTP\/1\.1 (\d{3}) /.test(statusLine), `bad status line: ${statusLine}`);
    const names = new Set<string>();
    for (const [name] of rawHeaders) {
      assert.equal(names.has(name), false, `repeated header ${name}`);
      names.add(name);
    }
    const length = head ? 0 : Number(headers['content-length'] ?? 'NaN');
    assert.ok(Number.isSafeInteger(length), 'response without Content-Length');
    return { status, headers, body };
  }

  /** Bytes received beyond the responses read so far. */
  get pending(): number {
    return this.reader.pendingLength;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One request on a fresh connection. */
async function request(port: number, method: string, target: string, extra: string[] = []): Promise<RawResponse> {
  const conn = await RawConnection.open(port);
  try {
    conn.send(`${method} ${target} HTTP/1.1`, 'Host: test', ...extra);
    return await conn.read(method === 'HEAD');
  } finally {
    conn.close();
  }
}

/** A part of a multipart/byteranges body. */
interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Strictly parses a multipart/byteranges body: it must start with the first delimiter, every part's
 * length comes from its Content-Range, and the close delimiter must end the body exactly.
 */
function parseMultipart(body: Buffer, boundary: string): Part[] {
  const parts: Part[] = [];
  const delimiter = `--${boundary}`;
  let pos = 0;
  const expect = (s: string): void => {
    assert.equal(body.toString('latin1', pos, pos + s.length), s, `expected ${JSON.stringify(s)} at ${pos}`);
    pos += s.length;
  };
  expect(`${delimiter}\r\n`);
  for (;;) {
    const headEnd = body.indexOf('\r\n\r\n', pos, 'latin1');
    assert.ok(headEnd !== -1, 'part head not terminated');
    const headers: Record<string, string> = {};
    for (const line of body.toString('latin1', pos, headEnd).split('\r\n')) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    pos = headEnd + 4;
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '');
    assert.ok(m, `bad part Content-Range: ${headers['content-range']}`);
    const len = Number(m[2]) - Number(m[1]) + 1;
    parts.push({ headers, body: body.subarray(pos, pos + len) });
    pos += len;
    expect(`\r\n${delimiter}`);
    if (body.toString('latin1', pos, pos + 2) === '--') {
      expect('--\r\n');
      break;
    }
    expect('\r\n');
  }
  assert.equal(pos, body.length, 'bytes after the close delimiter');
  return parts;
}

describe('serveFile over the HTTP engine', () => {
  const SIZE = 1000;
  const LARGE = 20 * 1024 * 1024;
  let tmpDir: string;
  let server: HttpServer;
  let port: number;
  let small: Buffer;
  let large: Buffer;
  let lastModified: string;

  before(async () => {
    tmpDir = await mkdtemp(path.join(tmpdir(), 'bits-download-'));
    small = randomBytes(SIZE);
    large = randomBytes(LARGE);
    await writeFile(path.join(tmpDir, 'small.bin'), small);
    await writeFile(path.join(tmpDir, 'large.bin'), large);
    await writeFile(path.join(tmpDir, 'empty.bin'), Buffer.alloc(0));
    await mkdir(path.join(tmpDir, 'sub'));
    lastModified = new Date(Math.floor((await stat(path.join(tmpDir, 'small.bin'))).mtimeMs / 1000) * 1000).toUTCString();
    server = new HttpServer({
      logger: pino({ level: 'silent' }),
      handler: (req, res) => serveFile(req, res, path.join(tmpDir, req.path.slice(1))),
    });
    ({ port } = await server.listen(0, '127.0.0.1'));
  });

  after(async () => {
    await server.close(1000);
    await rm(tmpDir, { recursive: true, force: true });
  });

  it('HEAD gives the validators and Content-Length and no body', async () => {
    const conn = await RawConnection.open(port);
    try {
      conn.send('HEAD /small.bin HTTP/1.1', 'Host: test', 'Accept: */*', 'Accept-Encoding: identity');
      const r = await conn.read(true);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(SIZE));
      assert.equal(r.headers['last-modified'], lastModified);
      assert.match(r.headers['etag'] ?? '', /^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
      assert.equal(r.headers['accept-ranges'], 'bytes');
      assert.equal(r.headers['content-type'], 'application/octet-stream');
      assert.equal(r.headers['content-encoding'], undefined);
      // no body: the very next bytes on the connection are the next response's status line
      conn.send('GET /small.bin HTTP/1.1', 'Host: test', 'Range: bytes=0-0');
      const next = await conn.read();
      assert.equal(next.status, 206);
      assert.deepEqual(next.body, small.subarray(0, 1));
      assert.equal(next.headers['etag'], r.headers['etag']);
    } finally {
      conn.close();
    }
  });

  it('GET without Range sends the whole file with 200, never encoded', async () => {
    const r = await request(port, 'GET', '/small.bin', ['Accept-Encoding: gzip, deflate, br']);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(SIZE));
    assert.equal(r.headers['last-modified'], lastModified);
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers['content-encoding'], undefined);
    assert.deepEqual(r.body, small);
  });

  it('a single range gives 206 with Content-Range and the slice', async () => {
    const r = await request(port, 'GET', '/small.bin', ['Range: bytes=0-99']);
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 0-99/${SIZE}`);
    assert.equal(r.headers['content-length'], '100');
    assert.equal(r.headers['last-modified'], lastModified);
    assert.deepEqual(r.body, small.subarray(0, 100));

    const mid = await request(port, 'GET', '/small.bin', ['Range: bytes=123-456']);
    assert.equal(mid.status, 206);
    assert.equal(mid.headers['content-range'], `bytes 123-456/${SIZE}`);
    assert.deepEqual(mid.body, small.subarray(123, 457));
  });

  it('a suffix range gives the last bytes', async () => {
    const r = await request(port, 'GET', '/small.bin', ['Range: bytes=-10']);
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes ${SIZE - 10}-${SIZE - 1}/${SIZE}`);
    assert.equal(r.headers['content-length'], '10');
    assert.deepEqual(r.body, small.subarray(SIZE - 10));
  });

  it('an open range runs to the end; a last position past the end is clamped', async () => {
    const r = await request(port, 'GET', '/small.bin', ['Range: bytes=90-']);
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 90-${SIZE - 1}/${SIZE}`);
    assert.equal(r.headers['content-length'], String(SIZE - 90));
    assert.deepEqual(r.body, small.subarray(90));

    const clamped = await request(port, 'GET', '/small.bin', [`Range: bytes=900-${SIZE * 5}`]);
    assert.equal(clamped.status, 206);
    assert.equal(clamped.headers['content-range'], `bytes 900-${SIZE - 1}/${SIZE}`);
    assert.deepEqual(clamped.body, small.subarray(900));
  });

  it('the bytes unit is case-insensitive', async () => {
    const r = await request(port, 'GET', '/small.bin', ['Range: Bytes=5-9']);
    assert.equal(r.status, 206);
    assert.deepEqual(r.body, small.subarray(5, 10));
  });

  it('several ranges give multipart/byteranges with the parts in request order', async () => {
    for (const [spec, expected] of [
      ['0-9,20-29', [[0, 9], [20, 29]]],
      ['20-29,0-9', [[20, 29], [0, 9]]],
      ['0-4,2-6,-3', [[0, 4], [2, 6], [SIZE - 3, SIZE - 1]]],
    ] as const) {
      const r = await request(port, 'GET', '/small.bin', [`Range: bytes=${spec}`]);
      assert.equal(r.status, 206, spec);
      assert.equal(r.headers['content-range'], undefined);
      assert.equal(r.headers['last-modified'], lastModified);
      const m = /^multipart\/byteranges; boundary=([^\s;]+)$/.exec(r.headers['content-type'] ?? '');
      assert.ok(m, `content-type ${r.headers['content-type']}`);
      assert.equal(r.body.length, Number(r.headers['content-length']));
      assert.equal(r.body.toString('latin1', 0, 2), '--', 'body must start at the first boundary');
      const parts = parseMultipart(r.body, m[1]!);
      assert.equal(parts.length, expected.length);
      parts.forEach((part, i) => {
        const [a, b] = expected[i]!;
        assert.deepEqual(Object.keys(part.headers).sort(), ['content-range', 'content-type']);
        assert.equal(part.headers['content-type'], 'application/octet-stream');
        assert.equal(part.headers['content-range'], `bytes ${a}-${b}/${SIZE}`);
        assert.deepEqual(part.body, small.subarray(a, b + 1));
      });
    }
  });

  it('HEAD with several ranges announces the exact multipart length', async () => {
    const conn = await RawConnection.open(port);
    try {
      conn.send('HEAD /small.bin HTTP/1.1', 'Host: test', 'Range: bytes=0-9,20-29');
      const h = await conn.read(true);
      conn.send('GET /small.bin HTTP/1.1', 'Host: test', 'Range: bytes=0-9,20-29');
      const g = await conn.read();
      assert.equal(h.status, 206);
      assert.equal(g.status, 206);
      assert.equal(h.headers['content-length'], String(g.body.length));
    } finally {
      conn.close();
    }
  });

  it('an unsatisfiable range gives 416 with bytes */size', async () => {
    const r = await request(port, 'GET', '/small.bin', [`Range: bytes=${SIZE}-`]);
    assert.equal(r.status, 416);
    assert.equal(r.headers['content-range'], `bytes */${SIZE}`);
    assert.equal(r.headers['content-length'], '0');
    assert.equal(r.body.length, 0);

    const empty = await request(port, 'GET', '/empty.bin', ['Range: bytes=0-']);
    assert.equal(empty.status, 416);
    assert.equal(empty.headers['content-range'], 'bytes */0');
  });

  it('a malformed Range, another unit or too many ranges are ignored: 200 with the whole file', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `${i}-${i}`).join(',');
    for (const range of ['bytes=abc', 'bytes=1-2-3', 'bytes 0-9', 'items=0-9', `bytes=${many}`]) {
      const r = await request(port, 'GET', '/small.bin', [`Range: ${range}`]);
      assert.equal(r.status, 200, range);
      assert.equal(r.headers['content-range'], undefined, range);
      assert.equal(r.headers['content-length'], String(SIZE), range);
      assert.deepEqual(r.body, small, range);
    }
  });

  it('If-Range applies the Range only while it names the current file', async () => {
    const { headers } = await request(port, 'HEAD', '/small.bin');
    const etag = headers['etag']!;
    const matching = [etag, lastModified];
    const stale = ['"nope"', `W/${etag}`, new Date(Date.parse(lastModified) - 1000).toUTCString(), 'not a date'];
    for (const ifRange of matching) {
      const r = await request(port, 'GET', '/small.bin', ['Range: bytes=10-19', `If-Range: ${ifRange}`]);
      assert.equal(r.status, 206, ifRange);
      assert.deepEqual(r.body, small.subarray(10, 20));
    }
    for (const ifRange of stale) {
      const r = await request(port, 'GET', '/small.bin', ['Range: bytes=10-19', `If-Range: ${ifRange}`]);
      assert.equal(r.status, 200, ifRange);
      assert.equal(r.headers['content-range'], undefined);
      assert.deepEqual(r.body, small, ifRange);
    }
  });

  it('a missing file or a directory gives 404 with an empty body', async () => {
    for (const [method, target] of [
      ['GET', '/missing.bin'],
      ['HEAD', '/missing.bin'],
      ['GET', '/sub'],
      ['HEAD', '/sub'],
      ['GET', '/small.bin/x'],
    ] as const) {
      const r = await request(port, method, target);
      assert.equal(r.status, 404, `${method} ${target}`);
      assert.equal(r.headers['content-length'], '0');
      assert.equal(r.headers['etag'], undefined);
    }
  });

  it('an empty file gives 200 with Content-Length 0', async () => {
    const r = await request(port, 'GET', '/empty.bin');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '0');
    assert.equal(r.body.length, 0);
  });

  it('serves a 20 MB file intact (raw socket and fetch)', async () => {
    const want = createHash('sha256').update(large).digest('hex');
    const r = await request(port, 'GET', '/large.bin');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(LARGE));
    assert.equal(createHash('sha256').update(r.body).digest('hex'), want);

    const res = await fetch(`http://127.0.0.1:${port}/large.bin`);
    assert.equal(res.status, 200);
    const hash = createHash('sha256');
    for await (const chunk of res.body!) hash.update(chunk);
    assert.equal(hash.digest('hex'), want);

    const start = 7 * 1024 * 1024 + 3;
    const end = 15 * 1024 * 1024 - 5;
    const ranged = await fetch(`http://127.0.0.1:${port}/large.bin`, { headers: { Range: `bytes=${start}-${end}` } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes ${start}-${end}/${LARGE}`);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), large.subarray(start, end + 1));
  });

  it('answers two requests on one keep-alive connection', async () => {
    const conn = await RawConnection.open(port);
    try {
      conn.send('GET /small.bin HTTP/1.1', 'Host: test', 'Range: bytes=0-9');
      const first = await conn.read();
      assert.equal(first.status, 206);
      assert.equal(first.headers['connection'], undefined);
      assert.deepEqual(first.body, small.subarray(0, 10));
      conn.send('GET /small.bin HTTP/1.1', 'Host: test');
      const second = await conn.read();
      assert.equal(second.status, 200);
      assert.deepEqual(second.body, small);
      assert.equal(conn.pending, 0);
    } finally {
      conn.close();
    }
  });

  it('a client leaving mid-download does not disturb the server', async () => {
    const before = server.connectionCount; // idle keep-alive sockets of fetch may still be open
    const conn = await RawConnection.open(port);
    conn.send('GET /large.bin HTTP/1.1', 'Host: test');
    await new Promise<void>((resolve) => conn.socket.once('data', () => resolve()));
    conn.close();
    for (let i = 0; i < 100 && server.connectionCount > before; i++) await sleep(20);
    assert.ok(server.connectionCount <= before, 'the aborted connection was not cleaned up');
    const r = await request(port, 'GET', '/small.bin', ['Range: bytes=-5']);
    assert.equal(r.status, 206);
    assert.deepEqual(r.body, small.subarray(SIZE - 5));
  });
});
