// Network awareness of `bits agent`: the agent runs in a network namespace of its own whose one
// link (a veth pair to the test's namespace, where the server listens) the test takes down and
// brings up again. Needs root and iproute2; without them the tests skip loudly.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../src/client/agent-client.js';
import type { AgentJobInfo, AgentJobState } from '../src/client/agent-protocol.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { CLI } from './helpers/cli.js';
import { randomFile, sha256File } from './helpers/client-files.js';
import { tempDir } from './helpers/temp-dir.js';
import type { TempDir } from './helpers/temp-dir.js';

const NS = `bitsnet${process.pid}`;
const HOST_IF = `bn${process.pid}h`.slice(0, 15);
const NS_IF = `bn${process.pid}n`.slice(0, 15);
const HOST_IP = '10.214.9.1';
const NS_IP = '10.214.9.2';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

/** Why namespaces cannot be had here, or `undefined` when they can (then one is set up). */
function setup(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (spawnSync('ip', ['-V']).error) return 'iproute2 (ip) is not installed';
  try {
    spawnSync('ip', ['netns', 'del', NS]);
    ip(['netns', 'add', NS]);
    ip(['-n', NS, 'link', 'set', 'lo', 'up']);
    ip(['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF, 'netns', NS]);
    ip(['addr', 'add', `${HOST_IP}/24`, 'dev', HOST_IF]);
    ip(['link', 'set', HOST_IF, 'up']);
    ip(['-n', NS, 'addr', 'add', `${NS_IP}/24`, 'dev', NS_IF]);
    ip(['-n', NS, 'link', 'set', NS_IF, 'up']);
    return undefined;
  } catch (err) {
    spawnSync('ip', ['netns', 'del', NS]);
    return (err as Error).message;
  }
}

describe('bits agent: network awareness', () => {
  let why: string | undefined;
  let t: TestServer;
  let dir: TempDir;
  let agent: ChildProcess;
  let client: AgentClient;
  let log = '';

  before(async () => {
    why = setup();
    if (why) return;
    dir = await tempDir('bits-agent-net-');
    t = await startServer({ config: { listen: { host: HOST_IP, port: 0 } } });
    const stateDir = join(dir.path, 'state');
    agent = spawn('ip', ['netns', 'exec', NS, process.execPath, CLI, 'agent', '--state-dir', stateDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    for (let i = 0; !client; i++) {
      try {
        client = await AgentClient.connect({ stateDir });
      } catch (err) {
        if (i > 300) throw new Error(`the agent did not start: ${(err as Error).message}\n${log}`);
        await sleep(50);
      }
    }
  });
  after(async () => {
    client?.close();
    if (agent) {
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      agent.kill('SIGTERM');
      await exited;
    }
    await t?.stop();
    await dir?.cleanup();
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['link', 'del', HOST_IF]);
  });

  const waitFor = async (id: string, states: AgentJobState[], ms = 20_000): Promise<AgentJobInfo> => {
    const signal = AbortSignal.timeout(ms);
    try {
      return await client.waitFor(id, states, signal);
    } catch (err) {
      if (!signal.aborted) throw err;
      throw new Error(`job ${id} not ${states.join('/')} in ${ms} ms: ${JSON.stringify(await client.info(id))}\n${log.slice(-2000)}`);
    }
  };

  it('without a link, a job waits in TRANSIENT_ERROR without burning retries, and runs as soon as the link is back', async (tc) => {
    if (why) {
      console.warn(`\n*** SKIPPED LOUDLY: network namespaces: ${why} ***\n`);
      tc.skip(why);
      return;
    }
    ip(['-n', NS, 'link', 'set', NS_IF, 'down']);
    try {
      // (the agent looks at its interfaces every 2 s: let it see the link gone)
      await sleep(2_500);
      const src = join(dir.path, 'net.bin');
      await randomFile(src, 1024 * 1024);
      const job = await client.enqueue({ type: 'upload', files: [{ url: `http://${HOST_IP}:${t.port}/up/net.bin`, file: src }], minRetryDelayMs: 100, autoComplete: true });
      const waiting = await waitFor(job.id, ['TRANSIENT_ERROR']);
      assert.equal(waiting.error?.code, 'BITS_AGENT_NO_ROUTE');
      assert.equal(waiting.errorCount, 0, 'it never tried');
      await sleep(2_000);
      const still = await client.info(job.id);
      assert.equal(still.state, 'TRANSIENT_ERROR');
      assert.equal(still.errorCount, 0, 'no retries were burnt while offline');
      ip(['-n', NS, 'link', 'set', NS_IF, 'up']);
      await waitFor(job.id, ['ACKNOWLEDGED']);
      assert.equal(await sha256File(join(t.uploads, 'net.bin')), await sha256File(src));
    } finally {
      ip(['-n', NS, 'link', 'set', NS_IF, 'up']);
    }
  });

  it('a job started just before the link went away notices it at its first failed connection', async (tc) => {
    if (why) {
      tc.skip(why);
      return;
    }
    const src = join(dir.path, 'sudden.bin');
    await randomFile(src, 100_000);
    ip(['-n', NS, 'link', 'set', NS_IF, 'down']);
    let job: AgentJobInfo;
    try {
      job = await client.enqueue({ type: 'upload', files: [{ url: `http://${HOST_IP}:${t.port}/up/sudden.bin`, file: src }], minRetryDelayMs: 100, autoComplete: true });
      let offline = await client.info(job.id);
      for (let i = 0; i < 100 && offline.error?.code !== 'BITS_AGENT_NO_ROUTE'; i++) {
        await sleep(50);
        offline = await client.info(job.id);
      }
      assert.equal(offline.state, 'TRANSIENT_ERROR');
      assert.equal(offline.error?.code, 'BITS_AGENT_NO_ROUTE');
      assert.ok(offline.errorCount <= 1, `at most the one failed connection counts (${offline.errorCount})`);
      await sleep(1_500);
      assert.equal((await client.info(job.id)).errorCount, offline.errorCount, 'no retries while offline');
    } finally {
      ip(['-n', NS, 'link', 'set', NS_IF, 'up']);
    }
    await waitFor(job.id, ['ACKNOWLEDGED']);
    assert.equal(await sha256File(join(t.uploads, 'sudden.bin')), await sha256File(src));
  });

  it('a link lost mid-transfer stops the job (TRANSIENT_ERROR); it goes on from where it stood when the link returns', async (tc) => {
    if (why) {
      tc.skip(why);
      return;
    }
    // (the link is up again: give the agent its poll to see it)
    await sleep(2_500);
    const src = join(dir.path, 'mid.bin');
    await randomFile(src, 3 * 1024 * 1024);
    const job = await client.enqueue({ type: 'upload', files: [{ url: `http://${HOST_IP}:${t.port}/up/mid.bin`, file: src }], minRetryDelayMs: 100, maxRateBps: 1024 * 1024, autoComplete: true });
    for (let i = 0; i < 200 && (await client.info(job.id)).bytesDone < 512 * 1024; i++) await sleep(25);
    ip(['-n', NS, 'link', 'set', NS_IF, 'down']);
    try {
      const offline = await waitFor(job.id, ['TRANSIENT_ERROR']);
      assert.ok(offline.bytesDone > 0);
      await sleep(1_000);
    } finally {
      ip(['-n', NS, 'link', 'set', NS_IF, 'up']);
    }
    const done = await waitFor(job.id, ['ACKNOWLEDGED'], 30_000);
    assert.equal(done.bytesDone, 3 * 1024 * 1024);
    assert.equal(await sha256File(join(t.uploads, 'mid.bin')), await sha256File(src));
  });
});
