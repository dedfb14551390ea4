import { open, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Makes a directory's entries (creations, renames, deletions) durable.
 *
 * @example
 * ```ts
 * await syncDir('/var/lib/bits/sessions');
 * ```
 */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes a file atomically and durably: temp file, fsync, rename over the target, fsync the directory.
 * A crash leaves either the old content or the new, never a mix.
 *
 * @example
 * ```ts
 * await writeFileAtomic('/state/s/record.json', JSON.stringify(record));
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
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
