/**
 * `bits-upload/store/testing`: the store contract as `node:test` suites, one per seam and
 * capability. An implementation composes the suites it implements, and may add its own cases:
 *
 * ```ts
 * recordStoreCompliance(makeRecords, 'PostgresRecordStore');
 * byteStoreCompliance(makeBytes, 'S3ByteStore');
 * replyStoreCompliance(makeBytes, 'S3ByteStore');
 * destinationStoreCompliance(makeDestinations, 'S3DestinationStore');
 * // localPathsCompliance where the store has the `local` capability, remoteObjectsCompliance where it has `remote`
 * ```
 *
 * A byte store's harness gives the store and an empty {@link DestinationStore} to commit into;
 * {@link TestUpload} drives an upload as the server does, threading the store's memo of every
 * write into the next call.
 */
export { recordStoreCompliance } from './record-store-compliance.js';
export { byteStoreCompliance } from './byte-store-compliance.js';
export { replyStoreCompliance } from './reply-store-compliance.js';
export { destinationStoreCompliance } from './destination-store-compliance.js';
export { localPathsCompliance } from './local-paths-compliance.js';
export { remoteObjectsCompliance } from './remote-objects-compliance.js';
export { contentOf, readAll, sampleRecord, source, TestUpload } from './harness.js';
export type {
  ByteStoreHarness,
  DestinationStoreHarness,
  MakeByteStore,
  MakeDestinationStore,
  MakeStore,
  StoreHarness,
  TestSource,
} from './harness.js';
