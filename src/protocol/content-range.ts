import { parseDecimal } from './decimal.js';
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

/** The range of a 206 answer to a ranged GET: bytes `first..last` of an entity of `total` bytes. */
export interface ResponseRange {
  readonly first: number;
  readonly last: number;
  /** The entity's size; `undefined` when the server wrote `*` (unknown). */
  readonly total: number | undefined;
}

const RANGE = /^bytes[ \t]+(\d+)-(\d+)\/(\d+)$/i;
const EMPTY = /^bytes[ \t]+(?:\*|0--1)\/0$/i;
const RESPONSE_RANGE = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i;

function toSafeInt(text: string, raw: string): number {
  const n = parseDecimal(text);
  if (n === undefined) throw new BitsError('BITS_BAD_CONTENT_RANGE', `Content-Range number out of range: "${raw}"`);
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
 * The range of a Fragment that carries `length` bytes from `first` of a `total`-byte upload (the
 * empty range for a zero-length upload).
 *
 * @example
 * ```ts
 * fragmentRange(100, 50, 300); // { first: 100, last: 149, total: 300, length: 50 }
 * ```
 */
export function fragmentRange(first: number, length: number, total: number): FragmentRange {
  return { first, last: first + length - 1, total, length };
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

/**
 * Parses the `Content-Range` of a 206 answer (RFC 9110 §14.4), the form a downloading client reads.
 * Liberal in the unit's case and the whitespace; `undefined` for anything that is not one satisfied
 * range with `first ≤ last` (and `last < total` when the total is known).
 *
 * @example
 * ```ts
 * parseResponseRange('bytes 100-199/300'); // { first: 100, last: 199, total: 300 }
 * parseResponseRange('bytes 100-199/*');   // { first: 100, last: 199, total: undefined }
 * parseResponseRange('bytes *\/300');      // undefined (that is a 416's form)
 * ```
 */
export function parseResponseRange(value: string | undefined): ResponseRange | undefined {
  const m = RESPONSE_RANGE.exec(value?.trim() ?? '');
  if (!m) return undefined;
  const first = parseDecimal(m[1]);
  const last = parseDecimal(m[2]);
  const total = m[3] === '*' ? undefined : parseDecimal(m[3]);
  if (first === undefined || last === undefined || last < first) return undefined;
  if (m[3] !== '*' && (total === undefined || last >= total)) return undefined;
  return { first, last, total };
}

/**
 * Formats the `Range` of a ranged GET from `first` on: closed (`bytes=first-last`) when the size is
 * known, as Windows sends it, since some servers parse only that form; open (`bytes=first-`) otherwise.
 *
 * @example
 * ```ts
 * formatRangeRequest(100, 300);       // 'bytes=100-299'
 * formatRangeRequest(100, undefined); // 'bytes=100-'
 * ```
 */
export function formatRangeRequest(first: number, total: number | undefined): string {
  return total === undefined ? `bytes=${first}-` : `bytes=${first}-${total - 1}`;
}
