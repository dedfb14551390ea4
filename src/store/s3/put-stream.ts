import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';

/** Where {@link putStream} writes, and in what pieces. */
export interface PutTarget {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** Bytes held in memory at most: one part (at least 5 MiB, S3's smallest part but the last). */
  readonly partSize: number;
  /** Refuse a stream longer than this (bytes). */
  readonly limit: number;
}

/**
 * Writes a stream of unknown length as one object, holding at most one part in memory: a stream
 * that ends within the first part is one PutObject, a longer one a multipart upload. The object
 * appears whole or not at all; a failure aborts what was started. Returns its size.
 *
 * @throws {Error} when the stream is longer than `limit`, or S3's errors.
 * @example
 * ```ts
 * const size = await putStream({ client, bucket: 'bits-sessions', key: 'sessions/…/reply', partSize: 8 << 20, limit: 64 << 20 }, reply);
 * ```
 */
export async function putStream(target: PutTarget, source: Readable): Promise<number> {
  const { client, bucket, key, partSize, limit } = target;
  let uploadId: string | undefined;
  const etags: string[] = [];
  let held: Buffer[] = [];
  let heldBytes = 0;
  let size = 0;
  const uploadHeld = async (): Promise<void> => {
    if (uploadId === undefined) uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))).UploadId!;
    const body = Buffer.concat(held, heldBytes);
    held = [];
    heldBytes = 0;
    const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: etags.length + 1, Body: body, ContentLength: body.length }));
    etags.push(part.ETag!);
  };
  try {
    for await (const chunk of source as AsyncIterable<Buffer | string>) {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size > limit) throw new Error(`the stream is over ${limit} bytes`);
      while (heldBytes + buf.length >= partSize) {
        const take = partSize - heldBytes;
        held.push(buf.subarray(0, take));
        heldBytes += take;
        buf = buf.subarray(take);
        await uploadHeld();
      }
      if (buf.length > 0) {
        held.push(buf);
        heldBytes += buf.length;
      }
    }
    if (uploadId === undefined) {
      const body = Buffer.concat(held, heldBytes);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
      return size;
    }
    if (heldBytes > 0) await uploadHeld();
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    return size;
  } catch (err) {
    if (uploadId !== undefined) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
    throw err;
  }
}
