/** A bucket and a key prefix, as an `s3://bucket/prefix/` URL names them. */
export interface S3Location {
  readonly bucket: string;
  /** The key prefix, `''` or ending in `/`. */
  readonly prefix: string;
}

/**
 * Parses an `s3://bucket/prefix/` URL (a vdir's `destination`, a byte store's home). The prefix
 * may be empty; a prefix without a trailing `/` gets one, so that keys below it are a folder.
 *
 * @throws {Error} when it is not an `s3:` URL or the bucket name is not a valid one.
 * @example
 * ```ts
 * parseS3Url('s3://bits-uploads/uploads/'); // { bucket: 'bits-uploads', prefix: 'uploads/' }
 * parseS3Url('s3://bits-uploads');          // { bucket: 'bits-uploads', prefix: '' }
 * ```
 */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(url.trim());
  if (!match) throw new Error(`${url} is not an s3://bucket/prefix/ URL`);
  const bucket = match[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new Error(`${bucket} is not a valid bucket name (3 to 63 lowercase letters, digits, dots, dashes)`);
  let prefix = match[2] ?? '';
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  if (prefix.split('/').slice(0, -1).some((seg) => seg === '' || seg === '.' || seg === '..')) {
    throw new Error(`${url}: the prefix has empty, "." or ".." segments`);
  }
  return { bucket, prefix };
}

/**
 * The `s3://bucket/key` name of an object.
 *
 * @example
 * ```ts
 * s3Name('bits-uploads', 'uploads/a.bin'); // 's3://bits-uploads/uploads/a.bin'
 * ```
 */
export function s3Name(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}
