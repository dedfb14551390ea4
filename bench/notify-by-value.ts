// Upload-reply by value: a 1 GiB upload is streamed to the server application as the body of the
// notification, never buffered. Prints the server's peak RSS (target < 150 MB) and the rates.
import { createHash, randomFillSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peakRss, startChild, stopChild } from './child-process.js';
import { bitsUpload } from './upload-clients.js';

const MB = 1024 * 1024;
const SIZE = Number(process.env['BENCH_SIZE_MB'] ?? 1024) * MB;
const FRAGMENT = 8 * MB;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// The server application: hashes what it is sent, answers with the hash as the reply.
let received = 0;
let appHash = '';
let notifyMs = 0;
const app = http.createServer((req, res) => {
  const started = performance.now();
  const hash = createHash('sha256');
  req.on('data', (c: Buffer) => {
    received += c.length;
    hash.update(c);
  });
  req.on('end', () => {
    appHash = hash.digest('hex');
    notifyMs = performance.now() - started;
    res.writeHead(200, { 'Content-Length': String(appHash.length) }).end(appHash);
  });
});
await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
const appPort = (app.address() as AddressInfo).port;

const root = await mkdtemp(join(os.tmpdir(), 'bits-bench-notify-'));
const server = await startChild(
  CLI,
  ['serve', '--host', '127.0.0.1', '--port', '0', '--root', join(root, 'up'), '--state-dir', join(root, 'state'),
    '--notify-url', `http://127.0.0.1:${appPort}/intake`, '--notify-type', 'by-value', '--log-level', 'info'],
  (line) => line['msg'] === 'listening',
);
const pool = randomFillSync(Buffer.alloc(FRAGMENT));
const result = await bitsUpload(server.port, '/dump.bin', { total: SIZE, fragmentSize: FRAGMENT, chunk: (_o, n) => pool.subarray(0, n) });
const rss = peakRss(server.pid);
await stopChild(server);
await new Promise((r) => app.close(r));
await rm(root, { recursive: true, force: true });

const ok = received === SIZE && appHash === result.sha256;
const mib = SIZE / MB;
console.log(`upload-reply by value, ${mib} MiB in 8 MiB fragments`);
console.log(`  whole exchange (upload + notification + close): ${(mib / (result.ms / 1000)).toFixed(1)} MiB/s`);
console.log(`  notification body to the application:           ${(mib / (notifyMs / 1000)).toFixed(1)} MiB/s`);
console.log(`  application received ${received} bytes, sha256 ${ok ? 'matches' : 'DIFFERS'}`);
console.log(`  server peak RSS (VmHWM): ${rss === undefined ? 'n/a' : (rss / MB).toFixed(1) + ' MiB'}  (target < 150 MiB: ${rss !== undefined && rss < 150 * MB ? 'PASS' : 'MISS'})`);
if (!ok) process.exit(1);
