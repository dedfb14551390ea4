import type { Logger } from 'pino';
import { credentialsOf, jobContext } from './context.js';
import { DownloadJob } from './download.js';
import { Journal, defaultStateDir, isRunningElsewhere } from './journal.js';
import type { JobRecord, JobState } from './journal.js';
import { publicHref } from '../protocol/userinfo.js';
import { UploadJob } from './upload.js';
import type { ClientOptions } from './options.js';
import type { Throttle } from './throttle.js';

/** One line of `bits jobs`. */
export interface JobSummary {
  readonly id: string;
  readonly type: 'upload' | 'download';
  /** `running` only while its process is alive; a job whose process died is `interrupted`. */
  readonly state: JobState;
  readonly bytesDone: number;
  /** `undefined` while a download's size is unknown. */
  readonly bytesTotal: number | undefined;
  /** The URL, without user information. */
  readonly url: string;
  readonly file: string;
  /** What stopped the job, when it stopped. */
  readonly error: string | undefined;
}

/** Options of {@link resumeJob} and {@link cancelJob}. */
export interface JobControlOptions {
  /** Journal directory; default: per user. */
  stateDir?: string | undefined;
  /** Overrides the job's first retry wait (ms). */
  retryDelayMs?: number | undefined;
  /**
   * The password of the job's user (Basic authentication); the journal keeps only the user name.
   * It goes to that one job's hosts: give it for a job you name, never for a batch of jobs.
   */
  password?: string | undefined;
  /** Longest a cancel waits for the server's answer to Cancel-Session (ms); default 15 s. */
  cancelTimeoutMs?: number | undefined;
  /** Told what did not stop the command but is worth knowing (a Cancel-Session that got no answer). */
  onWarning?: ((message: string) => void) | undefined;
  logger?: Logger | undefined;
  /** Shapes the resumed job's bodies (see {@link ClientOptions.throttle}). */
  throttle?: Throttle | undefined;
}

/** Options of {@link pruneJobs}: no password, since one password would go to every job's host. */
export type PruneOptions = Omit<JobControlOptions, 'password' | 'retryDelayMs' | 'onWarning'>;

/** What {@link pruneJobs} did with one job that had failed fatally. */
export interface PruneOutcome {
  readonly job: JobSummary;
  /** Cancelled and removed from the journal. */
  readonly pruned: boolean;
  /**
   * Why a job was kept: {@link PasswordNeededError}, {@link UnknownJobError} (it runs elsewhere now,
   * or is gone), the server's refusal of the Cancel-Session, or whatever else went wrong.
   */
  readonly error?: unknown;
  /** Pruned, but the server was not told (its session lives until it expires). */
  readonly warnings?: readonly string[];
}

/**
 * The state a journal record shows: a `running` job whose process is gone is `interrupted`.
 *
 * @example
 * ```ts
 * effectiveState({ ...record, state: 'running', pid: 999999 }); // 'interrupted'
 * ```
 */
export function effectiveState(record: JobRecord): JobState {
  if (record.state === 'running') return isRunningElsewhere(record) ? 'running' : 'interrupted';
  return record.state;
}

/**
 * Summarises a journal record.
 *
 * @example
 * ```ts
 * summarize(record); // { id: '3f9c0a71b2e4', type: 'upload', state: 'interrupted', bytesDone: 4194304, ... }
 * ```
 */
function summarize(record: JobRecord): JobSummary {
  const done = record.type === 'upload' ? record.offset : record.progress.offset;
  const total = record.type === 'upload' ? (record.fileSize < 0 ? undefined : record.fileSize) : record.progress.remote?.size;
  const message = record.error?.['message'];
  return {
    id: record.id,
    type: record.type,
    state: effectiveState(record),
    bytesDone: done,
    bytesTotal: total,
    url: publicHref(record.url),
    file: record.file,
    error: typeof message === 'string' ? message : undefined,
  };
}

/**
 * Every job in a state directory.
 *
 * @example
 * ```ts
 * for (const j of await listJobs('/tmp/state')) console.log(j.id, j.state, j.bytesDone, j.bytesTotal);
 * ```
 */
export async function listJobs(stateDir: string = defaultStateDir()): Promise<JobSummary[]> {
  return (await new Journal(stateDir).list()).map(summarize);
}

/** A job id that names no job (or several). */
export class UnknownJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownJobError';
  }
}

/** A journaled job signs in as a user, and no password was given for it (the journal keeps none). */
export class PasswordNeededError extends Error {
  constructor(
    readonly jobId: string,
    readonly user: string,
    readonly url: string,
  ) {
    super(`job ${jobId} signs in as "${user}" at ${new URL(url).origin}, and the journal keeps no password`);
    this.name = 'PasswordNeededError';
  }
}

/**
 * A record as the journal holds it now, and the password an older record held (`user:password`, or
 * user information in the URL): resumed, such a record is saved again without it.
 */
function withoutPassword(found: JobRecord): { record: JobRecord; password: string | undefined } {
  const url = new URL(found.url);
  const user = found.connection.user;
  if (!(user?.includes(':') ?? false) && url.username === '' && url.password === '') return { record: found, password: undefined };
  const credentials = credentialsOf({ user }, url)!;
  const record: JobRecord = { ...found, url: publicHref(url), connection: { ...found.connection, user: credentials.user } };
  return { record, password: credentials.password };
}

async function findJob(journal: Journal, id: string): Promise<JobRecord> {
  const found = await journal.find(id);
  if (found === 'ambiguous') throw new UnknownJobError(`job id "${id}" matches several jobs; give more of it`);
  if (!found) throw new UnknownJobError(`no job "${id}" in ${journal.dir}`);
  if (isRunningElsewhere(found)) throw new UnknownJobError(`job ${found.id} is running in process ${found.pid}`);
  return found;
}

/**
 * Whether a record's job signs in and neither `password` nor the record (an older one) gives its
 * password.
 */
function passwordMissing(found: JobRecord, password: string | undefined): PasswordNeededError | undefined {
  const { record, password: journaled } = withoutPassword(found);
  const user = record.connection.user;
  return user !== undefined && (password ?? journaled) === undefined ? new PasswordNeededError(record.id, user, record.url) : undefined;
}

/** The job of a record. `needPassword`: refuse (PasswordNeededError) when its user's password is unknown. */
function jobOf(found: JobRecord, o: JobControlOptions, needPassword: boolean): UploadJob | DownloadJob {
  const { record, password: journaled } = withoutPassword(found);
  const password = o.password ?? journaled;
  const missing = needPassword ? passwordMissing(found, o.password) : undefined;
  if (missing) throw missing;
  const ctx = jobContext(record.connection, { stateDir: o.stateDir, retryDelayMs: o.retryDelayMs, cancelTimeoutMs: o.cancelTimeoutMs, logger: o.logger, throttle: o.throttle }, new URL(record.url), password);
  return record.type === 'upload' ? new UploadJob(record, ctx) : new DownloadJob(record, ctx);
}

/**
 * Resumes a job from the journal (an id or a unique prefix of one). An upload starts with Ping and
 * continues where the server stands; a download where its part file stands.
 *
 * A job that signs in with Basic authentication needs `password` again: the journal keeps only the user name.
 *
 * @throws {UnknownJobError} when no job (or several) match, or the job runs in another process.
 * @throws {PasswordNeededError} when the job signs in as a user and no `password` is given.
 * @example
 * ```ts
 * const job = await resumeJob('3f9c0a71b2e4', { stateDir: '/tmp/state', password: process.env.BITS_PASSWORD });
 * await job.result;
 * ```
 */
export async function resumeJob(id: string, o: JobControlOptions = {}): Promise<UploadJob | DownloadJob> {
  const journal = new Journal(o.stateDir ?? defaultStateDir());
  const record = await findJob(journal, id);
  return jobOf(record, o, true).start(false);
}

/** Cancels the job of a record found in the journal. */
async function cancelRecord(record: JobRecord, o: JobControlOptions): Promise<JobSummary> {
  const summary = summarize(record);
  const job = jobOf(record, o, false);
  const onWarning = o.onWarning;
  if (onWarning) job.on('warning', onWarning);
  const done = job.cancel();
  job.start(false);
  await done;
  return summary;
}

/**
 * Cancels a job from the journal: Cancel-Session for an upload with a session (within
 * `cancelTimeoutMs`), the part file of a download deleted, the journal entry removed. Without the
 * `password` of a job that signs in, the Cancel-Session goes without credentials. A server that
 * refuses it (401, 403) keeps the session: so does the journal keep the job, and the refusal is
 * thrown. A server that cannot be reached is only a warning (`onWarning`): the job is forgotten and
 * the session lives until it expires.
 *
 * @throws {UnknownJobError} when no job (or several) match, or the job runs in another process.
 * @throws {BitsClientError} the server's refusal of the Cancel-Session (the job is kept), or
 *   BITS_CLIENT_LOCAL_FILE when the job's client key cannot be read.
 * @example
 * ```ts
 * await cancelJob('3f9c0a71b2e4', { stateDir: '/tmp/state', onWarning: (m) => console.warn(m) });
 * ```
 */
export async function cancelJob(id: string, o: JobControlOptions = {}): Promise<JobSummary> {
  const journal = new Journal(o.stateDir ?? defaultStateDir());
  return cancelRecord(await findJob(journal, id), o);
}

/**
 * Cancels every job that failed fatally (state `error`), as {@link cancelJob} does: such a job never
 * goes on by itself, and its server session would otherwise wait for its timeout. Interrupted and
 * running jobs stay, and so does a job that another process resumed meanwhile (each record is read
 * again just before it is cancelled). A job that signs in is kept ({@link PasswordNeededError})
 * unless its record still holds its password (an older record): cancel it by id with its password.
 * A job that cannot be cancelled (refused, unreadable client key) is kept with its error, and the
 * others go on.
 *
 * @example
 * ```ts
 * for (const { job, pruned, error } of await pruneJobs({ stateDir: '/tmp/state' })) console.log(job.id, pruned ? 'pruned' : error);
 * ```
 */
export async function pruneJobs(o: PruneOptions = {}): Promise<PruneOutcome[]> {
  const journal = new Journal(o.stateDir ?? defaultStateDir());
  const outcomes: PruneOutcome[] = [];
  for (const listed of await journal.list()) {
    if (effectiveState(listed) !== 'error') continue;
    const warnings: string[] = [];
    try {
      // Listed failed, but it may have been resumed (or cancelled) since: look again.
      const record = await journal.load(listed.id);
      if (!record) continue;
      if (effectiveState(record) !== 'error') {
        const now = isRunningElsewhere(record) ? `running in process ${record.pid}` : effectiveState(record);
        outcomes.push({ job: summarize(record), pruned: false, error: new UnknownJobError(`job ${record.id} is ${now} now`) });
        continue;
      }
      const missing = passwordMissing(record, undefined);
      if (missing) {
        outcomes.push({ job: summarize(record), pruned: false, error: missing });
        continue;
      }
      const control: JobControlOptions = { stateDir: o.stateDir, cancelTimeoutMs: o.cancelTimeoutMs, logger: o.logger, onWarning: (m) => warnings.push(m) };
      const job = await cancelRecord(record, control);
      outcomes.push({ job, pruned: true, ...(warnings.length ? { warnings } : {}) });
    } catch (err) {
      outcomes.push({ job: summarize(listed), pruned: false, error: err });
    }
  }
  return outcomes;
}
