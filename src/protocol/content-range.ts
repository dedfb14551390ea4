import { BitsError } from './errors.js';

/** A parsed Fragment `Content-Range`: bytes `first..last` (inclusive) of a `total`-byte entity. */
export interface FragmentRange {
  /** Zero-based offset of the first byte. 0 for the empty range of a zero-length upload. */
  readonly first: number;
  /** Zero-based offset of the last byte; `first - 1` for the empty range of a zero-length upload. */
  readonly last: number;
  /** Size of the whole entity. */
  readonly total: number;
  /** Number of bytes in the range (`last - first + 1`). */
  readonly length: number;
}

const DIGITS = /^\d{1,16}$/;
const RANGE = /^bytes[ \t]+(\d+)-(\d+)\/(\d+)$/i;
const EMPTY = /^bytes[ \t]+(?:\*|0--1)\/0$/i;

function toSafeInt(text: string, raw: string): number {
  const n = DIGITS.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new BitsError('BITS_BAD_CONTENT_RANGE', `Content-Range number out of range: "${raw}"`);
  }
  return n;
}

/**
 * Parses a Fragment `Content-Range` (RFC 2616 §14.16 syntax, case-insensitive unit, spec §6.2 rule 1
 * and D8). Requires `0 ≤ first ≤ last < total`; the empty range of a zero-length upload is written
 * `bytes *\/0` or `bytes 0--1/0`.
 *
 * @throws {BitsError} `BITS_BAD_CONTENT_RANGE` when the value is missing or malformed.
 * @example
 * ```ts
 * parseContentRange('bytes 0-99/300'); // { first: 0, last: 99, total: 300, length: 100 }
 * ```
 */
export function parseContentRange(value: string | undefined): FragmentRange {
  if (value === undefined) throw new BitsError('BITS_BAD_CONTENT_RANGE', 'Content-Range is missing');
  const v = value.trim();
  if (EMPTY.test(v)) return { first: 0, last: -1, total: 0, length: 0 };
  const m = RANGE.exec(v);
  if (!m) throw new BitsError('BITS_BAD_CONTENT_RANGE', `malformed Content-Range "${value}"`);
  const first = toSafeInt(m[1]!, value);
  const last = toSafeInt(m[2]!, value);
  const total = toSafeInt(m[3]!, value);
  if (last < first || last >= total) {
    throw new BitsError('BITS_BAD_CONTENT_RANGE', `inconsistent Content-Range "${value}"`);
  }
  return { first, last, total, length: last - first + 1 };
}

/**
 * Formats a Fragment `Content-Range` the way Windows sends it (lowercase `bytes`).
 *
 * @example
 * ```ts
 * formatContentRange(0, 4892, 4892); // 'bytes 0-4891/4892'
 * formatContentRange(0, 0, 0);       // 'bytes *\/0'
 * ```
 */
export function formatContentRange(first: number, length: number, total: number): string {
  if (total === 0) return 'bytes */0';
  return `bytes ${first}-${first + length - 1}/${total}`;
}
