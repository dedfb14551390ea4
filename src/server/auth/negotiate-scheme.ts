import { NegotiateAcceptor } from '../../auth/gssapi.js';
import type { AuthConfig } from '../config.js';
import type { ConnectionAuth } from './connection-auth.js';
import type { SchemeStep } from './principal.js';

/** The authority Negotiate logins of a vdir are bound under: its keytab and service. */
export function negotiateAuthority(auth: AuthConfig): string {
  return `negotiate:${auth.keytab ?? ''}:${auth.servicePrincipal ?? '*'}`;
}

/** The realm of `HTTP/host@REALM`, if it names one. */
function serviceRealm(auth: AuthConfig): string | undefined {
  const at = auth.servicePrincipal?.lastIndexOf('@') ?? -1;
  return at >= 0 ? auth.servicePrincipal!.slice(at + 1) : undefined;
}

/**
 * The name a Kerberos principal goes by on a vdir: `alice@EXAMPLE.COM` as it is, or `alice` with
 * `stripRealm` when the realm is the service's own (principals of other realms keep theirs, so they
 * never stand for a local name).
 */
export function kerberosName(principal: string, auth: AuthConfig): string {
  const realm = serviceRealm(auth);
  if (auth.stripRealm && realm && principal.endsWith(`@${realm}`)) return principal.slice(0, -realm.length - 1);
  return principal;
}

/** The acceptors of the server, one per keytab and service principal. */
export class NegotiateAcceptors {
  private readonly acceptors = new Map<string, NegotiateAcceptor>();

  /**
   * The acceptor of a vdir's settings (made once: a second keytab in one process is refused by it).
   *
   * @throws {NegotiateError} when GSSAPI cannot be used with these settings.
   */
  get(auth: AuthConfig): NegotiateAcceptor {
    const key = negotiateAuthority(auth);
    let acceptor = this.acceptors.get(key);
    if (!acceptor) {
      acceptor = new NegotiateAcceptor({ keytab: auth.keytab ?? undefined, servicePrincipal: auth.servicePrincipal ?? undefined });
      this.acceptors.set(key, acceptor);
    }
    return acceptor;
  }

  /**
   * One Negotiate (SPNEGO/Kerberos) token: a complete handshake binds the connection to the
   * principal and answers with the mutual-authentication token.
   *
   * @example
   * ```ts
   * const step = await acceptors.step(conn, token, vdir.auth);
   * ```
   */
  async step(conn: ConnectionAuth | undefined, tokenBase64: string, auth: AuthConfig): Promise<SchemeStep> {
    let result;
    try {
      result = await this.get(auth).accept(tokenBase64);
    } catch (err) {
      return { kind: 'failed', reason: `Negotiate login refused: ${(err as Error).message}` };
    }
    if (!result.complete || !result.principal) {
      // (Kerberos completes in one leg; a mechanism that needs more, such as NTLM inside SPNEGO, is not accepted here)
      return { kind: 'failed', reason: 'Negotiate needs more than one leg (only Kerberos is accepted; send NTLM as NTLM)' };
    }
    const name = kerberosName(result.principal, auth);
    conn?.bound.set(negotiateAuthority(auth), { name, authority: negotiateAuthority(auth) });
    const headers = result.responseToken ? { 'WWW-Authenticate': `Negotiate ${result.responseToken}` } : undefined;
    return { kind: 'principal', principal: { name, groups: [], scheme: 'negotiate' }, ...(headers ? { headers } : {}) };
  }
}
