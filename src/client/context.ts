import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { BitsClientError } from './errors.js';
import { publicHref } from '../protocol/userinfo.js';
import { Journal, defaultStateDir, newJobId } from './journal.js';
import type { DownloadRecord, JobConnection } from './journal.js';
import { certKeyProblem, checkHeaders, credentialHeader, resolveTiming, silentLogger } from './options.js';
import type { ClientOptions, ResolvedTiming } from './options.js';
import type { Throttle } from './throttle.js';
import { Transport } from './transport.js';

/** What a job runs with. */
export interface JobContext {
  readonly journal: Journal | undefined;
  readonly transport: Transport;
  readonly timing: ResolvedTiming;
  readonly logger: Logger;
  readonly throttle: Throttle | undefined;
}

/** Basic credentials of a job: the user name is journaled, the password only ever held in memory. */
export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/**
 * The Basic credentials of a new job: `user` (`name:password`) or else the URL's user information.
 *
 * @example
 * ```ts
 * credentialsOf({ user: 'bob:p:w' }, new URL('http://h/a')); // { user: 'bob', password: 'p:w' }
 * credentialsOf({}, new URL('http://bob:p%40w@h/a'));         // { user: 'bob', password: 'p@w' }
 * ```
 */
export function credentialsOf(o: ClientOptions, url: URL): Credentials | undefined {
  if (o.user !== undefined) {
    const i = o.user.indexOf(':');
    return i < 0 ? { user: o.user, password: '' } : { user: o.user.slice(0, i), password: o.user.slice(i + 1) };
  }
  if (url.username === '' && url.password === '') return undefined;
  return { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

/**
 * The connection settings of a new job as the journal keeps them (so `resume` can reconnect): the
 * user name, never the password (it is asked for again on resume); the client key's path, never the
 * key. Credential headers and a key given as text are refused for a journaled job, which would keep
 * them in clear text.
 *
 * @throws {TypeError} for invalid headers, credential headers or a key's text with a journal, a
 *   certificate without its key.
 * @example
 * ```ts
 * connectionOf({ user: 'u:p', insecure: true }, resolveTiming({}), new URL('http://h/a')).user; // 'u'
 * ```
 */
function connectionOf(o: ClientOptions, timing: ResolvedTiming, url: URL): JobConnection {
  checkHeaders(o.headers);
  const journaled = o.stateDir !== false;
  const credential = credentialHeader(o.headers);
  if (journaled && credential !== undefined) {
    throw new TypeError(`header ${credential} carries credentials, which the journal would keep: sign in with user (or give stateDir: false)`);
  }
  if (o.key !== undefined && o.keyFile !== undefined) throw new TypeError('key and keyFile exclude each other');
  if (journaled && o.key !== undefined) throw new TypeError("a client key goes as keyFile (its path), which the journal keeps instead of the key (or give stateDir: false)");
  const unpaired = certKeyProblem(o.cert !== undefined, o.key !== undefined || o.keyFile !== undefined, 'cert', 'key');
  if (unpaired) throw new TypeError(unpaired);
  if (o.auth !== undefined && o.auth !== 'negotiate' && o.auth !== 'ntlm') throw new TypeError(`auth must be "negotiate" or "ntlm", not ${JSON.stringify(o.auth)}`);
  if (o.auth === 'ntlm' && credentialsOf(o, url) === undefined) throw new TypeError('auth "ntlm" needs user ("DOMAIN\\user:password")');
  return {
    user: o.auth === 'negotiate' ? undefined : credentialsOf(o, url)?.user,
    auth: o.auth,
    headers: o.headers ? { ...o.headers } : undefined,
    ca: o.ca === undefined ? undefined : o.ca.toString(),
    insecure: o.insecure || undefined,
    cert: o.cert === undefined ? undefined : o.cert.toString(),
    keyFile: o.keyFile === undefined ? undefined : resolve(o.keyFile),
    key: o.key === undefined ? undefined : o.key.toString(),
    idleTimeoutMs: timing.idleTimeoutMs,
    noProgressTimeoutMs: timing.noProgressTimeoutMs,
  };
}

/** The client key of a job: read from its file (a record written before `keyFile` holds the key). */
function clientKey(connection: JobConnection): string | undefined {
  if (connection.keyFile === undefined) return connection.key;
  try {
    return readFileSync(connection.keyFile, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `cannot read the client key ${connection.keyFile}: ${e.code ?? e.message}`, { cause: err });
  }
}

/**
 * Builds the journal, transport, timing and logger of a job from its connection settings and the
 * caller's options (which win). `password` goes with the journaled user name; without it no
 * credentials are sent.
 *
 * @throws {BitsClientError} BITS_CLIENT_LOCAL_FILE when the client key's file cannot be read.
 * @example
 * ```ts
 * const ctx = jobContext(record.connection, { retryDelayMs: 1000, stateDir: '/tmp/s' }, new URL(record.url), password);
 * ```
 */
export function jobContext(connection: JobConnection, o: ClientOptions, url: URL, password: string | undefined): JobContext {
  const timing = resolveTiming({
    retryDelayMs: o.retryDelayMs,
    maxRetryDelayMs: o.maxRetryDelayMs,
    noProgressTimeoutMs: o.noProgressTimeoutMs ?? connection.noProgressTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs ?? connection.idleTimeoutMs,
    cancelTimeoutMs: o.cancelTimeoutMs,
  });
  const transport = new Transport(
    {
      user: connection.user === undefined || password === undefined ? undefined : `${connection.user}:${password}`,
      auth: connection.auth,
      headers: connection.headers,
      ca: connection.ca,
      insecure: connection.insecure,
      cert: connection.cert,
      key: clientKey(connection),
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
    throttle: o.throttle,
  };
}

/** What every job record starts with, whatever its type. */
export type RecordBase = Omit<DownloadRecord, 'type' | 'progress'>;

/**
 * The start of a new job: its record's common fields (a new id, the URL without user information so
 * that the password never reaches the journal, the absolute file, the connection settings) and the
 * context it runs in.
 *
 * @throws {RangeError} for invalid timing options; {@link TypeError} for invalid connection options
 *   (see {@link connectionOf}).
 * @example
 * ```ts
 * const { base, context } = newJob(options, options.url, options.file);
 * const job = new DownloadJob({ ...base, type: 'download', progress: { url: base.url, offset: 0 } }, context);
 * ```
 */
export function newJob(o: ClientOptions, target: string | URL, file: string): { base: RecordBase; context: JobContext } {
  const url = new URL(target);
  const timing = resolveTiming(o);
  const now = Date.now();
  const base: RecordBase = {
    version: 1,
    id: newJobId(),
    state: 'running',
    url: publicHref(url),
    file: resolve(file),
    connection: connectionOf(o, timing, url),
    createdAt: now,
    updatedAt: now,
  };
  return { base, context: jobContext(base.connection, o, new URL(base.url), credentialsOf(o, url)?.password) };
}
