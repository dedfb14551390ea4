import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import type { CancelSessionPacket } from '../../protocol/packet.js';
import type { PacketContext } from './context.js';

/** Cancel-Session (spec §3.5): deletes the session's data and record; the destination is untouched. */
export async function cancelSession(ctx: PacketContext, packet: CancelSessionPacket): Promise<Ack> {
  return ctx.sessions.withLock(packet.sessionId, async (lock) => {
    const record = await ctx.sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
    // (fenced: a cancel superseded by a newer request for the session deletes nothing of it)
    await ctx.sessions.remove(record, lock);
    ctx.sessions.emit('session-cancelled', record);
    return okAck({ sessionId: packet.sessionId });
  });
}
