/**
 * A/B alternation for benchmarks on noisy machines: the variants of one comparison run in turn,
 * round after round (A B A B …, the order flipped every other round so neither always runs first),
 * and what is reported is medians and paired ratios, never one absolute time.
 *
 * @example
 * ```ts
 * const r = await alternate('64 KiB fragments', 5, [
 *   { name: 'sink', run: () => sinkUpload() },
 *   { name: 'server', run: () => serverUpload() },
 * ]);
 * printComparison(r, { unit: 'MiB/s', target: { ratio: 0.9 } });
 * ```
 */

/** One measurement of one variant. `value` is the figure compared (higher is better: MiB/s, uploads/s). */
export interface Sample {
  readonly value: number;
  /** CPU seconds the measured process spent, when known (for CPU per unit of work). */
  readonly cpu?: number | undefined;
  /** Any other figures to report as medians (peak RSS in MiB, p99 latency in ms, …). */
  readonly extra?: Readonly<Record<string, number>> | undefined;
}

/** A variant of a comparison: a name and one run of it. */
export interface Variant {
  readonly name: string;
  run(): Promise<Sample>;
}

/** What {@link alternate} measured: every sample of every variant, by round. */
export interface Comparison {
  readonly label: string;
  readonly names: readonly string[];
  /** `samples[v][r]`: variant `v`, round `r`. */
  readonly samples: readonly (readonly Sample[])[];
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** The `q` quantile of `xs` (nearest rank); NaN for none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/**
 * Runs `variants` in turn for `rounds` rounds (at least 3), flipping the order every other round.
 * A failing run stops the comparison with its error.
 */
export async function alternate(label: string, rounds: number, variants: readonly Variant[]): Promise<Comparison> {
  const n = Math.max(3, rounds);
  const samples: Sample[][] = variants.map(() => []);
  for (let r = 0; r < n; r++) {
    const order = variants.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) samples[i]!.push(await variants[i]!.run());
  }
  return { label, names: variants.map((v) => v.name), samples };
}

/** Median of the paired per-round ratios `variant / base` (round r of one against round r of the other). */
export function pairedRatio(c: Comparison, variant: number, base = 0, pick: (s: Sample) => number = (s) => s.value): number {
  const a = c.samples[variant]!;
  const b = c.samples[base]!;
  return median(a.map((s, r) => pick(s) / pick(b[r]!)));
}

/** Median of one figure of one variant. */
export function medianOf(c: Comparison, variant: number, pick: (s: Sample) => number | undefined): number {
  return median(c.samples[variant]!.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x)));
}

/** A target on the ratio of the last variant to the first: met when at least (or at most) `ratio`. */
export interface Target {
  readonly ratio: number;
  readonly atMost?: boolean | undefined;
}

/** One line of the final summary of a benchmark run. */
export interface Verdict {
  readonly label: string;
  readonly ratio: number;
  readonly target: Target | undefined;
  readonly met: boolean | undefined;
}

const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/**
 * Prints a comparison: per variant the median value (and CPU and extras when measured), then the
 * paired ratio of each variant to the first, with the target of the last one. Returns the verdict
 * of the last variant against the first.
 */
export function printComparison(
  c: Comparison,
  options: { unit: string; target?: Target | undefined; log?: (line: string) => void } = { unit: '' },
): Verdict {
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  log(`${c.label} (${c.samples[0]!.length} rounds, alternating)`);
  c.names.forEach((name, v) => {
    const values = c.samples[v]!.map((s) => s.value);
    const parts = [`median ${fmt(median(values))} ${options.unit}`, `range ${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`];
    const cpu = medianOf(c, v, (s) => s.cpu);
    if (Number.isFinite(cpu)) parts.push(`CPU ${fmt(cpu, 2)} s`);
    const keys = new Set(c.samples[v]!.flatMap((s) => Object.keys(s.extra ?? {})));
    for (const k of keys) parts.push(`${k} ${fmt(medianOf(c, v, (s) => s.extra?.[k]))}`);
    log(`  ${name.padEnd(24)} ${parts.join(', ')}`);
  });
  let verdict: Verdict = { label: c.label, ratio: Number.NaN, target: options.target, met: undefined };
  for (let v = 1; v < c.names.length; v++) {
    const ratio = pairedRatio(c, v);
    const last = v === c.names.length - 1;
    const target = last ? options.target : undefined;
    const met = target === undefined ? undefined : target.atMost ? ratio <= target.ratio : ratio >= target.ratio;
    const goal = target === undefined ? '' : ` (target ${target.atMost ? '≤' : '≥'} ${target.ratio}: ${met ? 'met' : 'MISSED'})`;
    log(`  ${c.names[v]} / ${c.names[0]}: ${fmt(ratio, 2)}${goal}`);
    if (last) verdict = { label: c.label, ratio, target, met };
  }
  return verdict;
}

/** Prints the verdicts of a whole run, one line each. */
export function printVerdicts(verdicts: readonly Verdict[], log: (line: string) => void = (l) => void process.stdout.write(`${l}\n`)): void {
  log('summary');
  for (const v of verdicts) {
    const goal = v.target === undefined ? '' : ` target ${v.target.atMost ? '≤' : '≥'} ${v.target.ratio} ${v.met ? 'met' : 'MISSED'}`;
    log(`  ${v.label.padEnd(48)} ${fmt(v.ratio, 2)}${goal}`);
  }
}
