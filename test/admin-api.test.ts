// The admin API on a real server: sessions listed (filters, paging), shown and cancelled (the
// client then gets session-not-found), stats and errors after known traffic, the token, and the
// `bits sessions` commands against it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sessionKey } from '../src/protocol/session-id.js';
import type { SessionView } from '../src/server/admin/api.js';
import type { ActivityError } from '../src/server/admin/activity.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { CLI } from './helpers/cli.js';
import { runCli } from './helpers/cli-run.js';
import { deadPort } from './helpers/dead-port.js';
import { freshDatabase, requireServices } from './helpers/services.js';
import { bitsRequestBytes } from './helpers/raw-http.js';

const TOKEN = 'admin-token-0123456789abcdef';
const NOT_FOUND = '0x8020001F';

interface Answer<T> {
  status: number;
  body: T;
}

/** The admin listener's base URL. */
function adminUrl(s: TestServer): string {
  return `http://127.0.0.1:${s.server.adminAddress()!.port}`;
}

/** One admin request with the token (or the given headers), its JSON answer. */
async function admin<T = unknown>(s: TestServer, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  const res = await fetch(`${adminUrl(s)}${path}`, {
    method: options.method ?? 'GET',
    headers: options.headers ?? { Authorization: `Bearer ${TOKEN}` },
  });
  return { status: res.status, body: (await res.json()) as T };
}

type Page = { sessions: SessionView[]; next: string | null };

/** A server with the admin listener (token set) and two vdirs, `/up` and `/other`. */
function adminServer(): Promise<TestServer> {
  return startServer({
    vdirs: [
      { path: '/up', directory: 'uploads' },
      { path: '/other', directory: 'other' },
    ],
    config: { admin: { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN } },
  });
}

/** Every page of `GET /api/sessions?<query>`, following `next` (at most 100 pages). */
async function allPages(s: TestServer, query: string): Promise<Page[]> {
  const pages: Page[] = [];
  let after: string | null = null;
  for (let i = 0; i < 100; i++) {
    const { status, body }: Answer<Page> = await admin<Page>(s, `/api/sessions?${query}${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    assert.equal(status, 200);
    pages.push(body);
    if (body.next === null) return pages;
    after = body.next;
  }
  assert.fail('the pages never ended');
}

/** Polls `condition` every 20 ms, at most 500 times. */
async function until(condition: () => Promise<boolean>, message: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await condition()) return;
    await sleep(20);
  }
  assert.fail(message);
}

describe('admin API: sessions', () => {
  it('lists live sessions in id order, with filters and paging, and shows one under any spelling of its id', async (t) => {
    const s = await adminServer();
    t.after(() => s.stop());
    const body = Buffer.alloc(3000, 1);
    const idle = [await s.createSession('/up/a.bin'), await s.createSession('/up/b.bin')];
    const moving = await s.createSession('/up/moving.bin');
    // (the last packet's client is kept: this one's User-Agent differs, the raw helper's own joined with another)
    const later = fragmentRequest('/up/moving.bin', moving, 0, body.subarray(0, 1000), body.length);
    assertAck(await s.request({ ...later, headers: { ...later.headers, 'User-Agent': 'Microsoft BITS/10.0' } }));
    const complete = await s.createSession('/up/complete.bin');
    assertAck(await s.request(fragmentRequest('/up/complete.bin', complete, 0, body, body.length)));
    const other = await s.createSession('/other/x.bin');
    const all = [...idle, moving, complete, other];

    const { status, body: page } = await admin<Page>(s, '/api/sessions');
    assert.equal(status, 200);
    assert.equal(page.next, null);
    assert.deepEqual(
      page.sessions.map((x) => x.id),
      [...all].sort((a, b) => (sessionKey(a) < sessionKey(b) ? -1 : 1)),
      'every session, in id order',
    );
    const view = page.sessions.find((x) => x.id === moving)!;
    assert.equal(view.vdir, '/up');
    assert.equal(view.urlPath, '/up/moving.bin');
    assert.equal(view.principal, null);
    assert.equal(view.received, 1000);
    assert.equal(view.total, 3000);
    assert.equal(view.state, 'receiving');
    assert.deepEqual(view.client, { address: '127.0.0.1', userAgent: 'Microsoft BITS/7.8, Microsoft BITS/10.0' });
    assert.deepEqual(page.sessions.find((x) => x.id === other)?.client, { address: '127.0.0.1', userAgent: 'Microsoft BITS/7.8' });
    assert.equal(typeof view.node, 'string');
    for (const key of ['createdAt', 'updatedAt', 'expiresAt'] as const) assert.equal(new Date(view[key]).toISOString(), view[key], key);
    assert.ok(Date.parse(view.expiresAt) > Date.parse(view.updatedAt));
    assert.equal(page.sessions.find((x) => x.id === complete)?.state, 'complete');

    const ids = async (query: string): Promise<string[]> => (await admin<Page>(s, `/api/sessions?${query}`)).body.sessions.map((x) => x.id).sort();
    assert.deepEqual(await ids('vdir=/other'), [other]);
    assert.deepEqual(await ids('state=complete'), [complete]);
    assert.deepEqual(await ids('vdir=/up&state=receiving'), [...idle, moving].sort());
    assert.deepEqual(await ids('state=committing'), []);
    assert.deepEqual(await ids('principal=alice'), []);

    const pages = await allPages(s, 'limit=2');
    assert.deepEqual(
      pages.map((p) => p.sessions.length),
      [2, 2, 1],
    );
    assert.deepEqual(pages.flatMap((p) => p.sessions.map((x) => x.id)), page.sessions.map((x) => x.id), 'the pages, joined, are the whole list');
    const filtered = await allPages(s, 'vdir=/up&state=receiving&limit=1');
    assert.deepEqual(filtered.flatMap((p) => p.sessions.map((x) => x.id)).sort(), [...idle, moving].sort(), 'filters hold across pages');

    for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'state=done', 'after=nope']) {
      const answer = await admin<{ error: string }>(s, `/api/sessions?${bad}`);
      assert.equal(answer.status, 400, bad);
      assert.equal(typeof answer.body.error, 'string');
    }

    const bare = moving.slice(1, -1);
    for (const spelling of [moving, moving.toLowerCase(), bare, bare.toLowerCase(), encodeURIComponent(moving)]) {
      const shown = await admin<SessionView>(s, `/api/sessions/${spelling}`);
      assert.equal(shown.status, 200, spelling);
      assert.deepEqual(shown.body, view, spelling);
    }
    assert.equal((await admin(s, '/api/sessions/{00000000-0000-0000-0000-000000000000}')).status, 404);
    assert.equal((await admin(s, '/api/sessions/not-a-session')).status, 400);
  });

  it('DELETE cancels as Cancel-Session does: a fragment in progress is stopped, the data is gone, the client gets session-not-found', async (t) => {
    const s = await adminServer();
    t.after(() => s.stop());
    const cancelled: string[] = [];
    s.server.on('session-cancelled', (record) => cancelled.push(record.id));
    const data = Buffer.alloc(4 * 1024 * 1024, 2);
    const id = await s.createSession('/up/cancel.bin');
    assertAck(await s.request(fragmentRequest('/up/cancel.bin', id, 0, data.subarray(0, 1000), data.length)));
    // A fragment in progress: its head and more of its body than one disk write gathers, then silence.
    const stalled = await s.connect();
    t.after(() => stalled.close());
    const whole = bitsRequestBytes(fragmentRequest('/up/cancel.bin', id, 1000, data.subarray(1000), data.length));
    await stalled.write(whole.subarray(0, whole.length - 1024 * 1024));
    const dataFile = join(s.stateDir, 'sessions', sessionKey(id), 'data.bin');
    await until(async () => ((await stat(dataFile).catch(() => undefined))?.size ?? 0) > 1000, 'the fragment in progress wrote nothing');

    const answer = await admin<{ cancelled: SessionView }>(s, `/api/sessions/${sessionKey(id).toLowerCase()}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.cancelled.id, id);
    assert.equal(answer.body.cancelled.urlPath, '/up/cancel.bin');
    assert.equal(await stalled.closed(5000), true, 'the fragment in progress was stopped');
    assert.deepEqual(cancelled, [id]);
    await assert.rejects(stat(join(s.stateDir, 'sessions', sessionKey(id))), { code: 'ENOENT' });

    const next = await s.request(fragmentRequest('/up/cancel.bin', id, 1000, data.subarray(1000, 2000), data.length));
    assertErr(next, 500, NOT_FOUND);
    assertErr(await s.request({ type: 'Close-Session', path: '/up/cancel.bin', sessionId: id }), 500, NOT_FOUND);
    await assert.rejects(stat(join(s.uploads, 'cancel.bin')), { code: 'ENOENT' }, 'nothing was committed');
    assert.equal((await admin(s, `/api/sessions/${id}`)).status, 404);
    const again = await admin(s, `/api/sessions/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(again.status, 404);
    assert.equal((await admin<Page>(s, '/api/sessions')).body.sessions.length, 0);
  });

  it('every API endpoint needs the token: Bearer or the dashboard cookie', async (t) => {
    const s = await adminServer();
    t.after(() => s.stop());
    const id = await s.createSession('/up/a.bin');
    for (const path of ['/api/sessions', `/api/sessions/${id}`, '/api/stats', '/api/errors']) {
      assert.equal((await admin(s, path, { headers: {} })).status, 401, path);
      assert.equal((await admin(s, path, { headers: { Authorization: `Bearer ${TOKEN}x` } })).status, 401, path);
      assert.equal((await admin(s, path, { headers: { Cookie: `bits_admin=${TOKEN}` } })).status, 200, path);
    }
    assert.equal((await admin(s, `/api/sessions/${id}`, { method: 'DELETE', headers: {} })).status, 401);
    assert.equal((await admin(s, `/api/sessions/${id}`)).status, 200, 'an unauthorized DELETE cancels nothing');
  });
});

describe('admin API on PostgreSQL records', () => {
  it('lists, pages, shows and cancels sessions kept in the database, naming the node', async (t) => {
    if (!requireServices(t, ['postgres'])) return;
    const db = await freshDatabase();
    t.after(() => db.drop());
    const s = await startServer({
      config: { store: { records: { type: 'postgres', url: db.url, node: 'node-a' } }, admin: { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN } },
    });
    t.after(() => s.stop());
    const ids = [await s.createSession('/up/a.bin'), await s.createSession('/up/b.bin'), await s.createSession('/up/c.bin')];
    const body = Buffer.alloc(100, 5);
    assertAck(await s.request(fragmentRequest('/up/b.bin', ids[1]!, 0, body, body.length)));
    const pages = await allPages(s, 'limit=2');
    assert.deepEqual(
      pages.flatMap((p) => p.sessions.map((x) => x.id)),
      [...ids].sort((a, b) => (sessionKey(a) < sessionKey(b) ? -1 : 1)),
    );
    assert.ok(pages.flatMap((p) => p.sessions).every((x) => x.node === 'node-a'));
    const complete = await admin<Page>(s, '/api/sessions?state=complete');
    assert.deepEqual(complete.body.sessions.map((x) => x.id), [ids[1]]);
    assert.equal((await admin<{ node: string }>(s, '/api/stats')).body.node, 'node-a');
    const cancelled = await admin(s, `/api/sessions/${ids[0]!.toLowerCase()}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(cancelled.status, 200);
    assertErr(await s.request(fragmentRequest('/up/a.bin', ids[0]!, 0, body, body.length)), 500, NOT_FOUND);
    assert.equal((await admin<Page>(s, '/api/sessions')).body.sessions.length, 2);
  });
});

describe('admin API: stats and errors', () => {
  it('count a known upload and refused packets; throughput holds its bytes', async (t) => {
    const s = await adminServer();
    t.after(() => s.stop());
    const body = Buffer.alloc(3000, 3);
    const id = await s.createSession('/up/known.bin');
    assertAck(await s.request(fragmentRequest('/up/known.bin', id, 0, body.subarray(0, 1000), body.length)));
    assertAck(await s.request(fragmentRequest('/up/known.bin', id, 1000, body.subarray(1000), body.length)));
    assertAck(await s.request({ type: 'Close-Session', path: '/up/known.bin', sessionId: id }));
    // Refused: a gap (416, no HRESULT), then a Fragment of a session nobody has.
    const gapped = await s.createSession('/up/gap.bin');
    assert.equal((await s.request(fragmentRequest('/up/gap.bin', gapped, 500, body.subarray(0, 10), 6000))).status, 416);
    const unknown = '{00000000-0000-0000-0000-0000000000AB}';
    assertErr(await s.request(fragmentRequest('/up/gap.bin', unknown, 0, body.subarray(0, 10), 6000)), 500, NOT_FOUND);

    type Stats = {
      node: string;
      startedAt: string;
      vdirs: { path: string; sessionsActive: number; bytesReceived: number; uploadsCommitted: number; packets: number; errors: number }[];
      throughput: { t: string; bytes: number }[];
    };
    const { status, body: stats } = await admin<Stats>(s, '/api/stats');
    assert.equal(status, 200);
    assert.equal(typeof stats.node, 'string');
    assert.ok(Date.parse(stats.startedAt) <= Date.now());
    assert.deepEqual(stats.vdirs, [
      { path: '/up', sessionsActive: 1, bytesReceived: 3000, uploadsCommitted: 1, packets: 7, errors: 2 },
      { path: '/other', sessionsActive: 0, bytesReceived: 0, uploadsCommitted: 0, packets: 0, errors: 0 },
    ]);
    assert.equal(stats.throughput.length, 90, '15 minutes of 10-second buckets');
    const starts = stats.throughput.map((b) => Date.parse(b.t));
    for (let i = 1; i < starts.length; i++) assert.equal(starts[i]! - starts[i - 1]!, 10_000);
    assert.equal(starts[0]! % 10_000, 0);
    assert.equal(
      stats.throughput.reduce((n, b) => n + b.bytes, 0),
      3000,
    );

    const { body: listed } = await admin<{ errors: ActivityError[] }>(s, '/api/errors');
    assert.equal(listed.errors.length, 2);
    const [latest, gap] = listed.errors;
    assert.equal(latest?.status, 500);
    assert.equal(latest?.hresult, NOT_FOUND);
    assert.equal(latest?.name, 'BG_E_SESSION_NOT_FOUND');
    assert.equal(latest?.packet, 'Fragment');
    assert.equal(latest?.vdir, '/up');
    assert.equal(latest?.session, unknown);
    assert.match(latest?.reason ?? '', /unknown/);
    assert.equal(gap?.status, 416);
    assert.equal(gap?.hresult, null);
    assert.equal(gap?.name, null);
    assert.equal(gap?.session, gapped);
    assert.match(gap?.reason ?? '', /expected 0/);
    assert.ok(Date.parse(latest!.time) >= Date.parse(gap!.time), 'the most recent first');
    assert.deepEqual((await admin<{ errors: ActivityError[] }>(s, '/api/errors?limit=1')).body.errors, [latest]);
    assert.equal((await admin(s, '/api/errors?limit=201')).status, 400);
  });

  it("an anonymous first try's 401 is not an error; bad credentials are", async (t) => {
    const s0 = await startServer();
    t.after(() => s0.stop());
    const users = join(s0.root, 'users.json');
    execFileSync(process.execPath, [CLI, 'user', 'add', 'alice', '--users', users], { input: 'correct horse battery\n' });
    const s = await startServer({
      vdir: { auth: { schemes: ['basic'], users, allowInsecureBasic: true } },
      config: { admin: { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN } },
    });
    t.after(() => s.stop());
    assert.equal((await s.request({ type: 'Ping', path: '/up/x' })).status, 401);
    assert.deepEqual((await admin<{ errors: ActivityError[] }>(s, '/api/errors')).body.errors, []);
    const wrong = Buffer.from('alice:wrong').toString('base64');
    assert.equal((await s.request({ type: 'Ping', path: '/up/x', headers: { Authorization: `Basic ${wrong}` } })).status, 401);
    const [refused, ...rest] = (await admin<{ errors: ActivityError[] }>(s, '/api/errors')).body.errors;
    assert.equal(rest.length, 0);
    assert.equal(refused?.status, 401);
    assert.match(refused?.reason ?? '', /bad credentials for "alice"/);
  });
});

describe('bits sessions', () => {
  it('list, show and cancel through the admin API; clear errors and exit codes', async (t) => {
    const s = await adminServer();
    t.after(() => s.stop());
    const body = Buffer.alloc(3000, 4);
    const id = await s.createSession('/up/cli.bin');
    assertAck(await s.request(fragmentRequest('/up/cli.bin', id, 0, body.subarray(0, 1000), body.length)));
    const second = await s.createSession('/up/second.bin');
    const flags = ['--admin', adminUrl(s), '--token', TOKEN];

    const list = await runCli(['sessions', 'list', ...flags]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+STATE\s+RECEIVED\s+PRINCIPAL\s+CLIENT\s+UPDATED\s+URL$/);
    const line = lines.find((l) => l.startsWith(id))!;
    assert.match(line, /receiving\s+1000 B\/2\.9 KiB \(33%\)\s+-\s+127\.0\.0\.1\s+\S+\s+\/up\/cli\.bin$/);
    assert.ok(lines.some((l) => l.startsWith(second)));

    const env = { BITS_ADMIN_URL: adminUrl(s), BITS_ADMIN_TOKEN: TOKEN };
    const json = await runCli(['sessions', 'list', '--json', '--vdir', '/up', '--state', 'receiving'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(((JSON.parse(json.stdout) as Page).sessions.map((x) => x.id)).sort(), [id, second].sort());

    const first = await runCli(['sessions', 'list', '--limit', '1'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /more: bits sessions list --after \S+/);
    const every = await runCli(['sessions', 'list', '--limit', '1', '--all', '--json'], env);
    assert.deepEqual(((JSON.parse(every.stdout) as Page).sessions.map((x) => x.id)).sort(), [id, second].sort());

    const show = await runCli(['sessions', 'show', id.toLowerCase(), ...flags]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^id:\\s+${id.replace(/[{}]/g, '\\$&')}$`, 'm'));
    assert.match(show.stdout, /^client:\s+127\.0\.0\.1 Microsoft BITS\/7\.8$/m);
    assert.match(show.stdout, /^received:\s+1000 B\/2\.9 KiB \(33%\)$/m);

    const noToken = await runCli(['sessions', 'list', '--admin', adminUrl(s)], { BITS_ADMIN_TOKEN: undefined });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /^bits sessions list: the admin API needs a valid token: give --token or set BITS_ADMIN_TOKEN\n$/);
    const badToken = await runCli(['sessions', 'list', '--admin', adminUrl(s), '--token', 'wrong'], { BITS_ADMIN_TOKEN: undefined });
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /the one given was refused/);
    const dead = await runCli(['sessions', 'list', '--admin', `http://127.0.0.1:${await deadPort()}`, '--token', TOKEN]);
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    const notUrl = await runCli(['sessions', 'list', '--admin', 'nowhere']);
    assert.equal(notUrl.code, 2);
    assert.match(notUrl.stderr, /--admin: nowhere is not a URL/);
    const badLimit = await runCli(['sessions', 'list', '--limit', '0', ...flags]);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /limit must be a whole number from 1 to 1000/);
    const unknown = await runCli(['sessions', 'show', '{00000000-0000-0000-0000-000000000000}', ...flags]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no session \{00000000-0000-0000-0000-000000000000\}/);

    const cancel = await runCli(['sessions', 'cancel', id, ...flags]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, `cancelled ${id} (/up/cli.bin, 1000 B/2.9 KiB (33%))\n`);
    assertErr(await s.request(fragmentRequest('/up/cli.bin', id, 1000, body.subarray(1000), body.length)), 500, NOT_FOUND);
    const twice = await runCli(['sessions', 'cancel', id, ...flags]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /no session/);
  });
});
