import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder under the system temp directory, and its removal. */
export interface TempDir {
  readonly path: string;
  /** Removes the folder and everything in it (no error when it is already gone). */
  cleanup(): Promise<void>;
}

/**
 * Creates a fresh temp folder whose name starts with `prefix`.
 *
 * @example
 * ```ts
 * const dir = await tempDir('bits-store-');
 * after(() => dir.cleanup());
 * ```
 */
export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
