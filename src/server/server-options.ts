import type { Logger } from 'pino';
import type { ByteStore, RecordStore } from '../store/types.js';
import { ConfigError } from './config.js';
import type { ServerConfig } from './config.js';
import type { AuthenticateHook } from './auth/authenticator.js';
import type { UploadCompleteHook } from './notification/hook.js';
import { bindHooks } from './hooks/bound-hooks.js';
import type { BoundHooks } from './hooks/bound-hooks.js';
import type { VdirHooks } from './hooks/types.js';

/** Options of `BitsServer` beyond the configuration. */
export interface BitsServerOptions {
  logger: Logger;
  /** Session records in place of the configured ones (`config.store.records`: JSON files under `stateDir`, or PostgreSQL). */
  records?: RecordStore;
  /** Upload bytes in place of the configured ones (`config.store.bytes`: files under `stateDir`, or S3). */
  bytes?: ByteStore;
  /**
   * In-process hooks, by vdir path: `onUploadComplete` runs when an upload to that vdir is complete
   * and makes its uploads upload-reply uploads (it takes the place of a notification URL);
   * `onSessionCreate` decides each Create-Session (next to the vdir's `createWebhook`), and
   * `onUploadCommitted` hears of each plain upload Close-Session committed (next to its
   * `commitWebhook`).
   */
  hooks?: Readonly<Record<string, VdirHooks>>;
  /** A custom authentication scheme, consulted before each vdir's own (see {@link AuthenticateHook}). */
  authenticate?: AuthenticateHook;
}

/**
 * Checks the options against the configuration (each hook names a configured vdir; a vdir that
 * notifies has a notification URL or a hook), and returns, by the vdir's configured path, the
 * `onUploadComplete` hooks and each vdir's create and commit hooks and webhooks (their secret files
 * read).
 *
 * @throws {ConfigError} naming every offending key, in the format of `parseConfig`'s errors.
 * @example
 * ```ts
 * const { replyHooks } = validateServerOptions(config, { logger, hooks: { '/dumps': { onUploadComplete } } });
 * replyHooks.get('/dumps'); // onUploadComplete
 * ```
 */
export function validateServerOptions(
  config: ServerConfig,
  options: BitsServerOptions,
): { replyHooks: Map<string, UploadCompleteHook>; vdirHooks: Map<string, BoundHooks> } {
  const problems: string[] = [];
  const vdirHooks = new Map<string, BoundHooks>();
  const hooks = new Map<string, UploadCompleteHook>();
  const byVdir = new Map<string, VdirHooks>();
  for (const [path, h] of Object.entries(options.hooks ?? {})) {
    const vdir = config.vdirs.find((v) => v.path.toLowerCase() === path.toLowerCase());
    if (!vdir) problems.push(`hooks["${path}"]: no vdir "${path}" is configured`);
    else {
      byVdir.set(vdir.path, h);
      if (h.onUploadComplete) hooks.set(vdir.path, h.onUploadComplete);
    }
  }
  config.vdirs.forEach((v, i) => {
    const bound = bindHooks(v, byVdir.get(v.path), `vdirs[${i}]`);
    vdirHooks.set(v.path, bound.hooks);
    for (const issue of bound.issues) problems.push(`${issue.key}: ${issue.message}`);
    if (v.notificationType !== 'none' && !v.notificationUrl && !hooks.has(v.path)) {
      problems.push(`vdirs[${i}].notificationUrl: required when notificationType is "${v.notificationType}"`);
    }
  });
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return { replyHooks: hooks, vdirHooks };
}
