import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import { BitsError, isBitsError } from '../../protocol/errors.js';
import type { FragmentPacket } from '../../protocol/packet.js';
import { PartialWriteError, UploadMissingError } from '../../store/types.js';
import { errnoOf, storageError } from '../storage-error.js';
import { notifies, notifyApplication } from '../notification/notify.js';
import type { PacketContext } from './context.js';
import { fragmentSource } from './exact-length.js';

/** A fragment failure that carries the session's next expected offset for the error Ack. */
export class FragmentError extends BitsError {
  readonly received: number;
  constructor(error: BitsError, received: number) {
    super(error.code, error.message, { cause: error.cause, status: error.status, hresult: error.hresult, context: error.context });
    this.received = received;
  }
}

/**
 * The request was stopped because a newer one for the same session arrived (D10). What it wrote is
 * recorded; its connection is dropped rather than answered (the client has given up on it).
 */
export class SupersededError extends Error {
  constructor(readonly received: number) {
    super('superseded by a newer request for the session');
    this.name = 'SupersededError';
  }
}

/** What a failed write means for the client: superseded, a refused body, gone, or a storage error (D9). */
function writeFailure(err: PartialWriteError, superseded: boolean, received: number): BitsError | SupersededError {
  if (err.origin === 'source') {
    if (superseded) return new SupersededError(received);
    // a body refused for its length or framing (D13) says so itself
    if (isBitsError(err.cause)) return err.cause;
    return new BitsError('BITS_CLIENT_DISCONNECTED', `fragment body ended early: ${(err.cause as Error)?.message ?? String(err.cause)}`, {
      cause: err,
    });
  }
  return storageError(err, 'writing the fragment failed');
}

/**
 * Fragment (spec §3.3, §6.2, D4, D8, D16): validates the range against the session, answers a gap
 * with 416, writes only bytes past the next expected offset, makes them durable, records the new
 * offset atomically, and only then acknowledges it.
 */
export async function fragment(ctx: PacketContext, packet: FragmentPacket): Promise<Ack> {
  const { vdir } = ctx.loc;
  const { range } = packet;
  ctx.log['range'] = range.total === 0 ? '*/0' : `${range.first}-${range.last}/${range.total}`;
  // A stale duplicate of bytes the server already holds (a retry that arrives late) is answered
  // without taking the session's lock, so it never supersedes the live request streaming new bytes.
  const known = await ctx.sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
  const replyReady = !notifies(vdir, ctx.hook) || known.reply;
  const duplicate = range.length > 0 && known.total === range.total && range.last < known.received && replyReady;
  if (duplicate && (await ctx.sessions.bytes.exists(known.id))) {
    ctx.log['bytes'] = 0;
    return okAck({ sessionId: packet.sessionId, receivedContentRange: known.received, replyUrl: known.reply?.url });
  }
  return ctx.sessions.withLock(packet.sessionId, async (lock) => {
    const record = await ctx.sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
    const n = record.received;
    const fail = (error: BitsError): never => {
      throw new FragmentError(error, n);
    };
    if (record.total !== null && range.total !== record.total) {
      fail(new BitsError('BITS_TOTAL_CHANGED', `total ${range.total} differs from the session's ${record.total}`));
    }
    if (vdir.maximumUploadSize > 0 && range.total > vdir.maximumUploadSize) {
      fail(new BitsError('BITS_TOO_LARGE', `entity of ${range.total} bytes exceeds ${vdir.maximumUploadSize}`));
    }
    if (range.length > vdir.maxFragmentSize) {
      fail(new BitsError('BITS_FRAGMENT_TOO_LARGE', `fragment of ${range.length} bytes exceeds ${vdir.maxFragmentSize}`));
    }
    if (range.first > n) fail(new BitsError('BITS_RANGE_GAP', `fragment starts at ${range.first}, expected ${n}`));

    let failure: BitsError | SupersededError | undefined;
    let written = 0;
    if (range.last < n && !(await ctx.sessions.bytes.exists(record.id))) {
      // Nothing to write, but the bytes it would confirm were deleted from outside.
      await ctx.sessions.remove(record);
      throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its data`);
    }
    if (range.last >= n) {
      const source = fragmentSource(ctx.req, n - range.first, range.length);
      try {
        written = await ctx.sessions.bytes.write(record.id, n, source, lock.signal);
      } catch (err) {
        if (err instanceof UploadMissingError) {
          // Deleted from outside: the session cannot go on, and the client must start over.
          await ctx.sessions.remove(record);
          throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its data`);
        }
        if (!(err instanceof PartialWriteError)) throw err;
        written = err.written;
        failure = writeFailure(err, lock.signal.aborted, n + err.written);
      }
    }
    // (A pure retransmission writes nothing; the engine drains its body after the Ack.)
    const wasComplete = record.total !== null && n === record.total;
    record.received = n + written;
    record.total = range.total;
    if (written > 0 || failure === undefined) {
      record.updatedAt = Date.now();
      try {
        await ctx.sessions.records.update(record);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') {
          // The session's folder was deleted from outside: the client must start over.
          await ctx.sessions.remove(record);
          throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its folder`);
        }
        // The record on disk still says n: that, not what reached the data file, is what is durable.
        throw new FragmentError(failure instanceof BitsError ? failure : storageError(err, 'recording the fragment failed'), n);
      }
    }
    ctx.log['bytes'] = written;
    if (failure instanceof SupersededError) throw failure;
    if (failure) throw new FragmentError(failure, record.received);
    if (written > 0) ctx.sessions.emit('fragment-received', record, written);
    const complete = record.received === record.total;
    if (complete && !wasComplete) ctx.sessions.emit('upload-complete', record);
    let replyUrl: string | undefined;
    if (complete && notifies(vdir, ctx.hook)) {
      // Notify once (D7, spec §6.1): a resend after success gets the same Ack; after a failure the
      // session stays complete-but-not-notified and any fragment runs the notification again.
      if (!record.reply) {
        try {
          record.reply = await notifyApplication({ req: ctx.req, vdir, record, bytes: ctx.sessions.bytes, hook: ctx.hook, signal: lock.signal });
        } catch (err) {
          if (lock.signal.aborted) throw new SupersededError(record.received);
          throw new FragmentError(isBitsError(err) ? err : new BitsError('BITS_INTERNAL', String(err), { cause: err }), record.received);
        }
        record.updatedAt = Date.now();
        await ctx.sessions.records.update(record);
        ctx.log['reply'] = record.reply.static ? 'static' : 'generated';
        ctx.sessions.emit('upload-notified', record);
      }
      replyUrl = record.reply.url;
    }
    return okAck({ sessionId: packet.sessionId, receivedContentRange: record.received, replyUrl });
  });
}
