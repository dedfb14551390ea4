import { constants, readSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { StoredObject } from '../types.js';

/** Opening with O_NONBLOCK keeps a FIFO planted at a path from blocking a libuv thread. */
export const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Open errors that mean "there is no file to read here". */
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG']);

/**
 * Whether an open failed because there is no regular file at the path (missing, not a folder
 * where one was needed, a link refused), rather than because the storage failed.
 *
 * @example
 * ```ts
 * const handle = await open(path, READ_FLAGS).catch((err) => (isMissingFile(err) ? undefined : Promise.reject(err)));
 * ```
 */
export function isMissingFile(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && MISSING_CODES.has(code);
}

/** Strong entity tag of a file version: inode, size and modification time in nanoseconds, in hex. */
function entityTag(st: BigIntStats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

/**
 * Bytes asked of the file per read of a streamed body: large, so that a big download costs few
 * reads, writes and wake-ups (a 1 GiB file is 1,024 of each).
 */
const READ_CHUNK = 1024 * 1024;
/** What a streamed body reads ahead of the socket. */
const READ_AHEAD = 2 * READ_CHUNK;

/** Small read buffers are cut from slabs of this size (as `Buffer.allocUnsafe` does below 4 KiB), never reused. */
const SLAB = 256 * 1024;
let slab = Buffer.allocUnsafe(0);
let slabUsed = 0;

/** A fresh buffer of `length` bytes, cut from the current slab when it fits (one allocation for many small reads). */
function smallBuffer(length: number): Buffer {
  if (length > SLAB / 4) return Buffer.allocUnsafe(length);
  if (slabUsed + length > slab.length) {
    slab = Buffer.allocUnsafe(SLAB);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + length);
  // (the next one starts 8-byte aligned)
  slabUsed += (length + 7) & ~7;
  return out;
}

/** The error of a read that came up short: the file was truncated while being served. */
function shrank(seen: number, expected: number): Error {
  return new Error(`file shrank while being read: got ${seen} of ${expected} bytes`);
}

/** Reads up to `into.length` bytes at `position`, stopping early only at the end of the file; how many it read. */
async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < into.length) {
    const { bytesRead } = await handle.read(into, got, into.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** {@link readFully} without the thread pool. */
function readFullySync(fd: number, into: Buffer, position: number): number {
  let got = 0;
  while (got < into.length) {
    const bytesRead = readSync(fd, into, got, into.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** An inline file operation slower than this (ms) may have waited for the disk. */
const SLOW_INLINE_MS = 4;
/**
 * Slow inline operations in a row that mean the storage does not answer from memory. One alone is
 * as likely the process not running meanwhile (on a busy machine a 2 µs system call can take
 * milliseconds); the disk, once it is needed, is needed again by the next one.
 */
const SLOW_IN_A_ROW = 2;
/** How long inline operations stay off after slow ones, at first and at most (doubling while they stay slow). */
const BACKOFF_MS = { first: 1000, most: 64_000 } as const;

/**
 * Whether small file operations (reads of a small slice, `lstat` checks) run inline, as system
 * calls on the event loop, rather than through the thread pool: a round trip through the pool
 * costs several times a read from the page cache. Operations that turn out slow (the data had to
 * come from the disk) turn inline operations off for a second, then for twice as long each time
 * they are slow again when they come back (up to a minute), and back to a second once one is
 * fast: storage that does not answer from memory holds the event loop up for two operations about
 * once a minute at most.
 *
 * @example
 * ```ts
 * const inline = new InlineIo();
 * const st = inline.enabled ? inline.run(() => lstatSync(path)) : await lstat(path);
 * ```
 */
export class InlineIo {
  private offUntil = 0;
  private backoff: number = BACKOFF_MS.first;
  private slowInARow = 0;

  /** Whether the next operation may run inline. */
  get enabled(): boolean {
    return this.offUntil === 0 || performance.now() >= this.offUntil;
  }

  /** Runs `op` now, and weighs how long it took. */
  run<T>(op: () => T): T {
    const started = performance.now();
    try {
      return op();
    } finally {
      const now = performance.now();
      if (now - started <= SLOW_INLINE_MS) {
        this.slowInARow = 0;
        if (this.offUntil !== 0) {
          this.offUntil = 0;
          this.backoff = BACKOFF_MS.first;
        }
      } else if (++this.slowInARow >= SLOW_IN_A_ROW) {
        this.slowInARow = 0;
        this.offUntil = now + this.backoff;
        this.backoff = Math.min(2 * this.backoff, BACKOFF_MS.most);
      }
    }
  }
}

/**
 * A stream of exactly `end - start + 1` bytes of the file from `start`, read in large chunks; it
 * fails if the file came up short (truncated while being read), so a download is cut rather than
 * desynchronised. The handle is not closed.
 */
function fileSlice(handle: FileHandle, start: number, end: number): Readable {
  let position = start;
  const stop = end + 1;
  return new Readable({
    highWaterMark: READ_AHEAD,
    read() {
      if (position >= stop) {
        this.push(null);
        return;
      }
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, stop - position));
      readFully(handle, chunk, position).then(
        (got) => {
          position += got;
          if (got < chunk.length) this.destroy(shrank(position - start, stop - start));
          else this.push(chunk);
        },
        (err: Error) => this.destroy(err),
      );
    },
  });
}

/**
 * A {@link StoredObject} read from a local file, which can also hand a small slice back whole (one
 * read, no stream) for an answer written in one piece.
 */
export interface FileStoredObject extends StoredObject {
  /** The bytes `start..end`, both inclusive, read at once; fails if the file came up short. */
  readBuffer(start: number, end: number): Promise<Buffer>;
}

/**
 * Whether `object` is a local file's, whose slices can be read whole.
 *
 * @example
 * ```ts
 * if (isFileObject(object) && length <= 65536) res.send(206, headers, await object.readBuffer(start, end));
 * ```
 */
export function isFileObject(object: StoredObject): object is FileStoredObject {
  return typeof (object as Partial<FileStoredObject>).readBuffer === 'function';
}

/** What a download says of a file version: its size, strong entity tag and modification time. */
export interface FileVersion {
  readonly size: number;
  readonly etag: string;
  readonly modified: Date;
}

/**
 * The {@link FileVersion} a file's `fstat` describes.
 *
 * @example
 * ```ts
 * const version = fileVersion(await handle.stat({ bigint: true }));
 * ```
 */
export function fileVersion(st: BigIntStats): FileVersion {
  return { size: Number(st.size), etag: entityTag(st), modified: new Date(Number(st.mtimeMs)) };
}

/**
 * The {@link FileStoredObject} of an open regular file at `version`; `close` is what closing it
 * does (once), so that a handle shared by several downloads can be released instead. With
 * `inline`, its whole-slice reads run inline while that allows.
 *
 * @example
 * ```ts
 * const object = storedFile(handle, fileVersion(await handle.stat({ bigint: true })), () => handle.close());
 * ```
 */
export function storedFile(handle: FileHandle, version: FileVersion, close: () => Promise<void>, inline?: InlineIo): FileStoredObject {
  let closed: Promise<void> | undefined;
  return {
    size: version.size,
    etag: version.etag,
    modified: version.modified,
    read: (start, end) => fileSlice(handle, start, end),
    async readBuffer(start, end) {
      const out = smallBuffer(Math.max(0, end - start + 1));
      const got = inline?.enabled ? inline.run(() => readFullySync(handle.fd, out, start)) : await readFully(handle, out, start);
      if (got < out.length) throw shrank(got, out.length);
      return out;
    },
    close: () => (closed ??= close()),
  };
}

/**
 * The {@link FileStoredObject} of an open regular file whose `fstat` is `st`; closing it closes the file.
 *
 * @example
 * ```ts
 * const object = ownedFile(handle, await handle.stat({ bigint: true }));
 * ```
 */
export function ownedFile(handle: FileHandle, st: BigIntStats): FileStoredObject {
  return storedFile(handle, fileVersion(st), () => handle.close());
}

/**
 * The `fstat` of an open file when it is a regular file; otherwise (or when the `fstat` fails)
 * the handle is closed, and the answer is `undefined` (or the failure).
 *
 * @example
 * ```ts
 * const st = await regularFileStat(await open('/srv/files/a.bin', 'r'));
 * ```
 */
export async function regularFileStat(handle: FileHandle): Promise<BigIntStats | undefined> {
  let st: BigIntStats;
  try {
    st = await handle.stat({ bigint: true });
  } catch (err) {
    await handle.close();
    throw err;
  }
  if (st.isFile()) return st;
  await handle.close();
  return undefined;
}

/**
 * A {@link StoredObject} over an open file: size, tag and time from one `fstat`, reads from the same
 * descriptor, so every byte read belongs to the version described. `undefined` (and the handle
 * closed) when it is not a regular file.
 *
 * @example
 * ```ts
 * const object = await fileObject(await open('/srv/files/a.bin', 'r'));
 * object?.read(0, 99).pipe(res);
 * ```
 */
export async function fileObject(handle: FileHandle): Promise<FileStoredObject | undefined> {
  const st = await regularFileStat(handle);
  return st && ownedFile(handle, st);
}
