/**
 * The S3 stores of farm mode: upload bytes in an S3-compatible object store ({@link S3ByteStore})
 * and vdir destinations in a bucket ({@link S3DestinationStore}).
 */
export { S3ByteStore } from './s3-byte-store.js';
export type { S3ByteStoreOptions, S3StoreLogger } from './s3-byte-store.js';
export { S3DestinationStore } from './s3-destination-store.js';
export type { S3DestinationStoreOptions } from './s3-destination-store.js';
export { S3StoredObject } from './s3-object.js';
export { InProcessClaims } from './in-process-claims.js';
export { createS3Client } from './s3-client.js';
export type { S3ClientOptions } from './s3-client.js';
export { parseS3Url, s3Name } from './s3-url.js';
export type { S3Location } from './s3-url.js';
export { partSizeFor, DEFAULT_PART_SIZE, MIN_PART_SIZE } from './part-layout.js';
