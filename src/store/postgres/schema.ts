import pg from 'pg';

/** Qualified names of the store's objects in one PostgreSQL schema. */
export interface SchemaNames {
  /** The schema itself, quoted. */
  readonly schema: string;
  /** The schema's name as given (unquoted). */
  readonly schemaName: string;
  /** `bits_sessions`: one row per session; the record as jsonb plus the columns queries need. */
  readonly sessions: string;
  /** `bits_leases`: one row per held (or expired, not yet taken) lease. */
  readonly leases: string;
  /** `bits_lease_tokens`: the sequence fencing tokens come from, so they never repeat. */
  readonly tokens: string;
  /** `bits_migrations`: the versions applied. */
  readonly migrations: string;
  /** The NOTIFY channel superseded leases are announced on (unquoted; one per schema). */
  readonly channel: string;
  /** A prefix for advisory-lock names, so that two schemas on one database never contend. */
  readonly lockPrefix: string;
}

/**
 * The names of the store's tables in `schema`.
 *
 * @example
 * ```ts
 * schemaNames('public').sessions; // '"public".bits_sessions'
 * ```
 */
export function schemaNames(schema: string): SchemaNames {
  const s = pg.escapeIdentifier(schema);
  return {
    schema: s,
    schemaName: schema,
    sessions: `${s}.bits_sessions`,
    leases: `${s}.bits_leases`,
    tokens: `${s}.bits_lease_tokens`,
    migrations: `${s}.bits_migrations`,
    channel: `bits_leases:${schema}`,
    lockPrefix: `bits:${schema}:`,
  };
}

/** One step of the schema; applied once, in order, never edited after release (add a new one). */
interface Migration {
  readonly version: number;
  readonly name: string;
  sql(n: SchemaNames): string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sessions and leases',
    sql: (n) => `
      CREATE TABLE ${n.sessions} (
        key        text PRIMARY KEY,          -- sessionKey(id): upper case, no braces
        record     jsonb NOT NULL,
        vdir       text NOT NULL,
        principal  text,
        expires_at bigint NOT NULL,           -- updatedAt + timeoutMs, ms since the epoch
        node       text NOT NULL,             -- the node that last wrote the record
        written_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX bits_sessions_expiry ON ${n.sessions} (expires_at);
      CREATE INDEX bits_sessions_owner ON ${n.sessions} (vdir, principal, expires_at) WHERE principal IS NOT NULL;
      CREATE SEQUENCE ${n.tokens};
      CREATE TABLE ${n.leases} (
        key   text PRIMARY KEY,               -- sessionKey(id); no foreign key: ids without records may be locked
        token bigint NOT NULL,
        node  text NOT NULL,
        until timestamptz NOT NULL            -- renewed by the holder's heartbeat
      );`,
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Creates or migrates the store's schema: applies the migrations not yet recorded in
 * `bits_migrations`, in one transaction under an advisory lock, so that nodes starting at once
 * apply each step exactly once and the others wait for it. Refuses a database migrated by newer
 * code.
 *
 * @example
 * ```ts
 * await migrate(pool, schemaNames('public'));
 * ```
 */
export async function migrate(pool: pg.Pool, n: SchemaNames): Promise<number> {
  const client = await pool.connect();
  let failure: unknown;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${n.lockPrefix}migrate`]);
    // CREATE SCHEMA needs the CREATE privilege on the database even when the schema exists: ask first
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [n.schemaName]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${n.schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${n.migrations} (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ v: number }>(`SELECT coalesce(max(version), 0)::int AS v FROM ${n.migrations}`);
    const current = rows[0]!.v;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the database schema is at version ${current}, newer than this server knows (${SCHEMA_VERSION})`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql(n));
      await client.query(`INSERT INTO ${n.migrations} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
    await client.query('COMMIT');
    return SCHEMA_VERSION;
  } catch (err) {
    failure = err;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    // a client whose transaction failed is not handed back to others
    client.release(failure !== undefined);
  }
}
