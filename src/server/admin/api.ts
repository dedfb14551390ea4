import type { IncomingMessage, ServerResponse } from 'node:http';
import { sessionKey } from '../../protocol/session-id.js';
import type { SessionRecord } from '../../store/types.js';
import { ERROR_RING } from './activity.js';
import type { AdminDeps, AdminRoute } from './route.js';
import { sendJson } from './route.js';

/** Sessions per page when the request names no `limit`, and the most it may name. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Errors listed when the request names no `limit`. */
const DEFAULT_ERRORS = 50;
/** Most store pages one list request reads to fill its page past expired or filtered-out records. */
const MAX_ROUNDS = 10;
/** A session key: a GUID in upper case, without braces. */
const KEY = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;

/** Where a session stands, as the API shows it. */
export type SessionState = 'receiving' | 'complete' | 'committing';
const STATES: readonly SessionState[] = ['receiving', 'complete', 'committing'];

/** One session as `GET /api/sessions` lists it. */
export interface SessionView {
  readonly id: string;
  readonly vdir: string;
  readonly urlPath: string;
  readonly principal: string | null;
  readonly received: number;
  readonly total: number | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly expiresAt: string;
  readonly node: string | null;
  readonly state: SessionState;
  readonly client: { readonly address: string; readonly userAgent: string | null } | null;
}

/** A request the API refuses (400), with the reason it answers. */
class BadQuery extends Error {}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The state a record shows: `complete` once every byte is in, until Close-Session commits it. */
function stateOf(record: SessionRecord): SessionState {
  if (record.state === 'committing') return 'committing';
  return record.total !== null && record.received === record.total ? 'complete' : 'receiving';
}

/** A record as the API shows it; `node` stands in for records that name none (a single server). */
function viewOf(record: SessionRecord, node: string): SessionView {
  return {
    id: record.id,
    vdir: record.vdir,
    urlPath: record.urlPath,
    principal: record.principal,
    received: record.received,
    total: record.total,
    createdAt: iso(record.createdAt),
    updatedAt: iso(record.updatedAt),
    expiresAt: iso(record.updatedAt + record.timeoutMs),
    node: record.node ?? node,
    state: stateOf(record),
    client: record.client ?? null,
  };
}

/** The `limit` query parameter: a whole number from 1 to `max`. */
function limitOf(query: URLSearchParams, fallback: number, max: number): number {
  const text = query.get('limit');
  if (text === null) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw new BadQuery(`limit must be a whole number from 1 to ${max}`);
  return n;
}

/** The filters of `GET /api/sessions`. */
function filtersOf(query: URLSearchParams): { vdir?: string; principal?: string; state?: SessionState; after?: string; limit: number } {
  const state = query.get('state') ?? undefined;
  if (state !== undefined && !STATES.includes(state as SessionState)) throw new BadQuery(`state must be one of ${STATES.join(', ')}`);
  const after = query.get('after') ?? undefined;
  if (after !== undefined && !KEY.test(sessionKey(after))) throw new BadQuery('after must be the next cursor of a previous page');
  return {
    vdir: query.get('vdir') ?? undefined,
    principal: query.get('principal') ?? undefined,
    state: state as SessionState | undefined,
    after,
    limit: limitOf(query, DEFAULT_LIMIT, MAX_LIMIT),
  };
}

/**
 * One page of live sessions in key order. The store's pages are read until this one is full, past
 * expired records the sweep has not removed yet and the `complete`/`receiving` distinction (which
 * the store does not know), at most {@link MAX_ROUNDS} of them. `next` is the key to go on from,
 * null once the store has no more.
 */
async function sessionsPage(deps: AdminDeps, query: URLSearchParams): Promise<{ sessions: SessionView[]; next: string | null }> {
  const { state, limit, ...filters } = filtersOf(query);
  const stored = state === undefined ? undefined : state === 'committing' ? 'committing' : 'receiving';
  const sessions: SessionView[] = [];
  let after = filters.after;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const want = limit - sessions.length;
    const page = await deps.sessions.records.list({ ...filters, state: stored, after, limit: want });
    for (const record of page) {
      after = sessionKey(record.id);
      if (deps.sessions.isExpired(record) || (state !== undefined && stateOf(record) !== state)) continue;
      sessions.push(viewOf(record, deps.node));
    }
    if (page.length < want) return { sessions, next: null };
    if (sessions.length === limit) break;
  }
  return { sessions, next: after ?? null };
}

/** The session key in a path segment (braces optional, any case, percent-encoded or not). */
function keyOf(segment: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new BadQuery('not a session id');
  }
  const key = sessionKey(id);
  if (!KEY.test(key)) throw new BadQuery(`${id} is not a session id`);
  return key;
}

/** The live record of a session, or undefined (unknown, or expired and not swept yet). */
async function liveRecord(deps: AdminDeps, key: string): Promise<SessionRecord | undefined> {
  const record = await deps.sessions.records.get(key);
  return record && !deps.sessions.isExpired(record) ? record : undefined;
}

/**
 * Cancels a session as Cancel-Session does: under its lock (a request in progress is superseded),
 * its data and record are deleted and `session-cancelled` is emitted. Undefined when there is none.
 */
async function cancel(deps: AdminDeps, key: string): Promise<SessionRecord | undefined> {
  const { sessions } = deps;
  return sessions.withLock(key, async (lock) => {
    const record = await liveRecord(deps, key);
    if (!record) return undefined;
    await sessions.remove(record, lock);
    sessions.emit('session-cancelled', record);
    deps.logger.info({ session: record.id, url: record.urlPath }, 'session cancelled through the admin API');
    return record;
  });
}

/** `GET /api/stats`: this node, per-vdir totals with live sessions (all nodes), and throughput. */
async function stats(deps: AdminDeps): Promise<unknown> {
  const live = await deps.sessions.records.countLiveByVdir?.(Date.now());
  return {
    node: deps.node,
    startedAt: deps.activity.startedAt.toISOString(),
    vdirs: deps.config.vdirs.map((v) => ({ path: v.path, sessionsActive: live?.get(v.path) ?? 0, ...deps.activity.totals(v.path) })),
    throughput: deps.activity.throughput(),
  };
}

/** A handler whose {@link BadQuery} becomes a 400. */
function guarded(handle: (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) => Promise<void>): AdminRoute['handle'] {
  return async (req, res, match) => {
    try {
      await handle(req, res, match);
    } catch (err) {
      if (!(err instanceof BadQuery)) throw err;
      sendJson(res, 400, { error: err.message });
    }
  };
}

const queryOf = (req: IncomingMessage): URLSearchParams => new URL(req.url ?? '/', 'http://admin').searchParams;

/**
 * The sessions API (`/api/…`): sessions listed with filters and paging, one session shown or
 * cancelled, per-vdir stats with throughput, and recent errors. The JSON shapes are in the README
 * ("Admin API").
 */
export function apiRoutes(deps: AdminDeps): AdminRoute[] {
  const one = /^\/api\/sessions\/([^/]+)$/;
  return [
    {
      method: 'GET',
      path: /^\/api\/sessions$/,
      handle: guarded(async (req, res) => sendJson(res, 200, await sessionsPage(deps, queryOf(req)))),
    },
    {
      method: 'GET',
      path: one,
      handle: guarded(async (_req, res, match) => {
        const record = await liveRecord(deps, keyOf(match[1]!));
        if (record) sendJson(res, 200, viewOf(record, deps.node));
        else sendJson(res, 404, { error: 'no such session' });
      }),
    },
    {
      method: 'DELETE',
      path: one,
      handle: guarded(async (_req, res, match) => {
        const record = await cancel(deps, keyOf(match[1]!));
        if (record) sendJson(res, 200, { cancelled: viewOf(record, deps.node) });
        else sendJson(res, 404, { error: 'no such session' });
      }),
    },
    { method: 'GET', path: /^\/api\/stats$/, handle: async (_req, res) => sendJson(res, 200, await stats(deps)) },
    {
      method: 'GET',
      path: /^\/api\/errors$/,
      handle: guarded(async (req, res) => sendJson(res, 200, { errors: deps.activity.errors(limitOf(queryOf(req), DEFAULT_ERRORS, ERROR_RING)) })),
    },
  ];
}
