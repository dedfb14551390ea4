// bits upload / download / jobs / resume / cancel as child processes: output modes, exit codes 0/1/2/3,
// a SIGKILLed upload finished by `bits resume`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { UploadRecord } from '../src/client/journal.js';
import { CLI } from './helpers/cli.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import { runCli } from './helpers/cli-run.js';
import { deadPort } from './helpers/dead-port.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

/** Runs the CLI asynchronously (the in-process servers must keep serving meanwhile). */
const bits = (args: string[]): Promise<Run> => start(args).done;

async function journal(stateDir: string): Promise<UploadRecord[]> {
  const dir = join(stateDir, 'jobs');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: UploadRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    try {
      out.push(JSON.parse(await readFile(join(dir, n), 'utf8')) as UploadRecord);
    } catch {
      /* being replaced */
    }
  }
  return out;
}

describe('bits upload / download / jobs / resume / cancel', () => {
  let t: TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let n = 0;
  before(async () => {
    t = await startServer({ vdir: { downloadEnabled: true } });
    proxy = await startFaultProxy({ port: t.port });
    dir = await mkdtemp(join(tmpdir(), 'bits-client-cli-'));
  });
  after(async () => {
    await proxy.close();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `c${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, size);
    return { name, file, sha, stateDir: join(dir, `state-${name}`) };
  };

  it('uploads with plain progress lines when stdout is not a terminal, then downloads it back', async () => {
    const f = await fresh(300_000);
    const r = await bits(['upload', f.file, `http://127.0.0.1:${t.port}/up/${f.name}`, '--state-dir', f.stateDir, '--fragment-size', '100000']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^upload [0-9a-f]{12}: .*c\d+\.bin \(293\.0 KiB\) → http:\/\/127\.0\.0\.1:\d+\/up\/c\d+\.bin$/m);
    assert.match(r.stdout, /^upload [0-9a-f]{12}: session \{[0-9A-F-]{36}\}$/m);
    assert.match(r.stdout, /^upload [0-9a-f]{12}: done: 293\.0 KiB in [\d.]+ s/m);
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no terminal escapes');
    assert.equal(await sha256File(join(t.uploads, f.name)), f.sha);
    const out = join(dir, `back-${f.name}`);
    const d = await bits(['download', `http://127.0.0.1:${t.port}/up/${f.name}`, out, '--state-dir', f.stateDir]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(await sha256File(out), f.sha);
    assert.match(d.stdout, /done: 293\.0 KiB/);
  });

  it('--json prints one event per line; --quiet prints nothing', async () => {
    const f = await fresh(200_000);
    const r = await bits(['upload', f.file, `http://127.0.0.1:${t.port}/up/${f.name}`, '--state-dir', f.stateDir, '--fragment-size', '50000', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const kinds = new Set(events.map((e) => e['event']));
    for (const k of ['state', 'session', 'progress', 'done']) assert.ok(kinds.has(k), `${k} event`);
    const done = events.find((e) => e['event'] === 'done')!;
    assert.equal(done['bytes'], 200_000);
    assert.equal(events.at(-1)!['event'], 'done');
    const last = events.filter((e) => e['event'] === 'progress').at(-1)!;
    assert.deepEqual([last['bytesDone'], last['bytesTotal']], [200_000, 200_000]);
    const g = await fresh(10);
    const q = await bits(['upload', g.file, `http://127.0.0.1:${t.port}/up/${g.name}`, '--state-dir', g.stateDir, '--quiet']);
    assert.equal(q.code, 0);
    assert.equal(q.stdout, '');
    assert.equal(q.stderr, '');
  });

  it('usage errors exit 2', async () => {
    const f = await fresh(10);
    const url = `http://127.0.0.1:${t.port}/up/${f.name}`;
    const cases: [string[], RegExp][] = [
      [['upload', f.file, url, '--fragment-size', 'abc'], /--fragment-size/],
      [['upload', f.file, 'ftp://h/x'], /not an http/],
      [['upload', join(dir, 'nope.bin'), url], /not a readable file/],
      [['upload', f.file, url, '--header', 'no colon'], /--header/],
      [['upload', f.file, url, '--retry-delay', '-1'], /--retry-delay/],
      [['upload', f.file, url, '--no-progress-timeout', 'x'], /--no-progress-timeout/],
      [['upload', f.file, url, '--idle-timeout', '0'], /--idle-timeout must be more than 0/],
      [['upload', f.file, url, '--idle-timeout', 'soon'], /--idle-timeout/],
      [['upload', f.file, url, '--user', 'nopassword'], /--user/],
      [['upload', f.file, url, '--ca', join(dir, 'none.pem')], /--ca/],
      [['upload', f.file, url, '--bogus'], /unknown option/],
      [['upload', f.file], /missing required argument/],
      [['cancel', 'ffffffffffff', '--state-dir', f.stateDir], /no job/],
      [['resume', 'ffffffffffff', '--state-dir', f.stateDir], /no job/],
    ];
    for (const [args, pattern] of cases) {
      const r = await bits(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  });

  it('URL user information: never echoed in errors; a user name alone takes BITS_PASSWORD like --user', async () => {
    const f = await fresh(10);
    const secret = 'S3cret-pw';
    const refused: [string, RegExp][] = [
      [`ftp://bob:${secret}@127.0.0.1/x`, /"ftp:\/\/127\.0\.0\.1\/x" is not an http:\/\/ or https:\/\/ URL/],
      [`http://bob:${secret}@[::1/x`, /"http:\/\/\[::1\/x" is not a URL/],
      [`http://bob@127.0.0.1:${t.port}/up/${f.name}`, /the URL names the user "bob" without a password: give it in BITS_PASSWORD/],
    ];
    for (const [url, pattern] of refused) {
      const r = await runCli(['upload', f.file, url, '--state-dir', f.stateDir], { BITS_PASSWORD: undefined });
      assert.equal(r.code, 2, `${url}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), 'the password is not echoed');
    }
    const auth = `Basic ${Buffer.from(`bob:${secret}`).toString('base64')}`;
    const server = await startFakeBitsServer({ authorization: auth });
    try {
      const r = await runCli(['upload', f.file, `http://bob@127.0.0.1:${server.port}/up/${f.name}`, '--state-dir', f.stateDir, '--quiet'], { BITS_PASSWORD: secret });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(server.requests.length > 0 && server.requests.every((q) => q.headers['authorization'] === auth));
    } finally {
      await server.close();
    }
  });

  it('a fatal server error exits 1 with status, HRESULT name and context; the job is kept', async () => {
    const off = await startServer({ vdir: { uploadEnabled: false } });
    try {
      const f = await fresh(1000);
      const r = await bits(['upload', f.file, `http://127.0.0.1:${off.port}/up/${f.name}`, '--state-dir', f.stateDir, '--retry-delay', '0.01']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /bits upload: error: Ping http:\/\/127\.0\.0\.1:\d+\/up\/c\d+\.bin: HTTP 501, E_ACCESSDENIED \(0x80070005\), context 0x5 \(remote file\) — BITS uploads are not enabled at this URL/);
      const id = /bits resume ([0-9a-f]{12})/.exec(r.stderr)?.[1];
      assert.ok(id);
      const jobs = await bits(['jobs', '--state-dir', f.stateDir]);
      assert.match(jobs.stdout, new RegExp(`^${id}  upload  error  0/1000  http://127\\.0\\.0\\.1:\\d+/up/c\\d+\\.bin$`, 'm'));
      const c = await bits(['cancel', id.slice(0, 6), '--state-dir', f.stateDir]);
      assert.equal(c.code, 0, c.stderr);
      assert.match((await bits(['jobs', '--state-dir', f.stateDir])).stdout, /^no jobs$/m);
    } finally {
      await off.stop();
    }
  });

  it('no progress within --no-progress-timeout exits 3; the job resumes later', async () => {
    const f = await fresh(150_000);
    const port = await deadPort();
    const r = await bits([
      'upload', f.file, `http://127.0.0.1:${port}/up/${f.name}`,
      '--state-dir', f.stateDir, '--retry-delay', '0.05', '--no-progress-timeout', '0.5',
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /interrupted: .*no progress/);
    assert.match(r.stdout, /retry 1 in 0\.0\d s: Ping http:\/\/127\.0\.0\.1:\d+\/up\/c\d+\.bin: BG_E_CONNECT_FAILURE \(0x8020002D\) — ECONNREFUSED/);
    const id = /bits resume ([0-9a-f]{12})/.exec(r.stderr)![1]!;
    const jobs = await bits(['jobs', '--state-dir', f.stateDir]);
    assert.match(jobs.stdout, new RegExp(`^${id}  upload  interrupted  0/150000`, 'm'));
    // Nothing listens there; a cancel forgets the job (no session to cancel).
    const c = await bits(['cancel', id, '--state-dir', f.stateDir]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(await journal(f.stateDir), []);
  });

  it('SIGKILL mid-upload, then `bits resume` finishes it from where the server stands', async () => {
    const size = 3 * 1024 * 1024;
    const f = await fresh(size);
    proxy.bytesPerSecond = 1024 * 1024;
    const mark = proxy.bytesUp;
    const { child, done } = start([
      'upload', f.file, `http://127.0.0.1:${proxy.port}/up/${f.name}`,
      '--state-dir', f.stateDir, '--fragment-size', '65536', '--retry-delay', '0.05',
    ]);
    let offset = 0;
    const deadline = Date.now() + 20_000;
    while (offset < 512 * 1024 && Date.now() < deadline) {
      await sleep(50);
      offset = (await journal(f.stateDir))[0]?.offset ?? 0;
    }
    child.kill('SIGKILL');
    const killed = await done;
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(offset >= 512 * 1024 && offset < size, `killed mid-upload at ${offset}`);
    proxy.bytesPerSecond = undefined;
    const [record] = await journal(f.stateDir);
    assert.equal(record!.state, 'running', 'the journal still says running: its process is gone');
    const jobs = await bits(['jobs', '--state-dir', f.stateDir]);
    assert.match(jobs.stdout, new RegExp(`^${record!.id}  upload  interrupted  ${record!.offset}/${size}`, 'm'));
    const before = proxy.bytesUp;
    const r = await bits(['resume', '--state-dir', f.stateDir, '--retry-delay', '0.05']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 3\.0 MiB/);
    assert.equal(await sha256File(join(t.uploads, f.name)), f.sha);
    const resent = proxy.bytesUp - before;
    assert.ok(resent <= size - record!.offset + 65536, `resumed, not restarted: ${resent} bytes sent after the kill`);
    assert.ok(proxy.bytesUp - mark < 2 * size);
    assert.deepEqual(await journal(f.stateDir), []);
    assert.match((await bits(['resume', '--state-dir', f.stateDir])).stdout, /nothing to resume/);
  });

  it('SIGINT stops resumably (exit 3); `bits cancel` sends Cancel-Session', async () => {
    const f = await fresh(2 * 1024 * 1024);
    proxy.bytesPerSecond = 512 * 1024;
    try {
      const { child, done } = start(['upload', f.file, `http://127.0.0.1:${proxy.port}/up/${f.name}`, '--state-dir', f.stateDir, '--fragment-size', '65536']);
      const deadline = Date.now() + 20_000;
      while (((await journal(f.stateDir))[0]?.offset ?? 0) < 128 * 1024 && Date.now() < deadline) await sleep(50);
      child.kill('SIGINT');
      const r = await done;
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /interrupted: .*stopped/);
      const [record] = await journal(f.stateDir);
      assert.equal(record!.state, 'interrupted');
      const before = proxy.count('Cancel-Session');
      const c = await bits(['cancel', record!.id, '--state-dir', f.stateDir]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, new RegExp(`cancelled ${record!.id}`));
      assert.equal(proxy.count('Cancel-Session'), before + 1);
      assert.deepEqual(await journal(f.stateDir), []);
    } finally {
      proxy.bytesPerSecond = undefined;
    }
  });

  it('prints a reply kept in memory on stdout (--quiet leaves only the reply)', async () => {
    const reply = randomBytes(3000);
    const server = await startFakeBitsServer({ replyUrl: () => 'reply.bin', replyPath: () => '/up/reply.bin', reply });
    try {
      const f = await fresh(5000);
      const r = start(['upload', f.file, `http://127.0.0.1:${server.port}/up/${f.name}`, '--state-dir', f.stateDir, '--quiet']);
      const chunks: Buffer[] = [];
      r.child.stdout!.removeAllListeners('data');
      r.child.stdout!.on('data', (d: Buffer) => chunks.push(d));
      const res = await r.done;
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(Buffer.concat(chunks), reply);
      const replyFile = join(dir, 'reply-out.bin');
      const g = await fresh(5000);
      const r2 = await bits(['upload', g.file, `http://127.0.0.1:${server.port}/up/${g.name}`, '--state-dir', g.stateDir, '--reply-file', replyFile]);
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(await readFile(replyFile), reply);
      assert.match(r2.stdout, /reply 2\.9 KiB saved to /);
    } finally {
      await server.close();
    }
  });
});
