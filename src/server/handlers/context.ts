import type { Metrics } from '../admin/metrics.js';
import type { BoundHooks } from '../hooks/bound-hooks.js';
import type { Logger } from 'pino';
import type { HttpRequest } from '../../http/types.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { UploadCompleteHook } from '../notification/hook.js';
import type { RequestLog } from '../request-log.js';
import type { Sessions } from '../sessions.js';
import type { Location, VdirTable } from '../vdir-table.js';

/** What the request pipeline shares across requests: the server's parts, built once. */
export interface ServerParts {
  readonly vdirs: VdirTable;
  readonly sessions: Sessions;
  readonly auth: Authenticator;
  readonly logger: Logger;
  /** In-process server applications, by vdir path as configured. */
  readonly hooks: ReadonlyMap<string, UploadCompleteHook>;
  /** Create-Session and commit hooks, by vdir path as configured. */
  readonly vdirHooks: ReadonlyMap<string, BoundHooks>;
  readonly metrics: Metrics;
}

/** What a packet handler gets: the request, where it points, and the session table. */
export interface PacketContext {
  readonly req: HttpRequest;
  readonly loc: Location;
  readonly vdirs: VdirTable;
  readonly sessions: Sessions;
  readonly logger: Logger;
  /** The request's log line. */
  readonly log: RequestLog;
  /** The authenticated principal of the request; `null` for anonymous. */
  readonly principal: string | null;
  /** The vdir's in-process server application, if one is registered. */
  readonly hook: UploadCompleteHook | undefined;
  /** The vdir's Create-Session and commit hooks. */
  readonly vdirHooks: BoundHooks;
  readonly metrics: Metrics;
}
