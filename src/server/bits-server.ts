import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { HttpServer } from '../http/server.js';
import type { HeadError } from '../http/request-head.js';
import type { HttpLimits } from '../http/limits.js';
import type { HttpRequest, HttpResponse, ResponseHeaders } from '../http/types.js';
import { errorAck, okAck } from '../protocol/ack.js';
import type { Ack } from '../protocol/ack.js';
import { BITS_METHOD, Header } from '../protocol/constants.js';
import { BitsError, isBitsError } from '../protocol/errors.js';
import { parsePacket } from '../protocol/packet.js';
import type { Packet } from '../protocol/packet.js';
import { canWalkByDescriptor, openConfinedFile } from '../store/fs/confined.js';
import { FsByteStore } from '../store/fs/fs-byte-store.js';
import { FsRecordStore } from '../store/fs/fs-record-store.js';
import { acquireStateDir } from '../store/fs/state-dir-lock.js';
import type { ByteStore, RecordStore } from '../store/types.js';
import { ConfigError, readTlsFiles } from './config.js';
import type { ServerConfig, VdirConfig } from './config.js';
import { Authenticator } from './auth/authenticator.js';
import type { AuthenticateHook } from './auth/authenticator.js';
import { serveFile } from './download.js';
import { cancelSession } from './handlers/cancel-session.js';
import { closeSession } from './handlers/close-session.js';
import type { PacketContext } from './handlers/context.js';
import { createSession } from './handlers/create-session.js';
import { FragmentError, SupersededError, fragment } from './handlers/fragment.js';
import { Sessions } from './sessions.js';
import type { SessionEvents } from './sessions.js';
import type { UploadCompleteHook } from './notification/hook.js';
import { bindListener } from './notification/public-url.js';
import { matchReplyPath, sameToken } from './notification/reply-url.js';
import type { ReplyPath } from './notification/reply-url.js';
import { loggedSessionId, redactTarget } from './redact.js';
import { storageError } from './storage-error.js';
import { foreignWritable } from './tree-permissions.js';
import { VdirTable } from './vdir-table.js';

/** Options of {@link BitsServer} beyond the configuration. */
export interface BitsServerOptions {
  logger: Logger;
  /** Session records; default: JSON files under `config.stateDir`. */
  records?: RecordStore;
  /** Upload bytes; default: files under `config.stateDir`. */
  bytes?: ByteStore;
  /**
   * In-process server applications, by vdir path: `onUploadComplete` runs when an upload to that
   * vdir is complete and makes its uploads upload-reply uploads (it takes the place of a
   * notification URL).
   */
  hooks?: Readonly<Record<string, { onUploadComplete?: UploadCompleteHook }>>;
  /** A custom authentication scheme, consulted before each vdir's own (see {@link AuthenticateHook}). */
  authenticate?: AuthenticateHook;
}

const SECOND = 1000;
const SUPERSEDED = Symbol('superseded');

/** Whether the client presented a certificate on this (TLS) connection. */
function hasPeerCertificate(req: HttpRequest): boolean {
  if (!req.encrypted || !req.socket) return false;
  const cert = (req.socket as TLSSocket).getPeerCertificate?.();
  return cert !== undefined && cert !== null && Object.keys(cert).length > 0;
}

/**
 * The method of a request after `X-HTTP-Method-Override` (D19): a `POST` carrying
 * `X-HTTP-Method-Override: BITS_POST` (any case) is a `BITS_POST`.
 *
 * @example
 * ```ts
 * effectiveMethod({ method: 'POST', headers: { 'x-http-method-override': 'bits_post' } }); // 'BITS_POST'
 * ```
 */
export function effectiveMethod(req: Pick<HttpRequest, 'method' | 'headers'>): string {
  const override = req.headers[Header.MethodOverride];
  if (req.method.toUpperCase() === 'POST' && override?.trim().toUpperCase() === BITS_METHOD) return BITS_METHOD;
  return req.method.toUpperCase() === BITS_METHOD ? BITS_METHOD : req.method;
}

/**
 * The BITS upload server: virtual directories, sessions and the five packet handlers over the HTTP
 * engine, plus downloads on vdirs that allow them. Emits the session lifecycle events of
 * {@link SessionEvents}.
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
  private readonly vdirs: VdirTable;
  private readonly logger: Logger;
  private http: HttpServer | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private releaseStateDir: (() => Promise<void>) | undefined;
  private readonly hooks = new Map<string, UploadCompleteHook>();
  private readonly auth: Authenticator;

  constructor(
    readonly config: ServerConfig,
    options: BitsServerOptions,
  ) {
    super();
    this.logger = options.logger;
    this.vdirs = new VdirTable(config.vdirs);
    this.auth = new Authenticator(this.logger, options.authenticate);
    for (const [path, h] of Object.entries(options.hooks ?? {})) {
      const vdir = config.vdirs.find((v) => v.path.toLowerCase() === path.toLowerCase());
      if (!vdir) throw new ConfigError(`hooks: no vdir "${path}" is configured`);
      if (h.onUploadComplete) this.hooks.set(vdir.path, h.onUploadComplete);
    }
    config.vdirs.forEach((v, i) => {
      if (v.notificationType !== 'none' && !v.notificationUrl && !this.hooks.has(v.path)) {
        throw new ConfigError(`invalid configuration:\n  vdirs[${i}].notificationUrl: required when notificationType is "${v.notificationType}"`);
      }
    });
    this.sessions = new Sessions(
      options.records ?? new FsRecordStore(config.stateDir, { logger: this.logger }),
      options.bytes ?? new FsByteStore(config.stateDir),
      this.logger,
    );
    for (const name of [
      'session-created',
      'fragment-received',
      'upload-complete',
      'upload-notified',
      'session-closed',
      'session-cancelled',
      'session-expired',
    ] as const) {
      this.sessions.on(name, (...args: unknown[]) => (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args));
    }
  }

  /**
   * The request handler: BITS_POST (or its POST override) to the packet handlers, GET/HEAD to
   * downloads. Usable on its own under another HTTP server (see `createNodeHttpHandler`).
   */
  readonly handle = async (req: HttpRequest, res: HttpResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const log: Record<string, unknown> = { remote: req.remoteAddress, method: req.method, url: redactTarget(req.target) };
    try {
      const method = effectiveMethod(req);
      if (method === BITS_METHOD) {
        const ack = await this.handleBits(req, log);
        if (ack === SUPERSEDED) {
          log['status'] = 'superseded';
          res.destroy();
          return;
        }
        log['status'] = ack.status;
        if (ack.headers['BITS-Error-Code']) log['error'] = ack.headers['BITS-Error-Code'];
        res.send(ack.status, ack.headers);
      } else if (method === 'GET' || method === 'HEAD') {
        await this.handleDownload(req, res, log);
      } else {
        log['status'] = 405;
        res.send(405, { Allow: `${BITS_METHOD}, GET, HEAD`, 'Content-Length': '0' });
      }
    } finally {
      log['ms'] = Number((process.hrtime.bigint() - started) / 1000n) / 1000;
      const status = log['status'];
      if ((typeof status === 'number' && status >= 500) || log['code'] === 'BITS_CLIENT_DISCONNECTED') this.logger.warn(log, 'request');
      else this.logger.info(log, 'request');
    }
  };

  /** Formats the answer to a request head the engine could not accept (D13, D21, header limits). */
  readonly badRequest = (error: HeadError): { status: number; headers: ResponseHeaders } => {
    const isBits =
      error.method !== undefined && effectiveMethod({ method: error.method, headers: error.headers ?? {} }) === BITS_METHOD;
    if (!isBits || error.status >= 500) return { status: error.status, headers: { 'Content-Length': '0' } };
    const code = error.code === 'transfer-encoding' ? 'BITS_TRANSFER_ENCODING' : error.code === 'header-value-too-large' ? 'BITS_HEADER_TOO_LARGE' : 'BITS_BAD_REQUEST';
    const sessionId = error.headers?.[Header.SessionId];
    // 414 and 431 keep their status (the engine's limits); every other malformed head is 400.
    return errorAck(new BitsError(code, error.message, { status: error.status }), { sessionId });
  };

  private async handleBits(req: HttpRequest, log: Record<string, unknown>): Promise<Ack | typeof SUPERSEDED> {
    const sessionId = req.headers[Header.SessionId]?.trim() || undefined;
    if (sessionId) log['session'] = sessionId;
    let packet: Packet | undefined;
    try {
      if (req.httpVersion !== '1.1') throw new BitsError('BITS_HTTP_VERSION', 'BITS_POST requires HTTP/1.1');
      const loc = this.vdirs.locate(req.path);
      if (loc) log['vdir'] = loc.vdir.path;
      if (sessionId && loc?.vdir.auth?.sessionCapability) log['session'] = loggedSessionId(sessionId, true);
      if (!loc || !loc.vdir.uploadEnabled) throw new BitsError('BITS_UPLOADS_DISABLED', `uploads are not enabled for ${req.path}`);
      const who = await this.identify(req, loc.vdir, log);
      if ('status' in who) return who;
      packet = parsePacket(req.headers, req.contentLength, req.chunked);
      log['packet'] = packet.type;
      const ctx: PacketContext = {
        req,
        loc,
        vdirs: this.vdirs,
        sessions: this.sessions,
        logger: this.logger,
        log,
        principal: who.principal,
        hook: this.hooks.get(loc.vdir.path),
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
      if (err instanceof SupersededError) {
        log['received'] = err.received;
        return SUPERSEDED;
      }
      return this.errorToAck(err, sessionId, log);
    }
  }

  /**
   * Authenticates and authorizes a request for a vdir: the principal's name (or `null`, anonymous),
   * or the answer to send instead — a 401 challenge, or 403 + `0x80070005` for a principal the vdir
   * does not allow.
   */
  private async identify(req: HttpRequest, vdir: VdirConfig, log: Record<string, unknown>): Promise<{ principal: string | null } | Ack> {
    if (!this.auth.guards(vdir)) return { principal: null };
    const capability = await this.sessionCapability(req, vdir);
    if (capability) {
      log['auth'] = 'session capability';
      if (capability.principal !== null) log['user'] = capability.principal;
      return capability;
    }
    const decision = await this.auth.authenticate(req, vdir);
    switch (decision.kind) {
      case 'anonymous':
        return { principal: null };
      case 'challenge':
        log['auth'] = decision.reason;
        return { status: 401, headers: { 'WWW-Authenticate': decision.wwwAuthenticate, 'Content-Length': '0' } };
      case 'denied':
        log['auth'] = decision.reason;
        return errorAck(new BitsError('BITS_ACCESS_DENIED', decision.reason), { sessionId: req.headers[Header.SessionId]?.trim() || undefined });
      case 'principal':
        log['user'] = decision.principal.name;
        if (!this.auth.allowed(decision.principal, vdir.auth)) {
          log['auth'] = `${decision.principal.name} is not allowed on ${vdir.path}`;
          return errorAck(new BitsError('BITS_ACCESS_DENIED', `${decision.principal.name} is not allowed`), {
            sessionId: req.headers[Header.SessionId]?.trim() || undefined,
          });
        }
        return { principal: decision.principal.name };
    }
  }

  /**
   * With `auth.sessionCapability`, a BITS packet other than Create-Session that carries no
   * credentials but names a live session of the vdir acts as that session's principal. Anything
   * else (credentials present, unknown or expired id) goes through normal authentication.
   */
  private async sessionCapability(req: HttpRequest, vdir: VdirConfig): Promise<{ principal: string | null } | undefined> {
    if (!vdir.auth?.sessionCapability || req.headers['authorization'] !== undefined) return undefined;
    // Other credentials (a custom hook's, a client certificate) are always checked as usual.
    if (this.auth.hasHook || hasPeerCertificate(req)) return undefined;
    if (effectiveMethod(req) !== BITS_METHOD) return undefined;
    if ((req.headers[Header.PacketType] ?? '').trim().toLowerCase() === 'create-session') return undefined;
    const id = req.headers[Header.SessionId]?.trim();
    if (!id) return undefined;
    const record = await this.sessions.records.get(id);
    if (!record || record.vdir !== vdir.path || this.sessions.isExpired(record)) return undefined;
    if (record.principal === null) return { principal: null };
    // The account must still exist and still be allowed here: removing a user ends its capabilities.
    const account = await this.auth.currentAccount(record.principal, vdir);
    return account ? { principal: account.name } : undefined;
  }

  /** The one place where failures become Acks. */
  private errorToAck(err: unknown, sessionId: string | undefined, log: Record<string, unknown>): Ack {
    const error = isBitsError(err) ? err : storageError(err, 'request failed');
    log['code'] = error.code;
    log['reason'] = error.message;
    if (error.code === 'BITS_INTERNAL') this.logger.error({ err }, 'internal error');
    const received = err instanceof FragmentError ? err.received : undefined;
    const retryAfter = error.code === 'BITS_TOO_MANY_SESSIONS' ? 60 : undefined;
    return errorAck(error, { sessionId, receivedContentRange: received, retryAfter });
  }

  private async handleDownload(req: HttpRequest, res: HttpResponse, log: Record<string, unknown>): Promise<void> {
    let file: string | ((flags: number) => Promise<FileHandle>) | undefined;
    try {
      const loc = this.vdirs.locate(req.path);
      if (loc) {
        log['vdir'] = loc.vdir.path;
        const who = await this.identify(req, loc.vdir, log);
        if ('status' in who) {
          log['status'] = who.status;
          res.send(who.status, who.status === 401 ? who.headers : { 'Content-Length': '0' });
          return;
        }
        // (urlPath is the decoded path; its segments contain no '/')
        const reply = matchReplyPath(loc.urlPath.split('/').filter(Boolean));
        if (reply) {
          file = await this.replyFile(reply, log);
        } else if (loc.vdir.downloadEnabled) {
          const path = await this.vdirs.destination(loc);
          // Opened through directory descriptors: a folder swapped for a symlink cannot redirect the read.
          file = canWalkByDescriptor ? (flags: number) => openConfinedFile(loc.vdir.directory, loc.segments, flags) : path;
        }
      }
    } catch {
      file = undefined;
    }
    if (!file) {
      log['status'] = 404;
      res.send(404, { 'Content-Length': '0' });
      return;
    }
    await serveFile(req, res, file);
    log['status'] = 'served';
  }

  /** The reply file a reply URL names, if its session is alive, notified, and the token and directory match. */
  private async replyFile(reply: ReplyPath, log: Record<string, unknown>): Promise<string | undefined> {
    const record = await this.sessions.records.get(reply.sessionId);
    log['session'] = record?.id;
    if (!record?.reply || record.reply.static || this.sessions.isExpired(record)) return undefined;
    if (!sameToken(record.reply.token, reply.token)) return undefined;
    const dir = record.urlPath.slice(0, record.urlPath.lastIndexOf('/')) || '/';
    if (dir !== reply.directory) return undefined;
    return this.sessions.bytes.replyPath(record.id);
  }

  /**
   * Claims the state dir, creates missing vdir folders, sweeps expired sessions, starts listening on
   * the configured address (TLS when configured) and the sweep timer.
   */
  async listen(): Promise<AddressInfo> {
    // Configured files first (ConfigError naming the key), before anything is claimed.
    const files = await readTlsFiles(this.config.tls);
    await this.auth.load(this.config.vdirs);
    this.releaseStateDir = await acquireStateDir(this.config.stateDir);
    for (const v of this.config.vdirs) {
      await mkdir(v.directory, { recursive: true });
      for (const problem of await foreignWritable(v.directory)) {
        this.logger.warn({ vdir: v.path, problem }, 'other local users can change this served folder; keep it writable by the server only');
      }
    }
    await this.sessions.records.recover?.();
    const swept = await this.sessions.sweep();
    if (swept) this.logger.info({ swept }, 'removed expired sessions at startup');
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
    const l = this.config.limits;
    const limits: HttpLimits = {
      maxRequestLine: l.maxRequestLine,
      maxHeaderValue: l.maxHeaderValue,
      maxHeaders: l.maxHeaders,
      maxHead: l.maxHead,
      maxDrain: l.maxDrain,
      headerTimeout: l.headerTimeoutMs,
      bodyIdleTimeout: l.bodyIdleTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      writeIdleTimeout: l.writeIdleTimeoutMs,
    };
    this.http = new HttpServer({ handler: this.handle, logger: this.logger, limits, badRequest: this.badRequest, tls });
    const address = await this.http.listen(this.config.listen.port, this.config.listen.host);
    bindListener(this.config, address.port);
    this.sweepTimer = setInterval(() => {
      this.sessions.sweep().catch((err: unknown) => this.logger.error({ err }, 'sweep failed'));
    }, Math.max(SECOND, this.config.sweepIntervalMs));
    this.sweepTimer.unref();
    this.logger.info(
      { address: address.address, port: address.port, tls: Boolean(tls), vdirs: this.config.vdirs.map((v) => v.path) },
      'listening',
    );
    return address;
  }

  /** Graceful stop: no new connections, requests in progress get `graceMs` to finish. */
  async close(graceMs = this.config.shutdownGraceMs): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.http?.close(graceMs);
    await this.releaseStateDir?.();
    this.releaseStateDir = undefined;
  }
}

