import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { DownloadSink } from './download-sink.js';
import type { JobEvents, JobHandle, JobPhase } from './job-events.js';
import { BitsClientError, causedByAbort, describeClientError, isBitsClientError, noProgressError, toClientError } from './errors.js';
import type { DownloadProgress, JobRecord, Journal, SaveOptions } from './journal.js';
import { RangedDownload } from './ranged-download.js';
import { retryWaitMs } from './retry-policy.js';
import type { ResolvedTiming } from './options.js';
import type { Throttle } from './throttle.js';
import type { Transport } from './transport.js';

/** The longest delay a Node timer holds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What every job shares: typed events, a promise of the result, `stop()` (resumable) and `cancel()`,
 * the retry loop of spec §7.2 (transient errors retried with exponential backoff and jitter until the
 * no-progress timeout), and the journal.
 */
export abstract class Job<Result> extends EventEmitter<JobEvents> implements JobHandle<Result> {
  /** The promise of the result; rejects with a {@link BitsClientError}. */
  readonly result: Promise<Result>;
  protected readonly abort = new AbortController();
  protected stopReason: 'stop' | 'cancel' | undefined;
  /** The job's clock: the last progress (acknowledged or received bytes). Decides between attempts. */
  private lastProgressAt = Date.now();
  /** The clock of the step in flight: its last sign of life, never earlier than the last progress. */
  private lastActivityAt = this.lastProgressAt;
  private attempt = 0;
  /** The transient error retried last since the last progress (named when the job gives up). */
  private lastError: BitsClientError | undefined;
  /**
   * Aborts the step in flight: by `stop()`/`cancel()`, or with {@link noProgress} once the step has
   * been idle for the whole limit. A plain controller per step, aborted by hand: `AbortSignal.any`
   * against the job's long-lived signal keeps a little memory per call for the life of the job.
   */
  private stepAbort: AbortController | undefined;
  /** The job's one no-progress timer (see {@link onTimer}); set only while a step runs. */
  private timer: NodeJS.Timeout | undefined;
  private journaled = false;
  /** The server's refusal of the Cancel-Session: the job was kept. */
  private cancelRefused: BitsClientError | undefined;
  private resolveResult!: (r: Result) => void;
  private rejectResult!: (e: unknown) => void;

  protected constructor(
    readonly id: string,
    protected readonly record: JobRecord,
    protected readonly journal: Journal | undefined,
    protected readonly transport: Transport,
    protected readonly timing: ResolvedTiming,
    protected readonly logger: Logger,
    protected readonly throttle: Throttle | undefined,
  ) {
    super();
    this.result = new Promise<Result>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // A job nobody awaits must not crash the process with an unhandled rejection.
    this.result.catch(() => undefined);
  }

  /** Stops the job; it stays in the journal and can be resumed. The result rejects with BITS_CLIENT_INTERRUPTED. */
  stop(): void {
    if (this.stopReason) return;
    this.stopReason = 'stop';
    this.abort.abort();
    this.stepAbort?.abort();
  }

  /**
   * Cancels the job: tells the server (Cancel-Session), forgets the job. The result rejects with
   * BITS_CLIENT_CANCELLED. When the server refuses the Cancel-Session (401, 403) the job is kept
   * (resumable, or to cancel again with credentials), and both this and the result reject with that
   * refusal.
   */
  async cancel(): Promise<void> {
    if (!this.stopReason) {
      this.stopReason = 'cancel';
      this.abort.abort();
      this.stepAbort?.abort();
    }
    await this.result.catch(() => undefined);
    if (this.cancelRefused) throw this.cancelRefused;
  }

  /** The work of the job; `step` is called until it returns true; transient errors are retried. */
  protected abstract step(): Promise<boolean>;
  /** Produces the result once the steps are done. */
  protected abstract finish(): Promise<Result>;
  /**
   * Sends whatever tells the server the job is cancelled, within `timing.cancelTimeoutMs`. Rejects with
   * a fatal {@link BitsClientError} when the server refuses for good (the job is then kept); any other
   * failure (unreachable, no answer in time) only warns, and the job is forgotten.
   */
  protected abstract cancelRemote(): Promise<void>;
  /** Releases files. */
  protected abstract release(): Promise<void>;
  /**
   * Whether the job ended short of its last step, to be resumed for it (an upload held before
   * Close-Session): its record stays in the journal, `interrupted`, instead of being removed.
   */
  protected holdsRecord(): boolean {
    return false;
  }
  /** Called with every transient error before the retry wait (Host-Id fallback timers). */
  protected onTransient(_error: BitsClientError): void {}
  /** Called before every step (Host-Id fallback). */
  protected beforeStep(): void {}
  /** Upper bound for the next retry wait (e.g. until a fallback is due). */
  protected maxWaitMs(): number {
    return Number.POSITIVE_INFINITY;
  }

  /**
   * Records progress: resets the no-progress clock (also for the request in flight) and the backoff.
   * Only stores timestamps: the timer looks at them when it fires.
   */
  protected markProgress(): void {
    this.lastProgressAt = Date.now();
    this.lastActivityAt = this.lastProgressAt;
    this.attempt = 0;
    this.lastError = undefined;
  }

  /**
   * Records a sign of life of the request in flight (bytes moved either way): the step is not aborted
   * until it has been idle for the whole no-progress limit. Not progress: only acknowledged (for
   * downloads, received) bytes reset the job's clock, which decides between attempts. Only stores a
   * timestamp.
   */
  protected readonly markActivity = (): void => {
    this.lastActivityAt = Date.now();
  };

  /**
   * A {@link RangedDownload} run by this job (a download, or an upload's reply): its requests carry the
   * job's signal and report activity; bytes beyond the last checkpoint are progress, reported as
   * `phase`; checkpoints are journaled when the sink is `durable` (a file); restarts and warnings
   * become the job's events (`restart` may count them first).
   */
  protected rangedDownload(
    url: URL,
    sink: DownloadSink,
    state: DownloadProgress,
    o: { readonly phase: 'reply' | 'download'; readonly durable: boolean; readonly restart: (reason: string) => void },
  ): RangedDownload {
    return new RangedDownload(this.transport, url, sink, state, {
      signal: () => this.signal,
      activity: this.markActivity,
      logger: this.logger,
      progress: (done, total) => {
        if (done > state.offset) this.markProgress();
        this.emit('progress', { phase: o.phase, bytesDone: done, bytesTotal: total });
      },
      checkpoint: async () => {
        if (o.durable) await this.persist();
      },
      restart: o.restart,
      warning: (message) => this.emit('warning', message),
    });
  }

  /**
   * The signal every request of the job is sent with: aborted by `stop()`/`cancel()`, and when the
   * step in flight has been idle for the whole no-progress limit, so a request that hangs (a peer
   * that never answers, an Ack whose body never ends) ends at the limit instead of at the request
   * idle timeout.
   */
  protected get signal(): AbortSignal {
    return this.stepAbort?.signal ?? this.abort.signal;
  }

  protected setPhase(phase: JobPhase): void {
    this.emit('state', phase);
  }

  /**
   * Persists the record (no-op without a journal); `durable: false` for progress the server knows
   * better (see {@link Journal.save}).
   */
  protected async persist(options: SaveOptions = {}): Promise<void> {
    if (this.journal) {
      await this.journal.save(this.record, options);
      this.journaled = true;
    }
  }

  /** Whether the journal holds the job (it can be resumed or cancelled by id). */
  get inJournal(): boolean {
    return this.journaled;
  }

  /** Checks the local side before the first request (file present, unchanged since the journal). */
  protected abstract prepare(): Promise<void>;

  /**
   * @internal starts the job; called once by the factory (`upload`, `download`, `resumeJob`).
   * `fresh`: a new job (a failure before it started leaves no journal entry behind).
   */
  start(fresh: boolean): this {
    void this.run(fresh);
    return this;
  }

  private async run(fresh: boolean): Promise<void> {
    let started = false;
    try {
      this.throwIfStopped();
      await this.prepare();
      started = true;
      this.record.state = 'running';
      this.record.pid = process.pid;
      this.record.error = undefined;
      await this.persist();
      await this.loop();
      const result = await this.finish();
      this.setPhase('done');
      if (this.holdsRecord()) {
        this.record.state = 'interrupted';
        this.record.pid = undefined;
        await this.persist();
      } else {
        if (this.journal) await this.journal.remove(this.id);
        this.journaled = false;
      }
      this.resolveResult(result);
    } catch (err) {
      await this.fail(err, started || !fresh);
    } finally {
      await this.release().catch(() => undefined);
      this.transport.close();
    }
  }

  /** The error a job stops with once the no-progress budget is spent (resumable). */
  private noProgress(): BitsClientError {
    return noProgressError(this.timing.noProgressTimeoutMs, this.lastError);
  }

  /** Arms the job's timer to fire in `ms` (Node fires a timer of more than 2^31-1 ms after 1 ms). */
  private arm(ms: number): void {
    this.timer = setTimeout(this.onTimer, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
  }

  /**
   * The timer of the step in flight fired: abort the step if it has been idle for the whole limit,
   * else wait for what is left since its last sign of life (a long limit is waited for in steps of
   * at most 2^31-1 ms the same way).
   */
  private readonly onTimer = (): void => {
    this.timer = undefined;
    const step = this.stepAbort;
    if (!step || step.signal.aborted) return;
    const left = this.lastActivityAt + this.timing.noProgressTimeoutMs - Date.now();
    if (left > 0) this.arm(left);
    else step.abort(this.noProgress());
  };

  /**
   * One step within the no-progress limit (§7.2 NoProgressTimeout): none is started once the limit
   * since the last progress is spent, and the step's requests are aborted once it has been idle for
   * the whole limit.
   */
  private async budgetedStep(): Promise<boolean> {
    const limit = this.timing.noProgressTimeoutMs;
    if (limit > 0 && Date.now() - this.lastProgressAt >= limit) throw this.noProgress();
    const step = new AbortController();
    this.stepAbort = step;
    // A new step owes nothing to signs of life of the one before (an error answer, say): its clock
    // starts from the last progress.
    this.lastActivityAt = this.lastProgressAt;
    if (limit > 0) this.arm(this.lastActivityAt + limit - Date.now());
    try {
      return await this.step();
    } catch (err) {
      // What the abort caused (a cut body, a reset) stops the job for want of progress; anything else
      // (a 403, a changed source file) that merely came after the limit ran out is itself.
      // The transport's own no-progress error names the request it cut: it goes as it is.
      const named = isBitsClientError(err) && err.code === 'BITS_CLIENT_NO_PROGRESS';
      if (step.signal.aborted && !this.stopReason && !named && causedByAbort(err, step.signal.reason)) throw step.signal.reason;
      throw err;
    } finally {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.stepAbort = undefined;
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.throwIfStopped();
      try {
        this.beforeStep();
        if (await this.budgetedStep()) return;
      } catch (err) {
        this.throwIfStopped();
        const error = toClientError(err);
        if (error.kind !== 'transient') throw error;
        this.attempt++;
        this.lastError = error;
        this.onTransient(error);
        const idleMs = Date.now() - this.lastProgressAt;
        const limit = this.timing.noProgressTimeoutMs;
        if (limit > 0 && idleMs >= limit) throw this.noProgress();
        const delayMs = retryWaitMs({ attempt: this.attempt, timing: this.timing, idleMs, retryAfterMs: error.retryAfterMs, capMs: this.maxWaitMs() });
        this.logger.info({ job: this.id, err: error.toJSON(), attempt: this.attempt, delayMs }, 'transient error, retrying');
        this.emit('retry', { attempt: this.attempt, delayMs, error });
        this.setPhase('waiting');
        try {
          await sleep(delayMs, undefined, { signal: this.abort.signal });
        } catch {
          this.throwIfStopped();
        }
      }
    }
  }

  /** The error of a job stopped or cancelled on request; `undefined` while it is neither. */
  private stoppedError(): BitsClientError | undefined {
    if (this.stopReason === 'stop') return new BitsClientError('BITS_CLIENT_INTERRUPTED', `job ${this.id} was stopped; it can be resumed`);
    if (this.stopReason === 'cancel') return new BitsClientError('BITS_CLIENT_CANCELLED', `job ${this.id} was cancelled`);
    return undefined;
  }

  protected throwIfStopped(): void {
    const stopped = this.stoppedError();
    if (stopped) throw stopped;
  }

  private async fail(err: unknown, keep: boolean): Promise<void> {
    let error = this.stoppedError() ?? toClientError(err);
    try {
      if (error.code === 'BITS_CLIENT_CANCELLED') {
        this.setPhase('cancel-session');
        const refused = await this.cancelRemote().then(
          () => undefined,
          (e: unknown) => {
            if (isBitsClientError(e) && e.kind === 'fatal') return e;
            this.logger.warn({ job: this.id, err: e }, 'Cancel-Session failed');
            const why = isBitsClientError(e) ? describeClientError(e) : String((e as Error | null)?.message ?? e);
            this.emit('warning', `Cancel-Session failed (${why}); the server keeps the session until it expires`);
            return undefined;
          },
        );
        if (refused) {
          // Refused, not cancelled: keep the job, so that it can be cancelled again with credentials.
          error = refused;
          this.cancelRefused = refused;
          if (this.record.state === 'running' && keep) {
            this.record.state = 'interrupted';
            this.record.pid = undefined;
            this.record.error = refused.toJSON();
            await this.persist();
          }
        } else {
          if (this.journal) await this.journal.remove(this.id);
          this.journaled = false;
        }
      } else if (keep) {
        this.record.state = error.kind === 'interrupted' ? 'interrupted' : 'error';
        this.record.pid = undefined;
        this.record.error = error.toJSON();
        await this.persist();
      }
    } catch (e) {
      this.logger.error({ job: this.id, err: e }, 'cannot update the journal');
    }
    this.logger.info({ job: this.id, err: error.toJSON() }, 'job ended');
    this.rejectResult(error);
  }
}
