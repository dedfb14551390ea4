import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId, sessionKey } from '../../protocol/session-id.js';
import { LeaseLostError, SessionLimitError } from '../types.js';
import type { ByteState, ListOptions, RecordStore, SessionLock, SessionRecord } from '../types.js';
import { perCase, sampleRecord } from './harness.js';
import type { MakeStore } from './harness.js';

/**
 * Registers the {@link RecordStore} contract as `node:test` cases: create / get / fenced update /
 * delete, the byte store's memo and the writing node kept with the record, expiry, per-owner
 * counts and limits, listing in key order (pages, filters), the superseding lock and its fencing, `tryLock`, `exclusive`, and that a
 * fresh instance over the same storage sees every acknowledged record.
 *
 * @example
 * ```ts
 * recordStoreCompliance(async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'records-'));
 *   return { store: new FsRecordStore(dir), reopen: async () => new FsRecordStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * }, 'FsRecordStore');
 * ```
 */
export function recordStoreCompliance(make: MakeStore<RecordStore>, name = 'record store'): void {
  describe(`RecordStore compliance: ${name}`, () => {
    const ctx = perCase(make);

    it('create, get (any case, braces optional), update, delete', async () => {
      const { store } = ctx();
      const created = sampleRecord();
      const id = created.id;
      await store.create(created);
      assert.equal((await store.get(id))?.id, id);
      assert.equal((await store.get(id.toLowerCase()))?.id, id);
      assert.equal((await store.get(id.slice(1, -1)))?.id, id);
      const r = (await store.get(id))!;
      r.received = 42;
      r.total = 100;
      await withLock(store, id, (lock) => store.update(r, lock));
      assert.equal((await store.get(id))?.received, 42);
      await withLock(store, id.toLowerCase(), (lock) => store.delete(id, lock));
      assert.equal(await store.get(id), undefined);
      await store.delete(id); // idempotent
      await withLock(store, id, (lock) => store.delete(id, lock)); // idempotent under a lock too
    });

    it("the byte store's memo (nested JSON) and the writing node round-trip", async () => {
      const { store } = ctx();
      const bytes: ByteState = {
        uploadId: 'mpu-1',
        parts: [
          { n: 1, etag: '"abc"', size: 5 * 1024 * 1024 },
          { n: 2, etag: '"d\\"ef"', size: 1 },
        ],
        tail: { key: 'sessions/x/tail-2', size: 17, sealed: false, note: null },
        obsolete: ['sessions/x/tail-1'],
        unicode: 'Grüße ✓',
      };
      const created = sampleRecord({ bytes, node: 'node-a' });
      await store.create(created);
      const got = (await store.get(created.id))!;
      assert.deepEqual(got.bytes, bytes);
      // the store may set `node` to its own id ("set by the record store"); it is a string then
      assert.equal(typeof got.node, 'string');
      const next: ByteState = { ...bytes, tail: { key: 'sessions/x/tail-3', size: 4 }, obsolete: ['sessions/x/tail-2'] };
      got.bytes = next;
      got.received = 5 * 1024 * 1024 + 5;
      await withLock(store, created.id, (lock) => store.update(got, lock));
      const again = (await store.get(created.id))!;
      assert.deepEqual(again.bytes, next);
      assert.equal(again.received, 5 * 1024 * 1024 + 5);
      assert.equal(typeof again.node, 'string');
      const plain = sampleRecord();
      await store.create(plain);
      assert.equal((await store.get(plain.id))?.bytes, undefined, 'no memo given, none got');
    });

    it('a record given or got is the caller\'s own: changing it changes nothing stored until update', async () => {
      const { store } = ctx();
      const created = sampleRecord();
      await store.create(created);
      created.received = 5;
      assert.equal((await store.get(created.id))?.received, 0, 'changed after create');
      const got = (await store.get(created.id))!;
      got.received = 9;
      got.state = 'committing';
      const again = await store.get(created.id);
      assert.equal(again?.received, 0, 'changed after get');
      assert.equal(again?.state, 'receiving');
      await withLock(store, created.id, (lock) => store.update(got, lock));
      got.received = 11;
      assert.equal((await store.get(created.id))?.received, 9, 'changed after update');
    });

    it('unknown and malformed ids are simply not found', async () => {
      const { store } = ctx();
      assert.equal(await store.get(newSessionId()), undefined);
      assert.equal(await store.get('../../etc/passwd'), undefined);
      assert.equal(await store.get('12345'), undefined);
    });

    it('listExpired returns only idle-past-timeout sessions, up to the limit', async () => {
      const { store } = ctx();
      const now = Date.now();
      const fresh = sampleRecord({ updatedAt: now });
      const old = [1, 2, 3].map(() => sampleRecord({ updatedAt: now - 120_000 }));
      await store.create(fresh);
      for (const r of old) await store.create(r);
      assert.deepEqual((await store.listExpired(now, 100)).map((r) => r.id).sort(), old.map((r) => r.id).sort());
      assert.equal((await store.listExpired(now, 2)).length, 2);
    });

    it("countLive counts one owner's unexpired sessions on one vdir", async () => {
      const { store } = ctx();
      const now = Date.now();
      await store.create(sampleRecord({ principal: 'alice' }));
      await store.create(sampleRecord({ principal: 'alice' }));
      await store.create(sampleRecord({ principal: 'alice', updatedAt: now - 120_000 }));
      await store.create(sampleRecord({ principal: 'alice', vdir: '/other' }));
      await store.create(sampleRecord({ principal: 'bob' }));
      const gone = sampleRecord({ principal: 'alice' });
      await store.create(gone);
      await store.delete(gone.id);
      assert.equal(await store.countLive({ vdir: '/up', principal: 'alice' }, now), 2);
      assert.equal(await store.countLive({ vdir: '/up', principal: 'bob' }, now), 1);
      assert.equal(await store.countLive({ vdir: '/up', principal: 'carol' }, now), 0);
    });

    it('simultaneous creates never overshoot a limit', async () => {
      const { store } = ctx();
      const attempts = Array.from({ length: 20 }, () =>
        store.create(sampleRecord({ principal: 'alice' }), { limit: 5 }).then(
          () => 'ok',
          (e: unknown) => (e instanceof SessionLimitError ? 'limit' : Promise.reject(e)),
        ),
      );
      const results = await Promise.all(attempts);
      assert.equal(results.filter((r) => r === 'ok').length, 5);
      assert.equal(await store.countLive({ vdir: '/up', principal: 'alice' }, Date.now()), 5);
    });

    it('list pages through every record in key order, none twice', async () => {
      const { store } = ctx();
      const created = Array.from({ length: 7 }, () => sampleRecord());
      for (const r of created) await store.create(r);
      const pages = await allPages(store, { limit: 3 });
      assert.deepEqual(
        pages.map((p) => p.length),
        [3, 3, 1],
      );
      const keys = pages.flat().map((r) => sessionKey(r.id));
      assert.deepEqual(keys, created.map((r) => sessionKey(r.id)).sort());
      const [first] = created;
      const after = sessionKey(first!.id);
      assert.deepEqual(
        (await store.list({ after: `{${after.toLowerCase()}}`, limit: 100 })).map((r) => sessionKey(r.id)),
        keys.filter((k) => k > after),
        'after takes an id in any spelling',
      );
      assert.deepEqual(await store.list({ limit: 0 }), []);
    });

    it('list filters by vdir, principal and state', async () => {
      const { store } = ctx();
      const a1 = sampleRecord({ principal: 'alice' });
      const a2 = sampleRecord({ principal: 'alice', state: 'committing' });
      const b = sampleRecord({ principal: 'bob' });
      const other = sampleRecord({ principal: 'alice', vdir: '/other', urlPath: '/other/a.bin' });
      const anonymous = sampleRecord();
      for (const r of [a1, a2, b, other, anonymous]) await store.create(r);
      const ids = async (options: Omit<ListOptions, 'limit'>): Promise<string[]> => (await store.list({ ...options, limit: 100 })).map((r) => r.id).sort();
      const sorted = (...rs: SessionRecord[]): string[] => rs.map((r) => r.id).sort();
      assert.deepEqual(await ids({ vdir: '/up' }), sorted(a1, a2, b, anonymous));
      assert.deepEqual(await ids({ vdir: '/other' }), sorted(other));
      assert.deepEqual(await ids({ principal: 'alice' }), sorted(a1, a2, other));
      assert.deepEqual(await ids({ vdir: '/up', principal: 'alice' }), sorted(a1, a2));
      assert.deepEqual(await ids({ state: 'committing' }), sorted(a2));
      assert.deepEqual(await ids({ vdir: '/up', principal: 'alice', state: 'receiving' }), sorted(a1));
      assert.deepEqual(await ids({ principal: 'carol' }), []);
      const page = await allPages(store, { principal: 'alice', limit: 1 });
      assert.deepEqual(page.flat().map((r) => r.id).sort(), sorted(a1, a2, other), 'filters hold across pages');
    });

    it('durability: a fresh instance over the same storage sees every acknowledged record', async () => {
      const { h, store } = ctx();
      const now = Date.now();
      const bytes: ByteState = { uploadId: 'u-7', parts: [{ n: 1, etag: '"e1"' }], tail: { key: 't/2', size: 2 } };
      const kept = sampleRecord({ principal: 'alice' });
      const expired = sampleRecord({ principal: 'alice', updatedAt: now - 120_000 });
      const deleted = sampleRecord({ principal: 'alice' });
      for (const r of [kept, expired, deleted]) await store.create(r);
      const r = (await store.get(kept.id))!;
      r.received = 7;
      r.total = 10;
      r.bytes = bytes;
      r.client = { address: '192.0.2.7', userAgent: 'Microsoft BITS/7.8' };
      await withLock(store, r.id, (lock) => store.update(r, lock));
      await withLock(store, deleted.id, (lock) => store.delete(deleted.id, lock));
      const again = await h.reopen();
      assert.deepEqual(
        (await again.list({ principal: 'alice', limit: 100 })).map((x) => x.id).sort(),
        [kept.id, expired.id].sort(),
        'a reopened store lists what was acknowledged (expired records included, deleted ones not)',
      );
      const seen = await again.get(kept.id);
      assert.equal(seen?.received, 7);
      assert.equal(seen?.total, 10);
      assert.equal(seen?.principal, 'alice');
      assert.deepEqual(seen?.bytes, bytes);
      assert.deepEqual(seen?.client, { address: '192.0.2.7', userAgent: 'Microsoft BITS/7.8' });
      assert.equal(await again.get(deleted.id), undefined, 'a deleted record stays deleted');
      assert.equal(await again.countLive({ vdir: '/up', principal: 'alice' }, now), 1);
      assert.deepEqual((await again.listExpired(now, 100)).map((x) => x.id), [expired.id]);
      // and the reopened store takes leases and writes under them
      seen!.received = 8;
      await withLock(again, kept.id, (lock) => again.update(seen!, lock));
      assert.equal((await again.get(kept.id))?.received, 8);
      await again.close?.();
    });

    it('the lock serializes and a newer taker supersedes the holder', async () => {
      const { store } = ctx();
      const id = newSessionId();
      const first = await store.lock(id);
      assert.equal(first.signal.aborted, false);
      let secondHeld = false;
      const second = store.lock(id).then((l) => {
        secondHeld = true;
        return l;
      });
      await aborted(first.signal);
      await sleep(20);
      assert.equal(secondHeld, false, 'second waits for the release');
      await first.release();
      const l2 = await second;
      assert.equal(secondHeld, true);
      assert.equal(l2.signal.aborted, false);
      assert.ok(l2.token > first.token, `token ${l2.token} after ${first.token}`);
      await l2.release();
      const other = await store.lock(newSessionId()); // other sessions are independent
      assert.equal(other.signal.aborted, false);
      await other.release();
    });

    it('fencing: a superseded lease writes nothing, update and delete under it throw LeaseLostError', async () => {
      const { store } = ctx();
      const created = sampleRecord({ bytes: { tail: 'a' } });
      await store.create(created);
      const first = await store.lock(created.id);
      const stale = (await store.get(created.id))!;
      const second = store.lock(created.id);
      await aborted(first.signal);
      // (a single-process store may let the superseded holder finish first: the newer one takes over
      // at the latest when it is released, which must not fail although superseded)
      await first.release();
      const l2 = await second;
      stale.received = 99;
      stale.bytes = { tail: 'stale' };
      await assert.rejects(store.update(stale, first), LeaseLostError);
      await assert.rejects(store.delete(created.id, first), LeaseLostError);
      const kept = await store.get(created.id);
      assert.equal(kept?.received, 0, 'the stale update changed nothing');
      assert.deepEqual(kept?.bytes, { tail: 'a' });
      kept!.received = 3;
      await store.update(kept!, l2);
      await assert.rejects(store.update(kept!, first), LeaseLostError, 'still refused after the release');
      assert.equal((await store.get(created.id))?.received, 3);
      await l2.release();
      const l3 = await store.lock(created.id);
      await assert.rejects(store.update(kept!, l2), LeaseLostError, 'a released lease is no licence either');
      await store.delete(created.id, l3);
      assert.equal(await store.get(created.id), undefined);
      await l3.release();
    });

    it('lock works for an id without a record, and tryLock only takes a free lease', async () => {
      const { store } = ctx();
      const id = newSessionId();
      const held = await store.tryLock(id);
      assert.ok(held, 'a free lease is taken');
      assert.equal(await store.tryLock(id), undefined, 'not while held');
      assert.equal(await store.tryLock(id.toLowerCase().slice(1, -1)), undefined, 'not under another spelling either');
      assert.equal(held.signal.aborted, false, 'a failed tryLock supersedes nobody');
      await held.release();
      const again = await store.tryLock(id);
      assert.ok(again, 'taken again after the release');
      assert.ok(again.token > held.token);
      await again.release();
      const locked = await store.lock(id);
      assert.equal(await store.tryLock(id), undefined, 'not while held through lock()');
      await locked.release();
      const last = await store.tryLock(id);
      assert.ok(last);
      await last.release();
    });

    it('exclusive runs work once at a time per name and returns its result', async () => {
      const { store } = ctx();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let runs = 0;
      const first = store.exclusive('sweep', async () => {
        runs++;
        await gate;
        return 'first';
      });
      await until(() => runs === 1);
      assert.equal(await store.exclusive('sweep', async () => (runs++, 'second')), undefined, 'a concurrent caller does not run');
      assert.equal(await store.exclusive('other', async () => 'other'), 'other', 'other names are independent');
      release();
      assert.equal(await first, 'first');
      assert.equal(runs, 1);
      assert.equal(await store.exclusive('sweep', async () => 'third'), 'third', 'free again once done');
      await assert.rejects(
        store.exclusive('sweep', async () => {
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await store.exclusive('sweep', async () => 'after a failure'), 'after a failure');
    });
  });
}

/** Every page of `store.list(options)`, following `after` (bounded: at most 1000 pages). */
async function allPages(store: RecordStore, options: ListOptions): Promise<SessionRecord[][]> {
  const pages: SessionRecord[][] = [];
  let after: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const page = await store.list({ ...options, after });
    if (page.length === 0) return pages;
    pages.push(page);
    if (page.length < options.limit) return pages;
    after = page[page.length - 1]!.id;
  }
  assert.fail('list never ended');
}

/** Runs `work` under the session's lock, released afterwards. */
async function withLock<T>(store: RecordStore, id: string, work: (lock: SessionLock) => Promise<T>): Promise<T> {
  const lock = await store.lock(id);
  try {
    return await work(lock);
  } finally {
    await lock.release();
  }
}

/** Resolves once `signal` aborts; fails after two seconds. */
async function aborted(signal: AbortSignal): Promise<void> {
  await until(() => signal.aborted, 'the holder was not told to stop');
}

/** Polls `condition` every 5 ms for up to two seconds. */
async function until(condition: () => boolean, message = 'condition not met'): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await sleep(5);
  assert.ok(condition(), `${message} within 2 s`);
}
