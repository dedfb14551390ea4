import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { BitsError } from '../protocol/errors.js';
import { sessionKey } from '../protocol/session-id.js';
import { UploadMissingError } from '../store/types.js';
import type { ByteStore, RecordStore, SessionLock, SessionRecord } from '../store/types.js';

/** Most expired sessions one sweep removes (the next sweep takes the rest). */
const SWEEP_LIMIT = 10_000;
/** How often a sweep also collects what ended sessions left in the byte store (when it can). */
const ORPHAN_INTERVAL_MS = 10 * 60_000;
/** Only what is older than this is collected: nothing a request of a live session is still writing. */
const ORPHAN_GRACE_MS = 10 * 60_000;
/** Most session prefixes one collection looks at (the next one goes on from there). */
const ORPHAN_LIMIT = 1000;

/** Lifecycle events of sessions, emitted by {@link Sessions} (and re-emitted by the server). */
export interface SessionEvents {
  'session-created': [record: SessionRecord];
  'fragment-received': [record: SessionRecord, bytes: number];
  'upload-complete': [record: SessionRecord];
  'upload-notified': [record: SessionRecord];
  'session-closed': [record: SessionRecord, committed: boolean];
  'session-cancelled': [record: SessionRecord];
  'session-expired': [record: SessionRecord];
}

/**
 * The session table over the two store seams: liveness (idle expiry), per-session locking with
 * supersede (D10), removal and the sweep of expired sessions. Its lifecycle events go to `events`
 * (the server itself, so that listeners of the server hear them without a forwarding list).
 */
export class Sessions {
  /** Sessions with a request in progress on this node; the sweeper leaves them alone. */
  private readonly busy = new Map<string, number>();
  /** Where lifecycle events go. */
  readonly events: EventEmitter<SessionEvents>;
  private readonly now: () => number;
  /** When this node last collected orphans. */
  private orphansCollectedAt = -Infinity;

  constructor(
    readonly records: RecordStore,
    readonly bytes: ByteStore,
    private readonly logger: Logger,
    options: { events?: EventEmitter<SessionEvents>; now?: () => number } = {},
  ) {
    this.events = options.events ?? new EventEmitter<SessionEvents>();
    this.now = options.now ?? Date.now;
  }

  /** Emits a lifecycle event on {@link Sessions.events}. */
  emit<K extends keyof SessionEvents>(name: K, ...args: SessionEvents[K]): void {
    // (EventEmitter's typed emit cannot see through a generic K; the signature above is the check)
    (this.events.emit as (name: K, ...args: SessionEvents[K]) => boolean)(name, ...args);
  }

  /** Whether a record has been idle longer than its timeout. */
  isExpired(record: SessionRecord): boolean {
    return this.now() - record.updatedAt > record.timeoutMs;
  }

  /**
   * Runs `work` holding the session's lock; `work` gets the lock's signal, which aborts when a newer
   * request for the same session arrives.
   */
  async withLock<T>(id: string, work: (lock: SessionLock) => Promise<T>): Promise<T> {
    const key = sessionKey(id);
    this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
    let lock: SessionLock | undefined;
    try {
      lock = await this.records.lock(id);
      return await work(lock);
    } finally {
      await lock?.release().catch((err: unknown) => this.logger.warn({ session: id, err }, 'releasing the session lease failed'));
      const n = (this.busy.get(key) ?? 1) - 1;
      if (n <= 0) this.busy.delete(key);
      else this.busy.set(key, n);
    }
  }

  /**
   * The live record of a session for a request to `urlPath`. Unknown, expired (then removed at once),
   * or bound to another destination: `BITS_SESSION_NOT_FOUND`.
   * So is a session created by another principal. Call with the session's lock held.
   */
  async live(id: string, urlPath: string, principal: string | null): Promise<SessionRecord> {
    const record = await this.records.get(id);
    if (!record) throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${id} is unknown`);
    if (this.isExpired(record)) {
      await this.remove(record);
      this.emit('session-expired', record);
      throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${id} expired`);
    }
    if (record.urlPath !== urlPath) {
      throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${id} belongs to ${record.urlPath}, not ${urlPath}`);
    }
    if ((record.principal ?? null) !== principal) {
      // Someone else's session looks exactly like an unknown one; the log line says why.
      this.logger.warn({ session: id, owner: record.principal, principal }, 'session used by a principal that does not own it');
      throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${id} belongs to another principal`);
    }
    return record;
  }

  /**
   * Start-up, before the first sweep: with a byte store that keeps the uploads' durable lengths
   * itself ({@link ByteStore.progress}), every record is brought up to the length, the total and the
   * time of the last write its data shows (they were kept in memory only, and the process stopped without
   * writing them). Returns how many records changed. A session whose data cannot be read is left
   * as its record says, and logged.
   */
  async recoverProgress(): Promise<number> {
    const progress = this.bytes.progress;
    if (!progress) return 0;
    let changed = 0;
    for (let after: string | undefined; ; ) {
      const page = await this.records.list({ after, limit: 1000 });
      if (page.length === 0) return changed;
      after = page.at(-1)!.id;
      for (const record of page) {
        // (a commit in progress was sealed before it began)
        if (record.state === 'committing') continue;
        let found: { received: number; at: number | undefined; total?: number | undefined };
        try {
          found = await progress.recover(record, record);
        } catch (err) {
          // (no data at all: the fragment that finds it so answers for it)
          if (err instanceof UploadMissingError) continue;
          this.logger.warn({ session: record.id, err }, 'the data of a session cannot be checked; its record stands');
          continue;
        }
        const updatedAt = Math.max(record.updatedAt, found.at ?? 0);
        // (the total, when only the data has said it so far: a fragment's mark carries it)
        const total = record.total ?? found.total ?? null;
        if (found.received === record.received && updatedAt === record.updatedAt && total === record.total) continue;
        await this.withLock(record.id, (lock) => this.records.update({ ...record, received: found.received, updatedAt, total }, lock));
        this.logger.info({ session: record.id, recorded: record.received, received: found.received, total }, 'session progress recovered from its data');
        changed++;
      }
    }
  }

  /** Deletes a session's data and record; with `lock`, only while it still holds the session. */
  async remove(record: SessionRecord, lock?: SessionLock): Promise<void> {
    await this.bytes.discard(record);
    await this.records.delete(record.id, lock);
  }

  /**
   * Removes every expired session that has no request in progress, on one node of a farm at a time.
   * Returns how many went (0 while another node sweeps).
   */
  async sweep(): Promise<number> {
    return (
      (await this.records.exclusive('sweep', async () => {
        const removed = await this.sweepHere();
        await this.collectOrphans();
        return removed;
      })) ?? 0
    );
  }

  /**
   * Every {@link ORPHAN_INTERVAL_MS}, one pass of the byte store's collection of what ended sessions
   * left behind (stores that several nodes write). A failure is logged: the next pass tries again.
   */
  private async collectOrphans(): Promise<void> {
    const bytes = this.bytes;
    if (!bytes.collectOrphans || this.now() - this.orphansCollectedAt < ORPHAN_INTERVAL_MS) return;
    this.orphansCollectedAt = this.now();
    try {
      const isLive = async (id: string) => (await this.records.get(id)) !== undefined;
      const deleted = await bytes.collectOrphans(isLive, { before: this.now() - ORPHAN_GRACE_MS, limit: ORPHAN_LIMIT });
      if (deleted > 0) this.logger.info({ objects: deleted }, 'deleted objects that ended sessions left behind');
    } catch (err) {
      this.logger.warn({ err }, 'collecting what ended sessions left behind failed');
    }
  }

  private async sweepHere(): Promise<number> {
    let removed = 0;
    for (const record of await this.records.listExpired(this.now(), SWEEP_LIMIT)) {
      if (this.busy.has(sessionKey(record.id))) continue;
      // A session with a request in progress (here or on another node) is left for the next sweep.
      const lock = await this.records.tryLock(record.id);
      if (!lock) continue;
      try {
        const fresh = await this.records.get(record.id);
        if (!fresh || !this.isExpired(fresh)) continue;
        await this.remove(fresh, lock);
        removed++;
        this.logger.info({ session: fresh.id, url: fresh.urlPath }, 'session expired');
        this.emit('session-expired', fresh);
      } finally {
        await lock.release().catch((err: unknown) => this.logger.warn({ session: record.id, err }, 'releasing the session lease failed'));
      }
    }
    return removed;
  }
}
