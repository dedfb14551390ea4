import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { BitsClientError } from './errors.js';
import type { UploadRecord } from './journal.js';
import type { BodySource } from './transport.js';
import { THROTTLED_PIECE_BYTES } from './throttle.js';
import type { Throttle } from './throttle.js';

/**
 * A fragment is read in pieces of this size, the next one while the socket takes this one: memory
 * stays at two pieces whatever the fragment size, and reading overlaps sending.
 */
const PIECE = 1024 * 1024;

/** Characters Windows does not allow in `Content-Name` (spec §2.1), plus anything outside Latin-1. */
const NAME_FORBIDDEN = /[\\/:*?"<>|\x00-\x1f\x7f]|[^\x00-\xff]/g;

/** The journaled facts about the source of an upload. */
export type SourceState = Pick<UploadRecord, 'file' | 'fileSize' | 'fileMtimeMs'>;

/**
 * The local file an upload sends (spec §7.1 BG_E_LOCAL_FILE_CHANGED): its size and modification time
 * are taken when the job starts and journaled; a source that changes since, even between two
 * resumes, stops the job. Fragments are read in pieces into two buffers reused for the whole job.
 *
 * @example
 * ```ts
 * const source = await UploadSource.open(record); // fills in fileSize and fileMtimeMs on a new job
 * await source.checkUnchanged();
 * await transport.send({ ..., body: source.body(record.offset, 65536, signal) });
 * await source.close();
 * ```
 */
export class UploadSource {
  private buffers: [Buffer, Buffer] | undefined;
  /** The file's name as `Content-Name` carries it: no path, no character Windows forbids, at most 260. */
  readonly contentName: string;

  private constructor(
    private readonly state: SourceState,
    private readonly fh: FileHandle,
    private readonly throttle: Throttle | undefined,
  ) {
    this.contentName = basename(state.file).replace(NAME_FORBIDDEN, '_').slice(0, 260) || 'file';
  }

  /**
   * Opens the source of `state`: records its size and modification time when the record has none
   * yet (`fileSize < 0`), else checks them. With a `throttle`, each piece waits for it before it is
   * sent, and pieces are the throttle's size (smaller pieces shape more smoothly).
   *
   * @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE (missing, unreadable, not a file) or
   *   BITS_CLIENT_LOCAL_FILE_CHANGED.
   */
  static async open(state: SourceState, throttle?: Throttle): Promise<UploadSource> {
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
    return new UploadSource(state, await open(state.file, 'r'), throttle);
  }

  /** @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE_CHANGED when size or modification time moved. */
  async checkUnchanged(): Promise<void> {
    const st = await stat(this.state.file);
    unchanged(this.state, st.size, st.mtimeMs);
  }

  /**
   * The `length` bytes from `offset` as a request body, read a piece at a time while it is sent. A
   * piece is valid until the next-but-one is asked for; one body is sent at a time. `signal` ends a
   * wait for the throttle.
   *
   * @throws {BitsClientError} (from the pieces) BITS_CLIENT_LOCAL_FILE_CHANGED when the file ends early.
   */
  body(offset: number, length: number, signal: AbortSignal): BodySource {
    return { length, pieces: () => this.pieces(offset, length, signal) };
  }

  private async *pieces(offset: number, length: number, signal: AbortSignal): AsyncGenerator<Buffer> {
    const throttle = this.throttle;
    const pieceSize = throttle ? (throttle.pieceBytes ?? THROTTLED_PIECE_BYTES) : PIECE;
    const size = Math.max(1, Math.min(pieceSize, this.state.fileSize));
    this.buffers ??= [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    for (let at = 0, i = 0; at < length; i ^= 1) {
      const piece = this.buffers[i].subarray(0, Math.min(size, length - at));
      await this.fill(piece, offset + at);
      at += piece.length;
      if (throttle) await throttle.take(piece.length, signal);
      yield piece;
    }
  }

  /** Fills `buf` from `position`. */
  private async fill(buf: Buffer, position: number): Promise<void> {
    for (let done = 0; done < buf.length; ) {
      const { bytesRead } = await this.fh.read(buf, done, buf.length - done, position + done);
      if (bytesRead === 0) {
        const s = this.state;
        throw new BitsClientError('BITS_CLIENT_LOCAL_FILE_CHANGED', `${s.file} ended at ${position + done} of ${s.fileSize} bytes`);
      }
      done += bytesRead;
    }
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
