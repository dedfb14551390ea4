// The crash-dump intake example works end to end with `bits serve --notify-url`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';

const EXAMPLE = fileURLToPath(new URL('../examples/crash-dump-intake.js', import.meta.url));

describe('examples/crash-dump-intake', () => {
  const cleanup: (() => Promise<unknown> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('stores the dump under a ticket and the client gets the ticket as its reply', async () => {
    const base = await mkdtemp(join(tmpdir(), 'bits-example-'));
    cleanup.push(() => rm(base, { recursive: true, force: true }));
    const app = spawn(process.execPath, [EXAMPLE, '--port', '0', '--dir', join(base, 'dumps')], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanup.push(() => void app.kill());
    const appPort = await new Promise<number>((resolve, reject) => {
      setTimeout(() => reject(new Error('example did not start')), 10_000);
      createInterface({ input: app.stdout! }).on('line', (l) => {
        const e = JSON.parse(l) as { port?: number };
        if (e.port) resolve(e.port);
      });
    });
    const server = await startCli(['--root', join(base, 'incoming'), '--state-dir', join(base, 'state'), '--notify-url', `http://127.0.0.1:${appPort}/intake`]);
    cleanup.push(() => void server.child.kill());

    const dump = Buffer.from('MDMP fake minidump '.repeat(1000));
    const c = await RawConnection.connect(server.port);
    cleanup.push(() => c.close());
    const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path: '/app.dmp', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
    const id = created.headers['bits-session-id']!;
    const ack = await exchange(c, bitsRequestBytes({ type: 'Fragment', path: '/app.dmp', sessionId: id, headers: { 'Content-Range': `bytes 0-${dump.length - 1}/${dump.length}` }, body: dump }));
    assert.equal(ack.status, 200);
    const replyPath = new URL(ack.headers['bits-reply-url']!, 'http://localhost/app.dmp').pathname;
    await c.write(`GET ${replyPath} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    const reply = await c.read();
    const ticket = /^ticket=([0-9a-f-]{36})\n$/.exec(reply.body.toString())?.[1];
    assert.ok(ticket, `reply was ${JSON.stringify(reply.body.toString())}`);
    assert.deepEqual(await readFile(join(base, 'dumps', `${ticket}.dmp`)), dump);
    assert.equal((await exchange(c, bitsRequestBytes({ type: 'Close-Session', path: '/app.dmp', sessionId: id }))).status, 200);
    assert.deepEqual(await readdir(join(base, 'incoming')), [], 'not copied to the destination');
  });
});
