import { BitsError, isBitsError } from '../protocol/errors.js';
import { LeaseLostError, StoreUnavailableError } from '../store/types.js';

/** errno codes that mean the storage is out of room: blocks, inodes or quota (all ENOSPC/EDQUOT on Linux). */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/**
 * The errno code carried by an error or by its cause chain (`ENOSPC`, …), if any.
 *
 * @example
 * ```ts
 * errnoOf(Object.assign(new Error('x'), { code: 'ENOSPC' })); // 'ENOSPC'
 * ```
 */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

/**
 * `BITS_DISK_FULL` (500 + 0x80070070) when a failure means the storage is out of space, inodes or
 * quota (D9); `undefined` otherwise, for callers that map the other failures themselves.
 *
 * @example
 * ```ts
 * throw fullDiskError(err, 'no space left for the reply') ?? err;
 * ```
 */
export function fullDiskError(err: unknown, what: string): BitsError | undefined {
  const code = errnoOf(err);
  return code !== undefined && FULL.has(code) ? new BitsError('BITS_DISK_FULL', `${what}: ${code}`, { cause: err }) : undefined;
}

/** The first error of a cause chain that is of class `type`, if any. */
function causeOf<T extends Error>(err: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) if (e instanceof type) return e;
  return undefined;
}

/**
 * The one mapping of a storage failure to its Ack (D9): out of space, inodes or quota is
 * `BITS_DISK_FULL` (500 + 0x80070070); a farm service that cannot be reached is
 * `BITS_STORE_UNAVAILABLE` (503, retried after `Retry-After`); a write under a lease a newer request
 * took over is `BITS_SUPERSEDED` (the connection is dropped); anything else is `BITS_INTERNAL`. A
 * `BitsError` passes through.
 *
 * @example
 * ```ts
 * throw storageError(err, 'no space left for the fragment');
 * ```
 */
export function storageError(err: unknown, what: string): BitsError {
  if (isBitsError(err)) return err;
  const unavailable = causeOf(err, StoreUnavailableError);
  if (unavailable) return new BitsError('BITS_STORE_UNAVAILABLE', `${what}: ${unavailable.message}`, { cause: err });
  if (causeOf(err, LeaseLostError)) return new BitsError('BITS_SUPERSEDED', `${what}: superseded by a newer request`, { cause: err });
  return (
    fullDiskError(err, what) ??
    new BitsError('BITS_INTERNAL', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  );
}
