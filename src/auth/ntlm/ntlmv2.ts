import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ntHash } from './md4.js';
import {
  AV_FLAG_MIC,
  AvId,
  decodeAvPairs,
  encodeAvPairs,
  fileTime,
  layoutAuthenticate,
  NtlmError,
  NtlmFlag,
  parseAuthenticate,
  parseChallenge,
  parseNegotiate,
} from './messages.js';

const hmacMd5 = (key: Buffer, ...data: Buffer[]): Buffer => {
  const h = createHmac('md5', key);
  for (const d of data) h.update(d);
  return h.digest();
};

/**
 * RC4, for the one place NTLM needs it: the exported session key under key exchange (OpenSSL 3
 * offers RC4 only in its legacy provider).
 */
function rc4(key: Buffer, data: Buffer): Buffer {
  const s = new Uint8Array(256);
  for (let i = 0; i < 256; i++) s[i] = i;
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  const out = Buffer.alloc(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 0xff;
    j = (j + s[i]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 0xff]!;
  }
  return out;
}

/**
 * NTOWFv2 (MS-NLMP §3.3.2): HMAC-MD5 of the NT hash over the upper-cased user name and the domain,
 * in UTF-16LE.
 *
 * @example
 * ```ts
 * ntowfv2(ntHash('Password'), 'User', 'Domain').toString('hex'); // '0c868a403bfd7a93a3001ef22ef02e3f'
 * ```
 */
export function ntowfv2(hash: Buffer, user: string, domain: string): Buffer {
  return hmacMd5(hash, Buffer.from(user.toUpperCase() + domain, 'utf16le'));
}

/** The NTLMv2 client blob ("temp" of MS-NLMP §3.3.2) for a challenge's target info. */
export function clientBlob(timestamp: bigint, clientChallenge: Buffer, targetInfo: Buffer): Buffer {
  const head = Buffer.alloc(28);
  head[0] = 1;
  head[1] = 1;
  head.writeBigUInt64LE(timestamp, 8);
  clientChallenge.copy(head, 16);
  return Buffer.concat([head, targetInfo, Buffer.alloc(4)]);
}

/** Options of {@link buildAuthenticate}. */
export interface AuthenticateOptions {
  /** The Negotiate message this side sent, and the server's Challenge (both covered by the MIC). */
  readonly negotiate: Buffer;
  readonly challenge: Buffer;
  readonly user: string;
  readonly domain: string;
  /** The password, or its NT hash. */
  readonly password?: string | undefined;
  readonly ntHash?: Buffer | undefined;
  readonly workstation?: string | undefined;
  /** For tests: 8 bytes (random by default), and the blob's time (the challenge's, else now). */
  readonly clientChallenge?: Buffer | undefined;
  readonly timestamp?: bigint | undefined;
}

/**
 * An Authenticate message (Type 3) answering a Challenge with NTLMv2: the NTProofStr over the
 * server challenge and the client blob, the LMv2 response zeroed when the challenge has a
 * timestamp (as Windows does), and then a MIC over the three messages.
 *
 * @throws {NtlmError} when the challenge is malformed or offers no target info (NTLMv1 only).
 * @example
 * ```ts
 * const type3 = buildAuthenticate({ negotiate, challenge, user: 'alice', domain: 'BITS', password: 's3cret' });
 * ```
 */
export function buildAuthenticate(o: AuthenticateOptions): Buffer {
  parseNegotiate(o.negotiate);
  const challenge = parseChallenge(o.challenge);
  if (challenge.targetInfo.length === 0) throw new NtlmError('the server offers no target info: it wants NTLMv1, which this client does not send');
  const hash = o.ntHash ?? ntHash(o.password ?? '');
  const key = ntowfv2(hash, o.user, o.domain);
  const clientChallenge = o.clientChallenge ?? randomBytes(8);
  const withMic = challenge.timestamp !== undefined;
  // MsvAvFlags says a MIC follows; everything else of the server's target info is echoed.
  const pairs = decodeAvPairs(challenge.targetInfo).filter((p) => p.id !== AvId.Flags);
  if (withMic) {
    const flags = Buffer.alloc(4);
    flags.writeUInt32LE(AV_FLAG_MIC);
    pairs.push({ id: AvId.Flags, value: flags });
  }
  const blob = clientBlob(o.timestamp ?? challenge.timestamp ?? fileTime(), clientChallenge, encodeAvPairs(pairs));
  const ntProof = hmacMd5(key, challenge.serverChallenge, blob);
  const lmResponse = withMic ? Buffer.alloc(24) : Buffer.concat([hmacMd5(key, challenge.serverChallenge, clientChallenge), clientChallenge]);
  const sessionKey = hmacMd5(key, ntProof);
  const unicode = (challenge.flags & NtlmFlag.Unicode) !== 0;
  const flags = (challenge.flags & ~NtlmFlag.KeyExchange & ~NtlmFlag.TargetInfo & ~NtlmFlag.TargetTypeDomain & ~NtlmFlag.TargetTypeServer) | (unicode ? 0 : NtlmFlag.Oem);
  const message = layoutAuthenticate({
    flags: flags >>> 0,
    lmResponse,
    ntResponse: Buffer.concat([ntProof, blob]),
    domain: o.domain,
    user: o.user,
    workstation: o.workstation ?? '',
    encryptedRandomSessionKey: Buffer.alloc(0),
  });
  if (withMic) hmacMd5(sessionKey, o.negotiate, o.challenge, message).copy(message, 72);
  return message;
}

/** Options of {@link verifyAuthenticate}. */
export interface VerifyOptions {
  /** The client's Negotiate message and the Challenge sent, exactly as on the wire (for the MIC). */
  readonly negotiate: Buffer | undefined;
  readonly challenge: Buffer;
  readonly authenticate: Buffer;
  /** The NT hash of an account, if it exists (the server's users file). */
  readonly lookup: (user: string, domain: string) => Buffer | undefined;
}

/** The outcome of {@link verifyAuthenticate}. */
export type VerifyResult = { ok: true; user: string; domain: string; workstation: string } | { ok: false; reason: string };

const DUMMY_HASH = ntHash('\u0000no such account\u0000');
const WRONG = 'unknown user or wrong password';

/**
 * Checks an Authenticate message (Type 3) against the Challenge it answers: NTLMv2 only (LM,
 * NTLMv1 and anonymous logins are refused), the NTProofStr compared in constant time, and the MIC
 * when the client says it sent one. An unknown user costs the same as a wrong password and gets the
 * same reason. Never throws: a malformed message is a refusal.
 *
 * @example
 * ```ts
 * const r = verifyAuthenticate({ negotiate, challenge, authenticate, lookup: (u) => hashes.get(u) });
 * if (r.ok) console.log(`${r.domain}\\${r.user}`);
 * ```
 */
export function verifyAuthenticate(o: VerifyOptions): VerifyResult {
  try {
    return verify(o);
  } catch (err) {
    if (err instanceof NtlmError) return { ok: false, reason: `malformed NTLM message: ${err.message}` };
    return { ok: false, reason: `malformed NTLM message: ${(err as Error).message}` };
  }
}

function verify(o: VerifyOptions): VerifyResult {
  const challenge = parseChallenge(o.challenge);
  const msg = parseAuthenticate(o.authenticate);
  if ((msg.flags & NtlmFlag.Anonymous) !== 0 || msg.user === '' || msg.ntResponse.length === 0) {
    return { ok: false, reason: 'anonymous NTLM logins are refused' };
  }
  if (msg.ntResponse.length === 24) return { ok: false, reason: 'NTLMv1 and LM responses are refused (NTLMv2 only)' };
  if (msg.ntResponse.length < 16 + 28 + 4) return { ok: false, reason: 'NT response too short for NTLMv2' };
  const ntProof = msg.ntResponse.subarray(0, 16);
  const blob = msg.ntResponse.subarray(16);
  if (blob[0] !== 1 || blob[1] !== 1) return { ok: false, reason: 'not an NTLMv2 response' };
  const pairs = decodeAvPairs(blob.subarray(28));
  const avFlags = pairs.find((p) => p.id === AvId.Flags);
  const micPresent = avFlags !== undefined && avFlags.value.length >= 4 && (avFlags.value.readUInt32LE(0) & AV_FLAG_MIC) !== 0;

  const hash = o.lookup(msg.user, msg.domain);
  // (an unknown user goes through the same computation against a dummy hash)
  const key = ntowfv2(hash ?? DUMMY_HASH, msg.user, msg.domain);
  const expected = hmacMd5(key, challenge.serverChallenge, blob);
  const proofOk = timingSafeEqual(expected, ntProof);
  if (!proofOk || hash === undefined) return { ok: false, reason: WRONG };

  if (micPresent) {
    if (!o.negotiate) return { ok: false, reason: 'a MIC without the negotiate message to check it against' };
    if (msg.micOffset === undefined || !msg.mic) return { ok: false, reason: 'the client announced a MIC but sent none' };
    const sessionBaseKey = hmacMd5(key, ntProof);
    const exported =
      (msg.flags & NtlmFlag.KeyExchange) !== 0 && msg.encryptedRandomSessionKey.length === 16 ? rc4(sessionBaseKey, msg.encryptedRandomSessionKey) : sessionBaseKey;
    const zeroed = Buffer.from(o.authenticate);
    zeroed.fill(0, msg.micOffset, msg.micOffset + 16);
    const mic = hmacMd5(exported, o.negotiate, o.challenge, zeroed);
    if (!timingSafeEqual(mic, msg.mic)) return { ok: false, reason: 'the MIC does not match (a message was altered)' };
  }
  return { ok: true, user: msg.user, domain: msg.domain, workstation: msg.workstation };
}
