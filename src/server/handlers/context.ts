import type { Logger } from 'pino';
import type { HttpRequest } from '../../http/types.js';
import type { UploadCompleteHook } from '../notification/hook.js';
import type { Sessions } from '../sessions.js';
import type { Location, VdirTable } from '../vdir-table.js';

/** What a packet handler gets: the request, where it points, and the session table. */
export interface PacketContext {
  readonly req: HttpRequest;
  readonly loc: Location;
  readonly vdirs: VdirTable;
  readonly sessions: Sessions;
  readonly logger: Logger;
  /** Fields added to the request's log line. */
  readonly log: Record<string, unknown>;
  /** The principal of the request, once authentication exists; `null` for anonymous. */
  readonly principal: string | null;
  /** The vdir's in-process server application, if one is registered. */
  readonly hook: UploadCompleteHook | undefined;
}
