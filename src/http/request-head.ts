import { bodyFraming } from './body-framing.js';
import { HTTP_ERRORS } from './errors.js';
import type { HeadError, HeadErrorCode } from './errors.js';
import type { HttpLimits } from './limits.js';
import { isFieldValue, isToken } from './token.js';

export type { HeadError } from './errors.js';

/** A request head that parsed cleanly. */
export interface RequestHead {
  method: string;
  target: string;
  path: string;
  query: string;
  httpVersion: '1.0' | '1.1';
  headers: Record<string, string>;
  /** The Content-Length; `undefined` when the request had none (no body, or a chunked one). */
  contentLength: number | undefined;
  /** Whether the body is `Transfer-Encoding: chunked` (then `contentLength` is `undefined`). */
  chunked: boolean;
  /** Whether the client wants the connection kept open after this request. */
  keepAlive: boolean;
  expectContinue: boolean;
}

const TARGET = /^[\x21-\x7e]+$/;

/** Result of {@link parseRequestHead}. */
type HeadResult = { ok: true; head: RequestHead } | { ok: false; error: HeadError };

function fail(code: HeadErrorCode, message: string, method?: string, headers?: Record<string, string>): HeadResult {
  return { ok: false, error: { status: HTTP_ERRORS[code].status, code, message, method, headers } };
}

/**
 * Parses a complete request head (request line and header lines, without the final empty line),
 * applying the engine's header limits and the framing rules (the request line's length is judged
 * earlier, as the head arrives, by `scanHead`): one bounded Content-Length or
 * `Transfer-Encoding: chunked` alone ({@link bodyFraming}), no obs-fold, no CR/LF/NUL in values.
 *
 * @example
 * ```ts
 * const r = parseRequestHead('BITS_POST /up/a HTTP/1.1\r\nContent-Length: 0', DEFAULT_LIMITS);
 * if (r.ok) r.head.method; // 'BITS_POST'
 * ```
 */
export function parseRequestHead(text: string, limits: HttpLimits): HeadResult {
  const lines = text.split('\r\n');
  const requestLine = lines[0] ?? '';
  const parts = requestLine.split(' ');
  if (parts.length !== 3) return fail('HTTP_BAD_REQUEST_LINE', 'malformed request line');
  const [method, target, version] = parts as [string, string, string];
  if (!isToken(method)) return fail('HTTP_BAD_METHOD', 'malformed method');
  if (!TARGET.test(target)) return fail('HTTP_BAD_TARGET', 'malformed request target', method);
  let httpVersion: '1.0' | '1.1';
  if (version === 'HTTP/1.1') httpVersion = '1.1';
  else if (version === 'HTTP/1.0') httpVersion = '1.0';
  else if (/^HTTP\/\d\.\d$/.test(version)) return fail('HTTP_UNSUPPORTED_VERSION', `unsupported ${version}`, method);
  else return fail('HTTP_BAD_VERSION', 'malformed HTTP version', method);

  const headers: Record<string, string> = {};
  let contentLengthSeen = false;
  if (lines.length - 1 > limits.maxHeaders) {
    return fail('HTTP_TOO_MANY_HEADERS', `more than ${limits.maxHeaders} header fields`, method);
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes('\n') || line.includes('\r')) return fail('HTTP_BAD_LINE_ENDING', 'bare CR or LF in head', method, headers);
    if (line.startsWith(' ') || line.startsWith('\t')) return fail('HTTP_OBS_FOLD', 'obsolete line folding', method, headers);
    const colon = line.indexOf(':');
    if (colon <= 0) return fail('HTTP_BAD_HEADER', 'malformed header line', method, headers);
    const name = line.slice(0, colon);
    if (!isToken(name)) return fail('HTTP_BAD_HEADER_NAME', 'malformed header name', method, headers);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!isFieldValue(value)) return fail('HTTP_BAD_HEADER_VALUE', `invalid character in ${name}`, method, headers);
    if (value.length > limits.maxHeaderValue) {
      return fail('HTTP_HEADER_VALUE_TOO_LARGE', `header ${name} longer than ${limits.maxHeaderValue} bytes`, method, headers);
    }
    const key = name.toLowerCase();
    if (key === 'content-length') {
      if (contentLengthSeen) return fail('HTTP_REPEATED_CONTENT_LENGTH', 'repeated Content-Length', method, headers);
      contentLengthSeen = true;
    }
    const prev = headers[key];
    headers[key] = prev === undefined ? value : `${prev}, ${value}`;
  }
  // (after all fields: Transfer-Encoding and Content-Length are judged together, in any order)
  const framing = bodyFraming(headers['content-length'], headers['transfer-encoding'], httpVersion);
  if (!framing.ok) return fail(framing.error.code, framing.error.message, method, headers);

  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  // absolute-form (a proxy's request line): keep only the path; asterisk-form (`OPTIONS *`) stays as it is
  if (!path.startsWith('/') && path !== '*') {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(path);
    if (!m) return fail('HTTP_BAD_TARGET', 'malformed request target', method, headers);
    path = m[1] ?? '/';
  }
  // Connection options are tokens in a list: only SP and HTAB around them are whitespace (`\s` would
  // also take U+00A0, byte 0xA0 of obs-text, and read `\xa0close` as close).
  const connection = (headers['connection'] ?? '').toLowerCase();
  const keepAlive =
    httpVersion === '1.1' ? !/(^|,)[ \t]*close[ \t]*(,|$)/.test(connection) : /(^|,)[ \t]*keep-alive[ \t]*(,|$)/.test(connection);
  return {
    ok: true,
    head: {
      method,
      target,
      path,
      query,
      httpVersion,
      headers,
      contentLength: framing.framing.kind === 'length' && framing.framing.declared ? framing.framing.length : undefined,
      chunked: framing.framing.kind === 'chunked',
      keepAlive,
      expectContinue: httpVersion === '1.1' && (headers['expect'] ?? '').toLowerCase() === '100-continue',
    },
  };
}
