/**
 * `bits-upload/store`: the storage seams (session records and leases, upload bytes, destinations),
 * their errors, and the filesystem implementations the server uses by default. The compliance suites that any
 * implementation can run are in `bits-upload/store/testing`.
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
