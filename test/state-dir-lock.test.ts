// The state directory's pid file: a zombie, or an unrelated process that reused the PID, does not hold
// it; a second live `bits serve` (or a second server in the same process) is refused with a message
// that says what to do; servers starting at the same moment over a stale pid file never both win.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { StateDirInUseError, acquireStateDir } from '../src/store/fs/state-dir-lock.js';
import { CLI, startCli } from './helpers/cli.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange } from './helpers/upload.js';
import { tempDir } from './helpers/temp-dir.js';
import type { TempDir } from './helpers/temp-dir.js';

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
  let tmp: TempDir;
  let dir: string;
  const children: ChildProcess[] = [];
  before(async () => {
    tmp = await tempDir('bits-lock-');
    dir = tmp.path;
  });
  after(async () => {
    for (const c of children) await stop(c);
    await tmp.cleanup();
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
      await sleep(50);
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

describe('state directory lock within one process', { skip: !hasProc && 'needs /proc' }, () => {
  let tmp: TempDir;
  let dir: string;
  before(async () => {
    tmp = await tempDir('bits-lock-self-');
    dir = tmp.path;
  });
  after(() => tmp.cleanup());

  it('8: a second acquire in the same process is refused, and a stale release never removes a later holder’s file', async () => {
    const stateDir = join(dir, 'same');
    const file = join(stateDir, 'server.pid');
    const release = await acquireStateDir(stateDir);
    await assert.rejects(acquireStateDir(stateDir), (err: unknown) => err instanceof StateDirInUseError && err.pid === process.pid);
    assert.equal((await readFile(file, 'utf8')).split('\n')[0], String(process.pid), 'the first holder keeps its pid file');
    await release();
    assert.equal(existsSync(file), false, 'released');
    const again = await acquireStateDir(stateDir);
    // The first holder's release, called once more (a double close), must leave the new holder's file.
    await release();
    assert.equal(existsSync(file), true, 'a release of an earlier holding leaves the current one');
    await again();
    assert.equal(existsSync(file), false);
  });

  it('8: a pid file with this PID but another start time (a container restarted as PID 1) is taken over', async () => {
    const stateDir = join(dir, 'restarted');
    await mkdir(stateDir, { recursive: true });
    const file = join(stateDir, 'server.pid');
    const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    await writeFile(file, `${process.pid}\n${Number((await procStat(process.pid)).startTime) - 1}\n${boot}\n`);
    const release = await acquireStateDir(stateDir);
    assert.equal((await procStat(process.pid)).startTime, (await readFile(file, 'utf8')).split('\n')[1]);
    await release();
    assert.equal(existsSync(file), false);
  });
});

describe('state directory lock: servers starting at the same moment', { skip: !hasProc && 'needs /proc' }, () => {
  const LOCK_MODULE = pathToFileURL(join(import.meta.dirname, '..', 'src', 'store', 'fs', 'state-dir-lock.js')).href;
  // Each child loads the lock, says "ready", claims the state dir on "go" and reports; a winner holds
  // the directory (alive) until its stdin closes, so the others must see a live holder.
  const CHILD = `
    const { acquireStateDir } = await import(${JSON.stringify(LOCK_MODULE)});
    const { createInterface } = await import('node:readline');
    const lines = createInterface({ input: process.stdin });
    console.log('ready');
    await new Promise((r) => lines.once('line', r));
    try {
      const release = await acquireStateDir(process.argv[1]);
      console.log('won');
      lines.once('close', () => release().then(() => process.exit(0)));
    } catch (err) {
      console.log(err.name === 'StateDirInUseError' ? 'refused ' + err.pid : 'error ' + err.message);
      process.exit(0);
    }
  `;
  const CHILDREN = 5;
  const ROUNDS = 12;
  let tmp: TempDir;
  let dir: string;
  before(async () => {
    tmp = await tempDir('bits-lock-race-');
    dir = tmp.path;
  });
  after(() => tmp.cleanup());

  interface Racer {
    child: ChildProcess;
    next(): Promise<string>;
  }
  function racer(stateDir: string): Racer {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, stateDir], { stdio: ['pipe', 'pipe', 'inherit'] });
    const queue: string[] = [];
    const waiting: ((l: string) => void)[] = [];
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
    rl.on('close', () => waiting.splice(0).forEach((w) => w('exited')));
    const next = () =>
      new Promise<string>((resolve, reject) => {
        if (queue.length) return resolve(queue.shift()!);
        const timer = setTimeout(() => reject(new Error('child said nothing')), 20_000);
        waiting.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      });
    return { child, next };
  }

  it('8: with a stale pid file (and a stale takeover guard) present, exactly one of several servers started at once wins, every time', async () => {
    // A PID that no longer exists: a child that has been reaped.
    const gone = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    for (let round = 0; round < ROUNDS; round++) {
      const stateDir = join(dir, `round-${round}`);
      await mkdir(stateDir, { recursive: true });
      await writeFile(join(stateDir, 'server.pid'), `${gone}\n`);
      // Every other round, a takeover guard left by a server that died while claiming, too.
      if (round % 2) await writeFile(join(stateDir, 'server.pid.takeover'), `${gone}\n\n\nleft-behind\n`);
      const racers = Array.from({ length: CHILDREN }, () => racer(stateDir));
      try {
        for (const r of racers) assert.equal(await r.next(), 'ready');
        for (const r of racers) r.child.stdin!.write('go\n');
        const outcomes = await Promise.all(racers.map((r) => r.next()));
        const winners = racers.filter((_, i) => outcomes[i] === 'won');
        assert.equal(winners.length, 1, `round ${round}: ${outcomes.join(', ')}`);
        const winner = winners[0]!.child.pid;
        for (const o of outcomes) if (o !== 'won') assert.equal(o, `refused ${winner}`, `round ${round}`);
        assert.equal((await readFile(join(stateDir, 'server.pid'), 'utf8')).split('\n')[0], String(winner), `round ${round}: the winner's pid file`);
      } finally {
        for (const r of racers) {
          const exited = r.child.exitCode !== null ? Promise.resolve() : new Promise((res) => r.child.once('exit', res));
          r.child.stdin!.end();
          await exited;
        }
      }
      assert.deepEqual(await readdir(stateDir), [], `round ${round}: the winner removed its pid file on release, and no guard is left`);
    }
  });
});
