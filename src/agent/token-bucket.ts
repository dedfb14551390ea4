import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A token bucket: `rate` bytes per second with a burst of `burst` bytes. `take(n)` spends `n` at
 * once and, when that leaves the bucket in debt, waits until the debt is paid off: takers are
 * served in the order they come, and a piece larger than the burst still passes (after its time).
 * A rate of `undefined` is unlimited. The rate can change while takers wait (a schedule).
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket(1024 * 1024); // 1 MiB/s
 * await bucket.take(65536, signal);
 * ```
 */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private rateBps: number | undefined,
    private readonly burstSeconds = 0.25,
  ) {
    this.tokens = this.burst();
  }

  /** The current rate (bytes per second), `undefined` when unlimited. */
  get rate(): number | undefined {
    return this.rateBps;
  }

  /** Changes the rate; what was saved up is kept up to the new burst. */
  setRate(rateBps: number | undefined): void {
    this.refill();
    this.rateBps = rateBps;
    this.tokens = Math.min(this.tokens, this.burst());
  }

  private burst(): number {
    return this.rateBps === undefined ? 0 : Math.max(16 * 1024, this.rateBps * this.burstSeconds);
  }

  private refill(): void {
    const now = performance.now();
    if (this.rateBps !== undefined) this.tokens = Math.min(this.burst(), this.tokens + ((now - this.last) / 1000) * this.rateBps);
    this.last = now;
  }

  /** Spends `bytes`; resolves when the bucket is out of debt again. Rejects when `signal` aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.rateBps === undefined) return;
    this.refill();
    this.tokens -= bytes;
    // Waits in steps of at most a second, so that a rate changed meanwhile (a schedule) applies.
    while (this.tokens < 0 && this.rateBps !== undefined) {
      const ms = Math.min(1000, Math.ceil((-this.tokens / this.rateBps) * 1000));
      await sleep(Math.max(1, ms), undefined, signal ? { signal } : undefined);
      this.refill();
    }
  }
}
