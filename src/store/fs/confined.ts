import { constants as fsc, existsSync } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { isInside } from './is-inside.js';

/** Thrown when a path would leave its root (through a symlink) or runs through a non-directory. */
export class ConfinementError extends Error {
  constructor(
    readonly reason: 'escape' | 'not-a-directory' | 'too-many-links',
    message: string,
  ) {
    super(message);
    this.name = 'ConfinementError';
  }
}

/**
 * Whether directories can be walked by descriptor (`/proc/self/fd/N/name` names `name` inside the
 * very directory that descriptor holds, whatever has been renamed or swapped since). Linux has it.
 */
export const canWalkByDescriptor = existsSync('/proc/self/fd');

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
/** Symlinks followed in one walk, as the kernel's own limit. */
const MAX_LINKS = 40;
/** Times a component may be looked at again because it changed under us (creation, swaps). */
const MAX_RETRIES = 64;

/** The path through which an open directory's entry `name` is reached without re-resolving the directory. */
export function entryPath(dir: FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`;
}

/**
 * Opens the directory that `segments` name below `root`, resolving one component at a time from
 * the directory already open, so that no component can be swapped for a symlink between the check
 * and the use (a `renameat2(RENAME_EXCHANGE)` loop). A symlink is followed only when its target
 * stays inside `root`; missing directories are created when `create` is set.
 *
 * @throws {ConfinementError} when the path leaves `root` or runs through a file.
 * @example
 * ```ts
 * const dir = await openConfinedDir('/srv/uploads', ['crash', '2026'], { create: true });
 * try { await link(data, entryPath(dir, 'dump.bin')); } finally { await dir.close(); }
 * ```
 */
export async function openConfinedDir(root: string, segments: readonly string[], options: { create: boolean }): Promise<FileHandle> {
  const realRoot = await realpath(root);
  let cur = await open(realRoot, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await walk(cur, realRoot, [...segments], options.create, (next) => (cur = next));
  } catch (err) {
    await cur.close();
    throw err;
  }
  return cur;
}

/** Walks `pending` from `start`, handing each newly opened directory to `moved` (the previous one is closed). */
async function walk(start: FileHandle, realRoot: string, pending: string[], create: boolean, moved: (dir: FileHandle) => void): Promise<void> {
  let cur = start;
  const step = async (next: FileHandle): Promise<void> => {
    const previous = cur;
    cur = next;
    moved(next);
    await previous.close();
  };
  let links = 0;
  let retries = 0;
  const again = (name: string): void => {
    if (++retries > MAX_RETRIES) throw new ConfinementError('too-many-links', `${name} keeps changing`);
    pending.unshift(name);
  };
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '' || name === '.') continue;
    const at = entryPath(cur, name);
    try {
      await step(await open(at, DIR_FLAGS));
      continue;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && create) {
        await mkdir(at).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
        again(name); // open what is there now (it may already have been swapped)
        continue;
      }
      if (code !== 'ENOTDIR' && code !== 'ELOOP') throw err;
    }
    // What is there may change between our calls (that is the attack): whatever it turns out to
    // be, look again; only a plain file stops the walk. The steps bound the retries.
    const st = await lstat(at).catch(() => undefined);
    const link = st?.isSymbolicLink() ? await readlink(at).catch(() => undefined) : undefined;
    if (link === undefined) {
      if (st && !st.isDirectory() && !st.isSymbolicLink()) throw new ConfinementError('not-a-directory', `${name} is not a directory`);
      again(name);
      continue;
    }
    // Follow the link by its meaning, then walk again from the root: every step stays checked.
    if (++links > MAX_LINKS) throw new ConfinementError('too-many-links', `too many symlinks at ${name}`);
    const target = resolve(await readlink(`/proc/self/fd/${cur.fd}`), link);
    if (!isInside(target, realRoot)) throw new ConfinementError('escape', `${name} leads outside its folder`);
    pending.unshift(...relative(realRoot, target).split(sep));
    await step(await open(realRoot, fsc.O_RDONLY | fsc.O_DIRECTORY));
  }
}

/**
 * Checks, after the fact, that a placed file's folder is still inside `root` (for systems that
 * cannot walk by descriptor).
 *
 * @example
 * ```ts
 * if (!(await stillInside('/srv/uploads', placed))) await unlink(placed);
 * ```
 */
export async function stillInside(root: string, file: string): Promise<boolean> {
  const [realRoot, realParent] = await Promise.all([realpath(root), realpath(dirname(file))]);
  return isInside(realParent, realRoot);
}

/**
 * Opens the file that `segments` name below `root` for reading, every component resolved as in
 * {@link openConfinedDir} (a final symlink is followed only while it stays inside `root`).
 *
 * @throws {ConfinementError} when the path leaves `root`; the open's own errors (`ENOENT`, …).
 * @example
 * ```ts
 * const fh = await openConfinedFile('/srv/uploads', ['reports', 'q3.pdf'], fsc.O_RDONLY);
 * ```
 */
export async function openConfinedFile(root: string, segments: readonly string[], flags: number): Promise<FileHandle> {
  const realRoot = await realpath(root);
  let path = [...segments];
  for (let hops = 0; hops <= MAX_LINKS; hops++) {
    const name = path.at(-1);
    if (name === undefined) throw new ConfinementError('not-a-directory', `${root} is a folder`);
    const dir = await openConfinedDir(realRoot, path.slice(0, -1), { create: false });
    try {
      return await open(entryPath(dir, name), flags | fsc.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err;
      const target = resolve(await readlink(`/proc/self/fd/${dir.fd}`), await readlink(entryPath(dir, name)));
      if (!isInside(target, realRoot)) throw new ConfinementError('escape', `${name} leads outside its folder`);
      path = relative(realRoot, target).split(sep);
    } finally {
      await dir.close();
    }
  }
  throw new ConfinementError('too-many-links', `${root}: too many links`);
}
