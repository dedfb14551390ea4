import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentJobInfo, AgentJobState, AgentJobType, Priority } from '../client/agent-protocol.js';
import { KeyedQueue } from '../client/keyed-queue.js';
import { writeFileAtomic } from '../store/fs/durable.js';
import { readdirIfAny } from '../store/fs/fs-calls.js';

/** One file of a job as the agent keeps it. */
export interface AgentFileRecord {
  url: string;
  /** The final local path (the upload's source; where a download ends up at `complete`). */
  file: string;
  /** The client journal entry (under the agent's own journal) of this file's transfer. */
  transferId?: string | undefined;
  bytesDone: number;
  bytesTotal?: number | undefined;
  /** Transferred: a download is whole under its staging name; an upload is held before Close-Session. */
  done: boolean;
}

/** The settings of a job that its transfers need again after a restart. */
export interface AgentJobSettings {
  minRetryDelayMs: number;
  noProgressTimeoutMs: number;
  headers?: Record<string, string> | undefined;
  /** The user name; its password is in `sealedPassword`. */
  user?: string | undefined;
  sealedPassword?: string | undefined;
  auth?: 'negotiate' | 'ntlm' | undefined;
  ca?: string | undefined;
  insecure?: boolean | undefined;
  cert?: string | undefined;
  keyFile?: string | undefined;
  notifyCommand?: string[] | undefined;
  notifyShell?: boolean | undefined;
  notifyUrl?: string | undefined;
  autoComplete: boolean;
  maxRateBps?: number | undefined;
  yield: boolean;
  replyFile?: string | undefined;
}

/** A background job as the agent keeps it (one JSON file each). */
export interface AgentJobRecord {
  version: 1;
  id: string;
  name?: string | undefined;
  type: AgentJobType;
  state: AgentJobState;
  priority: Priority;
  files: AgentFileRecord[];
  settings: AgentJobSettings;
  createdAt: number;
  modifiedAt: number;
  transferredAt?: number | undefined;
  completedAt?: number | undefined;
  error?: { code: string; message: string } | undefined;
  errorCount: number;
  /** `complete` was asked for and is not done yet (an upload's Close-Session). */
  completing?: boolean | undefined;
  /** The last state a notification was delivered (or given up) for. */
  notified?: AgentJobState | undefined;
  /** Since when the job waits for a slot (aging, see the scheduler). */
  queuedAt: number;
  /** When the job last had a slot (round-robin within a priority). */
  servedAt?: number | undefined;
}

/** Where the staging copy of a download (or a reply) waits for `complete`. */
export const STAGING_SUFFIX = '.bits-transferred';

/** The staging path of a final path. */
export function stagingPath(file: string): string {
  return file + STAGING_SUFFIX;
}

/**
 * What the control API shows of a record (no credentials).
 *
 * @example
 * ```ts
 * reply({ id, result: toInfo(record) });
 * ```
 */
export function toInfo(r: AgentJobRecord): AgentJobInfo {
  let total: number | undefined = 0;
  for (const f of r.files) total = total === undefined || f.bytesTotal === undefined ? undefined : total + f.bytesTotal;
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    state: r.state,
    priority: r.priority,
    files: r.files.map((f) => ({ url: f.url, file: f.file, bytesDone: f.bytesDone, bytesTotal: f.bytesTotal, done: f.done })),
    bytesDone: r.files.reduce((n, f) => n + f.bytesDone, 0),
    bytesTotal: total,
    createdAt: r.createdAt,
    modifiedAt: r.modifiedAt,
    transferredAt: r.transferredAt,
    completedAt: r.completedAt,
    error: r.error,
    errorCount: r.errorCount,
    autoComplete: r.settings.autoComplete,
    maxRateBps: r.settings.maxRateBps,
    yield: r.settings.yield,
    replyFile: r.settings.replyFile,
    completing: r.completing === true,
  };
}

const ID = /^([0-9a-f]{12})\.json$/;

/**
 * The agent's job records under `<dir>`, each written atomically and durably (temp file, fsync,
 * rename, directory fsync): a killed agent leaves the old record or the new one.
 *
 * @example
 * ```ts
 * const store = new AgentJobStore('/state/agent/queue');
 * await store.save(record);
 * ```
 */
export class AgentJobStore {
  private ready: Promise<unknown> | undefined;
  private readonly queue = new KeyedQueue();

  constructor(readonly dir: string) {}

  /** Writes a record (saves of one job are applied in call order). */
  save(record: AgentJobRecord): Promise<void> {
    record.modifiedAt = Date.now();
    const text = JSON.stringify(record, null, 2);
    return this.queue.run(record.id, async () => {
      this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
      await this.ready;
      await writeFileAtomic(join(this.dir, `${record.id}.json`), text, { tolerateDirSync: true });
    });
  }

  /** Every readable record; unreadable files are reported to `onBad` and skipped. */
  async list(onBad: (file: string, err: unknown) => void): Promise<AgentJobRecord[]> {
    const out: AgentJobRecord[] = [];
    for (const name of await readdirIfAny(this.dir)) {
      if (!ID.test(name)) continue;
      const path = join(this.dir, name);
      try {
        out.push(JSON.parse(await readFile(path, 'utf8')) as AgentJobRecord);
      } catch (err) {
        onBad(path, err);
      }
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  async remove(id: string): Promise<void> {
    await this.queue.settled(id);
    await rm(join(this.dir, `${id}.json`), { force: true });
  }
}
