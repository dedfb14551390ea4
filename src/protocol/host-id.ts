const HOST_PORT = /^(\[[0-9a-f:.]+\]|[^:[\]]+):(\d{1,5})$/i;

/**
 * The URL a client sends later packets of a session to after a Create-Session Ack carried
 * `BITS-Host-Id` (spec §8): the host part of the upload URL replaced by the value. A value of the form
 * `host:port` (or `[v6]:port`) replaces the port too; a bare IPv6 address is bracketed; anything
 * else keeps the URL's port.
 *
 * @example
 * ```ts
 * hostIdUrl(new URL('http://farm:8080/up/a.bin'), 'node1').href;         // 'http://node1:8080/up/a.bin'
 * hostIdUrl(new URL('http://farm:8080/up/a.bin'), '10.0.0.7:9000').href; // 'http://10.0.0.7:9000/up/a.bin'
 * ```
 */
export function hostIdUrl(url: URL, hostId: string): URL {
  const value = hostId.trim();
  const out = new URL(url.href);
  const m = HOST_PORT.exec(value);
  if (m) {
    out.hostname = m[1]!;
    out.port = m[2]!;
  } else if (value.includes(':') && !value.startsWith('[')) {
    out.hostname = `[${value}]`;
  } else {
    out.hostname = value;
  }
  if (out.hostname === '') throw new TypeError(`BITS-Host-Id "${hostId}" is not a host name`);
  return out;
}
