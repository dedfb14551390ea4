// Handlers that answer from inside the engine's own events: synchronously from the request's abort
// signal when the client sends FIN mid-body, or that destroy their connection on purpose (a
// superseded request). The engine must neither throw inside a socket event nor log these as
// handler failures.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { HttpServer } from '../src/http/server.js';
import type { HttpHandler } from '../src/http/types.js';

interface Engine {
  http: HttpServer;
  port: number;
  lines: { level: number; msg?: string }[];
}

async function startEngine(handler: HttpHandler): Promise<Engine> {
  const lines: { level: number; msg?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const http = new HttpServer({ handler, logger });
  const { port } = await http.listen(0, '127.0.0.1');
  return { http, port, lines };
}

/** Sends `bytes`, half-closes, and resolves with everything the server sent before closing. */
async function exchange(port: number, bytes: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(bytes);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

describe('HTTP engine: answers from inside its events', () => {
  const engines: Engine[] = [];
  after(async () => {
    for (const e of engines) await e.http.close(100);
  });

  it('a handler answering synchronously from the abort of a FIN mid-body: answered, and the server lives on', async () => {
    const e = await startEngine((req, res) => {
      req.body.resume();
      req.signal.addEventListener('abort', () => res.send(400, { 'Content-Length': '0' }));
      return new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
    });
    engines.push(e);
    // keep-alive off, 100 bytes promised, 5 sent, then FIN
    const answer = await exchange(e.port, 'POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 100\r\n\r\nhello');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    // the same server still answers a new connection
    const next = await exchange(e.port, 'POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 100\r\n\r\nhi');
    assert.match(next, /^HTTP\/1\.1 400 /);
  });

  it('a handler that destroys its own connection is not logged as a failed handler', async () => {
    let destroyed = false;
    const e = await startEngine(async (req, res) => {
      req.body.resume();
      res.destroy();
      destroyed = true;
    });
    engines.push(e);
    const answer = await exchange(e.port, 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(destroyed, true);
    assert.equal(answer, '', 'nothing is written to a connection the handler destroyed');
    await sleep(50);
    const failures = e.lines.filter((l) => l.msg === 'request handler failed');
    assert.deepEqual(failures, []);
  });
});
