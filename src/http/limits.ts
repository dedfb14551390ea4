/** Limits and idle timeouts of the HTTP engine. All sizes in bytes, all times in milliseconds. */
export interface HttpLimits {
  /** Longest request line (414 beyond). */
  maxRequestLine: number;
  /** Longest single header value (400 beyond; spec §2's 4 KiB). */
  maxHeaderValue: number;
  /** Most header fields in one request (431 beyond). */
  maxHeaders: number;
  /** Largest whole request head (431 beyond). */
  maxHead: number;
  /** Most unread body bytes drained to keep a connection alive after an early response. */
  maxDrain: number;
  /** Time allowed for a request head, from its first byte (and for the first request of a connection). */
  headerTimeoutMs: number;
  /**
   * Longest wait for the next body byte while the handler is reading; also bounds the drain of an
   * unread body and the wait for the answer to a malformed one.
   */
  bodyIdleTimeoutMs: number;
  /** Longest idle time between requests on a keep-alive connection. */
  keepAliveTimeoutMs: number;
  /** Longest time a response write may make no progress. */
  writeIdleTimeoutMs: number;
}

/** The engine's defaults: 8 KiB request line, 4 KiB header value (spec §2), 100 headers, 64 KiB head. */
export const DEFAULT_LIMITS: Readonly<HttpLimits> = {
  maxRequestLine: 8 * 1024,
  maxHeaderValue: 4 * 1024,
  maxHeaders: 100,
  maxHead: 64 * 1024,
  maxDrain: 64 * 1024 * 1024,
  headerTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 120_000,
  keepAliveTimeoutMs: 60_000,
  writeIdleTimeoutMs: 120_000,
};
