import { stat } from 'node:fs/promises';
import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import { BitsError } from '../../protocol/errors.js';
import type { CreateSessionPacket } from '../../protocol/packet.js';
import { newSessionId } from '../../protocol/session-id.js';
import type { SessionRecord } from '../../store/types.js';
import type { PacketContext } from './context.js';

/**
 * Create-Session (spec §3.2): checks the destination (confined, not a directory, overwrite policy
 * D5) and the principal's session limit (503, retry later), creates the session's empty upload and durable record, and answers with the protocol, the new
 * id, `Accept-Encoding: identity` and the vdir's Host-Id.
 */
export async function createSession(ctx: PacketContext, packet: CreateSessionPacket): Promise<Ack> {
  const { vdir } = ctx.loc;
  const destination = await ctx.vdirs.destination(ctx.loc);
  if (!vdir.allowOverwrites) {
    const existing = await stat(destination).catch(() => undefined);
    if (existing) throw new BitsError('BITS_DESTINATION_EXISTS', `${ctx.loc.urlPath} exists and overwrites are off`);
  }
  if (ctx.principal !== null && vdir.sessionsPerUserLimit > 0) {
    const held = (await ctx.sessions.records.list()).filter(
      (r) => r.principal === ctx.principal && r.vdir === vdir.path && !ctx.sessions.isExpired(r),
    ).length;
    if (held >= vdir.sessionsPerUserLimit) {
      throw new BitsError('BITS_TOO_MANY_SESSIONS', `${ctx.principal} holds ${held} sessions, the limit is ${vdir.sessionsPerUserLimit}`);
    }
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
    timeoutMs: vdir.sessionTimeout * 1000,
    state: 'receiving',
    principal: ctx.principal,
  };
  await ctx.sessions.bytes.open(id);
  await ctx.sessions.records.create(record);
  ctx.log['session'] = id;
  ctx.sessions.emit('session-created', record);
  return okAck({
    protocol: packet.protocol,
    sessionId: id,
    acceptEncoding: 'identity',
    hostId: vdir.hostId,
    hostIdFallbackTimeout: vdir.hostIdFallbackTimeout,
  });
}
