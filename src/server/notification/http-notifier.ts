import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BitsError } from '../../protocol/errors.js';
import { HResult } from '../../protocol/hresult.js';

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
  signal: AbortSignal;
  /** By value: stores the application's reply body (only called for a 2xx without a static URL). */
  storeReply: (body: Readable) => Promise<void>;
}

/** The application's answer to a successful notification. */
export interface NotificationAnswer {
  staticUrl: string | undefined;
  copyToDestination: boolean;
}

const MAX_REPLY_URL = 2200;

function drain(res: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    res.on('end', resolve).on('error', () => resolve()).on('close', resolve).resume();
  });
}

/**
 * POSTs one notification to a server application and interprets its answer (spec §9.2–§9.3, D11):
 * 2xx → success (`BITS-Static-Response-URL`, `BITS-Copy-File-To-Destination`, by-value reply body
 * streamed to `storeReply`); another status → `BITS_APPLICATION_ERROR` carrying it; silence past the
 * idle limit → `BITS_APPLICATION_TIMEOUT`; no connection → `BITS_APPLICATION_UNREACHABLE`.
 * Nothing is buffered: the upload and the reply are streamed.
 *
 * @example
 * ```ts
 * const answer = await postNotification({ url, type: 'by-value', originalUrl, body: () => bytes.openRead(id),
 *   size, timeoutMs: 300_000, signal, storeReply: (b) => bytes.writeReply(id, b).then(() => undefined) });
 * ```
 */
export function postNotification(n: NotificationRequest): Promise<NotificationAnswer> {
  const headers: Record<string, string> = {
    'BITS-Original-Request-URL': n.originalUrl,
    'User-Agent': 'bits-upload',
    Accept: '*/*',
  };
  if (n.type === 'by-reference') {
    headers['BITS-Request-DataFile-Name'] = n.requestFile ?? '';
    headers['BITS-Response-DataFile-Name'] = n.responseFile ?? '';
    headers['Content-Length'] = '0';
  } else {
    headers['Content-Length'] = String(n.size);
    headers['Content-Type'] = 'application/octet-stream';
  }
  const transport = n.url.protocol === 'https:' ? https : http;
  return new Promise<NotificationAnswer>((resolve, reject) => {
    let settled = false;
    const fail = (err: BitsError): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const req = transport.request(n.url, { method: 'POST', headers, agent: false });
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
      const rawStatic = res.headers['bits-static-response-url'];
      const staticUrl = Array.isArray(rawStatic) ? rawStatic[0] : rawStatic;
      const copyToDestination = res.headers['bits-copy-file-to-destination'] !== undefined;
      if (staticUrl !== undefined && staticUrl.length > MAX_REPLY_URL) {
        void drain(res).then(() => fail(new BitsError('BITS_REPLY_URL_TOO_LONG', `static reply URL of ${staticUrl.length} characters`)));
        return;
      }
      const finish = (): void => {
        if (settled) return;
        settled = true;
        resolve({ staticUrl, copyToDestination });
      };
      if (n.type === 'by-value' && staticUrl === undefined) {
        n.storeReply(res).then(finish, (err: unknown) =>
          fail(new BitsError('BITS_APPLICATION_UNREACHABLE', `reading the application's reply failed: ${(err as Error).message}`, { cause: err })),
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
