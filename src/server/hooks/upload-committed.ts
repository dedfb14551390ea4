import type { Logger } from 'pino';
import type { DestinationStore, SessionRecord } from '../../store/types.js';
import type { BoundHooks } from './bound-hooks.js';
import type { CommittedUpload } from './types.js';
import { deliver } from './webhook.js';

/**
 * The path below the vdir a session's upload lands at, read back from its recorded destination
 * (which a create hook may have renamed): the inverse of `destinations.resolve`. `fallback` (the
 * request's path) when the destination is not under the store (the vdir moved since Create-Session;
 * resolving the fallback then tells).
 *
 * @example
 * ```ts
 * landingPath(new FsDestinationStore('/srv/up'), '/srv/up/alice/a.bin', ['a.bin']); // ['alice', 'a.bin']
 * ```
 */
export function landingPath(destinations: DestinationStore, destination: string, fallback: readonly string[]): readonly string[] {
  const base = destinations.name.endsWith('/') ? destinations.name : `${destinations.name}/`;
  return destination.startsWith(base) && destination.length > base.length ? destination.slice(base.length).split('/') : fallback;
}

/**
 * Tells the vdir's `onUploadCommitted` hook and `commitWebhook` that Close-Session committed
 * `record` at `path` (below the vdir), in the background: nothing here delays or fails the Ack. The
 * webhook is retried with backoff; each failed attempt is logged at `warn`, a delivery that gives up
 * at `error` (as is a failing in-process hook). Deliveries are at least once: a receiver
 * deduplicates by `sessionId`.
 *
 * @example
 * ```ts
 * announceCommitted(ctx.logger, ctx.vdirHooks, record, segments);
 * ```
 */
export function announceCommitted(logger: Logger, hooks: BoundHooks, record: SessionRecord, path: readonly string[]): void {
  const { onUploadCommitted, commitWebhook } = hooks;
  if (!onUploadCommitted && !commitWebhook) return;
  const upload: CommittedUpload = {
    sessionId: record.id,
    vdir: record.vdir,
    urlPath: record.urlPath,
    name: path.join('/'),
    destination: record.destination,
    size: record.received,
    principal: record.principal,
    committedAt: Date.now(),
  };
  const log = { vdir: record.vdir, session: record.id };
  if (onUploadCommitted) {
    // (a hook that throws synchronously is caught as well)
    void Promise.resolve()
      .then(() => onUploadCommitted(upload))
      .catch((err: unknown) => logger.error({ ...log, err }, 'onUploadCommitted failed; the upload stays committed'));
  }
  if (commitWebhook) {
    const webhook = commitWebhook.url.origin;
    deliver(commitWebhook, 'upload.committed', upload, (err, attempt, delayMs) =>
      logger.warn({ ...log, webhook, attempt, delayMs, reason: err.message }, 'commit webhook failed; retrying'),
    ).then(
      () => logger.debug({ ...log, webhook }, 'commit webhook delivered'),
      (err: unknown) =>
        logger.error({ ...log, webhook, reason: (err as Error).message }, 'commit webhook failed; giving up (the upload stays committed)'),
    );
  }
}
