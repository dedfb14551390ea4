import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { SCHEMA_VERSION, schemaNames } from '../store/postgres/schema.js';
import { parseS3Url } from '../store/s3/s3-url.js';
import type { PostgresConfig, S3Config, ServerConfig } from './config.js';
import { s3ClientOf } from './stores.js';

/** The outcome of one check of {@link checkStores}. */
export interface StoreCheck {
  /** What was checked, e.g. `PostgreSQL postgres://bits@db:5432/bits`. */
  readonly subject: string;
  readonly ok: boolean;
  /** What was found, or what is wrong and what to do. */
  readonly detail: string;
}

/** An error's message with its name or code, for a line an operator reads. */
function reason(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const label = e.code ?? (e.name && e.name !== 'Error' ? e.name : undefined);
  const message = e.message && e.message !== label && e.message !== 'UnknownError' ? e.message : '';
  return [label, status ? `HTTP ${status}` : undefined, message].filter(Boolean).join(': ') || String(err);
}

/** A database URL fit to print: the password left out. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.href;
  } catch {
    return '(the configured URL)';
  }
}

/** Connects to PostgreSQL and reports the server version and the state of the store's schema (changing nothing). */
async function checkPostgres(config: PostgresConfig): Promise<StoreCheck> {
  const subject = `PostgreSQL ${withoutPassword(config.url)}`;
  const client = new pg.Client({ connectionString: config.url, connectionTimeoutMillis: config.connectTimeoutMs, query_timeout: config.queryTimeoutMs });
  client.on('error', () => {}); // (a drop after the checks are answered)
  try {
    await client.connect();
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
    const names = schemaNames(config.schema);
    const exists = (await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [names.migrations])).rows[0]!.t;
    let schema: string;
    if (exists) {
      const applied = Number((await client.query<{ v: string | null }>(`SELECT max(version) AS v FROM ${names.migrations}`)).rows[0]!.v ?? 0);
      if (applied > SCHEMA_VERSION) return { subject, ok: false, detail: `schema "${config.schema}" is at version ${applied}, newer than this server knows (${SCHEMA_VERSION}): upgrade the server` };
      schema = applied === SCHEMA_VERSION ? `schema "${config.schema}" at version ${applied}` : `schema "${config.schema}" at version ${applied}, migrated to ${SCHEMA_VERSION} at start`;
    } else {
      const canCreate = (await client.query<{ ok: boolean }>(`SELECT has_database_privilege(current_database(), 'CREATE') AND (to_regnamespace($1) IS NULL OR has_schema_privilege($1, 'CREATE')) AS ok`, [config.schema])).rows[0]!.ok;
      if (!canCreate) return { subject, ok: false, detail: `no schema yet, and user ${client.user ?? '?'} may not create it in schema "${config.schema}": grant CREATE or create the schema` };
      schema = `schema "${config.schema}" created at first start`;
    }
    return { subject, ok: true, detail: `PostgreSQL ${version}, ${schema}` };
  } catch (err) {
    return { subject, ok: false, detail: reason(err) };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The bucket exists and this client may reach it. */
async function headBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new HeadBucketCommand({ Bucket: bucket }));
}

/** What an S3 failure means to the operator. */
function s3Reason(err: unknown, bucket: string): string {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status === 404) return `there is no bucket ${bucket}: create it first`;
  if (status === 403) return `access denied (${reason(err)}): check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the instance role) and the bucket's policy`;
  return reason(err);
}

/** The sessions' bucket: reachable, and objects can be written and deleted under the prefix. */
async function checkSessionBucket(client: S3Client, config: S3Config): Promise<StoreCheck> {
  const subject = `S3 s3://${config.bucket}/${config.prefix} at ${config.endpoint ?? `AWS ${config.region}`}`;
  try {
    await headBucket(client, config.bucket);
    const key = `${config.prefix}.bits-check-${randomBytes(6).toString('hex')}`;
    await client.send(new PutObjectCommand({ Bucket: config.bucket, Key: key, Body: 'bits serve --check' }));
    await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: key }));
    return { subject, ok: true, detail: 'bucket reachable, objects can be written and deleted' };
  } catch (err) {
    return { subject, ok: false, detail: s3Reason(err, config.bucket) };
  }
}

/** A vdir's destination: the bucket is reachable and a multipart upload can be started (then aborted: nothing appears). */
async function checkDestination(client: S3Client, vdir: string, url: string): Promise<StoreCheck> {
  const subject = `vdir ${vdir} destination ${url}`;
  const { bucket, prefix } = parseS3Url(url);
  try {
    await headBucket(client, bucket);
    const key = `${prefix}.bits-check-${randomBytes(6).toString('hex')}`;
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
    return { subject, ok: true, detail: 'bucket reachable, uploads can be started' };
  } catch (err) {
    return { subject, ok: false, detail: s3Reason(err, bucket) };
  }
}

/** A local folder the server writes: it exists and is writable, or its nearest existing parent is. */
async function checkFolder(subject: string, folder: string): Promise<StoreCheck> {
  let path = folder;
  for (let depth = 0; depth < 64; depth++) {
    try {
      const info = await stat(path);
      if (!info.isDirectory()) return { subject, ok: false, detail: `${path} is not a folder` };
      await access(path, constants.W_OK | constants.X_OK);
      return { subject, ok: true, detail: path === folder ? `${folder} is writable` : `${folder} will be created in ${path}` };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || dirname(path) === path) return { subject, ok: false, detail: `${path}: ${code ?? reason(err)}` };
      path = dirname(path);
    }
  }
  return { subject, ok: false, detail: `${folder}: too deep` };
}

/**
 * Checks the stores a configuration names, without starting a server or changing anything it
 * keeps: PostgreSQL is connected to and its schema's version read; the sessions' bucket gets a
 * probe object written and deleted; each `s3://` destination gets a multipart upload started and
 * aborted; local folders are checked for write access.
 *
 * @example
 * ```ts
 * for (const c of await checkStores(config)) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.subject}: ${c.detail}`);
 * ```
 */
export async function checkStores(config: ServerConfig): Promise<StoreCheck[]> {
  const { records, bytes } = config.store;
  const checks: Promise<StoreCheck>[] = [];
  if (records.type === 'postgres') checks.push(checkPostgres(records));
  if (records.type === 'fs' || bytes.type === 'fs') checks.push(checkFolder('state directory', config.stateDir));
  const client = bytes.type === 's3' ? s3ClientOf(bytes) : undefined;
  try {
    if (client && bytes.type === 's3') checks.push(checkSessionBucket(client, bytes));
    for (const v of config.vdirs) {
      if (v.destination !== undefined) checks.push(checkDestination(client!, v.path, v.destination));
      else if (v.directory !== undefined) checks.push(checkFolder(`vdir ${v.path} directory`, v.directory));
    }
    return await Promise.all(checks);
  } finally {
    client?.destroy();
  }
}
