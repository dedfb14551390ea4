import type { HttpRequest } from '../../http/types.js';
import type { SessionRecord } from '../../store/types.js';

/**
 * The client of a request as a session's record keeps it ({@link SessionRecord.client}): its
 * address and `User-Agent` (the Windows BITS version, for one), for the admin API and dashboard.
 *
 * @example
 * ```ts
 * record.client = requestClient(ctx.req);
 * ```
 */
export function requestClient(req: Pick<HttpRequest, 'remoteAddress' | 'headers'>): NonNullable<SessionRecord['client']> {
  return { address: req.remoteAddress, userAgent: req.headers['user-agent'] ?? null };
}
