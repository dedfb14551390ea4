// Create-Session and commit hooks: in-process hooks, and webhooks delivered to real node:http
// receivers on 127.0.0.1 that check each delivery's signature with their own HMAC.
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { pino } from 'pino';
import { BitsServer } from '../src/server/bits-server.js';
import { ConfigError, parseConfig } from '../src/server/config.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { S3Client } from '@aws-sdk/client-s3';
import { landingPath } from '../src/server/hooks/upload-committed.js';
import { verifyWebhookSignature } from '../src/server/hooks/webhook.js';
import { FsDestinationStore } from '../src/store/fs/fs-destination-store.js';
import { S3DestinationStore } from '../src/store/s3/s3-destination-store.js';
import type { CommittedUpload, SessionCreateRequest, VdirHooks } from '../src/server/hooks/types.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startApp } from './helpers/notify-app.js';
import type { Seen, TestApp } from './helpers/notify-app.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange, uploadAll } from './helpers/upload.js';
import { tempDir } from './helpers/temp-dir.js';

type VdirInput = ServerConfigInput['vdirs'][number];
type WebhookInput = NonNullable<VdirInput['commitWebhook']>;

const SECRET = 'a-shared-secret-of-some-length';
/** How old a signature the receivers accept, in seconds. */
const TOLERANCE = 300;

/**
 * The receivers' own check of `X-Bits-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>">`, the timestamp within {@link TOLERANCE} of `nowSeconds`.
 */
function signedBy(header: string | undefined, body: Buffer, secret: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  if (Math.abs(nowSeconds - Number(m[1])) > TOLERANCE) return false;
  const mac = createHmac('sha256', secret).update(Buffer.concat([Buffer.from(`${m[1]}.`), body])).digest();
  return timingSafeEqual(mac, Buffer.from(m[2]!, 'hex'));
}

/** Answers a delivery: 401 when its signature is not `SECRET`'s, else `status` with `json`. */
function answer(seen: Seen, res: http.ServerResponse, json?: unknown, status = 200): void {
  if (!signedBy(seen.headers['x-bits-signature'] as string | undefined, seen.body, SECRET)) {
    res.writeHead(401, { 'Content-Length': '0' }).end();
    return;
  }
  const body = json === undefined ? '' : JSON.stringify(json);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
}

/** A receiver, closed when the test ends. */
async function receiver(t: TestContext): Promise<TestApp> {
  const app = await startApp();
  t.after(() => app.close());
  return app;
}

/** A server with one vdir `/up` (plus `vdir`), closed when the test ends. */
async function server(t: TestContext, vdir: Partial<VdirInput>, hooks?: VdirHooks): Promise<TestServer> {
  const s = await startServer({
    vdir,
    hooks: hooks ? { '/up': hooks } : undefined,
    // `Bearer alice` is the principal alice; no credentials: anonymous.
    authenticate: (req) => (req.headers['authorization'] === 'Bearer alice' ? { principal: 'alice' } : undefined),
  });
  t.after(() => s.stop());
  return s;
}

/** A webhook block for the receiver. */
function webhook(app: TestApp, extra: Partial<WebhookInput> = {}): WebhookInput {
  return { url: `http://127.0.0.1:${app.port}/hook`, secret: SECRET, timeout: 5, retries: 0, ...extra };
}

/** Waits (at most 10 s) until the receiver has seen `n` deliveries. */
async function seenCount(app: TestApp, n: number): Promise<Seen[]> {
  for (let i = 0; i < 500 && app.seen.length < n; i++) await sleep(20);
  assert.ok(app.seen.length >= n, `the receiver saw ${app.seen.length} deliveries, expected ${n}`);
  return app.seen;
}

/** The JSON body of a delivery. */
function bodyOf(seen: Seen): Record<string, unknown> {
  return JSON.parse(seen.body.toString('utf8')) as Record<string, unknown>;
}

/** Uploads `data` in one fragment with `headers` on every packet; returns the session id. */
async function upload(port: number, path: string, data: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const c = await RawConnection.connect(port);
  try {
    const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...headers } }));
    assertAck(created);
    const id = created.headers['bits-session-id']!;
    const range = `bytes 0-${data.length - 1}/${data.length}`;
    assertAck(await exchange(c, bitsRequestBytes({ type: 'Fragment', path, sessionId: id, headers: { 'Content-Range': range, ...headers }, body: data })));
    assertAck(await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id, headers })));
    return id;
  } finally {
    c.close();
  }
}

/** A Create-Session on `path` with `headers`. */
function create(s: TestServer, path: string, headers: Record<string, string> = {}) {
  return s.request({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, ...headers } });
}

describe('createWebhook', () => {
  it('accepts: it sees principal, path, client address and headers, without credentials', async (t) => {
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res, { action: 'accept' }));
    const s = await server(t, { createWebhook: webhook(app) });
    await upload(s.port, '/up/dir/a.bin', Buffer.from('accepted'), { Authorization: 'Bearer alice', Cookie: 'sid=1', 'X-Agent-Id': 'host-7' });
    assert.equal(await readFile(join(s.uploads, 'dir', 'a.bin'), 'utf8'), 'accepted');
    const [seen] = await seenCount(app, 1);
    assert.equal(app.seen.length, 1, 'only Create-Session asks');
    assert.equal(seen!.headers['x-bits-event'], 'session.create');
    assert.equal(seen!.headers['content-type'], 'application/json');
    const body = bodyOf(seen!) as unknown as SessionCreateRequest;
    assert.equal(body.vdir, '/up');
    assert.equal(body.urlPath, '/up/dir/a.bin');
    assert.equal(body.name, 'dir/a.bin');
    assert.equal(body.principal, 'alice');
    assert.equal(body.clientAddress, '127.0.0.1');
    assert.equal(body.headers['x-agent-id'], 'host-7');
    assert.equal(body.headers['bits-packet-type'], 'Create-Session');
    assert.equal(body.headers['authorization'], undefined);
    assert.equal(body.headers['cookie'], undefined);
  });

  it('an empty 2xx answer accepts', async (t) => {
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res, undefined, 204));
    const s = await server(t, { createWebhook: webhook(app) });
    await uploadAll(s.port, '/up/e.bin', Buffer.from('x'));
    assert.equal(await readFile(join(s.uploads, 'e.bin'), 'utf8'), 'x');
  });

  it('rejects with the status and HRESULT it chose, before any session exists', async (t) => {
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res, { action: 'reject', status: 451, hresult: '0xC00D0001', message: 'not from this fleet' }));
    const s = await server(t, { createWebhook: webhook(app) });
    let created = 0;
    s.server.on('session-created', () => created++);
    assertErr(await create(s, '/up/r.bin'), 451, '0xC00D0001');
    app.set((seen, res) => answer(seen, res, { action: 'reject' }));
    assertErr(await create(s, '/up/r.bin'), 403, '0x80070005');
    app.set((seen, res) => answer(seen, res, { action: 'reject', status: 503 }));
    assertErr(await create(s, '/up/r.bin'), 503, '0x801901F7');
    assert.equal(created, 0);
    assert.deepEqual(await readdir(s.uploads), []);
  });

  it('renames: the file lands under the chosen name, confined and under the overwrite policy', async (t) => {
    const app = await receiver(t);
    const commits = await receiver(t);
    commits.set((seen, res) => answer(seen, res));
    let name = 'alice/renamed.bin';
    app.set((seen, res) => answer(seen, res, { action: 'rename', name }));
    const s = await server(t, { createWebhook: webhook(app), commitWebhook: webhook(commits) });
    await uploadAll(s.port, '/up/a.bin', Buffer.from('renamed'));
    assert.equal(await readFile(join(s.uploads, 'alice', 'renamed.bin'), 'utf8'), 'renamed');
    assert.deepEqual(await readdir(s.uploads), ['alice'], 'nothing at the name the client gave');
    const [commit] = await seenCount(commits, 1);
    assert.equal(bodyOf(commit!)['name'], 'alice/renamed.bin');
    assert.equal(bodyOf(commit!)['urlPath'], '/up/a.bin');
    assert.equal(bodyOf(commit!)['destination'], join(s.uploads, 'alice', 'renamed.bin'));
    // The chosen name exists now and overwrites are off.
    assertErr(await create(s, '/up/b.bin'), 409, '0x80070005');
    for (name of ['../outside.bin', 'a\\b.bin', 'c:d.bin']) assertErr(await create(s, '/up/b.bin'), 400, '0x80070057');
  });

  it('a receiver that fails, answers nonsense or checks another secret refuses the session (5xx)', async (t) => {
    const app = await receiver(t);
    const s = await server(t, { createWebhook: webhook(app) });
    app.set((_seen, res) => res.writeHead(500, { 'Content-Length': '0' }).end());
    assertErr(await create(s, '/up/f.bin'), 502, '0x801901F6', '0x7');
    app.set((seen, res) => answer(seen, res, { action: 'maybe' }));
    assertErr(await create(s, '/up/f.bin'), 500, '0x801901F4', '0x7');
    const wrong = await server(t, { createWebhook: webhook(app, { secret: 'another-secret-entirely' }) });
    app.set((seen, res) => answer(seen, res, { action: 'accept' }));
    assertErr(await create(wrong, '/up/f.bin'), 502, '0x801901F6', '0x7');
    assertAck(await create(s, '/up/f.bin'));
  });
});

describe('commitWebhook', () => {
  it('is told of a committed upload: session id, vdir, path, name, size, principal; signed', async (t) => {
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res));
    const s = await server(t, { commitWebhook: webhook(app) });
    const data = Buffer.alloc(3000, 7);
    const id = await upload(s.port, '/up/c.bin', data, { Authorization: 'Bearer alice' });
    const [seen] = await seenCount(app, 1);
    assert.equal(seen!.headers['x-bits-event'], 'upload.committed');
    assert.ok(signedBy(seen!.headers['x-bits-signature'] as string, seen!.body, SECRET));
    const body = bodyOf(seen!) as unknown as CommittedUpload;
    assert.equal(body.sessionId, id);
    assert.equal(body.vdir, '/up');
    assert.equal(body.urlPath, '/up/c.bin');
    assert.equal(body.name, 'c.bin');
    assert.equal(body.destination, join(s.uploads, 'c.bin'));
    assert.equal(body.size, 3000);
    assert.equal(body.principal, 'alice');
    assert.equal(typeof body.committedAt, 'number');
  });

  it('is retried after a failing receiver (500, then 200), as the same delivery', async (t) => {
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res, undefined, app.seen.length === 1 ? 500 : 200));
    const s = await server(t, { commitWebhook: webhook(app, { retries: 3 }) });
    await uploadAll(s.port, '/up/retry.bin', Buffer.from('retried'));
    const [first, second] = await seenCount(app, 2);
    assert.equal(second!.headers['x-bits-delivery'], first!.headers['x-bits-delivery']);
    assert.deepEqual(bodyOf(second!), bodyOf(first!));
    assert.equal(await readFile(join(s.uploads, 'retry.bin'), 'utf8'), 'retried');
    await sleep(600); // longer than the next backoff: a delivered webhook is not sent again
    assert.equal(app.seen.length, 2);
  });

  it('a receiver that never answers does not hold the Close-Session Ack', async (t) => {
    const app = await receiver(t);
    const events: string[] = [];
    const held: http.ServerResponse[] = [];
    app.set((_seen, res) => {
      events.push('received');
      res.on('close', () => events.push('closed'));
      held.push(res);
    });
    const s = await server(t, { commitWebhook: webhook(app, { timeout: 120 }) });
    await uploadAll(s.port, '/up/slow.bin', Buffer.from('not held'));
    const atAck = [...events];
    await seenCount(app, 1);
    // Neither answered nor given up on (its timeout is 120 s) when the Ack came, nor since.
    assert.ok(!atAck.includes('closed') && !events.includes('closed'), `the delivery was still open at the Ack (${events.join(', ')})`);
    assert.equal(await readFile(join(s.uploads, 'slow.bin'), 'utf8'), 'not held');
    held[0]!.writeHead(200, { 'Content-Length': '0' }).end();
  });

  it('a receiver that keeps failing loses nothing: the upload stays', async (t) => {
    const app = await receiver(t);
    app.set((_seen, res) => res.writeHead(503, { 'Content-Length': '0' }).end());
    const s = await server(t, { commitWebhook: webhook(app, { retries: 1 }) });
    await uploadAll(s.port, '/up/kept.bin', Buffer.from('kept'));
    await seenCount(app, 2);
    assert.equal(await readFile(join(s.uploads, 'kept.bin'), 'utf8'), 'kept');
  });

  it('signs with the secret of a secretFile; an unreadable one is a configuration error naming its key', async (t) => {
    const dir = await tempDir('bits-hook-');
    t.after(() => dir.cleanup());
    const file = join(dir.path, 'secret');
    await writeFile(file, `${SECRET}\n`);
    const app = await receiver(t);
    app.set((seen, res) => answer(seen, res));
    const s = await server(t, { commitWebhook: webhook(app, { secret: null, secretFile: file }) });
    await uploadAll(s.port, '/up/s.bin', Buffer.from('s'));
    const [seen] = await seenCount(app, 1);
    assert.ok(signedBy(seen!.headers['x-bits-signature'] as string, seen!.body, SECRET));
    const config = parseConfig({ vdirs: [{ path: '/up', directory: join(dir.path, 'up'), commitWebhook: webhook(app, { secret: null, secretFile: join(dir.path, 'missing') }) }] }, dir.path);
    assert.throws(
      () => new BitsServer(config, { logger: pino({ level: 'silent' }) }),
      (err: Error) => err instanceof ConfigError && err.message.includes('vdirs[0].commitWebhook.secretFile: cannot read'),
    );
  });
});

describe('renamed destinations', () => {
  it('Close-Session reads the chosen name back from the recorded destination, for files and objects', async () => {
    const client = new S3Client({ region: 'us-east-1' });
    const stores = [
      new FsDestinationStore('/srv/up'),
      new FsDestinationStore('/'),
      new S3DestinationStore({ client, bucket: 'bits-up', prefix: 'uploads/' }),
      new S3DestinationStore({ client, bucket: 'bits-up', prefix: '' }),
    ];
    try {
      for (const store of stores) {
        const chosen = ['alice', 'x y.bin'];
        assert.deepEqual(landingPath(store, await store.resolve(chosen), ['a.bin']), chosen, store.name);
        assert.deepEqual(landingPath(store, 'elsewhere/alice/a.bin', ['a.bin']), ['a.bin'], `${store.name}: a destination not under the store`);
      }
    } finally {
      client.destroy();
    }
  });
});

describe('webhook signatures', () => {
  it('the receiver refuses a stale timestamp and another secret; verifyWebhookSignature agrees', () => {
    const body = Buffer.from('{"sessionId":"{x}"}');
    const now = Math.floor(Date.now() / 1000);
    const sign = (t: number, secret = SECRET) => `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body.toString()}`).digest('hex')}`;
    assert.ok(signedBy(sign(now), body, SECRET));
    assert.ok(!signedBy(sign(now - 2 * TOLERANCE), body, SECRET), 'stale');
    assert.ok(!signedBy(sign(now, 'another-secret-entirely'), body, SECRET), 'other secret');
    assert.ok(verifyWebhookSignature(sign(now), body, SECRET));
    assert.ok(!verifyWebhookSignature(sign(now - 2 * TOLERANCE), body, SECRET));
    assert.ok(!verifyWebhookSignature(sign(now, 'another-secret-entirely'), body, SECRET));
    assert.ok(!verifyWebhookSignature(sign(now), Buffer.from('{"sessionId":"{y}"}'), SECRET), 'other body');
    assert.ok(!verifyWebhookSignature(undefined, body, SECRET));
  });
});

describe('in-process hooks', () => {
  it('onSessionCreate accepts, rejects with its status and HRESULT, and renames', async (t) => {
    const asked: SessionCreateRequest[] = [];
    const s = await server(t, {}, {
      onSessionCreate: (request) => {
        asked.push(request);
        if (request.name === 'no.bin') return { action: 'reject', status: 400, hresult: 0x80070020, message: 'no' };
        if (request.principal === 'alice') return { action: 'rename', name: `alice/${request.name}` };
        return undefined;
      },
    });
    await upload(s.port, '/up/mine.bin', Buffer.from('alice'), { Authorization: 'Bearer alice' });
    assert.equal(await readFile(join(s.uploads, 'alice', 'mine.bin'), 'utf8'), 'alice');
    await uploadAll(s.port, '/up/anon.bin', Buffer.from('anon'));
    assert.equal(await readFile(join(s.uploads, 'anon.bin'), 'utf8'), 'anon');
    assertErr(await create(s, '/up/no.bin'), 400, '0x80070020');
    assert.deepEqual(
      asked.map((a) => [a.name, a.principal, a.clientAddress, a.headers['authorization']]),
      [
        ['mine.bin', 'alice', '127.0.0.1', undefined],
        ['anon.bin', null, '127.0.0.1', undefined],
        ['no.bin', null, '127.0.0.1', undefined],
      ],
    );
  });

  it('onUploadCommitted hears of a committed upload; its failure changes nothing', async (t) => {
    const heard: CommittedUpload[] = [];
    const s = await server(t, {}, {
      onUploadCommitted: (upload) => {
        heard.push(upload);
        throw new Error('the hook failed');
      },
    });
    const id = await uploadAll(s.port, '/up/heard.bin', Buffer.from('heard'));
    for (let i = 0; i < 500 && heard.length === 0; i++) await sleep(20);
    assert.equal(heard.length, 1);
    assert.equal(heard[0]!.sessionId, id);
    assert.equal(heard[0]!.name, 'heard.bin');
    assert.equal(heard[0]!.size, 5);
    assert.equal(await readFile(join(s.uploads, 'heard.bin'), 'utf8'), 'heard');
  });

  it('an upload that was not committed (cancelled) is not announced', async (t) => {
    const heard: CommittedUpload[] = [];
    const s = await server(t, {}, { onUploadCommitted: (u) => void heard.push(u) });
    const id = await s.createSession('/up/gone.bin');
    assertAck(await s.request({ type: 'Cancel-Session', path: '/up/gone.bin', sessionId: id }));
    await uploadAll(s.port, '/up/after.bin', Buffer.from('after'));
    for (let i = 0; i < 500 && heard.length === 0; i++) await sleep(20);
    assert.deepEqual(heard.map((u) => u.name), ['after.bin']);
  });
});
