import { constants as fsc, createReadStream } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ByteState, ByteStore, LocalFiles, ProgressTracking, StoredObject, StoredUpload, UploadTarget, WriteOptions, WriteResult } from '../types.js';
import { ConfinementError, canWalkByDescriptor, entryPath, openConfinedDir, stillInside } from './confined.js';
import { DestinationExistsError } from '../types.js';
import { DataFiles } from './data-files.js';
import { commitAtomic, createEmptyFile, mkdirDurable, syncDir, syncFile, writeFileAtomic } from './durable.js';
import { fileObject } from './file-object.js';
import { FsDestinationStore } from './fs-destination-store.js';
import { lstatIfAny, readdirIfAny } from './fs-calls.js';
import { DATA_FILE, PLACED_FILE, REPLY_FILE, requireSessionDir, sessionDir } from './layout.js';

/**
 * Upload bytes as one file per session under the state directory. Writes are streamed with
 * backpressure and fdatasync'ed once before they are reported, a progress mark in the same file
 * making the new length durable with them (so the record need not be rewritten per fragment);
 * commits are atomic renames (or links, when overwriting is not allowed, so an existing
 * destination is never replaced).
 *
 * @example
 * ```ts
 * const bytes = new FsByteStore('/var/lib/bits');
 * await bytes.open(id);
 * const { written, tracked } = await bytes.write(upload, 0, req.body, { total, length });
 * await bytes.progress.seal(upload, total); // once the record says it is complete
 * await bytes.commit(upload, { destinations, path: ['dump.bin'] }, { overwrite: false });
 * ```
 */
export class FsByteStore implements ByteStore {
  private readonly data = new DataFiles();

  constructor(private readonly stateDir: string) {}

  async open(id: string, _target?: UploadTarget): Promise<ByteState | undefined> {
    const dir = this.dirOf(id);
    const create = (): Promise<void> => createEmptyFile(join(dir, DATA_FILE));
    // (the session's folder is normally there already: its record was written first)
    await create().catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdirDurable(dir);
      await create();
    });
    // An empty file needs no sync of its own: its entry's, below, makes it durable.
    await syncDir(dir);
    return undefined;
  }

  async write(upload: StoredUpload, offset: number, source: Readable, options: WriteOptions = {}): Promise<WriteResult> {
    return this.data.write(upload.id, this.dataOf(upload.id), offset, source, options);
  }

  /** The store keeps each upload's durable length in its data file (progress marks). */
  readonly progress: ProgressTracking = {
    recover: (upload, recorded) => this.data.recover(upload.id, this.dataOf(upload.id), recorded),
    seal: (upload, length) => this.data.seal(upload.id, this.dataOf(upload.id), length),
  };

  async close(): Promise<void> {
    await this.data.close();
  }

  async commit(upload: StoredUpload, target: UploadTarget, options: { overwrite: boolean }): Promise<void> {
    const { id } = upload;
    // (normally sealed already, once its record said it is complete)
    await this.data.sealKnown(id, this.dataOf(id));
    await this.data.forget(id);
    if (!(target.destinations instanceof FsDestinationStore)) {
      throw new Error(`the filesystem byte store places uploads in local folders, not in ${target.destinations.name}`);
    }
    const destination = { root: target.destinations.root, path: target.path };
    const name = destination.path.at(-1);
    if (name === undefined) throw new Error('a destination needs a file name');
    const folders = destination.path.slice(0, -1);
    if (!canWalkByDescriptor) {
      // No descriptor walk here: place by path, then make sure the folder did not move outside.
      const parent = join(destination.root, ...folders);
      await mkdir(parent, { recursive: true });
      await this.commitIn(id, (n) => join(parent, n), () => syncDir(parent), name, options);
      if (!(await stillInside(destination.root, join(parent, name)))) {
        await unlink(join(parent, name)).catch(() => undefined);
        throw new ConfinementError('escape', `${join(...destination.path)} was moved outside ${destination.root}`);
      }
      return;
    }
    const dir = await openConfinedDir(destination.root, folders, { create: true });
    try {
      await this.commitIn(id, (n) => entryPath(dir, n), () => dir.sync(), name, options);
    } finally {
      await dir.close();
    }
  }

  /**
   * Places the upload as `name` in the folder that `at` reaches (`at(n)` is the path of entry `n`;
   * `sync` makes that folder's entries durable). The session's copy is removed only once the
   * destination's entry is durable, so a power loss never leaves neither.
   */
  private async commitIn(
    id: string,
    at: (name: string) => string,
    sync: () => Promise<void>,
    name: string,
    options: { overwrite: boolean },
  ): Promise<void> {
    const data = this.dataOf(id);
    const target = at(name);
    const tmp = at(`.bits-${basename(this.dirOf(id))}.part`);
    // A resent Close after a crash part way through an earlier commit finishes that commit.
    if (await this.finishPlaced(id, target, tmp, sync)) return;
    // A commit resent after one that completed: the data has left the session and is in place.
    if (!(await stat(data).catch(() => undefined)) && (await lstat(target).catch(() => undefined))?.isFile()) return;
    try {
      await this.place(data, target, options.overwrite, sync);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    }
    // Different filesystems: copy next to the destination under a hidden name, then place it.
    try {
      await this.copyBeside(data, tmp);
      await this.place(tmp, target, options.overwrite, sync);
    } catch (err) {
      await rm(join(this.dirOf(id), PLACED_FILE), { force: true });
      await rm(tmp, { force: true });
      throw err;
    }
    await rm(data, { force: true });
  }

  /**
   * Copies the upload to `tmp` (a name in the destination folder, which others may write to): an
   * exclusive, no-follow create, so a file or symlink planted there is never written through. The
   * copy's identity goes to a marker, so a resend can tell our file at the destination from another.
   */
  private async copyBeside(data: string, tmp: string): Promise<void> {
    await rm(tmp, { force: true });
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
    try {
      await pipeline(createReadStream(data), fh.createWriteStream({ autoClose: false }));
      await fh.sync();
      const st = await fh.stat();
      await writeFileAtomic(join(dirname(data), PLACED_FILE), JSON.stringify({ dev: st.dev, ino: st.ino }));
    } finally {
      await fh.close();
    }
  }

  /**
   * Whether `target` already is this session's upload, placed by an earlier commit that did not
   * finish (the same inode as the data file, or as the cross-device copy named in the marker); if
   * so, removes what that commit left behind.
   */
  private async finishPlaced(id: string, target: string, tmp: string, sync: () => Promise<void>): Promise<boolean> {
    const placed = await lstatIfAny(target).catch(() => undefined);
    if (!placed?.isFile()) return false;
    const data = await stat(this.dataOf(id)).catch(() => undefined);
    const marker = await readFile(join(this.dirOf(id), PLACED_FILE), 'utf8').then(
      (t) => JSON.parse(t) as { dev: number; ino: number },
      () => undefined,
    );
    const same = (a: { dev: number; ino: number } | undefined): boolean => a !== undefined && a.dev === placed.dev && a.ino === placed.ino;
    if (!same(data) && !same(marker)) return false;
    await sync();
    await rm(tmp, { force: true });
    await rm(this.dataOf(id), { force: true });
    return true;
  }

  async exists(upload: StoredUpload): Promise<boolean> {
    const dir = sessionDir(this.stateDir, upload.id);
    if (!dir) return false;
    return stat(join(dir, DATA_FILE)).then(
      () => true,
      () => false,
    );
  }

  openRead(upload: StoredUpload): Readable {
    const length = this.data.knownLength(upload.id);
    // (marks past the data, if any, are not the upload's)
    if (length === 0) return Readable.from([]);
    return createReadStream(this.dataOf(upload.id), length === undefined ? {} : { end: length - 1 });
  }

  async openReply(upload: StoredUpload): Promise<StoredObject | undefined> {
    const path = this.replyFile(upload.id);
    if (!path) return undefined;
    const handle = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | (fsc.O_NONBLOCK ?? 0)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ELOOP') return undefined;
      throw err;
    });
    return handle && fileObject(handle);
  }

  /** The session's data and reply as local files (by-reference notification). */
  readonly local: LocalFiles = {
    dataPath: (upload) => {
      const dir = sessionDir(this.stateDir, upload.id);
      return dir && join(dir, DATA_FILE);
    },
    replyPath: (upload) => this.replyFile(upload.id),
    adoptReply: async (upload) => {
      const path = join(this.dirOf(upload.id), REPLY_FILE);
      const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!st) return this.writeReply(upload, Readable.from([]));
      try {
        // Whatever else the application left there (a folder, a FIFO, a link) is no reply.
        if (!st.isFile()) throw new Error('the reply is not a regular file');
        await syncFile(path);
        return st.size;
      } catch (err) {
        await rm(path, { recursive: true, force: true });
        throw err;
      }
    },
    removeReply: async (upload) => {
      const path = this.replyFile(upload.id);
      if (path) await rm(path, { recursive: true, force: true });
    },
  };

  private replyFile(id: string): string | undefined {
    const dir = sessionDir(this.stateDir, id);
    return dir && join(dir, REPLY_FILE);
  }

  async writeReply(upload: StoredUpload, source: Readable): Promise<number> {
    const target = join(this.dirOf(upload.id), REPLY_FILE);
    const tmp = `${target}.tmp`;
    // Opened before a byte is piped, so the removal below can never run ahead of a pending open.
    const sink = (await open(tmp, 'w', 0o600)).createWriteStream();
    try {
      await pipeline(source, sink); // (which closes the file, also when it fails)
      await syncFile(tmp);
      await commitAtomic(tmp, target);
      return sink.bytesWritten;
    } catch (err) {
      // A failed reply (source cut, over its limit, disk full) leaves nothing behind.
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async discard(upload: StoredUpload): Promise<void> {
    const dir = sessionDir(this.stateDir, upload.id);
    if (!dir) return;
    await this.data.forget(upload.id);
    // Only what is there: one listing, rather than a failed removal of each file that never was.
    const names = await readdirIfAny(dir);
    const ours = new Set([DATA_FILE, REPLY_FILE, `${REPLY_FILE}.tmp`]);
    await Promise.all(names.filter((n) => ours.has(n)).map((name) => rm(join(dir, name), { recursive: true, force: true })));
  }

  /**
   * rename (replacing) or link + unlink (never replacing) `from` to `to`; `from` goes only after the
   * new entry is durable.
   */
  private async place(from: string, to: string, overwrite: boolean, sync: () => Promise<void>): Promise<void> {
    if (overwrite) {
      await rename(from, to);
      await sync();
      return;
    }
    try {
      await link(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new DestinationExistsError(to);
      throw err;
    }
    await sync();
    await unlink(from);
  }

  private dirOf(id: string): string {
    return requireSessionDir(this.stateDir, id);
  }

  private dataOf(id: string): string {
    return join(this.dirOf(id), DATA_FILE);
  }
}
