/**
 * `bits-upload/store/testing`: the store contract as `node:test` suites, one per seam and
 * capability. An implementation composes the suites it implements, and may add its own cases:
 *
 * ```ts
 * recordStoreCompliance(makeRecords, 'PostgresRecordStore');
 * byteStoreCompliance(makeBytes, 'S3ByteStore');
 * replyStoreCompliance(makeBytes, 'S3ByteStore');
 * // localPathsCompliance only where the store has local files
 * ```
 */
export { recordStoreCompliance } from './record-store-compliance.js';
export { byteStoreCompliance } from './byte-store-compliance.js';
export { replyStoreCompliance } from './reply-store-compliance.js';
export { localPathsCompliance } from './local-paths-compliance.js';
export { sampleRecord } from './harness.js';
export type { MakeStore, StoreHarness } from './harness.js';
