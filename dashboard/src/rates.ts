// Transfer rates seen from successive polls: bytes gained over the last seconds.

/** How far back a rate looks. */
const WINDOW_MS = 10_000;

interface Sample {
  readonly at: number;
  readonly value: number;
}

/**
 * Rates of growing counters (a session's received bytes, a vdir's total) by key, from the values
 * of successive polls over a sliding window. Keys not seen in a poll are forgotten.
 */
export class RateTracker {
  private samples = new Map<string, Sample[]>();

  /** Records this poll's values (taken at `at`, ms) and forgets the keys it does not have. */
  update(values: ReadonlyMap<string, number>, at: number): void {
    const next = new Map<string, Sample[]>();
    for (const [key, value] of values) {
      const kept = (this.samples.get(key) ?? []).filter((s) => at - s.at <= WINDOW_MS && s.value <= value);
      kept.push({ at, value });
      next.set(key, kept);
    }
    this.samples = next;
  }

  /** Bytes per second of `key` over the window; undefined until two polls have seen it. */
  rate(key: string): number | undefined {
    const list = this.samples.get(key);
    if (!list || list.length < 2) return undefined;
    const first = list[0]!;
    const last = list[list.length - 1]!;
    return ((last.value - first.value) * 1000) / (last.at - first.at);
  }
}
