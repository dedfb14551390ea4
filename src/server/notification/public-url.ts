import type { HttpRequest } from '../../http/types.js';
import { BitsError } from '../../protocol/errors.js';
import type { ServerConfig, VdirConfig } from '../config.js';

/**
 * Where the server's own URLs come from. A request's `Host` header (or an absolute-form request
 * target) is chosen by the client: building the notification target or `BITS-Original-Request-URL`
 * from it lets an uploader pick the host the server POSTs its upload to. So the origin is taken
 * from configuration only: the vdir's `publicUrl` (which inherits the server's), else the listener.
 */

/** Spaces, controls and backslashes: the URL parser drops or reinterprets them (`\\host` is `//host`). */
const UNSAFE = /[\s\u0000-\u001f\u007f\\]/;
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const HOST_PORT = /^[^/?#:]+:\d+(?:[/?#]|$)/;
const PROBE = new URL('http://base.invalid/dir/file');

/** Top-level domains (and private-network suffixes) that a relative file or folder name never ends in. */
const HOST_SUFFIXES = new Set([
  'com', 'net', 'org', 'edu', 'gov', 'mil', 'int', 'biz', 'info', 'io', 'co', 'me', 'app', 'dev', 'cloud',
  'uk', 'us', 'de', 'fr', 'eu', 'nl', 'jp', 'cn', 'ru', 'au', 'ca', 'ch', 'se', 'br', 'es', 'pl',
  'local', 'localdomain', 'internal', 'intranet', 'lan', 'home', 'corp', 'private', 'example', 'test', 'invalid', 'arpa',
]);
/** Extensions of server-application handlers: `notify.aspx` is a file, whatever its length. */
const HANDLER_EXTENSIONS = new Set([
  'asp', 'aspx', 'ashx', 'asmx', 'axd', 'svc', 'php', 'phtml', 'cgi', 'fcgi', 'pl', 'py', 'rb', 'lua', 'jsp', 'jspx', 'do',
  'action', 'cfm', 'htm', 'html', 'shtml', 'xhtml', 'js', 'json', 'xml', 'txt',
]);
/** A label the WHATWG URL parser reads as part of an IPv4 address (decimal or hex). */
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/i;

/**
 * Whether the first segment of a relative URL (up to the first `/`, `?` or `#`) reads as a host
 * name rather than a file or folder: `localhost` (and `*.localhost`); an IPv4 literal (all labels
 * numeric: `10.0.0.5`, `127.1`); anything with `[`, `]`, `:` or `@`; a dotted name whose last label
 * is alphabetic, not a handler extension, and either a common top-level domain, longer than four
 * characters, or the last of three labels or more (`app.example.com`, `acme.online`, `a.acme.xyz`);
 * a dotted name ending in a dot. Not: `n.asp`, `notify.aspx`, `upload.do`, `v1.2`, `a.b`.
 */
function looksLikeHost(segment: string): boolean {
  const s = segment.toLowerCase();
  if (s === '' || s === '.' || s === '..') return false;
  if (s === 'localhost' || s.endsWith('.localhost') || /[[\]:@]/.test(s)) return true;
  const labels = s.split('.');
  if (labels.length < 2) return false;
  if (labels.every((l) => NUMERIC_LABEL.test(l))) return true;
  if (labels.at(-1) === '') return labels.slice(0, -1).every((l) => l !== ''); // (a fully qualified name: 'app.example.com.')
  const last = labels.at(-1)!;
  if (!/^[a-z]+$/.test(last) || HANDLER_EXTENSIONS.has(last)) return false;
  return HOST_SUFFIXES.has(last) || last.length > 4 || labels.length >= 3;
}

/**
 * What is wrong with a configured `notificationUrl`, or `undefined` when it is fine. Accepted: an
 * absolute `http(s)://host/…` URL, or a path relative to the upload URL's directory (spec §15 case
 * 51): `n.asp`, `sub/n.asp`, `v1.2/n`, `./n`, `/app/n`. Refused: other schemes, and anything
 * host-looking without a scheme, with a path or without (`app.example.com/n`, `app.example.com`,
 * `localhost:9000/n`, `10.0.0.5`, `[::1]`, `user@app`, `//host/n`; see {@link looksLikeHost}),
 * which would otherwise silently notify the BITS server itself.
 *
 * @example
 * ```ts
 * notificationUrlProblem('n.asp');              // undefined
 * notificationUrlProblem('app.example.com/n'); // '"app.example.com" looks like a host …'
 * ```
 */
export function notificationUrlProblem(value: string): string | undefined {
  if (UNSAFE.test(value)) return 'must not contain spaces, control characters or backslashes';
  if (HOST_PORT.test(value)) return `looks like host:port without a scheme: write http://${value}`;
  if (SCHEME.test(value)) {
    if (!/^https?:\/\/[^/?#]/i.test(value) || !URL.canParse(value)) {
      return 'must be an http:// or https:// URL, or a path relative to the upload URL (n.asp, /app/n)';
    }
    return undefined;
  }
  if (value.startsWith('//')) return `names a host but no scheme: write http:${value}`;
  // Whatever follows it (a path, a query, or nothing): a bare "app.example.com" would otherwise be
  // resolved as a file next to the upload, on this very server.
  const first = /^[^/?#]*/.exec(value)![0];
  if (looksLikeHost(first)) {
    return `"${first}" looks like a host name without a scheme: write http://${value}, or ./${value} for a path on this server`;
  }
  if (!URL.canParse(value, PROBE.href) || new URL(value, PROBE).origin !== PROBE.origin) return 'must stay on the server it is relative to';
  return undefined;
}

/**
 * What is wrong with a configured `publicUrl`, or `undefined`: it must be an origin only
 * (`https://bits.example.com`, `http://10.0.0.5:8080`), the address clients use to reach the server.
 *
 * @example
 * ```ts
 * publicUrlProblem('https://bits.example.com');   // undefined
 * publicUrlProblem('https://bits.example.com/up'); // 'must be an origin only …'
 * ```
 */
export function publicUrlProblem(value: string): string | undefined {
  if (UNSAFE.test(value) || !/^https?:\/\/[^/?#]/i.test(value) || !URL.canParse(value)) {
    return 'must be an absolute http:// or https:// URL, like https://bits.example.com';
  }
  const url = new URL(value);
  if (url.username || url.password) return 'must not contain credentials';
  if (url.pathname !== '/' || url.search || url.hash || value.endsWith('?') || value.endsWith('#')) {
    return 'must be an origin only (scheme, host and optional port, no path or query), like https://bits.example.com';
  }
  return undefined;
}

/**
 * The origin of the listener itself: the configured host (`127.0.0.1` for the wildcard addresses
 * `0.0.0.0` and `::`, which are not addresses one can connect to), the bound port, https with TLS.
 * An IPv6 zone (`fe80::1%eth0`) is left out: the URL parser refuses every zone, even encoded as
 * RFC 6874's `%25eth0`, and this is called once the port is already bound.
 *
 * @example
 * ```ts
 * listenerOrigin('0.0.0.0', 8080, false);    // 'http://127.0.0.1:8080'
 * listenerOrigin('::1', 8443, true);         // 'https://[::1]:8443'
 * listenerOrigin('fe80::1%eth0', 80, false); // 'http://[fe80::1]'
 * ```
 */
export function listenerOrigin(host: string, port: number, tls: boolean): string {
  let h = host === '' || host === '0.0.0.0' || host === '::' || host === '[::]' ? '127.0.0.1' : host;
  if (h.includes(':')) h = `[${h.replace(/^\[|\]$/g, '').replace(/%.*$/, '')}]`;
  return new URL(`${tls ? 'https' : 'http'}://${h}:${port}`).origin;
}

/** Listener origins by vdir, set when a server starts listening (ports may be chosen at bind time). */
const listeners = new WeakMap<VdirConfig, string>();

/**
 * Records the origin of a server's listener for its vdirs; called once the port is bound.
 *
 * @example
 * ```ts
 * const address = await http.listen(config.listen.port, config.listen.host);
 * bindListener(config, address.port);
 * ```
 */
export function bindListener(config: ServerConfig, port: number): void {
  const origin = listenerOrigin(config.listen.host, port, config.tls !== null);
  for (const v of config.vdirs) listeners.set(v, origin);
}

/** The local end of the request's connection: the listener, when the handler runs under another server. */
function socketOrigin(req: HttpRequest): string {
  const address = req.socket?.localAddress?.replace(/^::ffff:(?=\d+\.)/, '');
  const port = req.socket?.localPort;
  if (!address || !port) throw new BitsError('BITS_INTERNAL', 'no publicUrl is configured and the listener address is unknown');
  return listenerOrigin(address, port, req.encrypted);
}

/**
 * The origin of the server's URLs for a vdir: its `publicUrl` (inherited from the server's), else
 * the listener's own address. Never a request header.
 *
 * @example
 * ```ts
 * publicOrigin(vdir, req); // 'https://bits.example.com'
 * ```
 */
function publicOrigin(vdir: VdirConfig, req: HttpRequest): string {
  return vdir.publicUrl ?? listeners.get(vdir) ?? socketOrigin(req);
}

/**
 * The upload's URL as seen from outside (`BITS-Original-Request-URL`, a hook's `upload.url`):
 * the configured origin, then the request's path and query.
 *
 * @example
 * ```ts
 * uploadUrl(vdir, req); // 'https://bits.example.com/up/dump.bin?ACCOUNT=7'
 * ```
 */
export function uploadUrl(vdir: VdirConfig, req: HttpRequest): string {
  const origin = publicOrigin(vdir, req);
  // (req.path always starts with "/": concatenating keeps the origin even for "//host/…" paths)
  const url = new URL(`${origin}${req.path.startsWith('/') ? '' : '/'}${req.path}${req.query}`);
  if (url.origin !== origin) throw new BitsError('BITS_INTERNAL', `upload URL ${url.href} left ${origin}`);
  return url.href;
}

/**
 * Where to POST a notification (spec §9.2, §15 case 51): an absolute URL as configured, or a relative
 * one resolved against the upload URL's directory on the configured origin; the upload's query
 * string appended.
 *
 * @example
 * ```ts
 * notificationTarget(vdir, req).href; // 'https://bits.example.com/up/n.asp?ACCOUNT=7'
 * ```
 */
export function notificationTarget(vdir: VdirConfig, req: HttpRequest): URL {
  const configured = vdir.notificationUrl;
  if (!configured) throw new BitsError('BITS_INTERNAL', `vdir ${vdir.path} has no notificationUrl`);
  const base = new URL(uploadUrl(vdir, req));
  const url = SCHEME.test(configured) ? new URL(configured) : new URL(configured, base);
  if (!SCHEME.test(configured) && url.origin !== base.origin) {
    throw new BitsError('BITS_INTERNAL', `relative notificationUrl ${configured} left ${base.origin}`);
  }
  const query = req.query;
  if (query.length > 1) url.search = url.search.length > 1 ? `${url.search}&${query.slice(1)}` : query;
  return url;
}
