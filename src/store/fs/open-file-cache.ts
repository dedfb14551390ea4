import { lstatSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstat, statfs } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fileVersion, InlineIo, ownedFile, storedFile } from './file-object.js';
import type { FileStoredObject, FileVersion } from './file-object.js';

/** Files kept open per folder, at most. */
const MAX_OPEN = 64;
/** A kept file nobody has asked for in this long is closed (so that a deleted file's space comes back). */
const IDLE_MS = 2000;

/**
 * Local filesystems (`statfs` types, Linux): the metadata of a path just resolved and the pages
 * just read are usually in memory, so a kept file's checks and small reads start inline there
 * ({@link InlineIo}); elsewhere (NFS, SMB, FUSE, or not Linux) they go through the thread pool,
 * since any of them may wait on the network.
 */
const LOCAL_FILESYSTEMS = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs
]);

/** Whether `path` is on a local filesystem of {@link LOCAL_FILESYSTEMS}. */
async function onLocalFilesystem(path: string): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  const fs = await statfs(path).catch(() => undefined);
  return fs !== undefined && LOCAL_FILESYSTEMS.has(fs.type);
}

/** What a path component was when the file was opened: where validation must find it again. */
interface Link {
  readonly path: string;
  readonly dev: bigint;
  readonly ino: bigint;
}

/** An open file kept for the downloads of one path. */
interface Entry {
  readonly key: string;
  readonly handle: FileHandle;
  readonly st: BigIntStats;
  readonly version: FileVersion;
  /** The folders between the root and the file (`root/a`, `root/a/b`), each a real folder then. */
  readonly folders: readonly Link[];
  /** The file's own path. */
  readonly file: string;
  /** Its checks and small reads may run inline (a local filesystem), as {@link OpenFileCache.inline} allows. */
  readonly inline: InlineIo | undefined;
  /** Downloads reading from it now. */
  users: number;
  /** No longer in the cache: closed when its last user is done. */
  dropped: boolean;
  lastUsed: number;
}

function sameFolder(st: BigIntStats | undefined, link: Link): boolean {
  return st !== undefined && st.isDirectory() && st.dev === link.dev && st.ino === link.ino;
}

/** Whether `now` (an `lstat` of the path) is still exactly the file version `then` (its `fstat` when opened). */
function sameVersion(now: BigIntStats | undefined, then: BigIntStats): boolean {
  return (
    now !== undefined &&
    now.isFile() &&
    now.dev === then.dev &&
    now.ino === then.ino &&
    now.size === then.size &&
    now.mtimeNs === then.mtimeNs &&
    now.ctimeNs === then.ctimeNs
  );
}

/**
 * Whether open files may be kept at all: on Windows an open file keeps its name taken (a delete
 * stays pending, a new file of that name cannot be made) until it is closed.
 */
const CAN_KEEP = process.platform !== 'win32';

/** A segment that names one entry of its folder (no `.`, `..`, separator or NUL), as paths to keep must be. */
const plainName = (segment: string): boolean => segment !== '' && segment !== '.' && segment !== '..' && !/[/\0]/.test(segment);

const lstatOrNothing = (path: string): Promise<BigIntStats | undefined> => lstat(path, { bigint: true }).catch(() => undefined);

function lstatOrNothingSync(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** The `lstat` of each of `paths` (undefined where there is nothing, or it failed), inline if `inline` allows. */
async function lstatAll(paths: readonly string[], inline?: InlineIo): Promise<(BigIntStats | undefined)[]> {
  return inline?.enabled ? inline.run(() => paths.map(lstatOrNothingSync)) : Promise.all(paths.map(lstatOrNothing));
}

/**
 * Open files of one folder's downloads, kept between requests so that a GET of a file served a
 * moment ago costs one `lstat` per path component instead of resolving, walking and opening again.
 *
 * A kept file's checks and small reads run inline on local filesystems while they are answered
 * from memory ({@link InlineIo}, one for the folder).
 *
 * A kept file is used only when every component of its path is, right now (`lstat`, no link
 * followed at the end), what it was when the file was opened by the confined walk: the same real
 * folders (no symlink), and the same regular file, same inode, size, modification and change time.
 * A folder swapped for a symlink, a file replaced, rewritten or touched: the path is walked and
 * opened again as on a first request. Paths that ran through a symlink are never kept, nor any file
 * on Windows (where an open file keeps its name from being deleted or replaced). At most
 * {@link MAX_OPEN} files are kept (least recently used first out), and one idle for
 * {@link IDLE_MS} is closed.
 *
 * @example
 * ```ts
 * const cache = new OpenFileCache('/srv/files');
 * const object = (await cache.lookup(['a.bin'])) ?? (await cache.admit(['a.bin'], handle, st));
 * try { ... } finally { await object.close(); }
 * ```
 */
export class OpenFileCache {
  private readonly entries = new Map<string, Entry>();
  /** One for the whole folder: a slow operation on one file says the same of its neighbours. */
  private readonly inline = new InlineIo();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly root: string) {}

  /** The kept file at `segments`, if there is one and it is still what the path names; else undefined. */
  async lookup(segments: readonly string[]): Promise<FileStoredObject | undefined> {
    const key = segments.join('\0');
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    // (counted as a user while it is checked: a drop meanwhile must not close it under us)
    entry.users++;
    const [file, ...folders] = await lstatAll([entry.file, ...entry.folders.map((f) => f.path)], entry.inline);
    if (!sameVersion(file, entry.st) || !entry.folders.every((f, i) => sameFolder(folders[i], f))) {
      this.drop(entry);
      await this.release(entry);
      return undefined;
    }
    entry.lastUsed = Date.now();
    if (this.entries.get(key) === entry) {
      // (most recently used last)
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return this.objectOf(entry);
  }

  /**
   * Keeps `handle` (just opened by the confined walk at `segments`, `st` its `fstat`) for later
   * requests when its path runs through real folders only and still names it; returns it as a
   * stored object either way (closing the object closes the file unless it is kept).
   */
  async admit(segments: readonly string[], handle: FileHandle, st: BigIntStats): Promise<FileStoredObject> {
    if (!CAN_KEEP || segments.length === 0 || !segments.every(plainName)) return ownedFile(handle, st);
    const paths = segments.map((_, i) => join(this.root, ...segments.slice(0, i + 1)));
    const file = paths.pop()!;
    const [fileNow, ...foldersNow] = await lstatAll([file, ...paths]);
    const folders: Link[] = [];
    for (let i = 0; i < paths.length; i++) {
      const now = foldersNow[i];
      if (!now?.isDirectory()) break;
      folders.push({ path: paths[i]!, dev: now.dev, ino: now.ino });
    }
    // (through a symlink, or changed since the walk: served from this open, not kept)
    if (folders.length < paths.length || !sameVersion(fileNow, st)) return ownedFile(handle, st);
    const inline = (await onLocalFilesystem(file)) ? this.inline : undefined;
    const key = segments.join('\0');
    const previous = this.entries.get(key);
    if (previous) this.drop(previous);
    const entry: Entry = { key, handle, st, version: fileVersion(st), folders, file, inline, users: 1, dropped: false, lastUsed: Date.now() };
    this.entries.set(key, entry);
    this.evictBeyondLimit();
    this.sweeper ??= setInterval(() => this.sweep(), IDLE_MS).unref();
    return this.objectOf(entry);
  }

  private objectOf(entry: Entry): FileStoredObject {
    return storedFile(entry.handle, entry.version, () => this.release(entry), entry.inline);
  }

  /** Takes an entry out of the cache; its file closes now, or when its last user is done. */
  private drop(entry: Entry): void {
    if (entry.dropped) return;
    entry.dropped = true;
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    if (this.entries.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
    if (entry.users === 0) void entry.handle.close().catch(() => undefined);
  }

  private async release(entry: Entry): Promise<void> {
    entry.users--;
    if (entry.dropped && entry.users === 0) await entry.handle.close();
  }

  private evictBeyondLimit(): void {
    for (const entry of this.entries.values()) {
      if (this.entries.size <= MAX_OPEN) return;
      this.drop(entry);
    }
  }

  /** Closes the files nobody has used for {@link IDLE_MS}. */
  private sweep(): void {
    const cutoff = Date.now() - IDLE_MS;
    for (const entry of [...this.entries.values()]) {
      if (entry.users === 0 && entry.lastUsed <= cutoff) this.drop(entry);
    }
  }
}
