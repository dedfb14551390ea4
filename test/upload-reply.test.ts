// Spec §15 cases 47–59: upload-reply and server-application notification, against a real HTTP
// application server started by the test; plus a restart between notification and Close.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { get, resolveReply, startApp } from './helpers/notify-app.js';
import type { TestApp } from './helpers/notify-app.js';
import type { RawResponse } from './helpers/raw-http.js';

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('upload-reply (spec §15 47–59)', () => {
  let app: TestApp;
  let deadPort: number;
  let t: TestServer;
  before(async () => {
    app = await startApp();
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    deadPort = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const appUrl = `http://127.0.0.1:${app.port}/n`;
    t = await startServer({
      vdirs: [
        { path: '/ref', directory: './ref', notificationType: 'by-reference', notificationUrl: appUrl },
        { path: '/val', directory: './val', notificationType: 'by-value', notificationUrl: appUrl, notificationTimeout: 1 },
        { path: '/rel', directory: './rel', notificationType: 'by-value', notificationUrl: 'n.asp', publicUrl: `http://127.0.0.1:${app.port}` },
        { path: '/dead', directory: './dead', notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${deadPort}/n` },
        { path: '/hook', directory: './hook' },
      ],
      hooks: {
        '/hook': {
          onUploadComplete: async (upload) => {
            const chunks: Buffer[] = [];
            for await (const c of upload.stream()) chunks.push(c as Buffer);
            const body = Buffer.concat(chunks);
            if (body.toString() === 'fail') {
              const { NotificationError } = await import('../src/server/notification/notification-error.js');
              throw new NotificationError(503, 'busy');
            }
            if (body.toString() === 'crash') throw new Error('bug in the hook');
            return { reply: `got ${body.length} bytes from ${upload.urlPath}`, copyToDestination: body.toString() === 'keep' };
          },
        },
      },
    });
  });
  after(async () => {
    await t.stop();
    await app.close();
  });
  beforeEach(() => {
    app.seen.length = 0;
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '0' }).end());
  });

  async function uploadAndComplete(path: string, data: Buffer, options: { host?: string } = {}): Promise<{ id: string; ack: RawResponse }> {
    const id = await t.createSession(path);
    const ack = await t.request({ ...fragmentRequest(path, id, 0, data, data.length), host: options.host });
    return { id, ack };
  }

  it('47: by reference — paths in headers, no body; the reply file the app writes is served', async () => {
    const data = randomBytes(5000);
    let requestFileBytes: Buffer | undefined;
    app.set(async (s, res) => {
      requestFileBytes = await readFile(s.headers['bits-request-datafile-name'] as string);
      await writeFile(s.headers['bits-response-datafile-name'] as string, 'reply by reference');
      res.writeHead(200, { 'Content-Length': '0' }).end();
    });
    const { id, ack } = await uploadAndComplete('/ref/dump.bin', data);
    assertAck(ack);
    assert.equal(ack.headers['bits-received-content-range'], '5000');
    assert.equal(app.seen.length, 1);
    const n = app.seen[0]!;
    assert.equal(n.method, 'POST');
    assert.equal(n.url, '/n');
    assert.equal(n.headers['bits-original-request-url'], `http://127.0.0.1:${t.port}/ref/dump.bin`);
    assert.equal(n.headers['content-length'], '0');
    assert.equal(n.body.length, 0);
    assert.equal(n.headers['bits-packet-type'], undefined);
    assert.deepEqual(requestFileBytes, data);
    const replyPath = resolveReply(ack.headers['bits-reply-url']!, '/ref/dump.bin');
    const reply = await get(t.port, replyPath);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.toString(), 'reply by reference');
    const ranged = await get(t.port, replyPath, { Range: 'bytes=0-4' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.toString(), 'reply');
    assert.equal(ranged.headers['content-range'], 'bytes 0-4/18');
    assertAck(await t.request({ type: 'Close-Session', path: '/ref/dump.bin', sessionId: id }));
  });

  it('48: by value — the whole upload as the body; the response body is the reply', async () => {
    const data = randomBytes(300_000);
    app.set((s, res) => {
      const body = Buffer.from(`size=${s.body.length}`);
      res.writeHead(200, { 'Content-Length': String(body.length) }).end(body);
    });
    const { id, ack } = await uploadAndComplete('/val/dump.bin', data);
    assertAck(ack);
    const n = app.seen[0]!;
    assert.equal(n.headers['content-length'], '300000');
    assert.deepEqual(n.body, data);
    assert.equal(n.headers['bits-request-datafile-name'], undefined);
    assert.equal(n.headers['bits-response-datafile-name'], undefined);
    const reply = await get(t.port, resolveReply(ack.headers['bits-reply-url']!, '/val/dump.bin'));
    assert.equal(reply.body.toString(), 'size=300000');
    assertAck(await t.request({ type: 'Close-Session', path: '/val/dump.bin', sessionId: id }));
  });

  it('49: a static reply URL is passed through verbatim', async () => {
    app.set((_s, res) => res.writeHead(200, { 'BITS-Static-Response-URL': 'http://cdn/x', 'Content-Length': '0' }).end());
    const { id, ack } = await uploadAndComplete('/val/s.bin', Buffer.from('abc'));
    assertAck(ack);
    assert.equal(ack.headers['bits-reply-url'], 'http://cdn/x');
    assertAck(await t.request({ type: 'Close-Session', path: '/val/s.bin', sessionId: id }));
  });

  it('50: BITS-Copy-File-To-Destination places the upload; without it nothing is placed', async () => {
    app.set((_s, res) => res.writeHead(200, { 'BITS-Copy-File-To-Destination': '1', 'Content-Length': '0' }).end());
    const a = await uploadAndComplete('/val/copied.bin', Buffer.from('keep me'));
    assertAck(await t.request({ type: 'Close-Session', path: '/val/copied.bin', sessionId: a.id }));
    assert.equal(await readFile(join(t.root, 'val', 'copied.bin'), 'utf8'), 'keep me');
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '0' }).end());
    const b = await uploadAndComplete('/val/notcopied.bin', Buffer.from('drop me'));
    assertAck(await t.request({ type: 'Close-Session', path: '/val/notcopied.bin', sessionId: b.id }));
    assert.equal(await exists(join(t.root, 'val', 'notcopied.bin')), false);
  });

  it('51: the upload query string is appended; a relative URL resolves against the upload directory', async () => {
    await uploadAndComplete('/val/f.txt?ACCOUNT=7', Buffer.from('q'));
    assert.equal(app.seen[0]!.url, '/n?ACCOUNT=7');
    assert.equal(app.seen[0]!.headers['bits-original-request-url'], `http://127.0.0.1:${t.port}/val/f.txt?ACCOUNT=7`);
    app.seen.length = 0;
    // (the vdir's publicUrl is the application's origin here: a proxy in front of both, say)
    const { ack } = await uploadAndComplete('/rel/sub/f.txt?ACCOUNT=8', Buffer.from('r'));
    assertAck(ack);
    assert.equal(app.seen[0]!.url, '/rel/sub/n.asp?ACCOUNT=8');
    assert.equal(app.seen[0]!.headers['bits-original-request-url'], `http://127.0.0.1:${app.port}/rel/sub/f.txt?ACCOUNT=8`);
  });

  it('52: only the completing Ack carries BITS-Reply-URL', async () => {
    const data = randomBytes(300);
    const id = await t.createSession('/val/multi.bin');
    const acks: RawResponse[] = [];
    for (let i = 0; i < 300; i += 100) acks.push(await t.request(fragmentRequest('/val/multi.bin', id, i, data.subarray(i, i + 100), 300)));
    assert.equal(acks[0]!.headers['bits-reply-url'], undefined);
    assert.equal(acks[1]!.headers['bits-reply-url'], undefined);
    assert.ok(acks[2]!.headers['bits-reply-url']);
    assert.equal(app.seen.length, 1);
  });

  it('53: app 500 → error Ack with context 0x7, session kept; the resent last fragment notifies again', async () => {
    app.set((_s, res) => res.writeHead(500, { 'Content-Length': '0' }).end());
    const data = Buffer.from('retry me');
    const { id, ack } = await uploadAndComplete('/val/retry.bin', data);
    assertErr(ack, 500, '0x801901F4', '0x7');
    assert.equal(ack.headers['bits-received-content-range'], String(data.length));
    assert.equal(ack.headers['bits-reply-url'], undefined);
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '2' }).end('ok'));
    const again = await t.request(fragmentRequest('/val/retry.bin', id, 0, data, data.length));
    assertAck(again);
    assert.ok(again.headers['bits-reply-url']);
    assert.equal(app.seen.length, 2);
  });

  it('54: app 403 → 403 with BG_E_HTTP_ERROR_403 and context 0x7', async () => {
    app.set((_s, res) => res.writeHead(403, { 'Content-Length': '0' }).end());
    const { ack } = await uploadAndComplete('/val/forbidden.bin', Buffer.from('x'));
    assertErr(ack, 403, '0x80190193', '0x7');
  });

  it('55: an app that stays silent past the deadline → 408 0x80070112 context 0x7', async () => {
    app.set(async (_s, res) => {
      await sleep(2500);
      res.writeHead(200, { 'Content-Length': '0' }).end();
    });
    const { ack } = await uploadAndComplete('/val/slow.bin', Buffer.from('x'));
    assertErr(ack, 408, '0x80070112', '0x7');
  });

  it('53: a body the server does not need (an error page, a by-reference body) is read at most 64 KiB, then dropped', async () => {
    // The application sends up to 256 MiB; a server that drains it all reads every byte.
    const BOUND = 256 * 1024 * 1024;
    let sentBeforeClose: number | undefined;
    const endless = (status: number) => (_s: unknown, res: http.ServerResponse) => {
      sentBeforeClose = undefined;
      res.writeHead(status);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      res.once('close', () => (sentBeforeClose = sent));
      const pump = (): void => {
        while (sent < BOUND && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      pump();
    };
    const closed = async (): Promise<number> => {
      for (let i = 0; i < 400 && sentBeforeClose === undefined; i++) await sleep(25);
      assert.notEqual(sentBeforeClose, undefined, "the application's response was closed");
      return sentBeforeClose!;
    };
    app.set(endless(503));
    assertErr((await uploadAndComplete('/val/page.bin', Buffer.from('x'))).ack, 503, '0x801901F7', '0x7');
    assert.ok((await closed()) < 32 * 1024 * 1024, `the error page was cut off (${sentBeforeClose} bytes sent)`);
    app.set(endless(200));
    const { ack } = await uploadAndComplete('/ref/body.bin', Buffer.from('x'));
    assertAck(ack);
    assert.ok(ack.headers['bits-reply-url']);
    assert.ok((await closed()) < 32 * 1024 * 1024, `the by-reference body was cut off (${sentBeforeClose} bytes sent)`);
  });

  it('D11: an unreachable app → 502 0x801901F6 context 0x7', async () => {
    const { ack } = await uploadAndComplete('/dead/x.bin', Buffer.from('x'));
    assertErr(ack, 502, '0x801901F6', '0x7');
  });

  it('56: the last fragment resent after success gets the same Ack and no second notification', async () => {
    const data = Buffer.from('once');
    const { id, ack } = await uploadAndComplete('/val/once.bin', data);
    const again = await t.request(fragmentRequest('/val/once.bin', id, 0, data, data.length));
    assertAck(again);
    assert.equal(again.headers['bits-reply-url'], ack.headers['bits-reply-url']);
    assert.equal(again.headers['bits-received-content-range'], ack.headers['bits-received-content-range']);
    assert.equal(app.seen.length, 1);
  });

  it('57: a static reply URL longer than 2,200 characters → 400 0x80070057', async () => {
    app.set((_s, res) => res.writeHead(200, { 'BITS-Static-Response-URL': `http://cdn/${'x'.repeat(2500)}`, 'Content-Length': '0' }).end());
    const { ack } = await uploadAndComplete('/val/long.bin', Buffer.from('x'));
    assertErr(ack, 400, '0x80070057', '0x5');
  });

  it('58: Close and Cancel delete the reply', async () => {
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '5' }).end('reply'));
    const closed = await uploadAndComplete('/val/c1.bin', Buffer.from('x'));
    const url1 = resolveReply(closed.ack.headers['bits-reply-url']!, '/val/c1.bin');
    assert.equal((await get(t.port, url1)).status, 200);
    assertAck(await t.request({ type: 'Close-Session', path: '/val/c1.bin', sessionId: closed.id }));
    assert.equal((await get(t.port, url1)).status, 404);
    const cancelled = await uploadAndComplete('/val/c2.bin', Buffer.from('x'));
    const url2 = resolveReply(cancelled.ack.headers['bits-reply-url']!, '/val/c2.bin');
    assertAck(await t.request({ type: 'Cancel-Session', path: '/val/c2.bin', sessionId: cancelled.id }));
    assert.equal((await get(t.port, url2)).status, 404);
  });

  it('59: the reply URL resolves against the upload directory; a wrong token or directory is 404', async () => {
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '5' }).end('hello'));
    const { ack } = await uploadAndComplete('/val/deep/er/x.bin', Buffer.from('x'));
    const raw = ack.headers['bits-reply-url']!;
    assert.match(raw, /^BITS-Sessions\/Replies\/[0-9A-F-]{36}\/[A-Za-z0-9_-]{22}\/responsefile\.bin$/);
    const path = resolveReply(raw.replace(/\//g, '\\'), '/val/deep/er/x.bin');
    assert.equal(path.startsWith('/val/deep/er/BITS-Sessions/Replies/'), true);
    assert.equal((await get(t.port, path)).body.toString(), 'hello');
    assert.equal((await get(t.port, path.replace(/\/[A-Za-z0-9_-]{22}\//, '/AAAAAAAAAAAAAAAAAAAAAA/'))).status, 404);
    assert.equal((await get(t.port, path.replace('/deep/er/', '/deep/'))).status, 404);
  });

  it('in-process hook: reply, copy to destination, NotificationError and thrown errors', async () => {
    const ok = await uploadAndComplete('/hook/a.bin', Buffer.from('hello'));
    assertAck(ok.ack);
    assert.equal((await get(t.port, resolveReply(ok.ack.headers['bits-reply-url']!, '/hook/a.bin'))).body.toString(), 'got 5 bytes from /hook/a.bin');
    assertAck(await t.request({ type: 'Close-Session', path: '/hook/a.bin', sessionId: ok.id }));
    assert.equal(await exists(join(t.root, 'hook', 'a.bin')), false);
    const keep = await uploadAndComplete('/hook/keep.bin', Buffer.from('keep'));
    assertAck(await t.request({ type: 'Close-Session', path: '/hook/keep.bin', sessionId: keep.id }));
    assert.equal(await readFile(join(t.root, 'hook', 'keep.bin'), 'utf8'), 'keep');
    assertErr((await uploadAndComplete('/hook/f.bin', Buffer.from('fail'))).ack, 503, '0x801901F7', '0x7');
    assertErr((await uploadAndComplete('/hook/c.bin', Buffer.from('crash'))).ack, 500, '0x801901F4', '0x7');
  });
});

describe('upload-reply across a restart and expiry', () => {
  let app: TestApp;
  let t: TestServer;
  before(async () => {
    app = await startApp();
    t = await startServer({
      vdir: { notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${app.port}/n`, sessionTimeout: 2 },
      config: { sweepInterval: 1 },
    });
  });
  after(async () => {
    await t.stop();
    await app.close();
  });

  it('a restart between notification and Close keeps the reply and never notifies twice', async () => {
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '6', 'BITS-Copy-File-To-Destination': 'yes' }).end('ticket'));
    const data = randomBytes(1000);
    const id = await t.createSession('/up/r.bin');
    const ack = await t.request(fragmentRequest('/up/r.bin', id, 0, data, data.length));
    assertAck(ack);
    await t.restart();
    const url = resolveReply(ack.headers['bits-reply-url']!, '/up/r.bin');
    assert.equal((await get(t.port, url)).body.toString(), 'ticket');
    const again = await t.request(fragmentRequest('/up/r.bin', id, 0, data, data.length));
    assert.equal(again.headers['bits-reply-url'], ack.headers['bits-reply-url']);
    assert.equal(app.seen.length, 1);
    assertAck(await t.request({ type: 'Close-Session', path: '/up/r.bin', sessionId: id }));
    assert.deepEqual(await readFile(join(t.uploads, 'r.bin')), data);
    assert.equal((await get(t.port, url)).status, 404);
  });

  it('an expired session takes its reply with it', async () => {
    app.set((_s, res) => res.writeHead(200, { 'Content-Length': '2' }).end('ok'));
    const id = await t.createSession('/up/e.bin');
    const ack = await t.request(fragmentRequest('/up/e.bin', id, 0, Buffer.from('x'), 1));
    const url = resolveReply(ack.headers['bits-reply-url']!, '/up/e.bin');
    assert.equal((await get(t.port, url)).status, 200);
    await sleep(3500);
    assert.equal((await get(t.port, url)).status, 404);
    assert.equal(await exists(join(t.stateDir, 'sessions', id.slice(1, -1))), false);
  });
});
