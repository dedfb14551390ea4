import { randomUUID } from 'node:crypto';

/**
 * A new session id in the IIS form (D20): a random GUID, uppercase, in braces.
 *
 * @example
 * ```ts
 * newSessionId(); // '{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}'
 * ```
 */
export function newSessionId(): string {
  return `{${randomUUID().toUpperCase()}}`;
}

/**
 * Canonical key for looking a session up: ids are compared case-insensitively, with or without braces.
 *
 * @example
 * ```ts
 * sessionKey('{a0ff5911-4144-45b3-bf27-27afc8ec8a67}') === sessionKey('A0FF5911-4144-45B3-BF27-27AFC8EC8A67'); // true
 * ```
 */
export function sessionKey(id: string): string {
  const trimmed = id.trim();
  const bare = trimmed.startsWith('{') && trimmed.endsWith('}') ? trimmed.slice(1, -1) : trimmed;
  return bare.toUpperCase();
}
