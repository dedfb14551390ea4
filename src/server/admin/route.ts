import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import type { Sessions } from '../sessions.js';
import type { Activity } from './activity.js';
import type { Metrics } from './metrics.js';

/** What the admin endpoints read and act on. */
export interface AdminDeps {
  readonly config: ServerConfig;
  readonly sessions: Sessions;
  readonly metrics: Metrics;
  /** What this node served recently (totals, throughput, errors). */
  readonly activity: Activity;
  /** This node's id (`hostname:pid`, or the configured farm node name). */
  readonly node: string;
  readonly logger: Logger;
  /** Why the server cannot serve now (a store unusable, shutting down); undefined when it can. */
  readiness(): Promise<string | undefined>;
}

/** One endpoint of the admin listener. */
export interface AdminRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Matched against the whole path; its groups are handed to `handle`. */
  readonly path: RegExp;
  /** Served without the token (the health endpoints). */
  readonly open?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray): void | Promise<void>;
}

/**
 * Answers with a JSON body.
 *
 * @example
 * ```ts
 * sendJson(res, 404, { error: 'no such session' });
 * ```
 */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}
