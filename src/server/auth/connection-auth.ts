import type { Socket } from 'node:net';

/** How long an NTLM handshake may wait between its challenge and the client's answer. */
export const NTLM_HANDSHAKE_TTL_MS = 60_000;

/** A principal a connection authenticated as (NTLM and Negotiate are connection-bound, as in IIS). */
export interface BoundPrincipal {
  readonly name: string;
  /** What vouched for it: `ntlm:<users file>` or `negotiate:<keytab>:<service>` (see `authority`). */
  readonly authority: string;
  /** For NTLM, the NT hash it was checked against: a changed password or a removed account ends the binding. */
  readonly nt?: string;
}

/** An NTLM handshake between its challenge (Type 2) and the client's answer (Type 3). */
export interface PendingNtlm {
  readonly authority: string;
  /** The exact Type 1 and Type 2 messages: the client's MIC covers them. */
  readonly negotiate: Buffer;
  readonly challenge: Buffer;
  /** `NTLM` or `Negotiate`: the scheme name the client used, which the answer must use too. */
  readonly scheme: string;
  readonly expires: number;
}

/** The authentication state of one TCP connection. */
export interface ConnectionAuth {
  /** The principals the connection is bound to, by authority (a connection may serve several vdirs). */
  readonly bound: Map<string, BoundPrincipal>;
  pending: PendingNtlm | undefined;
}

const connections = new WeakMap<Socket, ConnectionAuth>();

/**
 * The authentication state of the connection `socket` (created on first use; it goes with the
 * socket). A new connection starts over.
 *
 * @example
 * ```ts
 * const bound = connectionAuth(req.socket).bound.get(authority);
 * ```
 */
export function connectionAuth(socket: Socket): ConnectionAuth {
  let state = connections.get(socket);
  if (!state) {
    state = { bound: new Map(), pending: undefined };
    connections.set(socket, state);
  }
  return state;
}

/** The connection's state if it has any (without creating it). */
export function existingConnectionAuth(socket: Socket | undefined): ConnectionAuth | undefined {
  return socket ? connections.get(socket) : undefined;
}
