import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';
import type { AdminConfig } from '../config.js';
import { apiRoutes } from './api.js';
import { dashboardRoutes } from './dashboard.js';
import type { AdminDeps, AdminRoute } from './route.js';
import { sendJson } from './route.js';

/** The cookie a signed-in dashboard carries the token in (HttpOnly, SameSite=Strict). */
export const ADMIN_COOKIE = 'bits_admin';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The token of an `admin` block: `token`, or the first line of `tokenFile`; null for none. */
export async function adminToken(config: AdminConfig): Promise<string | null> {
  if (config.token !== null) return config.token;
  if (config.tokenFile === null) return null;
  let text: string;
  try {
    text = await readFile(config.tokenFile, 'utf8');
  } catch (err) {
    throw new ConfigError([{ key: 'admin.tokenFile', message: `cannot read ${config.tokenFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` }]);
  }
  const token = text.split(/\r?\n/)[0]!.trim();
  if (token.length < 16) throw new ConfigError([{ key: 'admin.tokenFile', message: `the token in ${config.tokenFile} is shorter than 16 characters` }]);
  return token;
}

/** The token a request carries: `Authorization: Bearer …`, or the dashboard's cookie. */
function presented(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === ADMIN_COOKIE) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

/** The health endpoints: never behind the token, so that balancers and supervisors can ask. */
function healthRoutes(deps: AdminDeps): AdminRoute[] {
  return [
    { method: 'GET', path: /^\/healthz$/, open: true, handle: (_req, res) => sendJson(res, 200, { status: 'ok' }) },
    {
      method: 'GET',
      path: /^\/readyz$/,
      open: true,
      handle: async (_req, res) => {
        const problem = await deps.readiness();
        sendJson(res, problem ? 503 : 200, problem ? { status: 'unavailable', reason: problem } : { status: 'ready' });
      },
    },
    {
      method: 'GET',
      path: /^\/metrics$/,
      handle: async (_req, res) => {
        const text = await deps.metrics.registry.metrics();
        res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(text);
      },
    },
  ];
}

/**
 * The admin listener: health (`/healthz`, `/readyz`), Prometheus metrics (`/metrics`), the sessions
 * API (`/api/…`) and the dashboard (`/`), on an address of its own so that it is never exposed with
 * the BITS port. With a token, every request but the health endpoints must carry it.
 *
 * @example
 * ```ts
 * const admin = new AdminServer(config.admin, deps, logger);
 * await admin.listen();
 * // ...
 * await admin.close();
 * ```
 */
export class AdminServer {
  private readonly routes: AdminRoute[];
  private http: Server | undefined;
  private token: Buffer | null = null;

  constructor(
    private readonly config: AdminConfig,
    deps: AdminDeps,
    private readonly logger: Logger,
  ) {
    this.routes = [...healthRoutes(deps), ...apiRoutes(deps), ...dashboardRoutes(deps)];
  }

  /**
   * Reads the token and listens.
   *
   * @throws {ConfigError} when the token file cannot be read.
   */
  async listen(): Promise<AddressInfo> {
    const token = await adminToken(this.config);
    this.token = token === null ? null : digest(token);
    const { host, port } = this.config.listen;
    if (token === null && !['127.0.0.1', '::1', 'localhost'].includes(host)) {
      this.logger.warn({ host }, 'the admin listener has no token and listens beyond this machine: set admin.token or admin.tokenFile');
    }
    const http = createServer((req, res) => void this.serve(req, res));
    http.headersTimeout = 10_000;
    http.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    this.http = http;
    const address = http.address() as AddressInfo;
    this.logger.info({ address: address.address, port: address.port, token: token !== null }, 'admin listening');
    return address;
  }

  /** The address it listens on, while it does. */
  address(): AddressInfo | undefined {
    return (this.http?.address() as AddressInfo | null) ?? undefined;
  }

  /** Stops listening; open connections (a dashboard's event stream) are closed. */
  async close(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    if (!http) return;
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }

  private authorized(req: IncomingMessage): boolean {
    if (this.token === null) return true;
    const given = presented(req);
    return given !== undefined && timingSafeEqual(digest(given), this.token);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    const forPath = this.routes.filter((r) => r.path.test(path));
    const route = forPath.find((r) => r.method === req.method || (r.method === 'GET' && req.method === 'HEAD'));
    try {
      if (forPath.length === 0) return sendJson(res, 404, { error: 'not found' });
      if (!route) {
        res.setHeader('Allow', [...new Set(forPath.map((r) => r.method))].join(', '));
        return sendJson(res, 405, { error: `${req.method ?? '?'} is not allowed here` });
      }
      if (!route.open && !this.authorized(req)) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="bits-admin"');
        return sendJson(res, 401, { error: 'a valid admin token is required (Authorization: Bearer …)' });
      }
      await route.handle(req, res, route.path.exec(path)!);
    } catch (err) {
      this.logger.error({ err, url: req.url }, 'admin request failed');
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.destroy();
    }
  }
}
