/**
 * A crash-dump intake service: the server application of an upload-reply vdir notified by value.
 * Each completed upload arrives as the body of a POST; the service stores it under a new ticket id
 * and answers with the ticket, which the BITS client receives as its reply.
 *
 *   node dist/examples/crash-dump-intake.js --port 9090 --dir ./data/dumps
 *   bits serve --root ./data/incoming --notify-url http://127.0.0.1:9090/intake --notify-type by-value
 *
 * Windows: Start-BitsTransfer -TransferType UploadReply -Source C:\app.dmp \
 *          -Destination http://server:8080/app.dmp   (the reply file holds "ticket=…")
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '9090' }, host: { type: 'string', default: '127.0.0.1' }, dir: { type: 'string', default: './data/dumps' } },
});
const dir = values.dir!;
await mkdir(dir, { recursive: true });

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url?.startsWith('/intake')) {
    res.writeHead(404, { 'Content-Length': '0' }).end();
    return;
  }
  const original = req.headers['bits-original-request-url'];
  const ticket = randomUUID();
  const tmp = join(dir, `.${ticket}.part`);
  // Stream the dump to disk (never into memory), then publish it under its ticket.
  pipeline(req, createWriteStream(tmp))
    .then(() => rename(tmp, join(dir, `${ticket}.dmp`)))
    .then(() => {
      const body = `ticket=${ticket}\n`;
      console.log(JSON.stringify({ ticket, from: original, bytes: req.headers['content-length'] }));
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(Buffer.byteLength(body)) }).end(body);
    })
    .catch((err: unknown) => {
      console.error('intake failed', err);
      // A 5xx is transient for BITS: the client resends the last fragment and we are asked again.
      if (!res.headersSent) res.writeHead(503, { 'Content-Length': '0' }).end();
    });
});
server.listen(Number(values.port), values.host, () => {
  console.log(JSON.stringify({ msg: 'crash-dump intake listening', port: (server.address() as { port: number }).port, dir }));
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => server.close(() => process.exit(0)));
