import type { HttpRequest } from '../http/types.js';
import { BITS_METHOD, Header } from '../protocol/constants.js';

/**
 * The method of a request after `X-HTTP-Method-Override` (D19): a `POST` carrying
 * `X-HTTP-Method-Override: BITS_POST` (any case) is a `BITS_POST`.
 *
 * @example
 * ```ts
 * effectiveMethod({ method: 'POST', headers: { 'x-http-method-override': 'bits_post' } }); // 'BITS_POST'
 * ```
 */
export function effectiveMethod(req: Pick<HttpRequest, 'method' | 'headers'>): string {
  const override = req.headers[Header.MethodOverride];
  if (req.method.toUpperCase() === 'POST' && override?.trim().toUpperCase() === BITS_METHOD) return BITS_METHOD;
  return req.method.toUpperCase() === BITS_METHOD ? BITS_METHOD : req.method;
}

/**
 * The session id a request names, exactly as the engine hands the header over (it has already
 * taken the SP/HTAB around the value off); an empty value is no id.
 *
 * @example
 * ```ts
 * requestSessionId({ headers: { 'bits-session-id': '{A0FF…}' } }); // '{A0FF…}'
 * ```
 */
export function requestSessionId(req: Pick<HttpRequest, 'headers'>): string | undefined {
  return req.headers[Header.SessionId] || undefined;
}
