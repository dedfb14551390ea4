import type { Logger } from 'pino';
import { Journal, defaultStateDir } from './journal.js';
import type { JobConnection } from './journal.js';
import { checkHeaders, resolveTiming, silentLogger } from './options.js';
import type { ClientOptions, ResolvedTiming } from './options.js';
import { Transport } from './transport.js';

/** What a job runs with. */
export interface JobContext {
  readonly journal: Journal | undefined;
  readonly transport: Transport;
  readonly timing: ResolvedTiming;
  readonly logger: Logger;
}

/**
 * The connection settings of a new job as the journal keeps them (so `resume` can reconnect).
 *
 * @example
 * ```ts
 * connectionOf({ user: 'u:p', insecure: true }, resolveTiming({})).user; // 'u:p'
 * ```
 */
export function connectionOf(o: ClientOptions, timing: ResolvedTiming): JobConnection {
  checkHeaders(o.headers);
  if ((o.cert === undefined) !== (o.key === undefined)) throw new TypeError('cert and key go together');
  return {
    user: o.user,
    headers: o.headers ? { ...o.headers } : undefined,
    ca: o.ca === undefined ? undefined : o.ca.toString(),
    insecure: o.insecure || undefined,
    cert: o.cert === undefined ? undefined : o.cert.toString(),
    key: o.key === undefined ? undefined : o.key.toString(),
    idleTimeoutMs: timing.idleTimeoutMs,
    noProgressTimeoutMs: timing.noProgressTimeoutMs,
  };
}

/**
 * Builds the journal, transport, timing and logger of a job from its connection settings and the
 * caller's options (which win).
 *
 * @example
 * ```ts
 * const ctx = jobContext(record.connection, { retryDelayMs: 1000, stateDir: '/tmp/s' }, new URL(record.url));
 * ```
 */
export function jobContext(connection: JobConnection, o: ClientOptions, url: URL): JobContext {
  const timing = resolveTiming({
    retryDelayMs: o.retryDelayMs,
    maxRetryDelayMs: o.maxRetryDelayMs,
    noProgressTimeoutMs: o.noProgressTimeoutMs ?? connection.noProgressTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs ?? connection.idleTimeoutMs,
  });
  const transport = new Transport(
    {
      user: connection.user,
      headers: connection.headers,
      ca: connection.ca,
      insecure: connection.insecure,
      cert: connection.cert,
      key: connection.key,
      idleTimeoutMs: timing.idleTimeoutMs,
    },
    url,
  );
  const stateDir = o.stateDir === undefined ? defaultStateDir() : o.stateDir;
  return {
    journal: stateDir === false ? undefined : new Journal(stateDir),
    transport,
    timing,
    logger: o.logger ?? silentLogger(),
  };
}
