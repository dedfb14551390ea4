import { constants as fsc, createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ByteStore } from '../types.js';
import { PartialWriteError } from '../types.js';
import { mkdirDurable, syncDir } from './durable.js';
import { DATA_FILE, REPLY_FILE, sessionDir } from './layout.js';

/**
 * Bytes gathered per disk write. Two batches per upload may be in memory (one being written), so the
 * batch shrinks as more uploads write at once: large for one fast stream, small for fifty.
 */
const BATCH_BUDGET = 8 * 1024 * 1024;
const BATCH_MAX = 1024 * 1024;
const BATCH_MIN = 64 * 1024;

/** Writes all of `buffers` at `position`, looping over short writes. */
async function writeAll(fh: FileHandle, buffers: Buffer[], length: number, position: number): Promise<void> {
  let done = 0;
  let pending = buffers;
  while (done < length) {
    const { bytesWritten } = await fh.writev(pending, position + done);
    done += bytesWritten;
    if (done < length) pending = [Buffer.concat(pending).subarray(bytesWritten)];
  }
}

/**
 * Upload bytes as one file per session under the state directory. Writes are streamed with
 * backpressure and fdatasync'ed before they are reported; commits are atomic renames (or links,
 * when overwriting is not allowed, so an existing destination is never replaced).
 *
 * @example
 * ```ts
 * const bytes = new FsByteStore('/var/lib/bits');
 * await bytes.open(id);
 * const n = await bytes.write(id, 0, req.body);
 * await bytes.commit(id, '/srv/uploads/dump.bin', { overwrite: false });
 * ```
 */
export class FsByteStore implements ByteStore {
  /** Writes in progress, for the batch size. */
  private writing = 0;

  constructor(private readonly stateDir: string) {}

  async open(id: string): Promise<void> {
    const dir = this.dirOf(id);
    await mkdirDurable(dir);
    const fh = await open(join(dir, DATA_FILE), 'w', 0o600);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await syncDir(dir);
  }

  async write(id: string, offset: number, source: Readable, signal?: AbortSignal): Promise<number> {
    const fh = await open(this.dataOf(id), 'r+');
    let written = 0;
    let failure: unknown;
    const onAbort = (): void => {
      source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Batches go to disk with one writev while the next batch is read from the
    // socket: at most two batches per upload are in memory.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let inFlight: Promise<void> | undefined;
    let diskFailed = false;
    this.writing++;
    const batchSize = (): number => Math.max(BATCH_MIN, Math.min(BATCH_MAX, Math.floor(BATCH_BUDGET / this.writing)));
    const flush = async (): Promise<void> => {
      if (inFlight) await inFlight;
      inFlight = undefined;
      if (batchBytes === 0) return;
      const buffers = batch;
      const length = batchBytes;
      batch = [];
      batchBytes = 0;
      inFlight = writeAll(fh, buffers, length, offset + written).then(
        () => {
          written += length;
        },
        (err: unknown) => {
          diskFailed = true;
          throw err;
        },
      );
      // The failure is seen when the write is awaited; until then it must not count as unhandled
      // (which would take the process down) while the loop is waiting for socket bytes.
      inFlight.catch(() => undefined);
    };
    try {
      if (signal?.aborted) onAbort();
      for await (const chunk of source as AsyncIterable<Buffer>) {
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= batchSize()) await flush();
      }
      await flush();
      await inFlight;
    } catch (err) {
      failure = err;
      // The source failed (or the disk did): keep every byte that did arrive, in order.
      await inFlight?.catch(() => undefined);
      inFlight = undefined;
      if (!diskFailed) {
        await flush()
          .then(() => inFlight)
          .catch(() => undefined);
      }
    } finally {
      this.writing--;
      signal?.removeEventListener('abort', onAbort);
    }
    try {
      await fh.datasync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      // Nothing of this write can be trusted when the sync itself failed.
      throw new PartialWriteError(0, failure ?? err);
    }
    await fh.close();
    if (failure !== undefined) throw new PartialWriteError(written, failure);
    return written;
  }

  async commit(id: string, destination: string, options: { overwrite: boolean }): Promise<void> {
    const data = this.dataOf(id);
    const parent = dirname(destination);
    await mkdir(parent, { recursive: true });
    try {
      await this.place(data, destination, options.overwrite);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Different filesystems: copy next to the destination under a hidden name, then place it.
      const tmp = join(parent, `.${basename(destination)}.bits-${basename(dirname(data))}.part`);
      await copyFile(data, tmp, fsc.COPYFILE_FICLONE);
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await this.place(tmp, destination, options.overwrite);
      } catch (placeErr) {
        await rm(tmp, { force: true });
        throw placeErr;
      }
      await rm(data, { force: true });
    }
    await syncDir(parent);
  }

  async exists(id: string): Promise<boolean> {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) return false;
    return stat(join(dir, DATA_FILE)).then(
      () => true,
      () => false,
    );
  }

  openRead(id: string): Readable {
    return createReadStream(this.dataOf(id));
  }

  localPath(id: string): string | undefined {
    const dir = sessionDir(this.stateDir, id);
    return dir && join(dir, DATA_FILE);
  }

  replyPath(id: string): string | undefined {
    const dir = sessionDir(this.stateDir, id);
    return dir && join(dir, REPLY_FILE);
  }

  async writeReply(id: string, source: Readable): Promise<number> {
    const target = join(this.dirOf(id), REPLY_FILE);
    const tmp = `${target}.tmp`;
    // The file exists before the first byte is piped, so the removal below can never run ahead of
    // a pending open and miss it.
    // Opened before a byte is piped, so the removal below can never run ahead of a pending open.
    const sink = (await open(tmp, 'w', 0o600)).createWriteStream();
    try {
      await pipeline(source, sink); // (which closes the file, also when it fails)
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
      await syncDir(dirname(target));
      return sink.bytesWritten;
    } catch (err) {
      // A failed reply (source cut, over its limit, disk full) leaves nothing behind.
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async discard(id: string): Promise<void> {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) return;
    await rm(join(dir, DATA_FILE), { force: true });
    await rm(join(dir, REPLY_FILE), { force: true });
    await rm(join(dir, `${REPLY_FILE}.tmp`), { force: true });
  }

  /** rename (replacing) or link + unlink (never replacing) `from` to `to`. */
  private async place(from: string, to: string, overwrite: boolean): Promise<void> {
    if (overwrite) {
      await rename(from, to);
      return;
    }
    await link(from, to);
    await unlink(from);
  }

  private dirOf(id: string): string {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) throw new Error(`session id ${id} is not a GUID`);
    return dir;
  }

  private dataOf(id: string): string {
    return join(this.dirOf(id), DATA_FILE);
  }
}
