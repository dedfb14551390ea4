import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { HttpRequest } from '../../http/types.js';
import { ConfigError } from '../config.js';
import type { AuthConfig, VdirConfig } from '../config.js';
import { dummyHash, verifyPassword } from './password-hash.js';
import { UsersFileCache } from './users-file.js';

/** Who made a request. */
export interface Principal {
  readonly name: string;
  readonly groups: readonly string[];
  readonly scheme: 'basic' | 'client-certificate' | 'custom';
}

/** The outcome of authenticating one request. */
export type AuthDecision =
  | { readonly kind: 'principal'; readonly principal: Principal }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'challenge'; readonly wwwAuthenticate: string; readonly reason: string }
  | { readonly kind: 'denied'; readonly reason: string };

/** What a custom `authenticate` hook answers; `undefined` falls through to the vdir's own schemes. */
export type AuthHookResult =
  | { readonly principal: string; readonly groups?: readonly string[] }
  | { readonly challenge: string }
  | { readonly deny: string };

/**
 * A custom authentication scheme (bearer tokens, a company SSO, …), consulted before the vdir's
 * own schemes.
 *
 * @example
 * ```ts
 * const authenticate: AuthenticateHook = async (req) => {
 *   const token = req.headers['authorization']?.replace(/^Bearer /i, '');
 *   if (!token) return { challenge: 'Bearer realm="bits"' };
 *   const user = await lookUpToken(token);
 *   return user ? { principal: user.name, groups: user.groups } : { deny: 'unknown token' };
 * };
 * ```
 */
export type AuthenticateHook = (
  req: HttpRequest,
  vdir: VdirConfig,
) => AuthHookResult | undefined | Promise<AuthHookResult | undefined>;

const CACHE_TTL_MS = 5 * 60_000;
const CACHE_MAX = 10_000;

/** Reads the principal name out of a verified client certificate. */
function certificateName(socket: TLSSocket, from: AuthConfig['certificateName']): string | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (from === 'cn') {
    const cn = cert.subject?.CN;
    return Array.isArray(cn) ? cn[0] : cn;
  }
  const san = cert.subjectaltname?.split(',')[0]?.trim();
  return san ? san.replace(/^[A-Za-z ]+:/, '') : undefined;
}

/**
 * Authenticates requests for vdirs with an `auth` block: client certificates (verified against the
 * listener's CA), Basic against a users file (scrypt; unknown users cost the same as wrong
 * passwords; successful checks cached for five minutes), anonymous access, and a custom hook.
 */
export class Authenticator {
  private readonly files = new Map<string, UsersFileCache>();
  private readonly verified = new Map<string, { principal: Principal; expires: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly hook?: AuthenticateHook,
  ) {}

  /**
   * Loads every vdir's users file, so that the first logins find their accounts (none is ever
   * checked against a table still loading) and a missing file stops the server at start-up.
   *
   * @throws {ConfigError} naming `vdirs[i].auth.users`.
   * @example
   * ```ts
   * await auth.load(config.vdirs);
   * ```
   */
  async load(vdirs: readonly VdirConfig[]): Promise<void> {
    for (const [i, vdir] of vdirs.entries()) {
      const file = vdir.auth?.users;
      if (!file) continue;
      try {
        await this.usersFile(file).load();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const reason = e.code === 'ENOENT' ? `users file ${file} does not exist (create it with bits user add)` : e.message;
        throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.users: ${reason}`);
      }
    }
  }

  /** Whether a custom `authenticate` hook is installed (it then sees every request). */
  get hasHook(): boolean {
    return this.hook !== undefined;
  }

  /**
   * The account `name` of the vdir's users file as it is now, if it still exists and the vdir still
   * allows it (for session-capability packets, which carry no credentials to check).
   */
  async currentAccount(name: string, vdir: VdirConfig): Promise<Principal | undefined> {
    const file = vdir.auth?.users;
    if (!file || !vdir.auth?.schemes.includes('basic')) return undefined;
    const users = await this.usersFile(file).get();
    const entry = Object.hasOwn(users, name) ? users[name] : undefined;
    if (!entry) return undefined;
    const principal: Principal = { name, groups: entry.groups, scheme: 'basic' };
    return this.allowed(principal, vdir.auth) ? principal : undefined;
  }

  /** Whether a vdir's requests go through authentication at all. */
  guards(vdir: VdirConfig): boolean {
    return vdir.auth !== null || this.hook !== undefined;
  }

  /** Decides who made `req`, for the vdir it addresses. */
  async authenticate(req: HttpRequest, vdir: VdirConfig): Promise<AuthDecision> {
    if (this.hook) {
      const r = await this.hook(req, vdir);
      if (r && 'principal' in r) return { kind: 'principal', principal: { name: r.principal, groups: r.groups ?? [], scheme: 'custom' } };
      if (r && 'challenge' in r) return { kind: 'challenge', wwwAuthenticate: r.challenge, reason: 'custom scheme challenge' };
      if (r && 'deny' in r) return { kind: 'denied', reason: r.deny };
    }
    const auth = vdir.auth;
    if (!auth) return { kind: 'anonymous' };

    if (auth.schemes.includes('client-certificate') && req.encrypted && req.socket) {
      const socket = req.socket as TLSSocket;
      const name = socket.authorized ? certificateName(socket, auth.certificateName) : undefined;
      if (name) return { kind: 'principal', principal: { name, groups: [], scheme: 'client-certificate' } };
      if (!socket.authorized && socket.authorizationError && Object.keys(socket.getPeerCertificate() ?? {}).length) {
        this.logger.info({ reason: String(socket.authorizationError) }, 'client certificate not trusted');
      }
    }

    const basicOffered = auth.schemes.includes('basic');
    const header = req.headers['authorization'];
    const challenge = `Basic realm="${auth.realm}", charset="UTF-8"`;
    if (basicOffered && header && /^basic\s/i.test(header)) {
      if (!req.encrypted && !auth.allowInsecureBasic) return { kind: 'denied', reason: 'Basic credentials over plain HTTP are refused' };
      const decoded = Buffer.from(header.replace(/^basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) return { kind: 'challenge', wwwAuthenticate: challenge, reason: 'malformed Basic credentials' };
      const user = decoded.slice(0, colon);
      const password = decoded.slice(colon + 1);
      const principal = await this.checkPassword(auth.users!, user, password);
      if (principal) return { kind: 'principal', principal };
      return { kind: 'challenge', wwwAuthenticate: challenge, reason: `bad credentials for "${user}"` };
    }
    if (auth.anonymous) return { kind: 'anonymous' };
    if (basicOffered && (req.encrypted || auth.allowInsecureBasic)) {
      return { kind: 'challenge', wwwAuthenticate: challenge, reason: 'credentials required' };
    }
    if (basicOffered) return { kind: 'denied', reason: 'Basic over plain HTTP is refused and no other scheme applies' };
    return { kind: 'denied', reason: 'a trusted client certificate is required' };
  }

  /**
   * Whether a principal may use the vdir: `*` lets in any authenticated principal, `group:x` the
   * members of x, other entries name users.
   */
  allowed(principal: Principal, auth: AuthConfig | null): boolean {
    if (!auth) return true;
    return auth.allow.some((a) => a === '*' || a === principal.name || (a.startsWith('group:') && principal.groups.includes(a.slice(6))));
  }

  /** The one cache of a users file (vdirs may share a file). */
  private usersFile(file: string): UsersFileCache {
    let cache = this.files.get(file);
    if (!cache) {
      cache = new UsersFileCache(file, this.logger);
      this.files.set(file, cache);
    }
    return cache;
  }

  private async checkPassword(file: string, user: string, password: string): Promise<Principal | undefined> {
    const cache = this.usersFile(file);
    const users = await cache.get();
    // Keyed by the file's version too: a changed password or a removed user is never served from the cache.
    const key = createHash('sha256').update(`${file}\0${cache.version}\0${user}\0${password}`).digest('base64');
    const now = Date.now();
    const hit = this.verified.get(key);
    if (hit && hit.expires > now) return hit.principal;
    const entry = Object.hasOwn(users, user) ? users[user] : undefined;
    // Unknown users are checked against a dummy hash: the same work as a wrong password.
    const ok = await verifyPassword(password, entry?.hash ?? (await dummyHash()));
    if (!ok || !entry) return undefined;
    const principal: Principal = { name: user, groups: entry.groups, scheme: 'basic' };
    if (this.verified.size >= CACHE_MAX) this.verified.clear();
    this.verified.set(key, { principal, expires: now + CACHE_TTL_MS });
    return principal;
  }
}
