import { randomBytes } from 'node:crypto';
import { mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { closeFd, fsyncFd, openFd, withFd, writeFd } from './fs-calls.js';

/** Opens, fsyncs and closes `path`. */
async function fsyncPath(path: string, flags: 'r' | 'r+'): Promise<void> {
  await withFd(await openFd(path, flags), fsyncFd);
}

/** Per folder: the fsync running now, and the one queued behind it that later callers share. */
const dirSyncs = new Map<string, { running: Promise<void>; next: Promise<void> | undefined }>();

/**
 * Makes a directory's entries (creations, renames, deletions) durable. Group commit: callers that
 * arrive while a sync of the same folder runs share one more sync, started when it ends, so many
 * sessions created or ended at once cost a few syncs, and each caller still waits for one that
 * began after its change.
 *
 * @example
 * ```ts
 * await syncDir('/var/lib/bits/sessions');
 * ```
 */
export function syncDir(dir: string): Promise<void> {
  const current = dirSyncs.get(dir);
  if (current) {
    current.next ??= current.running.catch(() => undefined).then(() => runDirSync(dir));
    return current.next;
  }
  return runDirSync(dir);
}

function runDirSync(dir: string): Promise<void> {
  const entry: { running: Promise<void>; next: Promise<void> | undefined } = { running: fsyncPath(dir, 'r'), next: undefined };
  dirSyncs.set(dir, entry);
  const done = (): void => {
    if (dirSyncs.get(dir) === entry) dirSyncs.delete(dir);
  };
  entry.running.then(done, done);
  return entry.running;
}

/**
 * Makes a file's content durable (fsync): for files written by someone else, or through a stream
 * that has already closed its descriptor.
 *
 * @example
 * ```ts
 * await syncFile('/state/sessions/ABC/reply.bin');
 * ```
 */
export function syncFile(path: string): Promise<void> {
  // 'r+' rather than 'r': some platforms refuse to fsync a descriptor opened read-only.
  return fsyncPath(path, 'r+');
}

/** Options of {@link writeFileAtomic} and {@link commitAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Carry on when the directory cannot be fsynced (some platforms and filesystems refuse it). The
   * rename is then atomic but its durability is the filesystem's. The server's state never sets
   * this: an Ack must not rest on an entry that may vanish.
   */
  readonly tolerateDirSync?: boolean | undefined;
  /**
   * A temp name unique to this write, for files that several processes may write at once (a
   * client's job journal). Otherwise the temp name is fixed, so debris of a crash is overwritten by
   * the next write rather than accumulating.
   */
  readonly uniqueTemp?: boolean | undefined;
}

/**
 * The second half of an atomic write: renames a complete, fsynced `tmp` over `path` and makes the
 * rename durable.
 *
 * @example
 * ```ts
 * await pipeline(source, createWriteStream(tmp));
 * await syncFile(tmp);
 * await commitAtomic(tmp, '/state/sessions/ABC/reply.bin');
 * ```
 */
export async function commitAtomic(tmp: string, path: string, options: AtomicWriteOptions = {}): Promise<void> {
  await rename(tmp, path);
  try {
    await syncDir(dirname(path));
  } catch (err) {
    if (!options.tolerateDirSync) throw err;
  }
}

/** Creates `path` empty (truncating what is there), mode 0600, without syncing anything. */
export async function createEmptyFile(path: string): Promise<void> {
  await closeFd(await openFd(path, 'w', 0o600));
}

/**
 * Writes a file atomically and durably: temp file, fsync, rename over the target, fsync the directory.
 * A crash leaves either the old content or the new, never a mix.
 *
 * @example
 * ```ts
 * await writeFileAtomic('/state/s/record.json', JSON.stringify(record));
 * await writeFileAtomic('/home/me/.local/state/bits/jobs/0a1b.json', text, { tolerateDirSync: true, uniqueTemp: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Buffer, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = options.uniqueTemp ? `${path}.${randomBytes(4).toString('hex')}.tmp` : `${path}.tmp`;
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  await withFd(await openFd(tmp, 'w', 0o600), async (fd) => {
    for (let done = 0; done < bytes.length; ) done += await writeFd(fd, bytes, done, done);
    await fsyncFd(fd);
  });
  await commitAtomic(tmp, path, options);
}

/**
 * Creates a directory (and its parents) and syncs the parent so the entry survives a crash. A
 * directory that is already there is left as it is: whoever created it made it durable. `then`,
 * when given, runs (writing inside the folder) while that sync is under way; both are done when
 * this resolves.
 *
 * @example
 * ```ts
 * await mkdirDurable('/state/sessions/ABC');
 * await mkdirDurable('/state/sessions/DEF', () => writeFileAtomic('/state/sessions/DEF/record.json', text));
 * ```
 */
export async function mkdirDurable(dir: string, then?: () => Promise<void>): Promise<void> {
  const created = await makeDir(dir);
  // (the new entry's sync and the writes inside the folder need not wait for each other)
  await Promise.all([created ? syncDir(dirname(dir)) : undefined, then?.()]);
}

/**
 * mkdir -p, one level at a time: a recursive mkdir reports a full inode table as ENOENT, which
 * would hide disk full (D9). True when it created `dir`.
 */
async function makeDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: 0o700 });
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    if (await makeDir(dirname(dir))) await syncDir(dirname(dirname(dir)));
    return mkdir(dir, { mode: 0o700 }).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
        return false;
      },
    );
  }
}
