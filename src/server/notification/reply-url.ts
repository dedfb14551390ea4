import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sessionKey } from '../../protocol/session-id.js';

const REPLY_DIR = ['BITS-Sessions', 'Replies'] as const;
const REPLY_FILE = 'responsefile.bin';

/** The longest static reply URL (`BITS-Static-Response-URL`) passed on to the client (§15 case 57). */
export const MAX_REPLY_URL = 2200;

/**
 * A fresh secret for a reply URL: 128 random bits, URL-safe.
 *
 * @example
 * ```ts
 * newReplyToken(); // 'q3Jx…' (22 characters)
 * ```
 */
export function newReplyToken(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The `BITS-Reply-URL` of a generated reply, in IIS's relative form (resolved by clients against the
 * upload URL's directory) with forward slashes and an unguessable token:
 * `BITS-Sessions/Replies/<GUID>/<token>/responsefile.bin`.
 *
 * @example
 * ```ts
 * replyUrl('{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}', 'q3Jx');
 * // 'BITS-Sessions/Replies/A0FF5911-4144-45B3-BF27-27AFC8EC8A67/q3Jx/responsefile.bin'
 * ```
 */
export function replyUrl(sessionId: string, token: string): string {
  return [...REPLY_DIR, sessionKey(sessionId), token, REPLY_FILE].join('/');
}

/** A request path that names a generated reply. */
export interface ReplyPath {
  readonly sessionId: string;
  readonly token: string;
  /** The decoded URL path of the directory the reply URL was resolved against (`/up/sub`). */
  readonly directory: string;
}

/**
 * Recognises `<dir>/BITS-Sessions/Replies/<GUID>/<token>/responsefile.bin` among decoded path
 * segments (literal parts compared case-insensitively).
 *
 * @example
 * ```ts
 * matchReplyPath(['up', 'BITS-Sessions', 'Replies', 'A0FF…', 'tok', 'responsefile.bin']);
 * // { sessionId: 'A0FF…', token: 'tok', directory: '/up' }
 * ```
 */
export function matchReplyPath(segments: readonly string[]): ReplyPath | undefined {
  const n = segments.length;
  if (n < 5) return undefined;
  const [dir, replies, id, token, file] = segments.slice(n - 5) as [string, string, string, string, string];
  if (dir.toLowerCase() !== 'bits-sessions' || replies.toLowerCase() !== 'replies' || file.toLowerCase() !== REPLY_FILE) {
    return undefined;
  }
  return { sessionId: id, token, directory: '/' + segments.slice(0, n - 5).join('/') };
}

/**
 * Compares reply tokens in constant time.
 *
 * @example
 * ```ts
 * sameToken(record.reply.token, path.token);
 * ```
 */
export function sameToken(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
