import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import { BitsError } from '../../protocol/errors.js';
import type { CloseSessionPacket } from '../../protocol/packet.js';
import type { SessionRecord } from '../../store/types.js';
import { ConfinementError } from '../../store/fs/confined.js';
import type { SessionLock } from '../../store/types.js';
import { notifies, notifyApplication } from '../notification/notify.js';
import { announceCommitted, landingPath } from '../hooks/upload-committed.js';
import { errnoOf, storageError } from '../storage-error.js';
import type { PacketContext } from './context.js';

/**
 * Close-Session (spec §3.4, D5, D6, D8, D18): a complete upload (or one that never got a fragment:
 * an empty file) is moved to its destination atomically, the overwrite policy checked again; an
 * incomplete one is discarded, and so is a notified one whose application did not ask for a copy.
 * Either way the session, its data and its reply end. A committed plain upload is then announced
 * to the vdir's commit hooks, in the background (never delaying or failing the Ack).
 */
export async function closeSession(ctx: PacketContext, packet: CloseSessionPacket): Promise<Ack> {
  return ctx.sessions.withLock(packet.sessionId, async (lock) => {
    const { sessions } = ctx;
    const record = await sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
    const complete = record.total === null || record.received === record.total;
    if (record.total === null && notifies(ctx.loc.vdir, ctx.hook) && !record.reply) await notifyEmpty(ctx, record, lock);
    // Notified uploads reach their destination only if the application asked for it (spec §9.3).
    const placeAtDestination = !notifies(ctx.loc.vdir, ctx.hook) || record.reply?.copyToDestination === true;
    // Where the upload lands: the client's path, or the name a create hook chose.
    const path = landingPath(ctx.loc.destinations, record.destination, ctx.loc.segments);
    let committed = false;
    if (record.state === 'committing' && !(await sessions.bytes.exists(record))) {
      // A crash after the data reached its destination but before the session was dropped.
      committed = true;
    } else if (complete && placeAtDestination) {
      if (!(await sessions.bytes.exists(record))) {
        await sessions.records.delete(record.id, lock);
        throw new BitsError('BITS_SESSION_NOT_FOUND', 'the uploaded data is gone');
      }
      // The vdir may have changed since Create-Session (a symlink swapped in): check again.
      const destination = await ctx.loc.destinations.resolve(path);
      if (destination !== record.destination) {
        throw new BitsError('BITS_BAD_PATH', `destination moved from ${record.destination} to ${destination}`);
      }
      const commitStarted = performance.now();
      await commitUpload(ctx, record, path, lock);
      ctx.log.set('commitMs', Math.round((performance.now() - commitStarted) * 1000) / 1000);
      committed = true;
    }
    await sessions.remove(record, lock);
    ctx.log.set('committed', committed);
    ctx.log.set('size', record.received);
    sessions.emit('session-closed', record, committed);
    if (committed && !notifies(ctx.loc.vdir, ctx.hook)) announceCommitted(ctx.logger, ctx.vdirHooks, record, path);
    return okAck({ sessionId: packet.sessionId });
  });
}

/**
 * Marks the session `committing` (the record then also says how much was received, which until now
 * only the data may have said) and commits its data to `path` below the vdir. A store that keeps
 * progress in its data cuts it back to the data in between: never before the record vouches for
 * every byte. A failure before the data
 * was placed puts the session back to `receiving` and becomes the Ack's error; a failure after it
 * (the data has left the session, which happens only once it is durably in place) is a committed
 * upload whose cleanup failed, logged.
 */
async function commitUpload(ctx: PacketContext, record: SessionRecord, path: readonly string[], lock: SessionLock): Promise<void> {
  const { sessions } = ctx;
  record.state = 'committing';
  await sessions.records.update(record, lock);
  try {
    if (record.total !== null) await sessions.bytes.progress?.seal(record, record.received);
    await sessions.bytes.commit(record, { destinations: ctx.loc.destinations, path }, { overwrite: ctx.loc.vdir.allowOverwrites });
  } catch (err) {
    if (!(await sessions.bytes.exists(record))) {
      ctx.logger.warn({ session: record.id, err }, 'upload committed; cleaning up after it failed');
      return;
    }
    record.state = 'receiving';
    await sessions.records.update(record, lock);
    if (err instanceof ConfinementError) throw new BitsError('BITS_BAD_PATH', `${record.urlPath}: ${err.message}`);
    if (errnoOf(err) === 'EEXIST') throw new BitsError('BITS_DESTINATION_EXISTS', `${record.urlPath} appeared and overwrites are off`);
    throw storageError(err, 'committing the upload failed');
  }
}

/**
 * A session closed without any fragment is an empty file (D8). On a vdir that notifies, the
 * application hears of it as of any other upload, and its answer decides whether the file is placed;
 * its reply cannot reach the client (no Fragment Ack carries a reply URL) and ends with the session.
 */
async function notifyEmpty(ctx: PacketContext, record: SessionRecord, lock: SessionLock): Promise<void> {
  record.total = 0;
  record.reply = await notifyApplication({ req: ctx.req, vdir: ctx.loc.vdir, record, bytes: ctx.sessions.bytes, hook: ctx.hook, signal: lock.signal });
  record.updatedAt = Date.now();
  await ctx.sessions.records.update(record, lock);
  ctx.log.set('reply', 'empty upload');
  ctx.sessions.emit('upload-notified', record);
}
