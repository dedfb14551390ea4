import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { agentSocketPath, MAX_LINE_BYTES } from './agent-protocol.js';
import type {
  AgentErrorCode,
  AgentEventMessage,
  AgentJobChanges,
  AgentJobInfo,
  AgentJobSpec,
  AgentMethod,
  AgentMethods,
  AgentReplyMessage,
  AgentStatus,
  Priority,
} from './agent-protocol.js';

/** The agent refused a request (an unknown job, a job in the wrong state), or went away. */
export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode | 'NOT_RUNNING' | 'DISCONNECTED',
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** Options of {@link AgentClient.connect}. */
export interface AgentClientOptions {
  /** The agent's state directory; default: per user. */
  readonly stateDir?: string | undefined;
  /** The socket itself, overriding the one of `stateDir`. */
  readonly socketPath?: string | undefined;
}

/** Events of an {@link AgentClient}. */
export interface AgentClientEvents {
  /** A job changed (after {@link AgentClient.watch}). */
  job: [job: AgentJobInfo];
  /** The connection to the agent ended. */
  close: [];
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * A connection to `bits agent`'s control socket: enqueue background jobs, list them, watch their
 * events, suspend, resume, cancel and complete them.
 *
 * @example
 * ```ts
 * const agent = await AgentClient.connect({ stateDir: '/var/lib/myapp/bits' });
 * const job = await agent.enqueue({ type: 'upload', files: [{ url: 'https://host/up/dump.bin', file: '/tmp/dump.bin' }], priority: 'low' });
 * agent.on('job', (j) => { if (j.id === job.id && j.state === 'TRANSFERRED') void agent.complete(j.id); });
 * await agent.watch();
 * ```
 */
export class AgentClient extends EventEmitter<AgentClientEvents> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buffered = '';
  private closed = false;

  private constructor(private readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
  }

  /**
   * Connects to the agent of a state directory.
   *
   * @throws {AgentError} NOT_RUNNING when no agent listens there.
   */
  static async connect(o: AgentClientOptions = {}): Promise<AgentClient> {
    const path = o.socketPath ?? agentSocketPath(o.stateDir);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', (err: NodeJS.ErrnoException) => {
        const how = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'no agent is running' : `cannot reach the agent (${err.code ?? err.message})`;
        reject(new AgentError('NOT_RUNNING', `${how} at ${path}`));
      });
    });
    return new AgentClient(socket);
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    if (this.buffered.length > MAX_LINE_BYTES && !this.buffered.includes('\n')) {
      this.socket.destroy();
      return;
    }
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (line.trim() === '') continue;
      let message: AgentReplyMessage | AgentEventMessage;
      try {
        message = JSON.parse(line) as AgentReplyMessage | AgentEventMessage;
      } catch {
        continue;
      }
      if ('event' in message) {
        if (message.event === 'job') this.emit('job', message.job);
        continue;
      }
      const waiting = this.pending.get(message.id);
      if (!waiting) continue;
      this.pending.delete(message.id);
      if ('error' in message) waiting.reject(new AgentError(message.error.code, message.error.message));
      else waiting.resolve(message.result);
    }
  }

  private onClose(): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new AgentError('DISCONNECTED', 'the agent closed the connection'));
    this.pending.clear();
    this.emit('close');
  }

  /** Sends one request and waits for its reply. */
  request<M extends AgentMethod>(method: M, params: AgentMethods[M]['params']): Promise<AgentMethods[M]['result']> {
    if (this.closed) return Promise.reject(new AgentError('DISCONNECTED', 'the connection to the agent is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  /** Queues a job; resolves with it at once (state `QUEUED`). */
  enqueue(spec: AgentJobSpec): Promise<AgentJobInfo> {
    return this.request('enqueue', spec);
  }

  /** Every job, oldest first. */
  list(): Promise<AgentJobInfo[]> {
    return this.request('list', {});
  }

  /** One job, by id, a unique prefix of one, or its name (when one job has it). */
  info(id: string): Promise<AgentJobInfo> {
    return this.request('info', { id });
  }

  /** Stops a job until it is resumed (`SUSPENDED`). */
  suspend(id: string): Promise<AgentJobInfo> {
    return this.request('suspend', { id });
  }

  /** Queues a suspended or failed job again. */
  resume(id: string): Promise<AgentJobInfo> {
    return this.request('resume', { id });
  }

  /** Cancels a job: its server sessions are cancelled and its partial files removed (`CANCELLED`). */
  cancel(id: string): Promise<AgentJobInfo> {
    return this.request('cancel', { id });
  }

  /**
   * Completes a `TRANSFERRED` job: downloaded files are renamed to their final names; an upload's
   * Close-Session (the server's commit) is sent. Resolves at once, `completing`; the job is
   * `ACKNOWLEDGED` when that is done.
   */
  complete(id: string): Promise<AgentJobInfo> {
    return this.request('complete', { id });
  }

  /** Changes settings of a job (files only while it is suspended: `bitsadmin /addfile`). */
  update(id: string, changes: AgentJobChanges): Promise<AgentJobInfo> {
    return this.request('update', { id, changes });
  }

  setPriority(id: string, priority: Priority): Promise<AgentJobInfo> {
    return this.request('priority', { id, priority });
  }

  status(): Promise<AgentStatus> {
    return this.request('status', {});
  }

  /** Starts the stream of `job` events; resolves with every job as it stands now. */
  watch(): Promise<AgentJobInfo[]> {
    return this.request('watch', {});
  }

  /** Waits until a job is in one of `states`, watching its events (call {@link watch} first or not). */
  async waitFor(id: string, states: readonly string[], signal?: AbortSignal): Promise<AgentJobInfo> {
    return new Promise<AgentJobInfo>((resolve, reject) => {
      const done = (err: unknown, job?: AgentJobInfo): void => {
        this.off('job', onJob);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (job) resolve(job);
        else reject(err);
      };
      const onJob = (job: AgentJobInfo): void => {
        if (job.id === id && states.includes(job.state)) done(undefined, job);
      };
      const onClose = (): void => done(new AgentError('DISCONNECTED', 'the agent closed the connection'));
      const onAbort = (): void => done(signal?.reason);
      this.on('job', onJob);
      this.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.watch().then(
        (jobs) => {
          const now = jobs.find((j) => j.id === id);
          if (now && states.includes(now.state)) done(undefined, now);
          else if (!now) done(new AgentError('UNKNOWN_JOB', `no job ${id}`));
        },
        (err: unknown) => done(err),
      );
    });
  }

  /** Closes the connection. */
  close(): void {
    this.socket.end();
  }
}
