import { chmod, mkdir, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { MAX_LINE_BYTES, PRIORITIES } from '../client/agent-protocol.js';
import type { AgentErrorCode, AgentJobChanges, AgentJobSpec, AgentMethod, Priority } from '../client/agent-protocol.js';
import { AgentRequestError } from './agent.js';
import type { Agent } from './agent.js';

/** Bytes of answers and events a client may leave unread before it is disconnected. */
const MAX_BUFFERED = 8 * 1024 * 1024;

/** Whether something answers on a Unix socket. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function idParam(params: unknown): string {
  const id = (params as { id?: unknown } | null)?.id;
  if (typeof id !== 'string' || id === '') throw new AgentRequestError('BAD_REQUEST', 'params.id must be a job id');
  return id;
}

/** Dispatches one request to the agent. */
async function dispatch(agent: Agent, method: AgentMethod, params: unknown, watch: () => void): Promise<unknown> {
  switch (method) {
    case 'enqueue':
      return agent.enqueue(params as AgentJobSpec);
    case 'list':
      return agent.list();
    case 'info':
      return agent.info(idParam(params));
    case 'suspend':
      return agent.suspend(idParam(params));
    case 'resume':
      return agent.resume(idParam(params));
    case 'cancel':
      return agent.cancel(idParam(params));
    case 'complete':
      return agent.complete(idParam(params));
    case 'priority': {
      const priority = (params as { priority?: unknown } | null)?.priority;
      if (!PRIORITIES.includes(priority as Priority)) throw new AgentRequestError('BAD_REQUEST', `params.priority must be one of ${PRIORITIES.join(', ')}`);
      return agent.setPriority(idParam(params), priority as Priority);
    }
    case 'update': {
      const changes = (params as { changes?: unknown } | null)?.changes;
      if (typeof changes !== 'object' || changes === null) throw new AgentRequestError('BAD_REQUEST', 'params.changes must be an object');
      return agent.update(idParam(params), changes as AgentJobChanges);
    }
    case 'status':
      return agent.status();
    case 'watch':
      watch();
      return agent.list();
    default:
      throw new AgentRequestError('BAD_REQUEST', `unknown method ${JSON.stringify(method)}`);
  }
}

/** One client connection: lines in, replies and (after `watch`) events out. */
function serveConnection(agent: Agent, socket: Socket, logger: Logger): void {
  socket.setEncoding('utf8');
  let buffered = '';
  let unsubscribe: (() => void) | undefined;
  const send = (message: unknown): void => {
    if (socket.destroyed) return;
    // A watcher that does not read its events is dropped rather than buffered without end.
    if (socket.writableLength > MAX_BUFFERED) {
      logger.warn({ buffered: socket.writableLength }, 'control client does not read its events; disconnected');
      socket.destroy();
      return;
    }
    socket.write(`${JSON.stringify(message)}\n`);
  };
  const handle = async (line: string): Promise<void> => {
    let request: { id?: unknown; method?: unknown; params?: unknown };
    try {
      request = JSON.parse(line) as typeof request;
    } catch {
      send({ id: null, error: { code: 'BAD_REQUEST', message: 'a request is one JSON object per line' } });
      return;
    }
    const id = typeof request.id === 'number' ? request.id : null;
    try {
      const result = await dispatch(agent, request.method as AgentMethod, request.params ?? {}, () => {
        unsubscribe ??= agent.subscribe((job) => send({ event: 'job', job }));
      });
      send({ id, result });
    } catch (err) {
      const code: AgentErrorCode = err instanceof AgentRequestError ? err.code : 'INTERNAL';
      if (code === 'INTERNAL') logger.error({ err, method: request.method }, 'control request failed');
      send({ id, error: { code, message: (err as Error).message } });
    }
  };
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > MAX_LINE_BYTES && !buffered.includes('\n')) {
      send({ id: null, error: { code: 'BAD_REQUEST', message: `a request line is longer than ${MAX_LINE_BYTES} bytes` } });
      socket.destroy();
      return;
    }
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line !== '') void handle(line);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => unsubscribe?.());
}

/**
 * Serves the agent's control API on a Unix socket at `path`, mode 0600 (its folder 0700 when the
 * agent makes it): only the agent's user (and root) can talk to it. A socket left by an agent that
 * died is replaced; one that answers belongs to a live agent and is refused.
 *
 * @throws {Error} when another agent answers on `path`.
 * @example
 * ```ts
 * const control = await serveControl(agent, '/run/user/1000/bits-upload/agent.sock', logger);
 * await control.close();
 * ```
 */
export async function serveControl(agent: Agent, path: string, logger: Logger): Promise<{ close(): Promise<void> }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (await answers(path)) throw new Error(`another agent answers on ${path}`);
  await rm(path, { force: true });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveConnection(agent, socket, logger);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
  return {
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await rm(path, { force: true });
    },
  };
}
