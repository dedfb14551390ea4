import { createHash } from 'node:crypto';
import { access, constants } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { gssapiAvailable } from '../../auth/gssapi.js';
import { isNtlmToken } from '../../auth/ntlm/index.js';
import type { HttpRequest, ResponseHeaders } from '../../http/types.js';
import { ConfigError } from '../config.js';
import type { AuthConfig, VdirConfig } from '../config.js';
import { connectionAuth, existingConnectionAuth } from './connection-auth.js';
import { GroupsFileCache } from './groups-file.js';
import { NegotiateAcceptors, negotiateAuthority } from './negotiate-scheme.js';
import { ntlmBound, ntlmStep } from './ntlm-scheme.js';
import { dummyHash, verifyPassword } from './password-hash.js';
import type { Principal, SchemeStep } from './principal.js';
import { UsersFileCache } from './users-file.js';

export type { Principal } from './principal.js';

/** The outcome of authenticating one request. */
export type AuthDecision =
  /** (`headers` go on the answer: Kerberos's mutual-authentication token) */
  | { readonly kind: 'principal'; readonly principal: Principal; readonly headers?: ResponseHeaders }
  | { readonly kind: 'anonymous' }
  /** A 401 with one `WWW-Authenticate` line per challenge; `handshake`: a leg of NTLM, not a failure. */
  | { readonly kind: 'challenge'; readonly challenges: readonly string[]; readonly reason: string; readonly handshake?: true }
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

/** The `Authorization` header's scheme (lower case) and credentials. */
function credentials(header: string | undefined): { scheme: string; name: string; value: string } | undefined {
  const m = header ? /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:\s+(.*))?$/s.exec(header.trim()) : null;
  return m ? { scheme: m[1]!.toLowerCase(), name: m[1]!, value: (m[2] ?? '').trim() } : undefined;
}

/** A base64 token (RFC 4559's and MS-NLMP's `token68`), or undefined when it is not one. */
function token(value: string): Buffer | undefined {
  if (value === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  return Buffer.from(value, 'base64');
}

/**
 * Authenticates requests for vdirs with an `auth` block: client certificates (verified against the
 * listener's CA), Negotiate (Kerberos through GSSAPI) and NTLM (NTLMv2 against the users file's NT
 * hashes), both bound to the connection once done, Basic against a users file (scrypt; unknown
 * users cost the same as wrong passwords; successful checks cached for five minutes), anonymous
 * access, and a custom hook. A group mapping file adds `group:` memberships to any principal.
 */
export class Authenticator {
  private readonly files = new Map<string, UsersFileCache>();
  private readonly groupFiles = new Map<string, GroupsFileCache>();
  private readonly verified = new Map<string, { principal: Principal; expires: number }>();
  private readonly negotiate = new NegotiateAcceptors();

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
      const auth = vdir.auth;
      const file = auth?.users;
      if (file) {
        try {
          await this.usersFile(file).load();
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          const reason = e.code === 'ENOENT' ? `users file ${file} does not exist (create it with bits user add)` : e.message;
          throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.users: ${reason}`);
        }
      }
      if (auth?.groups) {
        await this.groupsFile(auth.groups)
          .load()
          .catch((err: Error) => {
            throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.groups: ${err.message}`);
          });
      }
      if (auth?.schemes.includes('negotiate')) await this.loadNegotiate(i, auth);
    }
  }

  /** Checks that Negotiate can work with a vdir's settings: GSSAPI there, the keytab readable. */
  private async loadNegotiate(i: number, auth: AuthConfig): Promise<void> {
    const available = gssapiAvailable();
    if (!available.ok) throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.schemes: negotiate: ${available.reason}`);
    const keytab = auth.keytab ?? process.env['KRB5_KTNAME']?.replace(/^FILE:/, '');
    if (!keytab) {
      throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.keytab: negotiate needs a keytab (set auth.keytab or KRB5_KTNAME)`);
    }
    await access(keytab, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.keytab: cannot read ${keytab}: ${err.code ?? err.message}`);
    });
    try {
      this.negotiate.get(auth);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  vdirs[${i}].auth.keytab: ${(err as Error).message}`);
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
      if (r && 'challenge' in r) return { kind: 'challenge', challenges: [r.challenge], reason: 'custom scheme challenge' };
      if (r && 'deny' in r) return { kind: 'denied', reason: r.deny };
    }
    const auth = vdir.auth;
    if (!auth) return { kind: 'anonymous' };
    const decision = await this.decide(req, auth);
    if (decision.kind !== 'principal' || !auth.groups) return decision;
    // (the mapping file's groups add to the users file's)
    const mapped = (await this.groupsFile(auth.groups).get()).get(decision.principal.name) ?? [];
    if (mapped.length === 0) return decision;
    const groups = [...new Set([...decision.principal.groups, ...mapped])];
    return { ...decision, principal: { ...decision.principal, groups } };
  }

  /** The vdir's own schemes, in the order: client certificate, the request's credentials, the connection's. */
  private async decide(req: HttpRequest, auth: AuthConfig): Promise<AuthDecision> {
    if (auth.schemes.includes('client-certificate') && req.encrypted && req.socket) {
      const socket = req.socket as TLSSocket;
      const name = socket.authorized ? certificateName(socket, auth.certificateName) : undefined;
      if (name) return { kind: 'principal', principal: { name, groups: [], scheme: 'client-certificate' } };
      if (!socket.authorized && socket.authorizationError && Object.keys(socket.getPeerCertificate() ?? {}).length) {
        this.logger.info({ reason: String(socket.authorizationError) }, 'client certificate not trusted');
      }
    }
    const basicOffered = auth.schemes.includes('basic');
    const basicUsable = basicOffered && (req.encrypted || auth.allowInsecureBasic);
    const offered = this.challenges(auth, basicUsable);
    const given = credentials(req.headers['authorization']);

    if (given?.scheme === 'basic' && basicOffered) {
      if (!req.encrypted && !auth.allowInsecureBasic) return { kind: 'denied', reason: 'Basic credentials over plain HTTP are refused' };
      const decoded = Buffer.from(given.value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) return { kind: 'challenge', challenges: offered, reason: 'malformed Basic credentials' };
      const user = decoded.slice(0, colon);
      const password = decoded.slice(colon + 1);
      if (user.includes('@') && auth.schemes.includes('negotiate')) {
        return { kind: 'challenge', challenges: offered, reason: `"${user}": names with @ are Kerberos principals on this vdir` };
      }
      const principal = await this.checkPassword(auth.users!, user, password);
      if (principal) return { kind: 'principal', principal };
      return { kind: 'challenge', challenges: offered, reason: `bad credentials for "${user}"` };
    }
    const ntlmOffered = auth.schemes.includes('ntlm');
    const negotiateOffered = auth.schemes.includes('negotiate');
    if (given && (given.scheme === 'ntlm' || given.scheme === 'negotiate')) {
      const bytes = token(given.value);
      // (a client that has no Kerberos ticket may send raw NTLM under the Negotiate name, as Windows does)
      const ntlm = given.scheme === 'ntlm' || (bytes !== undefined && isNtlmToken(bytes));
      if (ntlm ? ntlmOffered : negotiateOffered) {
        if (!bytes) return { kind: 'challenge', challenges: offered, reason: `malformed ${given.name} token` };
        if (!req.socket) return { kind: 'denied', reason: `${given.name} needs a connection of its own, which this request has none of` };
        const conn = connectionAuth(req.socket);
        const step = ntlm
          ? await ntlmStep(conn, bytes, given.name, auth, this.usersFile(auth.users!))
          : await this.negotiate.step(conn, given.value, auth);
        return this.stepDecision(step, offered);
      }
    }
    // A connection that did an NTLM or Negotiate handshake goes on as its principal.
    const conn = existingConnectionAuth(req.socket);
    if (conn && !given) {
      if (ntlmOffered) {
        const bound = await ntlmBound(conn, auth, this.usersFile(auth.users!));
        if (bound) return this.stepDecision(bound, offered);
      }
      const kerberos = negotiateOffered ? conn.bound.get(negotiateAuthority(auth)) : undefined;
      if (kerberos) return { kind: 'principal', principal: { name: kerberos.name, groups: [], scheme: 'negotiate' } };
    }
    if (auth.anonymous) return { kind: 'anonymous' };
    if (offered.length > 0) return { kind: 'challenge', challenges: offered, reason: given ? `${given.name} is not accepted here` : 'credentials required' };
    if (basicOffered) return { kind: 'denied', reason: 'Basic over plain HTTP is refused and no other scheme applies' };
    return { kind: 'denied', reason: 'a trusted client certificate is required' };
  }

  /** The `WWW-Authenticate` challenges of a vdir, in its schemes' order. */
  private challenges(auth: AuthConfig, basicUsable: boolean): string[] {
    const out: string[] = [];
    for (const scheme of auth.schemes) {
      if (scheme === 'negotiate') out.push('Negotiate');
      else if (scheme === 'ntlm') out.push('NTLM');
      else if (scheme === 'basic' && basicUsable) out.push(`Basic realm="${auth.realm}", charset="UTF-8"`);
    }
    return out;
  }

  private stepDecision(step: SchemeStep, offered: readonly string[]): AuthDecision {
    if (step.kind === 'principal') return { kind: 'principal', principal: step.principal, ...(step.headers ? { headers: step.headers } : {}) };
    if (step.kind === 'continue') return { kind: 'challenge', challenges: [step.challenge], reason: step.reason, handshake: true };
    return { kind: 'challenge', challenges: offered, reason: step.reason };
  }

  /**
   * Whether a principal may use the vdir: `*` lets in any authenticated principal, `group:x` the
   * members of x, other entries name users.
   */
  allowed(principal: Principal, auth: AuthConfig | null): boolean {
    if (!auth) return true;
    return auth.allow.some((a) => a === '*' || a === principal.name || (a.startsWith('group:') && principal.groups.includes(a.slice(6))));
  }

  /** The one cache of a group mapping file (vdirs may share a file). */
  private groupsFile(file: string): GroupsFileCache {
    let cache = this.groupFiles.get(file);
    if (!cache) {
      cache = new GroupsFileCache(file, this.logger);
      this.groupFiles.set(file, cache);
    }
    return cache;
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
