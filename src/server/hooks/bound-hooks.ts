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
 * A vdir's in-process hooks and its configured webhooks (their secret files read), as the packet
 * handlers run them. `key` names the vdir in issues (`vdirs[0]`).
 *
 * @returns the hooks, and the configuration issues found (unreadable secret files), empty when none.
 * @example
 * ```ts
 * const { hooks, issues } = bindHooks(config.vdirs[0], { onSessionCreate }, 'vdirs[0]');
 * ```
 */
export function bindHooks(vdir: VdirConfig, given: VdirHooks | undefined, key: string): { hooks: BoundHooks; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const hooks: BoundHooks = {
    onSessionCreate: given?.onSessionCreate,
    onUploadCommitted: given?.onUploadCommitted,
    createWebhook: webhookTarget(vdir.createWebhook, `${key}.createWebhook`, issues),
    commitWebhook: webhookTarget(vdir.commitWebhook, `${key}.commitWebhook`, issues),
  };
  return { hooks, issues };
}

/** A vdir without Create-Session or commit hooks. */
export const NO_HOOKS: BoundHooks = {};
