import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BitsError, isBitsError } from '../../protocol/errors.js';
import { HResult } from '../../protocol/hresult.js';
import { replyTooLarge } from './reply-limit.js';
import { MAX_REPLY_URL, USER_AGENT, WireHeader, Header } from '../../protocol/constants.js';

/** One notification POST (spec §9.2). */
export interface NotificationRequest {
  /** The resolved notification URL, query string of the upload already appended. */
  url: URL;
  type: 'by-reference' | 'by-value';
  /** BITS-Original-Request-URL. */
  originalUrl: string;
  /** By reference: BITS-Request-DataFile-Name / BITS-Response-DataFile-Name. */
  requestFile?: string | undefined;
  responseFile?: string | undefined;
  /** By value: the upload, streamed as the body, and its size. */
  body?: (() => Readable) | undefined;
  size: number;
  /** Idle limit: the application may stay silent this long (ms). */
  timeoutMs: number;
  /** By value: a reply declaring a larger Content-Length is refused before a byte of it is stored. */
  maxReplySize: number;
  signal: AbortSignal;
  /**
   * By value: stores the application's reply body (only called for a 2xx without a static URL) and
   * enforces the size limit while it streams. Its `BitsError`s are the notification's outcome.
   */
  storeReply: (body: Readable) => Promise<void>;
}

/** The application's answer to a successful notification. */
export interface NotificationAnswer {
  staticUrl: string | undefined;
  copyToDestination: boolean;
}

/** The most of an unneeded body (an error page, a by-reference or static answer's body) that is read. */
const MAX_DRAIN = 64 * 1024;

/**
 * Reads a body the server has no use for, so the answer is complete; past {@link MAX_DRAIN} bytes
 * the response is dropped instead (an endless body would otherwise hold the Fragment request).
 */
function drain(res: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    res
      .on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > MAX_DRAIN) {
          resolve();
          res.destroy();
        }
      })
      .on('end', resolve)
      .on('error', () => resolve())
      .on('close', resolve);
  });
}

/** The headers of a notification POST (spec §9.2, D3). */
function requestHeaders(n: NotificationRequest): Record<string, string> {
  const headers: Record<string, string> = {
    [WireHeader.OriginalRequestUrl]: n.originalUrl,
    'User-Agent': USER_AGENT,
    Accept: '*/*',
  };
  if (n.type === 'by-reference') {
    headers[WireHeader.RequestDataFileName] = n.requestFile ?? '';
    headers[WireHeader.ResponseDataFileName] = n.responseFile ?? '';
    headers['Content-Length'] = '0';
  } else {
    headers['Content-Length'] = String(n.size);
    headers['Content-Type'] = 'application/octet-stream';
  }
  return headers;
}

/** Why a 2xx answer cannot be taken as it is, before any of its body is read. */
function answerProblem(n: NotificationRequest, res: IncomingMessage, staticUrl: string | undefined): BitsError | undefined {
  if (staticUrl !== undefined && staticUrl.length > MAX_REPLY_URL) {
    return new BitsError('BITS_REPLY_URL_TOO_LONG', `static reply URL of ${staticUrl.length} characters`);
  }
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (n.type === 'by-value' && staticUrl === undefined && declared > n.maxReplySize) return replyTooLarge(n.maxReplySize, declared);
  return undefined;
}

/**
 * POSTs one notification to a server application and interprets its answer (spec §9.2–§9.3, D11):
 * 2xx → success (`BITS-Static-Response-URL`, `BITS-Copy-File-To-Destination`, by-value reply body
 * streamed to `storeReply`); another status → `BITS_APPLICATION_ERROR` carrying it; silence past the
 * idle limit → `BITS_APPLICATION_TIMEOUT`; no connection → `BITS_APPLICATION_UNREACHABLE`.
 * Nothing is buffered: the upload and the reply are streamed. It settles only once `storeReply`
 * has, so no write of a failed reply is still running when the caller moves on.
 *
 * @example
 * ```ts
 * const answer = await postNotification({ url, type: 'by-value', originalUrl, body: () => bytes.openRead(id),
 *   size, timeoutMs: 300_000, maxReplySize: 64 << 20, signal, storeReply: (b) => bytes.writeReply(id, b).then(() => undefined) });
 * ```
 */
export function postNotification(n: NotificationRequest): Promise<NotificationAnswer> {
  const transport = n.url.protocol === 'https:' ? https : http;
  return new Promise<NotificationAnswer>((resolve, reject) => {
    let settled = false;
    let storing: Promise<void> | undefined;
    let response: IncomingMessage | undefined;
    const fail = (err: BitsError): void => {
      if (settled) return;
      settled = true;
      // With an error, so that a reply being stored fails rather than ending as if it were complete.
      response?.destroy(err);
      req.destroy();
      void (storing ?? Promise.resolve()).catch(() => undefined).then(() => reject(err));
    };
    const req = transport.request(n.url, { method: 'POST', headers: requestHeaders(n), agent: false });
    const onAbort = (): void => fail(new BitsError('BITS_APPLICATION_TIMEOUT', 'notification abandoned', { cause: n.signal.reason }));
    if (n.signal.aborted) onAbort();
    n.signal.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(n.timeoutMs, () =>
      fail(new BitsError('BITS_APPLICATION_TIMEOUT', `no answer from ${n.url.origin} within ${n.timeoutMs / 1000} s`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      fail(new BitsError('BITS_APPLICATION_UNREACHABLE', `cannot reach ${n.url.origin}: ${err.code ?? err.message}`, { cause: err }));
    });
    req.on('close', () => n.signal.removeEventListener('abort', onAbort));
    req.on('response', (res) => {
      response = res;
      res.on('error', () => undefined); // (its failures are reported through fail or storeReply)
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        void drain(res).then(() =>
          fail(
            new BitsError('BITS_APPLICATION_ERROR', `application answered ${status}`, {
              status: status >= 300 && status <= 599 ? status : 500,
              hresult: HResult.HttpErrorBase + status,
            }),
          ),
        );
        return;
      }
      const rawStatic = res.headers[Header.StaticResponseUrl];
      const staticUrl = Array.isArray(rawStatic) ? rawStatic[0] : rawStatic;
      const copyToDestination = res.headers[Header.CopyFileToDestination] !== undefined;
      const problem = answerProblem(n, res, staticUrl);
      if (problem) {
        // (a reply declared too large is not read at all: the connection is dropped)
        if (problem.code === 'BITS_REPLY_URL_TOO_LONG') void drain(res).then(() => fail(problem));
        else fail(problem);
        return;
      }
      const finish = (): void => {
        if (settled) return;
        settled = true;
        resolve({ staticUrl, copyToDestination });
      };
      if (n.type === 'by-value' && staticUrl === undefined) {
        storing = n.storeReply(res);
        storing.then(finish, (err: unknown) =>
          fail(
            isBitsError(err)
              ? err
              : new BitsError('BITS_APPLICATION_UNREACHABLE', `reading the application's reply failed: ${(err as Error).message}`, { cause: err }),
          ),
        );
      } else {
        void drain(res).then(finish);
      }
    });
    if (n.type === 'by-value' && n.body) {
      // An application may answer before reading the whole body; its answer wins over a broken pipe.
      pipeline(n.body(), req).catch(() => undefined);
    } else {
      req.end();
    }
  });
}
