import { rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { FINAL_STATES } from '../client/agent-protocol.js';
import type { AgentErrorCode, AgentJobChanges, AgentJobInfo, AgentJobSpec, AgentStatus, Priority } from '../client/agent-protocol.js';
import { download } from '../client/download.js';
import type { DownloadJob } from '../client/download.js';
import { PART_SUFFIX } from '../client/download-sink.js';
import { BitsClientError, describeClientError, isBitsClientError, toClientError } from '../client/errors.js';
import type { JobPhase } from '../client/job-events.js';
import { cancelJob, resumeJob } from '../client/jobs.js';
import { Journal } from '../client/journal.js';
import { DEFAULT_MAX_FRAGMENT_SIZE, silentLogger } from '../client/options.js';
import type { ClientOptions } from '../client/options.js';
import type { Throttle } from '../client/throttle.js';
import { upload } from '../client/upload.js';
import type { UploadJob } from '../client/upload.js';
import { syncDir } from '../store/fs/durable.js';
import { acquireStateDir, StateDirInUseError } from '../store/fs/state-dir-lock.js';
import { AgentJobStore, stagingPath, toInfo } from './job-record.js';
import type { AgentJobRecord } from './job-record.js';
import { changesProblem, newRecord, specProblem } from './job-spec.js';
import { hasUsableNetwork, isLocalHost } from './network.js';
import { DEFAULT_NOTIFY_POLICY, notify } from './notify.js';
import type { NotifyPolicy } from './notify.js';
import type { RateSchedule } from './rate-schedule.js';
import { effectiveLevel, LEVEL, pickRunning } from './scheduler.js';
import type { Schedulable } from './scheduler.js';
import { Secrets } from './secrets.js';
import { TokenBucket } from './token-bucket.js';
import { YieldController } from './yield-controller.js';
import { AGENT_DEFAULTS } from './defaults.js';

export { AGENT_DEFAULTS } from './defaults.js';

/** Options of {@link Agent.start}. */
export interface AgentOptions {
  /** The state directory the agent owns (one agent per state directory). */
  readonly stateDir: string;
  readonly maxConcurrent?: number | undefined;
  /** The global limit (bytes per second) when there is no schedule. */
  readonly maxRateBps?: number | undefined;
  /** Global limits by time of week; wins over `maxRateBps`. */
  readonly schedule?: RateSchedule | undefined;
  readonly sliceMs?: number | undefined;
  readonly agingMs?: number | undefined;
  readonly retainMs?: number | undefined;
  readonly minRetryDelayMs?: number | undefined;
  readonly noProgressTimeoutMs?: number | undefined;
  readonly networkPollMs?: number | undefined;
  readonly notifyPolicy?: NotifyPolicy | undefined;
  readonly logger?: Logger | undefined;
  readonly version?: string | undefined;
}

/** Why a run was stopped from outside. */
type StopReason = 'suspend' | 'preempt' | 'shutdown' | 'cancel' | 'offline';

/** A job that holds a slot: its transfer in flight, why it is being stopped, its own rate limit. */
interface Run {
  handle: UploadJob | DownloadJob | undefined;
  stop: StopReason | undefined;
  readonly since: number;
  /** The level it competes at (its priority's when started, or when the priority changes). */
  level: number;
  readonly bucket: TokenBucket;
  readonly yielder: YieldController | undefined;
  done: Promise<void>;
}

/** A request the agent refuses, with a control API error code. */
export class AgentRequestError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentRequestError';
  }
}

/** The error of a job that waits for a network. */
const NO_ROUTE = 'BITS_AGENT_NO_ROUTE';
const NO_ROUTE_MESSAGE = 'no usable network: waiting for one (no retries are counted meanwhile)';

/** States from which `suspend` is allowed. */
const SUSPENDABLE = new Set(['QUEUED', 'CONNECTING', 'TRANSFERRING', 'TRANSIENT_ERROR', 'ERROR']);

/**
 * The background transfer service: owns the jobs of one state directory, runs them by priority
 * within a limit of concurrent jobs, shapes their bandwidth, waits out network loss, notifies, and
 * keeps everything in files so that a restart (or SIGKILL) loses nothing. Each file of a job is
 * transferred by the client library's upload or download job, journaled in the agent's own
 * journal (`<stateDir>/agent/jobs/`); the agent's job records are in `<stateDir>/agent/queue/`.
 *
 * @example
 * ```ts
 * const agent = await Agent.start({ stateDir: '/var/lib/bits' });
 * const job = await agent.enqueue({ type: 'download', files: [{ url: 'https://h/a.iso', file: '/tmp/a.iso' }] });
 * ```
 */
export class Agent {
  private readonly jobs = new Map<string, AgentJobRecord>();
  private readonly runs = new Map<string, Run>();
  /** Jobs a control request is working on (cancel, suspend): the scheduler leaves them alone. */
  private readonly busy = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly listeners = new Set<(job: AgentJobInfo) => void>();
  private readonly global: TokenBucket;
  private readonly logger: Logger;
  /** `<stateDir>/agent`: the transfers' journal (`jobs/`), the job records (`queue/`), the key, the lock. */
  private readonly transfers: string;
  private readonly journal: Journal;
  private readonly store: AgentJobStore;
  private timers: NodeJS.Timeout[] = [];
  private online = true;
  private stopping = false;
  private scheduled = false;
  private lastSave = new Map<string, number>();
  private readonly notifying = new Set<Promise<void>>();
  private readonly notifyAbort = new AbortController();

  private constructor(
    private readonly o: AgentOptions,
    private readonly secrets: Secrets,
    private readonly release: () => Promise<void>,
  ) {
    this.logger = o.logger ?? silentLogger();
    this.transfers = join(resolve(o.stateDir), 'agent');
    this.journal = new Journal(this.transfers);
    this.store = new AgentJobStore(join(this.transfers, 'queue'));
    this.global = new TokenBucket(this.currentGlobalRate());
  }

  /**
   * Takes the state directory (refused while another agent holds it), loads its jobs, and starts
   * scheduling. The control socket is the caller's (see `serveControl`).
   *
   * @throws {Error} when another agent owns the state directory.
   */
  static async start(o: AgentOptions): Promise<Agent> {
    const root = join(resolve(o.stateDir), 'agent');
    const release = await acquireStateDir(root, 'agent.pid').catch((err: unknown) => {
      throw err instanceof StateDirInUseError ? new Error(`another agent (process ${err.pid}) owns ${root}`) : err;
    });
    try {
      const agent = new Agent(o, await Secrets.open(root), release);
      await agent.load();
      agent.begin();
      return agent;
    } catch (err) {
      await release();
      throw err;
    }
  }

  private get maxConcurrent(): number {
    return this.o.maxConcurrent ?? AGENT_DEFAULTS.maxConcurrent;
  }

  private currentGlobalRate(): number | undefined {
    return this.o.schedule ? this.o.schedule.rateAt(new Date()) : this.o.maxRateBps;
  }

  /** Whether bodies need shaping at all (1 MiB pieces otherwise). */
  private shaped(rec: AgentJobRecord): boolean {
    return this.o.schedule !== undefined || this.o.maxRateBps !== undefined || rec.settings.maxRateBps !== undefined || rec.settings.yield;
  }

  private async load(): Promise<void> {
    const records = await this.store.list((file, err) => this.logger.error({ file, err }, 'unreadable job record; skipped'));
    const now = Date.now();
    for (const r of records) {
      if (FINAL_STATES.has(r.state) && now - (r.completedAt ?? r.modifiedAt) > (this.o.retainMs ?? AGENT_DEFAULTS.retainMs)) {
        await this.store.remove(r.id);
        continue;
      }
      // What was running when the agent stopped (or was killed) waits for a slot again.
      if (r.state === 'CONNECTING' || r.state === 'TRANSFERRING' || r.state === 'TRANSIENT_ERROR') {
        r.state = 'QUEUED';
        r.queuedAt = now;
      }
      this.jobs.set(r.id, r);
    }
    // Transfers this agent's previous life was running are its own now (the old process is gone).
    const referenced = new Set(records.flatMap((r) => r.files.map((f) => f.transferId)));
    for (const t of await this.journal.list()) {
      if (!referenced.has(t.id)) {
        this.logger.warn({ transfer: t.id }, 'transfer of no job; removed');
        await this.journal.remove(t.id);
      } else if (t.state === 'running') {
        t.state = 'interrupted';
        t.pid = undefined;
        await this.journal.save(t);
      }
    }
    this.logger.info({ jobs: this.jobs.size, stateDir: this.o.stateDir }, 'agent started');
    for (const r of this.jobs.values()) this.notifyIfDue(r);
  }

  private begin(): void {
    this.online = hasUsableNetwork();
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(1_000, () => {
      this.global.setRate(this.currentGlobalRate());
      this.schedule();
    });
    every(500, () => this.flush());
    every(this.o.networkPollMs ?? AGENT_DEFAULTS.networkPollMs, () => this.pollNetwork());
    every(60_000, () => void this.sweep());
    this.schedule();
  }

  // ---- control API --------------------------------------------------------------------------

  /** Subscribes to every change of every job; returns the unsubscribe function. */
  subscribe(listener: (job: AgentJobInfo) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Queues a new job.
   *
   * @throws {AgentRequestError} BAD_REQUEST naming what is wrong with the spec.
   */
  async enqueue(spec: AgentJobSpec): Promise<AgentJobInfo> {
    const problem = specProblem(spec);
    if (problem) throw new AgentRequestError('BAD_REQUEST', problem);
    if (spec.type !== 'download' && spec.files[0] !== undefined) {
      const st = await stat(spec.files[0].file).catch(() => undefined);
      if (!st?.isFile()) throw new AgentRequestError('BAD_REQUEST', `${spec.files[0]!.file} is not a readable file`);
    }
    const targets = spec.type === 'download' ? spec.files.map((f) => f.file) : spec.replyFile !== undefined ? [spec.replyFile] : [];
    for (const target of targets) {
      const st = await stat(dirname(resolve(target))).catch(() => undefined);
      if (!st?.isDirectory()) throw new AgentRequestError('BAD_REQUEST', `${dirname(resolve(target))} is not a folder (for ${target})`);
    }
    const rec = newRecord(spec, this.secrets, {
      minRetryDelayMs: this.o.minRetryDelayMs ?? AGENT_DEFAULTS.minRetryDelayMs,
      noProgressTimeoutMs: this.o.noProgressTimeoutMs ?? AGENT_DEFAULTS.noProgressTimeoutMs,
    });
    await this.store.save(rec);
    this.jobs.set(rec.id, rec);
    this.logger.info({ job: rec.id, type: rec.type, priority: rec.priority, files: rec.files.length }, 'job queued');
    this.changed(rec);
    return toInfo(rec);
  }

  /** Every job, oldest first. */
  list(): AgentJobInfo[] {
    return [...this.jobs.values()].sort((a, b) => a.createdAt - b.createdAt).map(toInfo);
  }

  /** @throws {AgentRequestError} UNKNOWN_JOB or AMBIGUOUS_JOB. */
  info(id: string): AgentJobInfo {
    return toInfo(this.find(id));
  }

  status(): AgentStatus {
    return {
      pid: process.pid,
      stateDir: resolve(this.o.stateDir),
      version: this.o.version ?? '0',
      maxConcurrent: this.maxConcurrent,
      maxRateBps: this.global.rate,
      jobs: this.jobs.size,
      running: this.runs.size,
    };
  }

  /** A job by its id (braces allowed, as bitsadmin prints GUIDs), a unique prefix, or its name. */
  private find(id: string): AgentJobRecord {
    const bare = id.replace(/^\{(.*)\}$/, '$1');
    const exact = this.jobs.get(bare);
    if (exact) return exact;
    const prefix = bare.toLowerCase();
    const matches = /^[0-9a-f]+$/.test(prefix) ? [...this.jobs.values()].filter((j) => j.id.startsWith(prefix)) : [];
    if (matches.length > 1) throw new AgentRequestError('AMBIGUOUS_JOB', `job id "${id}" matches ${matches.length} jobs; give more of it`);
    if (matches.length === 1) return matches[0]!;
    // A name names the job that has it and has not ended.
    const named = [...this.jobs.values()].filter((j) => j.name === id && !FINAL_STATES.has(j.state));
    if (named.length > 1) throw new AgentRequestError('AMBIGUOUS_JOB', `${named.length} jobs are named "${id}": give the id`);
    if (named.length === 0) throw new AgentRequestError('UNKNOWN_JOB', `no job "${id}"`);
    return named[0]!;
  }

  /** Runs `fn` on a job while the scheduler leaves it alone (one control operation at a time per job). */
  private async exclusive<T>(rec: AgentJobRecord, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(rec.id)) throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is being changed by another request; try again`);
    this.busy.add(rec.id);
    try {
      return await fn();
    } finally {
      this.busy.delete(rec.id);
      this.schedule();
    }
  }

  /**
   * Suspends a job: its transfer stops (resumably) and it waits for `resume`.
   *
   * @throws {AgentRequestError} WRONG_STATE for a job that is transferred or ended.
   */
  async suspend(id: string): Promise<AgentJobInfo> {
    const rec = this.find(id);
    if (rec.state === 'SUSPENDED') return toInfo(rec);
    if (!SUSPENDABLE.has(rec.state)) throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state}: only a job that is not yet transferred can be suspended`);
    return this.exclusive(rec, async () => {
      await this.stopRun(rec, 'suspend');
      if (SUSPENDABLE.has(rec.state)) await this.setState(rec, 'SUSPENDED');
      return toInfo(rec);
    });
  }

  /**
   * Queues a suspended or failed job again (a job that is queued or running already is left as it
   * is).
   *
   * @throws {AgentRequestError} WRONG_STATE for a job that is transferred or ended.
   */
  async resume(id: string): Promise<AgentJobInfo> {
    const rec = this.find(id);
    if (rec.files.length === 0) throw new AgentRequestError('WRONG_STATE', `job ${rec.id} has no file yet: add one first`);
    if (rec.state === 'SUSPENDED' || rec.state === 'ERROR') {
      rec.error = undefined;
      // (a job that fails again after this is notified again)
      rec.notified = undefined;
      rec.queuedAt = Date.now();
      await this.setState(rec, rec.completing ? 'TRANSFERRED' : 'QUEUED');
      this.schedule();
      return toInfo(rec);
    }
    if (rec.state === 'TRANSFERRED' || FINAL_STATES.has(rec.state)) {
      throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state}: nothing to resume${rec.state === 'TRANSFERRED' ? ' (complete it)' : ''}`);
    }
    return toInfo(rec);
  }

  /**
   * Cancels a job: Cancel-Session for an upload's session, partial and staged files deleted, the job
   * `CANCELLED`. A server that cannot be reached (or refuses) is logged: its session expires.
   *
   * @throws {AgentRequestError} WRONG_STATE for a job that already ended.
   */
  async cancel(id: string): Promise<AgentJobInfo> {
    const rec = this.find(id);
    if (FINAL_STATES.has(rec.state)) throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state} already`);
    return this.exclusive(rec, async () => {
      await this.stopRun(rec, 'cancel');
      const password = this.password(rec);
      for (const f of rec.files) {
        if (f.transferId === undefined) continue;
        if (await this.journal.load(f.transferId)) {
          await cancelJob(f.transferId, { stateDir: this.transfers, password, logger: this.logger, onWarning: (m) => this.logger.warn({ job: rec.id }, m) }).catch(
            (err: unknown) => this.logger.warn({ job: rec.id, err }, 'Cancel-Session not accepted; the server keeps the session until it expires'),
          );
          await this.journal.remove(f.transferId);
        }
      }
      for (const path of this.stagedFiles(rec)) await rm(path, { force: true });
      rec.completing = undefined;
      rec.completedAt = Date.now();
      await this.setState(rec, 'CANCELLED');
      this.logger.info({ job: rec.id }, 'job cancelled');
      return toInfo(rec);
    });
  }

  /**
   * Completes a `TRANSFERRED` job: downloaded files (and an upload-reply's reply) are renamed to
   * their final names, an upload's Close-Session is sent. Returns at once with `completing`; the
   * job becomes `ACKNOWLEDGED` when done.
   *
   * @throws {AgentRequestError} WRONG_STATE for a job that is not `TRANSFERRED`.
   */
  async complete(id: string): Promise<AgentJobInfo> {
    const rec = this.find(id);
    if (rec.state === 'ACKNOWLEDGED' || rec.completing) return toInfo(rec);
    if (rec.state !== 'TRANSFERRED') throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state}: only a TRANSFERRED job can be completed`);
    rec.completing = true;
    await this.save(rec);
    this.changed(rec);
    return toInfo(rec);
  }

  /**
   * Changes a job's settings; files are added only while it is suspended (an upload job has one
   * file at most). Settings apply from the job's next start.
   *
   * @throws {AgentRequestError} BAD_REQUEST for a bad change, WRONG_STATE for a job that ended (or
   *   files added to a job that is not suspended).
   */
  async update(id: string, changes: AgentJobChanges): Promise<AgentJobInfo> {
    const problem = changesProblem(changes);
    if (problem) throw new AgentRequestError('BAD_REQUEST', problem);
    const rec = this.find(id);
    if (FINAL_STATES.has(rec.state) || rec.state === 'TRANSFERRED') throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state}: it cannot be changed`);
    const s = rec.settings;
    const add = changes.addFiles ?? [];
    if (add.length > 0) {
      if (rec.state !== 'SUSPENDED') throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state}: files are added while it is suspended`);
      if (rec.type !== 'download' && rec.files.length + add.length > 1) throw new AgentRequestError('BAD_REQUEST', `an ${rec.type} job has exactly one file`);
      const next = [...rec.files.map((f) => f.file), ...add.map((f) => resolve(f.file))];
      if (new Set(next).size !== next.length) throw new AgentRequestError('BAD_REQUEST', 'two files of the job have the same local path');
      for (const f of add) {
        const u = new URL(f.url);
        if (u.username !== '' || u.password !== '') throw new AgentRequestError('BAD_REQUEST', `${u.origin}: give credentials as user, not in the URL`);
        const st = rec.type === 'download' ? await stat(dirname(resolve(f.file))).catch(() => undefined) : await stat(f.file).catch(() => undefined);
        if (rec.type === 'download' ? !st?.isDirectory() : !st?.isFile()) {
          throw new AgentRequestError('BAD_REQUEST', rec.type === 'download' ? `${dirname(resolve(f.file))} is not a folder (for ${f.file})` : `${f.file} is not a readable file`);
        }
      }
    }
    if (changes.user !== undefined) {
      const i = changes.user.indexOf(':');
      s.user = i < 0 ? changes.user : changes.user.slice(0, i);
      s.sealedPassword = i < 0 ? undefined : this.secrets.seal(changes.user.slice(i + 1));
    }
    if (changes.auth !== undefined) s.auth = changes.auth;
    if (s.auth === 'negotiate') {
      s.user = undefined;
      s.sealedPassword = undefined;
    }
    if (changes.name !== undefined) rec.name = changes.name;
    if (changes.minRetryDelayMs !== undefined) s.minRetryDelayMs = changes.minRetryDelayMs;
    if (changes.noProgressTimeoutMs !== undefined) s.noProgressTimeoutMs = changes.noProgressTimeoutMs;
    if (changes.notifyCommand !== undefined) s.notifyCommand = changes.notifyCommand.length > 0 ? [...changes.notifyCommand] : undefined;
    if (changes.notifyShell !== undefined) s.notifyShell = changes.notifyShell;
    if (s.notifyShell && s.notifyCommand !== undefined && s.notifyCommand.length !== 1) s.notifyCommand = [s.notifyCommand.join(' ')];
    if (changes.notifyUrl !== undefined) s.notifyUrl = changes.notifyUrl === '' ? undefined : changes.notifyUrl;
    if (changes.autoComplete !== undefined) s.autoComplete = changes.autoComplete;
    if (changes.replyFile !== undefined) {
      if (rec.type !== 'upload-reply') throw new AgentRequestError('BAD_REQUEST', 'replyFile is for upload-reply jobs');
      s.replyFile = resolve(changes.replyFile);
    }
    for (const f of add) rec.files.push({ url: f.url, file: resolve(f.file), bytesDone: 0, done: false });
    if (rec.type === 'upload-reply' && s.replyFile === undefined && rec.files[0]) s.replyFile = `${rec.files[0].file}.reply`;
    await this.save(rec);
    this.changed(rec);
    return toInfo(rec);
  }

  /** Changes a job's priority (a running job may give its slot away, or take one). */
  async setPriority(id: string, priority: Priority): Promise<AgentJobInfo> {
    const rec = this.find(id);
    if (FINAL_STATES.has(rec.state)) throw new AgentRequestError('WRONG_STATE', `job ${rec.id} is ${rec.state} already`);
    rec.priority = priority;
    // A running job competes at its new level from now on: the scheduler may take its slot away.
    const run = this.runs.get(rec.id);
    if (run) run.level = LEVEL[priority];
    await this.save(rec);
    this.changed(rec);
    return toInfo(rec);
  }

  /** Stops every transfer (resumably), waits for them, and releases the state directory. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const runs = [...this.runs.values()];
    for (const run of runs) {
      run.stop = 'shutdown';
      run.handle?.stop();
    }
    await Promise.all(runs.map((r) => r.done));
    this.flush(true);
    this.notifyAbort.abort();
    await Promise.all([...this.notifying]);
    await Promise.all([...this.jobs.values()].map((r) => this.store.save(r).catch(() => undefined)));
    await this.release();
    this.logger.info('agent stopped');
  }

  // ---- scheduling ---------------------------------------------------------------------------

  /** Runs the scheduler soon (once, however often it is asked for in one turn). */
  private schedule(): void {
    if (this.scheduled || this.stopping) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.stopping) this.reschedule();
    });
  }

  private routable(rec: AgentJobRecord): boolean {
    return this.online || rec.files.every((f) => isLocalHost(new URL(f.url)));
  }

  private reschedule(): void {
    const now = Date.now();
    const view: Schedulable[] = [];
    for (const r of this.jobs.values()) {
      if (this.busy.has(r.id)) continue;
      const run = this.runs.get(r.id);
      if (run?.stop) continue;
      view.push({
        id: r.id,
        priority: r.priority,
        state: r.state,
        completing: r.completing === true,
        createdAt: r.createdAt,
        queuedAt: r.queuedAt,
        servedAt: r.servedAt,
        running: run ? { since: run.since, level: run.level } : undefined,
        routable: this.routable(r),
      });
    }
    const want = pickRunning(view, now, {
      maxConcurrent: this.maxConcurrent,
      sliceMs: this.o.sliceMs ?? AGENT_DEFAULTS.sliceMs,
      agingMs: this.o.agingMs ?? AGENT_DEFAULTS.agingMs,
    });
    for (const [id, run] of this.runs) {
      if (!run.stop && !want.has(id) && !this.busy.has(id)) void this.preempt(id, run);
    }
    for (const id of want) {
      if (!this.runs.has(id)) this.startRun(this.jobs.get(id)!, now);
    }
    // Without a network, waiting jobs say why they wait, and burn no retries meanwhile.
    if (!this.online) {
      for (const r of this.jobs.values()) {
        if (r.state === 'QUEUED' && !this.runs.has(r.id) && !this.busy.has(r.id) && !this.routable(r)) {
          r.error = { code: NO_ROUTE, message: NO_ROUTE_MESSAGE };
          void this.setState(r, 'TRANSIENT_ERROR');
        }
      }
    }
  }

  private async preempt(id: string, run: Run): Promise<void> {
    const rec = this.jobs.get(id);
    if (!rec) return;
    run.stop = !this.routable(rec) ? 'offline' : 'preempt';
    run.handle?.stop();
    this.logger.info({ job: id, reason: run.stop }, 'job gives up its slot');
    await run.done;
  }

  /** Stops a job's run (if any) for `reason` and waits for it. */
  private async stopRun(rec: AgentJobRecord, reason: StopReason): Promise<void> {
    const run = this.runs.get(rec.id);
    if (!run) return;
    run.stop = reason;
    if (reason === 'cancel') await run.handle?.cancel().catch(() => undefined);
    else run.handle?.stop();
    await run.done;
  }

  private startRun(rec: AgentJobRecord, now: number): void {
    const level = effectiveLevel({ priority: rec.priority, queuedAt: rec.queuedAt, running: undefined }, now, { agingMs: this.o.agingMs ?? AGENT_DEFAULTS.agingMs });
    const run: Run = {
      handle: undefined,
      stop: undefined,
      since: now,
      level,
      bucket: new TokenBucket(rec.settings.maxRateBps),
      yielder: rec.settings.yield ? new YieldController(this.logger.child({ agentJob: rec.id })) : undefined,
      done: Promise.resolve(),
    };
    rec.servedAt = now;
    this.runs.set(rec.id, run);
    run.done = this.execute(rec, run).finally(() => {
      this.runs.delete(rec.id);
      this.schedule();
    });
  }

  // ---- running a job ------------------------------------------------------------------------

  private password(rec: AgentJobRecord): string | undefined {
    const sealed = rec.settings.sealedPassword;
    return sealed === undefined ? undefined : this.secrets.unseal(sealed);
  }

  private throttle(rec: AgentJobRecord, run: Run): Throttle | undefined {
    if (!this.shaped(rec)) return undefined;
    return {
      take: async (bytes, signal) => {
        await run.bucket.take(bytes, signal);
        if (run.yielder) await run.yielder.take(bytes, signal);
        await this.global.take(bytes, signal);
      },
    };
  }

  private interruptIfStopped(run: Run): void {
    if (run.stop) throw new BitsClientError('BITS_CLIENT_INTERRUPTED', `stopped (${run.stop})`);
  }

  private async execute(rec: AgentJobRecord, run: Run): Promise<void> {
    try {
      for (let i = 0; i < rec.files.length; i++) {
        if (rec.files[i]!.done) continue;
        this.interruptIfStopped(run);
        await this.transferFile(rec, i, run);
      }
      this.interruptIfStopped(run);
      if (rec.state !== 'TRANSFERRED') {
        rec.transferredAt = Date.now();
        rec.error = undefined;
        await this.setState(rec, 'TRANSFERRED');
        this.logger.info({ job: rec.id }, 'job transferred');
        if (!rec.settings.autoComplete) this.notifyIfDue(rec);
      }
      if (rec.settings.autoComplete || rec.completing) {
        rec.completing = true;
        await this.finishComplete(rec, run);
      }
    } catch (err) {
      await this.runFailed(rec, run, err);
    }
  }

  /** The client options of a job's new transfer. */
  private clientOptions(rec: AgentJobRecord, run: Run): ClientOptions {
    const s = rec.settings;
    const password = this.password(rec);
    return {
      user: s.user === undefined ? undefined : `${s.user}:${password ?? ''}`,
      auth: s.auth,
      headers: s.headers,
      ca: s.ca,
      insecure: s.insecure,
      cert: s.cert,
      keyFile: s.keyFile,
      retryDelayMs: s.minRetryDelayMs,
      noProgressTimeoutMs: s.noProgressTimeoutMs,
      stateDir: this.transfers,
      logger: this.logger.child({ agentJob: rec.id }),
      throttle: this.throttle(rec, run),
    };
  }

  /**
   * Fragment sizes of a new upload: small while yielding (each Ack is a sample of the path's
   * delay), at most two seconds' worth under a rate limit (so that progress and resumption stay
   * fine-grained), the client's own otherwise (8 MiB, growing).
   */
  private fragmentSizing(rec: AgentJobRecord): { fragmentSize?: number; maxFragmentSize?: number } {
    const first = 256 * 1024;
    if (rec.settings.yield) return { fragmentSize: first, maxFragmentSize: 1024 * 1024 };
    const limits = [rec.settings.maxRateBps, this.o.maxRateBps, this.o.schedule ? this.global.rate : undefined].filter((r): r is number => r !== undefined);
    if (limits.length === 0) return {};
    const max = Math.min(DEFAULT_MAX_FRAGMENT_SIZE, Math.max(first, 2 * Math.min(...limits)));
    return { fragmentSize: first, maxFragmentSize: max };
  }

  /** Starts (or resumes) the transfer of a job's file `i` and waits for it. */
  private async transferFile(rec: AgentJobRecord, i: number, run: Run): Promise<void> {
    const f = rec.files[i]!;
    const s = rec.settings;
    let handle: UploadJob | DownloadJob;
    const journaled = f.transferId !== undefined && (await this.journal.load(f.transferId)) !== undefined;
    if (rec.type === 'download' && f.transferId !== undefined && !journaled) {
      // A download's record goes only after its part file became the staging file: both there and
      // no record means it finished just before the agent stopped, and was not recorded yet.
      const staged = await stat(stagingPath(f.file)).catch(() => undefined);
      if (staged?.isFile()) {
        this.logger.info({ job: rec.id, file: f.file }, 'download found complete');
        f.done = true;
        f.bytesDone = f.bytesTotal = staged.size;
        await this.save(rec);
        this.changed(rec);
        return;
      }
    }
    if (journaled && f.transferId !== undefined) {
      handle = await resumeJob(f.transferId, {
        stateDir: this.transfers,
        password: this.password(rec),
        retryDelayMs: s.minRetryDelayMs,
        logger: this.logger.child({ agentJob: rec.id }),
        throttle: this.throttle(rec, run),
      });
    } else {
      const options = this.clientOptions(rec, run);
      if (rec.type === 'download') {
        handle = download({ ...options, url: f.url, file: stagingPath(f.file) });
      } else {
        handle = upload({
          ...options,
          file: f.file,
          url: f.url,
          holdClose: true,
          ...(s.replyFile !== undefined ? { replyFile: stagingPath(s.replyFile) } : {}),
          ...this.fragmentSizing(rec),
        });
      }
      f.transferId = handle.id;
      f.bytesDone = 0;
      await this.save(rec);
    }
    await this.follow(rec, run, handle, (p) => {
      if (p.phase === 'reply') return;
      f.bytesDone = p.bytesDone;
      f.bytesTotal = p.bytesTotal;
      this.dirty.add(rec.id);
    });
    f.done = true;
    f.bytesTotal ??= f.bytesDone;
    f.bytesDone = f.bytesTotal;
    await this.save(rec);
    this.changed(rec);
  }

  /** Runs a transfer to its end, its events mapped onto the job. */
  private async follow(
    rec: AgentJobRecord,
    run: Run,
    handle: UploadJob | DownloadJob,
    progress: (p: { phase: string; bytesDone: number; bytesTotal: number | undefined }) => void,
  ): Promise<void> {
    run.handle = handle;
    const completing = rec.completing === true;
    handle.on('state', (phase: JobPhase) => {
      if (completing) return;
      const next = phase === 'ping' || phase === 'create-session' ? 'CONNECTING' : phase === 'waiting' ? 'TRANSIENT_ERROR' : phase === 'done' ? undefined : 'TRANSFERRING';
      if (next && next !== rec.state && !run.stop) void this.setState(rec, next);
    });
    handle.on('progress', progress);
    handle.on('retry', (e) => {
      rec.errorCount++;
      rec.error = { code: e.error.code, message: describeClientError(e.error) };
      this.dirty.add(rec.id);
      // A connection that fails may be a network gone: look now rather than at the next poll.
      if (e.error.code === 'BITS_CLIENT_NETWORK') this.pollNetwork();
    });
    handle.on('fragment', (f) => run.yielder?.sample(f.bytes, f.ms));
    handle.on('warning', (m) => this.logger.warn({ job: rec.id }, m));
    if (run.stop === 'cancel') void handle.cancel().catch(() => undefined);
    else if (run.stop) handle.stop();
    try {
      await handle.result;
    } finally {
      run.handle = undefined;
    }
  }

  /** The Close-Session of an upload (or the renames of a download), then ACKNOWLEDGED. */
  private async finishComplete(rec: AgentJobRecord, run: Run): Promise<void> {
    if (rec.type === 'download') {
      for (const f of rec.files) await this.unstage(f.file);
    } else {
      const f = rec.files[0]!;
      const t = f.transferId === undefined ? undefined : await this.journal.load(f.transferId);
      // (no record: the Close-Session was answered before a restart, and the record removed)
      if (t?.type === 'upload') {
        if (t.holdClose) {
          t.holdClose = undefined;
          await this.journal.save(t);
        }
        const handle = await resumeJob(t.id, { stateDir: this.transfers, password: this.password(rec), retryDelayMs: rec.settings.minRetryDelayMs, logger: this.logger.child({ agentJob: rec.id }) });
        await this.follow(rec, run, handle, () => undefined);
      }
      if (rec.settings.replyFile !== undefined) await this.unstage(rec.settings.replyFile);
    }
    rec.completing = undefined;
    rec.completedAt = Date.now();
    rec.error = undefined;
    await this.setState(rec, 'ACKNOWLEDGED');
    this.logger.info({ job: rec.id }, 'job completed');
    if (rec.settings.autoComplete) this.notifyIfDue(rec);
  }

  /** Renames a staged file into place (already there after a restart: nothing to do). */
  private async unstage(file: string): Promise<void> {
    try {
      await rename(stagingPath(file), file);
      await syncDir(dirname(file)).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `cannot move ${stagingPath(file)} to ${file}: ${(err as Error).message}`, { cause: err });
      if (!(await stat(file).catch(() => undefined))) throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `${stagingPath(file)} is gone`);
    }
  }

  /** Every file a job may have left while not complete. */
  private stagedFiles(rec: AgentJobRecord): string[] {
    const out: string[] = [];
    if (rec.type === 'download') for (const f of rec.files) out.push(stagingPath(f.file), stagingPath(f.file) + PART_SUFFIX);
    if (rec.settings.replyFile !== undefined) out.push(stagingPath(rec.settings.replyFile), stagingPath(rec.settings.replyFile) + PART_SUFFIX);
    return out;
  }

  private async runFailed(rec: AgentJobRecord, run: Run, err: unknown): Promise<void> {
    const stop = run.stop;
    if (stop === 'cancel') return;
    const e = toClientError(err);
    if (stop && isBitsClientError(e) && e.code === 'BITS_CLIENT_INTERRUPTED') {
      const now = Date.now();
      if (stop === 'suspend') {
        await this.setState(rec, 'SUSPENDED');
      } else if (stop === 'offline') {
        rec.error = { code: NO_ROUTE, message: NO_ROUTE_MESSAGE };
        await this.setState(rec, rec.completing ? 'TRANSFERRED' : 'TRANSIENT_ERROR');
      } else {
        rec.queuedAt = now;
        rec.servedAt = now;
        // (at shutdown the record says QUEUED without telling anyone: the next agent starts it)
        if (rec.state !== 'TRANSFERRED') {
          if (stop === 'shutdown') {
            rec.state = 'QUEUED';
            await this.save(rec);
          } else {
            await this.setState(rec, 'QUEUED');
          }
        }
      }
      return;
    }
    rec.error = { code: e.code, message: describeClientError(e) };
    this.logger.warn({ job: rec.id, err: e.toJSON() }, 'job failed');
    await this.setState(rec, 'ERROR');
    this.notifyIfDue(rec);
  }

  // ---- bookkeeping --------------------------------------------------------------------------

  private async save(rec: AgentJobRecord): Promise<void> {
    this.lastSave.set(rec.id, Date.now());
    await this.store.save(rec);
  }

  private async setState(rec: AgentJobRecord, state: AgentJobRecord['state']): Promise<void> {
    if (rec.state === state) {
      this.changed(rec);
      return;
    }
    this.logger.debug({ job: rec.id, from: rec.state, to: state }, 'job state');
    rec.state = state;
    this.changed(rec);
    await this.save(rec);
  }

  /** Tells the listeners, and the scheduler. */
  private changed(rec: AgentJobRecord): void {
    this.dirty.delete(rec.id);
    const info = toInfo(rec);
    for (const l of this.listeners) l(info);
    this.schedule();
  }

  /** Progress: told every half second, saved every few seconds (the transfer's journal is the truth). */
  private flush(all = false): void {
    const now = Date.now();
    for (const id of this.dirty) {
      const rec = this.jobs.get(id);
      this.dirty.delete(id);
      if (!rec) continue;
      const info = toInfo(rec);
      for (const l of this.listeners) l(info);
      if (all || now - (this.lastSave.get(id) ?? 0) > 5_000) void this.save(rec).catch((err: unknown) => this.logger.error({ job: id, err }, 'cannot save the job'));
    }
  }

  private pollNetwork(): void {
    const online = hasUsableNetwork();
    if (online === this.online) return;
    this.online = online;
    this.logger.info({ online }, online ? 'network is back' : 'no network');
    if (online) {
      for (const r of this.jobs.values()) {
        if (r.state === 'TRANSIENT_ERROR' && r.error?.code === NO_ROUTE && !this.runs.has(r.id)) {
          r.error = undefined;
          void this.setState(r, 'QUEUED');
        }
      }
    }
    this.schedule();
  }

  /** Runs the job's notifications for its state, once per state (also after a restart). */
  private notifyIfDue(rec: AgentJobRecord): void {
    const s = rec.settings;
    const due = rec.state === 'ERROR' || (rec.state === 'TRANSFERRED' && !s.autoComplete) || (rec.state === 'ACKNOWLEDGED' && s.autoComplete);
    if (!due || rec.notified === rec.state || (!s.notifyCommand && !s.notifyUrl)) return;
    const state = rec.state;
    const p = notify(toInfo(rec), { command: s.notifyCommand, shell: s.notifyShell === true, url: s.notifyUrl }, this.logger, this.o.notifyPolicy ?? DEFAULT_NOTIFY_POLICY, this.notifyAbort.signal)
      .then(async () => {
        if (this.notifyAbort.signal.aborted) return;
        rec.notified = state;
        await this.save(rec);
      })
      .catch((err: unknown) => this.logger.error({ job: rec.id, err }, 'notification failed'))
      .finally(() => this.notifying.delete(p));
    this.notifying.add(p);
  }

  /** Forgets ended jobs past the retention time. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    const retain = this.o.retainMs ?? AGENT_DEFAULTS.retainMs;
    for (const r of [...this.jobs.values()]) {
      if (FINAL_STATES.has(r.state) && now - (r.completedAt ?? r.modifiedAt) > retain) {
        this.jobs.delete(r.id);
        this.lastSave.delete(r.id);
        await this.store.remove(r.id).catch(() => undefined);
      }
    }
  }
}
