import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AgentJobInfo } from '../client/agent-protocol.js';

/** How often a notification is tried, and the first wait between tries (doubled each time). */
export interface NotifyPolicy {
  readonly attempts: number;
  readonly firstDelayMs: number;
  /** A command still running after this long is killed (and counts as failed). */
  readonly commandTimeoutMs: number;
  /** A POST without an answer after this long fails. */
  readonly requestTimeoutMs: number;
}

/** Default notification policy: 4 tries, 2 s, 4 s, 8 s apart. */
export const DEFAULT_NOTIFY_POLICY: NotifyPolicy = { attempts: 4, firstDelayMs: 2_000, commandTimeoutMs: 60_000, requestTimeoutMs: 10_000 };

/**
 * The environment a notify command runs with: the agent's own plus `BITS_JOB_ID`, `BITS_JOB_STATE`,
 * `BITS_JOB_TYPE`, `BITS_JOB_NAME`, `BITS_JOB_FILES` (the local files, one per line),
 * `BITS_JOB_ERROR` and `BITS_JOB_ERROR_CODE` (empty unless the job failed).
 *
 * @example
 * ```ts
 * notifyEnvironment(job)['BITS_JOB_STATE']; // 'TRANSFERRED'
 * ```
 */
export function notifyEnvironment(job: AgentJobInfo, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    BITS_JOB_ID: job.id,
    BITS_JOB_STATE: job.state,
    BITS_JOB_TYPE: job.type,
    BITS_JOB_NAME: job.name ?? '',
    BITS_JOB_FILES: job.files.map((f) => f.file).join('\n'),
    BITS_JOB_ERROR: job.state === 'ERROR' ? (job.error?.message ?? '') : '',
    BITS_JOB_ERROR_CODE: job.state === 'ERROR' ? (job.error?.code ?? '') : '',
  };
}

/** Runs a command once: resolves with why it failed, or `undefined` when it exited 0. */
function runOnce(argv: readonly string[], shell: boolean, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const [file, args] = shell ? ['/bin/sh', ['-c', argv.join(' ')]] : [argv[0]!, argv.slice(1)];
    const child = spawn(file, args, { env, stdio: 'ignore', shell: false, detached: false });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve(`cannot run ${file}: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? undefined : signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

/** POSTs the job once: resolves with why it failed (and whether to try again), or `undefined`. */
async function postOnce(url: string, job: AgentJobInfo, timeoutMs: number): Promise<{ why: string; again: boolean } | undefined> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event: 'job', job }),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return undefined;
    return { why: `HTTP ${res.status}`, again: res.status >= 500 || res.status === 408 || res.status === 429 };
  } catch (err) {
    return { why: (err as Error).message, again: true };
  }
}

/**
 * Notifies about a job: runs its notify command and POSTs to its notify URL, each tried up to
 * `policy.attempts` times with doubling waits. Resolves when both are done or given up (what was
 * given up is logged); never rejects.
 *
 * @example
 * ```ts
 * await notify(job, { command: ['/usr/local/bin/on-done'], shell: false, url: undefined }, logger);
 * ```
 */
export async function notify(
  job: AgentJobInfo,
  target: { readonly command: readonly string[] | undefined; readonly shell: boolean; readonly url: string | undefined },
  logger: Logger,
  policy: NotifyPolicy = DEFAULT_NOTIFY_POLICY,
  signal?: AbortSignal,
): Promise<void> {
  const tries = async (what: string, once: () => Promise<{ why: string; again: boolean } | undefined>): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const failed = await once();
      if (!failed) {
        logger.info({ job: job.id, state: job.state, attempt }, `${what} done`);
        return;
      }
      if (!failed.again || attempt >= policy.attempts || signal?.aborted) {
        logger.warn({ job: job.id, state: job.state, attempt, reason: failed.why }, `${what} failed; giving up`);
        return;
      }
      logger.warn({ job: job.id, state: job.state, attempt, reason: failed.why }, `${what} failed; trying again`);
      await sleep(policy.firstDelayMs * 2 ** (attempt - 1), undefined, signal ? { signal } : undefined).catch(() => undefined);
    }
  };
  const command = target.command;
  const url = target.url;
  await Promise.all([
    command && command.length > 0
      ? tries('notify command', async () => {
          const why = await runOnce(command, target.shell, notifyEnvironment(job), policy.commandTimeoutMs);
          return why === undefined ? undefined : { why, again: true };
        })
      : undefined,
    url ? tries('notify URL', () => postOnce(url, job, policy.requestTimeoutMs)) : undefined,
  ]);
}
