import { randomBytes } from 'node:crypto';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Opens, fsyncs and closes `path`. */
async function fsyncPath(path: string, flags: 'r' | 'r+'): Promise<void> {
  const fh = await open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes a directory's entries (creations, renames, deletions) durable.
 *
 * @example
 * ```ts
 * await syncDir('/var/lib/bits/sessions');
 * ```
 */
export function syncDir(dir: string): Promise<void> {
  return fsyncPath(dir, 'r');
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
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await commitAtomic(tmp, path, options);
}

/**
 * Creates a directory (and its parents) and syncs the parent so the entry survives a crash.
 *
 * @example
 * ```ts
 * await mkdirDurable('/state/sessions/ABC');
 * ```
 */
export async function mkdirDurable(dir: string): Promise<void> {
  await makeDir(dir);
  await syncDir(dirname(dir));
}

/**
 * mkdir -p, one level at a time: a recursive mkdir reports a full inode table as ENOENT, which
 * would hide disk full (D9).
 */
async function makeDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    await makeDir(dirname(dir));
    await mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}
