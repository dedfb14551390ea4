import { StoreUnavailableError } from '../types.js';

/** The service name {@link StoreUnavailableError}s of the PostgreSQL store carry. */
export const SERVICE = 'PostgreSQL';

/** Socket-level error codes that mean the server cannot be reached or dropped the connection. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** SQLSTATEs that are transient: the server is shutting down, starting, out of connections, or failed over. */
const TRANSIENT_STATES = new Set(['57P01', '57P02', '57P03', '53300', '57014', '40001', '40P01']);

/** SQLSTATEs worth retrying at once (a serialization failure, a deadlock victim). */
const RETRY_STATES = new Set(['40001', '40P01']);

/** Messages of `pg` and `pg-pool` (which carry no code) for a lost or unobtainable connection. */
const TRANSIENT_MESSAGES = [
  'connection terminated',
  'timeout exceeded when trying to connect',
  'not queryable',
  'query read timeout',
  'connection error',
  'server closed the connection',
];

/**
 * Whether `err` means PostgreSQL is unreachable or failing transiently (as opposed to a bug or a
 * constraint violation): network errors, lost connections, pool connect timeouts, SQLSTATE class
 * 08, 57P01–57P03, 53300, a statement timeout (57014), serialization failures and deadlocks.
 *
 * @example
 * ```ts
 * isTransientPgError(Object.assign(new Error('x'), { code: '57P01' })); // true
 * isTransientPgError(Object.assign(new Error('x'), { code: '23505' })); // false
 * ```
 */
export function isTransientPgError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || TRANSIENT_STATES.has(code) || /^08/.test(code)) return true;
  }
  if (err instanceof AggregateError && err.errors.some(isTransientPgError)) return true;
  const message = err.message.toLowerCase();
  if (TRANSIENT_MESSAGES.some((m) => message.includes(m))) return true;
  return err.cause !== undefined && err.cause !== err && isTransientPgError(err.cause);
}

/**
 * Whether `err` is one that the same statement may simply be run again for (40001, 40P01).
 *
 * @example
 * ```ts
 * if (isRetryablePgError(err) && attempt < 3) continue;
 * ```
 */
export function isRetryablePgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && RETRY_STATES.has(code);
}

/**
 * `err` as the store throws it: a {@link StoreUnavailableError} when the database is unreachable or
 * failing transiently, otherwise `err` itself.
 *
 * @example
 * ```ts
 * try { await pool.query(sql) } catch (err) { throw toStoreError(err); }
 * ```
 */
export function toStoreError(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  return isTransientPgError(err) ? new StoreUnavailableError(SERVICE, err) : err;
}

/**
 * Runs `attempt`, again (up to `tries` times in all, after a short pause) when it fails with a
 * serialization failure or a deadlock, and maps what still fails through {@link toStoreError}.
 *
 * @example
 * ```ts
 * const rows = await withRetry(() => pool.query('SELECT 1'));
 * ```
 */
export async function withRetry<T>(attempt: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i < tries && isRetryablePgError(err)) {
        await new Promise((r) => setTimeout(r, 10 * i));
        continue;
      }
      throw toStoreError(err);
    }
  }
}

/**
 * Thrown by {@link PostgresRecordStore.create} when a session with the same id (compared
 * case-insensitively, braces optional) already exists.
 */
export class SessionExistsError extends Error {
  readonly code = 'EEXIST';
  constructor(readonly id: string) {
    super(`session ${id} already exists`);
    this.name = 'SessionExistsError';
  }
}
