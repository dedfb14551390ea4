import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { newSessionId } from '../src/protocol/session-id.js';
import { PostgresRecordStore, SessionExistsError, isTransientPgError } from '../src/store/postgres/index.js';
import type { PostgresRecordStoreOptions } from '../src/store/postgres/index.js';
import { recordStoreCompliance } from '../src/store/testing/record-store-compliance.js';
import { sampleRecord } from '../src/store/testing/harness.js';
import { LeaseLostError, SessionLimitError, StoreUnavailableError } from '../src/store/types.js';
import { deadPort } from './helpers/dead-port.js';

// PostgreSQL comes from the environment (scripts/services/postgres.sh prints BITS_TEST_PG_URL).
const url = process.env.BITS_TEST_PG_URL;
const NO_PG = 'no PostgreSQL: set BITS_TEST_PG_URL (scripts/services/postgres.sh start DIR PORT prints it)';

function skipLoudly(t: TestContext, why: string): void {
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
}

/** Every store a case opens, closed at the end even when the case fails (their sockets keep the process alive). */
const opened = new Set<PostgresRecordStore>();
let admin: pg.Pool | undefined;
after(async () => {
  await Promise.all([...opened].map((s) => s.close()));
  await admin?.end();
});

async function open(options: Partial<PostgresRecordStoreOptions> & { schema: string }): Promise<PostgresRecordStore> {
  const store = await PostgresRecordStore.open({ url: url!, node: `test:${process.pid}`, leaseTtlMs: 3000, ...options });
  opened.add(store);
  return store;
}

async function close(store: PostgresRecordStore): Promise<void> {
  await store.close();
  opened.delete(store);
}

/** A schema of its own for each case, dropped by the returned function. */
async function freshSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  admin ??= new pg.Pool({ connectionString: url, max: 2 });
  const schema = `bits_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  return { schema, drop: async () => void (await admin!.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`)) };
}

async function until(condition: () => boolean | Promise<boolean>, ms: number, message: string): Promise<number> {
  const start = Date.now();
  for (let i = 0; i < 10_000 && Date.now() - start < ms; i++) {
    if (await condition()) return Date.now() - start;
    await sleep(20);
  }
  assert.fail(`${message} within ${ms} ms`);
}

if (url) {
  recordStoreCompliance(async () => {
    const { schema, drop } = await freshSchema();
    const mine: PostgresRecordStore[] = [];
    const make = async (): Promise<PostgresRecordStore> => {
      const s = await open({ schema });
      mine.push(s);
      return s;
    };
    const store = await make();
    return {
      store,
      reopen: make,
      cleanup: async () => {
        for (const s of mine) await close(s);
        await drop();
      },
    };
  }, 'PostgresRecordStore');
} else {
  it('RecordStore compliance: PostgresRecordStore', (t) => skipLoudly(t, NO_PG));
}

describe('PostgresRecordStore: two nodes on one database', () => {
  /** Two stores as two nodes over a fresh schema; closed and dropped after the case. */
  async function twoNodes(t: TestContext, leaseTtlMs = 3000): Promise<[PostgresRecordStore, PostgresRecordStore] | undefined> {
    if (!url) {
      skipLoudly(t, NO_PG);
      return undefined;
    }
    const { schema, drop } = await freshSchema();
    // both start at once: the migration must be safe under concurrency
    const nodes = await Promise.all([open({ schema, node: 'node-a', leaseTtlMs }), open({ schema, node: 'node-b', leaseTtlMs })]);
    t.after(async () => {
      for (const s of nodes) await close(s);
      await drop();
    });
    return nodes;
  }

  it('schema migration is idempotent and safe when three nodes start at once', async (t) => {
    if (!url) return skipLoudly(t, NO_PG);
    const { schema, drop } = await freshSchema();
    t.after(drop);
    const three = await Promise.all([1, 2, 3].map((i) => open({ schema, node: `n${i}` })));
    for (const s of three) await close(s);
    const again = await open({ schema });
    const { rows } = await admin!.query(`SELECT version FROM ${pg.escapeIdentifier(schema)}.bits_migrations ORDER BY version`);
    assert.deepEqual(
      rows.map((r: { version: number }) => r.version),
      [1],
    );
    await close(again);
  });

  it("a lock on B aborts A's signal within a second, and A's late update changes nothing", async (t) => {
    const nodes = await twoNodes(t);
    if (!nodes) return;
    const [a, b] = nodes;
    const record = sampleRecord();
    await a.create(record);
    const la = await a.lock(record.id);
    const stale = (await a.get(record.id))!;
    assert.equal(stale.node, 'node-a', 'the record names the node that wrote it');
    const started = Date.now();
    const lb = await b.lock(record.id.toLowerCase()); // B does not wait for A's holder
    const waited = await until(() => la.signal.aborted, 1000, "A's signal did not abort");
    t.diagnostic(`A aborted ${Date.now() - started} ms after B's lock (${waited} ms after it returned)`);
    assert.ok(la.signal.reason instanceof LeaseLostError);
    stale.received = 1000;
    await assert.rejects(a.update(stale, la), LeaseLostError);
    await assert.rejects(a.delete(record.id, la), LeaseLostError);
    const fresh = (await b.get(record.id))!;
    assert.equal(fresh.received, 0);
    fresh.received = 10;
    await b.update(fresh, lb);
    assert.equal((await a.get(record.id))?.node, 'node-b');
    assert.equal((await a.get(record.id))?.received, 10);
    await la.release(); // a stale release leaves B's lease alone
    assert.equal(await a.tryLock(record.id), undefined, "B's lease survived A's release");
    await lb.release();
    assert.ok(await a.tryLock(record.id));
  });

  it('concurrent creates over both nodes respect the limit', async (t) => {
    const nodes = await twoNodes(t);
    if (!nodes) return;
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        nodes[i % 2]!.create(sampleRecord({ principal: 'alice' }), { limit: 5 }).then(
          () => 'ok',
          (e: unknown) => (e instanceof SessionLimitError ? 'limit' : Promise.reject(e)),
        ),
      ),
    );
    assert.equal(results.filter((r) => r === 'ok').length, 5);
    assert.equal(await nodes[1].countLive({ vdir: '/up', principal: 'alice' }, Date.now()), 5);
  });

  it('a duplicate id is refused, whatever its spelling', async (t) => {
    const nodes = await twoNodes(t);
    if (!nodes) return;
    const record = sampleRecord();
    await nodes[0].create(record);
    await assert.rejects(nodes[1].create({ ...record, id: record.id.toLowerCase().slice(1, -1) }), SessionExistsError);
    await assert.rejects(nodes[1].create(record, { limit: 3 }), SessionExistsError);
  });

  it('exclusive work runs on one node at a time', async (t) => {
    const nodes = await twoNodes(t);
    if (!nodes) return;
    const [a, b] = nodes;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let running = false;
    const first = a.exclusive('sweep', async () => {
      running = true;
      await gate;
      return 'a';
    });
    await until(() => running, 2000, 'A did not start its work');
    assert.equal(await b.exclusive('sweep', async () => 'b'), undefined);
    open();
    assert.equal(await first, 'a');
    assert.equal(await b.exclusive('sweep', async () => 'b'), 'b');
  });

  it('destination claims are exclusive across nodes and free again on release', async (t) => {
    const nodes = await twoNodes(t);
    if (!nodes) return;
    const [a, b] = nodes;
    const name = 's3://bits-uploads/uploads/dump.bin';
    const claim = await a.claims.claim(name);
    assert.ok(claim);
    assert.equal(await b.claims.claim(name), undefined);
    assert.equal(await a.claims.claim(name), undefined, 'not twice on one node either');
    const other = await b.claims.claim(`${name}.2`);
    assert.ok(other);
    await other.release();
    await claim.release();
    await claim.release(); // twice is harmless
    const again = await b.claims.claim(name);
    assert.ok(again);
    await again.release();
  });

  it('a node whose connections are cut reconnects its listener and still learns it was superseded', async (t) => {
    // a long lease: the heartbeat (every 10 s) must not be what tells A
    const nodes = await twoNodes(t, 30_000);
    if (!nodes) return;
    const [a, b] = nodes;
    const id = newSessionId();
    const la = await a.lock(id);
    const { rows } = await admin!.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'bits-upload node-a' AND pid <> pg_backend_pid()`,
    );
    assert.ok(rows[0]!.n >= 1, 'no backend of node A to cut');
    await b.lock(id); // while A's listener is down (it waits 100 ms before it reconnects)
    const ms = await until(() => la.signal.aborted, 5000, 'A was not told after its listener reconnected');
    t.diagnostic(`A aborted ${ms} ms after B's lock, its connections cut just before`);
    // and A's pool works again
    assert.equal(await a.get(id), undefined);
  });
});

describe('PostgresRecordStore: a node that dies', () => {
  /** A child process that opens the store, locks `id`, claims `claim`, and obeys `update` on stdin. */
  function startChild(schema: string, id: string, claim: string): { child: ChildProcess; lines: string[] } {
    const entry = new URL('../src/store/postgres/index.js', import.meta.url).href;
    const script = `
      import { PostgresRecordStore } from ${JSON.stringify(entry)};
      const store = await PostgresRecordStore.open({ url: process.env.PG_URL, node: 'child', schema: process.env.PG_SCHEMA, leaseTtlMs: 1000 });
      const lock = await store.lock(process.env.SESSION);
      const claim = await store.claims.claim(process.env.CLAIM);
      lock.signal.addEventListener('abort', () => process.stdout.write('aborted\\n'));
      process.stdout.write('locked ' + lock.token + ' ' + (claim ? 'claimed' : 'unclaimed') + '\\n');
      process.stdin.setEncoding('utf8');
      process.stdin.on('data', async () => {
        const record = await store.get(process.env.SESSION);
        record.received = 999;
        try { await store.update(record, lock); process.stdout.write('update ok\\n'); }
        catch (err) { process.stdout.write('update ' + err.name + '\\n'); }
      });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, PG_URL: url, PG_SCHEMA: schema, SESSION: id, CLAIM: claim },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
    });
    return { child, lines };
  }

  it("a SIGKILLed node's lease expires (tryLock takes it) and its claims end with it", async (t) => {
    if (!url) return skipLoudly(t, NO_PG);
    const { schema, drop } = await freshSchema();
    const store = await open({ schema });
    t.after(async () => {
      await close(store);
      await drop();
    });
    const record = sampleRecord();
    await store.create(record);
    const { child, lines } = startChild(schema, record.id, 'dest-1');
    t.after(() => void child.kill('SIGKILL'));
    await until(() => lines.some((l) => l.startsWith('locked')), 10_000, 'the child did not lock');
    assert.match(lines[0]!, /^locked \d+ claimed$/);
    assert.equal(await store.tryLock(record.id), undefined, 'held by the live child');
    assert.equal(await store.claims.claim('dest-1'), undefined, 'claimed by the live child');
    await sleep(1500); // longer than the child's lease: its heartbeat keeps it
    assert.equal(await store.tryLock(record.id), undefined, 'the heartbeat renews the lease');
    child.kill('SIGKILL');
    const killedAt = Date.now();
    let claim: { release(): Promise<void> } | undefined;
    const claimMs = await until(async () => (claim = await store.claims.claim('dest-1')) !== undefined, 5000, 'the claim did not end');
    await claim!.release();
    let lock: Awaited<ReturnType<PostgresRecordStore['tryLock']>>;
    await until(async () => (lock = await store.tryLock(record.id)) !== undefined, 5000, 'the lease did not expire');
    t.diagnostic(`claim free ${claimMs} ms, lease taken ${Date.now() - killedAt} ms after the SIGKILL (lease TTL 1000 ms)`);
    assert.ok(lock!.token > Number(lines[0]!.split(' ')[1]));
    const r = (await store.get(record.id))!;
    r.received = 1;
    await store.update(r, lock!);
    await lock!.release();
  });

  it('a SIGSTOPped node is superseded at once and, resumed, writes nothing', async (t) => {
    if (!url) return skipLoudly(t, NO_PG);
    const { schema, drop } = await freshSchema();
    const store = await open({ schema });
    t.after(async () => {
      await close(store);
      await drop();
    });
    const record = sampleRecord();
    await store.create(record);
    const { child, lines } = startChild(schema, record.id, 'dest-2');
    t.after(() => void child.kill('SIGKILL'));
    await until(() => lines.some((l) => l.startsWith('locked')), 10_000, 'the child did not lock');
    child.kill('SIGSTOP');
    const lock = await store.lock(record.id);
    const r = (await store.get(record.id))!;
    r.received = 5;
    await store.update(r, lock);
    child.kill('SIGCONT');
    child.stdin!.write('update\n');
    await until(() => lines.some((l) => l.startsWith('update')), 10_000, 'the child did not try its update');
    assert.ok(lines.includes('update LeaseLostError'), lines.join(' | '));
    await until(() => lines.includes('aborted'), 5000, 'the resumed child was not told');
    assert.equal((await store.get(record.id))?.received, 5, 'the stale node changed nothing');
    await lock.release();
  });
});

describe('PostgresRecordStore: outages', () => {
  it('an unreachable database is StoreUnavailableError, quickly', async () => {
    const dead = `postgres://bits:bits@127.0.0.1:${await deadPort()}/bits`;
    const started = Date.now();
    await assert.rejects(PostgresRecordStore.open({ url: dead, node: 'x' }), StoreUnavailableError);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    assert.equal(isTransientPgError(Object.assign(new Error('x'), { code: '57P01' })), true);
    assert.equal(isTransientPgError(Object.assign(new Error('x'), { code: '08006' })), true);
    assert.equal(isTransientPgError(Object.assign(new Error('x'), { code: '23505' })), false);
    assert.equal(isTransientPgError(new Error('Connection terminated unexpectedly')), true);
  });

  it('a restarted PostgreSQL: calls fail fast as unavailable meanwhile, then everything works again by itself', async (t) => {
    const script = [
      process.env.BITS_TEST_SERVICES_SCRIPTS && join(process.env.BITS_TEST_SERVICES_SCRIPTS, 'postgres.sh'),
      new URL('../../scripts/services/postgres.sh', import.meta.url).pathname,
    ].find((p): p is string => typeof p === 'string' && existsSync(p));
    if (!script) return skipLoudly(t, 'no scripts/services/postgres.sh to run a PostgreSQL of our own to restart');
    const dir = await mkdtemp(join(tmpdir(), 'bits-pg-restart-'));
    const port = await deadPort();
    const run = promisify(execFile);
    const pgctl = (cmd: string) => run('bash', [script, cmd, dir, String(port)], { timeout: 90_000 });
    t.after(async () => {
      await pgctl('stop').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    });
    try {
      await pgctl('start');
    } catch (err) {
      return skipLoudly(t, `could not start a PostgreSQL of our own: ${(err as Error).message}`);
    }
    const own = `postgres://bits:bits@127.0.0.1:${port}/bits`;
    const mk = async (node: string) => {
      const s = await PostgresRecordStore.open({ url: own, node, leaseTtlMs: 2000 });
      opened.add(s);
      return s;
    };
    const a = await mk('outage-a');
    const b = await mk('outage-b');
    const record = sampleRecord();
    await a.create(record);
    const la = await a.lock(record.id);

    await pgctl('stop');
    for (const call of [() => a.get(record.id), () => a.lock(newSessionId()), () => b.create(sampleRecord()), () => a.update(record, la)]) {
      const started = Date.now();
      await assert.rejects(call(), StoreUnavailableError);
      assert.ok(Date.now() - started < 3000, `an outage call took ${Date.now() - started} ms`);
    }
    assert.equal(await b.exclusive('sweep', async () => 'ran').catch((e: unknown) => e instanceof StoreUnavailableError), true);

    await pgctl('start');
    const back = await until(
      async () => (await a.get(record.id).catch(() => undefined)) !== undefined,
      20_000,
      'the store did not recover',
    );
    t.diagnostic(`first successful call ${back} ms after PostgreSQL was back`);
    const r = (await a.get(record.id))!;
    r.received = 3;
    await a.update(r, la); // the lease survived the restart
    const lb = await b.lock(record.id);
    const ms = await until(() => la.signal.aborted, 10_000, 'the listener did not come back');
    t.diagnostic(`A aborted ${ms} ms after B's lock, after the restart`);
    await assert.rejects(a.update(r, la), LeaseLostError);
    assert.equal(await b.exclusive('sweep', async () => 'ran'), 'ran');
    await lb.release();
    await la.release();
    for (const s of [a, b]) {
      await s.close();
      opened.delete(s);
    }
  });
});

describe('PostgresRecordStore: latency', () => {
  it('create, lock + get + update + release, as one Fragment does (figures in the diagnostics)', async (t) => {
    if (!url) return skipLoudly(t, NO_PG);
    const { schema, drop } = await freshSchema();
    const store = await open({ schema });
    t.after(async () => {
      await close(store);
      await drop();
    });
    const n = 200;
    const records = Array.from({ length: n }, () => sampleRecord({ principal: 'alice', bytes: { tail: { key: 'k', size: 1 } } }));
    let started = performance.now();
    for (const r of records) await store.create(r, { limit: 10_000 });
    const create = (performance.now() - started) / n;
    let lockMs = 0;
    let updateMs = 0;
    started = performance.now();
    for (const r of records) {
      const t0 = performance.now();
      const lock = await store.lock(r.id);
      lockMs += performance.now() - t0;
      const got = (await store.get(r.id))!;
      got.received += 1;
      const t1 = performance.now();
      await store.update(got, lock);
      updateMs += performance.now() - t1;
      await lock.release();
    }
    const cycle = (performance.now() - started) / n;
    const line = `create (with limit) ${create.toFixed(2)} ms; lock ${(lockMs / n).toFixed(2)} ms; update ${(updateMs / n).toFixed(2)} ms; lock+get+update+release ${cycle.toFixed(2)} ms = ${Math.round(1000 / cycle)} fragments/s sequential`;
    t.diagnostic(line);
    process.stderr.write(`store-postgres latency: ${line}\n`);
    assert.equal((await store.get(records[0]!.id))?.received, 1);
  });
});
