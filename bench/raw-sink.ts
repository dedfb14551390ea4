/**
 * The baseline of the benchmark: the least a durable upload receiver can do. It accepts one TCP
 * connection on 127.0.0.1, reads chunks framed as an 8-byte big-endian length followed by the bytes,
 * writes each chunk to the file at its offset as it arrives, fdatasyncs once per chunk and answers a
 * 1-byte ack (0x06). With `--record <dir>` it also writes a small record per chunk the way the
 * server does (temp file, write, fsync, close, rename, fsync the folder) before the ack, so both
 * sides pay the same fsync policy. A zero length ends the upload; the sink then exits.
 *
 * Synchronous fs calls on purpose: with one connection there is nothing else for the loop to do,
 * and it is the cheapest path from socket to disk that Node offers.
 *
 * Usage: `node dist/bench/raw-sink.js --file <path> [--record <dir>]`; prints `{"port":N}`.
 */
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

const file = arg('--file');
if (!file) {
  process.stderr.write('usage: raw-sink --file <path> [--record <dir>]\n');
  process.exit(2);
}
const recordDir = arg('--record');
const ACK = Buffer.from([0x06]);

/** The server's record write, synchronously: temp, write, fsync, close, rename, fsync the folder. */
function writeRecord(dir: string, received: number): void {
  const path = join(dir, 'record.json');
  const tmp = `${path}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify({ received, updatedAt: Date.now() }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

const fd = fs.openSync(file, 'w', 0o600);
let offset = 0;
let remaining = 0;
let header = Buffer.alloc(0);

const server = net.createServer((socket) => {
  server.close();
  socket.setNoDelay(true);
  socket.on('data', (data: Buffer) => {
    try {
      while (data.length > 0) {
        if (remaining === 0) {
          const need = 8 - header.length;
          header = Buffer.concat([header, data.subarray(0, need)]);
          data = data.subarray(need);
          if (header.length < 8) return;
          remaining = Number(header.readBigUInt64BE(0));
          header = Buffer.alloc(0);
          if (remaining === 0) {
            fs.closeSync(fd);
            socket.end(ACK);
            return;
          }
          continue;
        }
        const take = Math.min(remaining, data.length);
        let done = 0;
        while (done < take) done += fs.writeSync(fd, data, done, take - done, offset + done);
        offset += take;
        remaining -= take;
        data = data.subarray(take);
        if (remaining === 0) {
          fs.fdatasyncSync(fd);
          if (recordDir) writeRecord(recordDir, offset);
          socket.write(ACK);
        }
      }
    } catch (err) {
      process.stderr.write(`raw-sink: ${(err as Error).stack ?? String(err)}\n`);
      socket.destroy();
      process.exitCode = 1;
    }
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
