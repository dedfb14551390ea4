/** RFC 9110 §5.6.2 `token`: method names and header field names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5 field value: visible ASCII, space, tab and obs-text; never CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Whether `s` is an HTTP token (a method or a header field name): one or more tchars.
 *
 * @example
 * ```ts
 * isToken('BITS_POST');  // true
 * isToken('Content Id'); // false (a space)
 * ```
 */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

/**
 * Whether `s` may be a header field value as the engine accepts it (without the SP/HTAB around it):
 * no CR, LF, NUL or other control but tab. Strings decoded as latin1 map obs-text to U+0080–U+00FF.
 *
 * @example
 * ```ts
 * isFieldValue('bytes 0-99/300'); // true
 * isFieldValue('a\r\nX-Evil: 1'); // false
 * ```
 */
export function isFieldValue(s: string): boolean {
  return FIELD_VALUE.test(s);
}
