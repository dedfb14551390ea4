import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';

const SESSION_SLUG = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PAGE = 1000;
/** Bounds the pages listed under one dead session's prefix in one pass. */
const MAX_SESSION_PAGES = 100;

/** Where orphans are looked for, and which sessions count as alive. */
export interface OrphanScan {
  readonly client: S3Client;
  readonly bucket: string;
  /** The sessions' prefix (`sessions/`): each session's objects are below `<prefix><guid>/`. */
  readonly prefix: string;
  /** Whether the session with this id (`{GUID}`) still has a record. */
  readonly isLive: (id: string) => Promise<boolean>;
  /** Only objects last modified before this (ms since the epoch) are deleted. */
  readonly before: number;
  /** Most session prefixes looked at in this pass. */
  readonly limit: number;
  /** The session prefix the previous pass stopped after (`undefined`: from the start). */
  readonly after: string | undefined;
}

/** What one pass did, and where the next one goes on. */
export interface OrphanPass {
  readonly deleted: number;
  /** The last session prefix looked at, when the pass stopped at its limit; `undefined` when it reached the end. */
  readonly next: string | undefined;
}

/**
 * One bounded pass of the collection of objects that ended sessions left behind: a request that
 * was superseded and finished its write after its session was closed, cancelled or swept (no record
 * names what it wrote, so nothing else would ever delete it). Lists the session prefixes in order,
 * from where the last pass stopped, and deletes the old objects of those with no record.
 *
 * @example
 * ```ts
 * let after: string | undefined;
 * ({ next: after } = await collectOrphans({ client, bucket, prefix: 'sessions/', isLive, before: Date.now() - 600_000, limit: 1000, after }));
 * ```
 */
export async function collectOrphans(scan: OrphanScan): Promise<OrphanPass> {
  let deleted = 0;
  let seen = 0;
  let token: string | undefined;
  do {
    const page = await scan.client.send(
      new ListObjectsV2Command({
        Bucket: scan.bucket,
        Prefix: scan.prefix,
        Delimiter: '/',
        MaxKeys: PAGE,
        ...(token ? { ContinuationToken: token } : scan.after ? { StartAfter: scan.after } : {}),
      }),
    );
    for (const { Prefix: sessionPrefix } of page.CommonPrefixes ?? []) {
      if (!sessionPrefix) continue;
      const slug = sessionPrefix.slice(scan.prefix.length, -1);
      if (SESSION_SLUG.test(slug) && !(await scan.isLive(`{${slug}}`))) deleted += await deleteOld(scan, sessionPrefix);
      if (++seen >= scan.limit) return { deleted, next: sessionPrefix };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { deleted, next: undefined };
}

/** Deletes the objects under a dead session's prefix written before `scan.before`. */
async function deleteOld(scan: OrphanScan, sessionPrefix: string): Promise<number> {
  let deleted = 0;
  let token: string | undefined;
  for (let page = 0; page < MAX_SESSION_PAGES; page++) {
    const listed = await scan.client.send(
      new ListObjectsV2Command({ Bucket: scan.bucket, Prefix: sessionPrefix, MaxKeys: PAGE, ...(token ? { ContinuationToken: token } : {}) }),
    );
    const old = (listed.Contents ?? []).flatMap((o) => (o.Key && (o.LastModified?.getTime() ?? 0) < scan.before ? [{ Key: o.Key }] : []));
    if (old.length > 0) {
      await scan.client.send(new DeleteObjectsCommand({ Bucket: scan.bucket, Delete: { Objects: old, Quiet: true } }));
      deleted += old.length;
    }
    token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
    if (!token) break;
  }
  return deleted;
}
