import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient } from '../../src/client/agent-client.js';
import type { AgentJobInfo, AgentJobState } from '../../src/client/agent-protocol.js';
import { CLI } from './cli.js';

/** A `bits agent` child process and a control connection to it. */
export interface AgentProcess {
  readonly child: ChildProcess;
  readonly stateDir: string;
  readonly client: AgentClient;
  /** What the agent wrote to stderr (its log) so far. */
  log(): string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** Waits until job `id` is in one of `states` (fails after `ms`, with the job as it stands). */
  waitFor(id: string, states: readonly AgentJobState[], ms?: number): Promise<AgentJobInfo>;
}

/**
 * Starts `bits agent --state-dir <stateDir> <args>` and connects to its socket (retried until it
 * answers, at most 15 s).
 *
 * @example
 * ```ts
 * const agent = await startAgent(dir, ['--max-concurrent', '1']);
 * const job = await agent.client.enqueue(spec);
 * await agent.waitFor(job.id, ['TRANSFERRED']);
 * ```
 */
export async function startAgent(stateDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<AgentProcess> {
  const child = spawn(process.execPath, [CLI, 'agent', '--state-dir', stateDir, '--log-level', process.env['BITS_TEST_LOG'] ?? 'info', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let client: AgentClient | undefined;
  const deadline = Date.now() + 15_000;
  while (!client) {
    if (child.exitCode !== null) throw new Error(`bits agent exited with ${child.exitCode}: ${stderr}`);
    try {
      client = await AgentClient.connect({ stateDir });
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`bits agent did not answer within 15 s: ${stderr}`);
      }
      await sleep(50);
    }
  }
  const c = client;
  return {
    child,
    stateDir,
    client: c,
    log: () => stderr,
    stop: async () => {
      c.close();
      child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      c.close();
      child.kill('SIGKILL');
      await exited;
    },
    waitFor: async (id, states, ms = 30_000) => {
      const signal = AbortSignal.timeout(ms);
      try {
        return await c.waitFor(id, states, signal);
      } catch (err) {
        if (!signal.aborted) throw err;
        const now = await c.info(id).catch(() => undefined);
        throw new Error(`job ${id} did not reach ${states.join('/')} within ${ms} ms: ${JSON.stringify(now)}\n${stderr.slice(-3000)}`);
      }
    },
  };
}
