import { resolveReplyUrl } from '../protocol/reply-url.js';
import { FileSink, MemorySink } from './download-sink.js';
import type { DownloadSink } from './download-sink.js';
import type { DownloadProgress, UploadRecord } from './journal.js';
import { MAX_MEMORY_REPLY } from './options.js';
import type { RangedDownload } from './ranged-download.js';

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

/** Starts the download of a reply: the job's {@link RangedDownload} wiring (`Job.rangedDownload`). */
export type StartDownload = (url: URL, sink: DownloadSink, state: DownloadProgress) => RangedDownload;

/**
 * The reply download of an upload-reply job (spec §9.4), after the last Fragment's Ack named a
 * `BITS-Reply-URL` and before Close-Session: into `replyFile` (resumable, its progress journaled in
 * `record.reply`), or into memory (at most 1 MiB, fetched again from the start after a restart).
 *
 * @example
 * ```ts
 * const phase = new ReplyPhase(record, uploadUrl, (url, sink, state) => job.rangedDownload(url, sink, state));
 * let reply; while (!(reply = await phase.step())) {}
 * ```
 */
export class ReplyPhase {
  private download: RangedDownload | undefined;
  private sink: DownloadSink | undefined;

  /**
   * @param record the upload's journal record (`replyUrl` set, `reply` and `replyFile` read and kept)
   * @param uploadUrl the job's upload URL, which a relative reply URL is resolved against
   */
  constructor(
    private readonly record: UploadRecord,
    private readonly uploadUrl: URL,
    private readonly start: StartDownload,
  ) {}

  /** Whether the download has begun (its sink is open). */
  get started(): boolean {
    return this.download !== undefined;
  }

  /** The resolved reply URL. */
  url(): URL {
    return resolveReplyUrl(this.record.replyUrl!, this.uploadUrl);
  }

  /** One request. Resolves with the reply once it is complete, `undefined` until then. */
  async step(): Promise<ReceivedReply | undefined> {
    const download = this.download ?? (await this.open());
    if (!(await download.step())) return undefined;
    const up = this.record;
    const data = await this.sink!.complete();
    this.sink = undefined;
    const bytes = download.state.remote?.size ?? data?.length ?? 0;
    return {
      url: download.state.url,
      bytes,
      ...(up.replyFile !== undefined ? { file: up.replyFile } : {}),
      ...(data !== undefined ? { data } : {}),
    };
  }

  private async open(): Promise<RangedDownload> {
    const up = this.record;
    const url = this.url();
    let state: DownloadProgress = up.reply?.url === url.href ? up.reply : { url: url.href, offset: 0 };
    if (up.replyFile !== undefined) {
      this.sink = await FileSink.open(up.replyFile, state.offset);
    } else {
      // Nothing of a reply in memory survives the process: start again, keeping the version seen.
      this.sink = new MemorySink(MAX_MEMORY_REPLY);
      state = { url: url.href, offset: 0, ...(state.remote ? { remote: state.remote } : {}) };
    }
    up.reply = state;
    this.download = this.start(url, this.sink, state);
    return this.download;
  }

  /** Deletes a reply file's part (the job is cancelled). */
  async discard(): Promise<void> {
    if (this.sink instanceof FileSink) await this.sink.discard().catch(() => undefined);
  }

  /** Closes the sink (the job ends). */
  async close(): Promise<void> {
    await this.sink?.close().catch(() => undefined);
  }
}
