import { BitsError } from '../protocol/errors.js';
import { FsDestinationStore } from '../store/fs/fs-destination-store.js';
import type { DestinationStore } from '../store/types.js';
import type { VdirConfig } from './config.js';

/** A request path matched to its virtual directory. */
export interface Location {
  readonly vdir: VdirConfig;
  /** Decoded path segments below the vdir (empty for the vdir itself). */
  readonly segments: readonly string[];
  /** The decoded, normalised URL path (`/uploads/a/b.bin`): the session's identity of its destination. */
  readonly urlPath: string;
  /** Where the vdir's uploads land and its downloads come from. */
  readonly destinations: DestinationStore;
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


/** Makes the destination store of a vdir. */
export type DestinationFactory = (vdir: VdirConfig) => DestinationStore;

/** A vdir's local folder (the default {@link DestinationFactory}). */
export const localFolder: DestinationFactory = (vdir) => {
  if (vdir.directory === undefined) throw new Error(`vdir ${vdir.path} has no local directory`);
  return new FsDestinationStore(vdir.directory);
};

/**
 * The virtual directories of a server: maps request paths to vdirs (longest prefix wins, compared
 * case-insensitively), each with its destination store.
 *
 * @example
 * ```ts
 * const table = new VdirTable(config.vdirs);
 * const loc = table.locate('/uploads/dump.bin');
 * const name = await loc!.destinations.resolve(loc!.segments); // '/srv/uploads/dump.bin'
 * ```
 */
export class VdirTable {
  private readonly entries: { vdir: VdirConfig; segments: string[]; destinations: DestinationStore }[];

  constructor(vdirs: readonly VdirConfig[], destinations: DestinationFactory = localFolder) {
    this.entries = vdirs
      .map((vdir) => ({ vdir, segments: vdir.path.split('/').filter(Boolean).map((s) => s.toLowerCase()), destinations: destinations(vdir) }))
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
        return { vdir: e.vdir, segments: segments.slice(e.segments.length), urlPath: '/' + segments.join('/'), destinations: e.destinations };
      }
    }
    return undefined;
  }
}
