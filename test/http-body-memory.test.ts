// The memory a request body costs while its handler is busy (waiting for a lock, or for the disk):
// the engine holds at most its body high-water mark (64 KiB) and one socket read, and leaves the
// rest of the body in the kernel's socket buffer, on every connection at once.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import type { HttpHandler } from '../src/http/types.js';
import { RawConnection } from './helpers/raw-http.js';

const KiB = 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Every byte of a body, in order. */
async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('request bodies of busy handlers (HttpServer)', () => {
  it('20 connections whose handlers do not read hold at most 64 KiB and a socket read each, not their 4 MiB bodies; every body then arrives whole', { timeout: 60_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const readBeforeRelease: number[] = [];
    const handler: HttpHandler = async (req, res) => {
      await released;
      readBeforeRelease.push(req.socket?.bytesRead ?? 0);
      const body = JSON.stringify({ sha: sha(await readAll(req.body as AsyncIterable<Buffer>)) });
      res.send(200, { 'Content-Length': String(Buffer.byteLength(body)) }, body);
    };
    const http = new HttpServer({ handler, logger: pino({ level: 'silent' }) });
    const { port } = await http.listen(0, '127.0.0.1');
    const connections: RawConnection[] = [];
    try {
      const data = randomBytes(4 * 1024 * KiB);
      for (let i = 0; i < 20; i++) {
        const c = await RawConnection.connect(port);
        connections.push(c);
        c.socket.write(`PUT /f${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${data.length}\r\n\r\n`);
        c.socket.write(data);
      }
      // (time for the server to read whatever it is going to read while its handlers wait)
      await sleep(1000);
      release();
      for (const c of connections) assert.equal(JSON.parse((await c.read({ timeoutMs: 30_000 })).body.toString()).sha, sha(data));
      assert.equal(readBeforeRelease.length, 20);
      // the head, 64 KiB held for the handler and one more read (up to 64 KiB), and what Node's socket
      // reads ahead before it stops (its 16 KiB high-water mark and one read)
      for (const n of readBeforeRelease) assert.ok(n < 256 * KiB, `${n} bytes read from a socket while its handler was not reading`);
    } finally {
      for (const c of connections) c.close();
      await http.close(100);
    }
  });
});
