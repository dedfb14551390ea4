import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/fs/durable.js';

/**
 * Seals the passwords of background jobs (a job must sign in again after a restart, and the job
 * files must not hold them in clear text): AES-256-GCM with a key of the agent's own, kept in
 * `secret.key` beside the jobs, readable by the agent's user only. Job files copied elsewhere (a
 * backup, a bug report) reveal nothing without the key; the user the agent runs as can, of course,
 * read both.
 *
 * @example
 * ```ts
 * const secrets = await Secrets.open('/state/agent');
 * const sealed = secrets.seal('p@ss');
 * secrets.unseal(sealed); // 'p@ss'
 * ```
 */
export class Secrets {
  private constructor(private readonly key: Buffer) {}

  /** Loads the key of `dir`, or makes one. */
  static async open(dir: string): Promise<Secrets> {
    const path = join(dir, 'secret.key');
    try {
      const key = await readFile(path);
      if (key.length !== 32) throw new Error(`${path} is not a 32-byte key: delete it (the jobs that sign in will need their password again)`);
      return new Secrets(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const key = randomBytes(32);
    await writeFileAtomic(path, key, { tolerateDirSync: true });
    return new Secrets(key);
  }

  /** `v1.<iv>.<tag>.<ciphertext>`, base64url. */
  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), data].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  /**
   * The plain text of a sealed value.
   *
   * @throws {Error} when it was sealed with another key or altered.
   */
  unseal(sealed: string): string {
    const [v, iv, tag, data] = sealed.split('.');
    if (v !== 'v1' || iv === undefined || tag === undefined || data === undefined) throw new Error('not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  }
}
