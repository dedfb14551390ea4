import { isAbsolute, relative, sep } from 'node:path';

/**
 * Whether `child` is `parent` or lies below it, judged on the two absolute paths as written (no
 * symlinks resolved). A name that merely starts with two dots (`..x`) is inside; only a `..`
 * segment leaves.
 *
 * @example
 * ```ts
 * isInside('/srv/up/..x/f', '/srv/up'); // true
 * isInside('/srv/up/../f', '/srv/up');  // false
 * ```
 */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
}
