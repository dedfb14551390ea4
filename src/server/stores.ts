import { rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { FsByteStore } from '../store/fs/fs-byte-store.js';
import { FsDestinationStore } from '../store/fs/fs-destination-store.js';
import { FsRecordStore } from '../store/fs/fs-record-store.js';
import type { PostgresRecordStore } from '../store/postgres/postgres-record-store.js';
import type { ByteStore, DestinationStore, RecordStore } from '../store/types.js';
import type { PostgresConfig, S3Config, ServerConfig, VdirConfig } from './config.js';

const load = createRequire(import.meta.url);

/**
 * The farm stores' modules, loaded when a configuration uses them: the S3 SDK and `pg` would add
 * some 40 MiB to every server that keeps its sessions in files.
 */
const farm = {
  postgres: () => load('../store/postgres/postgres-record-store.js') as typeof import('../store/postgres/postgres-record-store.js'),
  s3: () => ({
    ...(load('../store/s3/s3-byte-store.js') as typeof import('../store/s3/s3-byte-store.js')),
    ...(load('../store/s3/s3-client.js') as typeof import('../store/s3/s3-client.js')),
    ...(load('../store/s3/s3-destination-store.js') as typeof import('../store/s3/s3-destination-store.js')),
    ...(load('../store/s3/in-process-claims.js') as typeof import('../store/s3/in-process-claims.js')),
  }),
};

/** The stores a server runs on, as the configuration's `store` block (or the caller) chose them. */
export interface ServerStores {
  readonly records: RecordStore;
  readonly bytes: ByteStore;
  /** The destination store of a vdir: its local folder or its `s3://` destination. */
  destinations(vdir: VdirConfig): DestinationStore;
  /** True when a store keeps files under `stateDir` (which one server at a time may hold). */
  readonly usesStateDir: boolean;
  /** Connects the stores this object made (PostgreSQL: connect, migrate, listen). */
  open(): Promise<void>;
  /** Closes what {@link open} opened; the stores cannot be opened again. */
  close(): Promise<void>;
  /**
   * Why the stores cannot be used now (the state directory cannot be written, PostgreSQL or S3
   * cannot be reached), or undefined when they can.
   */
  problem(): Promise<string | undefined>;
}

/** Stores given by the embedding application, in place of the configured ones. */
export interface GivenStores {
  readonly records?: RecordStore | undefined;
  readonly bytes?: ByteStore | undefined;
}

/** Creates and removes a file in `folder`: it can be written now (permissions, a read-only or full file system). */
async function probeFolder(folder: string): Promise<void> {
  const probe = join(folder, `.ready-${process.pid}`);
  try {
    await writeFile(probe, 'ready');
    await rm(probe, { force: true });
  } catch (err) {
    throw new Error(`the state directory ${folder} cannot be written: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** This process's default node id: `<hostname>:<pid>`. */
export function defaultNodeId(): string {
  return `${hostname()}:${process.pid}`;
}

/** The PostgreSQL record store of a `store.records` block (not connected yet). */
export function postgresRecords(config: PostgresConfig, logger: Logger | undefined): PostgresRecordStore {
  const { PostgresRecordStore } = farm.postgres();
  return new PostgresRecordStore({
    url: config.url,
    node: config.node ?? defaultNodeId(),
    schema: config.schema,
    leaseTtlMs: config.leaseTtlMs,
    connectTimeoutMs: config.connectTimeoutMs,
    queryTimeoutMs: config.queryTimeoutMs,
    poolSize: config.poolSize,
    logger,
  });
}

/** The S3 client of a `store.bytes` block; without `credentials`, the SDK's standard chain finds them. */
export function s3ClientOf(config: S3Config): S3Client {
  return farm.s3().createS3Client({
    endpoint: config.endpoint ?? undefined,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials ?? undefined,
  });
}

/**
 * Builds the stores of `config.store`, unless `given` supplies them: records in files under
 * `stateDir` or in PostgreSQL, bytes in files or in S3, each vdir's destination its folder or its
 * `s3://` URL on the byte store's service. Destination claims (no two commits of one name with
 * overwrites off) come from PostgreSQL when the records are there, else from this process.
 *
 * @example
 * ```ts
 * const stores = buildStores(config, logger);
 * await stores.open();
 * const sessions = new Sessions(stores.records, stores.bytes, logger);
 * // ...
 * await stores.close();
 * ```
 */
export function buildStores(config: ServerConfig, logger: Logger, given: GivenStores = {}): ServerStores {
  const { records: recordsConfig, bytes: bytesConfig } = config.store;
  const ownedPostgres = !given.records && recordsConfig.type === 'postgres' ? postgresRecords(recordsConfig, logger) : undefined;
  const records: RecordStore = given.records ?? ownedPostgres ?? new FsRecordStore(config.stateDir, { logger });
  const client = bytesConfig.type === 's3' ? s3ClientOf(bytesConfig) : undefined;
  let bytes: ByteStore;
  if (given.bytes) bytes = given.bytes;
  else if (bytesConfig.type === 's3') {
    const { InProcessClaims, S3ByteStore } = farm.s3();
    // (a PostgreSQL record store, configured or given, provides the claims of a farm)
    const claims = (records as Partial<PostgresRecordStore>).claims ?? new InProcessClaims();
    bytes = new S3ByteStore({ client: client!, bucket: bytesConfig.bucket, prefix: bytesConfig.prefix, partSize: bytesConfig.partSize, claims, logger });
  } else bytes = new FsByteStore(config.stateDir);
  const usesStateDir = records instanceof FsRecordStore || bytes instanceof FsByteStore;
  // (files need no connection; a PostgreSQL store or an S3 client, once closed, cannot reopen)
  const connected = Boolean(ownedPostgres ?? client);
  let state: 'new' | 'open' | 'closed' = 'new';
  return {
    records,
    bytes,
    destinations: (vdir) =>
      vdir.destination !== undefined ? farm.s3().S3DestinationStore.fromUrl(client!, vdir.destination) : new FsDestinationStore(vdir.directory!),
    usesStateDir,
    async open() {
      if (state === 'closed') throw new Error('the server\'s stores are closed; make a new BitsServer to start again');
      if (state === 'open') return;
      await ownedPostgres?.start();
      state = 'open';
    },
    async problem() {
      const checks: Promise<void>[] = [];
      if (usesStateDir) checks.push(probeFolder(config.stateDir));
      if (records.ping) checks.push(records.ping());
      if (bytes.ping) checks.push(bytes.ping());
      const failed = (await Promise.allSettled(checks)).find((r) => r.status === 'rejected');
      return failed ? (failed.reason as Error).message : undefined;
    },
    async close() {
      if (state === 'closed') return;
      // What the server's own stores keep in memory is written out (files can be opened again later).
      if (!given.records && records instanceof FsRecordStore) await records.close();
      if (!given.bytes) await bytes.close?.();
      if (!connected) return;
      state = 'closed';
      await ownedPostgres?.close();
      client?.destroy();
    },
  };
}
