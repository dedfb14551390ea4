import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { bodyFraming } from './body-framing.js';
import { HttpError } from './errors.js';
import type { BadRequestHandler } from './connection.js';
import type { HeadError } from './request-head.js';
import type { HttpHandler, HttpRequest, HttpResponse, ResponseHeaders } from './types.js';

/** Options of {@link createNodeHttpHandler}. */
export interface NodeHttpHandlerOptions {
  /**
   * Formats the answer to a request whose framing the engine would refuse (`BitsServer.badRequest`
   * gives BITS requests their Ack). Default: bare status.
   */
  badRequest?: BadRequestHandler;
}

/** Refuses a request as the engine would: the answer of `badRequest`, and the connection closed. */
function refuse(res: ServerResponse, error: HeadError, badRequest: BadRequestHandler | undefined): void {
  let answer: { status: number; headers: ResponseHeaders } = { status: error.status, headers: {} };
  try {
    if (badRequest) answer = badRequest(error);
  } catch {
    // (a failing formatter still gets the bare status)
  }
  res.writeHead(answer.status, { ...answer.headers, 'Content-Length': '0', Connection: 'close' });
  res.end();
}

/**
 * Runs an {@link HttpHandler} under `node:http` (or `node:https`): for deployments inside an
 * existing Node server, or behind a proxy that turns `BITS_POST` into `POST` +
 * `X-HTTP-Method-Override: BITS_POST` (Node's own parser refuses the `BITS_POST` method). Requests
 * are framed by the engine's rules ({@link bodyFraming}): the same Content-Length values and
 * Transfer-Encodings are refused; a chunked body (decoded by `node:http`) reaches the handler with
 * `chunked: true`.
 *
 * Mounted under a path prefix by a framework that strips it from `req.url` (express's
 * `app.use('/bits', handler)`), the request's `originalUrl` is used instead, so the handler sees
 * the full path: a `BitsServer`'s vdir paths then include the prefix (`/bits/up`). Call
 * `BitsServer.start()` first, since no `listen()` does it.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * createServer(createNodeHttpHandler(bitsServer.handle, { badRequest: bitsServer.badRequest })).listen(8080);
 * ```
 */
export function createNodeHttpHandler(
  handler: HttpHandler,
  options: NodeHttpHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Mounted under a prefix (express's `app.use('/bits', handler)`), `req.url` has lost the prefix;
    // the full target is what the handler's paths (vdirs, reply URLs, notifications) are made of.
    const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
    const full = typeof original === 'string' && original !== '' ? original : (req.url ?? '/');
    const q = full.indexOf('?');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const method = req.method ?? 'GET';
    const httpVersion = req.httpVersion === '1.0' ? '1.0' : '1.1';
    const framing = bodyFraming(headers['content-length'], headers['transfer-encoding'], httpVersion);
    if (!framing.ok) {
      refuse(res, { status: 400, ...framing.error, method, headers }, options.badRequest);
      return;
    }
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new HttpError('HTTP_CONNECTION_CLOSED'));
    });
    const { framing: f } = framing;
    const request: HttpRequest = {
      method,
      target: full,
      path: q === -1 ? full : full.slice(0, q),
      query: q === -1 ? '' : full.slice(q),
      httpVersion,
      headers,
      contentLength: f.kind === 'length' && f.declared ? f.length : undefined,
      chunked: f.kind === 'chunked',
      body: req,
      remoteAddress: req.socket.remoteAddress ?? '',
      encrypted: (req.socket as TLSSocket).encrypted === true,
      socket: req.socket,
      signal: abort.signal,
    };
    const response: HttpResponse = {
      get headersSent() {
        return res.headersSent;
      },
      send(status, h, body) {
        res.writeHead(status, h as OutgoingHttpHeaders);
        res.end(body);
      },
      async stream(status, h, body) {
        res.writeHead(status, h as OutgoingHttpHeaders);
        await pipeline(body, res);
      },
      destroy() {
        req.socket.destroy();
      },
    };
    Promise.resolve()
      .then(() => handler(request, response))
      .catch(() => {
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Length': '0', Connection: 'close' });
          res.end();
        } else res.destroy();
      });
  };
}
