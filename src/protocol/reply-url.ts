const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i;

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
  const base = new URL(uploadUrl.href);
  base.username = '';
  base.password = '';
  const url = ABSOLUTE.test(value) ? new URL(value) : new URL(value.replace(/\\/g, '/'), base);
  // WHATWG URLs leave braces alone in paths; IIS's client encoded them (spec §9.4).
  url.pathname = url.pathname.replace(/\{/g, '%7B').replace(/\}/g, '%7D');
  return url;
}
