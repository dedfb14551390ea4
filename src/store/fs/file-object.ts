import { constants } from 'node:fs';
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
 * Yields exactly `end - start + 1` bytes of the file from `start`; throws if the file came up short
 * (truncated while being read), so a download is cut rather than desynchronised.
 */
async function* fileSlice(handle: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
  const expected = end - start + 1;
  if (expected <= 0) return;
  let seen = 0;
  const stream = handle.createReadStream({ start, end, autoClose: false });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    seen += chunk.length;
    yield chunk;
  }
  if (seen !== expected) throw new Error(`file shrank while being read: got ${seen} of ${expected} bytes`);
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
export async function fileObject(handle: FileHandle): Promise<StoredObject | undefined> {
  let st: BigIntStats;
  try {
    st = await handle.stat({ bigint: true });
  } catch (err) {
    await handle.close();
    throw err;
  }
  if (!st.isFile()) {
    await handle.close();
    return undefined;
  }
  let closed: Promise<void> | undefined;
  return {
    size: Number(st.size),
    etag: entityTag(st),
    modified: new Date(Number(st.mtimeMs)),
    read: (start, end) => Readable.from(fileSlice(handle, start, end), { objectMode: false, highWaterMark: 64 * 1024 }),
    close: () => (closed ??= handle.close()),
  };
}
