import { resolve } from 'node:path';
import type { AckInfo } from '../protocol/ack-info.js';
import { BITS_PROTOCOL_GUID, PacketType } from '../protocol/constants.js';
import { fragmentRange } from '../protocol/content-range.js';
import { HResult } from '../protocol/hresult.js';
import type { Packet } from '../protocol/packet.js';
import { publicHref } from '../protocol/userinfo.js';
import { newJob } from './context.js';
import type { JobContext } from './context.js';
import { cancelSession } from './cancel-session.js';
import { BitsClientError } from './errors.js';
import { HostIdRoute } from './host-id-route.js';
import { Job } from './job.js';
import type { UploadRecord } from './journal.js';
import { grow, shrink } from './fragment-size.js';
import { fragmentSizing, MIN_FRAGMENT_SIZE } from './options.js';
import type { ClientOptions } from './options.js';
import { ReplyPhase } from './reply-phase.js';
import { UploadSource } from './upload-source.js';
import type { ReceivedReply } from './reply-phase.js';
import { serverError } from './server-error.js';
import { sendPacket } from './send-packet.js';
import type { BodySource } from './transport.js';

/** Options of {@link upload}. */
export interface UploadOptions extends ClientOptions {
  /** The local file to upload. */
  file: string;
  /** The destination URL (user information in it is used for Basic authentication; the journal keeps only the user name). */
  url: string | URL;
  /**
   * Bytes per Fragment, at least 5 KiB; halved on 413 (never below 5 KiB). Alone, a fixed size;
   * with `maxFragmentSize`, the size of the first Fragment. Default: start at 8 MiB and grow.
   */
  fragmentSize?: number | undefined;
  /**
   * Fragments grow up to this many bytes, doubling after each fast Ack (within a second) as Windows
   * does; a 413 halves them and caps their growth there. Default 28 MiB when `fragmentSize` is not
   * given; with `fragmentSize` alone fragments do not grow.
   */
  maxFragmentSize?: number | undefined;
  /** Where an upload-reply's reply is saved; without it the reply is returned in memory (≤ 1 MiB). */
  replyFile?: string | undefined;
  /**
   * Stop once every byte (and the reply) is in, before Close-Session: the result then has
   * `held: true`, the job stays in the journal, and Close-Session (the server's commit) is sent
   * when it is resumed after its record's `holdClose` is cleared. Needs a journal.
   */
  holdClose?: boolean | undefined;
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
  /** Everything was sent and Close-Session was not (`holdClose`): the server has not committed yet. */
  readonly held?: true;
}

/**
 * An upload job (spec §7.1): Ping, Create-Session, Fragments, the reply download of an upload-reply
 * job, Close-Session. Created by {@link upload} or resumed from the journal. Where packets go is the
 * {@link HostIdRoute}'s business, the reply download the {@link ReplyPhase}'s.
 */
export class UploadJob extends Job<UploadResult> {
  private readonly up: UploadRecord;
  private readonly route: HostIdRoute;
  private source: UploadSource | undefined;
  private needPing = true;
  private lostWithoutProgress = false;
  private closeLost = false;
  private resumedCloseUnanswered: boolean;
  private maxAcked: number;
  private replyPhase: ReplyPhase | undefined;
  private reply: ReceivedReply | undefined;
  private lastSessionId: string | undefined;
  private held = false;

  /** @internal use {@link upload} or `resumeJob`. */
  constructor(record: UploadRecord, ctx: JobContext) {
    super(record.id, record, ctx.journal, ctx.transport, ctx.timing, ctx.logger, ctx.throttle);
    this.up = record;
    this.maxAcked = record.offset;
    this.resumedCloseUnanswered = record.closeUnanswered === true;
    this.route = new HostIdRoute(new URL(record.url), record, (url) => this.transport.trust(url));
  }

  protected override async prepare(): Promise<void> {
    this.source = await UploadSource.open(this.up, this.throttle);
  }

  protected override beforeStep(): void {
    const hostId = this.route.fallbackDue(Date.now());
    if (hostId === undefined) return;
    this.logger.warn({ job: this.id, hostId }, 'Host-Id host unreachable past the fallback timeout; back to the original URL');
    this.needPing = true;
    this.emit('fallback', { hostId, url: publicHref(this.up.url) });
  }

  protected override onTransient(error: BitsClientError): void {
    this.route.failed(error.url, Date.now());
    if (error.request !== 'GET' && error.request !== 'HEAD') this.needPing = true;
  }

  protected override maxWaitMs(): number {
    return this.route.waitCapMs(Date.now());
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
    if (this.up.holdClose) {
      this.held = true;
      return true;
    }
    return this.closeSession();
  }

  /** Sends a packet (built by `formatPacket`, as every packet of this client is) and reads its Ack. */
  private async post(packet: Packet, url: URL, o: { body?: BodySource; signal?: AbortSignal } = {}): Promise<AckInfo> {
    const ack = await sendPacket(this.transport, packet, url, { ...o, signal: o.signal ?? this.signal, onActivity: this.markActivity });
    if (ack.ok) this.route.succeeded(url);
    this.logger.debug({ job: this.id, packet: packet.type, url: url.href, status: ack.status, error: ack.hresult, received: ack.receivedContentRange }, 'ack');
    return ack;
  }

  private async ping(): Promise<void> {
    this.setPhase('ping');
    const url = this.route.url();
    const ack = await this.post({ type: PacketType.Ping, sessionId: undefined }, url);
    if (ack.ok) return;
    // Ping is optional (spec §3.1): a server that does not know it is not an error.
    if (ack.status === 400 || ack.status === 404 || ack.status === 405) {
      this.logger.info({ job: this.id, status: ack.status }, 'server does not answer Ping; going on without it');
      return;
    }
    throw serverError(ack, PacketType.Ping, url);
  }

  private async createSession(): Promise<void> {
    this.setPhase('create-session');
    const url = this.route.origin;
    const ack = await this.post({ type: PacketType.CreateSession, protocol: BITS_PROTOCOL_GUID, contentName: this.source!.contentName }, url);
    if (!ack.ok) throw serverError(ack, PacketType.CreateSession, url);
    const invalid = (code: 'BITS_CLIENT_INVALID_RESPONSE' | 'BITS_CLIENT_PROTOCOL_MISMATCH', message: string): BitsClientError =>
      new BitsClientError(code, message, { status: ack.status, request: PacketType.CreateSession, url: url.href });
    if (ack.sessionId === undefined) throw invalid('BITS_CLIENT_INVALID_RESPONSE', 'Create-Session Ack without BITS-Session-Id');
    if (ack.protocol !== undefined && ack.protocol.toLowerCase() !== BITS_PROTOCOL_GUID) {
      throw invalid('BITS_CLIENT_PROTOCOL_MISMATCH', `the server chose protocol ${ack.protocol}`);
    }
    const up = this.up;
    this.startOver(ack.sessionId);
    this.lastSessionId = ack.sessionId;
    this.resumedCloseUnanswered = false;
    this.closeLost = false;
    const route = this.route.adopt(ack, url);
    if (route.kind === 'adopted') this.needPing = true;
    if (route.kind === 'ignored') this.emit('warning', `ignoring BITS-Host-Id "${route.hostId}": not a host name`);
    await this.persist();
    this.logger.info({ job: this.id, session: ack.sessionId, hostId: up.hostId }, 'session created');
    this.emit('session', { sessionId: ack.sessionId, url: publicHref(up.url) });
    if (route.kind === 'adopted') this.emit('host-id', { hostId: route.hostId, url: route.url.href });
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
    if (again) throw serverError(ack, request, url, 'transient');
  }

  private async fragment(): Promise<void> {
    const up = this.up;
    await this.source!.checkUnchanged();
    if (up.fileSize === 0) {
      // D8: an empty file has no Fragment. Create-Session then Close-Session is the form every server
      // in the wild takes (transfervm, bits4j and python-onedrive send it); `bytes */0` is refused or
      // crashes them.
      await this.acknowledged(0, undefined, 0);
      return;
    }
    const offset = up.offset;
    const length = Math.min(up.fragmentSize, up.fileSize - offset);
    const url = this.route.url();
    const packet = { type: PacketType.Fragment, sessionId: up.sessionId!, contentName: this.source!.contentName, range: fragmentRange(offset, length, up.fileSize) } as const;
    const sent = performance.now();
    const ack = await this.post(packet, url, { body: this.source!.body(offset, length, this.signal) });
    if (ack.ok || ack.status === 416) {
      const received = ack.receivedContentRange ?? (ack.ok ? offset + length : undefined);
      if (received === undefined || received > up.fileSize) {
        const message = `Fragment Ack ${ack.status} with BITS-Received-Content-Range ${received ?? 'missing'} for a ${up.fileSize}-byte file`;
        throw new BitsClientError('BITS_CLIENT_INVALID_RESPONSE', message, { status: ack.status, request: PacketType.Fragment, url: url.href });
      }
      const ms = performance.now() - sent;
      if (ack.ok) this.emit('fragment', { bytes: length, ms });
      if (ack.ok && grow(up, length, ms)) this.logger.debug({ job: this.id, fragmentSize: up.fragmentSize }, 'fast Ack: larger fragments');
      await this.acknowledged(received, ack.ok ? ack.replyUrl : undefined, offset + length);
      return;
    }
    if (ack.status === 413) {
      const smaller = shrink(up, length);
      if (smaller === undefined) {
        const message = `the server refuses fragments of ${length} bytes (413) and ${MIN_FRAGMENT_SIZE} is the smallest this client sends`;
        throw new BitsClientError('BITS_CLIENT_FRAGMENT_TOO_LARGE', message, { status: 413, hresult: ack.hresult, context: ack.errorContext, request: PacketType.Fragment, url: url.href });
      }
      this.logger.info({ job: this.id, fragmentSize: smaller }, '413: smaller fragments');
      this.emit('warning', `the server refused a ${length}-byte fragment (413); now sending ${smaller} bytes`);
      await this.persist();
      return;
    }
    if (ack.hresult === HResult.SessionNotFound) {
      await this.sessionLost(ack, PacketType.Fragment, url);
      return;
    }
    throw serverError(ack, PacketType.Fragment, url);
  }

  /** Resyncs to the server's next expected offset (spec §6.2 client reaction), forwards or backwards. */
  private async acknowledged(received: number, replyUrl: string | undefined, expected: number): Promise<void> {
    const up = this.up;
    if (received !== expected) this.logger.info({ job: this.id, expected, received }, 'resync to BITS-Received-Content-Range');
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
    // The offset is a hint on resume (the server's answer to the next Fragment is the truth), so it
    // is not worth an fsync per fragment; the end of the upload (and its reply URL) is.
    await this.persist({ durable: up.uploaded });
    this.emit('progress', { phase: 'upload', bytesDone: received, bytesTotal: up.fileSize });
  }

  private async downloadReply(): Promise<void> {
    const up = this.up;
    if (!this.replyPhase) {
      this.setPhase('reply');
      this.replyPhase = new ReplyPhase(up, this.route.origin, (url, sink, state) =>
        this.rangedDownload(url, sink, state, {
          phase: 'reply',
          // A reply kept in memory is not resumable: only a reply file's progress is journaled.
          durable: up.replyFile !== undefined,
          restart: (reason) => this.emit('restart', { reason: `reply: ${reason}` }),
        }),
      );
      this.logger.info({ job: this.id, replyUrl: this.replyPhase.url().href }, 'downloading the reply');
    }
    const reply = await this.replyPhase.step();
    if (!reply) return;
    this.reply = reply;
    up.replyDone = true;
    this.markProgress();
    await this.persist();
    this.emit('progress', { phase: 'reply', bytesDone: reply.bytes, bytesTotal: reply.bytes });
  }

  private async closeSession(): Promise<boolean> {
    this.setPhase('close-session');
    const up = this.up;
    const url = this.route.url();
    if (!up.closeUnanswered) {
      up.closeUnanswered = true;
      await this.persist();
    }
    let ack: AckInfo;
    try {
      ack = await this.post({ type: PacketType.CloseSession, sessionId: up.sessionId!, contentName: this.source!.contentName }, url);
    } catch (err) {
      this.closeLost = true;
      throw err;
    }
    if (ack.ok) return true;
    if (ack.hresult === HResult.SessionNotFound) {
      if (this.closeLost || this.resumedCloseUnanswered) {
        // The Ack of an earlier Close-Session was lost: the server committed and forgot the session.
        this.emit('warning', 'the Ack of Close-Session was lost and the server no longer knows the session: assuming it committed the file');
        return true;
      }
      await this.sessionLost(ack, PacketType.CloseSession, url);
      return false;
    }
    this.closeLost = false;
    throw serverError(ack, PacketType.CloseSession, url);
  }

  protected override holdsRecord(): boolean {
    return this.held;
  }

  protected override async finish(): Promise<UploadResult> {
    return {
      jobId: this.id,
      file: this.up.file,
      url: publicHref(this.up.url),
      bytes: this.up.fileSize,
      sessionId: this.lastSessionId ?? this.up.sessionId ?? '',
      ...(this.reply ? { reply: this.reply } : {}),
      ...(this.held ? { held: true as const } : {}),
    };
  }

  protected override async cancelRemote(): Promise<void> {
    await this.replyPhase?.discard();
    const sessionId = this.up.sessionId;
    if (sessionId === undefined) return;
    const url = this.route.url();
    await cancelSession((signal) => this.post({ type: PacketType.CancelSession, sessionId }, url, { signal }), url, this.timing);
  }

  protected override async release(): Promise<void> {
    await this.replyPhase?.close();
    const source = this.source;
    this.source = undefined;
    await source?.close();
  }
}

/**
 * Uploads a file with the BITS Upload Protocol: resumable (journal after every acknowledged
 * fragment), fragments that grow while Acks are fast (unless a fixed `fragmentSize` is given), fault tolerant (spec §7.2 retry policy), Host-Id and upload-reply aware.
 *
 * @example
 * ```ts
 * const job = upload({ file: './dump.bin', url: 'https://host/uploads/dump.bin', retryDelayMs: 2000 });
 * job.on('progress', (p) => console.log(p.bytesDone, '/', p.bytesTotal));
 * const result = await job.result; // { bytes, sessionId, reply? }
 * ```
 */
export function upload(options: UploadOptions): UploadJob {
  const { fragmentSize, maxFragmentSize } = fragmentSizing(options);
  if (options.holdClose && options.stateDir === false) throw new TypeError('holdClose needs a journal (stateDir)');
  const { base, context } = newJob(options, options.url, options.file);
  const record: UploadRecord = {
    ...base,
    type: 'upload',
    fragmentSize,
    ...(maxFragmentSize !== undefined ? { maxFragmentSize } : {}),
    ...(options.replyFile !== undefined ? { replyFile: resolve(options.replyFile) } : {}),
    ...(options.holdClose ? { holdClose: true } : {}),
    fileSize: -1,
    fileMtimeMs: 0,
    offset: 0,
    uploaded: false,
  };
  return new UploadJob(record, context).start(true);
}
