/** At most 16 digits: every such number below 2^53 is exact, and longer input is refused unread. */
const DECIMAL = /^\d{1,16}$/;

/**
 * Parses a non-negative decimal integer as headers carry it (`BITS-Received-Content-Range`,
 * `Content-Range` and `Content-Length` numbers): digits only, at most 16 of them, a safe integer.
 * Surrounding whitespace is the caller's business. Returns `undefined` for anything else, so that a
 * sign, a fraction, an exponent or a 20-digit length never becomes a number.
 *
 * @example
 * ```ts
 * parseDecimal('4892');  // 4892
 * parseDecimal('+1');    // undefined
 * parseDecimal('1e3');   // undefined
 * parseDecimal('99999999999999999'); // undefined (17 digits)
 * ```
 */
export function parseDecimal(text: string | undefined): number | undefined {
  if (text === undefined || !DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
