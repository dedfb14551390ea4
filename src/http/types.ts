import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';

/** A parsed HTTP request as the engine (or the node:http adapter) hands it to a handler. */
export interface HttpRequest {
  /** Method token as sent (any token: `BITS_POST`, `GET`, …). */
  readonly method: string;
  /** The request target as sent (`/up/a.bin?x=1`). */
  readonly target: string;
  /** The path part of the target, still percent-encoded. */
  readonly path: string;
  /** The query string including its `?`, or `''`. */
  readonly query: string;
  readonly httpVersion: '1.0' | '1.1';
  /** Headers keyed by lowercase name; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** The Content-Length, or `undefined` when the request had none (no body, or a chunked one). */
  readonly contentLength: number | undefined;
  /**
   * Whether the body came with `Transfer-Encoding: chunked` (`contentLength` is then `undefined`):
   * `body` yields the decoded bytes, and fails if the framing is malformed.
   */
  readonly chunked: boolean;
  /**
   * The body, streamed with backpressure. Empty when there is none. When the engine gives up on it
   * the stream fails with an `HttpError` whose code says why (`HTTP_BODY_IDLE_TIMEOUT`,
   * `HTTP_BODY_INCOMPLETE`, `HTTP_BAD_CHUNKED_BODY`, …).
   */
  readonly body: Readable;
  readonly remoteAddress: string;
  /** Whether the connection is TLS. */
  readonly encrypted: boolean;
  /** The underlying socket (a `TLSSocket` when `encrypted`), for peer certificates. */
  readonly socket: Socket | undefined;
  /**
   * Aborted when the connection closes before the response is complete, or an idle timeout drops
   * it; under the engine its reason is an `HttpError` (`HTTP_PEER_CLOSED`, `HTTP_CONNECTION_CLOSED`,
   * or the timeout's code).
   */
  readonly signal: AbortSignal;
}

/**
 * Response headers: name → value. Names are written as given; a list is written as one header line
 * per value (several `WWW-Authenticate` challenges, say).
 */
export type ResponseHeaders = Readonly<Record<string, string | readonly string[]>>;

/** The response side of one request. Exactly one of `send`/`stream` is called once. */
export interface HttpResponse {
  /** Whether the status line has been written. */
  readonly headersSent: boolean;
  /** Writes a complete response with an in-memory body (or none). */
  send(status: number, headers: ResponseHeaders, body?: Buffer | string): void;
  /**
   * Writes the head, then pipes `body` with backpressure. `headers` must carry `Content-Length`.
   * Resolves when the body is written, rejects if the connection fails.
   */
  stream(status: number, headers: ResponseHeaders, body: Readable): Promise<void>;
  /** Drops the connection without (further) response. */
  destroy(): void;
}

/**
 * A request handler. Errors it throws become a bare 500 (400 when the request's chunked framing was
 * malformed) and close the connection.
 */
export type HttpHandler = (req: HttpRequest, res: HttpResponse) => void | Promise<void>;
