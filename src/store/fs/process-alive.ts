/**
 * Whether any process has this PID (a zombie included): signal 0 delivers nothing and only checks,
 * and EPERM means the process exists but belongs to another user.
 *
 * @example
 * ```ts
 * if (isProcessAlive(record.pid)) console.log(`still running in process ${record.pid}`);
 * ```
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
