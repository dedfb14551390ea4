import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ReloadingFile } from './users-file.js';

const groupsSchema = z
  .object({
    groups: z.record(z.string().min(1).max(256), z.array(z.string().min(1).max(1024))),
  })
  .strict();

/** Group memberships by principal name: `alice@EXAMPLE.COM` → `['uploaders']`. */
export type Memberships = ReadonlyMap<string, readonly string[]>;

/**
 * Reads a group mapping file, `{"groups": {"uploaders": ["alice@EXAMPLE.COM", "bob"]}}`, into the
 * groups of each member. Members are principal names exactly as they authenticate (a Kerberos
 * principal with its realm, unless `stripRealm`; a users-file account by its name).
 *
 * @throws when the file is missing or not valid, naming it.
 * @example
 * ```ts
 * (await readGroups('./groups.json')).get('alice@EXAMPLE.COM'); // ['uploaders']
 * ```
 */
export async function readGroups(file: string): Promise<Memberships> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`group mapping file ${file} does not exist`);
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`group mapping file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = groupsSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`group mapping file ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const memberships = new Map<string, string[]>();
  for (const [group, members] of Object.entries(parsed.data.groups)) {
    for (const member of members) {
      const groups = memberships.get(member) ?? [];
      if (!groups.includes(group)) groups.push(group);
      memberships.set(member, groups);
    }
  }
  return memberships;
}

/** A group mapping file that reloads itself when it changes (see {@link ReloadingFile}). */
export class GroupsFileCache extends ReloadingFile<Memberships> {
  constructor(file: string, logger?: Logger) {
    super(file, readGroups, new Map(), logger);
  }
}
