import { rm, stat } from 'node:fs/promises';
import { newJob } from './context.js';
import type { JobContext } from './context.js';
import { FileSink, PART_SUFFIX } from './download-sink.js';
import { BitsClientError } from './errors.js';
import { Job } from './job.js';
import type { DownloadRecord } from './journal.js';
import type { ClientOptions } from './options.js';
import type { RangedDownload } from './ranged-download.js';
import { ThrottledSink } from './throttle.js';
import { publicHref } from '../protocol/userinfo.js';

/** Options of {@link download}. */
export interface DownloadOptions extends ClientOptions {
  /** What to download (user information in it is used for Basic authentication). */
  url: string | URL;
  /** Where to save it; written as `<file>.bits-part` and renamed when complete. */
  file: string;
}

/** What a completed download resolves with. */
export interface DownloadResult {
  readonly jobId: string;
  readonly url: string;
  readonly file: string;
  readonly bytes: number;
  /** How often the download started over because the remote file changed. */
  readonly restarts: number;
}

/** A BITS-style download job: HEAD, ranged GETs, validation, journal. Created by {@link download}. */
export class DownloadJob extends Job<DownloadResult> {
  private readonly down: DownloadRecord;
  private sink: FileSink | undefined;
  private engine: RangedDownload | undefined;
  private restarts = 0;

  /** @internal use {@link download} or `resumeJob`. */
  constructor(record: DownloadRecord, ctx: JobContext) {
    super(record.id, record, ctx.journal, ctx.transport, ctx.timing, ctx.logger, ctx.throttle);
    this.down = record;
  }

  protected override async prepare(): Promise<void> {
    const st = await stat(this.down.file).catch(() => undefined);
    if (st?.isDirectory()) throw new BitsClientError('BITS_CLIENT_LOCAL_FILE', `${this.down.file} is a directory`);
    this.sink = await FileSink.open(this.down.file, this.down.progress.offset);
    const sink = this.throttle ? new ThrottledSink(this.sink, this.throttle, () => this.signal) : this.sink;
    this.engine = this.rangedDownload(new URL(this.down.progress.url), sink, this.down.progress, {
      phase: 'download',
      durable: true,
      restart: (reason) => {
        this.restarts++;
        this.emit('restart', { reason });
      },
    });
  }

  protected override async step(): Promise<boolean> {
    this.setPhase('download');
    return this.engine!.step();
  }

  protected override async finish(): Promise<DownloadResult> {
    await this.sink!.complete();
    this.sink = undefined;
    return {
      jobId: this.id,
      url: publicHref(this.down.url),
      file: this.down.file,
      bytes: this.down.progress.remote?.size ?? 0,
      restarts: this.restarts,
    };
  }

  protected override async cancelRemote(): Promise<void> {
    await this.sink?.close();
    this.sink = undefined;
    await rm(this.down.file + PART_SUFFIX, { force: true });
  }

  protected override async release(): Promise<void> {
    await this.sink?.close();
  }
}

/**
 * Downloads a URL BITS-style (spec §11): HEAD for size and validators, ranged GETs that resume where
 * the part file stands, a restart when the remote file changes (size, `ETag`, `Last-Modified`), and
 * servers that ignore `Range` handled. Retries and the journal work as for {@link upload}.
 *
 * @example
 * ```ts
 * const job = download({ url: 'https://host/files/big.iso', file: './big.iso' });
 * job.on('progress', (p) => console.log(p.bytesDone, '/', p.bytesTotal));
 * await job.result;
 * ```
 */
export function download(options: DownloadOptions): DownloadJob {
  const { base, context } = newJob(options, options.url, options.file);
  const record: DownloadRecord = { ...base, type: 'download', progress: { url: base.url, offset: 0 } };
  return new DownloadJob(record, context).start(true);
}
