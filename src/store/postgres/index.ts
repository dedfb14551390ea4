/**
 * The PostgreSQL record store of farm mode: session records, fenced leases across nodes, exclusive
 * work and destination claims on one database.
 */
export { PostgresRecordStore } from './postgres-record-store.js';
export type { PostgresRecordStoreOptions } from './postgres-record-store.js';
export { PgDestinationClaims } from './destination-claims.js';
export { SessionExistsError, isTransientPgError } from './pg-errors.js';
export { SCHEMA_VERSION } from './schema.js';
