import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { HeadObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { BitsError } from '../../protocol/errors.js';
import { sessionKey } from '../../protocol/session-id.js';
import { DestinationExistsError, PartialWriteError, StoreUnavailableError, UploadMissingError } from '../types.js';
import type {
  ByteState,
  ByteStore,
  DestinationClaims,
  DestinationStore,
  OpenOptions,
  RemoteObjects,
  StoredObject,
  StoredUpload,
  UploadTarget,
  WriteOptions,
  WriteResult,
} from '../types.js';
import { DEFAULT_PART_SIZE, MIN_PART_SIZE, partSizeFor } from './part-layout.js';
import { S3DestinationStore } from './s3-destination-store.js';
import { isNoSuchUpload, isNotFound, isPreconditionFailed, s3Failure } from './s3-errors.js';
import { getObjectStream, S3StoredObject } from './s3-object.js';
import { collectOrphans } from './orphans.js';
import { putStream } from './put-stream.js';
import { parseS3Url, s3Name } from './s3-url.js';
import { SourceReader } from './source-reader.js';
import { fromByteState, memoSize, tailSize, toByteState } from './upload-memo.js';
import type { TailSegment, UploadMemo } from './upload-memo.js';

/** What the store logs (a pino logger fits). */
export interface S3StoreLogger {
  warn(fields: object, message: string): void;
}

/** Options of {@link S3ByteStore}. */
export interface S3ByteStoreOptions {
  /** The client of the S3 service; destinations must use the same one (or the same endpoint). */
  readonly client: S3Client;
  /** The bucket of session objects (tail segments, replies, read-back data). */
  readonly bucket: string;
  /** Session objects go below it (`sessions/`). */
  readonly prefix?: string | undefined;
  /** The part size of new uploads (default 8 MiB, at least 5 MiB). */
  readonly partSize?: number | undefined;
  /**
   * Claims on destination names, so that two commits of one key with overwrites off cannot both
   * succeed. Without them the check before completing is not atomic across nodes (see
   * {@link S3ByteStore.commit}).
   */
  readonly claims?: DestinationClaims | undefined;
  /** Largest reply kept (default: no limit of the store's own; the server caps replies at a vdir's `maxReplySize`). */
  readonly maxReplyBytes?: number | undefined;
  readonly logger?: S3StoreLogger | undefined;
}

/** Metadata naming the session an object came from: a resent commit recognises its own object. */
const SESSION_META = 'bits-session';
const DELETE_BATCH = 1000;
/** Bounds the pages listed when a session's objects are deleted. */
const MAX_LIST_PAGES = 1000;
/** CopyObject's limit; a larger read-back upload cannot be committed (multipart copy is not implemented). */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** Tail segments requested ahead while a part streams them. */
const SEGMENT_PREFETCH = 8;

/** The session's slug in keys: the GUID, lowercase, without braces. */
function slugOf(id: string): string {
  const key = sessionKey(id).toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(key)) throw new Error(`${id} is not a session id`);
  return key;
}

/**
 * Upload bytes in an S3-compatible object store (farm mode).
 *
 * - Without `readBack` a session is a multipart upload created by {@link S3ByteStore.open} at the
 *   destination key itself; nothing appears there before {@link S3ByteStore.commit} completes it.
 * - Parts have a fixed size `P` (chosen at the first write), part `i` holding bytes
 *   `[(i-1)P, iP)`, so a stale node re-uploading a part uploads the same bytes. Bytes not yet
 *   forming a part are tail segments, objects of their own under the session prefix; the write that
 *   fills a part streams the segments and its own bytes into it (with a known length).
 * - The memo of all this ({@link UploadMemo}) is the record's `bytes`; a write never deletes what
 *   its input memo references (it lists it as obsolete for the next write, or for discard).
 * - With `readBack` the multipart upload is at a session key and is completed by the write that
 *   reaches the total, so that it can be read (and presigned); commit copies it to the destination.
 *
 * @example
 * ```ts
 * const client = createS3Client({ endpoint: 'http://127.0.0.1:7480', forcePathStyle: true });
 * const bytes = new S3ByteStore({ client, bucket: 'bits-sessions', prefix: 'sessions/', claims });
 * const destinations = S3DestinationStore.fromUrl(client, 's3://bits-uploads/uploads/');
 * record.bytes = await bytes.open(record.id, { destinations, path: ['a.bin'] });
 * ```
 */
export class S3ByteStore implements ByteStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly partSize: number;
  readonly remote: RemoteObjects;
  readonly #claims: DestinationClaims | undefined;
  readonly #maxReplyBytes: number;
  readonly #logger: S3StoreLogger | undefined;
  /** Where the next pass of {@link S3ByteStore.collectOrphans} goes on. */
  #orphansAfter: string | undefined;

  constructor(options: S3ByteStoreOptions) {
    const { bucket, prefix } = parseS3Url(s3Name(options.bucket, options.prefix ?? ''));
    const partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE) throw new Error(`partSize must be at least ${MIN_PART_SIZE} bytes`);
    this.client = options.client;
    this.bucket = bucket;
    this.prefix = prefix;
    this.partSize = partSize;
    this.#claims = options.claims;
    this.#maxReplyBytes = options.maxReplyBytes ?? Number.POSITIVE_INFINITY;
    this.#logger = options.logger;
    this.remote = {
      request: (upload, expiresIn) => this.#request(upload, expiresIn),
      response: (upload, expiresIn) => this.#response(upload, expiresIn),
      adoptReply: (upload) => this.#adoptReply(upload),
      removeReply: (upload) => this.#removeResponse(upload),
    };
  }

  /** Where a session's own objects are (`sessions/<guid>/`). */
  sessionPrefix(id: string): string {
    return `${this.prefix}${slugOf(id)}/`;
  }

  /** The read-back data object of a session. */
  dataKey(id: string): string {
    return `${this.sessionPrefix(id)}data`;
  }

  /** Where an application PUTs its reply (by-reference notification), until it is adopted. */
  responseKey(id: string): string {
    return `${this.sessionPrefix(id)}response`;
  }

  /** The reply object of an upload-reply session. */
  replyKey(id: string): string {
    return `${this.sessionPrefix(id)}reply`;
  }

  async open(id: string, target: UploadTarget, options: OpenOptions = {}): Promise<ByteState> {
    const destinations = await this.#s3Destination(target.destinations);
    const readBack = options.readBack === true;
    const bucket = readBack ? this.bucket : destinations.bucket;
    const key = readBack ? this.dataKey(id) : destinations.keyOf(target.path);
    const created = await this.#try(this.client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { [SESSION_META]: slugOf(id) } }),
    ));
    if (!created.UploadId) throw new Error(`S3 gave no upload id for ${s3Name(bucket, key)}`);
    return toByteState({ v: 1, bucket, key, uploadId: created.UploadId, readBack, partSize: null, parts: [], tail: [], obsolete: [], sealed: false });
  }

  async write(upload: StoredUpload, offset: number, source: Readable, options: WriteOptions = {}): Promise<WriteResult> {
    const start = this.#memo(upload);
    const size = memoSize(start);
    if (offset !== size) throw new Error(`write at ${offset}, but the upload of ${upload.id} holds ${size} bytes`);
    const reader = new SourceReader(source, options.signal);
    if (start.sealed) {
      if (!(await reader.atEnd())) throw new PartialWriteError(0, new Error('the upload is complete: no bytes may follow'), 'storage');
      return { written: 0 };
    }
    // Whether the upload is still there (not discarded meanwhile). A read-back upload is checked
    // first (a superseded write may have sealed it); otherwise the check runs alongside the write.
    const checking = Promise.all([this.#uploadAlive(start), this.#deleteKeys(start.obsolete)]).then(
      ([alive]) => ({ alive, failure: undefined as unknown }),
      (failure: unknown) => ({ alive: true, failure }),
    );
    if (start.readBack) {
      const { alive, failure } = await checking;
      if (failure !== undefined) throw s3Failure(failure);
      if (!alive) {
        const sealedMeanwhile = await this.#sealedMeanwhile(upload, start, reader, options);
        if (sealedMeanwhile) return sealedMeanwhile;
        throw new UploadMissingError(upload.id);
      }
    }
    let memo: UploadMemo = { ...start, obsolete: [], partSize: start.partSize ?? partSizeFor(this.partSize, options.total) };
    const P = memo.partSize!;
    let written = 0;
    try {
      for (let round = 0; round < 1_000_000; round++) {
        const remaining = options.length !== undefined ? options.length - written : undefined;
        if (remaining === 0) break;
        if (remaining === undefined && (await reader.atEnd())) break;
        const need = P - tailSize(memo);
        const at = offset + written;
        if (remaining !== undefined && remaining < need) {
          memo = { ...memo, tail: [...memo.tail, await this.#putSegment(upload.id, at, reader.take(remaining), remaining)] };
          written += remaining;
          break;
        }
        // Unknown length: at most one part's missing bytes are held, to learn whether they fill it.
        const incoming = remaining === undefined ? await reader.readUpTo(need) : undefined;
        if (incoming && incoming.length < need) {
          memo = { ...memo, tail: [...memo.tail, await this.#putSegment(upload.id, at, Readable.from([incoming]), incoming.length)] };
          written += incoming.length;
          break;
        }
        const etag = await this.#uploadPart(memo, memo.parts.length + 1, memo.tail, incoming ? [incoming] : reader.pieces(need), P);
        memo = { ...memo, parts: [...memo.parts, etag], tail: [], obsolete: [...memo.obsolete, ...memo.tail.map((seg) => seg.key)] };
        written += need;
      }
      if (memo.readBack && options.total !== undefined && memoSize(memo) === options.total) memo = await this.#seal(memo, upload.id);
    } catch (err) {
      const { alive } = await checking;
      const fromSource = reader.failure !== undefined;
      if (!alive || (!fromSource && isNoSuchUpload(err) && written === 0)) {
        await this.#deleteKeys(memo.tail.filter((seg) => !start.tail.includes(seg)).map((seg) => seg.key));
        throw new UploadMissingError(upload.id);
      }
      const cause = fromSource ? reader.failure : s3Failure(err);
      if (!fromSource && written === 0 && cause instanceof StoreUnavailableError) throw cause;
      throw new PartialWriteError(written, cause, fromSource ? 'source' : 'storage', written > 0 ? toByteState(memo) : undefined);
    }
    const { alive, failure } = await checking;
    if (!alive) {
      // Discarded meanwhile: what this write added must not outlive it.
      await this.#deleteKeys(memo.tail.filter((seg) => !start.tail.includes(seg)).map((seg) => seg.key));
      throw new UploadMissingError(upload.id);
    }
    if (failure !== undefined) throw s3Failure(failure);
    return { written, bytes: toByteState(memo) };
  }

  /**
   * Places the upload at `target`. Without read-back: the tail is uploaded as the last part and the
   * multipart upload completed (an upload that never got a byte becomes an empty object). With
   * read-back: the sealed object is copied to the destination (up to 5 GiB, CopyObject's limit)
   * and the session's copy deleted.
   *
   * With overwrites off: when the store has `claims`, the destination name is claimed, checked
   * (HeadObject) and completed under the claim, which makes the policy hold between nodes. Without
   * claims it is checked and then completed with `If-None-Match: *`; services that ignore that
   * header on completion and copy (Ceph RGW 16 does) leave a window between check and completion
   * in which a concurrent commit of the same key may be overwritten.
   *
   * A resent commit of an upload already placed (its multipart upload or session copy is gone and
   * the destination carries this session's metadata and size) succeeds.
   */
  async commit(upload: StoredUpload, target: UploadTarget, options: { overwrite: boolean }): Promise<void> {
    const memo = this.#memo(upload);
    const destinations = await this.#s3Destination(target.destinations);
    const key = destinations.keyOf(target.path);
    const name = s3Name(destinations.bucket, key);
    if (!memo.readBack && (memo.bucket !== destinations.bucket || memo.key !== key)) {
      throw new BitsError('BITS_BAD_PATH', `the upload was started at ${s3Name(memo.bucket, memo.key)}, not at ${name}`);
    }
    const claim = !options.overwrite && this.#claims ? await this.#claims.claim(name) : undefined;
    if (!options.overwrite && this.#claims && !claim) throw new DestinationExistsError(name);
    try {
      if (!options.overwrite) {
        const head = await this.#head(destinations.bucket, key);
        if (head) {
          if (this.#isOurs(head, upload.id, memo) && !(await this.#holdsData(memo))) return;
          throw new DestinationExistsError(name);
        }
      }
      if (memo.readBack) await this.#commitCopy(upload, memo, destinations.bucket, key, options.overwrite);
      else await this.#commitMultipart(upload, memo, options.overwrite);
    } finally {
      await claim?.release().catch((err: unknown) => this.#logger?.warn({ err, name }, 'releasing a destination claim failed'));
    }
  }

  async exists(upload: StoredUpload): Promise<boolean> {
    const memo = fromByteState(upload.bytes);
    if (!memo) return false;
    try {
      return await this.#holdsData(memo);
    } catch (err) {
      throw s3Failure(err);
    }
  }

  openRead(upload: StoredUpload): Readable {
    const memo = fromByteState(upload.bytes);
    if (memo?.sealed) return getObjectStream(this.client, memo.bucket, memo.key);
    if (memo && memoSize(memo) === 0) return Readable.from([]);
    const err = new Error(
      memo?.readBack ? `the upload of ${upload.id} is not complete yet` : `the upload of ${upload.id} is not readable before commit (open it with readBack)`,
    );
    return new Readable({
      read() {
        this.destroy(err);
      },
    });
  }

  async writeReply(upload: StoredUpload, source: Readable): Promise<number> {
    // (one part in memory at a time, whatever the reply's size)
    return this.#try(putStream({ client: this.client, bucket: this.bucket, key: this.replyKey(upload.id), partSize: this.partSize, limit: this.#maxReplyBytes }, source));
  }

  async openReply(upload: StoredUpload): Promise<StoredObject | undefined> {
    return S3StoredObject.open(this.client, this.bucket, this.replyKey(upload.id));
  }

  async discard(upload: StoredUpload): Promise<void> {
    const memo = fromByteState(upload.bytes);
    try {
      if (memo && memo.uploadId !== '' && !memo.sealed) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: memo.bucket, Key: memo.key, UploadId: memo.uploadId }))
          .catch((err: unknown) => {
            if (!isNoSuchUpload(err) && !isNotFound(err)) throw err;
          });
      }
      await this.#deletePrefix(this.sessionPrefix(upload.id));
    } catch (err) {
      throw s3Failure(err);
    }
  }

  async ping(): Promise<void> {
    await this.#try(this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  /**
   * One bounded pass over the session prefixes (from where the last pass on this instance
   * stopped), deleting the old objects of sessions that have no record: see {@link collectOrphans}.
   */
  async collectOrphans(isLive: (id: string) => Promise<boolean>, options: { before: number; limit: number }): Promise<number> {
    try {
      const pass = await collectOrphans({ client: this.client, bucket: this.bucket, prefix: this.prefix, isLive, ...options, after: this.#orphansAfter });
      this.#orphansAfter = pass.next;
      return pass.deleted;
    } catch (err) {
      throw s3Failure(err);
    }
  }

  // ---- commit ----

  async #commitMultipart(upload: StoredUpload, memo: UploadMemo, overwrite: boolean): Promise<void> {
    const name = s3Name(memo.bucket, memo.key);
    try {
      if (memo.parts.length === 0 && memo.tail.length === 0) {
        await this.#abort(memo);
        await this.#putEmpty(memo.bucket, memo.key, upload.id, overwrite);
        return;
      }
      const parts = memo.parts.map((etag, i) => ({ PartNumber: i + 1, ETag: etag }));
      if (memo.tail.length > 0) {
        const n = parts.length + 1;
        parts.push({ PartNumber: n, ETag: await this.#uploadPart(memo, n, memo.tail, [], tailSize(memo)) });
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: memo.bucket,
          Key: memo.key,
          UploadId: memo.uploadId,
          MultipartUpload: { Parts: parts },
          ...(overwrite ? {} : { IfNoneMatch: '*' }),
        }),
      );
    } catch (err) {
      if (isNoSuchUpload(err)) {
        const head = await this.#head(memo.bucket, memo.key);
        if (head && this.#isOurs(head, upload.id, memo)) return;
        throw new UploadMissingError(upload.id);
      }
      if (isPreconditionFailed(err)) throw new DestinationExistsError(name);
      throw s3Failure(err);
    }
  }

  async #commitCopy(upload: StoredUpload, memo: UploadMemo, bucket: string, key: string, overwrite: boolean): Promise<void> {
    const size = memoSize(memo);
    if (!memo.sealed) {
      if (size !== 0) throw new Error(`the upload of ${upload.id} is not complete (${size} bytes)`);
      await this.#abort(memo);
      await this.#putEmpty(bucket, key, upload.id, overwrite);
      return;
    }
    if (size > MAX_COPY_BYTES) throw new Error(`a read-back upload over 5 GiB cannot be committed (${size} bytes)`);
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: key,
          CopySource: `${memo.bucket}/${memo.key.split('/').map(encodeURIComponent).join('/')}`,
          MetadataDirective: 'REPLACE',
          Metadata: { [SESSION_META]: slugOf(upload.id) },
          ...(overwrite ? {} : { IfNoneMatch: '*' }),
        }),
      );
    } catch (err) {
      if (isNotFound(err)) {
        const head = await this.#head(bucket, key);
        if (head && this.#isOurs(head, upload.id, memo)) return;
        throw new UploadMissingError(upload.id);
      }
      if (isPreconditionFailed(err)) throw new DestinationExistsError(s3Name(bucket, key));
      throw s3Failure(err);
    }
    await this.#try(this.client.send(new DeleteObjectsCommand({ Bucket: memo.bucket, Delete: { Objects: [{ Key: memo.key }], Quiet: true } })));
  }

  async #putEmpty(bucket: string, key: string, id: string, overwrite: boolean): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: Buffer.alloc(0),
          ContentLength: 0,
          Metadata: { [SESSION_META]: slugOf(id) },
          ...(overwrite ? {} : { IfNoneMatch: '*' }),
        }),
      );
    } catch (err) {
      if (isPreconditionFailed(err)) throw new DestinationExistsError(s3Name(bucket, key));
      throw s3Failure(err);
    }
  }

  /** Whether a destination object is this upload, placed by an earlier commit. */
  #isOurs(head: HeadObjectCommandOutput, id: string, memo: UploadMemo): boolean {
    return head.Metadata?.[SESSION_META] === slugOf(id) && (head.ContentLength ?? 0) === memoSize(memo);
  }

  // ---- writing ----

  /** A write whose upload is gone because a superseded write sealed it (and its memo was never recorded). */
  async #sealedMeanwhile(upload: StoredUpload, memo: UploadMemo, reader: SourceReader, options: WriteOptions): Promise<WriteResult | undefined> {
    if (!memo.readBack || options.total === undefined) return undefined;
    const head = await this.#head(memo.bucket, memo.key).catch((err: unknown) => {
      throw s3Failure(err);
    });
    if (!head || (head.ContentLength ?? -1) !== options.total || head.Metadata?.[SESSION_META] !== slugOf(upload.id)) return undefined;
    const length = options.length ?? options.total - memoSize(memo);
    let written = 0;
    try {
      for (let i = 0; i < 1_000_000 && written < length; i++) {
        const chunk = await reader.next(length - written);
        if (chunk === null) break;
        written += chunk.length;
      }
    } catch (err) {
      throw new PartialWriteError(0, err, 'source');
    }
    if (memoSize(memo) + written !== options.total) return undefined;
    const parts = memo.partSize === null ? { partSize: partSizeFor(this.partSize, options.total) } : {};
    return { written, bytes: toByteState({ ...memo, ...parts, sealed: true, tail: [{ key: memo.key, size: written }] }) };
  }

  /** A new tail segment holding `length` bytes of `body`. */
  async #putSegment(id: string, offset: number, body: Readable, length: number): Promise<TailSegment> {
    const key = `${this.sessionPrefix(id)}tail/${String(offset).padStart(15, '0')}-${randomBytes(6).toString('hex')}`;
    await this.#sendBody((abortSignal) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: length }), { abortSignal }), body);
    return { key, size: length };
  }

  /** Uploads part `n` from the tail segments followed by `incoming`, `length` bytes in all; returns its ETag. */
  async #uploadPart(memo: UploadMemo, n: number, tail: readonly TailSegment[], incoming: AsyncIterable<Buffer> | Buffer[], length: number): Promise<string> {
    const body = Readable.from(this.#concat(tail, incoming), { objectMode: false });
    const res = await this.#sendBody(
      (abortSignal) =>
        this.client.send(
          new UploadPartCommand({ Bucket: memo.bucket, Key: memo.key, UploadId: memo.uploadId, PartNumber: n, Body: body, ContentLength: length }),
          { abortSignal },
        ),
      body,
    );
    if (!res.ETag) throw new Error(`S3 gave no ETag for part ${n} of ${s3Name(memo.bucket, memo.key)}`);
    return res.ETag;
  }

  async *#concat(tail: readonly TailSegment[], incoming: AsyncIterable<Buffer> | Buffer[]): AsyncGenerator<Buffer> {
    // Segments are requested a few ahead of the one being streamed: each costs a round trip.
    const requests: Promise<Readable>[] = [];
    const request = (i: number): void => {
      const seg = tail[i];
      if (!seg) return;
      const pending = this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: seg.key })).then((res) => res.Body as Readable);
      pending.catch(() => undefined);
      requests[i] = pending;
    };
    for (let i = 0; i < SEGMENT_PREFETCH; i++) request(i);
    try {
      for (const [i, seg] of tail.entries()) {
        const body = await requests[i]!;
        request(i + SEGMENT_PREFETCH);
        let got = 0;
        for await (const chunk of body as AsyncIterable<Buffer>) {
          got += chunk.length;
          yield chunk;
        }
        if (got !== seg.size) throw new Error(`the tail segment ${seg.key} holds ${got} bytes, not ${seg.size}`);
      }
    } finally {
      // Bodies fetched ahead but not read (the part failed) are let go.
      for (const pending of requests.slice()) void pending?.then((body) => body.destroy(), () => undefined);
    }
    yield* incoming;
  }

  /** Completes a read-back upload: the tail becomes the last part. */
  async #seal(memo: UploadMemo, id: string): Promise<UploadMemo> {
    if (memo.parts.length === 0 && memo.tail.length === 0) {
      await this.#abort(memo);
      await this.#try(this.client.send(
        new PutObjectCommand({ Bucket: memo.bucket, Key: memo.key, Body: Buffer.alloc(0), ContentLength: 0, Metadata: { [SESSION_META]: slugOf(id) } }),
      ));
      return { ...memo, sealed: true };
    }
    const parts = memo.parts.map((etag, i) => ({ PartNumber: i + 1, ETag: etag }));
    if (memo.tail.length > 0) {
      const n = parts.length + 1;
      parts.push({ PartNumber: n, ETag: await this.#uploadPart(memo, n, memo.tail, [], tailSize(memo)) });
    }
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: memo.bucket, Key: memo.key, UploadId: memo.uploadId, MultipartUpload: { Parts: parts } }),
    );
    return { ...memo, sealed: true, obsolete: [...memo.obsolete, ...memo.tail.map((seg) => seg.key)] };
  }

  /** Sends a request whose body streams: a failing body aborts the request (the SDK would wait for the bytes). */
  async #sendBody<T>(send: (signal: AbortSignal) => Promise<T>, body: Readable): Promise<T> {
    const abort = new AbortController();
    let bodyError: unknown;
    const onError = (err: unknown): void => {
      bodyError = err;
      abort.abort(err);
    };
    body.once('error', onError);
    try {
      return await send(abort.signal);
    } catch (err) {
      throw bodyError ?? err;
    } finally {
      body.off('error', onError);
    }
  }

  // ---- small requests ----

  /** Awaits an S3 request, transient failures becoming {@link StoreUnavailableError}. */
  async #try<T>(request: Promise<T>): Promise<T> {
    try {
      return await request;
    } catch (err) {
      throw s3Failure(err);
    }
  }

  async #head(bucket: string, key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Failure(err);
    }
  }

  async #abort(memo: UploadMemo): Promise<void> {
    if (memo.uploadId === '') return;
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: memo.bucket, Key: memo.key, UploadId: memo.uploadId })).catch((err: unknown) => {
      if (!isNoSuchUpload(err) && !isNotFound(err)) throw err;
    });
  }

  /** Whether the upload's data is still in the session: its multipart upload, or its sealed object. */
  async #holdsData(memo: UploadMemo): Promise<boolean> {
    if (memo.sealed) return (await this.#head(memo.bucket, memo.key)) !== undefined;
    return this.#uploadAlive(memo);
  }

  async #uploadAlive(memo: UploadMemo): Promise<boolean> {
    try {
      await this.client.send(new ListPartsCommand({ Bucket: memo.bucket, Key: memo.key, UploadId: memo.uploadId, MaxParts: 1 }));
      return true;
    } catch (err) {
      if (isNoSuchUpload(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  /** Deletes objects, best effort (a failure is logged; discard deletes whatever is left). */
  async #deleteKeys(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key }));
      await this.client
        .send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }))
        .catch((err: unknown) => this.#logger?.warn({ err, keys: batch.length }, 'deleting obsolete tail segments failed'));
    }
  }

  async #deletePrefix(prefix: string): Promise<void> {
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const listed = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: DELETE_BATCH }));
      const objects = (listed.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (objects.length > 0) await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objects, Quiet: true } }));
      if (!listed.IsTruncated || objects.length === 0) return;
    }
  }

  #memo(upload: StoredUpload): UploadMemo {
    const memo = fromByteState(upload.bytes);
    if (!memo) throw new UploadMissingError(upload.id);
    return memo;
  }

  async #s3Destination(destinations: DestinationStore): Promise<S3DestinationStore> {
    if (!(destinations instanceof S3DestinationStore)) {
      throw new Error(`S3ByteStore commits only to s3:// destinations, and ${destinations.name} is not one`);
    }
    if (destinations.client !== this.client) {
      const [a, b] = await Promise.all([endpointOf(destinations.client), endpointOf(this.client)]);
      if (a !== b) throw new Error(`the destination ${destinations.name} is on another S3 service (${a}) than the session store (${b})`);
    }
    return destinations;
  }

  // ---- remote capability ----

  async #request(upload: StoredUpload, expiresIn: number): Promise<{ name: string; url: string }> {
    const memo = this.#memo(upload);
    if (!memo.readBack) throw new Error(`the upload of ${upload.id} is not readable before commit (open it with readBack)`);
    if (!memo.sealed) {
      if (memoSize(memo) !== 0) throw new Error(`the upload of ${upload.id} is not complete yet`);
      // An upload without bytes reads as an empty object.
      await this.#try(this.client.send(new PutObjectCommand({ Bucket: memo.bucket, Key: memo.key, Body: Buffer.alloc(0), ContentLength: 0 })));
    }
    const url = await getSignedUrl(this.client, new GetObjectCommand({ Bucket: memo.bucket, Key: memo.key }), { expiresIn });
    return { name: s3Name(memo.bucket, memo.key), url };
  }

  async #response(upload: StoredUpload, expiresIn: number): Promise<{ name: string; url: string }> {
    const key = this.responseKey(upload.id);
    const url = await getSignedUrl(this.client, new PutObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn });
    return { name: s3Name(this.bucket, key), url };
  }

  async #adoptReply(upload: StoredUpload): Promise<number> {
    const from = this.responseKey(upload.id);
    const to = this.replyKey(upload.id);
    const head = await this.#head(this.bucket, from);
    if (!head) {
      await this.#try(this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: to, Body: Buffer.alloc(0), ContentLength: 0 })));
      return 0;
    }
    await this.#try(
      this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`, CopySourceIfMatch: head.ETag }),
      ),
    );
    await this.#removeResponse(upload);
    return head.ContentLength ?? 0;
  }

  async #removeResponse(upload: StoredUpload): Promise<void> {
    await this.#try(this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: [{ Key: this.responseKey(upload.id) }], Quiet: true } })));
  }
}

/** A client's endpoint as text, to tell whether two clients reach the same service. */
async function endpointOf(client: S3Client): Promise<string> {
  const endpoint = await (client.config.endpoint as (() => Promise<unknown>) | undefined)?.();
  if (!endpoint) return `aws:${await client.config.region()}`;
  const e = endpoint as { protocol?: string; hostname?: string; port?: number; path?: string; url?: URL };
  if (e.url) return e.url.href;
  return `${e.protocol ?? ''}//${e.hostname ?? ''}:${e.port ?? ''}${e.path ?? ''}`;
}
