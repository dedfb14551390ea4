/** At most 16 digits: every safe integer fits, and no value is long enough to cost anything to read. */
const DECIMAL = /^\d{1,16}$/;

/**
 * Parses a `Content-Length` value (RFC 9110 §8.6: `1*DIGIT`) with bounds: 1 to 16 decimal digits
 * and a safe integer. Signs, spaces, lists (`3, 3`), hexadecimal and longer digit strings are
 * refused. The one parser of the engine, the `node:http` adapter and response bodies, so that both
 * transports accept exactly the same requests.
 *
 * @returns the length, or `undefined` when the value is not an acceptable Content-Length
 * @example
 * ```ts
 * parseContentLength('4892');                  // 4892
 * parseContentLength('+5');                    // undefined
 * parseContentLength('00000000000000000000');  // undefined (20 digits)
 * ```
 */
export function parseContentLength(value: string): number | undefined {
  if (!DECIMAL.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}
