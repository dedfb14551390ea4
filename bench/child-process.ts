import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** A child process of the benchmark that listens on a port it reports as a JSON line on stdout. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  port: number;
  /** JSON lines the child printed after the one with the port (the server's request log). */
  lines: Record<string, unknown>[];
  /** The tail of its stderr, for error messages. */
  stderr(): string;
}

/**
 * Starts `node <script> ...args` and waits for a stdout JSON line that `isReady` accepts and that
 * carries a `port`. Keeps reading stdout afterwards (so the child never blocks on a full pipe) and,
 * when `keepLines` is set, keeps the parsed lines; lines that are not JSON go to `onOtherLine`.
 *
 * @example
 * ```ts
 * const sink = await startChild(sinkJs, ['--file', path], () => true);
 * ```
 */
export function startChild(
  script: string,
  args: string[],
  isReady: (line: Record<string, unknown>) => boolean,
  options: { nodeArgs?: string[]; keepLines?: boolean; timeoutMs?: number; onOtherLine?: (text: string) => void } = {},
): Promise<Child> {
  const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    err = (err + d).slice(-8192);
  });
  const lines: Record<string, unknown>[] = [];
  return new Promise((resolve, reject) => {
    let ready = false;
    const fail = (why: string): void => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${script}: ${why}\n${err}`));
    };
    const timer = setTimeout(() => fail('did not report its port in time'), options.timeoutMs ?? 15_000);
    proc.once('error', (e) => fail(e.message));
    proc.once('exit', (code, signal) => fail(`exited early (${code ?? signal})`));
    createInterface({ input: proc.stdout! }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        options.onOtherLine?.(text);
        return;
      }
      if (ready) {
        if (options.keepLines) lines.push(line);
        return;
      }
      if (typeof line['port'] === 'number' && isReady(line)) {
        ready = true;
        clearTimeout(timer);
        resolve({ proc, pid: proc.pid!, port: line['port'], lines, stderr: () => err });
      }
    });
  });
}

/** Peak resident set size (VmHWM) of a live process, in bytes; undefined when unavailable. */
export function peakRss(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a live process has used so far, in seconds; undefined when unavailable. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux architecture Node supports. */
const CLOCK_TICKS = 100;

/** Waits for a child to exit; sends SIGTERM first when `signal`, SIGKILL after `graceMs`. */
export function stopChild(child: Child, signal = true, graceMs = 10_000): Promise<number | null> {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    if (signal) proc.kill('SIGTERM');
  });
}
