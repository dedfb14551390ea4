/** The smallest part S3 accepts (but for the last one). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** The part size used unless configured otherwise. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** S3's limit on the parts of one multipart upload. */
export const MAX_PARTS = 10_000;
const MIB = 1024 * 1024;

/**
 * The part size of an upload, fixed at its first write so that part `i` always holds the bytes
 * `[(i-1)*P, i*P)`: whoever uploads part `i` (even a stale node) uploads the same bytes. It is the
 * configured size, grown (in whole MiB) when the upload's total would need more than 10,000 parts.
 *
 * @example
 * ```ts
 * partSizeFor(8 * 2 ** 20, 1e9);        // 8 MiB
 * partSizeFor(8 * 2 ** 20, 200 * 2**30); // 21 MiB: 200 GiB in at most 10,000 parts
 * ```
 */
export function partSizeFor(configured: number, total: number | undefined): number {
  let size = Math.max(configured, MIN_PART_SIZE);
  if (total !== undefined && total > 0) {
    const needed = Math.ceil(Math.ceil(total / MAX_PARTS) / MIB) * MIB;
    size = Math.max(size, needed);
  }
  return size;
}
