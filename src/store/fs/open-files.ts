import type { FileHandle } from 'node:fs/promises';

interface Entry {
  readonly fh: FileHandle;
  users: number;
  /** Dropped from the cache while in use: the last user closes it. */
  dropped: boolean;
}

/**
 * File handles kept open between uses (a session's data file across its fragments), at most `max`
 * of them idle: the least recently used idle handle is closed when more are open. A handle in use
 * is never closed under its user.
 *
 * @example
 * ```ts
 * const files = new OpenFiles(256);
 * await files.use(key, () => open(path, 'r+'), (fh) => fh.write(buf, 0, buf.length, offset));
 * await files.close(key); // the file is being deleted
 * ```
 */
export class OpenFiles {
  /** By key, least recently used first (a Map keeps insertion order; a use moves the entry last). */
  private readonly entries = new Map<string, Entry>();
  private readonly opening = new Map<string, Promise<Entry>>();

  constructor(private readonly max: number) {}

  /** Runs `work` with the handle of `key`, opened with `open` when none is. */
  async use<T>(key: string, open: () => Promise<FileHandle>, work: (fh: FileHandle) => Promise<T>): Promise<T> {
    const entry = await this.acquire(key, open);
    try {
      return await work(entry.fh);
    } finally {
      entry.users--;
      if (entry.dropped && entry.users === 0) await entry.fh.close().catch(() => undefined);
      await this.trim();
    }
  }

  /** Closes the handle of `key`, if one is open (the file is going away); waits for its users. */
  async close(key: string): Promise<void> {
    await this.opening.get(key)?.catch(() => undefined);
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    // (a user still working keeps its handle until it finishes: closing under it would fail its I/O)
    entry.dropped = true;
    if (entry.users === 0) await entry.fh.close().catch(() => undefined);
  }

  /** Closes every idle handle, and the others once their users finish. */
  async closeAll(): Promise<void> {
    for (const key of [...this.entries.keys()]) await this.close(key);
  }

  private async acquire(key: string, open: () => Promise<FileHandle>): Promise<Entry> {
    const pending = this.opening.get(key);
    if (pending) await pending.catch(() => undefined);
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    } else {
      const opened = open().then((fh): Entry => ({ fh, users: 0, dropped: false }));
      this.opening.set(key, opened);
      try {
        entry = await opened;
      } finally {
        this.opening.delete(key);
      }
      this.entries.set(key, entry);
    }
    entry.users++;
    return entry;
  }

  private async trim(): Promise<void> {
    if (this.entries.size <= this.max) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.max) break;
      if (entry.users > 0) continue;
      this.entries.delete(key);
      await entry.fh.close().catch(() => undefined);
    }
  }
}
