import { lstat, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isInside } from '../store/fs/is-inside.js';
import { BitsError } from '../protocol/errors.js';
import { errnoOf } from './storage-error.js';
import type { VdirConfig } from './config.js';

/** A request path matched to its virtual directory. */
export interface Location {
  readonly vdir: VdirConfig;
  /** Decoded path segments below the vdir (empty for the vdir itself). */
  readonly segments: readonly string[];
  /** The decoded, normalised URL path (`/uploads/a/b.bin`): the session's identity of its destination. */
  readonly urlPath: string;
}

const FORBIDDEN = /[\\\0:]|^\.\.?$/;

/**
 * Splits and percent-decodes a request path (D23): `..` and `.` segments, NUL, backslashes and
 * colons (drive letters, alternate streams) are refused; empty segments are dropped.
 *
 * @throws {BitsError} `BITS_BAD_PATH`.
 * @example
 * ```ts
 * decodePath('/up/a%20b.bin'); // ['up', 'a b.bin']
 * ```
 */
function decodePath(rawPath: string): string[] {
  const out: string[] = [];
  for (const raw of rawPath.split('/')) {
    if (raw === '') continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw new BitsError('BITS_BAD_PATH', `cannot decode path segment "${raw}"`);
    }
    if (seg.includes('/') || FORBIDDEN.test(seg) || Buffer.byteLength(seg) > 255) {
      throw new BitsError('BITS_BAD_PATH', `path segment "${seg}" is not allowed`);
    }
    out.push(seg);
  }
  return out;
}


/**
 * The virtual directories of a server: maps request paths to vdirs (longest prefix wins, compared
 * case-insensitively) and to confined filesystem paths.
 *
 * @example
 * ```ts
 * const table = new VdirTable(config.vdirs);
 * const loc = table.locate('/uploads/dump.bin');
 * const file = await table.destination(loc!);
 * ```
 */
export class VdirTable {
  private readonly entries: { vdir: VdirConfig; segments: string[] }[];

  constructor(vdirs: readonly VdirConfig[]) {
    this.entries = vdirs
      .map((vdir) => ({ vdir, segments: vdir.path.split('/').filter(Boolean).map((s) => s.toLowerCase()) }))
      .sort((a, b) => b.segments.length - a.segments.length);
  }

  /**
   * The vdir a request path falls under, or `undefined` when none does.
   *
   * @throws {BitsError} `BITS_BAD_PATH` for paths that cannot be decoded or are not allowed.
   */
  locate(rawPath: string): Location | undefined {
    const segments = decodePath(rawPath);
    const lower = segments.map((s) => s.toLowerCase());
    for (const e of this.entries) {
      if (e.segments.length <= lower.length && e.segments.every((s, i) => s === lower[i])) {
        return { vdir: e.vdir, segments: segments.slice(e.segments.length), urlPath: '/' + segments.join('/') };
      }
    }
    return undefined;
  }

  /**
   * The filesystem path of a location, checked to stay inside its vdir's directory even through
   * symlinks (D23). Does not require the file to exist.
   *
   * @throws {BitsError} `BITS_BAD_PATH` when it would escape, `BITS_DESTINATION_IS_DIRECTORY` when
   * it names a directory (including the vdir itself).
   */
  async destination(loc: Location): Promise<string> {
    const root = loc.vdir.directory;
    if (loc.segments.length === 0) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${loc.urlPath} is a directory`);
    const target = join(root, ...loc.segments);
    let realRoot: string;
    try {
      realRoot = await realpath(root);
    } catch {
      realRoot = root; // not created yet: nothing below it can be a symlink either
    }
    // Resolve the deepest existing ancestor (or the target itself) and check where it really is.
    let probe = target;
    for (;;) {
      try {
        const real = await realpath(probe);
        if (!isInside(real, realRoot)) throw new BitsError('BITS_BAD_PATH', `${loc.urlPath} resolves outside its vdir`);
        break;
      } catch (err) {
        if (err instanceof BitsError) throw err;
        const code = errnoOf(err);
        if (code === 'ENOENT') {
          // A dangling symlink at the target would be followed by nothing we do, but refuse it anyway.
          const st = await lstat(probe).catch(() => undefined);
          if (st?.isSymbolicLink()) throw new BitsError('BITS_BAD_PATH', `${loc.urlPath} is a dangling link`);
          if (probe === root || dirname(probe) === probe) break;
          probe = dirname(probe);
          continue;
        }
        if (code === 'ENOTDIR') throw new BitsError('BITS_BAD_PATH', `a parent of ${loc.urlPath} is a file`);
        throw err;
      }
    }
    const st = await lstat(target).catch(() => undefined);
    if (st?.isDirectory()) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${loc.urlPath} is a directory`);
    return target;
  }
}
