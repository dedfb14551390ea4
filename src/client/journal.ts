import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import envPaths from 'env-paths';
import { writeFileAtomic } from '../store/fs/durable.js';
import { readdirIfAny } from '../store/fs/fs-calls.js';
import { isProcessAlive } from '../store/fs/process-alive.js';
import { KeyedQueue } from './keyed-queue.js';

/** Where a job stands. */
export type JobState = 'running' | 'interrupted' | 'error';

/** Settings of a job that `resume` needs again. */
export interface JobConnection {
  /**
   * The user name for Basic authentication. Never the password: it is given again on resume
   * (records written before this rule held `user:password`; they are cleaned when resumed).
   */
  user?: string | undefined;
  /** Windows Authentication instead of Basic (`user` then names the NTLM account). */
  auth?: 'negotiate' | 'ntlm' | undefined;
  /** Custom headers; never credential headers (refused for journaled jobs). */
  headers?: Record<string, string> | undefined;
  /** PEM text of the trusted CA. */
  ca?: string | undefined;
  insecure?: boolean | undefined;
  /** PEM client certificate (public; the journal file is readable by its owner only). */
  cert?: string | undefined;
  /** Path of the PEM private key of `cert`: the key itself never reaches the journal. */
  keyFile?: string | undefined;
  /** PEM private key: only held in memory by jobs without a journal, and by records written before `keyFile`. */
  key?: string | undefined;
  idleTimeoutMs?: number | undefined;
  noProgressTimeoutMs?: number | undefined;
}

/** What the client knows about a remote file being downloaded (BITS consistency keys, spec §11). */
export interface RemoteVersion {
  size: number;
  etag?: string | undefined;
  lastModified?: string | undefined;
}

/** Resume state of a download (plain download or the reply of an upload-reply job). */
export interface DownloadProgress {
  url: string;
  /** Bytes held durably in the part file. */
  offset: number;
  remote?: RemoteVersion | undefined;
  /** `false` once the server has been seen ignoring `Range`. */
  rangeSupported?: boolean | undefined;
}

interface RecordBase {
  version: 1;
  id: string;
  state: JobState;
  /** Process running the job (while `state` is `running`). */
  pid?: number | undefined;
  /** The job's URL, without user information. */
  url: string;
  file: string;
  connection: JobConnection;
  createdAt: number;
  updatedAt: number;
  /** The failure that stopped the job, as JSON. */
  error?: Record<string, unknown> | undefined;
}

/** Journal of an upload job. */
export interface UploadRecord extends RecordBase {
  type: 'upload';
  /** Bytes of the next Fragment. */
  fragmentSize: number;
  /** Fragments grow up to this while Acks are fast; absent: a fixed size (shrunk on 413 only). */
  maxFragmentSize?: number | undefined;
  replyFile?: string | undefined;
  /** Size and modification time of the source when the job started (BG_E_LOCAL_FILE_CHANGED). */
  fileSize: number;
  fileMtimeMs: number;
  sessionId?: string | undefined;
  /** The Host-Id of the session, when packets go to it. */
  hostId?: string | undefined;
  hostIdFallbackTimeoutMs?: number | undefined;
  /** Host-Ids that were given up on (never switched to again in this job). */
  failedHostIds?: string[] | undefined;
  /** Bytes the server acknowledged. */
  offset: number;
  /** The server holds the whole file. */
  uploaded: boolean;
  replyUrl?: string | undefined;
  reply?: DownloadProgress | undefined;
  replyDone?: boolean | undefined;
  /** A Close-Session was sent and no Ack came back. */
  closeUnanswered?: boolean | undefined;
  /**
   * Stop before Close-Session once every byte (and the reply) is in: the job ends held, its record
   * kept, and Close-Session is sent when it is resumed with this cleared (a background job's
   * `complete`, as BITS sends it on `IBackgroundCopyJob::Complete`).
   */
  holdClose?: boolean | undefined;
}

/** Journal of a download job. */
export interface DownloadRecord extends RecordBase {
  type: 'download';
  progress: DownloadProgress;
}

/** Any job record. */
export type JobRecord = UploadRecord | DownloadRecord;

/**
 * The per-user default state directory (`~/.local/share/bits-upload` on Linux, the platform's
 * equivalent elsewhere, from env-paths).
 *
 * @example
 * ```ts
 * defaultStateDir(); // '/home/me/.local/share/bits-upload'
 * ```
 */
export function defaultStateDir(): string {
  return envPaths('bits-upload', { suffix: '' }).data;
}

/**
 * A new job id: 12 lowercase hex digits.
 *
 * @example
 * ```ts
 * newJobId(); // '3f9c0a71b2e4'
 * ```
 */
export function newJobId(): string {
  return randomBytes(6).toString('hex');
}

const ID = /^[0-9a-f]{12}$/;

/** Options of {@link Journal.save}. */
export interface SaveOptions {
  /**
   * `false` for a save that only records progress the server knows better (an upload's offset): the
   * record is replaced atomically (temp file, rename), so a killed process leaves the old record or
   * the new one, but nothing is fsynced; after a crash of the machine the record may be an older
   * one, and the server's answer to the next Fragment resyncs the offset. Default `true`.
   */
  readonly durable?: boolean | undefined;
}

/**
 * Job records in a state directory, one JSON file each under `<stateDir>/jobs/`, written atomically
 * (temp file, fsync, rename, directory fsync) so a killed process leaves the old record or the new
 * one, never a torn one. Files are private to their owner (they may hold credentials).
 *
 * @example
 * ```ts
 * const journal = new Journal('/tmp/state');
 * await journal.save(record);
 * const all = await journal.list();
 * ```
 */
export class Journal {
  readonly dir: string;
  private ready: Promise<void> | undefined;
  private readonly queue = new KeyedQueue();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'jobs');
  }

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(() => undefined);
    return this.ready;
  }

  /** Writes a record atomically (durably unless `durable: false`); saves of one job are applied in call order. */
  save(record: JobRecord, options: SaveOptions = {}): Promise<void> {
    const text = JSON.stringify({ ...record, updatedAt: Date.now() }, null, 2);
    const durable = options.durable ?? true;
    return this.queue.run(record.id, () => this.write(record.id, text, durable));
  }

  private async write(id: string, text: string, durable: boolean): Promise<void> {
    await this.ensureDir();
    const path = join(this.dir, `${id}.json`);
    // Another process (a resume, a cancel) may save the same job: each write gets its own temp file.
    // Directories cannot be fsynced on every platform.
    if (durable) {
      await writeFileAtomic(path, text, { tolerateDirSync: true, uniqueTemp: true });
      return;
    }
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, path);
  }

  /** Reads one record; `undefined` when there is none. */
  async load(id: string): Promise<JobRecord | undefined> {
    if (!ID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.dir, `${id}.json`), 'utf8')) as JobRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Every record, oldest first. Unreadable files are skipped. */
  async list(): Promise<JobRecord[]> {
    const out: JobRecord[] = [];
    for (const name of await readdirIfAny(this.dir)) {
      const m = /^([0-9a-f]{12})\.json$/.exec(name);
      if (!m) continue;
      const record = await this.load(m[1]!).catch(() => undefined);
      if (record) out.push(record);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Finds a job by its id or a unique prefix of it. */
  async find(idOrPrefix: string): Promise<JobRecord | 'ambiguous' | undefined> {
    const exact = await this.load(idOrPrefix);
    if (exact) return exact;
    const matches = (await this.list()).filter((r) => r.id.startsWith(idOrPrefix.toLowerCase()));
    if (matches.length > 1) return 'ambiguous';
    return matches[0];
  }

  /** Deletes a record (after pending saves of it). */
  async remove(id: string): Promise<void> {
    await this.queue.settled(id);
    await rm(join(this.dir, `${id}.json`), { force: true });
  }
}

/**
 * Whether the process that last ran a job is still alive (so another process must not run it).
 *
 * @example
 * ```ts
 * if (isRunningElsewhere(record)) console.log(`job ${record.id} is running in process ${record.pid}`);
 * ```
 */
export function isRunningElsewhere(record: JobRecord): boolean {
  if (record.state !== 'running' || record.pid === undefined || record.pid === process.pid) return false;
  return isProcessAlive(record.pid);
}
