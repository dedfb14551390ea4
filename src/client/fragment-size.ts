import { MIN_FRAGMENT_SIZE } from './options.js';

/**
 * An Ack that comes back within this long after its Fragment was sent is fast: the fixed cost of a
 * round trip (the server's sync, the Ack, the next request) is then a large share of the fragment's
 * time, and a fragment twice as long pays it half as often. Past a second it is a small share.
 */
export const FAST_ACK_MS = 1000;

/** How an upload sizes its fragments (journaled, so a resumed job goes on where it was). */
export interface FragmentSizing {
  /** Bytes of the next Fragment. */
  fragmentSize: number;
  /** Fragments grow up to this while Acks are fast; absent: they keep their size (shrunk on 413 only). */
  maxFragmentSize?: number | undefined;
}

/**
 * After the Ack of a whole fragment of `length` bytes that took `ms`: a fast Ack doubles the size, up
 * to the maximum, as Windows grows its fragments while they go through quickly. Returns whether the
 * size changed.
 *
 * @example
 * ```ts
 * const s = { fragmentSize: 8 << 20, maxFragmentSize: 28 << 20 };
 * grow(s, 8 << 20, 40); // true: s.fragmentSize is 16 MiB
 * ```
 */
export function grow(s: FragmentSizing, length: number, ms: number): boolean {
  const max = s.maxFragmentSize;
  if (max === undefined || length < s.fragmentSize || ms >= FAST_ACK_MS || s.fragmentSize >= max) return false;
  s.fragmentSize = Math.min(max, s.fragmentSize * 2);
  return true;
}

/**
 * After a 413 for a fragment of `length` bytes: half that (never below {@link MIN_FRAGMENT_SIZE}),
 * which is then also the most fragments grow to. Returns the new size, or `undefined` when `length`
 * was the smallest already (the server takes no fragment this client sends).
 *
 * @example
 * ```ts
 * const s = { fragmentSize: 100_000 };
 * shrink(s, 100_000); // 50000
 * ```
 */
export function shrink(s: FragmentSizing, length: number): number | undefined {
  if (length <= MIN_FRAGMENT_SIZE) return undefined;
  s.fragmentSize = Math.max(MIN_FRAGMENT_SIZE, Math.floor(length / 2));
  if (s.maxFragmentSize !== undefined) s.maxFragmentSize = Math.min(s.maxFragmentSize, s.fragmentSize);
  return s.fragmentSize;
}
