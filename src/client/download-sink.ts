import { open, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BitsClientError } from './errors.js';

/** Where downloaded bytes go, in order. */
export interface DownloadSink {
  /** Bytes held. */
  readonly offset: number;
  /** Largest size accepted, if any (a reply in memory). */
  readonly limit: number | undefined;
  /** Drops everything held. */
  reset(): Promise<void>;
  /** Appends bytes. */
  write(chunk: Buffer): Promise<void>;
  /** Makes the bytes held durable (before the journal records them). */
  checkpoint(): Promise<void>;
  /** Completes the download: a file is renamed into place; memory returns its bytes. */
  complete(): Promise<Buffer | undefined>;
  /** Releases the file without completing. */
  close(): Promise<void>;
}

/** Suffix of the part file a download is written to before it is renamed into place. */
export const PART_SUFFIX = '.bits-part';

/**
 * A file download: bytes go to `<target>.bits-part`, renamed to `target` when complete (a partial file
 * never appears under the target name).
 *
 * @example
 * ```ts
 * const sink = await FileSink.open('/tmp/out.bin', journalOffset);
 * await sink.write(chunk);
 * await sink.complete();
 * ```
 */
export class FileSink implements DownloadSink {
  readonly limit = undefined;
  private constructor(
    private readonly target: string,
    private readonly part: string,
    private fh: FileHandle | undefined,
    public offset: number,
  ) {}

  /** Opens (or creates) the part file and keeps its first `offset` bytes (fewer if it is shorter). */
  static async open(target: string, offset: number): Promise<FileSink> {
    const part = target + PART_SUFFIX;
    const size = await stat(part).then(
      (s) => s.size,
      () => -1,
    );
    const fh = await open(part, size < 0 ? 'w+' : 'r+', 0o644);
    const keep = Math.max(0, Math.min(offset, size));
    await fh.truncate(keep);
    return new FileSink(target, part, fh, keep);
  }

  private handle(): FileHandle {
    if (!this.fh) throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `${this.part} is closed`);
    return this.fh;
  }

  async reset(): Promise<void> {
    await this.handle().truncate(0);
    this.offset = 0;
  }

  async write(chunk: Buffer): Promise<void> {
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.handle().write(chunk, done, chunk.length - done, this.offset + done);
      done += bytesWritten;
    }
    this.offset += chunk.length;
  }

  async checkpoint(): Promise<void> {
    await this.handle().datasync();
  }

  async complete(): Promise<undefined> {
    const fh = this.handle();
    await fh.sync();
    await fh.close();
    this.fh = undefined;
    await rename(this.part, this.target);
    return undefined;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Deletes the part file (a cancelled download). */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.part, { force: true });
  }
}

/**
 * A download kept in memory, up to `limit` bytes (a reply returned like `GetReplyData`).
 *
 * @example
 * ```ts
 * const sink = new MemorySink(1024 * 1024);
 * await sink.write(Buffer.from('ok'));
 * (await sink.complete()).toString(); // 'ok'
 * ```
 */
export class MemorySink implements DownloadSink {
  private chunks: Buffer[] = [];
  offset = 0;
  constructor(readonly limit: number) {}

  async reset(): Promise<void> {
    this.chunks = [];
    this.offset = 0;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.offset + chunk.length > this.limit) {
      throw new BitsClientError('BITS_CLIENT_REPLY_TOO_LARGE', `the reply is larger than ${this.limit} bytes; give a reply file`);
    }
    this.chunks.push(Buffer.from(chunk));
    this.offset += chunk.length;
  }

  async checkpoint(): Promise<void> {}

  async complete(): Promise<Buffer> {
    return Buffer.concat(this.chunks);
  }

  async close(): Promise<void> {}
}
