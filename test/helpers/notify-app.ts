import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RawConnection } from './raw-http.js';
import type { RawResponse } from './raw-http.js';

/** One notification as the test's application saw it. */
export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** How the application answers a notification. */
export type Behaviour = (seen: Seen, res: http.ServerResponse) => unknown;

/** A running server application on 127.0.0.1. */
export interface TestApp {
  port: number;
  seen: Seen[];
  set(b: Behaviour): void;
  close(): Promise<void>;
}

/** The test's server application: a real node:http server that records every notification and answers with `behaviour`. */
export async function startApp(): Promise<TestApp> {
  const seen: Seen[] = [];
  let behaviour: Behaviour = (_s, res) => res.writeHead(200, { 'Content-Length': '0' }).end();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      void Promise.resolve(behaviour(s, res)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    set: (b) => (behaviour = b),
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** GETs a path on the BITS server over a raw socket. */
export async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const c = await RawConnection.connect(port);
  try {
    await c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    return await c.read();
  } finally {
    c.close();
  }
}

/** Resolves a BITS-Reply-URL the way Windows does: against the upload URL's directory, `\` → `/`. */
export function resolveReply(replyUrl: string, uploadPath: string): string {
  return new URL(replyUrl.replace(/\\/g, '/'), `http://localhost${uploadPath}`).pathname;
}
