import type { FileHandle } from 'node:fs/promises';

/**
 * Bytes gathered per disk write. Two batches per upload may be in memory (one being written), so the
 * batch shrinks as more uploads write at once: large for one fast stream, small for fifty.
 */
const BATCH_BUDGET = 8 * 1024 * 1024;
/**
 * No larger: on Linux 6 kernels a write of 512 KiB or more into the page cache cost three to four
 * times the CPU of writes of 64-256 KiB (1.1-1.5 against 0.3-0.4 CPU-s per GiB, in the state
 * directory's filesystem on the development machine), and an upload in 8 MiB fragments went from
 * 2.1 to 1.3 CPU-s per GiB with this cap.
 */
const BATCH_MAX = 256 * 1024;
const BATCH_MIN = 64 * 1024;

/**
 * The batch size when `writers` uploads write at once: an equal share of the memory budget, within
 * bounds that keep syscalls large enough to be cheap and batches small enough to keep memory flat.
 *
 * @example
 * ```ts
 * batchSize(1); // 262144
 * batchSize(50); // 167772
 * ```
 */
export function batchSize(writers: number): number {
  return Math.max(BATCH_MIN, Math.min(BATCH_MAX, Math.floor(BATCH_BUDGET / Math.max(1, writers))));
}

/**
 * Bytes of all uploads' writes in flight at once, shared by the writers of one store: a writer
 * whose write would pass it waits (and stops reading its body, which then waits in the kernel), so
 * with a thousand uploads behind a busy disk the process holds this much, not a batch each.
 */
export class WriteBudget {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Waits until `bytes` more fit (one write alone always does), then counts them. */
  async acquire(bytes: number): Promise<void> {
    while (this.used > 0 && this.used + bytes > this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.used += bytes;
  }

  /** Gives back what {@link acquire} counted, and lets the waiting writers try again. */
  release(bytes: number): void {
    this.used -= bytes;
    for (const wake of this.waiting.splice(0)) wake();
  }
}

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
 * Gathers chunks into batches and writes each with one `writev`, one batch on disk while the next
 * one fills: at most two batches are in memory. Bytes land contiguously from `offset`, in order.
 * It writes, it does not sync: the caller fdatasyncs before it reports {@link written} as durable.
 *
 * @example
 * ```ts
 * const writer = new BatchWriter(fh, offset, () => batchSize(1));
 * try {
 *   for await (const chunk of source) if (writer.push(chunk)) await writer.flush();
 *   await writer.settle();
 * } catch (err) {
 *   await writer.salvage();
 * }
 * await fh.datasync();
 * return writer.written;
 * ```
 */
export class BatchWriter {
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private inFlight: Promise<void> | undefined;
  private done = 0;
  private failed = false;

  /** `size()` is asked after every chunk, so the batch follows the number of concurrent writers. */
  constructor(
    private readonly fh: FileHandle,
    private readonly offset: number,
    private readonly size: () => number,
    private readonly budget?: WriteBudget,
  ) {}

  /** Bytes whose writes have completed (not yet synced). */
  get written(): number {
    return this.done;
  }

  /** Whether a write to the file failed (the storage's fault, not the source's). */
  get storageFailed(): boolean {
    return this.failed;
  }

  /** Adds a chunk to the batch; true when the batch is full and should be flushed. */
  push(chunk: Buffer): boolean {
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    return this.batchBytes >= this.size();
  }

  /**
   * Waits for the write in flight (throwing its failure), then starts writing the batch and
   * returns without waiting for it, so the next batch fills meanwhile.
   */
  async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    this.inFlight = undefined;
    if (this.batchBytes === 0) return;
    const buffers = this.batch;
    const length = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    const budget = this.budget;
    if (budget) await budget.acquire(length);
    this.inFlight = writeAll(this.fh, buffers, length, this.offset + this.done).then(
      () => {
        budget?.release(length);
        this.done += length;
      },
      (err: unknown) => {
        budget?.release(length);
        this.failed = true;
        throw err;
      },
    );
    // The failure is seen when the write is awaited; until then it must not count as unhandled
    // (which would take the process down) while the caller is waiting for source bytes.
    this.inFlight.catch(() => undefined);
  }

  /** Writes what is left and waits until every write has completed; throws a write's failure. */
  async settle(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }

  /**
   * After the source failed: keeps every byte that did arrive, in order, unless the storage
   * itself failed. Never throws; {@link written} and {@link storageFailed} tell what happened.
   */
  async salvage(): Promise<void> {
    await this.inFlight?.catch(() => undefined);
    this.inFlight = undefined;
    if (!this.failed) await this.settle().catch(() => undefined);
  }
}
