import { STATUS_CODES } from 'node:http';

/**
 * The reason phrase for a status code (`416` → `Range Not Satisfiable`).
 *
 * @example
 * ```ts
 * statusText(200); // 'OK'
 * ```
 */
export function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}
