import type { Logger } from 'pino';
import type { ByteStore, RecordStore } from '../store/types.js';
import { ConfigError } from './config.js';
import type { ServerConfig } from './config.js';
import type { AuthenticateHook } from './auth/authenticator.js';
import type { UploadCompleteHook } from './notification/hook.js';

/** Options of `BitsServer` beyond the configuration. */
export interface BitsServerOptions {
  logger: Logger;
  /** Session records in place of the configured ones (`config.store.records`: JSON files under `stateDir`, or PostgreSQL). */
  records?: RecordStore;
  /** Upload bytes in place of the configured ones (`config.store.bytes`: files under `stateDir`, or S3). */
  bytes?: ByteStore;
  /**
   * In-process server applications, by vdir path: `onUploadComplete` runs when an upload to that
   * vdir is complete and makes its uploads upload-reply uploads (it takes the place of a
   * notification URL).
   */
  hooks?: Readonly<Record<string, { onUploadComplete?: UploadCompleteHook }>>;
  /** A custom authentication scheme, consulted before each vdir's own (see {@link AuthenticateHook}). */
  authenticate?: AuthenticateHook;
}

/**
 * Checks the options against the configuration (each hook names a configured vdir; a vdir that
 * notifies has a notification URL or a hook) and returns the hooks by the vdir's configured path.
 *
 * @throws {ConfigError} naming every offending key, in the format of `parseConfig`'s errors.
 * @example
 * ```ts
 * const hooks = validateServerOptions(config, { logger, hooks: { '/dumps': { onUploadComplete } } });
 * hooks.get('/dumps'); // onUploadComplete
 * ```
 */
export function validateServerOptions(config: ServerConfig, options: BitsServerOptions): Map<string, UploadCompleteHook> {
  const problems: string[] = [];
  const hooks = new Map<string, UploadCompleteHook>();
  for (const [path, h] of Object.entries(options.hooks ?? {})) {
    const vdir = config.vdirs.find((v) => v.path.toLowerCase() === path.toLowerCase());
    if (!vdir) problems.push(`hooks["${path}"]: no vdir "${path}" is configured`);
    else if (h.onUploadComplete) hooks.set(vdir.path, h.onUploadComplete);
  }
  config.vdirs.forEach((v, i) => {
    if (v.notificationType !== 'none' && !v.notificationUrl && !hooks.has(v.path)) {
      problems.push(`vdirs[${i}].notificationUrl: required when notificationType is "${v.notificationType}"`);
    }
  });
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return hooks;
}
