import { join } from 'node:path';
import { sessionKey } from '../../protocol/session-id.js';

const KEY = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;

/**
 * Where a session lives under the state directory: `<stateDir>/sessions/<GUID>/`.
 * Returns `undefined` for ids that are not GUIDs, so no client string ever becomes a path.
 *
 * @example
 * ```ts
 * sessionDir('/state', '{a0ff5911-4144-45b3-bf27-27afc8ec8a67}');
 * // '/state/sessions/A0FF5911-4144-45B3-BF27-27AFC8EC8A67'
 * ```
 */
export function sessionDir(stateDir: string, id: string): string | undefined {
  const key = sessionKey(id);
  return KEY.test(key) ? join(stateDir, 'sessions', key) : undefined;
}

/**
 * {@link sessionDir} for ids that must be GUIDs (the session exists, so its id was issued by us):
 * anything else is a programming error, thrown rather than turned into a path.
 *
 * @example
 * ```ts
 * const data = join(requireSessionDir('/state', record.id), DATA_FILE);
 * ```
 */
export function requireSessionDir(stateDir: string, id: string): string {
  const dir = sessionDir(stateDir, id);
  if (!dir) throw new Error(`session id ${id} is not a GUID`);
  return dir;
}

/** The sessions folder of a state directory. */
export function sessionsRoot(stateDir: string): string {
  return join(stateDir, 'sessions');
}

export const RECORD_FILE = 'record.json';
export const DATA_FILE = 'data.bin';
export const REPLY_FILE = 'reply.bin';
/** Identity of a cross-device commit's copy, written before it is placed (makes a resent commit idempotent). */
export const PLACED_FILE = 'placed.json';
