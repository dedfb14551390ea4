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
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await syncDir(dirname(dir));
}
