// Replies of server applications are bounded by maxReplySize, by value, by reference and from hooks;
// a reply over it, or one that fails part way, leaves nothing in the state directory. A hook's
// streamed reply is bounded in time too: by the notification deadline and by a superseding retry.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../src/server/config.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import { bitsRequestBytes } from './helpers/raw-http.js';
import type { TestServer } from './helpers/bits-server.js';
import { get, resolveReply, startApp } from './helpers/notify-app.js';
import type { TestApp } from './helpers/notify-app.js';
import type { RawResponse } from './helpers/raw-http.js';

const LIMIT = 1000;
/** What a session folder holds when no reply was stored. */
const NO_REPLY = ['data.bin', 'record.json'];

describe('reply size limit (maxReplySize)', () => {
  let app: TestApp;
  let t: TestServer;
  let bigFile: string;
  before(async () => {
    app = await startApp();
    const appUrl = `http://127.0.0.1:${app.port}/n`;
    const limited = { maxReplySize: LIMIT, notificationUrl: appUrl };
    t = await startServer({
      vdirs: [
        { path: '/val', directory: './val', notificationType: 'by-value', ...limited },
        { path: '/ref', directory: './ref', notificationType: 'by-reference', ...limited },
        { path: '/hook', directory: './hook', maxReplySize: LIMIT },
      ],
      hooks: {
        '/hook': {
          onUploadComplete: async (upload) => {
            const kind = (await readAll(upload.stream())).toString();
            if (kind === 'buffer') return { reply: Buffer.alloc(LIMIT + 1) };
            if (kind === 'string') return { reply: 'é'.repeat(LIMIT / 2 + 1) };
            if (kind === 'stream') return { reply: Readable.from([Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(600)]) };
            if (kind === 'file') return { reply: { file: bigFile } };
            return { reply: Buffer.alloc(LIMIT, 7) };
          },
        },
      },
    });
    bigFile = join(t.root, 'big-reply.bin');
    await writeFile(bigFile, randomBytes(5000));
  });
  after(async () => {
    await t?.stop();
    await app?.close();
  });
  beforeEach(() => {
    app.seen.length = 0;
  });

  async function readAll(stream: Readable): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  async function complete(path: string, data = Buffer.from('upload')): Promise<{ id: string; ack: RawResponse; resend: () => Promise<RawResponse> }> {
    const id = await t.createSession(path);
    const send = () => t.request(fragmentRequest(path, id, 0, data, data.length));
    return { id, ack: await send(), resend: send };
  }
  const sessionFiles = async (id: string) => (await readdir(join(t.stateDir, 'sessions', id.slice(1, -1)))).sort();
  const assertTooLarge = (ack: RawResponse) => assertErr(ack, 500, '0x80200020', '0x7');

  it('6: a by-value reply declared over the limit → 500 BG_E_TOO_LARGE context 0x7, nothing stored; the session stays usable', async () => {
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': String(LIMIT + 1) }).end(Buffer.alloc(LIMIT + 1)));
    const { id, ack, resend } = await complete('/val/declared.bin');
    assertTooLarge(ack);
    assert.equal(ack.headers['bits-reply-url'], undefined);
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
    // A reply of exactly the limit is taken.
    const exact = randomBytes(LIMIT);
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': String(LIMIT) }).end(exact));
    const again = await resend();
    assertAck(again);
    assert.deepEqual((await get(t.port, resolveReply(again.headers['bits-reply-url']!, '/val/declared.bin'))).body, exact);
  });

  it('6: a chunked by-value reply that grows past the limit is cut off and nothing is left', async () => {
    app.set((_s, res) => {
      res.writeHead(200);
      for (let i = 0; i < 5; i++) res.write(Buffer.alloc(600));
      res.end();
    });
    const { id, ack } = await complete('/val/chunked.bin');
    assertTooLarge(ack);
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
  });

  it('6: a by-value reply cut part way leaves no temp file behind', async () => {
    app.set((_s, res) => {
      res.writeHead(200, { 'Content-Length': '800' });
      res.write(Buffer.alloc(300), () => setTimeout(() => res.destroy(), 50));
    });
    const { id, ack } = await complete('/val/cut.bin');
    assertErr(ack, 502, '0x801901F6', '0x7');
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
  });

  it('6: a by-reference reply file over the limit is removed and the notification fails', async () => {
    app.set(async (s, res) => {
      await writeFile(s.headers['bits-response-datafile-name'] as string, Buffer.alloc(LIMIT + 1));
      res.writeHead(200, { 'Content-Length': '0' }).end();
    });
    const { id, ack } = await complete('/ref/big.bin');
    assertTooLarge(ack);
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
  });

  it('6: a by-reference application that writes its reply and then fails leaves no reply behind', async () => {
    app.set(async (s, res) => {
      await writeFile(s.headers['bits-response-datafile-name'] as string, 'half a reply');
      res.writeHead(503, { 'Content-Length': '0' }).end();
    });
    const { id, ack, resend } = await complete('/ref/failed.bin');
    assertErr(ack, 503, '0x801901F7', '0x7');
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
    app.set(async (s, res) => {
      await writeFile(s.headers['bits-response-datafile-name'] as string, 'the reply');
      res.writeHead(200, { 'Content-Length': '0' }).end();
    });
    const again = await resend();
    assertAck(again);
    assert.equal((await get(t.port, resolveReply(again.headers['bits-reply-url']!, '/ref/failed.bin'))).body.toString(), 'the reply');
  });

  it('6: a by-reference reply that cannot be opened or synced (a folder, a FIFO) is removed; the resend is answered', async () => {
    const makers: [string, (path: string) => Promise<void>][] = [
      ['folder', (path) => mkdir(path).then(() => undefined)],
      ['fifo', async (path) => assert.equal(spawnSync('mkfifo', [path]).status, 0, 'mkfifo')],
    ];
    for (const [kind, make] of makers) {
      app.set(async (s, res) => {
        await make(s.headers['bits-response-datafile-name'] as string);
        res.writeHead(200, { 'Content-Length': '0' }).end();
      });
      const { id, ack, resend } = await complete(`/ref/${kind}.bin`);
      assertErr(ack, 500, '0x80004005', '0x5');
      assert.equal(ack.headers['bits-reply-url'], undefined, kind);
      assert.deepEqual(await sessionFiles(id), NO_REPLY, kind);
      app.set(async (s, res) => {
        await writeFile(s.headers['bits-response-datafile-name'] as string, 'the reply');
        res.writeHead(200, { 'Content-Length': '0' }).end();
      });
      const again = await resend();
      assertAck(again);
      assert.equal((await get(t.port, resolveReply(again.headers['bits-reply-url']!, `/ref/${kind}.bin`))).body.toString(), 'the reply', kind);
    }
  });

  it('6: hook replies over the limit (buffer, string, stream, file) fail the same way and store nothing', async () => {
    for (const kind of ['buffer', 'string', 'stream', 'file']) {
      const { id, ack } = await complete(`/hook/${kind}.bin`, Buffer.from(kind));
      assertTooLarge(ack);
      assert.deepEqual(await sessionFiles(id), NO_REPLY, kind);
    }
    const { ack } = await complete('/hook/exact.bin', Buffer.from('exact'));
    assertAck(ack);
    assert.equal((await get(t.port, resolveReply(ack.headers['bits-reply-url']!, '/hook/exact.bin'))).body.length, LIMIT);
  });

  it('6: maxReplySize defaults to 64 MiB', () => {
    assert.equal(parseConfig({ vdirs: [{ path: '/', directory: './u' }] }, '/tmp').vdirs[0]!.maxReplySize, 64 * 1024 * 1024);
  });
});

describe("a hook's streamed reply is bounded by the deadline and by supersede", () => {
  let t: TestServer;
  /** Calls of the hook by upload path, and the stalled reply streams it handed out. */
  const calls = new Map<string, number>();
  const stalled: Readable[] = [];
  before(async () => {
    // First call of each upload: a reply that sends 100 bytes and then nothing, never ending.
    // Later calls: a plain reply.
    const onUploadComplete = (upload: { urlPath: string }) => {
      const n = (calls.get(upload.urlPath) ?? 0) + 1;
      calls.set(upload.urlPath, n);
      if (n > 1) return { reply: 'ok' };
      const reply = new Readable({ read() {} });
      reply.push(Buffer.alloc(100, 1));
      stalled.push(reply);
      return { reply };
    };
    t = await startServer({
      vdirs: [
        { path: '/stall', directory: './stall', notificationTimeout: 1 },
        { path: '/super', directory: './super' },
      ],
      hooks: { '/stall': { onUploadComplete }, '/super': { onUploadComplete } },
    });
  });
  after(() => t?.stop());

  const sessionFiles = async (id: string) => (await readdir(join(t.stateDir, 'sessions', id.slice(1, -1)))).sort();

  it('55: a reply that stops sending → 408 0x80070112 context 0x7, the stream destroyed, no temp file; the resend is answered', { timeout: 20_000 }, async () => {
    const data = Buffer.from('upload');
    const id = await t.createSession('/stall/a.bin');
    const ack = await t.request(fragmentRequest('/stall/a.bin', id, 0, data, data.length));
    assertErr(ack, 408, '0x80070112', '0x7');
    assert.equal(stalled[0]!.destroyed, true, "the hook's stream was destroyed");
    assert.deepEqual(await sessionFiles(id), NO_REPLY);
    // The session lock was given back: the resend runs the hook again.
    const again = await t.request(fragmentRequest('/stall/a.bin', id, 0, data, data.length));
    assertAck(again);
    assert.equal((await get(t.port, resolveReply(again.headers['bits-reply-url']!, '/stall/a.bin'))).body.toString(), 'ok');
  });

  it('D10: a retry supersedes a request whose hook reply stalled (long deadline), and is answered', { timeout: 20_000 }, async () => {
    const data = Buffer.from('upload');
    const id = await t.createSession('/super/b.bin');
    const first = await t.connect();
    try {
      await first.write(bitsRequestBytes(fragmentRequest('/super/b.bin', id, 0, data, data.length)));
      for (let i = 0; i < 200 && !calls.get('/super/b.bin'); i++) await sleep(25);
      assert.equal(calls.get('/super/b.bin'), 1, 'the hook was called');
      const retry = await t.request(fragmentRequest('/super/b.bin', id, 0, data, data.length));
      assertAck(retry);
      assert.equal((await get(t.port, resolveReply(retry.headers['bits-reply-url']!, '/super/b.bin'))).body.toString(), 'ok');
      assert.equal(stalled.at(-1)!.destroyed, true, "the superseded request's reply stream was destroyed");
      assert.deepEqual(await sessionFiles(id), ['data.bin', 'record.json', 'reply.bin'], 'no temp file of the abandoned reply');
    } finally {
      first.close();
    }
  });
});
