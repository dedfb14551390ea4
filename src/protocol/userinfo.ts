/**
 * A URL without its user information (credentials travel in `Authorization`, never in the URL).
 *
 * @example
 * ```ts
 * withoutUserinfo(new URL('http://u:p@h/a')).href; // 'http://h/a'
 * ```
 */
export function withoutUserinfo(url: URL): URL {
  const out = new URL(url.href);
  out.username = '';
  out.password = '';
  return out;
}

/**
 * A URL as it may be shown, logged or journaled: without user information. Text that is not a URL
 * loses whatever stands between `//` and an `@` too, so that an error message never echoes a
 * password.
 *
 * @example
 * ```ts
 * publicHref('http://bob:pw@h/a');  // 'http://h/a'
 * publicHref('http://bob:pw@[::1'); // 'http://[::1'
 * ```
 */
export function publicHref(url: string | URL): string {
  if (url instanceof URL) return withoutUserinfo(url).href;
  try {
    return withoutUserinfo(new URL(url)).href;
  } catch {
    return url.replace(/^([^:/?#]*:\/\/)[^/?#]*@/, '$1');
  }
}
