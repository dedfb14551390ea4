import type { TLSSocket } from 'node:tls';
import type { HttpRequest, ResponseHeaders } from '../http/types.js';
import { BITS_METHOD, Header } from '../protocol/constants.js';
import { BitsError } from '../protocol/errors.js';
import type { VdirConfig } from './config.js';
import { effectiveMethod } from './request-fields.js';
import { errorToAck } from './error-ack.js';
import type { ServerParts } from './handlers/context.js';
import type { RequestLog } from './request-log.js';

/** A status and headers to answer with (no body). */
export interface Answer {
  readonly status: number;
  readonly headers: ResponseHeaders;
}

/**
 * Who a request acts as: let in (a principal's name, or `null` for anonymous, and headers its answer
 * must carry, such as Kerberos's mutual-authentication token), or the answer to send instead (a 401
 * challenge, or 403 + `0x80070005` for a principal the vdir does not allow).
 */
export type Identity =
  | { readonly kind: 'allowed'; readonly principal: string | null; readonly headers?: ResponseHeaders }
  | { readonly kind: 'answer'; readonly ack: Answer };

/** Whether the client presented a certificate on this (TLS) connection. */
function hasPeerCertificate(req: HttpRequest): boolean {
  if (!req.encrypted || !req.socket) return false;
  const cert = (req.socket as TLSSocket).getPeerCertificate?.();
  return cert !== undefined && cert !== null && Object.keys(cert).length > 0;
}

/**
 * With `auth.sessionCapability`, a BITS packet other than Create-Session that carries no
 * credentials but names a live session of the vdir acts as that session's principal. Anything
 * else (credentials present, unknown or expired id) goes through normal authentication.
 */
async function sessionCapability(
  parts: ServerParts,
  req: HttpRequest,
  vdir: VdirConfig,
  id: string | undefined,
): Promise<{ principal: string | null } | undefined> {
  if (!vdir.auth?.sessionCapability || req.headers['authorization'] !== undefined) return undefined;
  // Other credentials (a custom hook's, a client certificate) are always checked as usual.
  if (parts.auth.hasHook || hasPeerCertificate(req)) return undefined;
  if (effectiveMethod(req) !== BITS_METHOD) return undefined;
  if ((req.headers[Header.PacketType] ?? '').trim().toLowerCase() === 'create-session') return undefined;
  if (!id) return undefined;
  const record = await parts.sessions.records.get(id);
  if (!record || record.vdir !== vdir.path || parts.sessions.isExpired(record)) return undefined;
  if (record.principal === null) return { principal: null };
  // The account must still exist and still be allowed here: removing a user ends its capabilities.
  const account = await parts.auth.currentAccount(record.principal, vdir);
  return account ? { principal: account.name } : undefined;
}

/**
 * Authenticates and authorizes a request for a vdir (session capability first, then the custom
 * hook and the vdir's schemes), noting on the log line how it went. `sessionId` is the request's
 * (see `requestSessionId`), read once by the caller.
 *
 * @example
 * ```ts
 * const who = await identify(parts, req, loc.vdir, sessionId, log);
 * if (who.kind === 'answer') return who.ack;
 * ```
 */
export async function identify(
  parts: ServerParts,
  req: HttpRequest,
  vdir: VdirConfig,
  sessionId: string | undefined,
  log: RequestLog,
): Promise<Identity> {
  if (!parts.auth.guards(vdir)) return { kind: 'allowed', principal: null };
  const capability = await sessionCapability(parts, req, vdir, sessionId);
  if (capability) {
    log.set('auth', 'session capability');
    if (capability.principal !== null) log.set('user', capability.principal);
    return { kind: 'allowed', principal: capability.principal };
  }
  const decision = await parts.auth.authenticate(req, vdir);
  switch (decision.kind) {
    case 'anonymous':
      return { kind: 'allowed', principal: null };
    case 'challenge':
      log.set('auth', decision.reason);
      if (!decision.handshake) parts.metrics.authFailed(vdir.path, 'challenge');
      return { kind: 'answer', ack: { status: 401, headers: { 'WWW-Authenticate': decision.challenges, 'Content-Length': '0' } } };
    case 'denied':
      log.set('auth', decision.reason);
      parts.metrics.authFailed(vdir.path, 'denied');
      return { kind: 'answer', ack: errorToAck(new BitsError('BITS_ACCESS_DENIED', decision.reason), sessionId) };
    case 'principal':
      log.set('user', decision.principal.name);
      if (!parts.auth.allowed(decision.principal, vdir.auth)) {
        log.set('auth', `${decision.principal.name} is not allowed on ${vdir.path}`);
        parts.metrics.authFailed(vdir.path, 'not-allowed');
        const denied = new BitsError('BITS_ACCESS_DENIED', `${decision.principal.name} is not allowed`);
        return { kind: 'answer', ack: errorToAck(denied, sessionId) };
      }
      return { kind: 'allowed', principal: decision.principal.name, ...(decision.headers ? { headers: decision.headers } : {}) };
  }
}
