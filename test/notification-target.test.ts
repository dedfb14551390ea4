// Where notifications go and which URL they name come from configuration only (publicUrl, else the
// listener), never from the client's Host header or request target; spec §15 case 51 kept.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { parseConfig } from '../src/server/config.js';
import { listenerOrigin } from '../src/server/notification/public-url.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startApp } from './helpers/notify-app.js';
import type { TestApp } from './helpers/notify-app.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import type { BitsRequest, RawResponse } from './helpers/raw-http.js';

describe('notification target and BITS-Original-Request-URL (no Host header)', () => {
  let app: TestApp;
  let t: TestServer;
  let hookUrls: string[];
  before(async () => {
    app = await startApp();
    hookUrls = [];
    const appUrl = `http://127.0.0.1:${app.port}/n`;
    t = await startServer({
      vdirs: [
        { path: '/abs', directory: './abs', notificationType: 'by-value', notificationUrl: appUrl },
        { path: '/self', directory: './self', notificationType: 'by-value', notificationUrl: 'n.asp' },
        { path: '/hook', directory: './hook' },
      ],
      hooks: {
        '/hook': {
          onUploadComplete: (upload) => {
            hookUrls.push(upload.url);
            return { reply: 'ok' };
          },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await app?.close();
  });
  beforeEach(() => {
    app.seen.length = 0;
    hookUrls.length = 0;
  });

  async function complete(path: string, target: string, host: string): Promise<RawResponse> {
    const id = await t.createSession(path);
    return t.request({ ...fragmentRequest(target, id, 0, Buffer.from('data'), 4), host });
  }

  it('5/51: a relative notificationUrl resolves on the listener, whatever Host the client sends', async () => {
    // Host names the application's port: before, the upload was POSTed there.
    const ack = await complete('/self/sub/f.bin', '/self/sub/f.bin?ACCOUNT=1', `127.0.0.1:${app.port}`);
    assert.equal(app.seen.length, 0, 'the application the Host header named was not contacted');
    // The listener is this BITS server: its POST /self/sub/n.asp?ACCOUNT=1 gets 405 there.
    assertErr(ack, 405, '0x80190195', '0x7');
  });

  it('5: BITS-Original-Request-URL names the listener, not the Host header or an absolute-form target', async () => {
    assertAck(await complete('/abs/a.bin', '/abs/a.bin?x=1', 'evil.example:1'));
    assert.equal(app.seen[0]!.headers['bits-original-request-url'], `http://127.0.0.1:${t.port}/abs/a.bin?x=1`);
    assertAck(await complete('/abs/b.bin', 'http://evil.example:1/abs/b.bin', 'evil.example:1'));
    assert.equal(app.seen[1]!.headers['bits-original-request-url'], `http://127.0.0.1:${t.port}/abs/b.bin`);
  });

  it("5: a hook's upload.url comes from the listener too", async () => {
    assertAck(await complete('/hook/h.bin', '/hook/h.bin?q=2', 'evil.example:1'));
    assert.deepEqual(hookUrls, [`http://127.0.0.1:${t.port}/hook/h.bin?q=2`]);
  });
});

describe('publicUrl: the server-wide one, and a vdir that overrides it', () => {
  let app: TestApp;
  let t: TestServer;
  before(async () => {
    app = await startApp();
    t = await startServer({
      config: { publicUrl: 'https://bits.example.com/' },
      vdirs: [
        { path: '/a', directory: './a', notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${app.port}/n` },
        // (the application's origin stands for a proxy that routes /b/…/n.asp to it)
        { path: '/b', directory: './b', notificationType: 'by-reference', notificationUrl: 'n.asp', publicUrl: `http://127.0.0.1:${app.port}` },
      ],
    });
  });
  after(async () => {
    await t?.stop();
    await app?.close();
  });

  it('5: the vdir inherits the server publicUrl; a relative URL resolves on the vdir publicUrl', async () => {
    const a = await t.createSession('/a/x.bin');
    assertAck(await t.request({ ...fragmentRequest('/a/x.bin', a, 0, Buffer.from('x'), 1), host: `127.0.0.1:${app.port}` }));
    assert.equal(app.seen[0]!.headers['bits-original-request-url'], 'https://bits.example.com/a/x.bin');
    const b = await t.createSession('/b/sub/y.bin');
    assertAck(await t.request({ ...fragmentRequest('/b/sub/y.bin?k=v', b, 0, Buffer.from('y'), 1), host: 'evil.example:1' }));
    assert.equal(app.seen[1]!.url, '/b/sub/n.asp?k=v');
    assert.equal(app.seen[1]!.headers['bits-original-request-url'], `http://127.0.0.1:${app.port}/b/sub/y.bin?k=v`);
  });
});

describe('notificationUrl and publicUrl are checked at config load', () => {
  const load = (vdir: Record<string, unknown>, top: Partial<ServerConfigInput> = {}) =>
    parseConfig({ ...top, vdirs: [{ path: '/up', directory: './up', notificationType: 'by-value', ...vdir }] }, '/tmp');

  it('5/51: paths relative to the upload directory and http(s) URLs are accepted', () => {
    const relative = ['n.asp', 'sub/n.asp', './v1.2/n', 'v1.2/n', '../n', '/app/n', 'n.asp?x=1', 'n', 'notify.aspx', 'hook.php', 'upload.do', 'submit.action', 'index.html', 'n.asp#top', './app.example.com'];
    for (const url of [...relative, 'http://app/n', 'https://app.example.com:8443/n?x=1']) {
      assert.equal(load({ notificationUrl: url }).vdirs[0]!.notificationUrl, url);
    }
  });

  it('5: a host-looking notificationUrl without a scheme is an error naming the key', () => {
    for (const url of ['app.example.com/n', 'localhost:9000/n', 'localhost/n', '127.0.0.1/n', '//evil.example/n', '\\\\evil.example\\n', '/\t/evil.example/n', 'ftp://app/n', 'http:n']) {
      assert.throws(() => load({ notificationUrl: url }), /vdirs\[0\]\.notificationUrl: /, url);
    }
    assert.throws(() => load({ notificationUrl: 'app.example.com/n' }), /write http:\/\/app\.example\.com\/n/);
  });

  it('5: a bare host without a path (or with only a query) is an error too, not a path to the server itself', () => {
    const hosts = [
      'localhost', 'LOCALHOST', 'app.localhost', '10.0.0.5', '127.1', '10.0.0.5?x=1', '[::1]', '::1', '[::1]:8080/n', 'user@app', 'user@app/n',
      'app.example.com', 'app.example.com?x=1', 'app.example.com#f', 'app.example.com.', 'example.io', 'intake.local', 'svc.internal',
      'bits.lan', 'bits.corp', 'acme.online', 'bits.acme.xyz',
    ];
    for (const url of hosts) assert.throws(() => load({ notificationUrl: url }), /vdirs\[0\]\.notificationUrl: .*looks like a host/, url);
    assert.throws(() => load({ notificationUrl: 'app.example.com?x=1' }), /write http:\/\/app\.example\.com\?x=1, or \.\/app\.example\.com\?x=1/);
  });

  it('5: publicUrl must be an http(s) origin; the server one is inherited, normalised', () => {
    const config = load({ notificationUrl: 'n' }, { publicUrl: 'HTTPS://Bits.Example.com:443/' });
    assert.equal(config.publicUrl, 'https://bits.example.com');
    assert.equal(config.vdirs[0]!.publicUrl, 'https://bits.example.com');
    assert.equal(load({ notificationUrl: 'n', publicUrl: 'http://10.0.0.5:8080' }, { publicUrl: 'https://x.example' }).vdirs[0]!.publicUrl, 'http://10.0.0.5:8080');
    for (const bad of ['bits.example.com', 'https://bits.example.com/up', 'https://u:p@bits.example.com', 'ftp://bits.example.com', 'https://bits.example.com/?q=1']) {
      assert.throws(() => load({}, { publicUrl: bad }), /\n {2}publicUrl: /, bad);
      assert.throws(() => load({ publicUrl: bad }), /vdirs\[0\]\.publicUrl: /, bad);
    }
  });
});

/** Whether this machine can listen on the IPv6 loopback. */
async function hasIpv6Loopback(): Promise<boolean> {
  const probe = net.createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}

describe('listener origins of IPv6 listeners', () => {
  it('5: an address with a zone (fe80::1%lo) gives an origin without it: URLs cannot carry a zone', () => {
    assert.equal(listenerOrigin('fe80::1%lo', 8080, false), 'http://[fe80::1]:8080');
    assert.equal(listenerOrigin('[fe80::1%25eth0]', 8443, true), 'https://[fe80::1]:8443');
    assert.equal(listenerOrigin('::1', 80, false), 'http://[::1]');
    assert.equal(listenerOrigin('::', 8080, false), 'http://127.0.0.1:8080');
  });

  for (const host of ['::1', '::1%lo']) {
    it(`5: a server listening on ${host} starts and names [::1] in a hook's upload.url`, async (ctx) => {
      if (!(await hasIpv6Loopback())) {
        console.warn(`SKIPPED: no IPv6 loopback on this machine, the ${host} listener is not tested`);
        ctx.skip('no IPv6 loopback');
        return;
      }
      const urls: string[] = [];
      const t = await startServer({
        config: { listen: { host, port: 0 } },
        vdirs: [{ path: '/hook', directory: './hook' }],
        hooks: { '/hook': { onUploadComplete: (upload) => void urls.push(upload.url) } },
      });
      try {
        const send = async (r: BitsRequest): Promise<RawResponse> => {
          const c = await RawConnection.connect(t.port, '::1');
          try {
            await c.write(bitsRequestBytes(r));
            return await c.read();
          } finally {
            c.close();
          }
        };
        const created = await send({ type: 'Create-Session', path: '/hook/v6.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } });
        assertAck(created);
        assertAck(await send(fragmentRequest('/hook/v6.bin', created.headers['bits-session-id']!, 0, Buffer.from('v6'), 2)));
        assert.deepEqual(urls, [`http://[::1]:${t.port}/hook/v6.bin`]);
      } finally {
        await t.stop();
      }
    });
  }
});
