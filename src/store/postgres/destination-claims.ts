import type pg from 'pg';
import type { Logger } from 'pino';
import type { DestinationClaims } from '../types.js';
import { tryAdvisoryLock } from './advisory-lock.js';

/**
 * {@link DestinationClaims} as PostgreSQL advisory locks: a claim on a name is a session-level
 * advisory lock on a connection held until `release()`, so it is exclusive across every node on the
 * database, and ends by itself when the holding process dies (its connection drops). Get one from
 * {@link PostgresRecordStore.claims}.
 *
 * @example
 * ```ts
 * const claim = await records.claims.claim('s3://bits-uploads/uploads/dump.bin');
 * if (!claim) throw new DestinationExistsError(name); // another commit is placing it right now
 * try { if (await exists()) throw …; await complete(); } finally { await claim.release(); }
 * ```
 */
export class PgDestinationClaims implements DestinationClaims {
  constructor(
    private readonly pool: pg.Pool,
    private readonly prefix: string,
    private readonly logger?: Logger,
  ) {}

  claim(name: string): Promise<{ release(): Promise<void> } | undefined> {
    return tryAdvisoryLock(this.pool, `${this.prefix}claim:${name}`, this.logger);
  }
}
