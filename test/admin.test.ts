// The admin listener: health and readiness, the token, and Prometheus metrics that follow what the
// BITS port served (counter values checked after a known upload).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assertAck } from './helpers/assert-ack.js';
import { CLI } from './helpers/cli.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

const TOKEN = 'admin-token-0123456789abcdef';

async function adminGet(server: TestServer, path: string, token?: string): Promise<{ status: number; body: string; type: string | null }> {
  const port = server.server.adminAddress()!.port;
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

/** The value of one sample of the metrics text, e.g. `bits_packets_total{vdir="/up",type="Fragment",status="200"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('admin listener', () => {
  it('health is open; everything else needs the token', async (t) => {
    const s = await startServer({ config: { admin: { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN } } });
    t.after(() => s.stop());
    assert.deepEqual(JSON.parse((await adminGet(s, '/healthz')).body), { status: 'ok' });
    const ready = await adminGet(s, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), { status: 'ready' });
    assert.equal((await adminGet(s, '/metrics')).status, 401);
    assert.equal((await adminGet(s, '/metrics', 'admin-token-0123456789abcdeX')).status, 401);
    const metrics = await adminGet(s, '/metrics', TOKEN);
    assert.equal(metrics.status, 200);
    assert.match(metrics.type ?? '', /^text\/plain/);
    assert.match(metrics.body, /^process_cpu_seconds_total /m);
    assert.equal((await adminGet(s, '/no-such-thing', TOKEN)).status, 404);
  });

  it('the token may come from a file; an unreadable one stops the start, naming the key', async (t) => {
    const s0 = await startServer();
    t.after(() => s0.stop());
    const file = join(s0.root, 'admin.token');
    await writeFile(file, `${TOKEN}\n`);
    const s = await startServer({ config: { admin: { listen: { host: '127.0.0.1', port: 0 }, tokenFile: file } } });
    t.after(() => s.stop());
    assert.equal((await adminGet(s, '/metrics', TOKEN)).status, 200);
    await assert.rejects(startServer({ config: { admin: { listen: { host: '127.0.0.1', port: 0 }, tokenFile: join(s0.root, 'none') } } }), /admin\.tokenFile: cannot read/);
  });

  it('metrics count a known upload: packets, bytes, commits, active sessions, errors, auth failures', async (t) => {
    const s = await startServer({ config: { admin: { listen: { host: '127.0.0.1', port: 0 } } } });
    t.after(() => s.stop());
    const body = Buffer.alloc(3000, 7);
    const id = await s.createSession('/up/known.bin');
    let text = (await adminGet(s, '/metrics')).body;
    assert.equal(sample(text, 'bits_sessions_active{vdir="/up"}'), 1);
    assertAck(await s.request(fragmentRequest('/up/known.bin', id, 0, body.subarray(0, 1000), body.length)));
    assertAck(await s.request(fragmentRequest('/up/known.bin', id, 1000, body.subarray(1000), body.length)));
    // A gap: 416 with an error code.
    const gap = await s.request(fragmentRequest('/up/known.bin', id, 5000, body.subarray(0, 10), 6000));
    assert.notEqual(gap.status, 200);
    assertAck(await s.request({ type: 'Close-Session', path: '/up/known.bin', sessionId: id }));

    text = (await adminGet(s, '/metrics')).body;
    assert.equal(sample(text, 'bits_packets_total{vdir="/up",type="Create-Session",status="200"}'), 1);
    assert.equal(sample(text, 'bits_packets_total{vdir="/up",type="Fragment",status="200"}'), 2);
    assert.equal(sample(text, 'bits_packets_total{vdir="/up",type="Close-Session",status="200"}'), 1);
    assert.equal(sample(text, 'bits_bytes_received_total{vdir="/up"}'), body.length);
    assert.equal(sample(text, 'bits_uploads_committed_total{vdir="/up"}'), 1);
    assert.equal(sample(text, 'bits_fragment_duration_seconds_count{vdir="/up"}'), 2);
    assert.equal(sample(text, 'bits_commit_duration_seconds_count{vdir="/up"}'), 1);
    assert.equal(sample(text, 'bits_sessions_active{vdir="/up"}'), undefined, 'no live session is left');
    const errors = text.split('\n').filter((l) => l.startsWith('bits_errors_total{vdir="/up"'));
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /hresult="0x[0-9A-F]{8}"\} 1$/i);
    assert.ok((sample(text, 'bits_free_bytes{folder="state"}') ?? 0) > 0);
    assert.ok(!/known\.bin|\{[0-9A-F-]{36}\}/i.test(text), 'no paths or session ids in labels');
  });

  it('counts authentication failures by reason', async (t) => {
    const s0 = await startServer();
    t.after(() => s0.stop());
    const users = join(s0.root, 'users.json');
    execFileSync(process.execPath, [CLI, 'user', 'add', 'alice', '--users', users], { input: 'correct horse battery\n' });
    const s = await startServer({
      vdir: { auth: { schemes: ['basic'], users, allowInsecureBasic: true } },
      config: { admin: { listen: { host: '127.0.0.1', port: 0 } } },
    });
    t.after(() => s.stop());
    assert.equal((await s.request({ type: 'Ping', path: '/up/x' })).status, 401);
    const wrong = Buffer.from('alice:wrong').toString('base64');
    assert.equal((await s.request({ type: 'Ping', path: '/up/x', headers: { Authorization: `Basic ${wrong}` } })).status, 401);
    const text = (await adminGet(s, '/metrics')).body;
    assert.equal(sample(text, 'bits_auth_failures_total{vdir="/up",reason="challenge"}'), 2);
  });

  it('/readyz turns 503 while the state directory cannot be written, and back', async (t) => {
    // A read-only remount makes the folder unwritable even for root (mode bits do not).
    const dir = await mkdtemp(join(tmpdir(), 'bits-ready-'));
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { encoding: 'utf8' });
    if (mount.status !== 0) {
      t.skip(`!!! SKIPPED: cannot mount a tmpfs to make the state directory read-only (${mount.stderr.trim() || 'not root?'})`);
      return;
    }
    const remount = (mode: 'ro' | 'rw') => execFileSync('mount', ['-o', `remount,${mode}`, dir]);
    t.after(() => {
      spawnSync('umount', ['-l', dir]);
      return rm(dir, { recursive: true, force: true });
    });
    const s = await startServer({ config: { stateDir: join(dir, 'state'), admin: { listen: { host: '127.0.0.1', port: 0 } } } });
    t.after(() => s.stop());
    assert.equal((await adminGet(s, '/readyz')).status, 200);
    remount('ro');
    const down = await adminGet(s, '/readyz');
    remount('rw');
    assert.equal(down.status, 503);
    const reason = (JSON.parse(down.body) as { status: string; reason: string });
    assert.equal(reason.status, 'unavailable');
    assert.match(reason.reason, /state directory .* cannot be written: EROFS/);
    assert.equal((await adminGet(s, '/healthz')).status, 200, 'the process still serves');
    assert.equal((await adminGet(s, '/readyz')).status, 200);
  });
});
