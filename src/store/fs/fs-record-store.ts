import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sessionKey } from '../../protocol/session-id.js';
import type { RecordStore, SessionLock, SessionRecord } from '../types.js';
import { mkdirDurable, syncDir, writeFileAtomic } from './durable.js';
import { RECORD_FILE, sessionDir, sessionsRoot } from './layout.js';

/**
 * Session records as JSON files, one folder per session, each write atomic and fsynced.
 * The lock is in-process: one server owns a state directory (see {@link acquireStateDir}).
 *
 * @example
 * ```ts
 * const records = new FsRecordStore('/var/lib/bits');
 * const lock = await records.lock(id);
 * try { ... } finally { lock.release(); }
 * ```
 */
export class FsRecordStore implements RecordStore {
  private readonly contenders = new Map<string, Set<AbortController>>();
  private readonly queues = new Map<string, Promise<void>>();
  /**
   * Records as last written, so a fragment does not re-read its JSON: this process owns the state
   * directory. Callers get copies; the cache changes only after a write succeeded.
   */
  private readonly cache = new Map<string, SessionRecord>();

  constructor(private readonly stateDir: string) {}

  async create(record: SessionRecord): Promise<void> {
    const dir = this.dirOf(record.id);
    await mkdirDurable(dir);
    await writeFileAtomic(join(dir, RECORD_FILE), JSON.stringify(record));
    this.cache.set(sessionKey(record.id), { ...record });
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) return undefined;
    const key = sessionKey(id);
    const cached = this.cache.get(key);
    if (cached) return { ...cached };
    try {
      const record = JSON.parse(await readFile(join(dir, RECORD_FILE), 'utf8')) as SessionRecord;
      this.cache.set(key, record);
      return { ...record };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async update(record: SessionRecord): Promise<void> {
    await writeFileAtomic(join(this.dirOf(record.id), RECORD_FILE), JSON.stringify(record));
    this.cache.set(sessionKey(record.id), { ...record });
  }

  async delete(id: string): Promise<void> {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) return;
    this.cache.delete(sessionKey(id));
    await rm(dir, { recursive: true, force: true });
    await syncDir(sessionsRoot(this.stateDir)).catch(() => undefined);
  }

  async list(): Promise<SessionRecord[]> {
    let names: string[];
    try {
      names = await readdir(sessionsRoot(this.stateDir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SessionRecord[] = [];
    for (const name of names) {
      const rec = await this.get(name);
      if (rec) out.push(rec);
      else if (sessionDir(this.stateDir, name)) {
        // A folder without a record: a crash between mkdir and the first record write.
        await rm(join(sessionsRoot(this.stateDir), name), { recursive: true, force: true });
      }
    }
    return out;
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
    await previous;
    let done = false;
    return {
      signal: controller.signal,
      release: () => {
        if (done) return;
        done = true;
        contenders.delete(controller);
        if (contenders.size === 0 && this.contenders.get(key) === contenders) this.contenders.delete(key);
        if (this.queues.get(key) === mine) this.queues.delete(key);
        release();
      },
    };
  }

  private dirOf(id: string): string {
    const dir = sessionDir(this.stateDir, id);
    if (!dir) throw new Error(`session id ${id} is not a GUID`);
    return dir;
  }
}
