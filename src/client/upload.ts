import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { readAck } from '../protocol/ack-info.js';
import type { AckInfo } from '../protocol/ack-info.js';
import { BITS_METHOD, BITS_PROTOCOL_GUID, PacketType, WireHeader } from '../protocol/constants.js';
import type { RequestPacketType } from '../protocol/constants.js';
import { formatContentRange } from '../protocol/content-range.js';
import { hostIdUrl } from '../protocol/host-id.js';
import { HResult } from '../protocol/hresult.js';
import { resolveReplyUrl } from '../protocol/reply-url.js';
import { connectionOf, credentialsOf, jobContext } from './context.js';
import type { JobContext } from './context.js';
import { FileSink, MemorySink } from './download-sink.js';
import type { DownloadSink } from './download-sink.js';
import { BitsClientError } from './errors.js';
import { Job } from './job.js';
import { newJobId } from './journal.js';
import type { UploadRecord } from './journal.js';
import { DEFAULT_FRAGMENT_SIZE, MAX_MEMORY_REPLY, MIN_FRAGMENT_SIZE, resolveTiming } from './options.js';
import type { ClientOptions } from './options.js';
import { RangedDownload } from './ranged-download.js';
import { publicHref } from './userinfo.js';
import { ackError, retryAfterMs } from './server-error.js';

/** Options of {@link upload}. */
export interface UploadOptions extends ClientOptions {
  /** The local file to upload. */
  file: string;
  /** The destination URL (user information in it is used for Basic authentication; the journal keeps only the user name). */
  url: string | URL;
  /** Bytes per Fragment, at least 5 KiB; shrunk on 413 (never below 5 KiB). Default 8 MiB. */
  fragmentSize?: number | undefined;
  /** Where an upload-reply's reply is saved; without it the reply is returned in memory (≤ 1 MiB). */
  replyFile?: string | undefined;
}

/** The reply of an upload-reply job. */
export interface ReceivedReply {
  /** The resolved reply URL. */
  readonly url: string;
  readonly bytes: number;
  /** Where it was saved (with `replyFile`). */
  readonly file?: string;
  /** The reply itself (without `replyFile`). */
  readonly data?: Buffer;
}

/** What a completed upload resolves with. */
export interface UploadResult {
  readonly jobId: string;
  readonly file: string;
  /** The upload URL (without user information). */
  readonly url: string;
  readonly bytes: number;
  /** The session that carried the upload to the end. */
  readonly sessionId: string;
  /** The reply, when the server answered with `BITS-Reply-URL`. */
  readonly reply?: ReceivedReply;
}

/** Characters Windows does not allow in `Content-Name` (spec §2.1), plus anything outside Latin-1. */
const NAME_FORBIDDEN = /[\\/:*?"<>|\x00-\x1f\x7f]|[^\x00-\xff]/g;

function contentName(file: string): string {
  return basename(file).replace(NAME_FORBIDDEN, '_').slice(0, 260) || 'file';
}

/**
 * An upload job (spec §7.1): Ping, Create-Session, Fragments, the reply download of an upload-reply
 * job, Close-Session. Created by {@link upload} or resumed from the journal.
 */
export class UploadJob extends Job<UploadResult> {
  private readonly up: UploadRecord;
  private readonly originalUrl: URL;
  private fh: FileHandle | undefined;
  private buffer: Buffer | undefined;
  private needPing = true;
  private hostUrl: URL | undefined;
  private hostFailingSince: number | undefined;
  private lostWithoutProgress = false;
  private closeLost = false;
  private resumedCloseUnanswered: boolean;
  private maxAcked: number;
  private replyDownload: RangedDownload | undefined;
  private replySink: DownloadSink | undefined;
  private reply: ReceivedReply | undefined;
  private lastSessionId: string | undefined;

  /** @internal use {@link upload} or `resumeJob`. */
  constructor(record: UploadRecord, ctx: JobContext) {
    super(record.id, record, ctx.journal, ctx.transport, ctx.timing, ctx.logger);
    this.up = record;
    this.originalUrl = new URL(record.url);
    this.maxAcked = record.offset;
    this.resumedCloseUnanswered = record.closeUnanswered === true;
    if (record.sessionId !== undefined && record.hostId !== undefined) {
      this.hostUrl = hostIdUrl(this.originalUrl, record.hostId);
      this.transport.trust(this.hostUrl);
    }
  }

  /** @internal starts the job. */
  start(fresh: boolean): this {
    void this.run(fresh);
    return this;
  }

  /** Where session packets go: the Host-Id host while one is in use, else the upload URL. */
  private packetUrl(): URL {
    return this.hostUrl ?? this.originalUrl;
  }

  protected override async prepare(): Promise<void> {
    const st = await stat(this.up.file).catch((err: NodeJS.ErrnoException) => {
      throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `cannot read ${this.up.file}: ${err.code ?? err.message}`, { cause: err });
    });
    if (!st.isFile()) throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `${this.up.file} is not a regular file`);
    if (this.up.fileSize < 0) {
      this.up.fileSize = st.size;
      this.up.fileMtimeMs = st.mtimeMs;
    } else {
      this.checkUnchanged(st.size, st.mtimeMs);
    }
    this.fh = await open(this.up.file, 'r');
  }

  private checkUnchanged(size: number, mtimeMs: number): void {
    if (size !== this.up.fileSize || mtimeMs !== this.up.fileMtimeMs) {
      throw new BitsClientError(
        'BITS_CLIENT_LOCAL_FILE_CHANGED',
        `${this.up.file} changed during the upload (size ${this.up.fileSize} → ${size}, mtime ${new Date(this.up.fileMtimeMs).toISOString()} → ${new Date(mtimeMs).toISOString()})`,
      );
    }
  }

  protected override beforeStep(): void {
    const timeout = this.up.hostIdFallbackTimeoutMs;
    if (this.hostUrl && this.hostFailingSince !== undefined && timeout !== undefined && Date.now() - this.hostFailingSince >= timeout) {
      const hostId = this.up.hostId!;
      this.logger.warn({ job: this.id, hostId }, 'Host-Id host unreachable past the fallback timeout; back to the original URL');
      this.up.failedHostIds = [...new Set([...(this.up.failedHostIds ?? []), hostId])];
      this.up.hostId = undefined;
      this.hostUrl = undefined;
      this.hostFailingSince = undefined;
      this.needPing = true;
      this.emit('fallback', { hostId, url: publicHref(this.up.url) });
    }
  }

  protected override onTransient(error: BitsClientError): void {
    if (this.hostUrl && error.url !== undefined && new URL(error.url).origin === this.hostUrl.origin) {
      this.hostFailingSince ??= Date.now();
    }
    if (error.request !== 'GET' && error.request !== 'HEAD') this.needPing = true;
  }

  protected override maxWaitMs(): number {
    const timeout = this.up.hostIdFallbackTimeoutMs;
    if (!this.hostUrl || this.hostFailingSince === undefined || timeout === undefined) return Number.POSITIVE_INFINITY;
    return Math.max(0, this.hostFailingSince + timeout - Date.now());
  }

  protected override async step(): Promise<boolean> {
    if (this.needPing) {
      await this.ping();
      this.needPing = false;
      return false;
    }
    if (this.up.sessionId === undefined) {
      await this.createSession();
      return false;
    }
    if (!this.up.uploaded) {
      await this.fragment();
      return false;
    }
    if (this.up.replyUrl !== undefined && !this.up.replyDone) {
      await this.downloadReply();
      return false;
    }
    return this.closeSession();
  }

  private async post(type: RequestPacketType, url: URL, headers: Record<string, string>, body?: Buffer): Promise<AckInfo & { retryAfterMs?: number }> {
    const res = await this.transport.sendForAck({
      method: BITS_METHOD,
      url,
      headers: { [WireHeader.PacketType]: type, ...(body === undefined ? { 'Content-Length': '0' } : {}), ...headers },
      ...(body !== undefined ? { body } : {}),
      signal: this.signal,
      onActivity: this.markActivity,
      label: type,
    });
    const ack: AckInfo & { retryAfterMs?: number } = { ...readAck(res.status, res.headers) };
    const after = ack.ok ? undefined : retryAfterMs(res.headers['retry-after']);
    if (after !== undefined) ack.retryAfterMs = after;
    if (ack.ok && this.hostUrl && url.origin === this.hostUrl.origin) this.hostFailingSince = undefined;
    this.logger.debug({ job: this.id, packet: type, url: url.href, status: ack.status, error: ack.errorCode, received: ack.receivedContentRange }, 'ack');
    return ack;
  }

  private async ping(): Promise<void> {
    this.setPhase('ping');
    const url = this.packetUrl();
    const ack = await this.post(PacketType.Ping, url, {});
    if (ack.ok) return;
    // Ping is optional (spec §3.1): a server that does not know it is not an error.
    if (ack.status === 400 || ack.status === 404 || ack.status === 405) {
      this.logger.info({ job: this.id, status: ack.status }, 'server does not answer Ping; going on without it');
      return;
    }
    throw ackError(ack, PacketType.Ping, url);
  }

  private async createSession(): Promise<void> {
    this.setPhase('create-session');
    const url = this.originalUrl;
    const ack = await this.post(PacketType.CreateSession, url, {
      'BITS-Supported-Protocols': BITS_PROTOCOL_GUID,
      'Content-Name': contentName(this.up.file),
    });
    if (!ack.ok) throw ackError(ack, PacketType.CreateSession, url);
    if (ack.sessionId === undefined) {
      throw new BitsClientError('BITS_CLIENT_INVALID_RESPONSE', 'Create-Session Ack without BITS-Session-Id', {
        status: ack.status,
        request: PacketType.CreateSession,
        url: url.href,
      });
    }
    if (ack.protocol !== undefined && ack.protocol.toLowerCase() !== BITS_PROTOCOL_GUID) {
      throw new BitsClientError('BITS_CLIENT_PROTOCOL_MISMATCH', `the server chose protocol ${ack.protocol}`, {
        status: ack.status,
        request: PacketType.CreateSession,
        url: url.href,
      });
    }
    const up = this.up;
    this.startOver(ack.sessionId);
    this.lastSessionId = ack.sessionId;
    this.resumedCloseUnanswered = false;
    this.closeLost = false;
    up.hostId = undefined;
    up.hostIdFallbackTimeoutMs = undefined;
    this.hostUrl = undefined;
    this.hostFailingSince = undefined;
    if (ack.hostId !== undefined && !(up.failedHostIds ?? []).includes(ack.hostId)) {
      try {
        this.hostUrl = hostIdUrl(url, ack.hostId);
        up.hostId = ack.hostId;
        up.hostIdFallbackTimeoutMs = ack.hostIdFallbackTimeout === undefined ? undefined : ack.hostIdFallbackTimeout * 1000;
        this.transport.trust(this.hostUrl);
        this.needPing = true;
      } catch {
        this.emit('warning', `ignoring BITS-Host-Id "${ack.hostId}": not a host name`);
      }
    }
    await this.persist();
    this.logger.info({ job: this.id, session: ack.sessionId, hostId: up.hostId }, 'session created');
    this.emit('session', { sessionId: ack.sessionId, url: publicHref(up.url) });
    if (this.hostUrl) this.emit('host-id', { hostId: up.hostId!, url: this.hostUrl.href });
    this.emit('progress', { phase: 'upload', bytesDone: 0, bytesTotal: up.fileSize });
    this.setPhase('fragments');
  }

  /** Forgets everything the previous session knew: the upload starts again at offset 0 in `sessionId`. */
  private startOver(sessionId: string | undefined): void {
    const up = this.up;
    up.sessionId = sessionId;
    up.offset = 0;
    up.uploaded = false;
    up.replyUrl = undefined;
    up.reply = undefined;
    up.replyDone = undefined;
    up.closeUnanswered = undefined;
  }

  /** The server lost the session (BG_E_SESSION_NOT_FOUND): start a new one (spec §7.1 ERROR state). */
  private async sessionLost(ack: AckInfo, request: string, url: URL): Promise<void> {
    const again = this.lostWithoutProgress;
    this.lostWithoutProgress = true;
    const up = this.up;
    this.logger.warn({ job: this.id, session: up.sessionId, request }, 'server lost the session; starting a new one');
    this.emit('restart', { reason: `the server does not know session ${up.sessionId} (${request})` });
    this.startOver(undefined);
    await this.persist();
    // Lost again before any progress: wait before the next attempt like any transient error.
    if (again) throw ackError(ack, request, url, 'transient');
  }

  private async readFragment(offset: number, length: number): Promise<Buffer> {
    if (!this.buffer || this.buffer.length < length) this.buffer = Buffer.allocUnsafe(Math.max(length, Math.min(this.up.fragmentSize, this.up.fileSize)));
    const buf = this.buffer.subarray(0, length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh!.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new BitsClientError('BITS_CLIENT_LOCAL_FILE_CHANGED', `${this.up.file} ended at ${offset + done} of ${this.up.fileSize} bytes`);
      }
      done += bytesRead;
    }
    return buf;
  }

  private async fragment(): Promise<void> {
    const up = this.up;
    const st = await stat(up.file);
    this.checkUnchanged(st.size, st.mtimeMs);
    if (up.fileSize === 0) {
      // D8: an empty file has no Fragment. Create-Session then Close-Session is the form every server
      // in the wild takes (transfervm, bits4j and python-onedrive send it); `bytes */0` is refused or
      // crashes them.
      await this.acknowledged(0, undefined, 0);
      return;
    }
    const offset = up.offset;
    const length = Math.min(up.fragmentSize, up.fileSize - offset);
    const body = await this.readFragment(offset, length);
    const url = this.packetUrl();
    const ack = await this.post(
      PacketType.Fragment,
      url,
      {
        [WireHeader.SessionId]: up.sessionId!,
        'Content-Name': contentName(up.file),
        'Content-Range': formatContentRange(offset, length, up.fileSize),
      },
      body,
    );
    if (ack.ok || ack.status === 416) {
      const received = ack.receivedContentRange ?? (ack.ok ? offset + length : undefined);
      if (received === undefined || received > up.fileSize) {
        throw new BitsClientError(
          'BITS_CLIENT_INVALID_RESPONSE',
          `Fragment Ack ${ack.status} with BITS-Received-Content-Range ${received ?? 'missing'} for a ${up.fileSize}-byte file`,
          { status: ack.status, request: PacketType.Fragment, url: url.href },
        );
      }
      await this.acknowledged(received, ack.ok ? ack.replyUrl : undefined, offset + length);
      return;
    }
    if (ack.status === 413) {
      if (length <= MIN_FRAGMENT_SIZE) {
        throw new BitsClientError('BITS_CLIENT_FRAGMENT_TOO_LARGE', `the server refuses fragments of ${length} bytes (413) and ${MIN_FRAGMENT_SIZE} is the smallest this client sends`, {
          status: 413,
          hresult: ack.errorCode,
          context: ack.errorContext,
          request: PacketType.Fragment,
          url: url.href,
        });
      }
      up.fragmentSize = Math.max(MIN_FRAGMENT_SIZE, Math.floor(length / 2));
      this.logger.info({ job: this.id, fragmentSize: up.fragmentSize }, '413: smaller fragments');
      this.emit('warning', `the server refused a ${length}-byte fragment (413); now sending ${up.fragmentSize} bytes`);
      await this.persist();
      return;
    }
    if (ack.errorCode === HResult.SessionNotFound) {
      await this.sessionLost(ack, PacketType.Fragment, url);
      return;
    }
    throw ackError(ack, PacketType.Fragment, url);
  }

  /** Resyncs to the server's next expected offset (spec §6.2 client reaction), forwards or backwards. */
  private async acknowledged(received: number, replyUrl: string | undefined, expected: number): Promise<void> {
    const up = this.up;
    if (received !== expected) {
      this.logger.info({ job: this.id, expected, received }, 'resync to BITS-Received-Content-Range');
    }
    up.offset = received;
    if (received === up.fileSize) {
      up.uploaded = true;
      up.replyUrl = replyUrl;
    }
    if (received > this.maxAcked || (up.uploaded && received === this.maxAcked)) {
      this.maxAcked = Math.max(this.maxAcked, received);
      this.lostWithoutProgress = false;
      this.markProgress();
    }
    await this.persist();
    this.emit('progress', { phase: 'upload', bytesDone: received, bytesTotal: up.fileSize });
  }

  private async downloadReply(): Promise<void> {
    const up = this.up;
    if (!this.replyDownload) {
      this.setPhase('reply');
      const url = resolveReplyUrl(up.replyUrl!, this.originalUrl);
      const same = up.reply?.url === url.href;
      let state = same ? up.reply! : { url: url.href, offset: 0 };
      if (up.replyFile !== undefined) {
        this.replySink = await FileSink.open(up.replyFile, state.offset);
      } else {
        this.replySink = new MemorySink(MAX_MEMORY_REPLY);
        state = { url: url.href, offset: 0, ...(state.remote ? { remote: state.remote } : {}) };
      }
      up.reply = state;
      this.logger.info({ job: this.id, replyUrl: url.href }, 'downloading the reply');
      this.replyDownload = new RangedDownload(this.transport, url, this.replySink, state, {
        signal: () => this.signal,
        activity: this.markActivity,
        logger: this.logger,
        progress: (done, total) => {
          if (done > 0) this.markProgress();
          this.emit('progress', { phase: 'reply', bytesDone: done, bytesTotal: total });
        },
        checkpoint: async () => {
          if (up.replyFile !== undefined) await this.persist();
        },
        restart: (reason) => this.emit('restart', { reason: `reply: ${reason}` }),
        warning: (message) => this.emit('warning', message),
      });
    }
    if (!(await this.replyDownload.step())) return;
    const data = await this.replySink!.complete();
    const bytes = this.replyDownload.state.remote?.size ?? data?.length ?? 0;
    this.reply = {
      url: this.replyDownload.state.url,
      bytes,
      ...(up.replyFile !== undefined ? { file: up.replyFile } : {}),
      ...(data !== undefined ? { data } : {}),
    };
    this.replySink = undefined;
    up.replyDone = true;
    this.markProgress();
    await this.persist();
    this.emit('progress', { phase: 'reply', bytesDone: bytes, bytesTotal: bytes });
  }

  private async closeSession(): Promise<boolean> {
    this.setPhase('close-session');
    const up = this.up;
    const url = this.packetUrl();
    if (!up.closeUnanswered) {
      up.closeUnanswered = true;
      await this.persist();
    }
    let ack: AckInfo;
    try {
      ack = await this.post(PacketType.CloseSession, url, {
        [WireHeader.SessionId]: up.sessionId!,
        'Content-Name': contentName(up.file),
      });
    } catch (err) {
      this.closeLost = true;
      throw err;
    }
    if (ack.ok) return true;
    if (ack.errorCode === HResult.SessionNotFound) {
      if (this.closeLost || this.resumedCloseUnanswered) {
        // The Ack of an earlier Close-Session was lost: the server committed and forgot the session.
        this.emit('warning', 'the Ack of Close-Session was lost and the server no longer knows the session: assuming it committed the file');
        return true;
      }
      await this.sessionLost(ack, PacketType.CloseSession, url);
      return false;
    }
    this.closeLost = false;
    // Close-Session is resent on 5xx only (spec §3.4).
    throw ackError(ack, PacketType.CloseSession, url, ack.status >= 500 && ack.status !== 501 && ack.status !== 505 ? 'transient' : 'fatal');
  }

  protected override async finish(): Promise<UploadResult> {
    return {
      jobId: this.id,
      file: this.up.file,
      url: publicHref(this.up.url),
      bytes: this.up.fileSize,
      sessionId: this.lastSessionId ?? this.up.sessionId ?? '',
      ...(this.reply ? { reply: this.reply } : {}),
    };
  }

  protected override async cancelRemote(): Promise<void> {
    const sessionId = this.up.sessionId;
    if (this.replySink instanceof FileSink) await this.replySink.discard().catch(() => undefined);
    if (sessionId === undefined) return;
    const url = this.packetUrl();
    // One deadline for every attempt and wait: a host that swallows requests must not hold a cancel
    // (or `bits jobs --prune`, one job after another) for the request idle timeout, three times.
    const seconds = this.timing.cancelTimeoutMs / 1000;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new BitsClientError('BITS_CLIENT_NETWORK', `no answer within ${seconds} s`, { request: PacketType.CancelSession, url: url.href })),
      this.timing.cancelTimeoutMs,
    );
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        let ack: AckInfo | undefined;
        try {
          const res = await this.transport.sendForAck({
            method: BITS_METHOD,
            url,
            headers: { [WireHeader.PacketType]: PacketType.CancelSession, 'Content-Length': '0', [WireHeader.SessionId]: sessionId },
            signal: deadline.signal,
            label: PacketType.CancelSession,
          });
          ack = readAck(res.status, res.headers);
        } catch (err) {
          if (attempt === 3 || deadline.signal.aborted) throw err;
        }
        // Refused: the session lives on, and so must the job, to be cancelled again with credentials.
        if (ack && (ack.status === 401 || ack.status === 403)) throw ackError(ack, PacketType.CancelSession, url, 'fatal');
        // Gone already, or refused for good otherwise (1xx–4xx are not resent, spec §3.5).
        if (ack && (ack.ok || ack.errorCode === HResult.SessionNotFound || ack.status < 500)) return;
        if (attempt < 3) await sleep(Math.min(this.timing.retryDelayMs, 5_000) * attempt, undefined, { signal: deadline.signal }).catch(() => undefined);
        if (deadline.signal.aborted) throw deadline.signal.reason;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  protected override async release(): Promise<void> {
    await this.replySink?.close().catch(() => undefined);
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/**
 * Uploads a file with the BITS Upload Protocol: resumable (journal after every acknowledged
 * fragment), fault tolerant (spec §7.2 retry policy), Host-Id and upload-reply aware.
 *
 * @example
 * ```ts
 * const job = upload({ file: './dump.bin', url: 'https://host/uploads/dump.bin', retryDelayMs: 2000 });
 * job.on('progress', (p) => console.log(p.bytesDone, '/', p.bytesTotal));
 * const result = await job.result; // { bytes, sessionId, reply? }
 * ```
 */
export function upload(options: UploadOptions): UploadJob {
  const url = new URL(options.url);
  const timing = resolveTiming(options);
  const fragmentSize = options.fragmentSize ?? DEFAULT_FRAGMENT_SIZE;
  // 5 KiB is the floor Windows keeps to (spec §7.4); 413 never shrinks fragments below it either.
  if (!Number.isSafeInteger(fragmentSize) || fragmentSize < MIN_FRAGMENT_SIZE) {
    throw new RangeError(`fragmentSize must be an integer >= ${MIN_FRAGMENT_SIZE} (5 KiB)`);
  }
  const now = Date.now();
  const record: UploadRecord = {
    version: 1,
    id: newJobId(),
    type: 'upload',
    state: 'running',
    // Without user information: the password never reaches the journal.
    url: publicHref(url),
    file: resolve(options.file),
    connection: connectionOf(options, timing, url),
    createdAt: now,
    updatedAt: now,
    fragmentSize,
    ...(options.replyFile !== undefined ? { replyFile: resolve(options.replyFile) } : {}),
    fileSize: -1,
    fileMtimeMs: 0,
    offset: 0,
    uploaded: false,
  };
  return new UploadJob(record, jobContext(record.connection, options, new URL(record.url), credentialsOf(options, url)?.password)).start(true);
}
