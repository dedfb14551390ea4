// Negotiate (SPNEGO, RFC 4559) through the system's GSSAPI (MIT Kerberos), by way of the optional
// package `kerberos`: loaded only when a vdir or a job uses Negotiate, so the server and the client
// run without it.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

/** The part of the `kerberos` package used here. */
interface KerberosModule {
  initializeServer(service: string): Promise<KerberosServer>;
  initializeClient(service: string, options?: { mechOID?: number; gssFlag?: number }): Promise<KerberosClient>;
  GSS_MECH_OID_SPNEGO: number;
  GSS_C_MUTUAL_FLAG: number;
  GSS_C_SEQUENCE_FLAG: number;
}
interface KerberosServer {
  username: string;
  response: string;
  targetName: string;
  contextComplete: boolean;
  step(token: string): Promise<string>;
}
interface KerberosClient {
  response: string;
  contextComplete: boolean;
  step(challenge: string): Promise<string>;
}

/** Negotiate cannot go on: GSSAPI refused a token, or cannot be used with these settings. */
export class NegotiateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NegotiateError';
  }
}

let loaded: { module: KerberosModule } | { error: string } | undefined;

function load(): { module: KerberosModule } | { error: string } {
  if (!loaded) {
    try {
      loaded = { module: createRequire(import.meta.url)('kerberos') as KerberosModule };
    } catch (err) {
      loaded = { error: `the optional package kerberos is not installed or did not build (it needs libkrb5-dev, or krb5-devel, at install): ${(err as Error).message.split('\n')[0]}` };
    }
  }
  return loaded;
}

function kerberos(): KerberosModule {
  const k = load();
  if ('error' in k) throw new NegotiateError(k.error);
  return k.module;
}

/**
 * Whether Negotiate can be used in this process (the `kerberos` package loads), and why not.
 *
 * @example
 * ```ts
 * const gss = gssapiAvailable();
 * if (!gss.ok) console.error(gss.reason);
 * ```
 */
export function gssapiAvailable(): { ok: true } | { ok: false; reason: string } {
  const k = load();
  return 'error' in k ? { ok: false, reason: k.error } : { ok: true };
}

/** GSSAPI's message, without its boilerplate. */
function gssMessage(err: unknown): string {
  return String((err as Error)?.message ?? err)
    .replace(/Unspecified GSS failure\.\s+Minor code may provide more information:?\s*/i, '')
    .trim();
}

/** The keytab this process's acceptors use (GSSAPI reads it from the environment: one per process). */
let processKeytab: string | undefined;

/** Options of a {@link NegotiateAcceptor}. */
export interface AcceptorOptions {
  /** The keytab (default: `KRB5_KTNAME`, else the system's). */
  readonly keytab?: string | undefined;
  /** `HTTP/host@REALM` (or `HTTP/host`): the only service accepted (default: any key of the keytab). */
  readonly servicePrincipal?: string | undefined;
}

/** A completed (or continued) Negotiate leg on the accepting side. */
export interface AcceptResult {
  readonly complete: boolean;
  /** The client's principal, `alice@EXAMPLE.COM`, once complete. */
  readonly principal?: string | undefined;
  /** The token for `WWW-Authenticate: Negotiate <token>` (Kerberos: mutual authentication). */
  readonly responseToken?: string | undefined;
}

/**
 * The accepting side of Negotiate for one service: each `accept` checks one client token in a
 * fresh GSSAPI context (Kerberos through SPNEGO completes in one leg). Tokens are checked against
 * the keytab, GSSAPI's replay cache and the ticket's lifetime.
 *
 * @throws {NegotiateError} from the constructor when a second, different keytab is asked for in
 *   the same process (GSSAPI reads the keytab from the process's environment).
 * @example
 * ```ts
 * const acceptor = new NegotiateAcceptor({ keytab: '/etc/bits/http.keytab', servicePrincipal: 'HTTP/bits.example.com@EXAMPLE.COM' });
 * const { principal, responseToken } = await acceptor.accept(token);
 * ```
 */
export class NegotiateAcceptor {
  private readonly principal: string | undefined;

  constructor(options: AcceptorOptions = {}) {
    if (options.keytab !== undefined) {
      const keytab = resolve(options.keytab);
      if (processKeytab !== undefined && processKeytab !== keytab) {
        throw new NegotiateError(`a process has one keytab: ${processKeytab} is in use, ${keytab} cannot be used too`);
      }
      processKeytab = keytab;
      process.env['KRB5_KTNAME'] = `FILE:${keytab}`;
    }
    const spn = options.servicePrincipal;
    if (spn !== undefined && !/^[^/@\s]+\/[^/@\s]+(?:@\S+)?$/.test(spn)) throw new NegotiateError(`service principal "${spn}" is not SERVICE/host[@REALM]`);
    this.principal = spn;
  }

  /**
   * Checks one client token (base64).
   *
   * @throws {NegotiateError} for a token GSSAPI refuses (bad, expired, replayed, for another
   *   service or key) or a ticket for another service than `servicePrincipal`.
   */
  async accept(tokenBase64: string): Promise<AcceptResult> {
    const k = kerberos();
    let server: KerberosServer;
    try {
      // (no name: any key of the keytab may accept, and the ticket's own target is checked below;
      // the binding reports the target only for such a context)
      server = await k.initializeServer('');
    } catch (err) {
      throw new NegotiateError(`cannot use the service's keys: ${gssMessage(err)}`, { cause: err });
    }
    try {
      await server.step(tokenBase64);
    } catch (err) {
      throw new NegotiateError(gssMessage(err), { cause: err });
    }
    if (!server.contextComplete) return { complete: false, responseToken: server.response || undefined };
    if (this.principal !== undefined && !sameService(server.targetName, this.principal)) {
      throw new NegotiateError(`the ticket is for ${server.targetName}, not ${this.principal}`);
    }
    return { complete: true, principal: server.username, responseToken: server.response || undefined };
  }
}

/** Whether a context's target (`HTTP/host@REALM`) is the configured service (whose realm may be left out). */
function sameService(target: string, configured: string): boolean {
  if (!target) return false;
  const [service, realm] = configured.split('@') as [string, string | undefined];
  const at = target.lastIndexOf('@');
  const targetService = at < 0 ? target : target.slice(0, at);
  const targetRealm = at < 0 ? undefined : target.slice(at + 1);
  return targetService.toLowerCase() === service.toLowerCase() && (realm === undefined || targetRealm === realm);
}

/** Options of a {@link NegotiateInitiator}. */
export interface InitiatorOptions {
  /** The service, host-based: `HTTP@bits.example.com`. */
  readonly service: string;
}

/**
 * The initiating side of Negotiate (SPNEGO with Kerberos), with the ticket of the default
 * credential cache (`KRB5CCNAME`, `kinit`): `step()` makes the first token; `step(token)` checks the
 * server's mutual-authentication answer.
 *
 * @example
 * ```ts
 * const initiator = new NegotiateInitiator({ service: 'HTTP@bits.example.com' });
 * const token = await initiator.step();
 * ```
 */
export class NegotiateInitiator {
  private client: KerberosClient | undefined;

  constructor(private readonly options: InitiatorOptions) {}

  /** Whether the context is established (the server's answer checked). */
  get complete(): boolean {
    return this.client?.contextComplete ?? false;
  }

  /**
   * One leg: without `challenge`, the first token; with it, the server's answer.
   *
   * @throws {NegotiateError} when GSSAPI cannot make a token (no ticket, no KDC) or refuses the answer.
   */
  async step(challengeBase64?: string): Promise<string> {
    const k = kerberos();
    try {
      this.client ??= await k.initializeClient(this.options.service, { mechOID: k.GSS_MECH_OID_SPNEGO, gssFlag: k.GSS_C_MUTUAL_FLAG | k.GSS_C_SEQUENCE_FLAG });
      return (await this.client.step(challengeBase64 ?? '')) ?? '';
    } catch (err) {
      throw new NegotiateError(gssMessage(err), { cause: err });
    }
  }
}
