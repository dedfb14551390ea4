import { hostname } from 'node:os';
import { buildChallenge, messageType, parseNegotiate, verifyAuthenticate } from '../../auth/ntlm/index.js';
import type { AuthConfig } from '../config.js';
import type { BoundPrincipal, ConnectionAuth } from './connection-auth.js';
import { NTLM_HANDSHAKE_TTL_MS } from './connection-auth.js';
import type { SchemeStep } from './principal.js';
import type { UserEntry, Users, UsersFileCache } from './users-file.js';

/** The NetBIOS-style name of this server: its host name's first label, upper case. */
function hostLabel(): string {
  return (hostname().split('.')[0] || 'BITS').toUpperCase().slice(0, 15);
}

/** The domain an NTLM vdir's challenge names (its `ntlmDomain`, else the host's name). */
export function ntlmDomain(auth: AuthConfig): string {
  return auth.ntlmDomain ?? hostLabel();
}

/** The authority NTLM logins of a vdir are bound under: its users file and domain. */
export function ntlmAuthority(auth: AuthConfig): string {
  return `ntlm:${auth.users}:${ntlmDomain(auth).toUpperCase()}`;
}

/**
 * The account of a users file an NTLM login names: the same name, or else the one account whose
 * name differs only in case (Windows user names are case-insensitive), if it opted in to NTLM.
 */
function ntlmAccount(users: Users, user: string): [string, UserEntry & { nt: string }] | undefined {
  const exact = Object.hasOwn(users, user) ? users[user] : undefined;
  if (exact) return exact.nt ? [user, exact as UserEntry & { nt: string }] : undefined;
  const folded = user.toLowerCase();
  const matches = Object.entries(users).filter(([name]) => name.toLowerCase() === folded);
  if (matches.length !== 1) return undefined;
  const [name, entry] = matches[0]!;
  return entry.nt ? [name, entry as UserEntry & { nt: string }] : undefined;
}

/** Whether a login's domain is this server's: none, `.`, the challenge's domain, or the host's name. */
function localDomain(domain: string, auth: AuthConfig): boolean {
  const d = domain.toUpperCase();
  return d === '' || d === '.' || d === ntlmDomain(auth).toUpperCase() || d === hostLabel();
}

/**
 * One leg of an NTLM handshake (MS-NLMP, NTLMv2 only) on a connection: a Negotiate message (Type 1)
 * gets a challenge (Type 2) and the connection remembers both; an Authenticate message (Type 3)
 * answering that challenge is checked against the users file's NT hashes and binds the connection
 * to the account. `scheme` is the name the client used (`NTLM`, or `Negotiate` carrying raw NTLM).
 *
 * @example
 * ```ts
 * const step = await ntlmStep(connectionAuth(req.socket), token, 'NTLM', vdir.auth, users);
 * ```
 */
export async function ntlmStep(
  conn: ConnectionAuth,
  token: Buffer,
  scheme: string,
  auth: AuthConfig,
  users: UsersFileCache,
): Promise<SchemeStep> {
  const authority = ntlmAuthority(auth);
  let type: number;
  try {
    type = messageType(token);
  } catch (err) {
    return { kind: 'failed', reason: `malformed NTLM token: ${(err as Error).message}` };
  }
  if (type === 1) {
    try {
      parseNegotiate(token);
    } catch (err) {
      return { kind: 'failed', reason: `malformed NTLM negotiate message: ${(err as Error).message}` };
    }
    const { message } = buildChallenge({ negotiate: token, targetName: ntlmDomain(auth), dnsHostName: hostname() });
    conn.pending = { authority, negotiate: token, challenge: message, scheme, expires: Date.now() + NTLM_HANDSHAKE_TTL_MS };
    return { kind: 'continue', challenge: `${scheme} ${message.toString('base64')}`, reason: 'NTLM challenge sent' };
  }
  if (type !== 3) return { kind: 'failed', reason: `unexpected NTLM message type ${type} from the client` };
  const pending = conn.pending;
  conn.pending = undefined;
  if (!pending || pending.authority !== authority || pending.expires < Date.now()) {
    return { kind: 'failed', reason: 'NTLM authenticate message without a challenge on this connection' };
  }
  const table = await users.get();
  let account: [string, UserEntry & { nt: string }] | undefined;
  const result = verifyAuthenticate({
    negotiate: pending.negotiate,
    challenge: pending.challenge,
    authenticate: token,
    lookup: (user, domain) => {
      account = localDomain(domain, auth) ? ntlmAccount(table, user) : undefined;
      return account ? Buffer.from(account[1].nt, 'hex') : undefined;
    },
  });
  if (!result.ok || !account) return { kind: 'failed', reason: `NTLM login refused: ${result.ok ? 'unknown user' : result.reason}` };
  const [name, entry] = account;
  const bound: BoundPrincipal = { name, authority, nt: entry.nt.toLowerCase() };
  conn.bound.set(authority, bound);
  return { kind: 'principal', principal: { name, groups: entry.groups, scheme: 'ntlm' } };
}

/**
 * The account an NTLM-bound connection acts as, if it still exists with the same NT hash (a changed
 * password or a removed account ends the binding).
 */
export async function ntlmBound(conn: ConnectionAuth, auth: AuthConfig, users: UsersFileCache): Promise<SchemeStep | undefined> {
  const authority = ntlmAuthority(auth);
  const bound = conn.bound.get(authority);
  if (!bound) return undefined;
  const table = await users.get();
  const entry = Object.hasOwn(table, bound.name) ? table[bound.name] : undefined;
  if (!entry?.nt || entry.nt.toLowerCase() !== bound.nt) {
    conn.bound.delete(authority);
    return undefined;
  }
  return { kind: 'principal', principal: { name: bound.name, groups: entry.groups, scheme: 'ntlm' } };
}
