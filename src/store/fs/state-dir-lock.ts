import { link, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The pid file `<stateDir>/server.pid` names its holder on three lines: PID, the process's start
 * time (clock ticks since boot, field 22 of `/proc/PID/stat`) and the boot id. A PID alone cannot
 * tell a live server from a zombie it left (a crashed server its supervisor has not reaped yet)
 * or from an unrelated process that was given the same PID later; the start time and boot id can.
 * Where `/proc` is absent, the PID is all there is, and a process with that PID counts as the holder.
 */
const PID_FILE = 'server.pid';
const ATTEMPTS = 5;

/** Thrown when a live server holds the state directory; the message says what to do. */
export class StateDirInUseError extends Error {
  constructor(
    readonly stateDir: string,
    readonly pid: number,
  ) {
    super(
      `state directory ${stateDir} is in use by process ${pid}, a running bits server. ` +
        `Stop that server first, or give this one another state directory (--state-dir, or "stateDir" in the configuration). ` +
        `If process ${pid} is not a bits server, delete ${join(stateDir, PID_FILE)} and start again.`,
    );
    this.name = 'StateDirInUseError';
  }
}

/** What `/proc/PID/stat` says about a process, or `undefined` when it cannot be read. */
interface ProcStat {
  readonly state: string;
  readonly startTime: string;
}

async function procStat(pid: number | 'self'): Promise<ProcStat | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state && startTime ? { state, startTime } : undefined;
}

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

/** Boot time in ms since the epoch (`btime` of `/proc/stat`), for pid files that hold only a PID. */
async function bootTimeMs(): Promise<number | undefined> {
  const text = await readFile('/proc/stat', 'utf8').catch(() => '');
  const m = /^btime (\d+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** Whether any process has this PID (a zombie included): signal 0, EPERM meaning another user's. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A pid file's holder. */
interface Holder {
  readonly pid: number;
  readonly startTime: string | undefined;
  readonly bootId: string | undefined;
}

function parseHolder(text: string): Holder | undefined {
  const [pid, startTime, boot] = text.split('\n').map((l) => l.trim());
  const n = Number(pid);
  if (!pid || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { pid: n, startTime: startTime || undefined, bootId: boot || undefined };
}

/**
 * Whether a pid file's holder is still running: a process with its PID exists, is not a zombie,
 * and is the very process that wrote the file (same start time and boot). A pid file of an older
 * version holds only the PID: then the process must have started before the file was written.
 */
async function holderAlive(holder: Holder, writtenAtMs: number): Promise<boolean> {
  if (!pidExists(holder.pid)) return false;
  const proc = await procStat(holder.pid);
  // No /proc (or it hides the process): the PID is all there is to go by.
  if (!proc) return true;
  if (proc.state === 'Z' || proc.state === 'X') return false;
  if (holder.startTime !== undefined) {
    return proc.startTime === holder.startTime && (holder.bootId === undefined || holder.bootId === (await bootId()));
  }
  const boot = await bootTimeMs();
  // USER_HZ is 100 on every platform Node runs on; `btime` has whole seconds, hence the margin.
  return boot === undefined || boot + Number(proc.startTime) * 10 <= writtenAtMs + 2000;
}

/** This process's pid file. */
async function ownContent(): Promise<string> {
  const self = await procStat('self');
  return self ? `${process.pid}\n${self.startTime}\n${await bootId()}\n` : `${process.pid}\n`;
}

/**
 * Creates the pid file with its whole content at once (a hard link of a finished temp file), so no
 * other server ever reads it half-written. Filesystems without hard links fall back to an
 * exclusive create. Resolves false when a pid file is already there.
 */
async function createPidFile(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    return exclusiveCreate(file, content);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function exclusiveCreate(file: string, content: string): Promise<boolean> {
  try {
    const fh = await open(file, 'wx', 0o600);
    await fh.writeFile(content);
    await fh.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Removes a stale pid file, unless another server replaced it since it was read: it is moved aside
 * first and put back if what was moved is not what was judged stale.
 */
async function removeStale(file: string, stale: string): Promise<void> {
  const aside = `${file}.${process.pid}.stale`;
  try {
    await rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => stale);
  if (moved !== stale) await link(aside, file).catch(() => undefined);
  await rm(aside, { force: true });
}

/**
 * Claims a state directory for this process with a pid file, so two servers never share one
 * (the fs store's session locks are in-process). A pid file whose holder is gone — exited, a zombie,
 * or its PID now used by an unrelated process — is taken over.
 *
 * @throws {StateDirInUseError} when another live server holds the directory.
 * @example
 * ```ts
 * const release = await acquireStateDir('./data/.bits');
 * // ... on shutdown:
 * await release();
 * ```
 */
export async function acquireStateDir(stateDir: string): Promise<() => Promise<void>> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, PID_FILE);
  const content = await ownContent();
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await createPidFile(file, content)) return () => releaseStateDir(file, content);
    const seen = await readFile(file, 'utf8').catch(() => undefined);
    if (seen === undefined) continue; // removed meanwhile: try again
    const holder = parseHolder(seen);
    const writtenAt = (await stat(file).catch(() => undefined))?.mtimeMs ?? 0;
    if (holder && holder.pid !== process.pid && (await holderAlive(holder, writtenAt))) {
      throw new StateDirInUseError(stateDir, holder.pid);
    }
    await removeStale(file, seen);
  }
  throw new Error(`cannot claim state directory ${stateDir}: its pid file ${file} keeps changing`);
}

/** Removes the pid file if it is still this server's (never one a later server wrote). */
async function releaseStateDir(file: string, content: string): Promise<void> {
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === content) await rm(file, { force: true });
}
