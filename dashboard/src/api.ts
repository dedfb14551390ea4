// What the dashboard reads from the admin API (/api/*), and how. The browser sends the
// `bits_admin` cookie set by POST /login (same origin); a 401 sends the page to /login.

/** The client of a session's last packet. */
export interface SessionClient {
  readonly address: string;
  readonly userAgent: string | null;
}

/** A live upload session (GET /api/sessions). */
export interface Session {
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
  readonly state: string;
  readonly client: SessionClient | null;
}

/** One vdir's totals (GET /api/stats). */
export interface VdirStats {
  readonly path: string;
  readonly sessionsActive: number;
  readonly bytesReceived: number;
  readonly uploadsCommitted: number;
  readonly packets: number;
  readonly errors: number;
}

/** Bytes received in the 10 s bucket starting at `t`. */
export interface ThroughputBucket {
  readonly t: string;
  readonly bytes: number;
}

/** GET /api/stats. */
export interface Stats {
  readonly node: string;
  readonly startedAt: string;
  readonly vdirs: readonly VdirStats[];
  readonly throughput: readonly ThroughputBucket[];
}

/** An error answer the server sent (GET /api/errors). */
export interface ErrorEntry {
  readonly time: string;
  readonly vdir: string | null;
  readonly packet: string | null;
  readonly status: number;
  readonly hresult: string | null;
  readonly name: string | null;
  readonly reason: string;
  readonly session: string | null;
}

/** Everything one poll reads. */
export interface Snapshot {
  readonly sessions: readonly Session[];
  /** More sessions exist than were read. */
  readonly more: boolean;
  readonly stats: Stats;
  readonly errors: readonly ErrorEntry[];
  /** When it was read (this browser's clock, ms). */
  readonly at: number;
}

/** The most sessions and errors one poll reads. */
const SESSION_LIMIT = 500;
const ERROR_LIMIT = 50;
const TIMEOUT_MS = 8000;

/** The API refused the request for want of a token: sign in. */
export class SignInNeeded extends Error {}

/** An error answer of the API, with its status. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function call<T>(method: 'GET' | 'DELETE', path: string): Promise<T> {
  const res = await fetch(path, { method, headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (res.status === 401) throw new SignInNeeded('sign-in needed');
  const body = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new ApiError(body.error ?? `${method} ${path}: HTTP ${res.status}`, res.status);
  return body;
}

/** Reads sessions, stats and recent errors at once. */
export async function readSnapshot(): Promise<Snapshot> {
  const [sessions, stats, errors] = await Promise.all([
    call<{ sessions: Session[]; next: string | null }>('GET', `/api/sessions?limit=${SESSION_LIMIT}`),
    call<Stats>('GET', '/api/stats'),
    call<{ errors: ErrorEntry[] }>('GET', `/api/errors?limit=${ERROR_LIMIT}`),
  ]);
  return { sessions: sessions.sessions, more: sessions.next !== null, stats, errors: errors.errors, at: Date.now() };
}

/** Cancels a session as a Cancel-Session would; false when it was already gone. */
export async function cancelSession(id: string): Promise<boolean> {
  try {
    await call<{ cancelled: Session }>('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return false;
    throw err;
  }
}
