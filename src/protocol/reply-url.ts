import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sessionKey } from './session-id.js';
import { withoutUserinfo } from './userinfo.js';

/**
 * Both directions of `BITS-Reply-URL` (spec §9.4): the server formats the URL of a generated reply
 * ({@link replyUrl}) and recognises it when fetched ({@link matchReplyPath}); the client resolves it
 * against the upload URL ({@link resolveReplyUrl}).
 */

const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i;

const REPLY_DIR = ['BITS-Sessions', 'Replies'] as const;
const REPLY_FILE = 'responsefile.bin';

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


/**
 * Resolves a `BITS-Reply-URL` (spec §9.4, case 59) to the URL a client GETs: an absolute URL is used
 * as it is; anything else is relative to the directory of the upload URL, with IIS-style backslashes
 * turned into `/` (`BITS-Sessions\Replies\{id}\responsefile.bin`) and braces percent-encoded. User
 * information in the upload URL is not carried over.
 *
 * @param replyUrl the header value
 * @param uploadUrl the job's original upload URL (not a Host-Id rewrite: Windows fetches the reply from
 *   the original host)
 * @example
 * ```ts
 * resolveReplyUrl('BITS-Sessions\\Replies\\{AB}\\responsefile.bin', new URL('http://h/up/f.bin')).href;
 * // 'http://h/up/BITS-Sessions/Replies/%7BAB%7D/responsefile.bin'
 * ```
 */
export function resolveReplyUrl(replyUrl: string, uploadUrl: URL): URL {
  const value = replyUrl.trim();
  const base = withoutUserinfo(uploadUrl);
  const url = ABSOLUTE.test(value) ? new URL(value) : new URL(value.replace(/\\/g, '/'), base);
  // WHATWG URLs leave braces alone in paths; IIS's client encoded them (spec §9.4).
  url.pathname = url.pathname.replace(/\{/g, '%7B').replace(/\}/g, '%7D');
  return url;
}
