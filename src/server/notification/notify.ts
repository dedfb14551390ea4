import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { HttpRequest } from '../../http/types.js';
import { BitsError, isBitsError } from '../../protocol/errors.js';
import type { ByteStore, ReplyRecord, SessionRecord } from '../../store/types.js';
import type { VdirConfig } from '../config.js';
import type { CompletedUpload, UploadCompleteHook, UploadReply } from './hook.js';
import { postNotification } from './http-notifier.js';
import type { NotificationAnswer } from './http-notifier.js';
import { notificationTarget, uploadUrl } from './public-url.js';
import { fullDiskError } from '../storage-error.js';
import { knownSize, limitReply, replyTooLarge } from './reply-limit.js';
import type { ReplyBounds } from './reply-limit.js';
import { MAX_REPLY_URL } from '../../protocol/constants.js';
import { newReplyToken, replyUrl } from '../../protocol/reply-url.js';

/** Everything one notification needs. */
export interface NotifyInput {
  req: HttpRequest;
  vdir: VdirConfig;
  record: SessionRecord;
  bytes: ByteStore;
  hook: UploadCompleteHook | undefined;
  /** Aborts when a newer request for the session supersedes this one. */
  signal: AbortSignal;
}

/**
 * Stores a reply within the vdir's `maxReplySize` (and `bounds`). The store removes its partial
 * file on any failure; a full disk is reported as such (D9), not as an application error.
 */
async function storeReply(bytes: ByteStore, upload: SessionRecord, source: Readable, limit: number, bounds?: ReplyBounds): Promise<void> {
  try {
    await bytes.writeReply(upload, limitReply(source, limit, bounds));
  } catch (err) {
    if (isBitsError(err)) throw err;
    // (other failures are the caller's to name: a broken application reply, or an internal error)
    throw fullDiskError(err, 'no space left for the reply') ?? err;
  }
}

/**
 * The session's memory of a static reply (`BITS-Static-Response-URL`): handed to the client as it is.
 *
 * @example
 * ```ts
 * staticReply('https://tickets.example.com/42', false); // { url: …, static: true, token: '', copyToDestination: false }
 * ```
 */
function staticReply(url: string, copyToDestination: boolean): ReplyRecord {
  return { url, static: true, token: '', copyToDestination };
}

/**
 * The session's memory of a reply it stored: a relative reply URL with a fresh secret token.
 *
 * @example
 * ```ts
 * generatedReply(record.id, true).url; // 'BITS-Sessions/Replies/<GUID>/<token>/responsefile.bin'
 * ```
 */
function generatedReply(sessionId: string, copyToDestination: boolean): ReplyRecord {
  const token = newReplyToken();
  return { url: replyUrl(sessionId, token), static: false, token, copyToDestination };
}

function toStream(reply: Exclude<UploadReply, { url: string }>): Readable {
  if (typeof reply === 'string') return Readable.from([Buffer.from(reply, 'utf8')]);
  if (Buffer.isBuffer(reply)) return Readable.from([reply]);
  if (reply instanceof Readable) return reply;
  return createReadStream(reply.file);
}

async function runHook(input: NotifyInput, hook: UploadCompleteHook): Promise<ReplyRecord> {
  const { record, bytes, vdir } = input;
  const timeoutMs = vdir.notificationTimeoutMs;
  // One deadline for the call and for its streamed reply. The call itself gets notificationTimeout
  // in total: a function shows no progress to measure idleness by. Its streamed reply is idle-limited:
  // the timer restarts when the hook answers and with each chunk. A superseding request ends both.
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new BitsError('BITS_APPLICATION_TIMEOUT', `hook fell silent for ${timeoutMs / 1000} s`)),
    timeoutMs,
  );
  const onSupersede = (): void =>
    deadline.abort(new BitsError('BITS_APPLICATION_TIMEOUT', 'notification abandoned for a newer request', { cause: input.signal.reason }));
  input.signal.addEventListener('abort', onSupersede, { once: true });
  if (input.signal.aborted) onSupersede();
  const upload: CompletedUpload = {
    sessionId: record.id,
    vdir: vdir.path,
    url: uploadUrl(vdir, input.req),
    urlPath: record.urlPath,
    destination: record.destination,
    size: record.total ?? 0,
    principal: record.principal,
    path: bytes.local?.dataPath(record),
    stream: () => bytes.openRead(record),
  };
  try {
    const timedOut = new Promise<never>((_, reject) => deadline.signal.addEventListener('abort', () => reject(deadline.signal.reason)));
    let result;
    try {
      result = await Promise.race([Promise.resolve().then(() => hook(upload, deadline.signal)), timedOut]);
    } catch (err) {
      if (isBitsError(err)) throw err;
      throw new BitsError('BITS_APPLICATION_ERROR', `hook failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    const reply = result?.reply;
    const copyToDestination = result?.copyToDestination === true;
    if (reply !== undefined && typeof reply === 'object' && 'url' in reply) {
      if (reply.url.length > MAX_REPLY_URL) throw new BitsError('BITS_REPLY_URL_TOO_LONG', `static reply URL of ${reply.url.length} characters`);
      return staticReply(reply.url, copyToDestination);
    }
    const size = knownSize(reply);
    if (size !== undefined && size > vdir.maxReplySize) throw replyTooLarge(vdir.maxReplySize, size);
    timer.refresh();
    const bounds: ReplyBounds = { signal: deadline.signal, onProgress: () => timer.refresh() };
    await storeReply(bytes, record, reply === undefined ? Readable.from([]) : toStream(reply), vdir.maxReplySize, bounds);
    return generatedReply(record.id, copyToDestination);
  } finally {
    clearTimeout(timer);
    input.signal.removeEventListener('abort', onSupersede);
  }
}

/**
 * Adopts the reply a by-reference application wrote (a local file, or an object it PUT), or an empty
 * one if it wrote none. One over `limit` is refused, the application's fault, and removed.
 */
async function adoptReply(bytes: ByteStore, record: SessionRecord, limit: number): Promise<void> {
  const files = bytes.local ?? bytes.remote;
  if (!files) throw new BitsError('BITS_INTERNAL', 'by-reference notification needs a store with local files or object URLs');
  let size: number;
  try {
    size = await files.adoptReply(record);
  } catch (err) {
    throw fullDiskError(err, 'no space left for the reply') ?? err;
  }
  if (size > limit) {
    await files.removeReply(record);
    throw replyTooLarge(limit, size);
  }
}

/** Removes what a by-reference application left as its reply (a failure or a static answer leaves none). */
async function removeReply(bytes: ByteStore, record: SessionRecord): Promise<void> {
  await (bytes.local ?? bytes.remote)?.removeReply(record);
}

/** How long an application's presigned object URLs stay valid beyond the notification timeout. */
const URL_GRACE_SECONDS = 300;

async function runHttp(input: NotifyInput): Promise<ReplyRecord> {
  const { req, vdir, record, bytes } = input;
  const type = vdir.notificationType === 'by-reference' ? 'by-reference' : 'by-value';
  let requestFile: string | undefined;
  let responseFile: string | undefined;
  if (type === 'by-reference') {
    if (bytes.local) {
      requestFile = bytes.local.dataPath(record);
      responseFile = bytes.local.replyPath(record);
    } else if (bytes.remote) {
      // Object mode: the application gets presigned URLs of the upload and of where to put its reply.
      const expires = Math.ceil(vdir.notificationTimeoutMs / 1000) + URL_GRACE_SECONDS;
      requestFile = (await bytes.remote.request(record, expires)).url;
      responseFile = (await bytes.remote.response(record, expires)).url;
    }
    if (!responseFile || !requestFile) {
      throw new BitsError('BITS_INTERNAL', 'by-reference notification needs a store with local files or object URLs');
    }
  }
  let answer: NotificationAnswer;
  try {
    answer = await postNotification({
      url: notificationTarget(vdir, req),
      type,
      originalUrl: uploadUrl(vdir, req),
      requestFile,
      responseFile,
      body: () => bytes.openRead(record),
      size: record.total ?? 0,
      timeoutMs: vdir.notificationTimeoutMs,
      maxReplySize: vdir.maxReplySize,
      signal: input.signal,
      storeReply: (body) => storeReply(bytes, record, body, vdir.maxReplySize),
    });
  } catch (err) {
    // A failed notification leaves no reply behind, whatever the application wrote before failing.
    if (type === 'by-reference') await removeReply(bytes, record);
    throw err;
  }
  if (answer.staticUrl !== undefined) {
    if (type === 'by-reference') await removeReply(bytes, record);
    return staticReply(answer.staticUrl, answer.copyToDestination);
  }
  if (type === 'by-reference') await adoptReply(bytes, record, vdir.maxReplySize);
  return generatedReply(record.id, answer.copyToDestination);
}

/**
 * Whether uploads to a vdir notify a server application (and so are upload-reply uploads, D7).
 *
 * @example
 * ```ts
 * if (notifies(vdir, hook)) { ... }
 * ```
 */
export function notifies(vdir: VdirConfig, hook: UploadCompleteHook | undefined): boolean {
  return hook !== undefined || vdir.notificationType !== 'none';
}

/**
 * Notifies the vdir's server application (in-process hook first, else the HTTP URL) that an upload
 * is complete, stores its reply, and returns what the session must remember.
 *
 * @throws {BitsError} the application errors of D11, or `BITS_REPLY_URL_TOO_LONG`.
 * @example
 * ```ts
 * record.reply = await notifyApplication({ req, vdir, record, bytes, hook, signal });
 * ```
 */
export async function notifyApplication(input: NotifyInput): Promise<ReplyRecord> {
  if (input.hook) return runHook(input, input.hook);
  if (!input.vdir.notificationUrl) {
    throw new BitsError('BITS_INTERNAL', `vdir ${input.vdir.path} has notificationType ${input.vdir.notificationType} but no notificationUrl`);
  }
  return runHttp(input);
}
