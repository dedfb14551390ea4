import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { PassThrough, Readable } from 'node:stream';
import type { StoredObject } from '../types.js';
import { isNotFound, s3Failure } from './s3-errors.js';

/**
 * Streams an object's bytes (a range of them, of one version when `etag` is given) into the
 * returned stream, which is handed out at once and fails if the request fails.
 *
 * @example
 * ```ts
 * getObjectStream(client, 'bits-uploads', 'a.bin', { range: 'bytes=0-99' }).pipe(res);
 * ```
 */
export function getObjectStream(client: S3Client, bucket: string, key: string, options: { range?: string; etag?: string } = {}): Readable {
  const out = new PassThrough();
  const abort = new AbortController();
  out.once('close', () => abort.abort());
  client
    .send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        ...(options.range !== undefined ? { Range: options.range } : {}),
        ...(options.etag !== undefined ? { IfMatch: options.etag } : {}),
      }),
      { abortSignal: abort.signal },
    )
    .then(
      (res) => {
        const body = res.Body as Readable | undefined;
        if (!body) {
          out.end();
          return;
        }
        body.once('error', (err) => out.destroy(s3Failure(err) as Error));
        body.pipe(out);
      },
      (err: unknown) => out.destroy(s3Failure(err) as Error),
    );
  return out;
}

/**
 * An S3 object opened for ranged reads: its size, ETag and date from HeadObject; every read is a
 * ranged GetObject made with `If-Match` on that ETag, so a read of an object replaced meanwhile
 * fails (412) rather than mixing versions.
 *
 * @example
 * ```ts
 * const object = await S3StoredObject.open(client, 'bits-uploads', 'uploads/a.bin');
 * object?.read(0, 99).pipe(res);
 * ```
 */
export class S3StoredObject implements StoredObject {
  private constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    readonly key: string,
    readonly size: number,
    readonly etag: string,
    readonly modified: Date,
  ) {}

  /**
   * The object at `key`, or `undefined` when there is none.
   *
   * @example
   * ```ts
   * const object = await S3StoredObject.open(client, bucket, key);
   * ```
   */
  static async open(client: S3Client, bucket: string, key: string): Promise<S3StoredObject | undefined> {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return new S3StoredObject(client, bucket, key, head.ContentLength ?? 0, head.ETag ?? '""', head.LastModified ?? new Date(0));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Failure(err);
    }
  }

  read(start: number, end: number): Readable {
    if (end < start || this.size === 0) return Readable.from([]);
    return getObjectStream(this.client, this.bucket, this.key, { range: `bytes=${start}-${end}`, etag: this.etag });
  }

  async close(): Promise<void> {}
}
