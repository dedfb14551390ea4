// Servers in the wild differ: BITS-Error vs BITS-Error-Code, opaque session ids, 201, Acks without
// BITS-Session-Id or BITS-Received-Content-Range, odd Pings; Basic auth and custom headers.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { readAck } from '../src/protocol/ack-info.js';
import { hostIdUrl } from '../src/protocol/host-id.js';
import { classifyServerError } from '../src/client/retry-policy.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import { randomFile } from './helpers/client-files.js';

describe('client dialects', () => {
  let dir: string;
  let file: string;
  let content: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-dialects-'));
    file = join(dir, 'a.bin');
    await randomFile(file, 70_000);
    content = await readFile(file);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads Acks liberally (pure)', () => {
    assert.equal(readAck(500, { 'bits-error': '0x8020001f' }).hresult, 0x8020001f);
    assert.equal(readAck(500, { 'bits-error-code': '8020001F', 'bits-error-context': '0x7' }).errorContext, 7);
    assert.equal(readAck(200, { 'bits-error-code': '1' }).hresult, undefined, 'error headers on success are ignored');
    assert.equal(readAck(416, { 'bits-error-code': '0', 'bits-received-content-range': '100' }).hresult, undefined);
    assert.equal(readAck(201, { 'bits-session-id': '12345' }).ok, true);
    assert.equal(readAck(200, { 'bits-received-content-range': 'garbage' }).receivedContentRange, undefined);
    assert.equal(readAck(416, { 'bits-recieved-content-range': '100' }).receivedContentRange, 100, 'gobits/bitsrv spelling');
    assert.equal(readAck(200, { 'bits-host-id-fallback-timeout': '10' }).hostIdFallbackTimeout, undefined, 'only with a Host-Id');
    assert.equal(hostIdUrl(new URL('http://farm:8080/up/a'), 'node1')?.href, 'http://node1:8080/up/a');
    assert.equal(hostIdUrl(new URL('http://farm:8080/up/a'), '10.1.2.3:99')?.href, 'http://10.1.2.3:99/up/a');
    assert.equal(hostIdUrl(new URL('https://farm/up/a'), '::1')?.href, 'https://[::1]/up/a');
    assert.equal(hostIdUrl(new URL('http://farm/up/a'), '[::1]:81')?.href, 'http://[::1]:81/up/a');
  });

  it('classifies errors as spec §7.2 says', () => {
    const cases: [number, number | undefined, string][] = [
      [300, undefined, 'fatal'], [305, undefined, 'fatal'], [307, undefined, 'fatal'], [306, undefined, 'transient'], [308, undefined, 'transient'],
      [400, undefined, 'fatal'], [403, undefined, 'fatal'], [404, undefined, 'fatal'], [408, undefined, 'transient'], [409, undefined, 'transient'],
      [500, undefined, 'transient'], [501, undefined, 'fatal'], [503, undefined, 'transient'], [505, undefined, 'fatal'], [199, undefined, 'transient'],
      [409, 0x80070005, 'fatal'], [500, 0x80200020, 'fatal'], [500, 0x80070070, 'transient'], [408, 0x80070112, 'transient'], [500, 0x80070057, 'fatal'],
    ];
    for (const [status, hresult, kind] of cases) assert.equal(classifyServerError(status, hresult), kind, `${status} ${hresult?.toString(16)}`);
  });

  it('opaque decimal session ids, 201 on Create-Session, Acks without session id or received range, odd Ping', async () => {
    const server = await startFakeBitsServer({
      sessionId: (n) => String(1234567890 + n),
      createStatus: 201,
      omitSessionIdOnAcks: true,
      omitReceivedRange: true,
      oddPing: true,
    });
    try {
      const result = await upload({ file, url: `http://127.0.0.1:${server.port}/up/a.bin`, fragmentSize: 30_000, stateDir: false, retryDelayMs: 10 }).result;
      assert.equal(result.sessionId, '1234567890');
      assert.deepEqual(server.state.committed.get('/up/a.bin'), content);
      const fragments = server.requests.filter((r) => r.headers['bits-packet-type'] === 'Fragment');
      assert.ok(fragments.every((r) => r.headers['bits-session-id'] === '1234567890'), 'the id is sent back verbatim');
      assert.deepEqual(fragments.map((r) => r.headers['content-range']), ['bytes 0-29999/70000', 'bytes 30000-59999/70000', 'bytes 60000-69999/70000']);
      const create = server.requests.find((r) => r.headers['bits-packet-type'] === 'Create-Session')!;
      assert.equal(create.headers['bits-supported-protocols'], '{7df0354d-249b-430f-820d-3d2a9bef4931}');
      assert.equal(create.headers['content-name'], 'a.bin');
      assert.equal(create.headers['content-length'], '0');
    } finally {
      await server.close();
    }
  });

  it('accepts BITS-Error as the error header (session lost → new session; BG_E_TOO_LARGE fatal)', async () => {
    let lost = false;
    const server = await startFakeBitsServer({
      errorHeader: 'BITS-Error',
      sessionId: (n) => `s${n}`,
      override: (req, state) => {
        if (req.headers['bits-packet-type'] === 'Fragment' && !lost && req.headers['content-range']?.startsWith('bytes 30000-')) {
          lost = true;
          state.sessions.clear();
        }
        return undefined;
      },
    });
    try {
      const result = await upload({ file, url: `http://127.0.0.1:${server.port}/up/a.bin`, fragmentSize: 30_000, stateDir: false, retryDelayMs: 10 }).result;
      assert.equal(result.sessionId, 's1');
      assert.deepEqual(server.state.committed.get('/up/a.bin'), content);
    } finally {
      await server.close();
    }
    const tooLarge = await startFakeBitsServer({
      errorHeader: 'BITS-Error',
      override: (req) =>
        req.headers['bits-packet-type'] === 'Fragment'
          ? { status: 500, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error': '0x80200020', 'BITS-Error-Context': '0x5' } }
          : undefined,
    });
    try {
      await assert.rejects(upload({ file, url: `http://127.0.0.1:${tooLarge.port}/up/a.bin`, stateDir: false, retryDelayMs: 10 }).result, (err: BitsClientError) => {
        assert.equal(err.hresultName, 'BG_E_TOO_LARGE');
        assert.equal(err.kind, 'fatal');
        return true;
      });
      assert.equal(tooLarge.state.log.filter((l) => l === 'fragment').length, 1);
    } finally {
      await tooLarge.close();
    }
  });

  it('Basic auth from the URL or --user, custom headers on every request', async () => {
    const auth = `Basic ${Buffer.from('bob:p@ss:word').toString('base64')}`;
    const server = await startFakeBitsServer({ authorization: auth });
    try {
      await upload({
        file,
        url: `http://bob:p%40ss%3Aword@127.0.0.1:${server.port}/up/a.bin`,
        headers: { 'X-Tenant': '42', 'X-Trace': 'abc' },
        stateDir: false,
        retryDelayMs: 10,
      }).result;
      assert.ok(server.requests.length >= 4);
      for (const r of server.requests) {
        assert.equal(r.headers['authorization'], auth);
        assert.equal(r.headers['x-tenant'], '42');
        assert.equal(r.headers['x-trace'], 'abc');
        assert.ok(!r.path.includes('bob'));
      }
      server.requests.length = 0;
      await upload({ file, url: `http://127.0.0.1:${server.port}/up/b.bin`, user: 'bob:p@ss:word', stateDir: false, retryDelayMs: 10 }).result;
      assert.ok(server.requests.every((r) => r.headers['authorization'] === auth));
      // Wrong credentials: 401 is fatal at once.
      server.requests.length = 0;
      await assert.rejects(upload({ file, url: `http://127.0.0.1:${server.port}/up/c.bin`, user: 'bob:wrong', stateDir: false, retryDelayMs: 10 }).result, {
        status: 401,
        kind: 'fatal',
      });
      assert.equal(server.requests.length, 1);
    } finally {
      await server.close();
    }
  });
});
