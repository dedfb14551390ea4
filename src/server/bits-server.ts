import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { HttpServer } from '../http/server.js';
import type { HttpLimits } from '../http/limits.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import { BITS_METHOD } from '../protocol/constants.js';
import { acquireStateDir } from '../store/fs/state-dir-lock.js';
import { readTlsFiles } from './config.js';
import type { ServerConfig } from './config.js';
import { Authenticator } from './auth/authenticator.js';
import { effectiveMethod } from './request-fields.js';
import { badRequest } from './error-ack.js';
import { answerPacket } from './answer-packet.js';
import type { ServerParts } from './handlers/context.js';
import { Sessions } from './sessions.js';
import { buildStores, defaultNodeId } from './stores.js';
import type { ServerStores } from './stores.js';
import type { SessionEvents } from './sessions.js';
import { bindListener } from './notification/public-url.js';
import { RequestLog } from './request-log.js';
import { serveDownload } from './serve-download.js';
import { validateServerOptions } from './server-options.js';
import type { BitsServerOptions } from './server-options.js';
import { foreignWritable } from './tree-permissions.js';
import { VdirTable } from './vdir-table.js';
import { AdminServer } from './admin/admin-server.js';
import { Activity } from './admin/activity.js';
import { Metrics } from './admin/metrics.js';
import type { AdminDeps } from './admin/route.js';

export { effectiveMethod } from './request-fields.js';
export type { BitsServerOptions } from './server-options.js';

const SECOND = 1000;

/**
 * The BITS upload server: virtual directories, sessions and the five packet handlers over the HTTP
 * engine, plus downloads on vdirs that allow them. Emits the session lifecycle events of
 * {@link SessionEvents}. `listen()` runs it on its own listener; mounted under another server
 * (`createNodeHttpHandler(server.handle, …)`), `start()` and `stop()` do the same without one.
 *
 * @example
 * ```ts
 * const server = new BitsServer(parseConfig({ vdirs: [{ path: '/up', directory: './up' }] }, cwd), { logger });
 * const address = await server.listen();
 * // ...
 * await server.close();
 * ```
 */
export class BitsServer extends EventEmitter<SessionEvents> {
  readonly sessions: Sessions;
  /** The server's Prometheus metrics (served by the admin listener's `/metrics`; counted only when one is configured). */
  readonly metrics: Metrics;
  /** What this node served recently (the admin API's stats and errors). */
  private readonly activity = new Activity();
  private readonly parts: ServerParts;
  private readonly logger: Logger;
  private http: HttpServer | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private releaseStateDir: (() => Promise<void>) | undefined;
  private started = false;
  private readonly auth: Authenticator;
  private readonly stores: ServerStores;
  private admin: AdminServer | undefined;
  private closing = false;

  /** @throws {ConfigError} when the options do not fit the configuration (see `validateServerOptions`). */
  constructor(
    readonly config: ServerConfig,
    options: BitsServerOptions,
  ) {
    super();
    const { replyHooks, vdirHooks } = validateServerOptions(config, options);
    this.logger = options.logger;
    this.auth = new Authenticator(this.logger, options.authenticate);
    this.stores = buildStores(config, this.logger, options);
    this.sessions = new Sessions(this.stores.records, this.stores.bytes, this.logger, { events: this });
    this.metrics = new Metrics({
      liveSessions: async () => this.stores.records.countLiveByVdir?.(Date.now()),
      folders: () => [
        ...(this.stores.usesStateDir ? [{ label: 'state', path: config.stateDir }] : []),
        ...config.vdirs.flatMap((v) => (v.directory === undefined ? [] : [{ label: v.path, path: v.directory }])),
      ],
    }, { enabled: config.admin !== null });
    this.parts = {
      vdirs: new VdirTable(config.vdirs, (vdir) => this.stores.destinations(vdir)),
      sessions: this.sessions,
      auth: this.auth,
      logger: this.logger,
      hooks: replyHooks,
      vdirHooks,
      metrics: this.metrics,
    };
  }

  /**
   * The request handler: BITS_POST (or its POST override) to the packet handlers, GET/HEAD to
   * downloads. Usable on its own under another HTTP server (see `createNodeHttpHandler` and
   * {@link BitsServer.start}).
   */
  readonly handle = async (req: HttpRequest, res: HttpResponse): Promise<void> => {
    const log = new RequestLog(req);
    try {
      const method = effectiveMethod(req);
      if (method === BITS_METHOD) {
        await answerPacket(this.parts, req, res, log);
      } else if (method === 'GET' || method === 'HEAD') {
        await serveDownload(this.parts, req, res, log);
      } else {
        log.answered(405);
        res.send(405, { Allow: `${BITS_METHOD}, GET, HEAD`, 'Content-Length': '0' });
      }
    } finally {
      log.finish(this.logger, (fields) => {
        this.metrics.request(fields);
        this.activity.request(fields);
      });
    }
  };

  /** Formats the answer to a request head the engine could not accept (D13, D21, header limits). */
  readonly badRequest = badRequest;

  /**
   * Makes the server ready to answer requests, without a listener of its own (what `listen()` does
   * first; call it yourself when `handle` is mounted under another server): loads the users files,
   * takes the state directory's lock (one server per state directory) when a store keeps files
   * there, connects the configured stores (PostgreSQL: connect and migrate), creates missing vdir
   * folders, runs the store's crash recovery, removes sessions that expired while it was down, and starts the
   * sweep of expired sessions, and the admin listener when one is configured. Undo it with
   * {@link BitsServer.stop}.
   *
   * @throws {StateDirInUseError} when another live process holds the state directory.
   * @throws {StoreUnavailableError} when the configured PostgreSQL cannot be reached.
   * @example
   * ```ts
   * await server.start();
   * app.use('/bits', createNodeHttpHandler(server.handle, { badRequest: server.badRequest }));
   * // ... on shutdown:
   * await server.stop();
   * ```
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('BitsServer is already started');
    await this.auth.load(this.config.vdirs);
    if (this.stores.usesStateDir) this.releaseStateDir = await acquireStateDir(this.config.stateDir);
    this.started = true;
    try {
      await this.stores.open();
      for (const v of this.config.vdirs) {
        if (v.directory === undefined) continue;
        await mkdir(v.directory, { recursive: true });
        for (const problem of await foreignWritable(v.directory)) {
          this.logger.warn({ vdir: v.path, problem }, 'other local users can change this served folder; keep it writable by the server only');
        }
      }
      await this.sessions.records.recover?.();
      await this.sessions.recoverProgress();
      const swept = await this.sessions.sweep();
      if (swept) this.logger.info({ swept }, 'removed expired sessions at startup');
      if (this.config.admin) {
        const admin = new AdminServer(this.config.admin, this.adminDeps(), this.logger);
        await admin.listen();
        this.admin = admin;
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.sweepTimer = setInterval(() => {
      this.sessions.sweep().catch((err: unknown) => this.logger.error({ err }, 'sweep failed'));
    }, Math.max(SECOND, this.config.sweepIntervalMs));
    this.sweepTimer.unref();
  }

  /**
   * Ends what {@link BitsServer.start} began: the sweep stops, the configured stores are closed (a
   * server on PostgreSQL or S3 cannot be started again) and the state directory is released.
   * For a mounted server, call it once the host server stops sending requests.
   */
  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    if (!this.started) return;
    this.started = false;
    try {
      await this.admin?.close();
      this.admin = undefined;
      await this.stores.close();
    } finally {
      await this.releaseStateDir?.();
      this.releaseStateDir = undefined;
    }
  }

  /**
   * {@link BitsServer.start}, then listens on the configured address (TLS when configured). The
   * configured TLS files are read first, before anything is claimed.
   */
  async listen(): Promise<AddressInfo> {
    // Configured files first (ConfigError naming the key), before anything is claimed.
    const files = await readTlsFiles(this.config.tls);
    await this.start();
    const t = this.config.tls;
    const tls = files
      ? {
          cert: files.cert,
          key: files.key,
          // Client certificates are asked for, never required at the TLS level: a site that accepts
          // but does not require them must not break clients that have none (spec §12).
          ...(files.ca ? { ca: files.ca, requestCert: true, rejectUnauthorized: false } : {}),
        }
      : undefined;
    for (const v of this.config.vdirs) {
      if (v.auth?.schemes.includes('basic') && !t && !v.auth.allowInsecureBasic) {
        this.logger.warn({ vdir: v.path }, 'Basic authentication without TLS is refused; configure tls or allowInsecureBasic');
      }
    }
    // (the configuration's limits are the engine's, already in bytes and milliseconds)
    const limits: HttpLimits = this.config.limits;
    this.http = new HttpServer({ handler: this.handle, logger: this.logger, limits, badRequest: this.badRequest, tls });
    let address: AddressInfo;
    try {
      address = await this.http.listen(this.config.listen.port, this.config.listen.host);
    } catch (err) {
      // (a port in use: nothing stays claimed)
      this.http = undefined;
      await this.stop();
      throw err;
    }
    bindListener(this.config, address.port);
    this.logger.info(
      { address: address.address, port: address.port, tls: Boolean(tls), vdirs: this.config.vdirs.map((v) => v.path) },
      'listening',
    );
    return address;
  }

  /**
   * Graceful stop: no new connections, requests in progress get `graceMs` to finish; then
   * {@link BitsServer.stop}. (Without a listener of its own, the same as `stop()`.)
   */
  async close(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.closing = true; // (readyz answers 503 from now on, so that balancers stop sending)
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.http?.close(graceMs);
    this.http = undefined;
    await this.stop();
    this.closing = false;
  }

  /** The admin listener's address, while one listens. */
  adminAddress(): AddressInfo | undefined {
    return this.admin?.address();
  }

  private adminDeps(): AdminDeps {
    return {
      config: this.config,
      sessions: this.sessions,
      metrics: this.metrics,
      activity: this.activity,
      node: this.config.store.records.type === 'postgres' ? (this.config.store.records.node ?? defaultNodeId()) : defaultNodeId(),
      logger: this.logger,
      readiness: async () => (this.closing ? 'the server is shutting down' : this.stores.problem()),
    };
  }
}

