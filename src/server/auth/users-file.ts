import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../../store/fs/durable.js';

const usersSchema = z
  .object({
    users: z.record(
      z.string().regex(/^[^\s:]{1,128}$/, 'user names have no spaces or colons'),
      z.object({ hash: z.string().startsWith('scrypt$'), groups: z.array(z.string().min(1)).default([]) }).strict(),
    ),
  })
  .strict();

/** One account of a users file. */
export interface UserEntry {
  hash: string;
  groups: string[];
}

/** The accounts of a users file, keyed by name. */
export type Users = Record<string, UserEntry>;

/**
 * Reads a users file (`{"users": {"alice": {"hash": "scrypt$…", "groups": ["agents"]}}}`).
 * A missing file is an empty one.
 *
 * @throws when the file is not valid.
 * @example
 * ```ts
 * const users = await readUsers('./users.json');
 * ```
 */
export async function readUsers(file: string): Promise<Users> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const parsed = usersSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(`users file ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data.users;
}

/**
 * Writes a users file atomically, readable by its owner only.
 *
 * @example
 * ```ts
 * await writeUsers('./users.json', { alice: { hash, groups: [] } });
 * ```
 */
export async function writeUsers(file: string, users: Users): Promise<void> {
  await writeFileAtomic(file, JSON.stringify({ users }, null, 2) + '\n');
}

/**
 * A users file that reloads itself when it changes on disk (checked at most once a second), so
 * `bits user add` takes effect on a running server.
 */
export class UsersFileCache {
  private users: Users = {};
  private mtimeMs = -1;
  private checkedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(readonly file: string) {}

  /** Changes whenever the file did (its modification time). */
  get version(): number {
    return this.mtimeMs;
  }

  /** The current accounts. */
  async get(): Promise<Users> {
    const now = Date.now();
    if (now - this.checkedAt >= 1000) {
      this.loading ??= this.reload(now).finally(() => (this.loading = undefined));
      await this.loading;
    }
    return this.users;
  }

  private async reload(now: number): Promise<void> {
    this.checkedAt = now;
    const mtime = await stat(this.file).then((s) => s.mtimeMs, () => 0);
    if (mtime === this.mtimeMs) return;
    this.users = await readUsers(this.file);
    this.mtimeMs = mtime;
  }
}
