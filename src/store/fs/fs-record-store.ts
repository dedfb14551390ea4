import { mkdir, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { sessionKey } from '../../protocol/session-id.js';
import { LeaseLostError, SessionLimitError } from '../types.js';
import type { CreateOptions, ListOptions, RecordStore, SessionLock, SessionOwner, SessionRecord, UpdateOptions } from '../types.js';
import { mkdirDurable, syncDir, writeFileAtomic } from './durable.js';
import { readdirIfAny } from './fs-calls.js';
import { RECORD_FILE, requireSessionDir, sessionDir, sessionsRoot } from './layout.js';

/** What a readable `record.json` holds; anything else is quarantined, never trusted. */
const recordSchema = z.object({
  id: z.string().min(1),
  vdir: z.string(),
  urlPath: z.string(),
  destination: z.string(),
  protocol: z.string(),
  total: z.number().int().nonnegative().nullable(),
  received: z.number().int().nonnegative(),
  createdAt: z.number(),
  updatedAt: z.number(),
  timeoutMs: z.number().nonnegative(),
  state: z.enum(['receiving', 'committing']),
  principal: z.string().nullable(),
  reply: z
    .object({ url: z.string(), static: z.boolean(), token: z.string(), copyToDestination: z.boolean() })
    .nullable()
    .optional(),
  bytes: z.record(z.string(), z.json()).optional(),
  node: z.string().optional(),
  client: z.object({ address: z.string(), userAgent: z.string().nullable() }).optional(),
});

/** Where unreadable session folders are moved, under the state directory. */
export const QUARANTINE_DIR = 'quarantine';

const ownerKey = (vdir: string, principal: string): string => `${vdir}\0${principal}`;

/** Options of {@link FsRecordStore}. */
export interface FsRecordStoreOptions {
  /** Where quarantined and removed folders are reported. */
  logger?: Logger | undefined;
}

/**
 * Session records as JSON files, one folder per session, each write atomic and fsynced.
 *
 * Every record is held in memory, loaded once from disk on first use: this process owns the state
 * directory (see {@link acquireStateDir}), so memory is the truth between writes, and lookups,
 * per-owner counts and sweeps never scan the disk. A record that cannot be read is moved to
 * `quarantine/` and skipped, so one damaged file never stops the others. The lock is in-process.
 *
 * @example
 * ```ts
 * const records = new FsRecordStore('/var/lib/bits');
 * const lock = await records.lock(id);
 * try { ... } finally { await lock.release(); }
 * ```
 */
export class FsRecordStore implements RecordStore {
  private readonly contenders = new Map<string, Set<AbortController>>();
  private readonly queues = new Map<string, Promise<void>>();
  /** The token of the lease that holds each locked session. */
  private readonly holders = new Map<string, number>();
  /** The last fencing token handed out. */
  private tokens = 0;
  /** Names of {@link FsRecordStore.exclusive} work in progress. */
  private readonly running = new Set<string>();
  /** Every durable record, by session key. Callers get copies. */
  private readonly records = new Map<string, SessionRecord>();
  /** Session keys by owner (vdir + principal), for {@link countLive}. */
  private readonly owners = new Map<string, Set<string>>();
  /** Creates in flight per owner: counted against the limit before their write completes. */
  private readonly reserved = new Map<string, number>();
  /** Records changed in memory only (progress the byte store made durable): written at the next full update or at close. */
  private readonly dirty = new Set<string>();
  private loading: Promise<void> | undefined;
  private readonly logger: Logger | undefined;

  constructor(
    private readonly stateDir: string,
    options: FsRecordStoreOptions = {},
  ) {
    this.logger = options.logger;
  }

  async create(record: SessionRecord, options: CreateOptions = {}): Promise<void> {
    await this.load();
    const dir = this.dirOf(record.id);
    const owner = record.principal === null ? undefined : ownerKey(record.vdir, record.principal);
    if (owner !== undefined) {
      // Count and reserve in one synchronous step: simultaneous creates cannot both see room.
      if (options.limit !== undefined && options.limit > 0) {
        const held = this.countOwner(owner, options.now ?? Date.now());
        if (held >= options.limit) throw new SessionLimitError(held, options.limit);
      }
      this.reserved.set(owner, (this.reserved.get(owner) ?? 0) + 1);
    }
    try {
      await mkdirDurable(dir, () => writeFileAtomic(join(dir, RECORD_FILE), JSON.stringify(record)));
      this.remember({ ...record });
    } finally {
      if (owner !== undefined) {
        const n = (this.reserved.get(owner) ?? 1) - 1;
        if (n > 0) this.reserved.set(owner, n);
        else this.reserved.delete(owner);
      }
    }
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    await this.load();
    const record = this.records.get(sessionKey(id));
    return record && { ...record };
  }

  async update(record: SessionRecord, lock: SessionLock, options: UpdateOptions = {}): Promise<void> {
    await this.load();
    this.checkHolder(record.id, lock);
    const key = sessionKey(record.id);
    if (options.progressOnly && this.records.has(key)) {
      // Memory is the truth while this process owns the state; the data file holds the length durably.
      this.remember({ ...record });
      this.dirty.add(key);
      return;
    }
    await writeFileAtomic(join(this.dirOf(record.id), RECORD_FILE), JSON.stringify(record));
    this.dirty.delete(key);
    this.remember({ ...record });
  }

  /** Writes the records whose progress was kept in memory, so that a restart has nothing to recover. */
  async close(): Promise<void> {
    for (const key of [...this.dirty]) {
      const record = this.records.get(key);
      this.dirty.delete(key);
      if (!record) continue;
      await writeFileAtomic(join(this.dirOf(record.id), RECORD_FILE), JSON.stringify(record)).catch((err: unknown) => {
        this.logger?.warn({ session: record.id, err }, 'writing a session record at shutdown failed; its progress is recovered from its data at the next start');
      });
    }
  }

  async delete(id: string, lock?: SessionLock): Promise<void> {
    await this.load();
    if (lock) this.checkHolder(id, lock);
    const dir = sessionDir(this.stateDir, id);
    if (!dir) return;
    this.forget(sessionKey(id));
    this.dirty.delete(sessionKey(id));
    await removeSessionDir(dir);
    await syncDir(sessionsRoot(this.stateDir)).catch(() => undefined);
  }

  async list(options: ListOptions): Promise<SessionRecord[]> {
    await this.load();
    const after = options.after === undefined ? undefined : sessionKey(options.after);
    const keys: string[] = [];
    for (const [key, r] of this.records) {
      if (after !== undefined && key <= after) continue;
      if (options.vdir !== undefined && r.vdir !== options.vdir) continue;
      if (options.principal !== undefined && r.principal !== options.principal) continue;
      if (options.state !== undefined && r.state !== options.state) continue;
      keys.push(key);
    }
    return keys
      .sort()
      .slice(0, Math.max(0, options.limit))
      .map((key) => ({ ...this.records.get(key)! }));
  }

  async listExpired(now: number, limit: number): Promise<SessionRecord[]> {
    await this.load();
    const out: SessionRecord[] = [];
    for (const record of this.records.values()) {
      if (out.length >= limit) break;
      if (now - record.updatedAt > record.timeoutMs) out.push({ ...record });
    }
    return out;
  }

  async countLive(owner: SessionOwner, now: number): Promise<number> {
    await this.load();
    return this.countOwner(ownerKey(owner.vdir, owner.principal), now);
  }

  async countLiveByVdir(now: number): Promise<Map<string, number>> {
    await this.load();
    const counts = new Map<string, number>();
    for (const r of this.records.values()) if (now - r.updatedAt <= r.timeoutMs) counts.set(r.vdir, (counts.get(r.vdir) ?? 0) + 1);
    return counts;
  }

  /**
   * Removes session folders that have no record: a crash between the folder's creation and the
   * first record write, before any Ack. Only the owner of the state directory may call this, before
   * it serves: then nothing is creating sessions, and such a folder is provably debris.
   */
  async recover(): Promise<void> {
    await this.load();
    for (const name of await this.folderNames()) {
      if (!sessionDir(this.stateDir, name) || this.records.has(name)) continue;
      // Only a folder that provably has no record is debris; one whose record exists but could not
      // be read (or moved aside) is kept.
      const missing = await readFile(join(sessionsRoot(this.stateDir), name, RECORD_FILE)).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
      );
      if (!missing) continue;
      this.logger?.info({ session: name }, 'removing an unacknowledged session left by a crash');
      await rm(join(sessionsRoot(this.stateDir), name), { recursive: true, force: true });
    }
  }

  async lock(id: string): Promise<SessionLock> {
    const key = sessionKey(id);
    // Everyone holding or waiting for this session is superseded by the newer request (D10).
    const contenders = this.contenders.get(key) ?? new Set<AbortController>();
    for (const c of contenders) c.abort(new Error('superseded by a newer request for the session'));
    const controller = new AbortController();
    contenders.add(controller);
    this.contenders.set(key, contenders);
    const previous = this.queues.get(key) ?? Promise.resolve();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const mine = previous.then(() => released);
    this.queues.set(key, mine);
    const token = ++this.tokens;
    await previous;
    // The superseded holder has finished: from here on only this lease may write the session.
    this.holders.set(key, token);
    let done = false;
    return {
      signal: controller.signal,
      token,
      release: async () => {
        if (done) return;
        done = true;
        if (this.holders.get(key) === token) this.holders.delete(key);
        contenders.delete(controller);
        if (contenders.size === 0 && this.contenders.get(key) === contenders) this.contenders.delete(key);
        if (this.queues.get(key) === mine) this.queues.delete(key);
        release();
      },
    };
  }

  async tryLock(id: string): Promise<SessionLock | undefined> {
    return this.queues.has(sessionKey(id)) ? undefined : this.lock(id);
  }

  async exclusive<T>(name: string, work: () => Promise<T>): Promise<T | undefined> {
    if (this.running.has(name)) return undefined;
    this.running.add(name);
    try {
      return await work();
    } finally {
      this.running.delete(name);
    }
  }

  /** Refuses a write under a lease that no longer holds the session. */
  private checkHolder(id: string, lock: SessionLock): void {
    if (this.holders.get(sessionKey(id)) !== lock.token) throw new LeaseLostError(id, lock.token);
  }

  private countOwner(owner: string, now: number): number {
    let n = this.reserved.get(owner) ?? 0;
    for (const key of this.owners.get(owner) ?? []) {
      const r = this.records.get(key);
      if (r && now - r.updatedAt <= r.timeoutMs) n++;
    }
    return n;
  }

  private remember(record: SessionRecord): void {
    const key = sessionKey(record.id);
    this.records.set(key, record);
    if (record.principal !== null) {
      const owner = ownerKey(record.vdir, record.principal);
      const keys = this.owners.get(owner) ?? new Set<string>();
      keys.add(key);
      this.owners.set(owner, keys);
    }
  }

  private forget(key: string): void {
    const record = this.records.get(key);
    this.records.delete(key);
    if (record?.principal == null) return;
    const owner = ownerKey(record.vdir, record.principal);
    const keys = this.owners.get(owner);
    keys?.delete(key);
    if (keys?.size === 0) this.owners.delete(owner);
  }

  /** Reads every record once; later calls wait for that one load. */
  private load(): Promise<void> {
    this.loading ??= this.readAll();
    return this.loading;
  }

  private folderNames(): Promise<string[]> {
    return readdirIfAny(sessionsRoot(this.stateDir));
  }

  private async readAll(): Promise<void> {
    for (const name of await this.folderNames()) {
      if (!sessionDir(this.stateDir, name)) continue;
      let text: string;
      try {
        text = await readFile(join(sessionsRoot(this.stateDir), name, RECORD_FILE), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // no record yet: see recover()
        // Unreadable for now (permissions, I/O): skipped, left where it is, never judged damaged.
        this.logger?.error({ session: name, err }, 'session record cannot be read; skipped');
        continue;
      }
      const record = parseRecord(text, name);
      if (typeof record === 'string') await this.quarantine(name, record);
      else this.remember(record);
    }
  }

  /** Moves an unreadable session folder aside (never deletes it) so an operator can look at it. */
  private async quarantine(name: string, reason: string): Promise<void> {
    const target = join(this.stateDir, QUARANTINE_DIR, `${name}-${Date.now()}`);
    try {
      await mkdir(join(this.stateDir, QUARANTINE_DIR), { recursive: true, mode: 0o700 });
      await rename(join(sessionsRoot(this.stateDir), name), target);
      this.logger?.error({ session: name, reason, movedTo: target }, 'unreadable session record quarantined');
    } catch (err) {
      this.logger?.error({ session: name, reason, err }, 'unreadable session record skipped (could not move it aside)');
    }
  }

  private dirOf(id: string): string {
    return requireSessionDir(this.stateDir, id);
  }
}

/**
 * Removes a session's folder. Normally only the record is left in it by then (the byte store has
 * removed its files): two calls, where a recursive removal would list and stat everything first.
 */
async function removeSessionDir(dir: string): Promise<void> {
  try {
    await unlink(join(dir, RECORD_FILE));
    await rmdir(dir);
  } catch {
    // (anything else still in it, or already gone)
    await rm(dir, { recursive: true, force: true });
  }
}

/** The record in `text`, or why it cannot be trusted. */
function parseRecord(text: string, folder: string): SessionRecord | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return `${RECORD_FILE} is not JSON: ${(err as Error).message}`;
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) return `${RECORD_FILE} is not a session record: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
  if (sessionKey(parsed.data.id) !== folder) return `${RECORD_FILE} names session ${parsed.data.id}`;
  return parsed.data as SessionRecord;
}
