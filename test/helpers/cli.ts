import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * The port of a `bits serve` child, from its "listening" log line (JSON on stdout). Fails after
 * `timeoutMs`, or when the child exits first; `detail` adds to the message (its stderr, say).
 */
export function listeningPort(child: ChildProcess, timeoutMs: number, detail: () => string = () => ''): Promise<number> {
  const lines = createInterface({ input: child.stdout! });
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start${detail()}`)), timeoutMs);
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'listening' && entry.port) {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch {
        /* not JSON */
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}${detail()}`)));
  });
}

/** Starts `bits serve` as a child process; resolves with the port from its "listening" log line. */
export async function startCli(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, port: await listeningPort(child, 10_000) };
}

