/**
 * The baseline receiver of the client benchmark: a trivial HTTP sink for a plain `PUT` (what
 * `curl -T` sends). It reads the body, writes it to `<dir>/<last path segment>` as it arrives,
 * fdatasyncs once at the end, closes the file and answers 200 with an empty body. No protocol, no
 * record, no fsync per chunk: the least a receiver that keeps the bytes durably can do.
 *
 * Synchronous fs calls on purpose, as in bench/raw-sink.ts: with one upload at a time there is
 * nothing else for the loop to do. A `100-continue` expectation (curl sends one for large bodies) is
 * answered by Node's server itself.
 *
 * Usage: `node dist/bench/put-sink.js --dir <dir>`; prints `{"port":N}`.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';

const at = process.argv.indexOf('--dir');
const dir = at === -1 ? undefined : process.argv[at + 1];
if (!dir) {
  process.stderr.write('usage: put-sink --dir <dir>\n');
  process.exit(2);
}

/** Answers `status` with an empty body. */
function answer(res: http.ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': '0' });
  res.end();
}

/** Writes one PUT body to its file, fdatasyncs it once, and answers. */
function receive(req: http.IncomingMessage, res: http.ServerResponse, target: string): void {
  const fd = fs.openSync(target, 'w', 0o600);
  let offset = 0;
  let failed = false;
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    process.stderr.write(`put-sink: ${(err as Error).stack ?? String(err)}\n`);
    fs.closeSync(fd);
    req.destroy();
    process.exitCode = 1;
  };
  req.on('data', (chunk: Buffer) => {
    if (failed) return;
    try {
      for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done, offset + done);
      offset += chunk.length;
    } catch (err) {
      fail(err);
    }
  });
  req.on('error', fail);
  req.on('end', () => {
    if (failed) return;
    try {
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
    } catch (err) {
      fail(err);
      return;
    }
    answer(res, 200);
  });
}

const server = http.createServer((req, res) => {
  if (req.method !== 'PUT') {
    answer(res, 405);
    return;
  }
  const name = basename(new URL(req.url ?? '/', 'http://sink').pathname);
  if (name === '') {
    answer(res, 400);
    return;
  }
  receive(req, res, join(dir, name));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
