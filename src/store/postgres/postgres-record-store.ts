import pg from 'pg';
import type { Logger } from 'pino';
import { sessionKey } from '../../protocol/session-id.js';
import { LeaseLostError, SessionLimitError } from '../types.js';
import type { CreateOptions, ListOptions, RecordStore, SessionLock, SessionOwner, SessionRecord } from '../types.js';
import { tryAdvisoryLock } from './advisory-lock.js';
import { PgDestinationClaims } from './destination-claims.js';
import { LeaseListener } from './lease-listener.js';
import { SessionExistsError, isTransientPgError, toStoreError, withRetry } from './pg-errors.js';
import { migrate, schemaNames } from './schema.js';
import type { SchemaNames } from './schema.js';

/** Options of {@link PostgresRecordStore}. */
export interface PostgresRecordStoreOptions {
  /** `postgres://user:password@host:port/database` */
  readonly url: string;
  /** This node's id (`hostname:pid`), written into every record it writes and every lease it holds. */
  readonly node: string;
  /** How long a lease outlives its holder's last heartbeat (default 10 s; renewed every third of it). */
  readonly leaseTtlMs?: number | undefined;
  readonly logger?: Logger | undefined;
  /** The PostgreSQL schema of the store's tables (default `public`); created when missing. */
  readonly schema?: string | undefined;
  /** How long to wait for a connection before the call fails as unavailable (default 2 s). */
  readonly connectTimeoutMs?: number | undefined;
  /** How long one statement may take before the call fails as unavailable (default 15 s). */
  readonly queryTimeoutMs?: number | undefined;
  /** Connections in the pool (default 10). Exclusive work and destination claims each hold one while they run. */
  readonly poolSize?: number | undefined;
}

/** One lease this node holds. */
interface Held {
  readonly key: string;
  readonly token: number;
  readonly controller: AbortController;
}

/**
 * Session records and leases in PostgreSQL, shared by every node of a farm.
 *
 * - **Records** are rows of `bits_sessions` (the record as jsonb, plus the key, vdir, principal,
 *   expiry and writing node), indexed for {@link listExpired} and {@link countLive}. Ids are
 *   compared as `sessionKey` does (case-insensitive, braces optional).
 * - **Leases** are rows of `bits_leases`, separate from the records so that an id without a record
 *   can be locked too. A lease row exists while a lease is held (or until a dead holder's lease is
 *   taken over); its fencing token comes from a sequence, so tokens never repeat even after the row
 *   is gone. {@link lock} takes the row with a new token and NOTIFYs it; every node LISTENs and
 *   aborts the signal of any lease it holds under an older token. A heartbeat renews held leases
 *   (and aborts those it finds superseded), so a killed or stopped node's lease expires after
 *   `leaseTtlMs` and {@link tryLock} can take it.
 * - **Writes under a lease** ({@link update}, fenced {@link delete}) lock the lease row `FOR SHARE`
 *   and write only when its token is still the lock's, in one statement: a stale holder changes
 *   nothing and gets {@link LeaseLostError}.
 * - **Outages**: every error that means the database is unreachable or failing transiently is a
 *   `StoreUnavailableError('PostgreSQL', cause)`; connects time out after 2 s; the pool and the
 *   listener reconnect by themselves when the database is back.
 *
 * @example
 * ```ts
 * const records = await PostgresRecordStore.open({ url: 'postgres://bits@db/bits', node: `${hostname()}:${process.pid}` });
 * const lock = await records.lock(id);
 * try {
 *   const record = await records.get(id);
 *   record.received += written;
 *   await records.update(record, lock); // LeaseLostError when a newer request took the session
 * } finally {
 *   await lock.release();
 * }
 * await records.close();
 * ```
 */
export class PostgresRecordStore implements RecordStore {
  /** This node's id. */
  readonly node: string;
  /** Destination-name claims on the same database (advisory locks), for commits without overwrite. */
  readonly claims: PgDestinationClaims;
  private readonly pool: pg.Pool;
  private readonly names: SchemaNames;
  private readonly ttl: number;
  private readonly logger: Logger | undefined;
  private readonly listener: LeaseListener;
  /** Leases held on this node, by session key. */
  private readonly held = new Map<string, Set<Held>>();
  /** Per session key, the local lease queue's tail: a lock waits for the local holder before it. */
  private readonly queues = new Map<string, Promise<void>>();
  private heartbeat: NodeJS.Timeout | undefined;
  private renewing = false;
  private renewAgain = false;
  private closed = false;

  /**
   * Opens the store: connects, creates or migrates the schema, and starts listening for superseded
   * leases. Rejects with `StoreUnavailableError` when the database cannot be reached.
   *
   * @example
   * ```ts
   * const records = await PostgresRecordStore.open({ url, node: 'web-1:4242' });
   * ```
   */
  static async open(options: PostgresRecordStoreOptions): Promise<PostgresRecordStore> {
    const store = new PostgresRecordStore(options);
    await store.start();
    return store;
  }

  /** Prefer {@link PostgresRecordStore.open}; a constructed store is usable after {@link start}. */
  constructor(options: PostgresRecordStoreOptions) {
    this.node = options.node;
    this.ttl = options.leaseTtlMs ?? 10_000;
    this.logger = options.logger;
    this.names = schemaNames(options.schema ?? 'public');
    const connection: pg.ClientConfig = {
      connectionString: options.url,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
      query_timeout: options.queryTimeoutMs ?? 15_000,
      keepAlive: true,
      application_name: `bits-upload ${this.node}`.slice(0, 63),
    };
    this.pool = new pg.Pool({ ...connection, max: options.poolSize ?? 10, idleTimeoutMillis: 10_000 });
    // An idle client whose connection drops (a database restart) must not take the process down.
    this.pool.on('error', (err) => this.logger?.warn({ err }, 'an idle PostgreSQL connection dropped'));
    this.claims = new PgDestinationClaims(this.pool, this.names.lockPrefix, this.logger);
    this.listener = new LeaseListener({
      connection,
      channel: this.names.channel,
      logger: this.logger,
      onNotify: (payload) => this.superseded(payload),
      // Notifications sent while the listener was down are lost: check every held lease now.
      onReconnect: () => void this.renew(),
    });
  }

  /** Creates or migrates the schema and starts the listener and the heartbeat. */
  async start(): Promise<void> {
    try {
      await migrate(this.pool, this.names);
      await this.listener.start();
    } catch (err) {
      await this.close();
      throw toStoreError(err);
    }
    this.heartbeat = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.ttl / 3)));
    this.heartbeat.unref();
  }

  /**
   * Inserts the record. With a `limit` and a principal, the count of the owner's live sessions and
   * the insert are one transaction under an advisory lock on the owner, so creates on any number of
   * nodes at once never overshoot it.
   *
   * @throws {SessionLimitError} when the owner already holds `limit` live sessions.
   * @throws {SessionExistsError} when a session with this id exists.
   */
  async create(record: SessionRecord, options: CreateOptions = {}): Promise<void> {
    const { sessions, lockPrefix } = this.names;
    const insert = `INSERT INTO ${sessions} (key, record, vdir, principal, expires_at, node) VALUES ($1, $2::jsonb, $3, $4, $5, $6)`;
    const params = this.rowOf(record);
    const { limit } = options;
    try {
      if (limit === undefined || limit <= 0 || record.principal === null) {
        await this.query(insert, params);
        return;
      }
      const principal = record.principal;
      const now = options.now ?? Date.now();
      await withRetry(() =>
        this.transaction(async (client) => {
          await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${lockPrefix}owner:${record.vdir}\n${principal}`]);
          const held = await this.count(client, record.vdir, principal, now);
          if (held >= limit) throw new SessionLimitError(held, limit);
          await client.query(insert, params);
        }),
      );
    } catch (err) {
      if ((err as { code?: unknown }).code === '23505') throw new SessionExistsError(record.id);
      throw err;
    }
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const { rows } = await this.query<{ record: SessionRecord }>(`SELECT record FROM ${this.names.sessions} WHERE key = $1`, [sessionKey(id)]);
    return rows[0]?.record;
  }

  /**
   * Replaces the record when `lock` is still the session's newest lease.
   *
   * @throws {LeaseLostError} when the lease was superseded (or released, or taken over after it
   * expired), and also when the record itself is gone: either way nothing was written.
   */
  async update(record: SessionRecord, lock: SessionLock): Promise<void> {
    const { sessions, leases } = this.names;
    const [key, json, vdir, principal, expiresAt, node] = this.rowOf(record);
    const { rowCount } = await this.query(
      `WITH l AS (SELECT 1 FROM ${leases} WHERE key = $1 AND token = $2 FOR SHARE)
       UPDATE ${sessions} SET record = $3::jsonb, vdir = $4, principal = $5, expires_at = $6, node = $7, written_at = now()
       WHERE key = $1 AND EXISTS (SELECT 1 FROM l)`,
      [key, lock.token, json, vdir, principal, expiresAt, node],
    );
    if (rowCount === 0) throw new LeaseLostError(record.id, lock.token);
  }

  /**
   * Deletes the record (no error when it is already gone). With `lock`, only while it is the
   * session's newest lease.
   *
   * @throws {LeaseLostError} when `lock` was superseded; nothing was deleted.
   */
  async delete(id: string, lock?: SessionLock): Promise<void> {
    const { sessions, leases } = this.names;
    const key = sessionKey(id);
    if (!lock) {
      await this.query(`DELETE FROM ${sessions} WHERE key = $1`, [key]);
      return;
    }
    const { rows } = await this.query<{ fenced: number }>(
      `WITH l AS (SELECT 1 FROM ${leases} WHERE key = $1 AND token = $2 FOR SHARE),
            d AS (DELETE FROM ${sessions} WHERE key = $1 AND EXISTS (SELECT 1 FROM l) RETURNING 1)
       SELECT (SELECT count(*) FROM l)::int AS fenced, (SELECT count(*) FROM d)::int AS deleted`,
      [key, lock.token],
    );
    if (rows[0]?.fenced !== 1) throw new LeaseLostError(id, lock.token);
  }

  /**
   * A page in key order, by keyset on the primary key (`key > after ORDER BY key`), so that a page
   * costs its own rows only. (Keys all have the same shape, upper-case hex and dashes at the same
   * places, so the database's collation orders them as a byte comparison does.)
   */
  async list(options: ListOptions): Promise<SessionRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown): void => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (options.after !== undefined) add('key > ?', sessionKey(options.after));
    if (options.vdir !== undefined) add('vdir = ?', options.vdir);
    if (options.principal !== undefined) add('principal = ?', options.principal);
    if (options.state !== undefined) add(`record->>'state' = ?`, options.state);
    params.push(Math.max(0, options.limit));
    const { rows } = await this.query<{ record: SessionRecord }>(
      `SELECT record FROM ${this.names.sessions} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY key LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => r.record);
  }

  async listExpired(now: number, limit: number): Promise<SessionRecord[]> {
    const { rows } = await this.query<{ record: SessionRecord }>(
      `SELECT record FROM ${this.names.sessions} WHERE expires_at < $1 ORDER BY expires_at LIMIT $2`,
      [now, limit],
    );
    return rows.map((r) => r.record);
  }

  async countLive(owner: SessionOwner, now: number): Promise<number> {
    return withRetry(() => this.count(this.pool, owner.vdir, owner.principal, now));
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1', []);
  }

  async countLiveByVdir(now: number): Promise<Map<string, number>> {
    const { rows } = await this.query<{ vdir: string; n: string }>(`SELECT vdir, count(*) AS n FROM ${this.names.sessions} WHERE expires_at >= $1 GROUP BY vdir`, [now]);
    return new Map(rows.map((r) => [r.vdir, Number(r.n)]));
  }

  /**
   * Takes the session's lease under a new fencing token, on whatever node it was held: the holder
   * is told through NOTIFY and its signal aborts (at once on this node, within a round trip on
   * others). Waits for a holder on this node to release (at most `leaseTtlMs`); a holder on another
   * node is not waited for, the fencing keeps its late writes out. Works for ids without a record.
   * (Should a newer token's NOTIFY overtake the reply that hands this lock its own, older token, the
   * next heartbeat aborts it instead: at most `leaseTtlMs / 3` later; the fencing holds meanwhile.)
   */
  lock(id: string): Promise<SessionLock> {
    return this.acquire(sessionKey(id), false) as Promise<SessionLock>;
  }

  /** Takes the lease only when nobody holds it, or its holder's lease expired; `undefined` otherwise. */
  tryLock(id: string): Promise<SessionLock | undefined> {
    return this.acquire(sessionKey(id), true);
  }

  /**
   * Runs `work` while holding the advisory lock `name` on a connection of its own; `undefined`
   * without running it while any node (this one included) runs work of that name. Should the
   * connection drop meanwhile, the lock is gone but `work` runs on.
   */
  async exclusive<T>(name: string, work: () => Promise<T>): Promise<T | undefined> {
    const held = await tryAdvisoryLock(this.pool, `${this.names.lockPrefix}exclusive:${name}`, this.logger);
    if (!held) return undefined;
    try {
      return await work();
    } finally {
      await held.release();
    }
  }

  /** Stops the heartbeat and the listener, gives up held leases (best effort) and ends the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.listener.close();
    const held = this.allHeld();
    for (const h of held) h.controller.abort(new Error('the record store is closing'));
    if (held.length > 0) {
      await this.pool
        .query(`DELETE FROM ${this.names.leases} x USING unnest($1::text[], $2::bigint[]) AS h(key, token) WHERE x.key = h.key AND x.token = h.token`, [
          held.map((h) => h.key),
          held.map((h) => h.token),
        ])
        .catch(() => undefined);
    }
    // a claim or exclusive work still running keeps its connection: do not wait for it forever
    await waitAtMost(this.pool.end().catch(() => undefined), 5000);
  }

  private async acquire(key: string, onlyIfFree: boolean): Promise<SessionLock | undefined> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    let done!: () => void;
    const released = new Promise<void>((resolve) => (done = resolve));
    const mine = previous.then(() => released);
    this.queues.set(key, mine);
    const settle = (): void => {
      done();
      if (this.queues.get(key) === mine) this.queues.delete(key);
    };
    let token: number | undefined;
    try {
      token = await this.take(key, onlyIfFree);
    } catch (err) {
      settle();
      throw err;
    }
    if (token === undefined) {
      settle();
      return undefined;
    }
    const lock = this.hold(key, token, settle);
    if (!onlyIfFree) await waitAtMost(previous, this.ttl);
    return lock;
  }

  /** The lease row under a new token (and its NOTIFY); `undefined` when `onlyIfFree` and it is held. */
  private async take(key: string, onlyIfFree: boolean): Promise<number | undefined> {
    const { leases, tokens, channel } = this.names;
    const { rows } = await this.query<{ token: string }>(
      `WITH l AS (
         INSERT INTO ${leases} AS x (key, token, node, until)
         VALUES ($1, nextval(${pg.escapeLiteral(tokens)}), $2, now() + $3::int * interval '1 millisecond')
         ON CONFLICT (key) DO UPDATE SET token = excluded.token, node = excluded.node, until = excluded.until
         ${onlyIfFree ? 'WHERE x.until < now()' : ''}
         RETURNING x.token)
       SELECT token::text, pg_notify($4, $1 || ' ' || token) AS notified FROM l`,
      [key, this.node, this.ttl, channel],
    );
    return rows[0] === undefined ? undefined : Number(rows[0].token);
  }

  /** Registers a lease taken under `token` on this node and makes its {@link SessionLock}. */
  private hold(key: string, token: number, settle: () => void): SessionLock {
    const entry: Held = { key, token, controller: new AbortController() };
    const set = this.held.get(key) ?? new Set<Held>();
    for (const other of set) {
      if (other.token < token) other.controller.abort(new LeaseLostError(key, other.token));
      else entry.controller.abort(new LeaseLostError(key, token));
    }
    set.add(entry);
    this.held.set(key, set);
    let released = false;
    return {
      signal: entry.controller.signal,
      token,
      release: async () => {
        if (released) return;
        released = true;
        set.delete(entry);
        if (set.size === 0 && this.held.get(key) === set) this.held.delete(key);
        settle();
        try {
          await this.pool.query(`DELETE FROM ${this.names.leases} WHERE key = $1 AND token = $2`, [key, token]);
        } catch (err) {
          // it expires by itself: nothing to tell the caller, who is done with the session
          this.logger?.warn({ err, session: key }, 'could not release a lease; it will expire');
        }
      },
    };
  }

  /** A NOTIFY payload (`KEY TOKEN`): aborts this node's leases of KEY under older tokens. */
  private superseded(payload: string): void {
    const at = payload.lastIndexOf(' ');
    const key = payload.slice(0, at);
    const token = Number(payload.slice(at + 1));
    for (const h of this.held.get(key) ?? []) {
      if (h.token < token) h.controller.abort(new LeaseLostError(key, h.token));
    }
  }

  /** The heartbeat: extends every held lease still current, and aborts those that are not. */
  private async renew(): Promise<void> {
    if (this.closed) return;
    if (this.renewing) {
      // one is in flight, but it may predate what we must check (a reconnect): run again after it
      this.renewAgain = true;
      return;
    }
    const held = this.allHeld().filter((h) => !h.controller.signal.aborted);
    if (held.length === 0) return;
    this.renewing = true;
    try {
      const { rows } = await this.pool.query<{ key: string; token: string }>(
        `UPDATE ${this.names.leases} x SET until = now() + $3::int * interval '1 millisecond'
         FROM unnest($1::text[], $2::bigint[]) AS h(key, token)
         WHERE x.key = h.key AND x.token = h.token RETURNING x.key, x.token::text`,
        [held.map((h) => h.key), held.map((h) => h.token), this.ttl],
      );
      const current = new Set(rows.map((r) => `${r.key} ${r.token}`));
      for (const h of held) {
        if (!current.has(`${h.key} ${h.token}`)) h.controller.abort(new LeaseLostError(h.key, h.token));
      }
    } catch (err) {
      this.logger?.warn({ err }, 'could not renew the leases held on this node');
    } finally {
      this.renewing = false;
      if (this.renewAgain) {
        this.renewAgain = false;
        void this.renew();
      }
    }
  }

  private allHeld(): Held[] {
    return [...this.held.values()].flatMap((set) => [...set]);
  }

  private async count(on: pg.Pool | pg.PoolClient, vdir: string, principal: string, now: number): Promise<number> {
    const { rows } = await on.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.names.sessions} WHERE vdir = $1 AND principal = $2 AND expires_at >= $3`,
      [vdir, principal, now],
    );
    return rows[0]!.n;
  }

  /** The row's parameters: key, record (as written: with this node), vdir, principal, expiry, node. */
  private rowOf(record: SessionRecord): [string, string, string, string | null, number, string] {
    const json = JSON.stringify({ ...record, node: this.node });
    return [sessionKey(record.id), json, record.vdir, record.principal, record.updatedAt + record.timeoutMs, this.node];
  }

  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    return withRetry(() => this.pool.query<R>(sql, params));
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const out = await work(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      if (isTransientPgError(err)) broken = true;
      else await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }
}

/** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
