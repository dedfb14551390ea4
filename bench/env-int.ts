/**
 * An integer setting of a benchmark from the environment: `fallback` when unset or empty; anything
 * else that is not an integer >= `min` stops the benchmark (exit 2) with a line naming the variable.
 *
 * @example
 * ```ts
 * const SIZE = envInt('BENCH_SIZE_MB', 1024) * MiB;
 * ```
 */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`bench: ${name} must be an integer >= ${min}\n`);
    process.exit(2);
  }
  return n;
}
