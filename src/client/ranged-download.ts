import type { Logger } from 'pino';
import { BitsClientError } from './errors.js';
import type { DownloadSink } from './download-sink.js';
import type { DownloadProgress, RemoteVersion } from './journal.js';
import { serverError } from './server-error.js';
import { discardBody, networkError } from './transport.js';
import type { ClientResponse, Transport } from './transport.js';
import { formatRangeRequest, parseResponseRange } from '../protocol/content-range.js';
import { parseDecimal } from '../protocol/decimal.js';

/** Bytes between two checkpoints (sync + journal) of a download. */
const CHECKPOINT_BYTES = 4 * 1024 * 1024;

/** Callbacks of a {@link RangedDownload}. */
export interface RangedDownloadHooks {
  /** The signal of the next request (the job's: stop, cancel, no-progress limit). */
  signal(): AbortSignal;
  /** Bytes moved during a request (a sign of life for the no-progress limit, not progress). */
  readonly activity: () => void;
  readonly logger: Logger;
  progress(bytesDone: number, bytesTotal: number | undefined): void;
  /** The bytes held are durable: record `state`. */
  checkpoint(state: DownloadProgress): Promise<void>;
  restart(reason: string): void;
  warning(message: string): void;
}

function versionOf(res: ClientResponse, size: number | undefined): RemoteVersion | undefined {
  if (size === undefined) return undefined;
  const etag = res.headers['etag'];
  const lastModified = res.headers['last-modified'];
  return {
    size,
    ...(etag ? { etag } : {}),
    ...(lastModified ? { lastModified } : {}),
  };
}

/**
 * Whether two versions of a remote file differ (spec §11: size and `Last-Modified` are the
 * consistency keys; the `ETag` too when both sides have one).
 *
 * @example
 * ```ts
 * versionChanged({ size: 10, lastModified: 'a' }, { size: 10, lastModified: 'b' }); // true
 * ```
 */
function versionChanged(a: RemoteVersion, b: RemoteVersion): boolean {
  if (a.size !== b.size) return true;
  if (a.etag !== undefined && b.etag !== undefined && a.etag !== b.etag) return true;
  if (a.lastModified !== undefined && b.lastModified !== undefined && a.lastModified !== b.lastModified) return true;
  return false;
}

function contentLength(res: ClientResponse): number | undefined {
  return parseDecimal(res.headers['content-length']?.trim());
}

/**
 * A BITS-style resumable download of one URL into a sink (spec §11): a HEAD for the size and
 * validators, then GETs with `Range: bytes=<offset>-<size-1>` and `If-Range`; a remote file whose size,
 * `ETag` or `Last-Modified` changed is downloaded again from the start; a server that ignores
 * `Range` (200 to a ranged GET) is handled by skipping the bytes already held. Each `step()` makes one
 * request; errors are thrown for the job's retry loop.
 *
 * @example
 * ```ts
 * const d = new RangedDownload(transport, url, sink, { url: url.href, offset: 0 }, hooks);
 * while (!(await d.step())) {}
 * ```
 */
export class RangedDownload {
  private headDone = false;
  private sinceCheckpoint = 0;

  constructor(
    private readonly transport: Transport,
    private readonly url: URL,
    private readonly sink: DownloadSink,
    readonly state: DownloadProgress,
    private readonly hooks: RangedDownloadHooks,
  ) {
    state.offset = sink.offset;
  }

  /** Whether every byte is held. */
  get complete(): boolean {
    return this.state.remote !== undefined && this.sink.offset === this.state.remote.size;
  }

  /** One request. Resolves true when the download is complete. */
  async step(): Promise<boolean> {
    if (!this.headDone) {
      await this.head();
      this.headDone = true;
      if (this.complete) return true;
    }
    if (this.complete) return true;
    await this.get();
    return this.complete;
  }

  private checkLimit(size: number): void {
    const limit = this.sink.limit;
    if (limit !== undefined && size > limit) {
      throw new BitsClientError('BITS_CLIENT_REPLY_TOO_LARGE', `${this.url.href} has ${size} bytes, more than ${limit} kept in memory`, {
        url: this.url.href,
      });
    }
  }

  private async restart(reason: string, remote: RemoteVersion | undefined): Promise<void> {
    this.hooks.logger.info({ url: this.url.href, reason }, 'download restarts');
    this.hooks.restart(reason);
    await this.sink.reset();
    this.state.offset = 0;
    this.state.remote = remote;
    this.state.rangeSupported = undefined;
    await this.hooks.checkpoint(this.state);
  }

  private async head(): Promise<void> {
    const res = await this.transport.send({
      method: 'HEAD',
      url: this.url,
      headers: { 'Accept-Encoding': 'identity' },
      signal: this.hooks.signal(),
      onActivity: this.hooks.activity,
      label: 'HEAD',
    });
    await discardBody(res, 'HEAD', this.url, this.hooks.activity);
    if (res.status === 405 || res.status === 501) return; // no HEAD here: the GET tells
    if (res.status < 200 || res.status > 299) throw serverError({ status: res.status }, 'HEAD', this.url);
    const version = versionOf(res, contentLength(res));
    if (version === undefined) return;
    this.checkLimit(version.size);
    const known = this.state.remote;
    if (known !== undefined && versionChanged(known, version)) {
      await this.restart('the remote file changed', version);
    } else if (known === undefined) {
      this.state.remote = version;
      if (this.sink.offset > 0) await this.restart('no record of the remote version', version);
    }
    if (this.sink.offset > version.size) await this.restart('the remote file shrank', version);
    this.hooks.progress(this.sink.offset, version.size);
  }

  private async get(): Promise<void> {
    const offset = this.sink.offset;
    const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
    const ranged = offset > 0 && this.state.rangeSupported !== false;
    if (ranged) {
      headers['Range'] = formatRangeRequest(offset, this.state.remote?.size);
      const etag = this.state.remote?.etag;
      const validator = etag !== undefined && !etag.startsWith('W/') ? etag : this.state.remote?.lastModified;
      if (validator !== undefined) headers['If-Range'] = validator;
    }
    const res = await this.transport.send({ method: 'GET', url: this.url, headers, signal: this.hooks.signal(), onActivity: this.hooks.activity, label: 'GET' });
    if (res.status === 206) {
      const range = parseResponseRange(res.headers['content-range']);
      const total = range?.total;
      if (!ranged || range?.first !== offset || total === undefined) {
        await discardBody(res, 'GET', this.url, this.hooks.activity);
        throw new BitsClientError('BITS_CLIENT_INVALID_RESPONSE', `206 with Content-Range "${res.headers['content-range']}" for ${headers['Range']}`, {
          status: 206,
          request: 'GET',
          url: this.url.href,
        });
      }
      const version = versionOf(res, total)!;
      if (this.state.remote !== undefined && versionChanged(this.state.remote, version)) {
        res.body.destroy();
        await this.restart('the remote file changed', version);
        return;
      }
      this.state.rangeSupported = true;
      await this.receive(res, 0);
    } else if (res.status === 200) {
      const size = contentLength(res) ?? this.state.remote?.size;
      if (size === undefined) {
        res.body.destroy();
        throw new BitsClientError('BITS_CLIENT_MISSING_FILE_SIZE', `${this.url.href} has no Content-Length`, {
          status: 200,
          request: 'GET',
          url: this.url.href,
        });
      }
      this.checkLimit(size);
      const version = versionOf(res, size)!;
      let skip = 0;
      if (this.state.remote === undefined || versionChanged(this.state.remote, version)) {
        if (offset > 0) await this.restart('the remote file changed', version);
        this.state.remote = version;
      } else if (offset > 0) {
        // The server ignored Range (or If-Range did not match an unchanged file): skip what we have.
        if (this.state.rangeSupported !== false) this.hooks.warning(`${this.url.host} ignores Range: skipping ${offset} bytes already held`);
        this.state.rangeSupported = false;
        skip = offset;
      }
      await this.receive(res, skip);
    } else if (res.status === 416) {
      await discardBody(res, 'GET', this.url, this.hooks.activity);
      this.headDone = false;
      await this.restart('the server cannot serve the range held (the remote file shrank?)', undefined);
    } else {
      await discardBody(res, 'GET', this.url, this.hooks.activity);
      throw serverError({ status: res.status }, 'GET', this.url);
    }
  }

  private async receive(res: ClientResponse, skip: number): Promise<void> {
    const total = this.state.remote!.size;
    let toSkip = skip;
    try {
      for await (const raw of res.body as AsyncIterable<Buffer>) {
        // Bytes skipped are no progress, but they do move: a long skip must not be cut by the limit.
        this.hooks.activity();
        let chunk = raw;
        if (toSkip > 0) {
          const n = Math.min(toSkip, chunk.length);
          toSkip -= n;
          chunk = chunk.subarray(n);
          if (chunk.length === 0) continue;
        }
        if (this.sink.offset + chunk.length > total) {
          res.body.destroy();
          throw new BitsClientError('BITS_CLIENT_INVALID_RESPONSE', `${this.url.href} sent more than its ${total} bytes`, {
            status: res.status,
            request: 'GET',
            url: this.url.href,
          });
        }
        await this.sink.write(chunk);
        this.sinceCheckpoint += chunk.length;
        this.hooks.progress(this.sink.offset, total);
        if (this.sinceCheckpoint >= CHECKPOINT_BYTES) await this.checkpoint();
      }
    } catch (err) {
      await this.checkpoint().catch(() => undefined);
      if (err instanceof BitsClientError) throw err;
      throw networkError(err, 'GET', this.url);
    }
    await this.checkpoint();
    if (this.sink.offset < total) {
      throw new BitsClientError('BITS_CLIENT_NETWORK', `${this.url.href}: the body ended at ${this.sink.offset} of ${total} bytes`, {
        request: 'GET',
        url: this.url.href,
      });
    }
  }

  private async checkpoint(): Promise<void> {
    await this.sink.checkpoint();
    this.sinceCheckpoint = 0;
    this.state.offset = this.sink.offset;
    await this.hooks.checkpoint(this.state);
  }
}
