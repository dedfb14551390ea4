import { spawn } from 'node:child_process';
import { CLI } from './cli.js';

/** How a CLI child process ended. */
export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall-clock time from spawn to exit, in ms (for timeout semantics, never for speed). */
  readonly ms: number;
}

/**
 * Runs `bits <args>` as a child process (asynchronously: in-process servers keep serving meanwhile).
 * `env` entries are added to the parent's environment; an `undefined` value removes one.
 * The child is killed after `killAfterMs` (default 60 s) so a hung client cannot hang the suite.
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, killAfterMs = 60_000): Promise<CliRun> {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: merged });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  return new Promise<CliRun>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    }),
  );
}
