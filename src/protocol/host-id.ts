const HOST_PORT = /^(\[[0-9a-f:.]+\]|[^:[\]]+):(\d{1,5})$/i;

/**
 * The URL a client sends later packets of a session to after a Create-Session Ack carried
 * `BITS-Host-Id` (spec §8): the host part of the upload URL replaced by the value. A value of the form
 * `host:port` (or `[v6]:port`) replaces the port too; a bare IPv6 address is bracketed; anything
 * else keeps the URL's port. `undefined` when the value names no host (the Ack's Host-Id is then
 * ignored: the session goes on at the upload URL).
 *
 * @example
 * ```ts
 * hostIdUrl(new URL('http://farm:8080/up/a.bin'), 'node1').href;         // 'http://node1:8080/up/a.bin'
 * hostIdUrl(new URL('http://farm:8080/up/a.bin'), '10.0.0.7:9000').href; // 'http://10.0.0.7:9000/up/a.bin'
 * hostIdUrl(new URL('http://farm/up/a.bin'), 'no host');                     // undefined
 * ```
 */
export function hostIdUrl(url: URL, hostId: string): URL | undefined {
  const value = hostId.trim();
  const m = HOST_PORT.exec(value);
  const host = m ? m[1]! : value.includes(':') && !value.startsWith('[') ? `[${value}]` : value;
  // Parsed on its own, not through the `hostname` setter: the setter ignores a value that is no host
  // and would leave the upload URL's host in place without a word.
  let parsed: URL;
  try {
    parsed = new URL(`${url.protocol}//${host}/`);
  } catch {
    return undefined;
  }
  if (parsed.hostname === '' || parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '') return undefined;
  const out = new URL(url.href);
  out.hostname = parsed.hostname;
  if (m) out.port = m[2]!;
  return out;
}
