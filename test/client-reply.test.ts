// Upload-reply: the client resolves BITS-Reply-URL (absolute, relative, IIS backslash form), downloads
// the reply resumably from the original host, and only then sends Close-Session. Against a fake BITS
// server (our server does not produce reply URLs yet).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { resolveReplyUrl } from '../src/protocol/reply-url.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import type { FakeBitsOptions } from './helpers/fake-bits-server.js';
import { randomFile } from './helpers/client-files.js';
import { startServer } from './helpers/bits-server.js';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

describe('upload-reply', () => {
  let dir: string;
  let file: string;
  let content: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-reply-'));
    file = join(dir, 'request.bin');
    await randomFile(file, 300_000);
    content = await readFile(file);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('resolves the reply URL forms', () => {
    const base = new URL('http://u:p@farm:8080/vdir/sub/file.bin?x=1');
    assert.equal(resolveReplyUrl('http://cdn.example/r/1.bin', base).href, 'http://cdn.example/r/1.bin');
    assert.equal(resolveReplyUrl('replies/1.bin', base).href, 'http://farm:8080/vdir/sub/replies/1.bin');
    assert.equal(resolveReplyUrl('/abs/1.bin', base).href, 'http://farm:8080/abs/1.bin');
    assert.equal(
      resolveReplyUrl('BITS-Sessions\\Replies\\{C85B4E0A-1F0C-4B2B-9C3E-3F7C3C2E1A11}\\responsefile.bin', base).href,
      'http://farm:8080/vdir/sub/BITS-Sessions/Replies/%7BC85B4E0A-1F0C-4B2B-9C3E-3F7C3C2E1A11%7D/responsefile.bin',
    );
  });

  const forms: [string, Pick<FakeBitsOptions, 'replyUrl' | 'replyPath'>][] = [
    ['absolute', { replyUrl: (port, id) => `http://127.0.0.1:${port}/replies/${encodeURIComponent(id)}.bin`, replyPath: (id) => `/replies/${id}.bin` }],
    ['relative', { replyUrl: (_port, id) => `replies/${encodeURIComponent(id)}/reply.bin`, replyPath: (id) => `/up/replies/${id}/reply.bin` }],
    [
      'IIS backslash',
      { replyUrl: (_port, id) => `BITS-Sessions\\Replies\\${id}\\responsefile.bin`, replyPath: (id) => `/up/BITS-Sessions/Replies/${id}/responsefile.bin` },
    ],
  ];
  for (const [name, form] of forms) {
    it(`downloads a reply given in ${name} form to a file, then closes the session`, async () => {
      const reply = randomBytes(50_000);
      // The IIS case also hands out a Host-Id: packets then go to "localhost", the reply still comes
      // from the original host (as in the spec's capture).
      const hostId = name === 'IIS backslash' ? { hostId: 'localhost', hostIdFallbackTimeout: 30 } : {};
      const server = await startFakeBitsServer({ ...form, reply, ...hostId });
      try {
        const replyFile = join(dir, `reply-${name}.bin`);
        const result = await upload({
          file,
          url: `http://127.0.0.1:${server.port}/up/request.bin`,
          fragmentSize: 100_000,
          replyFile,
          stateDir: false,
          retryDelayMs: 10,
        }).result;
        assert.deepEqual(await readFile(replyFile), reply);
        assert.equal(result.reply?.bytes, reply.length);
        assert.equal(result.reply?.file, replyFile);
        assert.deepEqual(server.state.committed.get('/up/request.bin'), content);
        const log = server.state.log;
        const get = log.findIndex((l) => l.startsWith('GET '));
        assert.ok(get > 0 && get < log.indexOf('close-session'), `reply fetched before Close-Session: ${log.join(', ')}`);
        assert.ok(log.includes(`HEAD ${log[get]!.slice(4)}`));
        if (name === 'IIS backslash') {
          const hosts = (type: string) => server.requests.filter((r) => (r.headers['bits-packet-type'] ?? r.method) === type).map((r) => r.headers['host']);
          assert.deepEqual([...new Set(hosts('Fragment'))], [`localhost:${server.port}`]);
          assert.deepEqual([...new Set(hosts('Close-Session'))], [`localhost:${server.port}`]);
          assert.deepEqual([...new Set(hosts('Create-Session'))], [`127.0.0.1:${server.port}`]);
          assert.deepEqual([...new Set(hosts('GET'))], [`127.0.0.1:${server.port}`]);
        }
      } finally {
        await server.close();
      }
    });
  }

  it('keeps a reply in memory, resumes it with Range after a cut', async () => {
    const reply = randomBytes(200_000);
    const server = await startFakeBitsServer({ ...forms[2]![1], reply, cutFirstReplyGetAfter: 70_000, createStatus: 201 });
    try {
      const job = upload({ file, url: `http://127.0.0.1:${server.port}/up/request.bin`, stateDir: false, retryDelayMs: 10 });
      const replyProgress: number[] = [];
      job.on('progress', (p) => p.phase === 'reply' && replyProgress.push(p.bytesDone));
      const result = await job.result;
      assert.deepEqual(result.reply?.data, reply);
      assert.equal(result.reply?.file, undefined);
      const gets = server.requests.filter((r) => r.method === 'GET');
      assert.equal(gets.length, 2);
      assert.equal(gets[0]!.headers['range'], undefined, 'the first GET asks for the whole file');
      assert.equal(gets[1]!.headers['range'], `bytes=${70_000}-${200_000 - 1}`);
      assert.equal(gets[1]!.headers['if-range'], '"reply-1"');
      assert.equal(gets[1]!.headers['accept-encoding'], 'identity');
      assert.ok(replyProgress.includes(70_000));
      assert.ok(server.state.committed.has('/up/request.bin'));
    } finally {
      await server.close();
    }
  });

  it('a reply over 1 MiB without a reply file is an error (BG_E_TOO_LARGE); the session stays for a retry', async () => {
    const server = await startFakeBitsServer({ ...forms[1]![1], reply: Buffer.alloc(1024 * 1024 + 1) });
    try {
      const job = upload({ file, url: `http://127.0.0.1:${server.port}/up/request.bin`, stateDir: false, retryDelayMs: 10 });
      await assert.rejects(job.result, (err: BitsClientError) => {
        assert.equal(err.code, 'BITS_CLIENT_REPLY_TOO_LARGE');
        assert.equal(err.hresultName, 'BG_E_TOO_LARGE');
        return true;
      });
      assert.ok(!server.state.log.includes('close-session'));
      assert.ok(!server.state.log.some((l) => l.startsWith('GET ')), 'HEAD told the size: no GET');
    } finally {
      await server.close();
    }
  });

  it('fetches the reply from the original host, not the Host-Id host, and sends no credentials or custom headers to another origin', async () => {
    const reply = Buffer.from('thanks');
    const replyHost = await startFakeBitsServer({ replyPath: () => '/r.bin', reply });
    // The reply host serves the reply of whatever session the main server created: share ids.
    const server = await startFakeBitsServer({
      sessionId: () => 'opaque-42',
      replyUrl: () => `http://127.0.0.1:${replyHost.port}/r.bin`,
      hostId: '127.0.0.1',
      hostIdFallbackTimeout: 30,
    });
    replyHost.state.sessions.set('opaque-42', { path: '/r.bin', data: [], received: 0, total: 0 });
    try {
      const result = await upload({
        file,
        url: `http://127.0.0.1:${server.port}/up/request.bin`,
        user: 'alice:secret',
        headers: { 'X-Api-Key': 'tenant-key-7' },
        stateDir: false,
        retryDelayMs: 10,
      }).result;
      assert.equal(result.reply?.data?.toString(), 'thanks');
      assert.equal(result.sessionId, 'opaque-42');
      assert.ok(server.requests.every((r) => r.headers['authorization'] === `Basic ${Buffer.from('alice:secret').toString('base64')}`));
      assert.ok(server.requests.every((r) => r.headers['x-api-key'] === 'tenant-key-7'), 'custom headers go to the upload host');
      assert.ok(replyHost.requests.length > 0);
      assert.ok(replyHost.requests.every((r) => r.headers['authorization'] === undefined));
      assert.ok(replyHost.requests.every((r) => r.headers['x-api-key'] === undefined), 'custom headers stay with the upload host');
    } finally {
      await server.close();
      await replyHost.close();
    }
  });

  it('without a reply URL the upload simply completes (no reply)', async () => {
    const server = await startFakeBitsServer({});
    try {
      const replyFile = join(dir, 'never.bin');
      const result = await upload({ file, url: `http://127.0.0.1:${server.port}/up/x.bin`, replyFile, stateDir: false, retryDelayMs: 10 }).result;
      assert.equal(result.reply, undefined);
      await assert.rejects(stat(replyFile), { code: 'ENOENT' });
    } finally {
      await server.close();
    }
  });
});

describe('upload-reply against our own server (notification by value and by reference)', () => {
  it('gets the application\'s reply both ways, by file and in memory, and Close-Session ends the session', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bits-reply-own-'));
    // The server application: answers with the sha256 of what was uploaded.
    const app = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          const requestFile = req.headers['bits-request-datafile-name'] as string | undefined;
          const body = requestFile ? await readFile(requestFile) : Buffer.concat(chunks);
          const reply = `sha256=${createHash('sha256').update(body).digest('hex')}`;
          if (requestFile) {
            await writeFile(req.headers['bits-response-datafile-name'] as string, reply);
            res.writeHead(200, { 'Content-Length': '0' }).end();
          } else {
            res.writeHead(200, { 'Content-Length': Buffer.byteLength(reply) }).end(reply);
          }
        })();
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/n`;
    const t = await startServer({
      vdirs: [
        { path: '/val', directory: './val', notificationType: 'by-value', notificationUrl: appUrl },
        { path: '/ref', directory: './ref', notificationType: 'by-reference', notificationUrl: appUrl },
      ],
    });
    try {
      const file = join(dir, 'report.bin');
      const sha = await randomFile(file, 3 * 1024 * 1024 + 17);
      for (const vdir of ['val', 'ref']) {
        const replyFile = join(dir, `reply-${vdir}.txt`);
        const byFile = await upload({ file, url: `http://127.0.0.1:${t.port}/${vdir}/report.bin`, fragmentSize: 1024 * 1024, replyFile, stateDir: false, retryDelayMs: 10 }).result;
        assert.equal(await readFile(replyFile, 'utf8'), `sha256=${sha}`);
        assert.match(byFile.reply!.url, new RegExp(`^http://127\\.0\\.0\\.1:${t.port}/${vdir}/BITS-Sessions/Replies/`));
        const inMemory = await upload({ file, url: `http://127.0.0.1:${t.port}/${vdir}/again.bin`, stateDir: false, retryDelayMs: 10 }).result;
        assert.equal(inMemory.reply!.data!.toString(), `sha256=${sha}`);
        // Close-Session came after the reply download: the reply is gone now (spec case 58).
        const gone = await fetch(inMemory.reply!.url);
        assert.equal(gone.status, 404);
        await gone.arrayBuffer();
      }
    } finally {
      await t.stop();
      app.closeAllConnections();
      await new Promise((r) => app.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
