import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { BitsClientError } from './errors.js';
import type { UploadRecord } from './journal.js';

/** Characters Windows does not allow in `Content-Name` (spec §2.1), plus anything outside Latin-1. */
const NAME_FORBIDDEN = /[\\/:*?"<>|\x00-\x1f\x7f]|[^\x00-\xff]/g;

/** The journaled facts about the source of an upload. */
export type SourceState = Pick<UploadRecord, 'file' | 'fileSize' | 'fileMtimeMs' | 'fragmentSize'>;

/**
 * The local file an upload sends (spec §7.1 BG_E_LOCAL_FILE_CHANGED): its size and modification time
 * are taken when the job starts and journaled; a source that changes since, even between two
 * resumes, stops the job. Fragments are read into one buffer reused from fragment to fragment.
 *
 * @example
 * ```ts
 * const source = await UploadSource.open(record); // fills in fileSize and fileMtimeMs on a new job
 * await source.checkUnchanged();
 * const body = await source.read(record.offset, 65536);
 * await source.close();
 * ```
 */
export class UploadSource {
  private buffer: Buffer | undefined;
  /** The file's name as `Content-Name` carries it: no path, no character Windows forbids, at most 260. */
  readonly contentName: string;

  private constructor(
    private readonly state: SourceState,
    private readonly fh: FileHandle,
  ) {
    this.contentName = basename(state.file).replace(NAME_FORBIDDEN, '_').slice(0, 260) || 'file';
  }

  /**
   * Opens the source of `state`: records its size and modification time when the record has none
   * yet (`fileSize < 0`), else checks them.
   *
   * @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE (missing, unreadable, not a file) or
   *   BITS_CLIENT_LOCAL_FILE_CHANGED.
   */
  static async open(state: SourceState): Promise<UploadSource> {
    const st = await stat(state.file).catch((err: NodeJS.ErrnoException) => {
      throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `cannot read ${state.file}: ${err.code ?? err.message}`, { cause: err });
    });
    if (!st.isFile()) throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `${state.file} is not a regular file`);
    if (state.fileSize < 0) {
      state.fileSize = st.size;
      state.fileMtimeMs = st.mtimeMs;
    } else {
      unchanged(state, st.size, st.mtimeMs);
    }
    return new UploadSource(state, await open(state.file, 'r'));
  }

  /** @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE_CHANGED when size or modification time moved. */
  async checkUnchanged(): Promise<void> {
    const st = await stat(this.state.file);
    unchanged(this.state, st.size, st.mtimeMs);
  }

  /**
   * Reads `length` bytes from `offset`. The buffer is reused: it is valid until the next read.
   *
   * @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE_CHANGED when the file ends early.
   */
  async read(offset: number, length: number): Promise<Buffer> {
    const s = this.state;
    if (!this.buffer || this.buffer.length < length) this.buffer = Buffer.allocUnsafe(Math.max(length, Math.min(s.fragmentSize, s.fileSize)));
    const buf = this.buffer.subarray(0, length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new BitsClientError('BITS_CLIENT_LOCAL_FILE_CHANGED', `${s.file} ended at ${offset + done} of ${s.fileSize} bytes`);
      }
      done += bytesRead;
    }
    return buf;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

function unchanged(s: SourceState, size: number, mtimeMs: number): void {
  if (size !== s.fileSize || mtimeMs !== s.fileMtimeMs) {
    throw new BitsClientError(
      'BITS_CLIENT_LOCAL_FILE_CHANGED',
      `${s.file} changed during the upload (size ${s.fileSize} → ${size}, mtime ${new Date(s.fileMtimeMs).toISOString()} → ${new Date(mtimeMs).toISOString()})`,
    );
  }
}
