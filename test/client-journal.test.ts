// What the client journal keeps, and what the job commands do with it: never a password (resume asks
// for it again), failed jobs pruned, fragment sizes Windows would send.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PasswordNeededError, pruneJobs, resumeJob } from '../src/client/jobs.js';
import type { UploadRecord } from '../src/client/journal.js';
import { upload } from '../src/client/upload.js';
import { startServer } from './helpers/bits-server.js';
import { makePki } from './helpers/certs.js';
import { runCli } from './helpers/cli-run.js';
import { journaledJobs, randomFile, sha256File } from './helpers/client-files.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';
import { startFakeServer } from './helpers/fake-http-server.js';
import { startSilentPeer } from './helpers/interop-peers.js';
import type { FakeReply } from './helpers/fake-http-server.js';

const USER = 'bob';
const PASSWORD = 'S3cret-Pw@42';
const AUTHORIZATION = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
/** Every form the password could be written in. */
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD), Buffer.from(`${USER}:${PASSWORD}`).toString('base64')];

/** The text of every file under `dir`. */
async function allText(dir: string): Promise<string> {
  let out = '';
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out += await readFile(join(entry.parentPath, entry.name), 'latin1');
  }
  return out;
}

async function assertNoPassword(stateDir: string): Promise<void> {
  const text = await allText(stateDir);
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `the journal holds "${secret}"`);
  assert.ok(text.includes(`"user": "${USER}"`), 'the user name is journaled');
}

describe('the client journal and the job commands', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-journal-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `j${n++}.bin`;
    const file = join(dir, name);
    await randomFile(file, size);
    return { name, file, data: await readFile(file), stateDir: join(dir, `state-${name}`) };
  };

  it('--fragment-size below 5 KiB is a usage error naming the flag (exit 2); the library refuses it too', async () => {
    const f = await fresh(10);
    for (const size of ['5119', '1', '0']) {
      const r = await runCli(['upload', f.file, 'http://127.0.0.1:9/up/a.bin', '--state-dir', f.stateDir, '--fragment-size', size]);
      assert.equal(r.code, 2, `${size}: ${r.stderr}`);
      assert.match(r.stderr, /--fragment-size must be a whole number of bytes >= 5120/);
    }
    assert.deepEqual(await journaledJobs(f.stateDir), [], 'nothing journaled');
    assert.throws(() => upload({ file: f.file, url: 'http://127.0.0.1:9/up/a.bin', fragmentSize: 5119, stateDir: false }), /fragmentSize must be an integer >= 5120/);
  });

  describe('the journal never holds a password; resume asks for it again', () => {
    let blocked = true;
    let server: Awaited<ReturnType<typeof startFakeBitsServer>>;
    before(async () => {
      // Signs in bob; while `blocked`, every Fragment after the first gets 503, so jobs stop resumably.
      server = await startFakeBitsServer({
        authorization: AUTHORIZATION,
        override: (req) =>
          blocked && req.headers['bits-packet-type'] === 'Fragment' && !req.headers['content-range']?.startsWith('bytes 0-')
            ? { status: 503, headers: { 'BITS-Packet-Type': 'Ack' } }
            : undefined,
      });
    });
    after(async () => {
      await server.close();
    });

    const stopped = ['--retry-delay', '0.05', '--no-progress-timeout', '0.5', '--fragment-size', '8192'];
    const forms: [string, (port: number, name: string) => string[], Record<string, string | undefined>][] = [
      ['--user name:password', (port, name) => [`http://127.0.0.1:${port}/up/${name}`, '--user', `${USER}:${PASSWORD}`], { BITS_PASSWORD: undefined }],
      ['URL user information', (port, name) => [`http://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/up/${name}`], { BITS_PASSWORD: undefined }],
      ['--user name with BITS_PASSWORD', (port, name) => [`http://127.0.0.1:${port}/up/${name}`, '--user', USER], { BITS_PASSWORD: PASSWORD }],
    ];
    for (const [label, args, env] of forms) {
      it(label, async () => {
        blocked = true;
        const f = await fresh(5 * 8192);
        const r = await runCli(['upload', f.file, ...args(server.port, f.name), '--state-dir', f.stateDir, ...stopped], env);
        assert.equal(r.code, 3, r.stderr);
        const [id] = await journaledJobs(f.stateDir);
        assert.ok(id);
        await assertNoPassword(f.stateDir);
        // Without the password resume refuses, says how to give it, and leaves the job as it was.
        const before = await readFile(join(f.stateDir, 'jobs', `${id}.json`), 'utf8');
        const refused = await runCli(['resume', id, '--state-dir', f.stateDir], { BITS_PASSWORD: undefined });
        assert.equal(refused.code, 2, refused.stderr);
        assert.match(refused.stderr, new RegExp(`job ${id} signs in as "bob" at http://127\\.0\\.0\\.1:\\d+, and the journal keeps no password: set BITS_PASSWORD`));
        assert.equal(await readFile(join(f.stateDir, 'jobs', `${id}.json`), 'utf8'), before);
        // With it the job finishes, and the journal never held the password on the way.
        blocked = false;
        const resumed = await runCli(['resume', id, '--state-dir', f.stateDir, '--retry-delay', '0.05'], { BITS_PASSWORD: PASSWORD });
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.deepEqual(server.state.committed.get(`/up/${f.name}`), f.data);
        assert.deepEqual(await journaledJobs(f.stateDir), []);
      });
    }

    it('a record from before this rule (user:password, URL user information) resumes with it and is saved without it', async () => {
      blocked = true;
      const f = await fresh(3 * 8192);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${server.port}/up/${f.name}`, user: `${USER}:${PASSWORD}`, fragmentSize: 8192, stateDir: f.stateDir, retryDelayMs: 20, noProgressTimeoutMs: 300 });
      await assert.rejects(job.result, { code: 'BITS_CLIENT_NO_PROGRESS' });
      const path = join(f.stateDir, 'jobs', `${job.id}.json`);
      const record = JSON.parse(await readFile(path, 'utf8')) as UploadRecord;
      record.connection.user = `${USER}:${PASSWORD}`;
      record.url = `http://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}/up/${f.name}`;
      await writeFile(path, JSON.stringify(record));
      const resumed = await resumeJob(job.id, { stateDir: f.stateDir, retryDelayMs: 20 });
      await assert.rejects(resumed.result, { code: 'BITS_CLIENT_NO_PROGRESS' });
      assert.ok(server.requests.at(-1)?.headers['authorization'] === AUTHORIZATION, 'the old password still signs in');
      await assertNoPassword(f.stateDir);
      // From now on it needs the password given again.
      await assert.rejects(resumeJob(job.id, { stateDir: f.stateDir }), (err: unknown) => err instanceof PasswordNeededError && err.user === USER);
      blocked = false;
      await (await resumeJob(job.id, { stateDir: f.stateDir, retryDelayMs: 20, password: PASSWORD })).result;
      assert.deepEqual(server.state.committed.get(`/up/${f.name}`), f.data);
    });
  });

  it('bits jobs --prune cancels the jobs that failed fatally and keeps the interrupted ones', async () => {
    const denied = await startFakeBitsServer({
      override: (req) =>
        req.headers['bits-packet-type'] === 'Fragment'
          ? { status: 403, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error-Code': '0x80070005', 'BITS-Error-Context': '0x5' } }
          : undefined,
    });
    const missing = await startFakeServer(() => ({ status: 404 }));
    const stuck = await startFakeBitsServer({ override: (req) => (req.headers['bits-packet-type'] === 'Fragment' ? { status: 503, headers: {} } : undefined) });
    try {
      const f = await fresh(10_000);
      const stateDir = f.stateDir;
      const fatal = await runCli(['upload', f.file, `http://127.0.0.1:${denied.port}/up/${f.name}`, '--state-dir', stateDir, '--retry-delay', '0.05']);
      assert.equal(fatal.code, 1, fatal.stderr);
      const part = join(dir, 'missing.bin');
      const gone = await runCli(['download', `http://127.0.0.1:${missing.port}/missing.bin`, part, '--state-dir', stateDir, '--retry-delay', '0.05']);
      assert.equal(gone.code, 1, gone.stderr);
      await stat(`${part}.bits-part`);
      const waiting = await runCli(['upload', f.file, `http://127.0.0.1:${stuck.port}/up/${f.name}`, '--state-dir', stateDir, '--retry-delay', '0.05', '--no-progress-timeout', '0.3']);
      assert.equal(waiting.code, 3, waiting.stderr);
      const interruptedId = /bits resume ([0-9a-f]{12})/.exec(waiting.stderr)![1]!;
      assert.equal((await journaledJobs(stateDir)).length, 3);

      const r = await runCli(['jobs', '--prune', '--state-dir', stateDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pruned [0-9a-f]{12} \(upload http:\/\/127\.0\.0\.1:\d+\/up\/j\d+\.bin\): access denied$/m);
      assert.match(r.stdout, /^pruned [0-9a-f]{12} \(download http:\/\/127\.0\.0\.1:\d+\/missing\.bin\): .*404$/m);
      assert.match(r.stdout, new RegExp(`^${interruptedId}  upload  interrupted  `, 'm'), 'the remaining jobs are listed');
      assert.deepEqual(await journaledJobs(stateDir), [interruptedId]);
      assert.equal(denied.state.log.at(-1), 'cancel-session', 'the failed upload session is cancelled on the server');
      await assert.rejects(stat(`${part}.bits-part`), { code: 'ENOENT' });
    } finally {
      await denied.close();
      await missing.close();
      await stuck.close();
    }
  });

  it('BITS_PASSWORD goes only to the job named: resume without an id and --prune never send it to other hosts', async () => {
    const OTHER = 'other-host-Pw9';
    const own = startFakeBitsServer({
      authorization: AUTHORIZATION,
      override: (req) => (req.headers['bits-packet-type'] === 'Fragment' ? { status: 503, headers: { 'BITS-Packet-Type': 'Ack' } } : undefined),
    });
    // Another host where the same user name has another password; its jobs stop resumably or fatally.
    let denied = false;
    const other = startFakeBitsServer({
      authorization: `Basic ${Buffer.from(`${USER}:${OTHER}`).toString('base64')}`,
      override: (req): FakeReply | undefined =>
        req.headers['bits-packet-type'] !== 'Fragment'
          ? undefined
          : denied
            ? { status: 403, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error-Code': '0x80070005', 'BITS-Error-Context': '0x5' } }
            : { status: 503, headers: { 'BITS-Packet-Type': 'Ack' } },
    });
    const [a, b] = await Promise.all([own, other]);
    try {
      const f = await fresh(10_000);
      const stateDir = f.stateDir;
      const stop = ['--state-dir', stateDir, '--retry-delay', '0.05', '--no-progress-timeout', '0.3', '--user', USER];
      const mine = await runCli(['upload', f.file, `http://127.0.0.1:${a.port}/up/${f.name}`, ...stop], { BITS_PASSWORD: PASSWORD });
      assert.equal(mine.code, 3, mine.stderr);
      const theirs = await runCli(['upload', f.file, `http://127.0.0.1:${b.port}/up/${f.name}`, ...stop], { BITS_PASSWORD: OTHER });
      assert.equal(theirs.code, 3, theirs.stderr);
      denied = true;
      const failed = await runCli(['upload', f.file, `http://127.0.0.1:${b.port}/up/x-${f.name}`, ...stop], { BITS_PASSWORD: OTHER });
      assert.equal(failed.code, 1, failed.stderr);
      const [mineId, theirsId, failedId] = [mine, theirs, failed].map((r) => /bits resume ([0-9a-f]{12})/.exec(r.stderr)![1]!);
      const seenByOther = b.requests.length;

      const all = await runCli(['resume', '--state-dir', stateDir, '--retry-delay', '0.05'], { BITS_PASSWORD: PASSWORD });
      assert.equal(all.code, 2, all.stderr);
      for (const id of [mineId, theirsId]) assert.match(all.stderr, new RegExp(`job ${id} signs in as "bob" .*: set BITS_PASSWORD to it and name the job, e\\.g\\. BITS_PASSWORD=<password> bits resume ${id}`));
      const pruned = await runCli(['jobs', '--prune', '--state-dir', stateDir], { BITS_PASSWORD: PASSWORD });
      assert.equal(pruned.code, 0, pruned.stderr);
      assert.match(pruned.stderr, new RegExp(`warning: ${failedId} not pruned: job ${failedId} signs in as "bob" .* bits cancel ${failedId}`));
      assert.equal(b.requests.length, seenByOther, 'the other host saw no request, so no password of this host');
      assert.deepEqual((await journaledJobs(stateDir)).sort(), [mineId, theirsId, failedId].sort(), 'every job kept');

      // Named, the job resumes with it (and only its host sees it).
      const named = await runCli(['resume', mineId!, '--state-dir', stateDir, '--retry-delay', '0.05', '--quiet'], { BITS_PASSWORD: PASSWORD });
      assert.equal(named.code, 3, named.stderr);
      assert.equal(a.requests.at(-1)?.headers['authorization'], AUTHORIZATION);
      assert.equal(b.requests.length, seenByOther);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('bits jobs --prune looks at each job again, keeps what it cannot cancel, and goes on with the others', async () => {
    const DENIED = { status: 403, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error-Code': '0x80070005', 'BITS-Error-Context': '0x5' } };
    const f = await fresh(10_000);
    const stateDir = f.stateDir;
    // Cancelling the first job, another process resumes the second one: its record says so before
    // the first Cancel-Session is answered.
    let resumeElsewhere: string | undefined;
    const first = await startFakeBitsServer({
      override: (req) => {
        const type = req.headers['bits-packet-type'];
        if (type === 'Fragment') return DENIED;
        if (type === 'Cancel-Session' && resumeElsewhere !== undefined) {
          const record = JSON.parse(readFileSync(resumeElsewhere, 'utf8')) as UploadRecord;
          writeFileSync(resumeElsewhere, JSON.stringify({ ...record, state: 'running', pid: process.pid }));
        }
        return undefined;
      },
    });
    const others = await startFakeBitsServer({
      override: (req): FakeReply | undefined => {
        const type = req.headers['bits-packet-type'];
        if (type === 'Fragment') return DENIED;
        // The third job's server refuses to cancel its session.
        if (type === 'Cancel-Session' && req.path.includes('refused')) return DENIED;
        return undefined;
      },
    });
    const keyDir = join(dir, 'prune-key');
    await mkdir(keyDir);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(keyDir, 'k.pem'), '-out', join(keyDir, 'c.pem'), '-days', '1', '-subj', '/CN=x'], { stdio: 'ignore' });
    try {
      const failed = async (url: string, extra: string[] = []): Promise<string> => {
        const r = await runCli(['upload', f.file, url, '--state-dir', stateDir, '--retry-delay', '0.05', ...extra]);
        assert.equal(r.code, 1, r.stderr);
        return /bits resume ([0-9a-f]{12})/.exec(r.stderr)![1]!;
      };
      const j1 = await failed(`http://127.0.0.1:${first.port}/up/one.bin`);
      const j2 = await failed(`http://127.0.0.1:${others.port}/up/two.bin`);
      const j3 = await failed(`http://127.0.0.1:${others.port}/up/refused.bin`);
      const j4 = await failed(`http://127.0.0.1:${others.port}/up/four.bin`, ['--cert', join(keyDir, 'c.pem'), '--key', join(keyDir, 'k.pem')]);
      await rm(join(keyDir, 'k.pem'));
      resumeElsewhere = join(stateDir, 'jobs', `${j2}.json`);
      const cancelsBefore = others.state.log.filter((x) => x === 'cancel-session').length;
      const r = await runCli(['jobs', '--prune', '--state-dir', stateDir]);
      assert.ok(first.state.log.includes('cancel-session'));
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected error|\bat [\w.]+ \(/, 'no stack trace');
      assert.match(r.stdout, new RegExp(`^pruned ${j1} `, 'm'));
      assert.doesNotMatch(r.stdout, new RegExp(`pruned (${j2}|${j3}|${j4})`));
      assert.match(r.stderr, new RegExp(`warning: ${j2} not pruned: job ${j2} is running in process ${process.pid} now`));
      assert.match(r.stderr, new RegExp(`warning: ${j3} not pruned: Cancel-Session http://127\\.0\\.0\\.1:\\d+/up/refused\\.bin: HTTP 403.*the job is kept: give its password \\(BITS_PASSWORD\\) and run bits cancel again, or delete .*${j3}\\.json to forget it`));
      assert.match(r.stderr, new RegExp(`warning: ${j4} not pruned: .*cannot read the client key .*k\\.pem: ENOENT`));
      assert.deepEqual((await journaledJobs(stateDir)).sort(), [j2, j3, j4].sort());
      assert.equal(others.state.log.filter((x) => x === 'cancel-session').length, cancelsBefore + 1, 'only the refused one was asked');
    } finally {
      await first.close();
      await others.close();
    }
  });

  it('a cancel gives up on a host that never answers after cancelTimeoutMs, and says the session lives on', { timeout: 60_000 }, async () => {
    const f = await fresh(10_000);
    const denied = await startFakeBitsServer({
      override: (req) => (req.headers['bits-packet-type'] === 'Fragment' ? { status: 403, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error-Code': '0x80070005' } } : undefined),
    });
    const silent = await startSilentPeer();
    try {
      const r = await runCli(['upload', f.file, `http://127.0.0.1:${denied.port}/up/${f.name}`, '--state-dir', f.stateDir, '--retry-delay', '0.05']);
      assert.equal(r.code, 1, r.stderr);
      const [id] = await journaledJobs(f.stateDir);
      // The host has gone dark since: it takes connections and requests and never answers.
      const path = join(f.stateDir, 'jobs', `${id}.json`);
      const record = JSON.parse(await readFile(path, 'utf8')) as UploadRecord;
      await writeFile(path, JSON.stringify({ ...record, url: `http://127.0.0.1:${silent.port}/up/${f.name}` }));
      const outcomes = await pruneJobs({ stateDir: f.stateDir, cancelTimeoutMs: 1000 });
      assert.equal(outcomes.length, 1);
      assert.equal(outcomes[0]!.pruned, true);
      assert.match(outcomes[0]!.warnings?.join() ?? '', /Cancel-Session failed \(.*no answer within 1 s\); the server keeps the session until it expires/);
      assert.ok(silent.requests.some((q) => q.headers['bits-packet-type'] === 'Cancel-Session'));
      assert.deepEqual(await journaledJobs(f.stateDir), []);
    } finally {
      await denied.close();
      await silent.close();
    }
  });

  describe('no other secret reaches the journal either', () => {
    it('credential headers are refused for a journaled job (exit 2), pointing to --user and BITS_PASSWORD', async () => {
      const f = await fresh(10);
      const headers = ['Authorization: Bearer tok-S3CRET', 'proxy-authorization: Basic UzNDUkVU', 'Cookie: session=S3CRET'];
      for (const header of headers) {
        const r = await runCli(['upload', f.file, 'http://127.0.0.1:9/up/a.bin', '--state-dir', f.stateDir, '--header', header, '--retry-delay', '0.05', '--no-progress-timeout', '0.2']);
        assert.equal(r.code, 2, `${header}: ${r.stderr}`);
        assert.match(r.stderr, /--header (authorization|proxy-authorization|cookie): credentials are never journaled; sign in with --user <name> and the password in BITS_PASSWORD/i);
      }
      assert.deepEqual(await journaledJobs(f.stateDir), [], 'nothing journaled');
      assert.throws(() => upload({ file: f.file, url: 'http://127.0.0.1:9/up/a.bin', headers: { authorization: 'Bearer x' }, stateDir: f.stateDir }), /header authorization carries credentials/);
      // Without a journal the header lives in memory only, and goes.
      const server = await startFakeBitsServer({ authorization: 'Bearer tok-S3CRET' });
      try {
        await upload({ file: f.file, url: `http://127.0.0.1:${server.port}/up/${f.name}`, headers: { Authorization: 'Bearer tok-S3CRET' }, stateDir: false }).result;
        assert.ok(server.state.committed.has(`/up/${f.name}`));
      } finally {
        await server.close();
      }
    });

    it('the client key stays in its file: the journal keeps its path and resume reads it again', async () => {
      const pkiDir = join(dir, 'pki');
      await mkdir(pkiDir);
      const pki = makePki(pkiDir, ['alice']);
      const keyText = await readFile(pki.clients['alice']!.key, 'utf8');
      const keyLine = keyText.split('\n')[1]!;
      const assertNoKey = async (stateDir: string, keyFile: string): Promise<void> => {
        const text = await allText(stateDir);
        assert.ok(!text.includes('PRIVATE KEY') && !text.includes(keyLine), 'the journal holds the key');
        assert.ok(text.includes(JSON.stringify(keyFile)), 'the journal names the key file');
      };
      // The command line: a job that failed fatally is kept, with the key's path.
      const denied = await startFakeBitsServer({
        override: (req) => (req.headers['bits-packet-type'] === 'Fragment' ? { status: 403, headers: { 'BITS-Packet-Type': 'Ack', 'BITS-Error-Code': '0x80070005' } } : undefined),
      });
      const f = await fresh(20_000);
      try {
        const r = await runCli(['upload', f.file, `http://127.0.0.1:${denied.port}/up/${f.name}`, '--state-dir', f.stateDir, '--cert', pki.clients['alice']!.cert, '--key', pki.clients['alice']!.key]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal((await journaledJobs(f.stateDir)).length, 1);
        await assertNoKey(f.stateDir, pki.clients['alice']!.key);
      } finally {
        await denied.close();
      }
      // Over TLS to a vdir that requires the certificate: stopped, resumed with the key read from its file.
      const t = await startServer({
        config: { tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert } },
        vdirs: [{ path: '/cert', directory: './cert', auth: { schemes: ['client-certificate'] } }],
      });
      try {
        const stateDir = join(dir, 'state-key');
        const keyFile = join(pkiDir, 'moved.key');
        await rename(pki.clients['alice']!.key, keyFile);
        const job = upload({
          file: f.file,
          url: `https://localhost:${t.port}/cert/${f.name}`,
          cert: await readFile(pki.clients['alice']!.cert),
          keyFile,
          ca: await readFile(pki.caCert),
          fragmentSize: 5120,
          stateDir,
          retryDelayMs: 20,
        });
        job.on('progress', (p) => {
          if (p.bytesDone > 0) job.stop();
        });
        await assert.rejects(job.result, { code: 'BITS_CLIENT_INTERRUPTED' });
        await assertNoKey(stateDir, keyFile);
        // The key's file gone: resume says so and keeps the job.
        await rename(keyFile, `${keyFile}.away`);
        const gone = await runCli(['resume', job.id, '--state-dir', stateDir]);
        assert.equal(gone.code, 1, gone.stderr);
        assert.match(gone.stderr, new RegExp(`cannot read the client key ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
        assert.deepEqual(await journaledJobs(stateDir), [job.id]);
        await rename(`${keyFile}.away`, keyFile);
        await (await resumeJob(job.id, { stateDir, retryDelayMs: 20 })).result;
        assert.equal(await sha256File(join(t.root, 'cert', f.name)), await sha256File(f.file));
      } finally {
        await t.stop();
      }
    });
  });
});
