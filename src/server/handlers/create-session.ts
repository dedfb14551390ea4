import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import { BitsError } from '../../protocol/errors.js';
import type { CreateSessionPacket } from '../../protocol/packet.js';
import { newSessionId } from '../../protocol/session-id.js';
import { SessionLimitError } from '../../store/types.js';
import type { SessionRecord } from '../../store/types.js';
import { loggedSessionId } from '../redact.js';
import { notifies } from '../notification/notify.js';
import { requestClient } from '../admin/request-client.js';
import { decideCreate } from '../hooks/session-create.js';
import type { PacketContext } from './context.js';

/**
 * Create-Session (spec §3.2): runs the vdir's create hooks (which may refuse, or choose the
 * destination name), checks the destination (confined, not a directory, overwrite policy
 * D5) and the principal's session limit (503, retry later), creates the session's empty upload and durable record, and answers with the protocol, the new
 * id, `Accept-Encoding: identity` and the vdir's Host-Id.
 */
export async function createSession(ctx: PacketContext, packet: CreateSessionPacket): Promise<Ack> {
  const { vdir } = ctx.loc;
  // The vdir's create hooks first, before anything exists: they may refuse, or choose another name.
  const { destinations, segments } = await decideCreate(ctx);
  const destination = await destinations.resolve(segments);
  if (!vdir.allowOverwrites && (await destinations.exists(segments))) {
    throw new BitsError('BITS_DESTINATION_EXISTS', `${destination} exists and overwrites are off`);
  }
  const id = newSessionId();
  const now = Date.now();
  const record: SessionRecord = {
    id,
    vdir: vdir.path,
    urlPath: ctx.loc.urlPath,
    destination,
    protocol: packet.protocol,
    total: null,
    received: 0,
    createdAt: now,
    updatedAt: now,
    timeoutMs: vdir.sessionTimeoutMs,
    state: 'receiving',
    principal: ctx.principal,
    client: requestClient(ctx.req),
  };
  // The record goes first: a folder with a record is a session, one without is a crash's debris
  // (removed at start-up only). The limit is counted and claimed in the same step as the insert.
  const limit = ctx.principal !== null ? vdir.sessionsPerUserLimit : 0;
  try {
    await ctx.sessions.records.create(record, { limit, now });
  } catch (err) {
    if (err instanceof SessionLimitError) {
      throw new BitsError('BITS_TOO_MANY_SESSIONS', `${ctx.principal} holds ${err.held} sessions, the limit is ${err.limit}`);
    }
    throw err;
  }
  try {
    const bytes = await ctx.sessions.bytes.open(id, { destinations, path: segments }, { readBack: notifies(vdir, ctx.hook) });
    if (bytes !== undefined) {
      // The store's memo of the upload (an object store's upload id) must be durable before the Ack.
      record.bytes = bytes;
      await ctx.sessions.withLock(id, (lock) => ctx.sessions.records.update(record, lock));
    }
  } catch (err) {
    await ctx.sessions.bytes.discard(record).catch(() => undefined);
    await ctx.sessions.records.delete(id).catch(() => undefined);
    throw err;
  }
  ctx.log.set('session', loggedSessionId(id, vdir.auth?.sessionCapability === true));
  ctx.sessions.emit('session-created', record);
  return okAck({
    protocol: packet.protocol,
    sessionId: id,
    acceptEncoding: 'identity',
    hostId: vdir.hostId,
    hostIdFallbackTimeout: vdir.hostIdFallbackTimeout,
  });
}
