import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * Why other local users could change the folder `dir` (or one of its parents), if they can: a
 * folder writable by group or others (without the sticky bit), or owned by another user than us
 * or root. Such users could swap a folder for a symlink under the server (sshd's StrictModes idea).
 *
 * @example
 * ```ts
 * for (const why of await foreignWritable('/srv/uploads')) logger.warn(why);
 * ```
 */
export async function foreignWritable(dir: string): Promise<string[]> {
  const me = process.getuid?.() ?? -1;
  const problems: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = await stat(d).catch(() => undefined);
    if (st) {
      const sticky = (st.mode & 0o1000) !== 0;
      if ((st.mode & 0o022) !== 0 && !sticky) problems.push(`${d} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'}`);
      if (me !== -1 && st.uid !== me && st.uid !== 0) problems.push(`${d} belongs to another user (uid ${st.uid})`);
    }
    if (dirname(d) === d) return problems;
  }
}
