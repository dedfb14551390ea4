import type { BigIntStats } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BitsError } from '../../protocol/errors.js';
import type { DestinationStore, StoredObject } from '../types.js';
import { ConfinementError, canWalkByDescriptor, openConfinedFile } from './confined.js';
import { isMissingFile, READ_FLAGS, regularFileStat } from './file-object.js';
import { OpenFileCache } from './open-file-cache.js';
import { isInside } from './is-inside.js';


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

  constructor(readonly root: string) {
    this.openFiles = new OpenFileCache(root);
  }

  get name(): string {
    return this.root;
  }

  async resolve(path: readonly string[]): Promise<string> {
    const root = this.root;
    const shown = '/' + path.join('/');
    if (path.length === 0) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${shown} is a directory`);
    const target = join(root, ...path);
    let realRoot: string;
    try {
      realRoot = await realpath(root);
    } catch {
      realRoot = root; // not created yet: nothing below it can be a symlink either
    }
    // Resolve the deepest existing ancestor (or the target itself) and check where it really is.
    let probe = target;
    for (;;) {
      try {
        const real = await realpath(probe);
        if (!isInside(real, realRoot)) throw new BitsError('BITS_BAD_PATH', `${shown} resolves outside its vdir`);
        break;
      } catch (err) {
        if (err instanceof BitsError) throw err;
        const code = errnoCode(err);
        if (code === 'ENOENT') {
          // A dangling symlink at the target would be followed by nothing we do, but refuse it anyway.
          const st = await lstat(probe).catch(() => undefined);
          if (st?.isSymbolicLink()) throw new BitsError('BITS_BAD_PATH', `${shown} is a dangling link`);
          if (probe === root || dirname(probe) === probe) break;
          probe = dirname(probe);
          continue;
        }
        if (code === 'ENOTDIR') throw new BitsError('BITS_BAD_PATH', `a parent of ${shown} is a file`);
        throw err;
      }
    }
    const st = await lstat(target).catch(() => undefined);
    if (st?.isDirectory()) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${shown} is a directory`);
    return target;
  }

  async exists(path: readonly string[]): Promise<boolean> {
    return lstat(await this.resolve(path)).then(
      () => true,
      () => false,
    );
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
