// The state directory's pid file: a zombie, or an unrelated process that reused the PID, does not hold
// it; a second live `bits serve` is refused with a message that says what to do.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { CLI, startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';

const hasProc = existsSync('/proc/self/stat');

/** State (field 3) and start time (field 22) of a process, from /proc. */
async function procStat(pid: number): Promise<{ state: string; startTime: string }> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, startTime: fields[19]! };
}

/** Runs `sh -c script` and resolves with the first line it prints. */
async function spawnPrinting(script: string): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no output')), 5000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l.trim());
    });
  });
  return { child, line };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** A Create-Session answered by the server on `port`: it is up and serving. */
async function serving(port: number): Promise<boolean> {
  const c = await RawConnection.connect(port);
  try {
    const res = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path: '/x.bin', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
    return res.status === 200;
  } finally {
    c.close();
  }
}

describe('state directory lock', { skip: !hasProc && 'needs /proc' }, () => {
  let dir: string;
  const children: ChildProcess[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-lock-'));
  });
  after(async () => {
    for (const c of children) await stop(c);
    await rm(dir, { recursive: true, force: true });
  });

  async function serveOn(stateDir: string): Promise<{ child: ChildProcess; port: number }> {
    const server = await startCli(['--root', join(dir, 'root'), '--state-dir', stateDir]);
    children.push(server.child);
    return server;
  }

  it('8: a pid file naming a zombie (a crashed server not reaped yet) is taken over', async () => {
    // `sleep 0.2` is left to a parent (`exec sleep 30`) that never reaps it: it stays a zombie.
    const parent = await spawnPrinting('sleep 0.2 & echo $!; exec sleep 30');
    children.push(parent.child);
    const zombie = Number(parent.line);
    const deadline = Date.now() + 5000;
    while ((await procStat(zombie)).state !== 'Z') {
      assert.ok(Date.now() < deadline, 'the child did not become a zombie');
      await new Promise((r) => setTimeout(r, 50));
    }
    const stateDir = join(dir, 'zombie');
    await mkdir(stateDir, { recursive: true });
    // The pid file of an older server (PID only), and of a current one (PID, start time, boot id).
    const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    for (const content of [`${zombie}\n`, `${zombie}\n${(await procStat(zombie)).startTime}\n${boot}\n`]) {
      await writeFile(join(stateDir, 'server.pid'), content);
      const server = await serveOn(stateDir);
      assert.ok(await serving(server.port));
      assert.equal((await readFile(join(stateDir, 'server.pid'), 'utf8')).split('\n')[0], String(server.child.pid));
      await stop(server.child);
      assert.equal(existsSync(join(stateDir, 'server.pid')), false, 'removed on a clean stop');
    }
  });

  it('8: a pid file naming a live unrelated process (PID reused later) is taken over', async () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(other);
    const stateDir = join(dir, 'reused');
    await mkdir(stateDir, { recursive: true });
    const file = join(stateDir, 'server.pid');
    // An older server's pid file, written an hour before the process now holding that PID started.
    await writeFile(file, `${other.pid}\n`);
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(file, hourAgo, hourAgo);
    const first = await serveOn(stateDir);
    assert.ok(await serving(first.port));
    await stop(first.child);
    // A current pid file whose start time is not that of the process with the PID.
    const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    await writeFile(file, `${other.pid}\n${Number((await procStat(other.pid!)).startTime) - 1}\n${boot}\n`);
    const second = await serveOn(stateDir);
    assert.ok(await serving(second.port));
    await stop(second.child);
    assert.equal(other.exitCode, null, 'the unrelated process was left alone');
  });

  it('8: a second bits serve on a live server’s state dir is refused (exit 1) and told what to do', async () => {
    const stateDir = join(dir, 'held');
    const first = await serveOn(stateDir);
    const r = spawnSync(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--root', join(dir, 'root'), '--state-dir', stateDir], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`in use by process ${first.child.pid}, a running bits server`));
    assert.match(r.stderr, /Stop that server first, or give this one another state directory \(--state-dir/);
    assert.equal((await readFile(join(stateDir, 'server.pid'), 'utf8')).split('\n')[0], String(first.child.pid), 'the holder keeps its pid file');
    assert.ok(await serving(first.port), 'and keeps serving');
  });
});
