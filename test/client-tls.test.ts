// HTTPS: a custom CA (--ca), --insecure, and a certificate failure that is fatal at once.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import type { BitsClientError } from '../src/client/errors.js';
import { CLI } from './helpers/cli.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { randomFile, sha256File } from './helpers/client-files.js';

function bits(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('HTTPS', () => {
  let t: TestServer;
  let dir: string;
  let certPath: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-client-tls-'));
    certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    t = await startServer({ config: { tls: { cert: certPath, key: keyPath } } });
  });
  after(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads over HTTPS trusting the server through --ca, or with --insecure', async () => {
    const file = join(dir, 'a.bin');
    const sha = await randomFile(file, 200_000);
    const r = await bits(['upload', file, `https://127.0.0.1:${t.port}/up/a.bin`, '--ca', certPath, '--state-dir', join(dir, 's'), '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(join(t.uploads, 'a.bin')), sha);
    const r2 = await bits(['upload', file, `https://localhost:${t.port}/up/b.bin`, '--insecure', '--state-dir', join(dir, 's'), '--quiet']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await sha256File(join(t.uploads, 'b.bin')), sha);
  });

  it('an untrusted certificate is fatal at once (exit 1), with a hint', async () => {
    const file = join(dir, 'c.bin');
    await randomFile(file, 1000);
    const r = await bits(['upload', file, `https://127.0.0.1:${t.port}/up/c.bin`, '--state-dir', join(dir, 's'), '--retry-delay', '0.01']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /TLS: .*(self[- ]signed|certificate).*--ca.*--insecure/i);
    assert.doesNotMatch(r.stdout, /retry/);
    // The library, with the CA's PEM text.
    const ca = await readFile(certPath, 'utf8');
    await upload({ file, url: `https://127.0.0.1:${t.port}/up/d.bin`, ca, stateDir: false }).result;
    await assert.rejects(upload({ file, url: `https://127.0.0.1:${t.port}/up/e.bin`, stateDir: false }).result, (err: BitsClientError) => err.kind === 'fatal');
  });
});
