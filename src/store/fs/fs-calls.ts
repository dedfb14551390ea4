import fs from 'node:fs';
import type { Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';

// File-system calls on plain descriptors, through the callback API: on the paths every session
// takes (small atomic writes, folder syncs), a FileHandle (an object of its own, tracked for the
// garbage collector) costs more than the write it carries, and the promise API dresses every
// "nothing there" up as an exception with a stack trace.

/** Opens `path` and resolves with the descriptor. */
export function openFd(path: string, flags: string, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** Writes `data` from `offset` on at `position`; resolves with the bytes written (maybe fewer). */
export function writeFd(fd: number, data: Buffer, offset: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, data, offset, data.length - offset, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Closes `fd` after `work`, keeping `work`'s failure (not the close's) when both fail. */
export async function withFd<T>(fd: number, work: (fd: number) => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await work(fd);
  } catch (err) {
    await closeFd(fd).catch(() => undefined);
    throw err;
  }
  await closeFd(fd);
  return result;
}

/**
 * The lstat of `path`, `undefined` when there is nothing there (the usual answer for a new
 * upload's destination).
 *
 * @example
 * ```ts
 * if (!(await lstatIfAny('/srv/uploads/dump.bin'))) console.log('free');
 * ```
 */
export function lstatIfAny(path: string): Promise<Stats | undefined> {
  return new Promise((resolve, reject) =>
    fs.lstat(path, (err, st) => {
      if (!err) resolve(st);
      else if (err.code === 'ENOENT') resolve(undefined);
      else reject(err);
    }),
  );
}

/**
 * The names in a folder; none when the folder does not exist (yet, or any more).
 *
 * @example
 * ```ts
 * for (const name of await readdirIfAny('/state/sessions')) console.log(name);
 * ```
 */
export async function readdirIfAny(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
