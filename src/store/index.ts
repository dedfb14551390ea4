/**
 * `bits-upload/store`: the storage seams (session records and leases, upload bytes, destinations),
 * their errors, the filesystem implementations the server uses by default, and the stores of farm
 * mode (records and leases in PostgreSQL, bytes and destinations in S3). The compliance suites that
 * any implementation can run are in `bits-upload/store/testing`.
 */
export type {
  ByteState,
  ByteStore,
  CreateOptions,
  DestinationClaims,
  DestinationStore,
  JsonValue,
  LocalFiles,
  OpenOptions,
  RecordStore,
  RemoteObjects,
  ReplyRecord,
  SessionLock,
  SessionOwner,
  SessionRecord,
  StoredObject,
  StoredUpload,
  UploadTarget,
  WriteOptions,
  WriteResult,
} from './types.js';
export {
  DestinationExistsError,
  LeaseLostError,
  PartialWriteError,
  SessionLimitError,
  StoreUnavailableError,
  UploadMissingError,
} from './types.js';
export { FsDestinationStore } from './fs/fs-destination-store.js';
export { FsByteStore } from './fs/fs-byte-store.js';
export { FsRecordStore } from './fs/fs-record-store.js';
export type { FsRecordStoreOptions } from './fs/fs-record-store.js';
export { ConfinementError } from './fs/confined.js';
export { PostgresRecordStore } from './postgres/postgres-record-store.js';
export type { PostgresRecordStoreOptions } from './postgres/postgres-record-store.js';
export { S3ByteStore } from './s3/s3-byte-store.js';
export type { S3ByteStoreOptions, S3StoreLogger } from './s3/s3-byte-store.js';
export { S3DestinationStore } from './s3/s3-destination-store.js';
export type { S3DestinationStoreOptions } from './s3/s3-destination-store.js';
export { InProcessClaims } from './s3/in-process-claims.js';
export { createS3Client } from './s3/s3-client.js';
export type { S3ClientOptions } from './s3/s3-client.js';
