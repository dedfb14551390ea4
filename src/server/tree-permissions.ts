import { readdir, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join } from 'node:path';

/** Folders below a vdir's folder looked at, at most (a start-up check, not an audit). */
const SUBTREE_LIMIT = 1000;

function problemOf(d: string, st: Stats, me: number): string | undefined {
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky) return `${d} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'}`;
  if (me !== -1 && st.uid !== me && st.uid !== 0) return `${d} belongs to another user (uid ${st.uid})`;
  return undefined;
}

/**
 * Why other local users could change the served folder `dir`, if they can: the folder, one of its
 * (real) parents or one of its first {@link SUBTREE_LIMIT} subfolders is writable by group or
 * others (without the sticky bit) or owned by another user than us or root. Such users could swap
 * a folder for a symlink under the server (sshd's StrictModes idea).
 *
 * @example
 * ```ts
 * for (const why of await foreignWritable('/srv/uploads')) logger.warn(why);
 * ```
 */
export async function foreignWritable(dir: string): Promise<string[]> {
  const me = process.getuid?.() ?? -1;
  const problems: string[] = [];
  const root = await realpath(dir);
  for (let d = dirname(root); ; d = dirname(d)) {
    const st = await stat(d).catch(() => undefined);
    const problem = st && problemOf(d, st, me);
    if (problem) problems.push(problem);
    if (dirname(d) === d) break;
  }
  const queue = [root];
  for (let seen = 0; queue.length > 0 && seen < SUBTREE_LIMIT; seen++) {
    const d = queue.shift()!;
    const st = await stat(d).catch(() => undefined);
    const problem = st && problemOf(d, st, me);
    if (problem) problems.push(problem);
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) queue.push(join(d, e.name));
  }
  return problems;
}
