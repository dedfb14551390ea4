// NTLM (MS-NLMP), NTLMv2 only: what the server needs to check logins against NT hashes, and what
// the client needs to log in. Pure functions on buffers.
export { md4, ntHash } from './md4.js';
export {
  AvId,
  buildChallenge,
  buildNegotiate,
  decodeAvPairs,
  encodeAvPairs,
  isNtlmToken,
  messageType,
  NtlmError,
  NtlmFlag,
  parseAuthenticate,
  parseChallenge,
  parseNegotiate,
} from './messages.js';
export type { AuthenticateMessage, ChallengeMessage, ChallengeOptions, NegotiateMessage } from './messages.js';
export { buildAuthenticate, clientBlob, ntowfv2, verifyAuthenticate } from './ntlmv2.js';
export type { AuthenticateOptions, VerifyOptions, VerifyResult } from './ntlmv2.js';
