import { formatHresult, hresultName, parseHresult } from '../../protocol/hresult.js';
import type { RequestLogFields } from '../request-log.js';

/** Width of one throughput bucket. */
export const BUCKET_MS = 10_000;
/** How far back the throughput goes: 15 minutes of buckets. */
export const BUCKETS = 90;
/** How many recent errors are kept. */
export const ERROR_RING = 200;
/**
 * The reason of the 401 that asks an anonymous first try for credentials: a step of every
 * authenticated upload, not an error (bad credentials are).
 */
const CREDENTIALS_REQUIRED = 'credentials required';

/** One refused or failed request, as the admin API lists it. */
export interface ActivityError {
  /** When it was answered (ISO 8601). */
  readonly time: string;
  readonly vdir: string | null;
  /** The packet type, when the request got as far as naming one. */
  readonly packet: string | null;
  readonly status: number;
  /** The `BITS-Error-Code` sent (`0x8020001F`), if any. */
  readonly hresult: string | null;
  /** The HRESULT's name where it is known (`BG_E_SESSION_NOT_FOUND`). */
  readonly name: string | null;
  readonly reason: string;
  /** The session id as logged (shortened where it is a credential). */
  readonly session: string | null;
}

/** What one vdir served since the server started (on this node). */
export interface VdirTotals {
  /** Upload bytes written and acknowledged. */
  bytesReceived: number;
  uploadsCommitted: number;
  /** BITS packets answered. */
  packets: number;
  /** Requests listed as errors (see {@link Activity.request}). */
  errors: number;
}

/** One throughput bucket: the bytes received in the {@link BUCKET_MS} from `t`. */
export interface ThroughputBucket {
  /** The bucket's start (ISO 8601). */
  readonly t: string;
  readonly bytes: number;
}

/**
 * What this node served recently, for the admin API and its dashboard: per-vdir totals, upload
 * throughput in 10-second buckets over the last 15 minutes, and a ring of the last 200 errors. Fed
 * from each request's log fields, like the metrics; memory stays bounded whatever the traffic.
 *
 * @example
 * ```ts
 * const activity = new Activity();
 * log.finish(logger, (fields) => activity.request(fields));
 * activity.throughput(); // 90 buckets, oldest first
 * ```
 */
export class Activity {
  /** When this node started counting. */
  readonly startedAt: Date;
  private readonly now: () => number;
  private readonly recent: ActivityError[] = [];
  private readonly vdirs = new Map<string, VdirTotals>();
  /** Bucket start times and bytes, by bucket number modulo {@link BUCKETS}. */
  private readonly starts = new Array<number>(BUCKETS).fill(-1);
  private readonly bytes = new Array<number>(BUCKETS).fill(0);

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
    this.startedAt = new Date(this.now());
  }

  /**
   * Counts one request from the fields of its log line. An answer of 400 or more is an error,
   * but for the 401 that asks an anonymous first try for credentials.
   */
  request(fields: Readonly<RequestLogFields>): void {
    const now = this.now();
    const totals = fields.vdir === undefined ? undefined : this.totalsOf(fields.vdir);
    if (fields.bytes) {
      this.addBytes(now, fields.bytes);
      if (totals) totals.bytesReceived += fields.bytes;
    }
    if (totals && fields.packet !== undefined) totals.packets++;
    if (totals && fields.committed) totals.uploadsCommitted++;
    if (!isError(fields)) return;
    if (totals) totals.errors++;
    this.recent.push(errorOf(fields, now));
    if (this.recent.length > ERROR_RING) this.recent.shift();
  }

  /** Up to `limit` recent errors, the most recent first. */
  errors(limit = ERROR_RING): ActivityError[] {
    return this.recent.slice(Math.max(0, this.recent.length - Math.max(0, limit))).reverse();
  }

  /** The totals of a vdir (zeros when it served nothing yet). */
  totals(vdir: string): Readonly<VdirTotals> {
    return { ...(this.vdirs.get(vdir) ?? { bytesReceived: 0, uploadsCommitted: 0, packets: 0, errors: 0 }) };
  }

  /** The last 15 minutes of received bytes, {@link BUCKETS} buckets, oldest first (the current one last). */
  throughput(): ThroughputBucket[] {
    const current = bucketStart(this.now());
    const out: ThroughputBucket[] = [];
    for (let k = BUCKETS - 1; k >= 0; k--) {
      const start = current - k * BUCKET_MS;
      const i = slot(start);
      out.push({ t: new Date(start).toISOString(), bytes: this.starts[i] === start ? this.bytes[i]! : 0 });
    }
    return out;
  }

  private totalsOf(vdir: string): VdirTotals {
    let totals = this.vdirs.get(vdir);
    if (!totals) {
      totals = { bytesReceived: 0, uploadsCommitted: 0, packets: 0, errors: 0 };
      this.vdirs.set(vdir, totals);
    }
    return totals;
  }

  private addBytes(now: number, n: number): void {
    const start = bucketStart(now);
    const i = slot(start);
    if (this.starts[i] !== start) {
      this.starts[i] = start;
      this.bytes[i] = 0;
    }
    this.bytes[i]! += n;
  }
}

const bucketStart = (ms: number): number => ms - (ms % BUCKET_MS);
const slot = (start: number): number => (start / BUCKET_MS) % BUCKETS;

/** Whether a request's answer counts as an error (see {@link Activity.request}). */
function isError(fields: Readonly<RequestLogFields>): boolean {
  const { status } = fields;
  if (typeof status !== 'number' || status < 400) return false;
  return !(status === 401 && fields.auth === CREDENTIALS_REQUIRED);
}

/** The error entry of a request's log fields. */
function errorOf(fields: Readonly<RequestLogFields>, now: number): ActivityError {
  const code = parseHresult(fields.error);
  const name = code === undefined ? null : hresultName(code);
  return {
    time: new Date(now).toISOString(),
    vdir: fields.vdir ?? null,
    packet: fields.packet ?? null,
    status: fields.status as number,
    hresult: fields.error ?? null,
    name: name === null || name === formatHresult(code!) ? null : name,
    reason: fields.reason ?? fields.auth ?? `HTTP ${String(fields.status)}`,
    session: fields.session ?? null,
  };
}
