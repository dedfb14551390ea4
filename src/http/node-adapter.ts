import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import type { HttpHandler, HttpRequest, HttpResponse } from './types.js';

/**
 * Runs an {@link HttpHandler} under `node:http` (or `node:https`): for deployments inside an
 * existing Node server, or behind a proxy that turns `BITS_POST` into `POST` +
 * `X-HTTP-Method-Override: BITS_POST` (Node's own parser refuses the `BITS_POST` method).
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * createServer(createNodeHttpHandler(bitsServer.handle)).listen(8080);
 * ```
 */
export function createNodeHttpHandler(handler: HttpHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const cl = headers['content-length'];
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('connection closed'));
    });
    const request: HttpRequest = {
      method: req.method ?? 'GET',
      target,
      path: q === -1 ? target : target.slice(0, q),
      query: q === -1 ? '' : target.slice(q),
      httpVersion: req.httpVersion === '1.0' ? '1.0' : '1.1',
      headers,
      contentLength: cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined,
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
        res.writeHead(status, h);
        res.end(body);
      },
      async stream(status, h, body) {
        res.writeHead(status, h);
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
