import type { ByteState } from '../types.js';

/** A tail segment: bytes not yet forming a part, kept as an object of its own. */
export interface TailSegment {
  readonly key: string;
  readonly size: number;
}

/**
 * What {@link S3ByteStore} remembers of one upload, kept in the session's record (as its
 * {@link ByteState}) so that it is durable and fenced with the record.
 */
export interface UploadMemo {
  readonly v: 1;
  /** Where the multipart upload is made: the destination's bucket and key, or the session's data key (`readBack`). */
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
  readonly readBack: boolean;
  /** The part size `P`, fixed by the first write (`null` before it). */
  readonly partSize: number | null;
  /** ETags of parts `1..n`, each of exactly `partSize` bytes. */
  readonly parts: readonly string[];
  /** The bytes after the parts, in order. */
  readonly tail: readonly TailSegment[];
  /** Objects no longer referenced, deleted by the next write (whose input memo no longer needs them) or by discard. */
  readonly obsolete: readonly string[];
  /** `readBack` only: the multipart upload was completed at `key` (the upload reached its total). */
  readonly sealed: boolean;
}

/**
 * The memo's bytes: the parts and the tail.
 *
 * @example
 * ```ts
 * memoSize({ ...memo, partSize: 8, parts: ['"a"'], tail: [{ key: 'k', size: 3 }] }); // 11
 * ```
 */
export function memoSize(memo: UploadMemo): number {
  return (memo.partSize ?? 0) * memo.parts.length + tailSize(memo);
}

/**
 * The tail's bytes.
 *
 * @example
 * ```ts
 * tailSize(memo); // 3
 * ```
 */
export function tailSize(memo: UploadMemo): number {
  return memo.tail.reduce((sum, seg) => sum + seg.size, 0);
}

/**
 * The memo as the record keeps it.
 *
 * @example
 * ```ts
 * record.bytes = toByteState(memo);
 * ```
 */
export function toByteState(memo: UploadMemo): ByteState {
  return {
    v: memo.v,
    bucket: memo.bucket,
    key: memo.key,
    uploadId: memo.uploadId,
    readBack: memo.readBack,
    partSize: memo.partSize,
    parts: [...memo.parts],
    tail: memo.tail.map((seg) => ({ key: seg.key, size: seg.size })),
    obsolete: [...memo.obsolete],
    sealed: memo.sealed,
  };
}

/**
 * The memo in a record's {@link ByteState}, or `undefined` when there is none (or it is not this store's).
 *
 * @example
 * ```ts
 * const memo = fromByteState(upload.bytes);
 * ```
 */
export function fromByteState(state: ByteState | undefined): UploadMemo | undefined {
  if (!state || state['v'] !== 1) return undefined;
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const tail = Array.isArray(state['tail'])
    ? state['tail'].flatMap((seg) => {
        if (typeof seg !== 'object' || seg === null || Array.isArray(seg)) return [];
        const s = seg as { readonly [k: string]: unknown };
        return typeof s['key'] === 'string' && typeof s['size'] === 'number' ? [{ key: s['key'], size: s['size'] }] : [];
      })
    : [];
  return {
    v: 1,
    bucket: str(state['bucket']),
    key: str(state['key']),
    uploadId: str(state['uploadId']),
    readBack: state['readBack'] === true,
    partSize: typeof state['partSize'] === 'number' ? state['partSize'] : null,
    parts: strings(state['parts']),
    tail,
    obsolete: strings(state['obsolete']),
    sealed: state['sealed'] === true,
  };
}
