import type pg from 'pg';
import type { Logger } from 'pino';
import { toStoreError } from './pg-errors.js';

/** A session-level advisory lock, held on its own pooled connection until released. */
export interface HeldAdvisoryLock {
  /** Unlocks and hands the connection back (destroys it when the unlock fails). Never throws. */
  release(): Promise<void>;
}

/**
 * Takes the session-level advisory lock `name` (hashed to 64 bits with `hashtextextended`) on a
 * connection of its own, without waiting; `undefined` when another connection holds it. The lock
 * lives as long as that connection: when the process dies, PostgreSQL drops the connection and
 * with it the lock. Failures to reach the database are {@link StoreUnavailableError}s.
 *
 * @example
 * ```ts
 * const held = await tryAdvisoryLock(pool, 'bits:public:sweep');
 * if (held) try { await sweep(); } finally { await held.release(); }
 * ```
 */
export async function tryAdvisoryLock(pool: pg.Pool, name: string, logger?: Logger): Promise<HeldAdvisoryLock | undefined> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toStoreError(err);
  }
  // a checked-out client has no error listener of the pool's: a dropped connection must not crash us
  let lost: Error | undefined;
  const onError = (err: Error): void => {
    lost = err;
    logger?.warn({ err, lock: name }, 'the connection holding an advisory lock dropped; the lock is gone');
  };
  client.on('error', onError);
  const giveBack = (destroy: boolean): void => {
    client.removeListener('error', onError);
    client.release(destroy || lost !== undefined);
  };
  let got: boolean;
  try {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [name]);
    got = rows[0]!.ok;
  } catch (err) {
    giveBack(true);
    throw toStoreError(err);
  }
  if (!got) {
    giveBack(false);
    return undefined;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      if (lost) return giveBack(true);
      try {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [name]);
        giveBack(false);
      } catch (err) {
        logger?.warn({ err, lock: name }, 'could not unlock an advisory lock; dropping its connection instead');
        giveBack(true);
      }
    },
  };
}
