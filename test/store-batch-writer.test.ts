// The fs byte store's batching against a real file: sizes, order, offsets, and what a failure keeps.
import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BatchWriter, WriteBudget, batchSize } from '../src/store/fs/batch-writer.js';
import { tempDir } from './helpers/temp-dir.js';
import type { TempDir } from './helpers/temp-dir.js';

describe('BatchWriter', () => {
  let dir: TempDir;
  let file: string;
  let fh: FileHandle | undefined;
  beforeEach(async () => {
    dir = await tempDir('bits-batch-');
    file = join(dir.path, 'data.bin');
    await writeFile(file, '');
  });
  afterEach(async () => {
    await fh?.close().catch(() => undefined);
    fh = undefined;
    await dir.cleanup();
  });

  it('the batch is an equal share of the budget, within its bounds', () => {
    assert.equal(batchSize(1), 256 * 1024);
    assert.equal(batchSize(8), 256 * 1024);
    assert.equal(batchSize(50), Math.floor((8 * 1024 * 1024) / 50));
    assert.equal(batchSize(1000), 64 * 1024);
    assert.equal(batchSize(0), 256 * 1024, 'no writer counted yet is one writer');
  });

  it('push says when the batch is full, and the size is asked again on every chunk', () => {
    let size = 10;
    const writer = new BatchWriter({} as FileHandle, 0, () => size);
    assert.equal(writer.push(Buffer.alloc(4)), false);
    assert.equal(writer.push(Buffer.alloc(4)), false);
    size = 8;
    assert.equal(writer.push(Buffer.alloc(1)), true, '9 bytes gathered, the batch shrank to 8');
  });

  it('writes every batch in order from the offset, and counts only completed writes', async () => {
    await writeFile(file, 'HEAD:');
    fh = await open(file, 'r+');
    const writer = new BatchWriter(fh, 5, () => 3);
    const parts = ['ab', 'cd', 'e', 'fgh', 'ij'];
    for (const p of parts) if (writer.push(Buffer.from(p))) await writer.flush();
    assert.ok(writer.written < 10, 'the last batch is not written before settle');
    await writer.settle();
    assert.equal(writer.written, 10);
    assert.equal(writer.storageFailed, false);
    assert.equal(await readFile(file, 'utf8'), 'HEAD:abcdefghij');
  });

  it('flush starts the write without waiting for it; the next flush waits for it first', async () => {
    fh = await open(file, 'r+');
    const writer = new BatchWriter(fh, 0, () => 1);
    writer.push(Buffer.from('one'));
    await writer.flush();
    assert.equal(writer.written, 0, 'the first batch is still in flight');
    writer.push(Buffer.from('two'));
    await writer.flush();
    assert.equal(writer.written, 3, 'the second flush waited for the first write');
    await writer.settle();
    assert.equal(await readFile(file, 'utf8'), 'onetwo');
  });

  it('a failed write in flight is not an unhandled rejection; the next flush and settle throw it', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      fh = await open(file, 'r'); // read-only: every write fails with EBADF
      const writer = new BatchWriter(fh, 0, () => 1);
      writer.push(Buffer.from('lost'));
      await writer.flush();
      for (let i = 0; i < 5; i++) await nextTurn();
      assert.deepEqual(unhandled, []);
      writer.push(Buffer.from('more'));
      await assert.rejects(writer.flush(), { code: 'EBADF' });
      assert.equal(writer.storageFailed, true);
      assert.equal(writer.written, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('salvage after a source failure writes what did arrive, in order', async () => {
    fh = await open(file, 'r+');
    const writer = new BatchWriter(fh, 0, () => 4);
    for (const p of ['abcd', 'ef']) if (writer.push(Buffer.from(p))) await writer.flush();
    await writer.salvage();
    assert.equal(writer.written, 6);
    assert.equal(writer.storageFailed, false);
    assert.equal(await readFile(file, 'utf8'), 'abcdef');
  });

  it('salvage after a storage failure writes nothing more and does not throw', async () => {
    fh = await open(file, 'r+');
    const real = fh;
    // The disk fails once (EIO), then would accept writes again: nothing more may be written anyway.
    let calls = 0;
    const flaky = {
      writev: (buffers: Buffer[], position: number) =>
        calls++ === 0 ? Promise.reject(Object.assign(new Error('i/o error'), { code: 'EIO' })) : real.writev(buffers, position),
    } as unknown as FileHandle;
    const writer = new BatchWriter(flaky, 0, () => 4);
    writer.push(Buffer.from('abcd'));
    await writer.flush();
    writer.push(Buffer.from('ef'));
    await writer.salvage();
    assert.equal(writer.storageFailed, true);
    assert.equal(writer.written, 0);
    assert.equal(await readFile(file, 'utf8'), '', 'nothing after the failed batch');
  });
});

describe('WriteBudget', () => {
  it('holds a write back while the writes in flight would pass the budget, and lets one alone through', async () => {
    const budget = new WriteBudget(100);
    await budget.acquire(60);
    let second = false;
    const pending = budget.acquire(60).then(() => (second = true));
    await nextTurn();
    assert.equal(second, false, 'a second write that does not fit waits');
    budget.release(60);
    await pending;
    assert.equal(second, true, 'and goes once the first is done');
    // A write larger than the whole budget still goes when it is alone.
    budget.release(60);
    await budget.acquire(500);
    budget.release(500);
  });
});
