import type { Logger } from 'pino';
import { TokenBucket } from './token-bucket.js';

/** The queueing delay the controller lets its own traffic add (LEDBAT's TARGET, RFC 6817 §2.4.2, at most 100 ms). */
export const YIELD_TARGET_MS = 25;
/** The rate never drops below this: a trickle that keeps the job alive and sampling. */
export const YIELD_MIN_RATE = 8 * 1024;
/** The rate a job starts at, before the first sample. */
const START_RATE = 1024 * 1024;
/** Base delay history: one minimum per minute, the last ten kept (RFC 6817 §3.4.2's BASE_HISTORY). */
const BASE_BUCKET_MS = 60_000;
const BASE_HISTORY = 10;

/**
 * Yields to other traffic, in the spirit of LEDBAT (RFC 6817): each acknowledged fragment is a delay
 * sample, the time its Ack took beyond what its bytes needed at the rate allowed. The smallest such
 * excess over the last minutes is the base delay (the path's own latency and the server's sync);
 * what a sample has above the base is queueing delay, built up at the bottleneck by this job and by
 * anyone else. Below {@link YIELD_TARGET_MS} the rate grows in proportion to the room left
 * (doubling per sample until the first queueing is seen, as a slow start, then 5 % per sample, and
 * slow start again after three samples in a row with hardly any queueing: the link is free);
 * above it the rate falls in proportion to the excess (at most halved per sample), so a competing flow
 * that fills the queue pushes this job down to {@link YIELD_MIN_RATE} while the link is busy, and the
 * job takes the link back once it is quiet.
 *
 * @example
 * ```ts
 * const y = new YieldController(logger);
 * job.on('fragment', (f) => y.sample(f.bytes, f.ms));
 * await y.take(65536, signal); // before each piece
 * ```
 */
export class YieldController {
  private rateBps = START_RATE;
  /** Doubling per sample until the first sign of queueing (as TCP's slow start), then additive. */
  private slowStart = true;
  /** Samples in a row with hardly any queueing: after a few, slow start again (the link is free). */
  private quiet = 0;
  /** What the bytes let through since the last sample needed at the rates they were let through at. */
  private pacedMs = 0;
  private readonly bucket = new TokenBucket(START_RATE, 0.05);
  private readonly base: { start: number; min: number }[] = [];

  constructor(private readonly logger: Logger) {}

  /** The rate allowed now (bytes per second). */
  get rate(): number {
    return this.rateBps;
  }

  /** Waits until `bytes` more may go at the rate allowed. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    this.pacedMs += (bytes / this.rateBps) * 1000;
    return this.bucket.take(bytes, signal);
  }

  private baseDelay(excess: number, now: number): number {
    const last = this.base.at(-1);
    if (!last || now - last.start >= BASE_BUCKET_MS) {
      this.base.push({ start: now, min: excess });
      if (this.base.length > BASE_HISTORY) this.base.shift();
    } else {
      last.min = Math.min(last.min, excess);
    }
    return Math.min(...this.base.map((b) => b.min));
  }

  /** One acknowledged fragment: `bytes` sent, its Ack `ms` after it started. */
  sample(bytes: number, ms: number, now = Date.now()): void {
    // (the fragment's pieces were let through at the rates of their time, not at today's)
    const needed = this.pacedMs > 0 ? this.pacedMs : (bytes / this.rateBps) * 1000;
    this.pacedMs = 0;
    const excess = Math.max(0, ms - needed);
    const queueing = excess - this.baseDelay(excess, now);
    const offTarget = (YIELD_TARGET_MS - queueing) / YIELD_TARGET_MS;
    const achieved = ms > 0 ? (bytes / ms) * 1000 : this.rateBps;
    let next: number;
    this.quiet = offTarget > 0.8 ? this.quiet + 1 : 0;
    if (this.quiet >= 3) this.slowStart = true;
    if (offTarget >= 0) {
      // Room left: grow in proportion to it (doubling per sample in slow start, 5 % per sample
      // after), but never far above what the path carried, so that a cut bites at once.
      const step = this.slowStart ? this.rateBps : Math.max(this.rateBps * 0.05, 16 * 1024);
      next = Math.min(this.rateBps + offTarget * step, Math.max(2 * achieved, START_RATE));
    } else {
      this.slowStart = false;
      next = this.rateBps * Math.max(0.5, 1 + offTarget / 2);
    }
    next = Math.max(YIELD_MIN_RATE, Math.round(next));
    if (next !== this.rateBps) this.logger.debug({ queueingMs: Math.round(queueing), rateBps: next }, 'yield: rate');
    this.rateBps = next;
    this.bucket.setRate(next);
  }
}
