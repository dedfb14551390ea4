import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { BitsError } from '../../protocol/errors.js';
import type { DestinationStore, StoredObject } from '../types.js';
import { isNotFound, s3Failure } from './s3-errors.js';
import { S3StoredObject } from './s3-object.js';
import { parseS3Url, s3Name } from './s3-url.js';

/** S3's limit on a key's length, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

/** Options of {@link S3DestinationStore}. */
export interface S3DestinationStoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Keys of the vdir's uploads start with it (`uploads/`; `''` for the whole bucket). */
  readonly prefix?: string | undefined;
}

/**
 * A vdir's destination in a bucket (`destination: "s3://bits-uploads/uploads/"`): the path
 * `a/b.bin` lands at the key `uploads/a/b.bin`. Committing there is {@link S3ByteStore}'s.
 *
 * @example
 * ```ts
 * const destinations = S3DestinationStore.fromUrl(client, 's3://bits-uploads/uploads/');
 * await destinations.resolve(['a', 'b.bin']); // 's3://bits-uploads/uploads/a/b.bin'
 * ```
 */
export class S3DestinationStore implements DestinationStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly name: string;

  constructor(options: S3DestinationStoreOptions) {
    const { bucket, prefix } = parseS3Url(s3Name(options.bucket, options.prefix ?? ''));
    this.client = options.client;
    this.bucket = bucket;
    this.prefix = prefix;
    this.name = s3Name(bucket, prefix);
  }

  /**
   * The destination an `s3://bucket/prefix/` URL names.
   *
   * @example
   * ```ts
   * S3DestinationStore.fromUrl(client, 's3://bits-uploads/uploads/').prefix; // 'uploads/'
   * ```
   */
  static fromUrl(client: S3Client, url: string): S3DestinationStore {
    return new S3DestinationStore({ client, ...parseS3Url(url) });
  }

  /**
   * The key `path` lands at.
   *
   * @throws {BitsError} `BITS_DESTINATION_IS_DIRECTORY` for the empty path, `BITS_BAD_PATH` for
   * names S3 cannot hold (empty, `.`, `..`, with `/`, or a key over 1024 bytes).
   * @example
   * ```ts
   * destinations.keyOf(['a', 'b.bin']); // 'uploads/a/b.bin'
   * ```
   */
  keyOf(path: readonly string[]): string {
    if (path.length === 0) throw new BitsError('BITS_DESTINATION_IS_DIRECTORY', `${this.name} is the vdir itself`);
    for (const seg of path) {
      if (seg === '' || seg === '.' || seg === '..' || seg.includes('/') || seg.includes('\0')) {
        throw new BitsError('BITS_BAD_PATH', `path segment "${seg}" is not allowed`);
      }
    }
    const key = this.prefix + path.join('/');
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new BitsError('BITS_BAD_PATH', `the key of ${path.join('/')} is over ${MAX_KEY_BYTES} bytes`);
    return key;
  }

  async resolve(path: readonly string[]): Promise<string> {
    return s3Name(this.bucket, this.keyOf(path));
  }

  async exists(path: readonly string[]): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(path) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw s3Failure(err);
    }
  }

  async open(path: readonly string[]): Promise<StoredObject | undefined> {
    return S3StoredObject.open(this.client, this.bucket, this.keyOf(path));
  }
}
