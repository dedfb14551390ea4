// The store compliance suite: every RecordStore/ByteStore implementation runs these same tests.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { newSessionId } from '../../src/protocol/session-id.js';
import { PartialWriteError, SessionLimitError } from '../../src/store/types.js';
import type { ByteStore, RecordStore, SessionRecord } from '../../src/store/types.js';

/** A store pair under test, a way to open the same storage again, and a cleanup. */
export interface StoreFixture {
  records: RecordStore;
  bytes: ByteStore;
  /** New store instances over the same storage (what a restarted server gets). */
  reopen(): Promise<{ records: RecordStore; bytes: ByteStore }>;
  cleanup(): Promise<void>;
}

function record(id: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    id,
    vdir: '/up',
    urlPath: '/up/a.bin',
    destination: '/nowhere/a.bin',
    protocol: '{7df0354d-249b-430f-820d-3d2a9bef4931}',
    total: null,
    received: 0,
    createdAt: now,
    updatedAt: now,
    timeoutMs: 60_000,
    state: 'receiving',
    principal: null,
    ...overrides,
  };
}

/** Registers the compliance suite for one implementation. */
export function storeCompliance(name: string, make: () => Promise<StoreFixture>): void {
  describe(`store compliance: ${name}`, () => {
    let f: StoreFixture;
    let dest: string;
    beforeEach(async () => {
      f = await make();
      dest = await mkdtemp(join(tmpdir(), 'bits-dest-'));
    });
    afterEach(async () => {
      await f.cleanup();
      await rm(dest, { recursive: true, force: true });
    });

    it('records: create, get (any case, braces optional), update, delete', async () => {
      const id = newSessionId();
      await f.records.create(record(id));
      assert.equal((await f.records.get(id))?.id, id);
      assert.equal((await f.records.get(id.toLowerCase()))?.id, id);
      assert.equal((await f.records.get(id.slice(1, -1)))?.id, id);
      const r = (await f.records.get(id))!;
      r.received = 42;
      r.total = 100;
      await f.records.update(r);
      assert.equal((await f.records.get(id))?.received, 42);
      await f.records.delete(id);
      assert.equal(await f.records.get(id), undefined);
      await f.records.delete(id); // idempotent
    });

    it('records: unknown and malformed ids are simply not found', async () => {
      assert.equal(await f.records.get(newSessionId()), undefined);
      assert.equal(await f.records.get('../../etc/passwd'), undefined);
      assert.equal(await f.records.get('12345'), undefined);
    });

    it('records: listExpired returns only idle-past-timeout sessions, up to the limit', async () => {
      const now = Date.now();
      const fresh = newSessionId();
      const old = [newSessionId(), newSessionId(), newSessionId()];
      await f.records.create(record(fresh, { updatedAt: now }));
      for (const id of old) await f.records.create(record(id, { updatedAt: now - 120_000 }));
      assert.deepEqual((await f.records.listExpired(now, 100)).map((r) => r.id).sort(), [...old].sort());
      assert.equal((await f.records.listExpired(now, 2)).length, 2);
    });

    it('records: countLive counts one owner\'s unexpired sessions on one vdir', async () => {
      const now = Date.now();
      await f.records.create(record(newSessionId(), { principal: 'alice' }));
      await f.records.create(record(newSessionId(), { principal: 'alice' }));
      await f.records.create(record(newSessionId(), { principal: 'alice', updatedAt: now - 120_000 }));
      await f.records.create(record(newSessionId(), { principal: 'alice', vdir: '/other' }));
      await f.records.create(record(newSessionId(), { principal: 'bob' }));
      const gone = newSessionId();
      await f.records.create(record(gone, { principal: 'alice' }));
      await f.records.delete(gone);
      assert.equal(await f.records.countLive({ vdir: '/up', principal: 'alice' }, now), 2);
      assert.equal(await f.records.countLive({ vdir: '/up', principal: 'bob' }, now), 1);
      assert.equal(await f.records.countLive({ vdir: '/up', principal: 'carol' }, now), 0);
    });

    it('records: simultaneous creates never overshoot a limit', async () => {
      const attempts = Array.from({ length: 20 }, () =>
        f.records.create(record(newSessionId(), { principal: 'alice' }), { limit: 5 }).then(
          () => 'ok',
          (e: unknown) => (e instanceof SessionLimitError ? 'limit' : Promise.reject(e)),
        ),
      );
      const results = await Promise.all(attempts);
      assert.equal(results.filter((r) => r === 'ok').length, 5);
      assert.equal(await f.records.countLive({ vdir: '/up', principal: 'alice' }, Date.now()), 5);
    });

    it('records and bytes: a fresh store instance sees every acknowledged record and byte', async () => {
      const id = newSessionId();
      await f.records.create(record(id, { principal: 'alice' }));
      await f.bytes.open(id);
      await f.bytes.write(id, 0, Readable.from([Buffer.from('durable')]));
      const r = (await f.records.get(id))!;
      r.received = 7;
      await f.records.update(r);
      const again = await f.reopen();
      assert.equal((await again.records.get(id))?.received, 7);
      assert.equal(await again.records.countLive({ vdir: '/up', principal: 'alice' }, Date.now()), 1);
      const target = join(dest, 'reopened.bin');
      await again.bytes.commit(id, { root: dest, path: ['reopened.bin'] }, { overwrite: false });
      assert.equal(await readFile(target, 'utf8'), 'durable');
    });

    it('records: the lock serializes and a newer taker supersedes the holder', async () => {
      const id = newSessionId();
      const first = await f.records.lock(id);
      assert.equal(first.signal.aborted, false);
      let secondHeld = false;
      const second = f.records.lock(id).then((l) => {
        secondHeld = true;
        return l;
      });
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(first.signal.aborted, true, 'holder told to stop');
      assert.equal(secondHeld, false, 'second waits for the release');
      first.release();
      const l2 = await second;
      assert.equal(secondHeld, true);
      assert.equal(l2.signal.aborted, false);
      l2.release();
      const other = await f.records.lock(newSessionId()); // other sessions are independent
      other.release();
    });

    it('bytes: write at offsets, report counts, commit atomically to a new folder', async () => {
      const id = newSessionId();
      await f.bytes.open(id);
      assert.equal(await f.bytes.exists(id), true);
      assert.equal(await f.bytes.write(id, 0, Readable.from([Buffer.from('hello ')])), 6);
      assert.equal(await f.bytes.write(id, 6, Readable.from([Buffer.from('wor'), Buffer.from('ld')])), 5);
      const target = join(dest, 'sub', 'dir', 'out.txt');
      await f.bytes.commit(id, { root: dest, path: ['sub', 'dir', 'out.txt'] }, { overwrite: false });
      assert.equal(await readFile(target, 'utf8'), 'hello world');
      assert.equal(await f.bytes.exists(id), false);
    });

    it('bytes: commit without overwrite never replaces an existing file; with overwrite it does', async () => {
      const id = newSessionId();
      await f.bytes.open(id);
      await f.bytes.write(id, 0, Readable.from([Buffer.from('new')]));
      const target = join(dest, 'x.txt');
      await writeFile(target, 'old');
      await assert.rejects(f.bytes.commit(id, { root: dest, path: ['x.txt'] }, { overwrite: false }), { code: 'EEXIST' });
      assert.equal(await readFile(target, 'utf8'), 'old');
      assert.equal(await f.bytes.exists(id), true, 'upload kept after a refused commit');
      await f.bytes.commit(id, { root: dest, path: ['x.txt'] }, { overwrite: true });
      assert.equal(await readFile(target, 'utf8'), 'new');
    });

    it('bytes: a source that fails part way reports the bytes made durable', async () => {
      const id = newSessionId();
      await f.bytes.open(id);
      const source = new PassThrough();
      const writing = f.bytes.write(id, 0, source);
      source.write(Buffer.alloc(1000, 1));
      await new Promise((r) => setTimeout(r, 20));
      source.destroy(new Error('client went away'));
      const err = await writing.then(
        () => assert.fail('write should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PartialWriteError);
      assert.equal(err.written, 1000);
      // the reported bytes are really there
      await f.bytes.write(id, 1000, Readable.from([Buffer.from('!')]));
      const target = join(dest, 'partial.bin');
      await f.bytes.commit(id, { root: dest, path: ['partial.bin'] }, { overwrite: false });
      const out = await readFile(target);
      assert.equal(out.length, 1001);
      assert.equal(out[999], 1);
    });

    it('bytes: an aborted signal stops the write', async () => {
      const id = newSessionId();
      await f.bytes.open(id);
      const source = new PassThrough();
      const ac = new AbortController();
      const writing = f.bytes.write(id, 0, source, ac.signal);
      source.write(Buffer.alloc(10));
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(writing, PartialWriteError);
    });

    it('bytes: discard removes the data and is idempotent', async () => {
      const id = newSessionId();
      await f.bytes.open(id);
      await f.bytes.discard(id);
      assert.equal(await f.bytes.exists(id), false);
      await f.bytes.discard(id);
    });
  });
}
