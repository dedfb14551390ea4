import type { HttpRequest, HttpResponse, ResponseHeaders } from '../http/types.js';
import { isBitsError } from '../protocol/errors.js';
import type { StoredObject } from '../store/types.js';
import type { ServerParts } from './handlers/context.js';
import { requestSessionId } from './request-fields.js';
import { identify } from './identify.js';
import { matchReplyPath, sameToken } from '../protocol/reply-url.js';
import type { ReplyPath } from '../protocol/reply-url.js';
import type { RequestLog } from './request-log.js';
import { isNotFound, serveObject } from './serve-file.js';
import { storageError } from './storage-error.js';

/** A file or object to serve (none: a 404), or why there is nothing to look for. */
type Found = { readonly file: StoredObject | undefined } | { readonly missing: string };

/** The reply file a reply URL names, if its session is alive, notified, and the token and directory match. */
async function replyFile(parts: ServerParts, reply: ReplyPath, log: RequestLog): Promise<Found> {
  const record = await parts.sessions.records.get(reply.sessionId);
  log.set('session', record?.id);
  if (!record) return { missing: 'no such session' };
  if (!record.reply || record.reply.static) return { missing: 'the session has no generated reply' };
  if (parts.sessions.isExpired(record)) return { missing: 'the session expired' };
  if (!sameToken(record.reply.token, reply.token)) return { missing: 'wrong reply token' };
  const dir = record.urlPath.slice(0, record.urlPath.lastIndexOf('/')) || '/';
  if (dir !== reply.directory) return { missing: `the reply belongs to ${dir}, not ${reply.directory}` };
  return { file: await parts.sessions.bytes.openReply(record) };
}

/** Answers a refused or failed download: 404 when there is nothing to serve, 500 when the server failed. */
function refuse(parts: ServerParts, res: HttpResponse, log: RequestLog, err: unknown): void {
  if ((isBitsError(err) && err.status < 500) || isNotFound(err)) {
    // Outside the vdir, a directory, a bad path: as good as absent, and answered the same way.
    if (isBitsError(err)) log.failed(err.message, err.code);
    else log.failed(err instanceof Error ? err.message : String(err));
    log.answered(404);
    res.send(404, { 'Content-Length': '0' });
    return;
  }
  const error = storageError(err, 'download failed');
  log.failed(error.message, error.code);
  parts.logger.error({ err }, 'download failed');
  log.answered(500);
  res.send(500, { 'Content-Length': '0' });
}

/**
 * Answers a GET or HEAD: a generated reply (spec §9.3, any vdir that has one), or a file of a vdir
 * with `downloadEnabled` (spec §11), after the vdir's authentication. Nothing to serve is a 404, a
 * failing store a 500; the log line says which and why.
 *
 * @example
 * ```ts
 * if (method === 'GET' || method === 'HEAD') await serveDownload(parts, req, res, log);
 * ```
 */
export async function serveDownload(parts: ServerParts, req: HttpRequest, res: HttpResponse, log: RequestLog): Promise<void> {
  let found: Found;
  // (Kerberos's mutual-authentication token, for the answer)
  let authHeaders: ResponseHeaders | undefined;
  try {
    const loc = parts.vdirs.locate(req.path);
    if (!loc) found = { missing: 'no vdir' };
    else {
      log.set('vdir', loc.vdir.path);
      const who = await identify(parts, req, loc.vdir, requestSessionId(req), log);
      if (who.kind === 'answer') {
        const { status, headers } = who.ack;
        log.answered(status);
        res.send(status, status === 401 ? headers : { 'Content-Length': '0' });
        return;
      }
      if (who.headers) authHeaders = who.headers;
      // (urlPath is the decoded path; its segments contain no '/')
      const reply = matchReplyPath(loc.urlPath.split('/').filter(Boolean));
      if (reply) found = await replyFile(parts, reply, log);
      else if (!loc.vdir.downloadEnabled) found = { missing: 'downloads are not enabled here' };
      else {
        // (a local folder opens through directory descriptors: a folder swapped for a symlink cannot redirect the read)
        found = { file: await loc.destinations.open(loc.segments) };
      }
    }
  } catch (err) {
    refuse(parts, res, log, err);
    return;
  }
  if ('missing' in found) {
    log.failed(found.missing);
    log.answered(404);
    res.send(404, { ...authHeaders, 'Content-Length': '0' });
    return;
  }
  let status: number | undefined;
  // (serveFile answers a missing file itself; the status it sends tells the log line what happened)
  const watched: HttpResponse = {
    get headersSent() {
      return res.headersSent;
    },
    send(s, headers, body) {
      status = s;
      res.send(s, authHeaders ? { ...headers, ...authHeaders } : headers, body);
    },
    stream(s, headers, body) {
      status = s;
      return res.stream(s, authHeaders ? { ...headers, ...authHeaders } : headers, body);
    },
    destroy: () => res.destroy(),
  };
  try {
    await serveObject(req, watched, found.file);
  } catch (err) {
    // The engine answers a bare 500 (or drops the connection mid-body); the line says why.
    log.failed(storageError(err, 'serving the file failed').message);
    throw err;
  }
  if (status === 404) {
    log.failed('no such file');
    log.answered(404);
  } else log.set('status', 'served');
}
