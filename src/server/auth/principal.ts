import type { ResponseHeaders } from '../../http/types.js';

/** Who made a request. */
export interface Principal {
  readonly name: string;
  readonly groups: readonly string[];
  readonly scheme: 'basic' | 'client-certificate' | 'negotiate' | 'ntlm' | 'custom';
}

/**
 * The outcome of one leg of a challenge-response scheme (NTLM, Negotiate): a principal (with headers
 * for the answer, such as Kerberos's mutual-authentication token), a further challenge to send as
 * the only `WWW-Authenticate` of a 401, or a failure (a 401 that offers every scheme again).
 */
export type SchemeStep =
  | { readonly kind: 'principal'; readonly principal: Principal; readonly headers?: ResponseHeaders }
  | { readonly kind: 'continue'; readonly challenge: string; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };
