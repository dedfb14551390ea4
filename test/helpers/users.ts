import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from './cli.js';

/** An `Authorization: Basic` value. */
export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/**
 * Adds an account to a users file with the real `bits user add` (password on stdin); `ntlm` also
 * stores its NT hash. Returns what the command wrote on stderr.
 */
export function addUser(users: string, name: string, password: string, groups: string[] = [], options: { ntlm?: boolean } = {}): string {
  const args = [CLI, 'user', 'add', name, '--users', users, ...(groups.length ? ['--group', ...groups] : []), ...(options.ntlm ? ['--ntlm'] : [])];
  const r = spawnSync(process.execPath, args, { input: `${password}\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}
