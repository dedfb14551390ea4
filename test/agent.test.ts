// `bits agent` as a real child process, driven over its control socket (AgentClient) and the CLI,
// against an in-process server and the fault proxy: queueing while the server is down, SIGKILL of
// the agent, priorities, suspend/resume, multi-file downloads, TRANSFERRED → complete, notify
// commands and URLs, cancel, rate limits.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { AgentJobInfo, AgentJobSpec } from '../src/client/agent-protocol.js';
import { AgentError } from '../src/client/agent-client.js';
import { startAgent } from './helpers/agent-process.js';
import type { AgentProcess } from './helpers/agent-process.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { randomFile as randomContent, sha256File } from './helpers/client-files.js';
import { CLI } from './helpers/cli.js';
import { runCli } from './helpers/cli-run.js';
import { deadPort } from './helpers/dead-port.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { startApp } from './helpers/notify-app.js';
import { tempDir } from './helpers/temp-dir.js';
import type { TempDir } from './helpers/temp-dir.js';

const exists = (p: string): Promise<boolean> => stat(p).then(
  () => true,
  () => false,
);

/** Writes `size` random bytes to `path`; resolves with the path. */
async function randomFile(path: string, size: number): Promise<string> {
  await randomContent(path, size);
  return path;
}

/** Sessions the server holds (its state folder). */
async function serverSessions(t: TestServer): Promise<string[]> {
  return readdir(join(t.stateDir, 'sessions')).catch(() => []);
}

describe('bits agent', () => {
  let t: TestServer;
  let dir: TempDir;
  let agent: AgentProcess;
  let n = 0;
  /** A fresh local path in the test folder. */
  const path = (name: string): string => join(dir.path, `${++n}-${name}`);
  const fast = { minRetryDelayMs: 100 } as const;

  before(async () => {
    dir = await tempDir('bits-agent-');
    t = await startServer({ vdir: { downloadEnabled: true } });
    agent = await startAgent(join(dir.path, 'state'), ['--max-concurrent', '2']);
  });
  after(async () => {
    await agent?.stop();
    await t?.stop();
    await dir?.cleanup();
  });

  const upUrl = (name: string, port = t.port): string => `http://127.0.0.1:${port}/up/${name}`;

  it('uploads in the background: TRANSFERRED holds the commit back until complete, then the file is there', async () => {
    const src = await randomFile(path('src.bin'), 300_000);
    const job = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('held.bin'), file: src }], ...fast });
    assert.equal(job.state, 'QUEUED');
    const transferred = await agent.waitFor(job.id, ['TRANSFERRED']);
    assert.equal(transferred.bytesDone, 300_000);
    // Every byte is at the server, and nothing is committed: Close-Session waits for complete.
    assert.equal(await exists(join(t.uploads, 'held.bin')), false);
    assert.equal((await serverSessions(t)).length >= 1, true);
    await agent.client.complete(job.id);
    const done = await agent.waitFor(job.id, ['ACKNOWLEDGED']);
    assert.ok(done.completedAt !== undefined);
    assert.equal(await sha256File(join(t.uploads, 'held.bin')), await sha256File(src));
  });

  it('a multi-file download job: files appear under their names only at complete', async () => {
    const names = ['d1.bin', 'd2.bin', 'd3.bin'];
    for (const [i, name] of names.entries()) await randomFile(join(t.uploads, name), 100_000 * (i + 1));
    const targets = names.map((name) => path(name));
    const job = await agent.client.enqueue({
      type: 'download',
      files: names.map((name, i) => ({ url: upUrl(name), file: targets[i]! })),
      ...fast,
    });
    const transferred = await agent.waitFor(job.id, ['TRANSFERRED']);
    assert.equal(transferred.bytesTotal, 600_000);
    assert.deepEqual(transferred.files.map((f) => f.done), [true, true, true]);
    for (const target of targets) assert.equal(await exists(target), false, `${target} must not appear before complete`);
    await agent.client.complete(job.id);
    await agent.waitFor(job.id, ['ACKNOWLEDGED']);
    for (const [i, target] of targets.entries()) assert.equal(await sha256File(target), await sha256File(join(t.uploads, names[i]!)));
    // Nothing is left beside them.
    const left = (await readdir(dir.path)).filter((f) => f.includes('.bits-'));
    assert.deepEqual(left, []);
  });

  it('jobs queued while the server is down complete when it comes back', async () => {
    const port = await deadPort();
    const src = await randomFile(path('late.bin'), 200_000);
    const job = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('late.bin', port), file: src }], autoComplete: true, ...fast });
    const waiting = await agent.waitFor(job.id, ['TRANSIENT_ERROR']);
    assert.equal(waiting.error?.code, 'BITS_CLIENT_NETWORK');
    const late = await startServer({ config: { listen: { host: '127.0.0.1', port } } });
    try {
      const done = await agent.waitFor(job.id, ['ACKNOWLEDGED']);
      assert.ok(done.errorCount >= 1);
      assert.equal(await sha256File(join(late.uploads, 'late.bin')), await sha256File(src));
    } finally {
      await late.stop();
    }
  });

  it('suspend stops a transfer where it stands; resume finishes it', async () => {
    const src = await randomFile(path('slow.bin'), 2 * 1024 * 1024);
    const job = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('suspended.bin'), file: src }], maxRateBps: 512 * 1024, autoComplete: true, ...fast });
    await agent.waitFor(job.id, ['TRANSFERRING']);
    await sleep(600);
    const suspended = await agent.client.suspend(job.id);
    assert.equal(suspended.state, 'SUSPENDED');
    const at = (await agent.client.info(job.id)).bytesDone;
    await sleep(1000);
    const later = await agent.client.info(job.id);
    assert.equal(later.state, 'SUSPENDED');
    assert.equal(later.bytesDone, at, 'a suspended job moves no bytes');
    assert.ok(at < 2 * 1024 * 1024, 'suspended before the end');
    await assert.rejects(agent.client.complete(job.id), (e: unknown) => e instanceof AgentError && e.code === 'WRONG_STATE');
    await agent.client.resume(job.id);
    await agent.waitFor(job.id, ['ACKNOWLEDGED']);
    assert.equal(await sha256File(join(t.uploads, 'suspended.bin')), await sha256File(src));
  });

  it('cancel removes the server session and the job', async () => {
    const src = await randomFile(path('cancel.bin'), 2 * 1024 * 1024);
    const before = new Set(await serverSessions(t));
    const job = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('cancelled.bin'), file: src }], maxRateBps: 256 * 1024, ...fast });
    await agent.waitFor(job.id, ['TRANSFERRING']);
    await sleep(500);
    const fresh = (await serverSessions(t)).filter((s) => !before.has(s));
    assert.equal(fresh.length, 1, 'the job has a session on the server');
    const cancelled = await agent.client.cancel(job.id);
    assert.equal(cancelled.state, 'CANCELLED');
    assert.deepEqual((await serverSessions(t)).filter((s) => !before.has(s)), [], 'Cancel-Session removed it');
    assert.equal(await exists(join(t.uploads, 'cancelled.bin')), false);
    await assert.rejects(agent.client.resume(job.id), (e: unknown) => e instanceof AgentError && e.code === 'WRONG_STATE');
  });

  it('the notify command runs on TRANSFERRED and on ERROR with the job in its environment, never through a shell', async () => {
    const script = path('notify.mjs');
    const out = path('notified');
    await mkdir(out);
    await writeFile(
      script,
      `import { writeFileSync } from 'node:fs';
const e = process.env;
writeFileSync(process.argv[2] + '/' + e.BITS_JOB_ID + '-' + e.BITS_JOB_STATE + '.json', JSON.stringify({ argv: process.argv.slice(3), id: e.BITS_JOB_ID, state: e.BITS_JOB_STATE, type: e.BITS_JOB_TYPE, files: e.BITS_JOB_FILES, error: e.BITS_JOB_ERROR, code: e.BITS_JOB_ERROR_CODE }));
`,
    );
    const src = await randomFile(path('n.bin'), 10_000);
    const argWithShellChars = '$(touch /tmp/bits-agent-injected); `x` | y';
    const ok = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('notified.bin'), file: src }], notifyCommand: [process.execPath, script, out, argWithShellChars], ...fast });
    await agent.waitFor(ok.id, ['TRANSFERRED']);
    // No vdir there: the server refuses for good (501, uploads not enabled).
    const bad = await agent.client.enqueue({ type: 'upload', files: [{ url: `http://127.0.0.1:${t.port}/nowhere/x.bin`, file: src }], notifyCommand: [process.execPath, script, out], ...fast });
    await agent.waitFor(bad.id, ['ERROR']);
    const read = async (name: string): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 100 && !(await exists(join(out, name))); i++) await sleep(50);
      return JSON.parse(await readFile(join(out, name), 'utf8')) as Record<string, unknown>;
    };
    const good = await read(`${ok.id}-TRANSFERRED.json`);
    assert.deepEqual(good, { argv: [argWithShellChars], id: ok.id, state: 'TRANSFERRED', type: 'upload', files: src, error: '', code: '' });
    const failed = await read(`${bad.id}-ERROR.json`);
    assert.equal(failed['state'], 'ERROR');
    assert.equal(failed['code'], 'BITS_CLIENT_SERVER_ERROR');
    assert.match(String(failed['error']), /not enabled at this URL/);
    assert.equal(await exists('/tmp/bits-agent-injected'), false);
    await agent.client.cancel(ok.id);
  });

  it('the notify URL gets a JSON POST, retried while it fails', async () => {
    const posts: unknown[] = [];
    let refuse = 1;
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (refuse-- > 0) {
          res.writeHead(503).end();
          return;
        }
        posts.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const src = await randomFile(path('u.bin'), 5_000);
      const job = await agent.client.enqueue({
        type: 'upload',
        files: [{ url: upUrl('posted.bin'), file: src }],
        notifyUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/done`,
        autoComplete: true,
        ...fast,
      });
      await agent.waitFor(job.id, ['ACKNOWLEDGED']);
      // The first POST got 503; the retry comes after the policy's first wait (2 s).
      for (let i = 0; i < 200 && posts.length === 0; i++) await sleep(50);
      assert.equal(posts.length, 1);
      const posted = posts[0] as { event: string; job: AgentJobInfo };
      assert.equal(posted.event, 'job');
      assert.equal(posted.job.id, job.id);
      assert.equal(posted.job.state, 'ACKNOWLEDGED');
    } finally {
      hook.close();
    }
  });

  it('a job with a rate limit is never faster than its limit (a loose bound; the benchmark measures accuracy)', async () => {
    const size = 3 * 1024 * 1024;
    const src = await randomFile(path('rated.bin'), size);
    const started = Date.now();
    const job = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('rated.bin'), file: src }], maxRateBps: 1024 * 1024, yield: false, ...fast });
    await agent.waitFor(job.id, ['TRANSFERRED']);
    const seconds = (Date.now() - started) / 1000;
    // 3 MiB at 1 MiB/s with a quarter-second burst: at least 2.75 s, whatever the machine.
    assert.ok(seconds >= 2.5, `3 MiB at 1 MiB/s took only ${seconds} s`);
    await agent.client.cancel(job.id);
  });

  it('refuses what is not a job, with a code and a message', async () => {
    const bad = async (spec: unknown, pattern: RegExp): Promise<void> => {
      await assert.rejects(agent.client.enqueue(spec as AgentJobSpec), (e: unknown) => e instanceof AgentError && e.code === 'BAD_REQUEST' && pattern.test(e.message));
    };
    await bad({ type: 'upload', files: [] }, /files/);
    await bad({ type: 'upload', files: [{ url: 'ftp://h/x', file: '/tmp/x' }] }, /http/);
    await bad({ type: 'upload', files: [{ url: upUrl('x'), file: 'relative' }] }, /absolute/);
    await bad({ type: 'upload', files: [{ url: upUrl('x'), file: '/nonexistent/file' }] }, /not a readable file/);
    await bad({ type: 'download', files: [{ url: upUrl('x'), file: '/tmp/x' }], priority: 'urgent' }, /priority/);
    await bad({ type: 'download', files: [{ url: upUrl('x'), file: '/tmp/x' }], headers: { Authorization: 'Basic x' } }, /credentials/);
    await bad({ type: 'download', files: [{ url: upUrl('x'), file: '/tmp/x' }], surprise: 1 }, /surprise|Unrecognized/i);
    await bad({ type: 'download', files: [{ url: upUrl('x'), file: '/tmp/x' }], yield: true }, /yield is for uploads/);
    await bad({ type: 'download', files: [{ url: upUrl('x'), file: '/nonexistent/folder/x' }] }, /\/nonexistent\/folder is not a folder/);
    await bad({ type: 'upload-reply', files: [{ url: upUrl('x'), file: '/tmp/x' }, { url: upUrl('y'), file: '/tmp/y' }] }, /exactly one file/);
    await assert.rejects(agent.client.info('ffffffffffff'), (e: unknown) => e instanceof AgentError && e.code === 'UNKNOWN_JOB');
    await assert.rejects(agent.client.setPriority('ffffffffffff', 'high'), (e: unknown) => e instanceof AgentError && e.code === 'UNKNOWN_JOB');
  });

  it('the control socket answers bad lines and unknown methods with a code, and keeps the connection', async () => {
    const socket = connect(join(agent.stateDir, 'agent.sock'));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const lines: Record<string, unknown>[] = [];
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buffered += d;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        lines.push(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
        buffered = buffered.slice(nl + 1);
      }
    });
    try {
      socket.write('not json\n');
      socket.write(`${JSON.stringify({ id: 7, method: 'frobnicate', params: {} })}\n`);
      socket.write(`${JSON.stringify({ id: 8, method: 'info', params: {} })}\n`);
      socket.write(`${JSON.stringify({ id: 9, method: 'update', params: { id: 'x', changes: { name: 7 } } })}\n`);
      socket.write(`${JSON.stringify({ id: 10, method: 'status', params: {} })}\n`);
      for (let i = 0; i < 100 && lines.length < 5; i++) await sleep(20);
      const byId = (id: unknown): Record<string, unknown> => lines.find((l) => l['id'] === id)!;
      assert.deepEqual(byId(null)['error'], { code: 'BAD_REQUEST', message: 'a request is one JSON object per line' });
      assert.deepEqual(byId(7)['error'], { code: 'BAD_REQUEST', message: 'unknown method "frobnicate"' });
      assert.deepEqual(byId(8)['error'], { code: 'BAD_REQUEST', message: 'params.id must be a job id' });
      assert.match(String((byId(9)['error'] as { message: string }).message), /^name: /);
      assert.equal((byId(10)['result'] as { pid: number }).pid, agent.child.pid);
    } finally {
      socket.destroy();
    }
  });

  it('files are added only while a job is suspended', async () => {
    const src = await randomFile(path('later.bin'), 2 * 1024 * 1024);
    const job = await agent.client.enqueue({ type: 'download', files: [], suspended: true });
    assert.equal(job.state, 'SUSPENDED');
    await agent.client.update(job.id, { addFiles: [{ url: upUrl('x.bin'), file: path('x.out') }] });
    await agent.client.setPriority(job.id, 'low');
    // (slow enough to be still at it when changed)
    const running = await agent.client.enqueue({ type: 'upload', files: [{ url: upUrl('later.bin'), file: src }], maxRateBps: 256 * 1024, ...fast });
    await assert.rejects(
      agent.client.update(running.id, { addFiles: [{ url: upUrl('y.bin'), file: src }] }),
      (e: unknown) => e instanceof AgentError && e.code === 'WRONG_STATE' && /added while it is suspended/.test(e.message),
    );
    await agent.client.cancel(job.id);
    await agent.client.cancel(running.id);
  });

  it('a second agent on the same state directory is refused', async () => {
    const second = await runCli(['agent', '--state-dir', agent.stateDir], {}, 20_000);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another agent \(process \d+\) owns/);
  });

  it('the control socket is private to its user (0600)', async () => {
    const st = await stat(join(agent.stateDir, 'agent.sock'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(st.isSocket());
  });
});

describe('bits agent: priorities', () => {
  let t: TestServer;
  let dir: TempDir;
  let agent: AgentProcess;

  before(async () => {
    dir = await tempDir('bits-agent-prio-');
    t = await startServer();
    agent = await startAgent(join(dir.path, 'state'), ['--max-concurrent', '1']);
  });
  after(async () => {
    await agent?.stop();
    await t?.stop();
    await dir?.cleanup();
  });

  it('a high job queued after two low ones finishes first (with one slot, it takes the slot)', async () => {
    const spec = async (name: string, size: number): Promise<AgentJobSpec> => ({
      type: 'upload',
      files: [{ url: `http://127.0.0.1:${t.port}/up/${name}`, file: await randomFile(join(dir.path, name), size) }],
      maxRateBps: 1024 * 1024,
      minRetryDelayMs: 100,
    });
    const order: string[] = [];
    // (on the connection waitFor listens on, so that every event is seen here first)
    const onJob = (j: AgentJobInfo): void => {
      if (j.state === 'TRANSFERRED' && !order.includes(j.id)) order.push(j.id);
    };
    agent.client.on('job', onJob);
    await agent.client.watch();
    try {
      const low1 = await agent.client.enqueue({ ...(await spec('low1.bin', 1536 * 1024)), priority: 'low' });
      const low2 = await agent.client.enqueue({ ...(await spec('low2.bin', 1536 * 1024)), priority: 'low' });
      await agent.waitFor(low1.id, ['TRANSFERRING']);
      const high = await agent.client.enqueue({ ...(await spec('high.bin', 512 * 1024)), priority: 'high' });
      await agent.waitFor(high.id, ['TRANSFERRED']);
      assert.deepEqual(order, [high.id], 'the high job is transferred before either low one');
      await agent.waitFor(low1.id, ['TRANSFERRED']);
      await agent.waitFor(low2.id, ['TRANSFERRED']);
      // (then round-robin: the low job never served goes before the one the high job interrupted)
      assert.deepEqual(order, [high.id, low2.id, low1.id]);
    } finally {
      agent.client.off('job', onJob);
    }
  });

  it('foreground jobs do not wait for a slot', async () => {
    const file = await randomFile(join(dir.path, 'bg.bin'), 2 * 1024 * 1024);
    const bg = await agent.client.enqueue({ type: 'upload', files: [{ url: `http://127.0.0.1:${t.port}/up/bg.bin`, file }], maxRateBps: 512 * 1024, minRetryDelayMs: 100 });
    await agent.waitFor(bg.id, ['TRANSFERRING']);
    const small = await randomFile(join(dir.path, 'fg.bin'), 50_000);
    const fg = await agent.client.enqueue({ type: 'upload', files: [{ url: `http://127.0.0.1:${t.port}/up/fg.bin`, file: small }], priority: 'foreground', minRetryDelayMs: 100 });
    await agent.waitFor(fg.id, ['TRANSFERRED']);
    const now = await agent.client.info(bg.id);
    assert.equal(now.state, 'TRANSFERRING', 'the background job kept its slot');
    await agent.client.cancel(bg.id);
  });
});

describe('bits agent: SIGKILL and restart', () => {
  it('a job survives SIGKILL of the agent mid-transfer and completes with an identical file', async () => {
    const dir = await tempDir('bits-agent-kill-');
    const t = await startServer();
    const proxy = await startFaultProxy({ port: t.port });
    const stateDir = join(dir.path, 'state');
    let agent = await startAgent(stateDir);
    try {
      const src = await randomFile(join(dir.path, 'big.bin'), 4 * 1024 * 1024);
      const job = await agent.client.enqueue({
        type: 'upload',
        files: [{ url: `http://127.0.0.1:${proxy.port}/up/big.bin`, file: src }],
        maxRateBps: 1024 * 1024,
        autoComplete: true,
        minRetryDelayMs: 100,
      });
      for (let i = 0; i < 200 && (await agent.client.info(job.id)).bytesDone < 1024 * 1024; i++) await sleep(25);
      assert.ok((await agent.client.info(job.id)).bytesDone >= 1024 * 1024, 'some fragments were acknowledged before the kill');
      await agent.kill();
      agent = await startAgent(stateDir);
      const done = await agent.waitFor(job.id, ['ACKNOWLEDGED'], 60_000);
      assert.equal(done.bytesDone, 4 * 1024 * 1024);
      assert.equal(await sha256File(join(t.uploads, 'big.bin')), await sha256File(src));
      // The second agent resumed the first one's session: one Create-Session in all.
      assert.equal(proxy.count('Create-Session'), 1);
    } finally {
      await agent.stop();
      await proxy.close();
      await t.stop();
      await dir.cleanup();
    }
  });
});

describe('bits agent: a download finished just before a kill', () => {
  it('is found complete at the next start (its staging file there, its transfer record gone), not downloaded again', async () => {
    const dir = await tempDir('bits-agent-staged-');
    const t = await startServer({ vdir: { downloadEnabled: true } });
    const proxy = await startFaultProxy({ port: t.port });
    const stateDir = join(dir.path, 'state');
    let agent = await startAgent(stateDir);
    try {
      for (const name of ['s1.bin', 's2.bin']) await randomFile(join(t.uploads, name), 300_000);
      const targets = [join(dir.path, 's1.out'), join(dir.path, 's2.out')];
      const job = await agent.client.enqueue({
        type: 'download',
        files: ['s1.bin', 's2.bin'].map((name, i) => ({ url: `http://127.0.0.1:${proxy.port}/up/${name}`, file: targets[i]! })),
        minRetryDelayMs: 100,
      });
      await agent.waitFor(job.id, ['TRANSFERRED']);
      await agent.kill();
      // The moment the kill would have had to hit: the second file renamed to its staging name and
      // its transfer record removed, the agent's record not yet saying so.
      const recordPath = join(stateDir, 'agent', 'queue', `${job.id}.json`);
      const record = JSON.parse(await readFile(recordPath, 'utf8')) as { state: string; files: { done: boolean; bytesDone: number }[] };
      record.state = 'TRANSFERRING';
      record.files[1]!.done = false;
      record.files[1]!.bytesDone = 0;
      await writeFile(recordPath, JSON.stringify(record));
      const requests = proxy.requests.length;
      agent = await startAgent(stateDir);
      const again = await agent.waitFor(job.id, ['TRANSFERRED']);
      assert.deepEqual(again.files.map((f) => f.done), [true, true]);
      assert.equal(again.bytesDone, 600_000);
      assert.equal(proxy.requests.length, requests, 'nothing was downloaded again');
      await agent.client.complete(job.id);
      await agent.waitFor(job.id, ['ACKNOWLEDGED']);
      for (const [i, name] of ['s1.bin', 's2.bin'].entries()) assert.equal(await sha256File(targets[i]!), await sha256File(join(t.uploads, name)));
    } finally {
      await agent.stop();
      await proxy.close();
      await t.stop();
      await dir.cleanup();
    }
  });
});

describe('bits agent: the CLI verbs', () => {
  let t: TestServer;
  let dir: TempDir;
  let agent: AgentProcess;
  let stateDir: string;

  before(async () => {
    dir = await tempDir('bits-agent-cli-');
    t = await startServer();
    stateDir = join(dir.path, 'state');
    agent = await startAgent(stateDir);
  });
  after(async () => {
    await agent?.stop();
    await t?.stop();
    await dir?.cleanup();
  });

  it('bits upload --background prints a job id at once; jobs, info, priority, complete and cancel work on it', async () => {
    const src = await randomFile(join(dir.path, 'cli.bin'), 100_000);
    const queued = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/cli.bin`, '--background', '--state-dir', stateDir, '--priority', 'low', '--retry-delay', '0.1', '--name', 'nightly']);
    assert.equal(queued.code, 0, queued.stderr);
    const id = queued.stdout.trim();
    assert.match(id, /^[0-9a-f]{12}$/);
    await agent.waitFor(id, ['TRANSFERRED']);
    const jobs = await runCli(['jobs', '--state-dir', stateDir]);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, new RegExp(`${id}\\s+upload\\s+TRANSFERRED\\s+low\\s+100000/100000\\s+nightly: http://127\\.0\\.0\\.1:${t.port}/up/cli\\.bin`));
    const json = await runCli(['jobs', '--state-dir', stateDir, '--json']);
    const listed = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as AgentJobInfo & { agent: boolean });
    assert.equal(listed.find((j) => j.id === id)?.agent, true);
    const prio = await runCli(['priority', id.slice(0, 6), 'high', '--state-dir', stateDir]);
    assert.equal(prio.code, 0, prio.stderr);
    assert.equal((await agent.client.info(id)).priority, 'high');
    const info = await runCli(['info', id, '--state-dir', stateDir]);
    assert.match(info.stdout, /state:\s+TRANSFERRED/);
    assert.match(info.stdout, /priority:\s+high/);
    const complete = await runCli(['complete', id, '--state-dir', stateDir]);
    assert.equal(complete.code, 0, complete.stderr);
    assert.equal(complete.stdout, `completed ${id}\n`);
    assert.equal(await sha256File(join(t.uploads, 'cli.bin')), await sha256File(src));
    const again = await runCli(['cancel', id, '--state-dir', stateDir]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /ACKNOWLEDGED already/);
  });

  it('bits download URL FILE URL FILE --background makes one job; bits suspend and bits resume go to the agent', async () => {
    await randomFile(join(t.uploads, 'x.bin'), 1024 * 1024);
    await randomFile(join(t.uploads, 'y.bin'), 1024 * 1024);
    const a = join(dir.path, 'x.out');
    const b = join(dir.path, 'y.out');
    // (downloads need the vdir to serve them: the test server's does not, so they fail; suspend works in any state)
    const queued = await runCli(['download', `http://127.0.0.1:${t.port}/up/x.bin`, a, `http://127.0.0.1:${t.port}/up/y.bin`, b, '--background', '--state-dir', stateDir, '--max-rate', '256K']);
    assert.equal(queued.code, 0, queued.stderr);
    const id = queued.stdout.trim();
    const job = await agent.client.info(id);
    assert.equal(job.files.length, 2);
    assert.equal(job.maxRateBps, 256 * 1024);
    const suspend = await runCli(['suspend', id, '--state-dir', stateDir]);
    assert.equal(suspend.code, 0, suspend.stderr);
    assert.equal((await agent.client.info(id)).state, 'SUSPENDED');
    const resume = await runCli(['resume', id, '--state-dir', stateDir]);
    assert.equal(resume.code, 0, resume.stderr);
    assert.notEqual((await agent.client.info(id)).state, 'SUSPENDED');
    await agent.client.cancel(id);
  });

  it('flags that need --background, or an agent, say so', async () => {
    const src = await randomFile(join(dir.path, 'f.bin'), 1000);
    const noBg = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/f.bin`, '--priority', 'high', '--state-dir', stateDir]);
    assert.equal(noBg.code, 2);
    assert.match(noBg.stderr, /--priority needs --background/);
    const pairs = await runCli(['download', `http://127.0.0.1:${t.port}/up/x.bin`, join(dir.path, 'p'), `http://127.0.0.1:${t.port}/up/y.bin`, '--background', '--state-dir', stateDir]);
    assert.equal(pairs.code, 2);
    assert.match(pairs.stderr, /URL FILE pairs/);
    const other = join(dir.path, 'no-agent');
    const none = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/f.bin`, '--background', '--state-dir', other]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no agent is running at .*agent\.sock: start one with bits agent --state-dir/);
    const rate = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/f.bin`, '--background', '--state-dir', stateDir, '--max-rate', 'fast']);
    assert.equal(rate.code, 2);
    assert.match(rate.stderr, /--max-rate: "fast" is not a rate/);
  });
});

describe('bits agent: upload-reply', () => {
  it('the reply is downloaded before TRANSFERRED and appears as the reply file only at complete', async () => {
    const dir = await tempDir('bits-agent-reply-');
    const app = await startApp();
    app.set((seen, res) => {
      const reply = Buffer.from(`got ${seen.body.length} bytes`);
      res.writeHead(200, { 'Content-Length': String(reply.length) }).end(reply);
    });
    const t = await startServer({ vdir: { notificationType: 'by-value', notificationUrl: `http://127.0.0.1:${app.port}/n` } });
    const agent = await startAgent(join(dir.path, 'state'));
    try {
      const src = await randomFile(join(dir.path, 'report.bin'), 50_000);
      const replyFile = join(dir.path, 'report.reply');
      const job = await agent.client.enqueue({ type: 'upload-reply', files: [{ url: `http://127.0.0.1:${t.port}/up/report.bin`, file: src }], replyFile, minRetryDelayMs: 100 });
      assert.equal(job.replyFile, replyFile);
      await agent.waitFor(job.id, ['TRANSFERRED']);
      assert.equal(await exists(replyFile), false, 'no reply file before complete');
      assert.equal(app.seen.length, 1);
      await agent.client.complete(job.id);
      await agent.waitFor(job.id, ['ACKNOWLEDGED']);
      assert.equal(await readFile(replyFile, 'utf8'), 'got 50000 bytes');
    } finally {
      await agent.stop();
      await t.stop();
      await app.close();
      await dir.cleanup();
    }
  });
});

describe('bits bitsadmin', () => {
  it('/create, /addfile, /set…, /info, /resume, /complete, /list and /transfer map onto the agent', async () => {
    const dir = await tempDir('bits-agent-bitsadmin-');
    const t = await startServer({ vdir: { downloadEnabled: true } });
    const stateDir = join(dir.path, 'state');
    const agent = await startAgent(stateDir);
    const admin = (...args: string[]) => runCli(['bitsadmin', '--state-dir', stateDir, ...args]);
    try {
      const created = await admin('/create', '/upload', 'nightly');
      assert.equal(created.code, 0, created.stderr);
      const id = /^Created job \{([0-9a-f]{12})\}\.$/m.exec(created.stdout)?.[1];
      assert.ok(id, created.stdout);
      const empty = await admin('/resume', 'nightly');
      assert.equal(empty.code, 2);
      assert.match(empty.stderr, /has no file yet/);
      const src = await randomFile(join(dir.path, 'nightly.bin'), 200_000);
      const added = await admin('/addfile', 'nightly', `http://127.0.0.1:${t.port}/up/nightly.bin`, src);
      assert.equal(added.code, 0, added.stderr);
      const second = await admin('/addfile', 'nightly', `http://127.0.0.1:${t.port}/up/other.bin`, src);
      assert.equal(second.code, 2);
      assert.match(second.stderr, /exactly one file/);
      assert.equal((await admin('/setpriority', 'nightly', 'HIGH')).stdout, 'Priority set to HIGH.\n');
      assert.equal((await admin('/setminretrydelay', `{${id}}`, '1')).code, 0);
      const script = join(dir.path, 'notify.mjs');
      const marker = join(dir.path, 'notified.txt');
      await writeFile(script, "import { writeFileSync } from 'node:fs'; writeFileSync(process.argv[2], process.env.BITS_JOB_STATE + ' ' + process.argv.slice(3).join('|'));\n");
      const notify = await admin('/setnotifycmdline', 'nightly', process.execPath, `"${process.execPath}" ${script} ${marker} "two words"`);
      assert.equal(notify.code, 0, notify.stderr);
      const info = await admin('/info', 'nightly', '/verbose');
      assert.match(info.stdout, new RegExp(`GUID: \\{${id}\\} DISPLAY: 'nightly'`));
      assert.match(info.stdout, /TYPE: UPLOAD STATE: SUSPENDED PRIORITY: HIGH/);
      assert.equal((await admin('/resume', 'nightly')).stdout, 'Job resumed.\n');
      await agent.waitFor(id, ['TRANSFERRED']);
      for (let i = 0; i < 100 && !(await exists(marker)); i++) await sleep(50);
      assert.equal(await readFile(marker, 'utf8'), 'TRANSFERRED two words');
      const completed = await admin('/complete', 'nightly');
      assert.equal(completed.stdout, 'Job completed.\n', completed.stderr);
      assert.equal(await sha256File(join(t.uploads, 'nightly.bin')), await sha256File(src));
      const list = await admin('/list');
      assert.match(list.stdout, new RegExp(`^\\{${id}\\} 'nightly' ACKNOWLEDGED 1 / 1 200000 / 200000$`, 'm'));
      assert.match(list.stdout, /^Listed 1 job\(s\)\.$/m);
      const target = join(dir.path, 'back.bin');
      const transfer = await admin('/transfer', 'fetch', '/download', '/priority', 'foreground', `http://127.0.0.1:${t.port}/up/nightly.bin`, target);
      assert.equal(transfer.code, 0, transfer.stderr);
      assert.match(transfer.stdout, /Transfer complete\./);
      assert.equal(await sha256File(target), await sha256File(src));
      const unknown = await admin('/frobnicate');
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown verb \/frobnicate/);
    } finally {
      await agent.stop();
      await t.stop();
      await dir.cleanup();
    }
  });
});

describe('bits agent: credentials', () => {
  it('a password in the URL (or BITS_PASSWORD) signs the job in and is never kept in clear text', async () => {
    const dir = await tempDir('bits-agent-creds-');
    const users = join(dir.path, 'users.json');
    execFileSync(process.execPath, [CLI, 'user', 'add', 'alice', '--users', users], { input: 'correct horse battery\n' });
    const t = await startServer({ vdir: { auth: { schemes: ['basic'], users, allowInsecureBasic: true } } });
    const stateDir = join(dir.path, 'state');
    const agent = await startAgent(stateDir);
    try {
      const src = await randomFile(join(dir.path, 'secret.bin'), 20_000);
      const inUrl = await runCli(['upload', src, `http://alice:correct%20horse%20battery@127.0.0.1:${t.port}/up/a.bin`, '--background', '--auto-complete', '--state-dir', stateDir, '--retry-delay', '0.1']);
      assert.equal(inUrl.code, 0, inUrl.stderr);
      const fromEnv = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/b.bin`, '--user', 'alice', '--background', '--auto-complete', '--state-dir', stateDir, '--retry-delay', '0.1'], { BITS_PASSWORD: 'correct horse battery' });
      assert.equal(fromEnv.code, 0, fromEnv.stderr);
      await agent.waitFor(inUrl.stdout.trim(), ['ACKNOWLEDGED']);
      await agent.waitFor(fromEnv.stdout.trim(), ['ACKNOWLEDGED']);
      assert.equal(await sha256File(join(t.uploads, 'a.bin')), await sha256File(src));
      assert.equal(await sha256File(join(t.uploads, 'b.bin')), await sha256File(src));
      // Nothing the agent wrote holds the password.
      const files = (await readdir(join(stateDir, 'agent'), { recursive: true })).map((f) => join(stateDir, 'agent', String(f)));
      let read = 0;
      for (const f of files) {
        const text = await readFile(f, 'latin1').catch(() => undefined);
        if (text === undefined) continue;
        read++;
        assert.ok(!text.includes('correct horse'), `${f} holds the password`);
      }
      assert.ok(read >= 2, 'the job records were read');
      const wrong = await runCli(['upload', src, `http://127.0.0.1:${t.port}/up/c.bin`, '--user', 'alice:wrong', '--background', '--state-dir', stateDir, '--retry-delay', '0.1']);
      const failed = await agent.waitFor(wrong.stdout.trim(), ['ERROR']);
      assert.match(failed.error?.message ?? '', /401/);
    } finally {
      await agent.stop();
      await t.stop();
      await dir.cleanup();
    }
  });
});
