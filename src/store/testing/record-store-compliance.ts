import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId } from '../../protocol/session-id.js';
import { SessionLimitError } from '../types.js';
import type { RecordStore } from '../types.js';
import { perCase, sampleRecord } from './harness.js';
import type { MakeStore } from './harness.js';

/**
 * Registers the {@link RecordStore} contract as `node:test` cases: create / get / update /
 * delete, expiry, per-owner counts and limits, the superseding lock, and that a fresh instance
 * over the same storage sees every acknowledged record.
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
      await store.update(r);
      assert.equal((await store.get(id))?.received, 42);
      await store.delete(id);
      assert.equal(await store.get(id), undefined);
      await store.delete(id); // idempotent
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
      await store.update(got);
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

    it('durability: a fresh instance over the same storage sees every acknowledged record', async () => {
      const { h, store } = ctx();
      const now = Date.now();
      const kept = sampleRecord({ principal: 'alice' });
      const expired = sampleRecord({ principal: 'alice', updatedAt: now - 120_000 });
      const deleted = sampleRecord({ principal: 'alice' });
      for (const r of [kept, expired, deleted]) await store.create(r);
      const r = (await store.get(kept.id))!;
      r.received = 7;
      r.total = 10;
      await store.update(r);
      await store.delete(deleted.id);
      const again = await h.reopen();
      const seen = await again.get(kept.id);
      assert.equal(seen?.received, 7);
      assert.equal(seen?.total, 10);
      assert.equal(seen?.principal, 'alice');
      assert.equal(await again.get(deleted.id), undefined, 'a deleted record stays deleted');
      assert.equal(await again.countLive({ vdir: '/up', principal: 'alice' }, now), 1);
      assert.deepEqual((await again.listExpired(now, 100)).map((x) => x.id), [expired.id]);
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
      await sleep(20);
      assert.equal(first.signal.aborted, true, 'holder told to stop');
      assert.equal(secondHeld, false, 'second waits for the release');
      first.release();
      const l2 = await second;
      assert.equal(secondHeld, true);
      assert.equal(l2.signal.aborted, false);
      l2.release();
      const other = await store.lock(newSessionId()); // other sessions are independent
      other.release();
    });
  });
}
