import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isProcessAlive } from '../store/fs/process-alive.js';

/**
 * One agent per state directory: `agent.pid` holds the owner's PID, created atomically (a hard link
 * of a complete temp file, which fails when the lock exists). A lock whose process is gone (the agent
 * was killed) is taken over.
 *
 * @example
 * ```ts
 * const lock = await StateDirLock.acquire('/state/agent');
 * await lock.release();
 * ```
 */
export class StateDirLock {
  private constructor(private readonly path: string) {}

  /**
   * @throws {Error} when a live process holds the lock.
   */
  static async acquire(dir: string): Promise<StateDirLock> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'agent.pid');
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await link(tmp, path);
          return new StateDirLock(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const text = await readFile(path, 'utf8').catch(() => '');
        const pid = Number.parseInt(text, 10);
        if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) {
          throw new Error(`another agent (process ${pid}) owns ${dir}`);
        }
        // The owner is gone: take the lock over (only if it is still the one read).
        if ((await readFile(path, 'utf8').catch(() => '')) === text) await rm(path, { force: true });
      }
      throw new Error(`cannot take the lock ${path}`);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
