import bytes from 'bytes';
import ms from 'ms';

/** What a duration may be written as, for error messages and help. */
export const DURATION_FORMS = 'seconds (a number) or a duration with a unit such as "30s", "2h", "14d"';

/**
 * What a size may be written as. K, M, G, T and P are powers of 1024 with or without "i" (the
 * `bytes` package reads "KB" as 1024): "512KiB" and "512KB" are both 524288 bytes.
 */
export const SIZE_FORMS = 'bytes (a whole number) or a size with a unit such as "512KiB", "32MB", "1G" (K, M, G, T, P are powers of 1024)';

/** A plain number written as a string: it keeps the unit a plain number has (seconds, bytes). */
const PLAIN_NUMBER = /^\d+(?:\.\d+)?$/;

/**
 * A size with an optional unit. Checked here first because `bytes.parse` alone is lenient in the
 * wrong way: it reads "1G" as 1 and "512KiB" as 512 (it falls back to parseInt).
 */
const SIZE = /^(\d+(?:\.\d+)?) ?(?:([kmgtp])(?:i?b)?|b)?$/i;

/**
 * A duration in milliseconds: a number is seconds (so is a string of digits), a string with a unit
 * is read by `ms` ("30s", "2h", "14d", "1.5 hours"). Undefined for anything else, negative included.
 *
 * @example
 * ```ts
 * durationMs(300);   // 300_000
 * durationMs('14d'); // 1_209_600_000
 * durationMs('soon'); // undefined
 * ```
 */
export function durationMs(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (PLAIN_NUMBER.test(value)) return Number(value) * 1000;
  // (ms throws on an empty string; it answers undefined for what it cannot read)
  const parsed = value === '' ? undefined : (ms(value as ms.StringValue) as number | undefined);
  return parsed !== undefined && Number.isFinite(parsed) && parsed >= 0 ? parsed : undefined;
}

/**
 * A size in bytes: a number is bytes, a string may carry a binary unit ("512KiB", "32MB", "1G").
 * Undefined for anything else, and for sizes beyond `Number.MAX_SAFE_INTEGER`.
 *
 * @example
 * ```ts
 * sizeBytes('32MB');   // 33_554_432
 * sizeBytes('512KiB'); // 524_288
 * sizeBytes(1.5);      // undefined (not a whole number of bytes)
 * ```
 */
export function sizeBytes(value: number | string): number | undefined {
  let size: number | null;
  if (typeof value === 'number') size = value;
  else {
    const m = SIZE.exec(value);
    if (!m) return undefined;
    size = m[2] === undefined ? Number(m[1]) : bytes.parse(`${m[1]}${m[2]}B`);
  }
  return size !== null && Number.isSafeInteger(size) && size >= 0 ? size : undefined;
}

/**
 * A duration in milliseconds written as `ms` would, for help texts: `formatDuration(1_209_600_000)` is "14d".
 *
 * @example
 * ```ts
 * `idle session lifetime (default ${formatDuration(VDIR_DEFAULTS.sessionTimeout * 1000)})`
 * ```
 */
export function formatDuration(milliseconds: number): string {
  return milliseconds === 0 ? '0' : ms(milliseconds);
}

/**
 * A size in bytes with a binary unit, for help texts: `formatSize(33_554_432)` is "32MiB".
 *
 * @example
 * ```ts
 * `largest fragment body (default ${formatSize(VDIR_DEFAULTS.maxFragmentSize)})`
 * ```
 */
export function formatSize(size: number): string {
  if (size === 0) return '0';
  return (bytes.format(size, { unitSeparator: '' }) ?? String(size)).replace(/([KMGTP])B$/, '$1iB');
}
