// What `bits agent` and its clients say to each other over the control socket: one JSON object per
// line each way. A request carries an `id` and gets one reply with the same `id`; a `watch`
// request also turns the connection into a stream of events. Shared by the agent (the server side)
// and `AgentClient`, so the two cannot drift apart.
import { resolve, join } from 'node:path';
import { defaultStateDir } from './journal.js';

/** The states of a background job, as Windows BITS names them (`BG_JOB_STATE_*`). */
export const AGENT_JOB_STATES = [
  'QUEUED',
  'CONNECTING',
  'TRANSFERRING',
  'SUSPENDED',
  'TRANSIENT_ERROR',
  'ERROR',
  'TRANSFERRED',
  'ACKNOWLEDGED',
  'CANCELLED',
] as const;
/** A background job's state. */
export type AgentJobState = (typeof AGENT_JOB_STATES)[number];

/** States a job never leaves. */
export const FINAL_STATES: ReadonlySet<AgentJobState> = new Set(['ACKNOWLEDGED', 'CANCELLED']);

/** Priorities, highest first (`BG_JOB_PRIORITY_*`). */
export const PRIORITIES = ['foreground', 'high', 'normal', 'low'] as const;
/** A background job's priority. */
export type Priority = (typeof PRIORITIES)[number];

/** Job types (`BG_JOB_TYPE_*`). */
export const AGENT_JOB_TYPES = ['download', 'upload', 'upload-reply'] as const;
/** A background job's type. */
export type AgentJobType = (typeof AGENT_JOB_TYPES)[number];

/** One file of a job: the remote URL and the local path. */
export interface AgentFileSpec {
  readonly url: string;
  readonly file: string;
}

/** What a job is made of when it is enqueued. Durations in milliseconds, rates in bytes per second. */
export interface AgentJobSpec {
  readonly type: AgentJobType;
  /** One file for uploads, one or more for downloads. */
  readonly files: readonly AgentFileSpec[];
  /** A name to show (`bitsadmin /create <name>`). */
  readonly name?: string | undefined;
  /** Default `normal`. */
  readonly priority?: Priority | undefined;
  /** Wait before the first retry of a transient error (`SetMinimumRetryDelay`). */
  readonly minRetryDelayMs?: number | undefined;
  /** The job goes to `ERROR` after this long without progress (`SetNoProgressTimeout`); 0: never. */
  readonly noProgressTimeoutMs?: number | undefined;
  /** Custom headers (`SetCustomHeaders`); never credentials. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** `user:password` for Basic (or NTLM) authentication; the agent keeps the password encrypted. */
  readonly user?: string | undefined;
  readonly auth?: 'negotiate' | 'ntlm' | undefined;
  /** PEM text of the CA(s) to trust. */
  readonly ca?: string | undefined;
  readonly insecure?: boolean | undefined;
  /** PEM client certificate, with `keyFile`. */
  readonly cert?: string | undefined;
  readonly keyFile?: string | undefined;
  /**
   * Run on `TRANSFERRED` (`ACKNOWLEDGED` for an `autoComplete` job) and `ERROR`: the program and
   * its arguments, never through a shell unless `notifyShell` (then one string for `/bin/sh -c`).
   */
  readonly notifyCommand?: readonly string[] | undefined;
  readonly notifyShell?: boolean | undefined;
  /** Gets a JSON POST on the same occasions. */
  readonly notifyUrl?: string | undefined;
  /** Complete the job as soon as it is `TRANSFERRED`. */
  readonly autoComplete?: boolean | undefined;
  /** This job's own limit, under the agent's global one. */
  readonly maxRateBps?: number | undefined;
  /** Yield to other traffic (uploads only; default: on for every priority but `foreground`). */
  readonly yield?: boolean | undefined;
  /** Where an upload-reply job's reply is saved (default `<file>.reply`). */
  readonly replyFile?: string | undefined;
  /**
   * Create the job `SUSPENDED` (as `bitsadmin /create` does): it may then have no file yet, and
   * starts at `resume`.
   */
  readonly suspended?: boolean | undefined;
}

/**
 * What `update` may change of a job that has not ended: these settings as in {@link AgentJobSpec}
 * (an empty `notifyCommand` or `notifyUrl` removes it), and files added while it is suspended.
 */
export interface AgentJobChanges
  extends Pick<
    AgentJobSpec,
    'name' | 'minRetryDelayMs' | 'noProgressTimeoutMs' | 'notifyCommand' | 'notifyShell' | 'notifyUrl' | 'user' | 'auth' | 'autoComplete' | 'replyFile'
  > {
  readonly addFiles?: readonly AgentFileSpec[] | undefined;
}

/** One file of a job as the agent reports it. */
export interface AgentFileInfo {
  readonly url: string;
  readonly file: string;
  readonly bytesDone: number;
  /** `undefined` while unknown (a download before its first answer). */
  readonly bytesTotal: number | undefined;
  readonly done: boolean;
}

/** A job as the agent reports it. Times in milliseconds since the epoch. */
export interface AgentJobInfo {
  readonly id: string;
  readonly name: string | undefined;
  readonly type: AgentJobType;
  readonly state: AgentJobState;
  readonly priority: Priority;
  readonly files: readonly AgentFileInfo[];
  readonly bytesDone: number;
  readonly bytesTotal: number | undefined;
  readonly createdAt: number;
  readonly modifiedAt: number;
  readonly transferredAt: number | undefined;
  readonly completedAt: number | undefined;
  /** The last error (transient or fatal) with its client error code. */
  readonly error: { readonly code: string; readonly message: string } | undefined;
  /** Transient errors retried since the job was created. */
  readonly errorCount: number;
  readonly autoComplete: boolean;
  readonly maxRateBps: number | undefined;
  readonly yield: boolean;
  /** The reply file of an upload-reply job. */
  readonly replyFile: string | undefined;
  /** A `complete` is in progress (an upload's Close-Session). */
  readonly completing: boolean;
}

/** What the agent says about itself. */
export interface AgentStatus {
  readonly pid: number;
  readonly stateDir: string;
  readonly version: string;
  readonly maxConcurrent: number;
  /** The global limit now (the schedule's entry for this moment), or `undefined`: unlimited. */
  readonly maxRateBps: number | undefined;
  readonly jobs: number;
  readonly running: number;
}

/** The methods of the control API, with their parameters and results. */
export interface AgentMethods {
  enqueue: { params: AgentJobSpec; result: AgentJobInfo };
  list: { params: Record<string, never>; result: AgentJobInfo[] };
  info: { params: { id: string }; result: AgentJobInfo };
  suspend: { params: { id: string }; result: AgentJobInfo };
  resume: { params: { id: string }; result: AgentJobInfo };
  cancel: { params: { id: string }; result: AgentJobInfo };
  complete: { params: { id: string }; result: AgentJobInfo };
  priority: { params: { id: string; priority: Priority }; result: AgentJobInfo };
  update: { params: { id: string; changes: AgentJobChanges }; result: AgentJobInfo };
  status: { params: Record<string, never>; result: AgentStatus };
  /** From now on, every change of every job comes as an {@link AgentEventMessage}. */
  watch: { params: Record<string, never>; result: AgentJobInfo[] };
}
/** A control API method name. */
export type AgentMethod = keyof AgentMethods;

/** A request line. */
export interface AgentRequestMessage<M extends AgentMethod = AgentMethod> {
  readonly id: number;
  readonly method: M;
  readonly params: AgentMethods[M]['params'];
}

/** Error codes of the control API. */
export type AgentErrorCode = 'BAD_REQUEST' | 'UNKNOWN_JOB' | 'AMBIGUOUS_JOB' | 'WRONG_STATE' | 'INTERNAL';

/** A reply line. */
export type AgentReplyMessage =
  | { readonly id: number; readonly result: unknown }
  | { readonly id: number; readonly error: { readonly code: AgentErrorCode; readonly message: string } };

/** An event line (after `watch`): a job changed. */
export interface AgentEventMessage {
  readonly event: 'job';
  readonly job: AgentJobInfo;
}

/** Longest line either side accepts (a job spec with a CA and a certificate fits easily). */
export const MAX_LINE_BYTES = 1024 * 1024;

/** Unix socket paths are limited to about 108 bytes (104 on macOS). */
const MAX_SOCKET_PATH = 100;

/**
 * Where the agent of a state directory listens: `$XDG_RUNTIME_DIR/bits-upload/agent.sock` for the
 * default state directory when `XDG_RUNTIME_DIR` is set, `<stateDir>/agent.sock` otherwise (so
 * agents of different state directories never meet).
 *
 * @throws {RangeError} when the path is too long for a Unix socket.
 * @example
 * ```ts
 * agentSocketPath('/tmp/s'); // '/tmp/s/agent.sock'
 * ```
 */
export function agentSocketPath(stateDir: string = defaultStateDir(), env: NodeJS.ProcessEnv = process.env): string {
  const dir = resolve(stateDir);
  const runtime = env['XDG_RUNTIME_DIR'];
  const path = dir === resolve(defaultStateDir()) && runtime ? join(runtime, 'bits-upload', 'agent.sock') : join(dir, 'agent.sock');
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new RangeError(`the agent's socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter state directory`);
  }
  return path;
}

/**
 * Parses a rate: bytes per second with an optional K, M or G (powers of 1024, as curl's
 * `--limit-rate`), an optional `B`/`iB` and `/s`; `unlimited` is `undefined`.
 *
 * @throws {RangeError} for anything else, or a rate below 1 KiB/s.
 * @example
 * ```ts
 * parseRate('2M');        // 2097152
 * parseRate('512KiB/s');  // 524288
 * parseRate('unlimited'); // undefined
 * ```
 */
export function parseRate(text: string): number | undefined {
  const t = text.trim();
  if (/^(unlimited|none|0)$/i.test(t)) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?(\/s)?$/i.exec(t);
  if (!m) throw new RangeError(`"${text}" is not a rate (bytes per second, e.g. 500K, 2M, 1.5G or unlimited)`);
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const value = Math.round(Number(m[1]) * scale);
  if (value < 1024) throw new RangeError(`rate "${text}" is below 1 KiB/s`);
  return value;
}
