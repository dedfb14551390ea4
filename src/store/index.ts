/**
 * `bits-upload/store`: the storage seams (session records, upload bytes), their errors, and the
 * filesystem implementations the server uses by default. The compliance suites that any
 * implementation can run are in `bits-upload/store/testing`.
 */
export type {
  ByteStore,
  CreateOptions,
  RecordStore,
  ReplyRecord,
  SessionLock,
  SessionOwner,
  SessionRecord,
  UploadDestination,
} from './types.js';
export { PartialWriteError, SessionLimitError, UploadMissingError } from './types.js';
export { FsByteStore } from './fs/fs-byte-store.js';
export { FsRecordStore } from './fs/fs-record-store.js';
export type { FsRecordStoreOptions } from './fs/fs-record-store.js';
export { ConfinementError } from './fs/confined.js';
