import { readFileSync } from 'node:fs';
import type { ConfigIssue, VdirConfig } from '../config.js';
import type { WebhookConfig } from '../config-schema.js';
import type { SessionCreateHook, UploadCommittedHook, VdirHooks } from './types.js';
import type { WebhookTarget } from './webhook.js';

/** A vdir's Create-Session and commit hooks, in-process and HTTP, ready to run. */
export interface BoundHooks {
  readonly onSessionCreate?: SessionCreateHook | undefined;
  readonly onUploadCommitted?: UploadCommittedHook | undefined;
  readonly createWebhook?: WebhookTarget | undefined;
  readonly commitWebhook?: WebhookTarget | undefined;
}

// By the vdir's configuration object, which is what a request's location carries: set when a server
// is made from the configuration (the last server made from it wins).
const bound = new WeakMap<VdirConfig, BoundHooks>();

/** The first line of a secret file; an unreadable or empty one is a configuration issue of `key`. */
function readSecret(file: string, key: string, issues: ConfigIssue[]): string | null {
  try {
    const secret = readFileSync(file, 'utf8').split(/\r?\n/, 1)[0]!.trim();
    if (secret !== '') return secret;
    issues.push({ key, message: `${file} is empty` });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    issues.push({ key, message: `cannot read ${file} (${e.code ?? e.message})` });
  }
  return null;
}

/** The delivery target of a configured webhook, its secret read from `secretFile` when it has one. */
function webhookTarget(config: WebhookConfig | null, key: string, issues: ConfigIssue[]): WebhookTarget | undefined {
  if (config === null) return undefined;
  const secret = config.secretFile === null ? config.secret : readSecret(config.secretFile, `${key}.secretFile`, issues);
  return { url: new URL(config.url), secret, timeoutMs: config.timeoutMs, retries: config.retries };
}

/**
 * Binds a vdir's in-process hooks and its configured webhooks (reading their secret files) to its
 * configuration object, where the packet handlers find them ({@link hooksOf}). `key` names the vdir
 * in issues (`vdirs[0]`).
 *
 * @returns the configuration issues found (unreadable secret files), empty when none.
 * @example
 * ```ts
 * const issues = bindHooks(config.vdirs[0], { onSessionCreate }, 'vdirs[0]');
 * ```
 */
export function bindHooks(vdir: VdirConfig, hooks: VdirHooks | undefined, key: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  bound.set(vdir, {
    onSessionCreate: hooks?.onSessionCreate,
    onUploadCommitted: hooks?.onUploadCommitted,
    createWebhook: webhookTarget(vdir.createWebhook, `${key}.createWebhook`, issues),
    commitWebhook: webhookTarget(vdir.commitWebhook, `${key}.commitWebhook`, issues),
  });
  return issues;
}

/** The hooks bound to a vdir by {@link bindHooks}; none when it was never bound. */
export function hooksOf(vdir: VdirConfig): BoundHooks {
  return bound.get(vdir) ?? {};
}
