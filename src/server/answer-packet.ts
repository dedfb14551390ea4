import { NO_HOOKS } from './hooks/bound-hooks.js';
import type { HttpRequest, HttpResponse, ResponseHeaders } from '../http/types.js';
import { okAck } from '../protocol/ack.js';
import { WireHeader } from '../protocol/constants.js';
import { BitsError, isBitsError } from '../protocol/errors.js';
import { parsePacket } from '../protocol/packet.js';
import { requestSessionId } from './request-fields.js';
import { errorToAck } from './error-ack.js';
import { cancelSession } from './handlers/cancel-session.js';
import { closeSession } from './handlers/close-session.js';
import type { PacketContext, ServerParts } from './handlers/context.js';
import { createSession } from './handlers/create-session.js';
import { fragment } from './handlers/fragment.js';
import { identify } from './identify.js';
import type { Answer } from './identify.js';
import { loggedSessionId } from './redact.js';
import type { RequestLog } from './request-log.js';

/**
 * Answers one BITS packet: the vdir and its upload switch, authentication, the packet's parse, then
 * its handler; every failure becomes an error Ack through {@link errorToAck}. A request that a newer
 * one for its session superseded (D10) gets no answer: its connection is dropped.
 *
 * @example
 * ```ts
 * if (effectiveMethod(req) === BITS_METHOD) await answerPacket(parts, req, res, log);
 * ```
 */
export async function answerPacket(parts: ServerParts, req: HttpRequest, res: HttpResponse, log: RequestLog): Promise<void> {
  const auth: AuthHeaders = {};
  const ack = await handlePacket(parts, req, log, auth);
  if (ack === undefined) {
    log.set('status', 'superseded');
    res.destroy();
    return;
  }
  const code = ack.headers[WireHeader.ErrorCode];
  log.answered(ack.status, typeof code === 'string' ? code : undefined);
  res.send(ack.status, auth.headers ? { ...ack.headers, ...auth.headers } : ack.headers);
}

/** Headers that authentication asks the answer to carry (Kerberos's mutual-authentication token). */
interface AuthHeaders {
  headers?: ResponseHeaders;
}

/**
 * The Ack of one BITS packet (or a 401 challenge), or `undefined` when the request was superseded;
 * `auth` receives the headers authentication adds to whatever the answer is.
 */
async function handlePacket(parts: ServerParts, req: HttpRequest, log: RequestLog, auth: AuthHeaders): Promise<Answer | undefined> {
  // Read once: every Ack of the request echoes exactly this value (D14).
  const sessionId = requestSessionId(req);
  if (sessionId) log.set('session', sessionId);
  try {
    if (req.httpVersion !== '1.1') throw new BitsError('BITS_HTTP_VERSION');
    const loc = parts.vdirs.locate(req.path);
    if (loc) log.set('vdir', loc.vdir.path);
    if (sessionId && loc?.vdir.auth?.sessionCapability) log.set('session', loggedSessionId(sessionId, true));
    if (!loc || !loc.vdir.uploadEnabled) throw new BitsError('BITS_UPLOADS_DISABLED', `uploads are not enabled for ${req.path}`);
    const who = await identify(parts, req, loc.vdir, sessionId, log);
    if (who.kind === 'answer') return who.ack;
    if (who.headers) auth.headers = who.headers;
    const packet = parsePacket(req.headers, req.contentLength, req.chunked);
    log.set('packet', packet.type);
    const ctx: PacketContext = {
      req,
      loc,
      vdirs: parts.vdirs,
      sessions: parts.sessions,
      logger: parts.logger,
      log,
      principal: who.principal,
      hook: parts.hooks.get(loc.vdir.path),
      vdirHooks: parts.vdirHooks.get(loc.vdir.path) ?? NO_HOOKS,
      metrics: parts.metrics,
    };
    switch (packet.type) {
      case 'Ping':
        return okAck({ sessionId });
      case 'Create-Session':
        return await createSession(ctx, packet);
      case 'Fragment':
        return await fragment(ctx, packet);
      case 'Close-Session':
        return await closeSession(ctx, packet);
      case 'Cancel-Session':
        return await cancelSession(ctx, packet);
    }
  } catch (err) {
    if (isBitsError(err) && err.code === 'BITS_SUPERSEDED') {
      log.set('received', err.received);
      return undefined;
    }
    return errorToAck(err, sessionId, { log, logger: parts.logger });
  }
}
