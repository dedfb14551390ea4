import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Connection } from './connection.js';
import type { BadRequestHandler } from './connection.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { HttpLimits } from './limits.js';
import type { HttpHandler } from './types.js';

/** Options of {@link HttpServer}. */
export interface HttpServerOptions {
  handler: HttpHandler;
  logger: Logger;
  limits?: Partial<HttpLimits>;
  /** Formats the answer to an unparseable request head. Default: bare status. */
  badRequest?: BadRequestHandler;
  /** PEM certificate and key: serve HTTPS. Other `tls.createServer` options may be added. */
  tls?: tls.TlsOptions;
}

/**
 * The HTTP/1.1 server: plain TCP or TLS listener, one {@link Connection} per socket, graceful close.
 *
 * @example
 * ```ts
 * const http = new HttpServer({ handler, logger });
 * const { port } = await http.listen(8080, '0.0.0.0');
 * await http.close(30_000);
 * ```
 */
export class HttpServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  /** Called when the last connection has gone (close() waits on them). */
  private drainedWaiters: (() => void)[] = [];
  /** Every accepted TCP socket, including TLS ones still in their handshake (no Connection yet). */
  private readonly sockets = new Set<net.Socket>();
  private shuttingDown = false;
  private readonly limits: HttpLimits;

  constructor(options: HttpServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    const badRequest: BadRequestHandler =
      options.badRequest ?? ((e) => ({ status: e.status, headers: { 'Content-Length': '0' } }));
    const onSocket = (socket: net.Socket): void => {
      const conn = new Connection(socket, options.handler, this.limits, badRequest, options.logger, (c) => {
        this.connections.delete(c);
        if (this.connections.size === 0) {
          const waiters = this.drainedWaiters;
          this.drainedWaiters = [];
          for (const w of waiters) w();
        }
      });
      this.connections.add(conn);
      // a TLS handshake that completes during close(): answer nothing more on it
      if (this.shuttingDown) conn.shutdown();
    };
    if (options.tls) {
      const server = tls.createServer({ ...options.tls, allowHalfOpen: true });
      server.on('secureConnection', onSocket);
      server.on('tlsClientError', (err) => options.logger.debug({ err }, 'TLS handshake failed'));
      this.server = server;
    } else {
      this.server = net.createServer({ allowHalfOpen: true }, onSocket);
    }
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Starts listening; resolves with the bound address (use port 0 for an ephemeral port). */
  listen(port: number, host?: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** The bound address. */
  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /**
   * Number of open connections. A test and diagnostic API (a leak check after a test, a gauge):
   * not needed to run the server.
   *
   * @example
   * ```ts
   * await http.close(1000);
   * assert.equal(http.connectionCount, 0);
   * ```
   */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting, closes idle connections, lets requests in progress finish for up to
   * `graceMs`, then drops what is left.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.shuttingDown = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const allGone = (): Promise<void> =>
      new Promise<void>((resolve) => {
        if (this.connections.size === 0) resolve();
        else this.drainedWaiters.push(resolve);
      });
    for (const c of this.connections) c.shutdown();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([allGone(), graceOver]);
    clearTimeout(timer);
    // Whatever is left is dropped; wait for the sockets to be really closed (their requests aborted).
    for (const c of this.connections) c.destroy();
    await allGone();
    // What is left are TLS sockets that never finished their handshake: nothing is in flight there.
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
