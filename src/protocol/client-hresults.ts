import { hresultName } from './hresult.js';

/**
 * HRESULTs a BITS client reports for failures that never travel on the wire (spec §4.3), beside the
 * wire codes of {@link HResult}.
 *
 * @example
 * ```ts
 * clientHresultName(ClientHResult.LocalFileChanged); // 'BG_E_LOCAL_FILE_CHANGED'
 * ```
 */
export const ClientHResult = {
  /** BG_E_NETWORK_DISCONNECTED: the connection was lost. */
  NetworkDisconnected: 0x80200010,
  /** BG_E_MISSING_FILE_SIZE: a download without Content-Length. */
  MissingFileSize: 0x80200011,
  /** BG_E_INVALID_SERVER_RESPONSE: the server broke the protocol. */
  InvalidServerResponse: 0x8020001b,
  /** BG_E_LOCAL_FILE_CHANGED: the upload source changed during the transfer. */
  LocalFileChanged: 0x8020001d,
  /** BG_E_NO_PROGRESS: no progress within the no-progress timeout. */
  NoProgress: 0x80200024,
  /** BG_E_CONNECT_FAILURE. */
  ConnectFailure: 0x8020002d,
} as const;

const NAMES: Record<number, string> = {
  0x80200010: 'BG_E_NETWORK_DISCONNECTED',
  0x80200011: 'BG_E_MISSING_FILE_SIZE',
  0x8020001b: 'BG_E_INVALID_SERVER_RESPONSE',
  0x8020001d: 'BG_E_LOCAL_FILE_CHANGED',
  0x80200024: 'BG_E_NO_PROGRESS',
  0x8020002d: 'BG_E_CONNECT_FAILURE',
};

/**
 * {@link hresultName} plus the client-side codes of {@link ClientHResult}.
 *
 * @example
 * ```ts
 * clientHresultName(0x8020001f); // 'BG_E_SESSION_NOT_FOUND'
 * clientHresultName(0x80200024); // 'BG_E_NO_PROGRESS'
 * ```
 */
export function clientHresultName(code: number): string {
  return NAMES[code >>> 0] ?? hresultName(code);
}
