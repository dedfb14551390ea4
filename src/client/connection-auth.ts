import type { IncomingMessage } from 'node:http';
import { gssapiAvailable, NegotiateInitiator } from '../auth/gssapi.js';
import { buildAuthenticate, buildNegotiate } from '../auth/ntlm/index.js';
import { BitsClientError } from './errors.js';

/** Connection-bound schemes the client speaks (Windows Authentication, as IIS offers it). */
export type ConnectionScheme = 'negotiate' | 'ntlm';

/** NTLM credentials: `DOMAIN\user` (or `user`, `user@domain`) and the password. */
export interface NtlmCredentials {
  readonly user: string;
  readonly domain: string;
  readonly password: string;
}

/**
 * Splits `DOMAIN\user:password` (or `user:password`) into NTLM credentials. A user principal name
 * (`user@example.com`) goes as it is, with no domain, as Windows sends it.
 *
 * @example
 * ```ts
 * ntlmCredentials('BITS\\alice:s3cret'); // { domain: 'BITS', user: 'alice', password: 's3cret' }
 * ```
 */
export function ntlmCredentials(userPassword: string): NtlmCredentials {
  const colon = userPassword.indexOf(':');
  const account = colon < 0 ? userPassword : userPassword.slice(0, colon);
  const password = colon < 0 ? '' : userPassword.slice(colon + 1);
  const slash = account.indexOf('\\');
  return slash < 0 ? { user: account, domain: '', password } : { user: account.slice(slash + 1), domain: account.slice(0, slash), password };
}

/** One bodyless request of a handshake and its answer (the body already read and dropped). */
export type HandshakeSend = (authorization: string) => Promise<{ status: number; res: IncomingMessage; socket: unknown }>;

/** The token of the first `WWW-Authenticate` challenge of `scheme`, `''` when it has none, undefined when absent. */
export function challengeToken(res: IncomingMessage, scheme: string): string | undefined {
  const lines = res.headersDistinct?.['www-authenticate'] ?? [];
  for (const line of lines) {
    // (one line may hold several challenges, comma-separated, though servers rarely do that with these schemes)
    for (const part of line.split(/,\s*(?=[A-Za-z0-9-]+(?:\s|$))/)) {
      const m = /^([A-Za-z0-9-]+)(?:\s+([A-Za-z0-9+/]+={0,2}))?\s*$/.exec(part.trim());
      if (m && m[1]!.toLowerCase() === scheme.toLowerCase()) return m[2] ?? '';
    }
  }
  return undefined;
}

function authError(message: string, url: URL, label: string, cause?: unknown): BitsClientError {
  return new BitsClientError('BITS_CLIENT_AUTH', message, { url: url.href, request: label, ...(cause ? { cause } : {}) });
}

/**
 * Authenticates one connection with NTLM (a Negotiate message, the server's challenge, the NTLMv2
 * answer) or Negotiate (a Kerberos ticket from the credential cache, and the server's
 * mutual-authentication token checked), through bodyless requests that `send` makes on the one
 * connection the transport keeps. Resolves with the last answer: a 2xx (or any answer other than
 * 401) means the connection is authenticated; a 401 means the server refused the credentials.
 * Returns `'restart'` when the connection was lost between the legs of an NTLM handshake.
 *
 * @throws {BitsClientError} BITS_CLIENT_AUTH when this side cannot authenticate (no ticket, no
 *   GSSAPI, a challenge without a token, a server that fails mutual authentication).
 * @example
 * ```ts
 * const last = await handshake('ntlm', ntlmCredentials('BITS\\alice:pw'), url, 'Ping', send);
 * ```
 */
export async function handshake(
  scheme: ConnectionScheme,
  credentials: NtlmCredentials | undefined,
  url: URL,
  label: string,
  send: HandshakeSend,
): Promise<{ status: number; res: IncomingMessage } | 'restart'> {
  if (scheme === 'ntlm') {
    if (!credentials) throw authError('NTLM needs a user and password (--user DOMAIN\\user:password)', url, label);
    const negotiate = buildNegotiate();
    const first = await send(`NTLM ${negotiate.toString('base64')}`);
    if (first.status !== 401) return first;
    const challenge = challengeToken(first.res, 'NTLM');
    if (challenge === undefined || challenge === '') {
      // (no NTLM challenge: the server does not offer NTLM here, or refused the negotiate message)
      return first;
    }
    let authenticate: Buffer;
    try {
      authenticate = buildAuthenticate({ negotiate, challenge: Buffer.from(challenge, 'base64'), ...credentials });
    } catch (err) {
      throw authError(`the server's NTLM challenge cannot be answered: ${(err as Error).message}`, url, label, err);
    }
    const second = await send(`NTLM ${authenticate.toString('base64')}`);
    // (NTLM is bound to its connection: an answer that came over another one says nothing)
    if (second.socket !== first.socket) return 'restart';
    return second;
  }
  const available = gssapiAvailable();
  if (!available.ok) throw authError(`Negotiate: ${available.reason}`, url, label);
  const initiator = new NegotiateInitiator({ service: `HTTP@${url.hostname}` });
  let token: string;
  try {
    token = await initiator.step();
  } catch (err) {
    throw authError(`Negotiate: no Kerberos ticket for HTTP/${url.hostname} (run kinit?): ${(err as Error).message}`, url, label, err);
  }
  const answer = await send(`Negotiate ${token}`);
  if (answer.status === 401) return answer;
  const mutual = challengeToken(answer.res, 'Negotiate');
  if (mutual) {
    try {
      await initiator.step(mutual);
    } catch (err) {
      throw authError(`Negotiate: the server failed mutual authentication: ${(err as Error).message}`, url, label, err);
    }
  }
  return answer;
}
