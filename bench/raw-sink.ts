/**
 * The baseline of the benchmark: the least a durable upload receiver can do. It reads chunks framed
 * as an 8-byte big-endian length followed by the bytes, writes each chunk to the file at its offset
 * as it arrives, fdatasyncs once per chunk and answers a 1-byte ack (0x06). A zero length ends the
 * upload.
 *
 * - `--file <path>`: one TCP connection on 127.0.0.1, one file; the sink exits when the upload ends.
 *   Synchronous fs calls on purpose: with one connection there is nothing else for the loop to do,
 *   and it is the cheapest path from socket to disk that Node offers. With `--record <dir>` it also
 *   writes a small record per chunk the way the server does (temp file, write, fsync, close, rename,
 *   fsync the folder) before the ack, so both sides pay the same fsync policy.
 * - `--dir <dir>`: any number of connections at once, one file per connection: the first frame of
 *   a connection is the file's name (in `<dir>`), the chunks follow. Asynchronous fs calls, so the
 *   writes and syncs of the connections overlap as the server's do. Runs until it is killed.
 *
 * Usage: `node dist/bench/raw-sink.js --file <path> [--record <dir>]` or `--dir <dir>`; prints `{"port":N}`.
 */
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { basename, join } from 'node:path';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

const ACK = Buffer.from([0x06]);

/** What the frames of a connection carry, in order. */
type FramePart =
  /** A frame begins: `length` bytes follow (0: the upload ends). */
  | { readonly kind: 'start'; readonly length: number }
  /** Bytes of the current frame; `last` when they complete it. */
  | { readonly kind: 'bytes'; readonly data: Buffer; readonly last: boolean };

/** Splits a connection's bytes into frames (8-byte big-endian length, then the bytes), as they arrive. */
class FrameDecoder {
  private remaining = 0;
  private header = Buffer.alloc(0);

  /** The parts of frames that `data` carries (views into it, never copies). */
  *push(data: Buffer): Generator<FramePart> {
    while (data.length > 0) {
      if (this.remaining === 0) {
        const need = 8 - this.header.length;
        this.header = Buffer.concat([this.header, data.subarray(0, need)]);
        data = data.subarray(need);
        if (this.header.length < 8) return;
        this.remaining = Number(this.header.readBigUInt64BE(0));
        this.header = Buffer.alloc(0);
        yield { kind: 'start', length: this.remaining };
        continue;
      }
      const take = Math.min(this.remaining, data.length);
      this.remaining -= take;
      yield { kind: 'bytes', data: data.subarray(0, take), last: this.remaining === 0 };
      data = data.subarray(take);
    }
  }
}

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

/** `--file`: one connection, one file, synchronous writes; exits when the upload ends. */
function serveOne(server: net.Server, file: string, recordDir: string | undefined): void {
  const fd = fs.openSync(file, 'w', 0o600);
  let offset = 0;
  server.on('connection', (socket) => {
    server.close();
    const frames = new FrameDecoder();
    socket.on('data', (data: Buffer) => {
      try {
        for (const part of frames.push(data)) {
          if (part.kind === 'start') {
            if (part.length > 0) continue;
            fs.closeSync(fd);
            socket.end(ACK);
            return;
          }
          let done = 0;
          while (done < part.data.length) done += fs.writeSync(fd, part.data, done, part.data.length - done, offset + done);
          offset += part.data.length;
          if (part.last) {
            fs.fdatasyncSync(fd);
            if (recordDir) writeRecord(recordDir, offset);
            socket.write(ACK);
          }
        }
      } catch (err) {
        fail(socket, err);
      }
    });
  });
}

/** Writes all of `data` at `position`, looping over short writes. */
async function writeAt(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * `--dir`: one connection's upload. The socket is read through its async iterator, so it is not
 * read while a write or sync is under way (backpressure, as the server has).
 */
async function receive(socket: net.Socket, dir: string): Promise<void> {
  const frames = new FrameDecoder();
  let name: Buffer[] | undefined = [];
  let fh: FileHandle | undefined;
  let offset = 0;
  try {
    for await (const data of socket as AsyncIterable<Buffer>) {
      for (const part of frames.push(data)) {
        if (name !== undefined) {
          if (part.kind === 'bytes') name.push(part.data);
          if (part.kind === 'bytes' && part.last) {
            fh = await open(join(dir, basename(Buffer.concat(name).toString())), 'w', 0o600);
            name = undefined;
          }
          continue;
        }
        if (part.kind === 'start') {
          if (part.length > 0) continue;
          await fh!.close();
          fh = undefined;
          socket.end(ACK);
          return;
        }
        await writeAt(fh!, part.data, offset);
        offset += part.data.length;
        if (part.last) {
          await fh!.datasync();
          socket.write(ACK);
        }
      }
    }
  } finally {
    await fh?.close();
  }
}

function fail(socket: net.Socket, err: unknown): void {
  process.stderr.write(`raw-sink: ${(err as Error).stack ?? String(err)}\n`);
  socket.destroy();
  process.exitCode = 1;
}

const file = arg('--file');
const dir = arg('--dir');
if ((file === undefined) === (dir === undefined)) {
  process.stderr.write('usage: raw-sink --file <path> [--record <dir>] | --dir <dir>\n');
  process.exit(2);
}
const server = net.createServer({ noDelay: true });
if (file !== undefined) serveOne(server, file, arg('--record'));
else {
  server.on('connection', (socket) => {
    receive(socket, dir!).catch((err: unknown) => fail(socket, err));
  });
}
server.on('connection', (socket) => socket.on('error', () => undefined));
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
