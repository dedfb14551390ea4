import type { Command } from 'commander';
import type { SessionView } from '../server/admin/api.js';
import { ExitCode, printError, runAction, UsageError } from './client-flags.js';
import { formatBytes, formatTable } from './progress.js';

/** The environment variables the admin API's address and token may come from. */
export const ADMIN_URL_ENV = 'BITS_ADMIN_URL';
export const ADMIN_TOKEN_ENV = 'BITS_ADMIN_TOKEN';
/** Where the admin listener is when nothing says otherwise (the README's example). */
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';
/** How long one request to the admin API may take. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Most pages `list --all` follows. */
const MAX_PAGES = 10_000;

interface AdminFlags {
  admin?: string;
  token?: string;
  json?: boolean;
}

interface ListFlags extends AdminFlags {
  vdir?: string;
  principal?: string;
  state?: string;
  limit?: string;
  after?: string;
  all?: boolean;
}

/** A refusal or failure of the admin API, printed as is; exit 1. */
class AdminError extends Error {}

/** The admin API's base URL from `--admin`, `BITS_ADMIN_URL` or the default. */
function baseUrl(flags: AdminFlags): URL {
  const text = flags.admin ?? process.env[ADMIN_URL_ENV] ?? DEFAULT_ADMIN_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--admin: ${text} is not a URL (e.g. ${DEFAULT_ADMIN_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--admin: ${text} is not an http:// or https:// URL`);
  return url;
}

/** Calls the admin API; its JSON answer, or an {@link AdminError} that says what went wrong. */
async function call<T>(flags: AdminFlags, method: 'GET' | 'DELETE', path: string, query: Record<string, string | undefined> = {}): Promise<{ status: number; body: T }> {
  const base = baseUrl(flags);
  const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base : `${base.href}/`);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  const token = flags.token ?? process.env[ADMIN_TOKEN_ENV];
  let res: Response;
  try {
    res = await fetch(url, { method, headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new AdminError(`cannot reach the admin API at ${base.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AdminError(`${base.origin} answered ${res.status} without JSON: is it the admin listener of bits serve?`);
  }
  if (res.status === 401) {
    throw new AdminError(`the admin API needs a valid token: give --token or set ${ADMIN_TOKEN_ENV}${token ? ' (the one given was refused)' : ''}`);
  }
  // (a 400 is about what the flags asked for: the server says which)
  if (res.status === 400) throw new UsageError((body as { error?: string }).error ?? text);
  if (res.status >= 400 && res.status !== 404) throw new AdminError(`${method} ${url.pathname}: ${res.status} ${(body as { error?: string }).error ?? text}`);
  return { status: res.status, body: body as T };
}

/** `1.5 MiB/3.0 MiB (50%)`, or what is known of it. */
function progress(s: SessionView): string {
  if (s.total === null) return `${formatBytes(s.received)}/?`;
  const percent = s.total === 0 ? 100 : Math.floor((s.received / s.total) * 100);
  return `${formatBytes(s.received)}/${formatBytes(s.total)} (${percent}%)`;
}

function row(s: SessionView): string[] {
  return [s.id, s.state, progress(s), s.principal ?? '-', s.client?.address ?? '-', s.updatedAt, s.urlPath];
}

type Page = { sessions: SessionView[]; next: string | null };

async function listAction(flags: ListFlags): Promise<number> {
  const sessions: SessionView[] = [];
  let after = flags.after;
  let next: string | null = null;
  for (let i = 0; i < MAX_PAGES; i++) {
    const query = { vdir: flags.vdir, principal: flags.principal, state: flags.state, limit: flags.limit, after };
    const { body } = await call<Page>(flags, 'GET', '/api/sessions', query);
    sessions.push(...body.sessions);
    next = body.next;
    if (!flags.all || next === null) break;
    after = next;
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(flags.all ? { sessions, next: null } : { sessions, next }, null, 2)}\n`);
    return ExitCode.Done;
  }
  if (sessions.length === 0) process.stdout.write('no sessions\n');
  else process.stdout.write(formatTable([['ID', 'STATE', 'RECEIVED', 'PRINCIPAL', 'CLIENT', 'UPDATED', 'URL'], ...sessions.map(row)]));
  if (next !== null && !flags.all) process.stdout.write(`more: bits sessions list --after ${next} (or --all)\n`);
  return ExitCode.Done;
}

/** The lines of `show`. */
function details(s: SessionView): string {
  const lines: [string, string][] = [
    ['id', s.id],
    ['url', s.urlPath],
    ['vdir', s.vdir],
    ['state', s.state],
    ['received', progress(s)],
    ['principal', s.principal ?? '-'],
    ['client', s.client ? `${s.client.address} ${s.client.userAgent ?? '(no User-Agent)'}` : '-'],
    ['node', s.node ?? '-'],
    ['created', s.createdAt],
    ['updated', s.updatedAt],
    ['expires', s.expiresAt],
  ];
  return lines.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`).join('\n') + '\n';
}

async function showAction(id: string, flags: AdminFlags): Promise<number> {
  const { status, body } = await call<SessionView>(flags, 'GET', `/api/sessions/${encodeURIComponent(id)}`);
  if (status === 404) throw new AdminError(`no session ${id}`);
  process.stdout.write(flags.json ? `${JSON.stringify(body, null, 2)}\n` : details(body));
  return ExitCode.Done;
}

async function cancelAction(id: string, flags: AdminFlags): Promise<number> {
  const { status, body } = await call<{ cancelled: SessionView }>(flags, 'DELETE', `/api/sessions/${encodeURIComponent(id)}`);
  if (status === 404) throw new AdminError(`no session ${id}`);
  const s = body.cancelled;
  process.stdout.write(flags.json ? `${JSON.stringify(body, null, 2)}\n` : `cancelled ${s.id} (${s.urlPath}, ${progress(s)})\n`);
  return ExitCode.Done;
}

/** Runs a `bits sessions` action: an {@link AdminError} prints and exits 1. */
function run(name: string, action: () => Promise<number>): Promise<void> {
  const command = `sessions ${name}`;
  return runAction(command, async () => {
    try {
      return await action();
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      printError(command, err.message);
      return ExitCode.Fatal;
    }
  });
}

/** The flags every `bits sessions` command takes. */
function adminOptions(command: Command): Command {
  return command
    .option('--admin <url>', `the admin listener (default $${ADMIN_URL_ENV}, else ${DEFAULT_ADMIN_URL})`)
    .option('--token <token>', `its token (default $${ADMIN_TOKEN_ENV})`)
    .option('--json', 'print the JSON the admin API answered');
}

/**
 * Registers `bits sessions list|show|cancel`, which talk to a server's admin API.
 *
 * @example
 * ```ts
 * registerSessions(program);
 * ```
 */
export function registerSessions(program: Command): void {
  const sessions = program.command('sessions').description("list, show and cancel a server's upload sessions through its admin API");
  adminOptions(sessions.command('list'))
    .description('list live sessions in id order, a page at a time')
    .option('--vdir <path>', 'only the sessions of this vdir (its path, e.g. /up)')
    .option('--principal <name>', 'only the sessions of this user')
    .option('--state <state>', 'only sessions receiving, complete or committing')
    .option('--limit <n>', 'sessions per page (1 to 1000, default 100)')
    .option('--after <cursor>', 'the page after this cursor (printed after a full page)')
    .option('--all', 'every page')
    .action((flags: ListFlags) => run('list', () => listAction(flags)));
  adminOptions(sessions.command('show'))
    .description('show one session')
    .argument('<session-id>', 'the session id (braces optional, any case)')
    .action((id: string, flags: AdminFlags) => run('show', () => showAction(id, flags)));
  adminOptions(sessions.command('cancel'))
    .description('cancel a session as Cancel-Session would: its data and record are deleted, the client gets session-not-found')
    .argument('<session-id>', 'the session id (braces optional, any case)')
    .action((id: string, flags: AdminFlags) => run('cancel', () => cancelAction(id, flags)));
}
