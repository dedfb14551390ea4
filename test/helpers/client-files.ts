import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `size` random bytes to `path` (in 1 MiB pieces); resolves with their sha256. */
export async function randomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    let left = size;
    while (left > 0) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024));
      hash.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** sha256 of a file. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The job ids journaled in a state directory. */
export async function journaledJobs(stateDir: string): Promise<string[]> {
  try {
    return (await readdir(join(stateDir, 'jobs'))).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  } catch {
    return [];
  }
}
