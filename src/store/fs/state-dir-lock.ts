import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive } from './process-alive.js';

/**
 * The pid file `<stateDir>/server.pid` names its holder on four lines: PID, the process's start
 * time (clock ticks since boot, field 22 of `/proc/PID/stat`), the boot id and a random token. A PID
 * alone cannot tell a live server from a zombie it left (a crashed server its supervisor has not
 * reaped yet) or from an unrelated process that was given the same PID later; the start time and
 * boot id can. The token makes each claim's content unique, so "still ours" is a comparison.
 * Where `/proc` is absent, the PID is all there is, and a process with that PID counts as the holder.
 *
 * Every claim is made under the takeover guard `server.pid.takeover`, an exclusive file with the
 * same content: under it, the pid file is read, judged and, when absent or stale, replaced in one
 * rename. Nothing else writes or removes another holder's pid file, so two servers starting at
 * once over a stale file can never both win.
 */
const PID_FILE = 'server.pid';
/** Claims tried while other servers hold the guard (each holds it for a few milliseconds). */
const CLAIM_TRIES = 400;
/** Stale guards superseded one after the other before a claim is tried again. */
const GUARD_DEPTH = 4;
/**
 * A guard with no readable content yet is being written (filesystems without hard links create it
 * and then write it): it counts as held this long after its modification time.
 */
const UNWRITTEN_GRACE_MS = 5000;

/** Thrown when a live server holds the state directory; the message says what to do. */
export class StateDirInUseError extends Error {
  constructor(
    readonly stateDir: string,
    readonly pid: number,
    pidFile = PID_FILE,
  ) {
    super(
      `state directory ${stateDir} is in use by process ${pid}, a running bits server. ` +
        `Stop that server first, or give this one another state directory (--state-dir, or "stateDir" in the configuration). ` +
        `If process ${pid} is not a bits server, delete ${join(stateDir, pidFile)} and start again.`,
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
 * and is the very process that wrote the file (same start time and boot). This process is no
 * exception: with its own start time it holds the file, with another (the PID reused after a
 * restart) it does not. A pid file of an older version holds only the PID: then the process must
 * have started before the file was written.
 */
async function holderAlive(holder: Holder, writtenAtMs: number): Promise<boolean> {
  if (!isProcessAlive(holder.pid)) return false;
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

/** This process's pid file (and guard) content, unique to this claim. */
async function ownContent(): Promise<string> {
  const self = await procStat('self');
  const token = randomBytes(12).toString('base64url');
  return self ? `${process.pid}\n${self.startTime}\n${await bootId()}\n${token}\n` : `${process.pid}\n\n\n${token}\n`;
}

const readText = (file: string): Promise<string | undefined> => readFile(file, 'utf8').catch(() => undefined);
const mtimeMs = async (file: string): Promise<number> => (await stat(file).catch(() => undefined))?.mtimeMs ?? 0;

/** A unique temp name next to `file`, for content that must appear whole. */
const tempName = (file: string): string => `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;

/**
 * Creates `file` with its whole content at once (a hard link of a finished temp file), so no other
 * process reads it half-written; filesystems without hard links fall back to an exclusive create
 * followed by the write (see {@link UNWRITTEN_GRACE_MS}). Resolves false when the file is there.
 */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = tempName(file);
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  try {
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Removes `file` if it still holds `content`. Only called where nobody else may change it meanwhile. */
async function removeIf(file: string, content: string): Promise<void> {
  if ((await readText(file)) === content) await rm(file, { force: true });
}

/** Whether the holder a pid file or guard names is alive; `undefined` for content that names none. */
async function namesLiveHolder(file: string, content: string): Promise<boolean | undefined> {
  const holder = parseHolder(content);
  return holder ? holderAlive(holder, await mtimeMs(file)) : undefined;
}

/**
 * Takes the takeover guard, or resolves `undefined` while another live process holds it (the
 * caller waits and tries again). A guard whose holder died while holding it is not removed (which
 * could remove a live successor's guard instead) but superseded: `server.pid.takeover.<hash of its
 * content>` is created exclusively, and holding it allows removing exactly that stale content. The
 * successor is valid only while every guard it supersedes is still as it was judged: a chain that
 * changed meanwhile means someone else got through, and the claim starts over.
 *
 * @returns the function that gives the guard back, removing the stale guards it superseded first.
 */
async function takeGuard(stateDir: string, content: string, guard: string): Promise<(() => Promise<void>) | undefined> {
  const superseded: { file: string; content: string }[] = [];
  let file = join(stateDir, guard);
  for (let depth = 0; depth < GUARD_DEPTH; depth++) {
    if (await createExclusive(file, content)) {
      const own = file;
      for (const s of superseded) {
        if ((await readText(s.file)) !== s.content) {
          await removeIf(own, content);
          return undefined;
        }
      }
      // Oldest first: once the plain guard name is free again, no successor can be validated.
      return async () => {
        for (const s of superseded) await removeIf(s.file, s.content);
        await removeIf(own, content);
      };
    }
    const seen = await readText(file);
    if (seen === undefined) return undefined; // given back meanwhile: try again
    const alive = await namesLiveHolder(file, seen);
    if (alive === true) return undefined;
    if (alive === undefined && Date.now() - (await mtimeMs(file)) < UNWRITTEN_GRACE_MS) return undefined;
    superseded.push({ file, content: seen });
    file = join(stateDir, `${guard}.${createHash('sha256').update(seen).digest('hex').slice(0, 16)}`);
  }
  return undefined;
}

/**
 * Claims a state directory for this process with a pid file, so two servers never share one
 * (the fs store's session locks are in-process) — not two in the same process either. A pid file
 * whose holder is gone — exited, a zombie, or its PID now used by an unrelated process or by this
 * one started anew (a container's PID 1) — is taken over.
 *
 * `pidFile` names the pid file (its guard is `<pidFile>.takeover`), for another kind of owner than
 * the server (the background agent's `agent.pid`).
 *
 * @throws {StateDirInUseError} when a live holder, this process included, holds the directory.
 * @example
 * ```ts
 * const release = await acquireStateDir('./data/.bits');
 * // ... on shutdown:
 * await release();
 * ```
 */
export async function acquireStateDir(stateDir: string, pidFile = PID_FILE): Promise<() => Promise<void>> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, pidFile);
  const guard = `${pidFile}.takeover`;
  const content = await ownContent();
  const refuseIfHeld = async (): Promise<void> => {
    const seen = await readText(file);
    const holder = seen === undefined ? undefined : parseHolder(seen);
    if (holder && (await holderAlive(holder, await mtimeMs(file)))) throw new StateDirInUseError(stateDir, holder.pid, pidFile);
  };
  for (let attempt = 0; attempt < CLAIM_TRIES; attempt++) {
    const giveBack = await takeGuard(stateDir, content, guard);
    if (!giveBack) {
      // (a live holder is reported at once, whoever holds the guard)
      await refuseIfHeld();
      await sleep(5 + Math.random() * 20);
      continue;
    }
    try {
      await refuseIfHeld();
      // Absent, or stale (no holder named, or a dead one): replaced in one step, never removed first.
      const tmp = tempName(file);
      await writeFile(tmp, content, { mode: 0o600 });
      await rename(tmp, file).catch(async (err: unknown) => {
        await rm(tmp, { force: true });
        throw err;
      });
    } finally {
      await giveBack();
    }
    let released = false;
    return async () => {
      // (once: a second call must not remove the file of a later claim in this process)
      if (released) return;
      released = true;
      await removeIf(file, content);
    };
  }
  throw new Error(`cannot claim state directory ${stateDir}: other processes keep holding ${join(stateDir, guard)}`);
}
