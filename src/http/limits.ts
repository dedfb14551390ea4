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
  headerTimeout: number;
  /** Longest wait for the next body byte while the handler is reading. */
  bodyIdleTimeout: number;
  /** Longest idle time between requests on a keep-alive connection. */
  keepAliveTimeout: number;
  /** Longest time a response write may make no progress. */
  writeIdleTimeout: number;
}

/** The defaults of the issue and spec: 8 KiB line, 4 KiB value, 100 headers, 64 KiB head. */
export const DEFAULT_LIMITS: Readonly<HttpLimits> = {
  maxRequestLine: 8 * 1024,
  maxHeaderValue: 4 * 1024,
  maxHeaders: 100,
  maxHead: 64 * 1024,
  maxDrain: 64 * 1024 * 1024,
  headerTimeout: 30_000,
  bodyIdleTimeout: 120_000,
  keepAliveTimeout: 60_000,
  writeIdleTimeout: 120_000,
};
