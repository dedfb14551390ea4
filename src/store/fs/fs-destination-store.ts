import type { BigIntStats } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BitsError } from '../../protocol/errors.js';
import type { DestinationStore, StoredObject } from '../types.js';
import { ConfinementError, canWalkByDescriptor, openConfinedFile } from './confined.js';
import { isMissingFile, READ_FLAGS, regularFileStat } from './file-object.js';
import { OpenFileCache } from './open-file-cache.js';
import { isInside } from './is-inside.js';
import { lstatIfAny } from './fs-calls.js';

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A vdir's local folder as a {@link DestinationStore}: names are absolute paths, checked to stay
 * inside the folder even through symlinks (D23), and downloads open files through directory
 * descriptors where the platform has them, so a folder swapped for a symlink cannot redirect a read.
 * Uploads are placed here by the filesystem byte store's commit.
 *
 * @example
 * ```ts
 * const uploads = new FsDestinationStore('/srv/uploads');
 * await uploads.resolve(['crash', 'dump.bin']); // '/srv/uploads/crash/dump.bin'
 * ```
 */
export class FsDestinationStore implements DestinationStore {
  /** Files opened for downloads, kept (and checked again on every use) for the next GET of the same path. */
  private readonly openFiles: OpenFileCache;
  /** The root's real path and the identity of the folder it names (see {@link FsDestinationStore.realRoot}). */
  private rootIdentity: { path: string; dev: number; ino: number } | undefined;

  constructor(readonly root: string) {
    this.openFiles = new OpenFileCache(root);
  }

  get name(): string {
    return this.root;
  }

  async resolve(path: readonly string[]): Promise<string> {
    return (await this.inspect(path)).target;
  }

  async exists(path: readonly string[]): Promise<boolean> {
    return (await this.inspect(path)).found;
  }

  /**
   * Where `path` lands and whether something is there, checked to stay inside the folder: one
   * `lstat` of the target, one `stat` of the root (its real path is kept while it is the same
   * folder), and a `realpath` only of what can lead elsewhere (a symlink, a subfolder).
   */
  private async inspect(path: readonly string[]): Promise<{ target: string; found: boolean }> {
    if (path.length === 0) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', '/ is a directory');
    try {
      return await this.inspectBelow(path, await this.realRoot(false));
    } catch (err) {
      // The same folder may have moved (a release directory renamed, its link re-pointed): a
      // refusal is only final against the root's real path worked out afresh.
      if (!(err instanceof BitsError && err.code === 'BITS_BAD_PATH')) throw err;
      return await this.inspectBelow(path, await this.realRoot(true));
    }
  }

  private async inspectBelow(path: readonly string[], real: string | undefined): Promise<{ target: string; found: boolean }> {
    const root = this.root;
    const shown = '/' + path.join('/');
    const target = join(root, ...path);
    const realRoot = real ?? root; // not created yet: nothing below it can be a symlink either
    const st = await lstatIfAny(target).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOTDIR') throw new BitsError('BITS_BAD_PATH', `a parent of ${shown} is a file`);
      throw err;
    });
    if (st?.isSymbolicLink()) {
      // Where the link leads, parents and all.
      const real = await realpath(target).catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT') throw new BitsError('BITS_BAD_PATH', `${shown} is a dangling link`);
        throw err;
      });
      if (!isInside(real, realRoot)) throw new BitsError('BITS_BAD_PATH', `${shown} resolves outside its vdir`);
      return { target, found: true };
    }
    await this.checkAncestors(dirname(target), shown, realRoot);
    if (st?.isDirectory()) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${shown} is a directory`);
    return { target, found: st !== undefined };
  }

  /** Checks that the deepest existing ancestor of a target, from `dir` up, really is inside the folder. */
  private async checkAncestors(dir: string, shown: string, realRoot: string): Promise<void> {
    // (the root as join writes it, without a trailing separator; walking above it means it does not exist yet)
    const top = join(this.root, '.');
    for (let probe = dir; probe !== top && isInside(probe, top); ) {
      try {
        const real = await realpath(probe);
        if (!isInside(real, realRoot)) throw new BitsError('BITS_BAD_PATH', `${shown} resolves outside its vdir`);
        return;
      } catch (err) {
        if (err instanceof BitsError) throw err;
        const code = errnoCode(err);
        if (code === 'ENOTDIR') throw new BitsError('BITS_BAD_PATH', `a parent of ${shown} is a file`);
        if (code !== 'ENOENT') throw err;
        // A dangling symlink on the way would be followed by nothing we do, but refuse it anyway.
        const st = await lstat(probe).catch(() => undefined);
        if (st?.isSymbolicLink()) throw new BitsError('BITS_BAD_PATH', `${shown} is a dangling link`);
        probe = dirname(probe);
      }
    }
  }

  /**
   * The real path of the root, or `undefined` while it does not exist. Kept for as long as the root
   * leads to the same folder (its device and inode, one `stat` per call); worked out again when
   * something on the way was swapped, or when `fresh`.
   */
  private async realRoot(fresh: boolean): Promise<string | undefined> {
    const st = await stat(this.root).catch(() => undefined);
    if (!st) return undefined;
    const kept = this.rootIdentity;
    if (!fresh && kept && kept.dev === st.dev && kept.ino === st.ino) return kept.path;
    const path = await realpath(this.root).catch(() => undefined);
    if (path === undefined) return undefined;
    // (the identity of what the real path names, not of what the stat above saw: they may differ if a swap fell between)
    const real = await stat(path).catch(() => undefined);
    this.rootIdentity = real && { path, dev: real.dev, ino: real.ino };
    return path;
  }

  async open(path: readonly string[]): Promise<StoredObject | undefined> {
    const kept = await this.openFiles.lookup(path);
    if (kept) return kept;
    const target = await this.resolve(path);
    let handle: FileHandle;
    let st: BigIntStats | undefined;
    try {
      handle = canWalkByDescriptor ? await openConfinedFile(this.root, path, READ_FLAGS) : await open(target, READ_FLAGS);
      st = await regularFileStat(handle);
    } catch (err) {
      if (err instanceof ConfinementError || isMissingFile(err)) return undefined;
      throw err;
    }
    return st && this.openFiles.admit(path, handle, st);
  }
}
