import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Claims a state directory for this process with a pid file, so two servers never share one
 * (the fs store's session locks are in-process). A pid file left by a dead process is taken over.
 *
 * @throws when another live process holds the directory.
 * @example
 * ```ts
 * const release = await acquireStateDir('./data/.bits');
 * // ... on shutdown:
 * await release();
 * ```
 */
export async function acquireStateDir(stateDir: string): Promise<() => Promise<void>> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, 'server.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(`state directory ${stateDir} is in use by process ${pid}`);
      }
      await rm(file, { force: true });
    }
  }
  throw new Error(`cannot claim state directory ${stateDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
