import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeFileAtomic } from '../../store/fs/durable.js';

/** What a user name may be: 1 to 128 characters, no white space, no colon (Basic's separator). */
export const USER_NAME = /^[^\s:]{1,128}$/;
/** `USER_NAME` in words, for error messages. */
export const USER_NAME_RULE = 'user names have 1 to 128 characters, no spaces or colons';

const usersSchema = z
  .object({
    users: z
      .record(
        z.string(),
        z
          .object({
            hash: z.string().startsWith('scrypt$'),
            groups: z.array(z.string().min(1)).default([]),
            /** The NT hash (MD4 of the UTF-16LE password, hex), for NTLM: password-equivalent. */
            nt: z
              .string()
              .regex(/^[0-9a-f]{32}$/i, 'expected 32 hex digits (set it with bits user add NAME --ntlm)')
              .optional(),
          })
          .strict(),
      )
      // (checked here rather than by the record's key schema, whose failures zod reports only as
      // "Invalid key in record", without the rule)
      .superRefine((users, ctx) => {
        for (const name of Object.keys(users)) {
          if (!USER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: USER_NAME_RULE });
        }
      }),
  })
  .strict();

/** One account of a users file. */
export interface UserEntry {
  hash: string;
  groups: string[];
  /** The NT hash in hex, for accounts that opted in to NTLM (`bits user add NAME --ntlm`). */
  nt?: string | undefined;
}

/** The accounts of a users file, keyed by name. */
export type Users = Record<string, UserEntry>;

/**
 * Reads a users file (`{"users": {"alice": {"hash": "scrypt$…", "groups": ["agents"]}}}`).
 * A missing file is an empty one, unless `mustExist` (the server's view: a configured users file
 * that is not there is a mistake, not an empty list of accounts).
 *
 * @throws when the file is not valid (or missing, with `mustExist`).
 * @example
 * ```ts
 * const users = await readUsers('./users.json');
 * ```
 */
export async function readUsers(file: string, options: { mustExist?: boolean } = {}): Promise<Users> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !options.mustExist) return {};
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`users file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = usersSchema.safeParse(json);
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

/** What identifies one content of a file: inode, size and nanosecond modification time. */
async function fileVersion(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
}

/**
 * A JSON file that reloads itself when it changes on disk (checked at most once a second), so
 * `bits user add` takes effect on a running server. Callers never see a table that is not fully
 * loaded: they wait for a load in flight, and a reload replaces the table only once the new one
 * is complete. A file that disappears or breaks keeps the last good content (and logs an error).
 */
export class ReloadingFile<T> {
  private content: T | undefined;
  private fileVersion = '';
  private checkedAt = 0;
  private loading: Promise<void> | undefined;
  private lastError: string | undefined;

  /** `read` parses the file (and throws, naming it, when it is missing or not valid). */
  constructor(
    readonly file: string,
    private readonly read: (file: string) => Promise<T>,
    private readonly empty: T,
    private readonly logger?: Logger,
  ) {}

  /**
   * Changes whenever the content did: the inode, size and modification time (in nanoseconds) of
   * the file it came from. The modification time alone misses a replace within one tick of the
   * filesystem clock; `writeFileAtomic` renames a new file into place, so its inode changes every time.
   */
  get version(): string {
    return this.fileVersion;
  }

  /**
   * Loads the file now; a missing or invalid file is an error (the server calls it at start-up).
   *
   * @example
   * ```ts
   * await new UsersFileCache('./users.json').load();
   * ```
   */
  async load(): Promise<void> {
    const version = await fileVersion(this.file);
    this.content = await this.read(this.file);
    this.fileVersion = version;
    this.checkedAt = Date.now();
  }

  /** The current content. */
  async get(): Promise<T> {
    if (!this.loading && Date.now() - this.checkedAt >= 1000) {
      this.loading = this.refresh().finally(() => (this.loading = undefined));
    }
    // (checkedAt moves when a refresh starts: later callers must wait for it, not take the old table
    // for a fresh one — or, before the first load, an empty one)
    if (this.loading) await this.loading;
    return this.content ?? this.empty;
  }

  private async refresh(): Promise<void> {
    this.checkedAt = Date.now();
    try {
      // (taken before the read: a change during the read is seen by the next check)
      const version = await fileVersion(this.file);
      if (version === this.fileVersion && this.content) return;
      const content = await this.read(this.file);
      this.content = content;
      this.fileVersion = version;
      this.lastError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.lastError) {
        this.logger?.error({ file: this.file, err: message }, 'cannot reload a file; keeping what was loaded before');
      }
      this.lastError = message;
    }
  }
}

/** A users file that reloads itself when it changes (see {@link ReloadingFile}). */
export class UsersFileCache extends ReloadingFile<Users> {
  constructor(file: string, logger?: Logger) {
    super(file, (f) => readUsers(f, { mustExist: true }), {}, logger);
  }
}
