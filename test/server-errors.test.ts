import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { parseContentRange } from '../src/protocol/content-range.js';
import { BitsError, isBitsError } from '../src/protocol/errors.js';
import { BitsServer } from '../src/server/bits-server.js';
import type { BitsServerOptions } from '../src/server/bits-server.js';
import { ConfigError, parseConfig } from '../src/server/config.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { checkFragment } from '../src/server/handlers/fragment.js';
import { NotificationError } from '../src/server/notification/notification-error.js';
import { FsRecordStore } from '../src/store/fs/fs-record-store.js';
import type { RecordStore, SessionRecord } from '../src/store/types.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import type { BitsRequest, RawResponse } from './helpers/raw-http.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';

type ErrorsModule = typeof import('../src/protocol/errors.js');
type NotificationErrorModule = typeof import('../src/server/notification/notification-error.js');

/**
 * A second instance of a module, as a second installed copy of the package would load it: the same
 * file under another URL is another module with its own classes.
 */
async function secondCopy<T>(relative: string): Promise<T> {
  return (await import(new URL(`${relative}?second-copy`, import.meta.url).href)) as T;
}

/** A running BitsServer on loopback whose request log lines are kept. */
interface LoggedServer {
  server: BitsServer;
  port: number;
  lines: Record<string, unknown>[];
  request(r: BitsRequest): Promise<RawResponse>;
  get(path: string): Promise<RawResponse>;
  stop(): Promise<void>;
}

async function startLogged(
  vdirs: ServerConfigInput['vdirs'],
  options: Omit<BitsServerOptions, 'logger' | 'records'> & { records?: (stateDir: string) => RecordStore } = {},
): Promise<LoggedServer> {
  const root = await mkdtemp(join(tmpdir(), 'bits-server-errors-'));
  const config = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, stateDir: join(root, 'state'), vdirs }, root);
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const { records, ...rest } = options;
  const server = new BitsServer(config, { ...rest, records: records?.(config.stateDir), logger: pino({ level: 'info' }, sink) });
  const { port } = await server.listen();
  const send = async (bytes: Buffer): Promise<RawResponse> => {
    const c = await RawConnection.connect(port);
    return c.write(bytes).then(() => c.read()).finally(() => c.close());
  };
  return {
    server,
    port,
    lines,
    request: (r) => send(bitsRequestBytes(r)),
    get: (path) => send(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 'latin1')),
    async stop() {
      await server.close(1000);
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The log line of the request whose `url` is `url` (the last one). */
function lineFor(lines: Record<string, unknown>[], url: string): Record<string, unknown> | undefined {
  return lines.filter((l) => l['msg'] === 'request' && l['url'] === url).at(-1);
}

describe('BitsError: defaults, the received offset and the brand', () => {
  it('a BitsError without a message has the table default; with one, its own', () => {
    assert.equal(new BitsError('BITS_RANGE_GAP').message, 'fragment starts past the next expected byte');
    assert.equal(new BitsError('BITS_RANGE_GAP', 'starts at 9').message, 'starts at 9');
    assert.equal(new BitsError('BITS_RANGE_GAP', undefined, { received: 300 }).received, 300);
    assert.equal(new BitsError('BITS_BAD_PATH').received, undefined);
  });

  it('a BitsError and a NotificationError of a second installed copy are recognised by this one', async () => {
    const other = await secondCopy<ErrorsModule>('../src/protocol/errors.js');
    assert.notEqual(other.BitsError, BitsError, 'really a second copy');
    const foreign = new other.BitsError('BITS_DISK_FULL');
    assert.ok(isBitsError(foreign));
    assert.ok(foreign instanceof BitsError);
    const otherNotification = await secondCopy<NotificationErrorModule>('../src/server/notification/notification-error.js');
    const hookError = new otherNotification.NotificationError(503, 'busy');
    assert.ok(hookError instanceof NotificationError);
    assert.ok(isBitsError(hookError));
    // A plain BitsError is not a NotificationError, from either copy.
    assert.ok(!(foreign instanceof NotificationError));
    assert.ok(!(new BitsError('BITS_APPLICATION_ERROR') instanceof NotificationError));
    assert.ok(!isBitsError(new Error('x')));
  });

  it('a NotificationError with a status outside 300-599 does not throw: it is a 500 that names the status', () => {
    for (const status of [200, 299, 600, 404.5, Number.NaN]) {
      const err = new NotificationError(status, 'oops');
      assert.equal(err.status, 500, String(status));
      assert.equal(err.hresult, 0x801901f4);
      assert.match(err.message, new RegExp(`status ${String(status)}`));
    }
    assert.equal(new NotificationError(302, 'moved').status, 302);
    assert.equal(new NotificationError(403, 'no', { hresult: 0x80070005 }).hresult, 0x80070005);
  });
});

describe('checkFragment: the range against the session, before anything is written', () => {
  const vdir = { maximumUploadSize: 1000, maxFragmentSize: 100 };
  const codeOf = (fn: () => void): { code: string; received: number | undefined } | undefined => {
    try {
      fn();
      return undefined;
    } catch (err) {
      assert.ok(isBitsError(err));
      return { code: err.code, received: err.received };
    }
  };
  const session = { received: 200, total: 500 };

  it('23: a gap is RANGE_GAP with the next expected offset; an overlap or the next range passes', () => {
    assert.deepEqual(codeOf(() => checkFragment(session, parseContentRange('bytes 201-250/500'), vdir)), { code: 'BITS_RANGE_GAP', received: 200 });
    assert.equal(codeOf(() => checkFragment(session, parseContentRange('bytes 200-250/500'), vdir)), undefined);
    assert.equal(codeOf(() => checkFragment(session, parseContentRange('bytes 150-249/500'), vdir)), undefined);
  });

  it('the total may not change, nor exceed maximumUploadSize; the body may not exceed maxFragmentSize', () => {
    assert.deepEqual(codeOf(() => checkFragment(session, parseContentRange('bytes 200-250/600'), vdir)), { code: 'BITS_TOTAL_CHANGED', received: 200 });
    assert.deepEqual(codeOf(() => checkFragment({ received: 0, total: null }, parseContentRange('bytes 0-9/1001'), vdir)), {
      code: 'BITS_TOO_LARGE',
      received: 0,
    });
    assert.deepEqual(codeOf(() => checkFragment(session, parseContentRange('bytes 200-300/500'), vdir)), {
      code: 'BITS_FRAGMENT_TOO_LARGE',
      received: 200,
    });
    // 0 = no upload size limit
    assert.equal(codeOf(() => checkFragment({ received: 0, total: null }, parseContentRange('bytes 0-9/5000'), { ...vdir, maximumUploadSize: 0 })), undefined);
  });
});

describe('the server: options checked up front, hook errors and download failures answered with a reason', () => {
  let t: LoggedServer;
  before(async () => {
    t = await startLogged(
      [
        { path: '/hook', directory: './hook' },
        { path: '/files', directory: './files', downloadEnabled: true },
      ],
      {
        hooks: {
          '/hook': {
            onUploadComplete: async (upload) => {
              // (the error class of a second copy of the package, as a hook built against it throws)
              const other = await secondCopy<ErrorsModule>('../src/protocol/errors.js');
              if (upload.urlPath.endsWith('foreign.bin')) {
                throw new other.BitsError('BITS_APPLICATION_ERROR', 'busy in another copy', { status: 503, hresult: 0x801901f7 });
              }
              throw new NotificationError(200, 'a hook that meant success');
            },
          },
        },
      },
    );
  });
  after(() => t.stop());

  const upload = async (path: string): Promise<RawResponse> => {
    const created = await t.request({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } });
    assertAck(created);
    const id = created.headers['bits-session-id']!;
    return t.request({ type: 'Fragment', path, sessionId: id, headers: { 'Content-Range': 'bytes 0-2/3' }, body: 'abc' });
  };

  it("D11: a hook's error from another installed copy of the package keeps its status", async () => {
    const res = await upload('/hook/foreign.bin');
    assertErr(res, 503, '0x801901F7', '0x7');
    assert.equal(res.headers['bits-received-content-range'], '3');
  });

  it('D11: a NotificationError with status 200 is a 500 0x801901F4 whose log line names the status', async () => {
    const res = await upload('/hook/mistake.bin');
    assertErr(res, 500, '0x801901F4', '0x7');
    const line = lineFor(t.lines, '/hook/mistake.bin');
    assert.equal(line?.['code'], 'BITS_APPLICATION_ERROR');
    assert.match(String(line?.['reason']), /status 200/);
  });

  it('a download of nothing is a 404 whose log line says why', async () => {
    assert.equal((await t.get('/files/none.bin')).status, 404);
    assert.equal(lineFor(t.lines, '/files/none.bin')?.['reason'], 'no such file');
    assert.equal(lineFor(t.lines, '/files/none.bin')?.['status'], 404);
    assert.equal((await t.get('/hook/a.bin')).status, 404);
    assert.equal(lineFor(t.lines, '/hook/a.bin')?.['reason'], 'downloads are not enabled here');
    assert.equal((await t.get('/nowhere/a.bin')).status, 404);
    assert.equal(lineFor(t.lines, '/nowhere/a.bin')?.['reason'], 'no vdir');
    assert.equal((await t.get('/files/%2e%2e/x')).status, 404);
    assert.equal(lineFor(t.lines, '/files/%2e%2e/x')?.['code'], 'BITS_BAD_PATH');
  });

  it('options that do not fit the configuration are a ConfigError in the format of config errors', () => {
    const config = parseConfig({ vdirs: [{ path: '/n', directory: './n', notificationType: 'by-value' }] }, tmpdir());
    assert.throws(
      () => new BitsServer(config, { logger: pino({ level: 'silent' }), hooks: { '/elsewhere': {} } }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message === 'invalid configuration:\n  hooks["/elsewhere"]: no vdir "/elsewhere" is configured\n  vdirs[0].notificationUrl: required when notificationType is "by-value"',
    );
  });
});

describe('downloads from a failing store', () => {
  let t: LoggedServer;
  let failReads = false;
  before(async () => {
    t = await startLogged([{ path: '/files', directory: './files', downloadEnabled: true }], {
      records: (stateDir) =>
        new (class extends FsRecordStore {
          override get(id: string): Promise<SessionRecord | undefined> {
            // A broken store, not a missing session.
            if (failReads) return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
            return super.get(id);
          }
        })(stateDir, { logger: pino({ level: 'silent' }) }),
    });
  });
  after(() => t.stop());

  it('a reply URL whose session record cannot be read is a 500 with an error line, not a silent 404', async () => {
    const path = '/files/BITS-Sessions/Replies/A0FF5911-4144-45B3-BF27-27AFC8EC8A67/tok/responsefile.bin';
    assert.equal((await t.get(path)).status, 404, 'an unknown session is not found');
    failReads = true;
    try {
      assert.equal((await t.get(path)).status, 500);
    } finally {
      failReads = false;
    }
    const line = t.lines.filter((l) => l['msg'] === 'request' && String(l['url']).startsWith('/files/BITS-Sessions/')).at(-1);
    assert.equal(line?.['status'], 500);
    assert.equal(line?.['code'], 'BITS_INTERNAL');
    assert.match(String(line?.['reason']), /EIO/);
    assert.ok(t.lines.some((l) => l['msg'] === 'download failed' && l['level'] === 50));
  });
});
