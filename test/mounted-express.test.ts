import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import { createNodeHttpHandler } from '../src/http/node-adapter.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { BitsServer } from '../src/server/bits-server.js';
import { parseConfig } from '../src/server/config.js';
import { StateDirInUseError } from '../src/store/fs/state-dir-lock.js';
import { RawConnection } from './helpers/raw-http.js';
import type { RawResponse } from './helpers/raw-http.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';

/** A request as a proxy that cannot pass `BITS_POST` sends it: `POST` with the override header. */
function overridden(path: string, headers: Record<string, string>, body: Buffer = Buffer.alloc(0)): Buffer {
  const lines = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'X-HTTP-Method-Override: BITS_POST'];
  for (const [k, v] of Object.entries({ 'Content-Length': String(body.length), ...headers })) lines.push(`${k}: ${v}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

describe('mounted mode: BitsServer.start() and an express app with a path prefix', () => {
  let root: string;
  let uploads: string;
  let bits: BitsServer;
  let http: Server;
  let port: number;
  const lines: Record<string, unknown>[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'bits-mounted-'));
    // (not created beforehand: start() makes the vdir folders)
    uploads = join(root, 'uploads');
    const config = parseConfig(
      { stateDir: join(root, 'state'), vdirs: [{ path: '/bits/up', directory: uploads, downloadEnabled: true }] },
      root,
    );
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    bits = new BitsServer(config, { logger: pino({ level: 'info' }, sink) });
    await bits.start();
    const app = express();
    app.use('/bits', createNodeHttpHandler(bits.handle, { badRequest: bits.badRequest }));
    http = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => http.once('listening', () => resolve()));
    port = (http.address() as AddressInfo).port;
  });

  after(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
    await bits.stop();
    await rm(root, { recursive: true, force: true });
  });

  const send = async (bytes: Buffer): Promise<RawResponse> => {
    const c = await RawConnection.connect(port);
    return c.write(bytes).then(() => c.read()).finally(() => c.close());
  };

  it('start() creates the vdir folder and holds the state directory', async () => {
    assert.ok((await stat(uploads)).isDirectory());
    const second = new BitsServer(bits.config, { logger: pino({ level: 'silent' }) });
    await assert.rejects(second.start(), StateDirInUseError);
  });

  it('Create-Session, Fragments and Close-Session under the prefix, as POST + X-HTTP-Method-Override', async () => {
    const data = randomBytes(70_000);
    const path = '/bits/up/mounted.bin';
    const created = await send(overridden(path, { 'BITS-Packet-Type': 'Create-Session', 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID }));
    assertAck(created);
    const id = created.headers['bits-session-id']!;
    const first = await send(
      overridden(path, { 'BITS-Packet-Type': 'Fragment', 'BITS-Session-Id': id, 'Content-Range': 'bytes 0-39999/70000' }, data.subarray(0, 40_000)),
    );
    assertAck(first);
    assert.equal(first.headers['bits-received-content-range'], '40000');
    const second = await send(
      overridden(path, { 'BITS-Packet-Type': 'Fragment', 'BITS-Session-Id': id, 'Content-Range': 'bytes 40000-69999/70000' }, data.subarray(40_000)),
    );
    assert.equal(second.headers['bits-received-content-range'], '70000');
    assertAck(await send(overridden(path, { 'BITS-Packet-Type': 'Close-Session', 'BITS-Session-Id': id })));
    assert.deepEqual(await readFile(join(uploads, 'mounted.bin')), data);
    // The log line names the full path and the vdir, prefix included.
    const closeLine = lines.find((l) => l['packet'] === 'Close-Session');
    assert.equal(closeLine?.['url'], path);
    assert.equal(closeLine?.['vdir'], '/bits/up');
    assert.equal(closeLine?.['committed'], true);
  });

  it('a GET under the prefix downloads the uploaded file', async () => {
    const res = await send(Buffer.from('GET /bits/up/mounted.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-9\r\n\r\n'));
    assert.equal(res.status, 206);
    assert.deepEqual(res.body, (await readFile(join(uploads, 'mounted.bin'))).subarray(0, 10));
  });

  it('a 20-digit Content-Length is refused by the bounded parser, as on the engine (400 + 0x80070057)', async () => {
    const res = await send(overridden('/bits/up/long.bin', { 'BITS-Packet-Type': 'Ping', 'Content-Length': '00000000000000000000' }));
    assertErr(res, 400, '0x80070057');
  });
});
