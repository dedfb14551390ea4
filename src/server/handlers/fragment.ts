import { okAck } from '../../protocol/ack.js';
import type { Ack } from '../../protocol/ack.js';
import type { FragmentRange } from '../../protocol/content-range.js';
import { BitsError, isBitsError } from '../../protocol/errors.js';
import type { FragmentPacket } from '../../protocol/packet.js';
import { isHttpError } from '../../http/errors.js';
import { PartialWriteError, UploadMissingError } from '../../store/types.js';
import type { ByteState, SessionLock, SessionRecord } from '../../store/types.js';
import type { VdirConfig } from '../config.js';
import { errnoOf, storageError } from '../storage-error.js';
import { notifies, notifyApplication } from '../notification/notify.js';
import type { PacketContext } from './context.js';
import { fragmentSource } from './exact-length.js';
import { requestClient } from '../admin/request-client.js';

/** The same error, carrying the session's next expected offset for `BITS-Received-Content-Range`. */
function withReceived(error: BitsError, received: number): BitsError {
  const { code, message, cause, status, hresult, context } = error;
  return new BitsError(code, message, { cause, status, hresult, context, received });
}

/**
 * The request was stopped because a newer one for the same session arrived (D10). What it wrote is
 * recorded; its connection is dropped rather than answered (the client has given up on it).
 */
function superseded(received: number): BitsError {
  return new BitsError('BITS_SUPERSEDED', undefined, { received });
}

/** What a failed write means for the client: superseded, a refused body, gone, or a storage error (D9). */
function writeFailure(err: PartialWriteError, aborted: boolean, received: number): BitsError {
  if (err.origin === 'source') {
    if (aborted) return superseded(received);
    // a body refused for its length or framing (D13) says so itself
    if (isBitsError(err.cause)) return err.cause;
    // the engine's reason, by its code when it has one (HTTP_BODY_IDLE_TIMEOUT, HTTP_CONNECTION_CLOSED…)
    const why = isHttpError(err.cause) ? `${err.cause.code}: ${err.cause.message}` : err.cause instanceof Error ? err.cause.message : String(err.cause);
    return new BitsError('BITS_CLIENT_DISCONNECTED', `fragment body ended early (${why})`, { cause: err });
  }
  return storageError(err, 'writing the fragment failed');
}

/**
 * The checks of a Fragment against its session and vdir, before anything is written (spec §6.2,
 * D16): the total may not change, nor exceed `maximumUploadSize`; the body may not exceed
 * `maxFragmentSize`; the range may not start past the next expected byte. Each error carries that
 * byte's offset.
 *
 * @throws {BitsError} `BITS_TOTAL_CHANGED`, `BITS_TOO_LARGE`, `BITS_FRAGMENT_TOO_LARGE` or `BITS_RANGE_GAP`.
 * @example
 * ```ts
 * checkFragment(record, parseContentRange('bytes 300-399/1000'), vdir); // throws RANGE_GAP when record.received < 300
 * ```
 */
export function checkFragment(
  record: Pick<SessionRecord, 'received' | 'total'>,
  range: FragmentRange,
  vdir: Pick<VdirConfig, 'maximumUploadSize' | 'maxFragmentSize'>,
): void {
  const received = record.received;
  if (record.total !== null && range.total !== record.total) {
    throw new BitsError('BITS_TOTAL_CHANGED', `total ${range.total} differs from the session's ${record.total}`, { received });
  }
  if (vdir.maximumUploadSize > 0 && range.total > vdir.maximumUploadSize) {
    throw new BitsError('BITS_TOO_LARGE', `entity of ${range.total} bytes exceeds ${vdir.maximumUploadSize}`, { received });
  }
  if (range.length > vdir.maxFragmentSize) {
    throw new BitsError('BITS_FRAGMENT_TOO_LARGE', `fragment of ${range.length} bytes exceeds ${vdir.maxFragmentSize}`, { received });
  }
  if (range.first > received) throw new BitsError('BITS_RANGE_GAP', `fragment starts at ${range.first}, expected ${received}`, { received });
}

/**
 * Writes the bytes of the fragment past the session's next expected offset (D4) and makes them
 * durable. Returns how many were written and, when the write stopped early, why; a session whose
 * data was deleted from outside is removed and reported as not found.
 */
async function writeTail(
  ctx: PacketContext,
  record: SessionRecord,
  range: FragmentRange,
  lock: SessionLock,
): Promise<{ written: number; failure: BitsError | undefined; bytes?: ByteState | undefined; tracked?: boolean | undefined }> {
  const n = record.received;
  if (range.last < n) {
    // Nothing to write, but the bytes it would confirm may have been deleted from outside.
    if (await ctx.sessions.bytes.exists(record)) return { written: 0, failure: undefined };
    await ctx.sessions.remove(record);
    throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its data`);
  }
  const source = fragmentSource(ctx.req, n - range.first, range.length);
  try {
    const length = range.last + 1 - n;
    // A notified upload is sealed as soon as it is complete (the application reads it before the
    // commit), so its record must say so first; any other may wait for its commit to be sealed.
    const trackCompletion = !notifies(ctx.loc.vdir, ctx.hook);
    const done = await ctx.sessions.bytes.write(record, n, source, { signal: lock.signal, total: range.total, length, trackCompletion });
    return { written: done.written, failure: undefined, bytes: done.bytes, tracked: done.tracked };
  } catch (err) {
    if (err instanceof UploadMissingError) {
      // Deleted from outside: the session cannot go on, and the client must start over.
      await ctx.sessions.remove(record);
      throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its data`);
    }
    if (!(err instanceof PartialWriteError)) throw err;
    return { written: err.written, failure: writeFailure(err, lock.signal.aborted, n + err.written), bytes: err.bytes };
  }
}

/** A complete upload, whose record says so, is sealed in its byte store: ready to be read or committed. */
async function seal(ctx: PacketContext, record: SessionRecord): Promise<void> {
  try {
    await ctx.sessions.bytes.progress?.seal(record, record.received);
  } catch (err) {
    throw withReceived(storageError(err, 'sealing the upload failed'), record.received);
  }
}

/**
 * Notifies the server application of a complete upload once (D7, spec §6.1) and returns the reply
 * URL: a resend after success gets the same answer; after a failure the session stays
 * complete-but-not-notified and any fragment runs the notification again.
 */
async function notifyOnce(ctx: PacketContext, record: SessionRecord, lock: SessionLock): Promise<string> {
  if (!record.reply) {
    const started = performance.now();
    const vdir = ctx.loc.vdir;
    try {
      const { req, hook } = ctx;
      record.reply = await notifyApplication({ req, vdir, record, bytes: ctx.sessions.bytes, hook, signal: lock.signal });
      ctx.metrics.notified(vdir.path, (performance.now() - started) / 1000, false);
    } catch (err) {
      if (lock.signal.aborted) throw superseded(record.received);
      ctx.metrics.notified(vdir.path, (performance.now() - started) / 1000, true);
      throw withReceived(isBitsError(err) ? err : new BitsError('BITS_INTERNAL', String(err), { cause: err }), record.received);
    }
    record.updatedAt = Date.now();
    await ctx.sessions.records.update(record, lock);
    ctx.log.set('reply', record.reply.static ? 'static' : 'generated');
    ctx.sessions.emit('upload-notified', record);
  }
  return record.reply.url;
}

/**
 * Fragment (spec §3.3, §6.2, D4, D8, D16): validates the range against the session, answers a gap
 * with 416, writes only bytes past the next expected offset, makes them durable, records the new
 * offset atomically, and only then acknowledges it.
 */
export async function fragment(ctx: PacketContext, packet: FragmentPacket): Promise<Ack> {
  const { vdir } = ctx.loc;
  const { range } = packet;
  ctx.log.set('range', range.total === 0 ? '*/0' : `${range.first}-${range.last}/${range.total}`);
  // A stale duplicate of bytes the server already holds (a retry that arrives late) is answered
  // without taking the session's lock, so it never supersedes the live request streaming new bytes.
  const known = await ctx.sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
  const replyReady = !notifies(vdir, ctx.hook) || known.reply;
  const duplicate = range.length > 0 && known.total === range.total && range.last < known.received && replyReady;
  if (duplicate && (await ctx.sessions.bytes.exists(known))) {
    ctx.log.set('bytes', 0);
    return okAck({ sessionId: packet.sessionId, receivedContentRange: known.received, replyUrl: known.reply?.url });
  }
  return ctx.sessions.withLock(packet.sessionId, async (lock) => {
    const record = await ctx.sessions.live(packet.sessionId, ctx.loc.urlPath, ctx.principal);
    checkFragment(record, range, vdir);
    const n = record.received;
    const { written, failure, bytes, tracked } = await writeTail(ctx, record, range, lock);
    // (A pure retransmission writes nothing; the engine drains its body after the Ack.)
    const wasComplete = record.total !== null && n === record.total;
    // Progress alone (and the total, the first time), made durable by the byte store itself, needs
    // no record write.
    const progressOnly = tracked === true && bytes === undefined && failure === undefined;
    record.received = n + written;
    record.total = range.total;
    if (bytes !== undefined) record.bytes = bytes;
    if (written > 0 || failure === undefined) {
      record.updatedAt = Date.now();
      record.client = requestClient(ctx.req);
      try {
        await ctx.sessions.records.update(record, lock, progressOnly ? { progressOnly } : undefined);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') {
          // The session's folder was deleted from outside: the client must start over.
          await ctx.sessions.remove(record);
          throw new BitsError('BITS_SESSION_NOT_FOUND', `session ${record.id} lost its folder`);
        }
        // The record on disk still says n: that, not what reached the data file, is what is durable.
        const answered = failure !== undefined && failure.code !== 'BITS_SUPERSEDED' ? failure : storageError(err, 'recording the fragment failed');
        throw withReceived(answered, n);
      }
    }
    ctx.log.set('bytes', written);
    if (failure) throw withReceived(failure, record.received);
    if (written > 0) ctx.sessions.emit('fragment-received', record, written);
    const complete = record.received === record.total;
    // (a completion kept in memory only is sealed at the commit, once the record says it)
    if (complete && !progressOnly) await seal(ctx, record);
    if (complete && !wasComplete) ctx.sessions.emit('upload-complete', record);
    const replyUrl = complete && notifies(vdir, ctx.hook) ? await notifyOnce(ctx, record, lock) : undefined;
    return okAck({ sessionId: packet.sessionId, receivedContentRange: record.received, replyUrl });
  });
}
