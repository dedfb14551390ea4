import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { sessionKey } from '../../protocol/session-id.js';
import { PartialWriteError, UploadMissingError } from '../types.js';
import type { WriteOptions } from '../types.js';
import { BatchWriter, WriteBudget, batchSize } from './batch-writer.js';
import { MARK_SIZE, encodeMark, findMark, markPosition } from './progress-marks.js';
import type { Mark } from './progress-marks.js';
import { OpenFiles } from './open-files.js';

/** Idle data files kept open between fragments. */
const MAX_OPEN = 256;
/**
 * Fragments at least this long are synced before their mark is written (see progress-marks.ts):
 * a second sync costs less than a CRC pass over this many bytes (about 1 ms per 4 MiB).
 */
const SYNC_FIRST_BYTES = 4 * 1024 * 1024;
/** Bytes of the store's writes in flight at once (see {@link WriteBudget}). */
const WRITE_BUDGET = 16 * 1024 * 1024;

/** What this process knows of a data file beyond its bytes: their durable length and its newest mark. */
interface Tail {
  /** Durable length of the data. */
  end: number;
  /** The newest mark made durable and where it is; the next bytes must never reach it. */
  mark: { readonly mark: Mark; readonly position: number } | undefined;
  /** The file holds exactly its data (no mark past it): sealed, ready to be read or committed. */
  sealed: boolean;
  /** The HMAC key of the session's marks. */
  readonly key: Buffer;
}

/** The outcome of {@link DataFiles.write}. */
export interface DataWrite {
  readonly written: number;
  /** A progress mark makes the new length durable by itself. */
  readonly tracked: boolean;
}

/** The HMAC key of a session's marks: no two sessions' marks are alike, and no data is a mark by chance. */
function markKey(id: string): Buffer {
  return createHash('sha256').update('bits-upload progress mark\0').update(sessionKey(id)).digest();
}

/**
 * The sessions' data files of a filesystem byte store: streamed writes with one fdatasync each,
 * progress marks ({@link ./progress-marks.js}) so that a fragment's new length is durable without a
 * record write, handles kept open across fragments, and the repair of a file after a crash.
 */
export class DataFiles {
  private readonly files = new OpenFiles(MAX_OPEN);
  private readonly tails = new Map<string, Tail>();
  /** Writes in progress, for the batch size. */
  private writing = 0;
  private readonly budget = new WriteBudget(WRITE_BUDGET);

  /**
   * Writes `source` at `offset` (the durable length) and makes it durable. Unless the write
   * completes the upload (`options.total`) and `options.trackCompletion` is off, a mark past the
   * data makes the new length and the total durable with the same fdatasync (`tracked`).
   */
  async write(id: string, path: string, offset: number, source: Readable, options: WriteOptions = {}): Promise<DataWrite> {
    return this.files.use(sessionKey(id), () => openExisting(id, path), async (fh) => {
      const tail = await this.tailOf(id, fh, offset);
      const key = tail.key;
      const signal = options.signal;
      const onAbort = (): void => {
        source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.writing++;
      tail.sealed = false;
      const writer = new BatchWriter(fh, offset, () => batchSize(this.writing), this.budget);
      let failure: unknown;
      let arrived = 0;
      let crc = 0;
      const syncFirst = (options.length ?? 0) >= SYNC_FIRST_BYTES;
      let markFailed = false;
      try {
        if (signal?.aborted) onAbort();
        for await (const chunk of source as AsyncIterable<Buffer>) {
          // The newest mark moves out of the way before any byte could reach it.
          if (tail.mark && offset + arrived + chunk.length > tail.mark.position) {
            await writer.settle();
            await this.moveMark(fh, key, tail, offset + arrived + chunk.length, Math.max(options.length ?? 0, arrived + chunk.length)).catch((err: unknown) => {
              markFailed = true;
              throw err;
            });
          }
          arrived += chunk.length;
          if (!syncFirst) crc = crc32(chunk, crc);
          if (writer.push(chunk)) await writer.flush();
        }
        await writer.settle();
      } catch (err) {
        failure = err;
        // The source failed (or the disk did): keep every byte that did arrive, in order.
        await writer.salvage();
      } finally {
        this.writing--;
        signal?.removeEventListener('abort', onAbort);
      }
      const end = offset + writer.written;
      const track = failure === undefined && writer.written > 0 && (options.total === undefined || end < options.total || options.trackCompletion === true);
      const mark: Mark | undefined = track ? { start: offset, end, time: Date.now(), crc, total: options.total, synced: syncFirst } : undefined;
      const position = mark && markPosition(end, writer.written, tail.mark?.position);
      let links: number;
      try {
        if (mark?.synced) await fh.datasync();
        if (mark) await fh.write(encodeMark(key, mark), 0, MARK_SIZE, position);
        await fh.datasync();
        // The handle may be kept from an earlier fragment: the file it holds must still be the
        // session's (not deleted from outside meanwhile).
        links = fstatOf(fh).nlink;
      } catch (err) {
        // Nothing of this write can be trusted when the sync itself failed.
        this.tails.delete(sessionKey(id));
        await this.files.close(sessionKey(id));
        throw new PartialWriteError(0, failure ?? err, 'storage');
      }
      if (links === 0) {
        await this.forget(id);
        throw new UploadMissingError(id);
      }
      tail.end = end;
      if (mark) tail.mark = { mark, position: position! };
      if (failure !== undefined) throw new PartialWriteError(writer.written, failure, writer.storageFailed || markFailed ? 'storage' : 'source');
      return { written: writer.written, tracked: track };
    });
  }

  /**
   * Cuts the file back to its `length` bytes of data (the marks past it go) and makes that durable:
   * the upload is complete and its record says so.
   */
  async seal(id: string, path: string, length: number): Promise<void> {
    const key = sessionKey(id);
    const tail = this.tails.get(key);
    if (tail?.sealed && tail.end === length) return;
    await this.files.use(key, () => openExisting(id, path), async (fh) => {
      if (fstatOf(fh).size !== length) {
        await fh.truncate(length);
        await fh.datasync();
      }
    });
    this.tails.set(key, { end: length, mark: undefined, sealed: true, key: tail?.key ?? markKey(id) });
  }

  /**
   * After a crash: the durable length of a data file whose record vouches for `recorded` bytes,
   * and when it was last written (from its newest mark). A complete upload's file is sealed.
   */
  async recover(
    id: string,
    path: string,
    recorded: { received: number; total: number | null },
  ): Promise<{ received: number; at: number | undefined; total: number | undefined }> {
    if (recorded.total !== null && recorded.received === recorded.total) {
      await this.seal(id, path, recorded.total);
      return { received: recorded.total, at: undefined, total: recorded.total };
    }
    return this.files.use(sessionKey(id), () => openExisting(id, path), async (fh) => {
      const tail = await this.readTail(id, fh, recorded.received);
      return { received: tail.end, at: tail.mark?.mark.time, total: tail.mark?.mark.total };
    });
  }

  /**
   * Cuts the file back to the durable length this process knows (marks past it go), when it knows
   * one: the upload is about to be committed.
   */
  async sealKnown(id: string, path: string): Promise<void> {
    const tail = this.tails.get(sessionKey(id));
    if (tail && !tail.sealed) await this.seal(id, path, tail.end);
  }

  /** The durable length this process knows of a data file (its readers stop there), if it knows one. */
  knownLength(id: string): number | undefined {
    return this.tails.get(sessionKey(id))?.end;
  }

  /** Forgets a data file that is going away (committed or discarded) and closes its handle. */
  async forget(id: string): Promise<void> {
    const key = sessionKey(id);
    this.tails.delete(key);
    await this.files.close(key);
  }

  /** Closes every handle (the store is closing). */
  async close(): Promise<void> {
    this.tails.clear();
    await this.files.closeAll();
  }

  /**
   * The tail of a data file whose durable length is `offset`. Known from this process's own writes,
   * or else read from the file: its newest mark is protected even when the record already covers it.
   */
  private async tailOf(id: string, fh: FileHandle, offset: number): Promise<Tail> {
    const tail = this.tails.get(sessionKey(id)) ?? (await this.readTail(id, fh, offset));
    tail.end = offset;
    return tail;
  }

  /** The tail as the file shows it, no shorter than `floor` (what the record vouches for); remembered. */
  private async readTail(id: string, fh: FileHandle, floor: number): Promise<Tail> {
    const size = fstatOf(fh).size;
    const key = markKey(id);
    const mark = size > floor ? await findMark(fh, key, size, floor) : undefined;
    const tail: Tail = { end: Math.max(floor, mark?.mark.end ?? 0), mark, sealed: size === floor && !mark, key };
    this.tails.set(sessionKey(id), tail);
    return tail;
  }

  /** Rewrites the newest mark further out, past `reach` with room for `length` more, and syncs it. */
  private async moveMark(fh: FileHandle, key: Buffer, tail: Tail, reach: number, length: number): Promise<void> {
    const current = tail.mark!;
    const position = markPosition(reach, length, current.position);
    await fh.write(encodeMark(key, current.mark), 0, MARK_SIZE, position);
    await fh.datasync();
    tail.mark = { mark: current.mark, position };
  }
}

/**
 * The stat of an open file, synchronously: an open file's inode is in memory, so this never waits
 * for the disk, and it costs a microsecond where a trip through the thread pool costs thirty.
 */
function fstatOf(fh: FileHandle): fs.Stats {
  return fs.fstatSync(fh.fd);
}

/** Opens an upload's data file for writing; a missing one is an upload deleted from outside. */
function openExisting(id: string, path: string): Promise<FileHandle> {
  return open(path, 'r+').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new UploadMissingError(id) : err;
  });
}
