import http from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { ClientHResult } from '../protocol/client-hresults.js';
import { USER_AGENT } from '../protocol/constants.js';
import { withoutUserinfo } from '../protocol/userinfo.js';
import { handshake, ntlmCredentials } from './connection-auth.js';
import type { ConnectionScheme, HandshakeSend, NtlmCredentials } from './connection-auth.js';
import { BitsClientError } from './errors.js';

/** Largest Ack body read (Acks have none; anything longer is discarded with the connection). */
const MAX_ACK_BODY = 64 * 1024;

/** Connection errors that mean the server could not be reached at all. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** TLS failures that no retry can fix. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
]);

/** Connection settings shared by every request of a job. */
export interface TransportOptions {
  /** `user:password` for Basic (or NTLM) authentication; default: the user information of the job's URL. */
  readonly user?: string | undefined;
  /**
   * Windows Authentication instead of Basic: `negotiate` (Kerberos, from the credential cache) or
   * `ntlm` (with `user` as `DOMAIN\user:password`). Both authenticate a connection, not a request:
   * the transport then keeps one connection per host and authenticates each new one first.
   */
  readonly auth?: ConnectionScheme | undefined;
  /** Headers sent on every request to the job's own hosts (like `SetCustomHeaders`). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** PEM certificate(s) trusted for HTTPS in place of the system store's. */
  readonly ca?: string | Buffer | undefined;
  /** Accept any server certificate. */
  readonly insecure?: boolean | undefined;
  /** PEM client certificate and its key, for servers that ask for one. */
  readonly cert?: string | Buffer | undefined;
  readonly key?: string | Buffer | undefined;
  /** Longest time a request may make no progress (nothing sent, nothing received). */
  readonly idleTimeoutMs: number;
}

/**
 * A request body produced while it is sent: `length` bytes in the pieces `pieces()` yields. A piece
 * may be a buffer the source reuses: it is not asked for the next-but-one piece before the socket
 * has taken this one. An error of the source ends the request with that error.
 */
export interface BodySource {
  readonly length: number;
  pieces(): AsyncIterator<Buffer>;
}

/** One request. */
export interface SendOptions {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: BodySource | undefined;
  readonly signal?: AbortSignal | undefined;
  /** What is sent, for error messages: a packet type, `GET` or `HEAD`. */
  readonly label: string;
  /**
   * Called whenever bytes move: a piece of the body taken by the socket, the response head, a piece
   * of an Ack body read (a caller reading the body itself reports its own pieces).
   */
  readonly onActivity?: (() => void) | undefined;
}

/** A response whose body is still to be read (or discarded). */
export interface ClientResponse {
  readonly status: number;
  /** Lowercase names; repeated headers joined with `, `. */
  readonly headers: Record<string, string>;
  readonly body: IncomingMessage;
}

/** `user:password`: as given, or the URL's user information. */
function userPassword(user: string | undefined, url: URL): string | undefined {
  if (user !== undefined) return user;
  if (url.username === '' && url.password === '') return undefined;
  return `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
}

/**
 * The error of a request cut by its signal. A {@link BitsClientError} given as the abort reason (the
 * job's no-progress budget ran out) becomes the request's own error, naming the request and URL; any
 * other abort (stop, cancel) is an `AbortError`.
 */
function abortError(signal: AbortSignal, label: string, url: URL): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof BitsClientError) {
    return new BitsClientError(reason.code, reason.message, {
      status: reason.status,
      hresult: reason.hresult,
      context: reason.context,
      request: label,
      url: url.href,
      kind: reason.kind,
      cause: reason,
    });
  }
  return Object.assign(new Error('the request was aborted', { cause: reason }), { name: 'AbortError' });
}

/**
 * The `code` of a Node error (`ECONNRESET`, `CERT_HAS_EXPIRED`), if it has one.
 *
 * @example
 * ```ts
 * errorCode(Object.assign(new Error('x'), { code: 'EPIPE' })); // 'EPIPE'
 * ```
 */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Turns an error of a request (socket, DNS, TLS, idle timeout) into a {@link BitsClientError}:
 * transient `BITS_CLIENT_NETWORK`, except certificate failures (fatal `BITS_CLIENT_TLS`). Abort errors
 * pass through unchanged.
 *
 * @example
 * ```ts
 * networkError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'Ping', url).kind; // 'transient'
 * ```
 */
export function networkError(err: unknown, label: string, url: URL): unknown {
  if (err instanceof BitsClientError) return err;
  if ((err as Error | null)?.name === 'AbortError') return err;
  const code = errorCode(err);
  const message = (err as Error | null)?.message ?? String(err);
  if (code !== undefined && TLS_CODES.has(code)) {
    return new BitsClientError('BITS_CLIENT_TLS', `TLS: ${message} (trust the server's CA with --ca, or --insecure)`, {
      request: label,
      url: url.href,
      cause: err,
    });
  }
  const hresult = code !== undefined && CONNECT_CODES.has(code) ? ClientHResult.ConnectFailure : ClientHResult.NetworkDisconnected;
  return new BitsClientError('BITS_CLIENT_NETWORK', `${code ? `${code}: ` : ''}${message}`, {
    request: label,
    url: url.href,
    hresult,
    cause: err,
  });
}

/**
 * HTTP/1.1 for a client job over `node:http`/`node:https` (whose client accepts the `BITS_POST`
 * method): keep-alive agents, Basic authentication and custom headers toward the job's own hosts
 * only (never to a reply URL elsewhere), a custom CA or no certificate check, and an idle timeout per request (never a total
 * one: a large fragment over a slow link may take as long as it needs while bytes move).
 *
 * @example
 * ```ts
 * const t = new Transport({ idleTimeoutMs: 120_000 }, new URL('https://h/up/a.bin'));
 * const ack = await t.sendForAck({ method: 'BITS_POST', url, headers: { 'BITS-Packet-Type': 'Ping', 'Content-Length': '0' }, label: 'Ping' });
 * t.close();
 * ```
 */
export class Transport {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly authorization: string | undefined;
  private readonly ntlm: NtlmCredentials | undefined;
  /** Connections that completed a Negotiate or NTLM handshake. */
  private readonly authenticated = new WeakSet<Socket>();
  /** The connection of the latest request, by origin (one per origin with `auth`). */
  private readonly current = new Map<string, Socket>();
  /** A handshake in flight, by origin: two at once on the one connection would spoil each other. */
  private readonly handshaking = new Map<string, Promise<ClientResponse | undefined>>();
  /** The job's own hosts: the URL's origin and its Host-Id host. Credentials and custom headers go there only. */
  private readonly ownOrigins = new Set<string>();

  constructor(
    private readonly options: TransportOptions,
    origin: URL,
  ) {
    // (a connection-bound scheme needs its requests on the connection it authenticated: one per host)
    const maxSockets = options.auth ? 1 : 4;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.cert !== undefined && options.key !== undefined ? { cert: options.cert, key: options.key } : {}),
      rejectUnauthorized: !options.insecure,
    });
    const pair = userPassword(options.user, origin);
    this.authorization = pair === undefined || options.auth ? undefined : `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
    this.ntlm = options.auth === 'ntlm' && pair !== undefined ? ntlmCredentials(pair) : undefined;
    this.trust(origin);
  }

  /** Lets credentials and custom headers go to `url`'s origin too (a Host-Id host of the same farm). */
  trust(url: URL): void {
    this.ownOrigins.add(url.origin);
  }

  /**
   * Sends a request; resolves once the response head has arrived. The caller must read or discard
   * the body. With a connection-bound scheme (`auth`), a connection not yet authenticated is first
   * authenticated with bodyless requests (a Ping, or a HEAD for a download), and a 401 on a
   * connection that was lost since (a server restart) is answered by a new handshake and a resend.
   */
  async send(o: SendOptions): Promise<ClientResponse> {
    const origin = withoutUserinfo(o.url).origin;
    if (!this.options.auth || !this.ownOrigins.has(origin)) return this.request(o, this.authorization);
    for (let attempt = 1; ; attempt++) {
      if (!this.isAuthenticated(origin)) {
        const refused = await this.authenticateOnce(o, origin);
        if (refused) return refused;
      }
      const res = await this.request(o, undefined, (s) => this.current.set(origin, s));
      if (res.status !== 401 || attempt >= 3) return res;
      // (a 401 here means the connection is not the authenticated one any more: start over)
      await discardBody(res, o.label, o.url, o.onActivity);
      this.current.delete(origin);
    }
  }

  private isAuthenticated(origin: string): boolean {
    const socket = this.current.get(origin);
    return socket !== undefined && !socket.destroyed && this.authenticated.has(socket);
  }

  /** {@link authenticate}, one at a time per origin: a request that finds one in flight waits for it. */
  private async authenticateOnce(o: SendOptions, origin: string): Promise<ClientResponse | undefined> {
    for (;;) {
      const running = this.handshaking.get(origin);
      if (!running) break;
      await running.catch(() => undefined);
      if (this.isAuthenticated(origin)) return undefined;
    }
    const handshake = this.authenticate(o, origin).finally(() => this.handshaking.delete(origin));
    this.handshaking.set(origin, handshake);
    return handshake;
  }

  /**
   * Authenticates the connection to `origin`: resolves with nothing once done, or with the
   * server's refusal (a 401) for the caller to report.
   */
  private async authenticate(o: SendOptions, origin: string): Promise<ClientResponse | undefined> {
    const download = o.method === 'GET' || o.method === 'HEAD';
    const probe: SendOptions = {
      method: download ? 'HEAD' : o.method,
      url: o.url,
      headers: download ? {} : { 'BITS-Packet-Type': 'Ping', 'Content-Length': '0' },
      signal: o.signal,
      label: download ? 'HEAD' : 'Ping',
      onActivity: o.onActivity,
    };
    let last: ClientResponse | undefined;
    const send: HandshakeSend = async (authorization) => {
      let socket: Socket | undefined;
      last = await this.request(probe, authorization, (s) => {
        socket = s;
        this.current.set(origin, s);
      });
      await discardBody(last, probe.label, probe.url, probe.onActivity);
      return { status: last.status, res: last.body, socket };
    };
    for (let attempt = 1; attempt <= 3; attempt++) {
      const result = await handshake(this.options.auth!, this.ntlm, o.url, probe.label, send);
      if (result === 'restart') continue;
      if (result.status === 401) return last;
      const socket = this.current.get(origin);
      if (socket) this.authenticated.add(socket);
      return undefined;
    }
    return last;
  }

  /** One request with the given `Authorization` (none when undefined). */
  private request(o: SendOptions, authorization: string | undefined, onSocket?: (socket: Socket) => void): Promise<ClientResponse> {
    const url = withoutUserinfo(o.url);
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      return Promise.reject(new BitsClientError('BITS_CLIENT_INVALID_RESPONSE', `unsupported URL scheme ${url.protocol}`, { url: url.href, request: o.label }));
    }
    // Custom headers may carry a tenant or an API key: like credentials, they are for the job's own
    // hosts, not for a reply URL the server points elsewhere.
    const own = this.ownOrigins.has(url.origin);
    const headers: OutgoingHttpHeaders = {
      Accept: '*/*',
      'User-Agent': USER_AGENT,
      ...(own ? this.options.headers : {}),
      ...o.headers,
    };
    if (authorization !== undefined && own) headers['Authorization'] = authorization;
    if (o.body !== undefined) headers['Content-Length'] = String(o.body.length);
    const signal = o.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, o.label, url));
    return new Promise<ClientResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        reject(networkError(err, o.label, url));
      };
      let req: http.ClientRequest;
      try {
        req = (secure ? https : http).request(url, { method: o.method, headers, agent: secure ? this.httpsAgent : this.httpAgent });
      } catch (err) {
        fail(err);
        return;
      }
      // The signal cuts the whole exchange: connecting, sending, waiting for the head, and reading the
      // body (node's own `signal` option stops watching once the request is sent).
      let response: IncomingMessage | undefined;
      const onAbort = (): void => {
        const err = abortError(signal!, o.label, url);
        response?.destroy(err);
        req.destroy(err);
      };
      const detach = (): void => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => {
        if (!response) detach();
      });
      req.setTimeout(this.options.idleTimeoutMs, () => {
        req.destroy(
          new BitsClientError('BITS_CLIENT_NETWORK', `no progress for ${this.options.idleTimeoutMs / 1000} s (request idle timeout)`, {
            request: o.label,
            url: url.href,
          }),
        );
      });
      req.on('error', fail);
      if (onSocket) req.on('socket', onSocket);
      req.on('response', (res) => {
        response = res;
        res.on('close', detach);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        }
        // A response that arrives before the request body is fully sent leaves the connection in an
        // unknown state: do not reuse it.
        res.on('end', () => {
          if (!req.writableFinished) req.destroy();
        });
        res.on('error', () => undefined);
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        o.onActivity?.();
        resolve({ status: res.statusCode ?? 0, headers: out, body: res });
      });
      if (o.body === undefined) req.end();
      else streamBody(req, o.body, o.onActivity);
    });
  }

  /** Sends a request whose answer has no body that matters (an Ack); reads and drops the body. */
  async sendForAck(o: SendOptions): Promise<{ status: number; headers: Record<string, string> }> {
    const res = await this.send(o);
    await discardBody(res, o.label, o.url, o.onActivity);
    return { status: res.status, headers: res.headers };
  }

  /** Closes idle connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/**
 * Resolves once the socket has taken `piece` (true), or once the request is gone without taking it
 * (false: destroyed by an early answer, an abort, an error), whichever comes first.
 */
function written(req: http.ClientRequest, piece: Buffer): Promise<boolean> {
  if (req.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const gone = (): void => resolve(false);
    req.once('close', gone);
    req.write(piece, (err?: Error | null) => {
      req.off('close', gone);
      resolve(!err);
    });
  });
}

/**
 * Writes a {@link BodySource} piece by piece and ends the request: the next piece is produced while
 * the socket takes this one, and no piece is asked for before the one two back was taken (the
 * source may reuse its buffers). Each piece the socket takes is reported to `onActivity`: a large
 * fragment over a slow link may take longer than the job's no-progress limit while it keeps moving,
 * and must not be cut for it (DESIGN principle 6). Stops when the request is gone (an early answer,
 * an abort); an error of the source destroys the request with it. The first piece goes out with the
 * request head in one write.
 */
function streamBody(req: http.ClientRequest, body: BodySource, onActivity: (() => void) | undefined): void {
  const pieces = body.pieces();
  const pump = async (): Promise<void> => {
    let next = pieces.next();
    for (;;) {
      const piece = await next;
      if (piece.done) break;
      const taken = written(req, piece.value);
      next = pieces.next();
      if (!(await taken)) {
        // The piece being produced is not wanted any more, nor its error.
        await next.catch(() => undefined);
        await pieces.return?.();
        return;
      }
      onActivity?.();
    }
    req.end();
  };
  pump().catch((err: unknown) => req.destroy(err as Error));
}

/**
 * Reads and drops a response body (at most 64 KiB; a longer one is dropped with its connection).
 * Every piece read is reported to `onActivity`.
 *
 * @example
 * ```ts
 * await discardBody(await transport.send(o), 'Ping', url);
 * ```
 */
export async function discardBody(res: ClientResponse, label: string, url: URL, onActivity?: () => void): Promise<void> {
  let seen = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      onActivity?.();
      seen += chunk.length;
      if (seen > MAX_ACK_BODY) {
        res.body.destroy();
        return;
      }
    }
  } catch (err) {
    throw networkError(err, label, url);
  }
}
