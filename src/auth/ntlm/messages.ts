import { randomBytes } from 'node:crypto';

/** A malformed or unexpected NTLM message. */
export class NtlmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NtlmError';
  }
}

/** Negotiate flags (MS-NLMP §2.2.2.5) this implementation reads or sets. */
export const NtlmFlag = {
  Unicode: 0x00000001,
  Oem: 0x00000002,
  RequestTarget: 0x00000004,
  Sign: 0x00000010,
  Seal: 0x00000020,
  Ntlm: 0x00000200,
  Anonymous: 0x00000800,
  AlwaysSign: 0x00008000,
  TargetTypeDomain: 0x00010000,
  TargetTypeServer: 0x00020000,
  ExtendedSessionSecurity: 0x00080000,
  TargetInfo: 0x00800000,
  Version: 0x02000000,
  N128: 0x20000000,
  KeyExchange: 0x40000000,
  N56: 0x80000000,
} as const;

/** AV pair ids of a TargetInfo (MS-NLMP §2.2.2.1). */
export const AvId = {
  Eol: 0,
  NbComputerName: 1,
  NbDomainName: 2,
  DnsComputerName: 3,
  DnsDomainName: 4,
  Flags: 6,
  Timestamp: 7,
} as const;

/** MsvAvFlags bit: the Authenticate message carries a MIC. */
export const AV_FLAG_MIC = 0x2;

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');
/** A version field: Windows 10, build 19041, NTLM revision 15 (informational only). */
const VERSION = Buffer.from([10, 0, 0x61, 0x4a, 0, 0, 0, 15]);

/**
 * Whether `buf` is an NTLM message (starts with `NTLMSSP\0`).
 *
 * @example
 * ```ts
 * isNtlmToken(buildNegotiate()); // true
 * ```
 */
export function isNtlmToken(buf: Buffer): boolean {
  return buf.length >= 12 && buf.subarray(0, 8).equals(SIGNATURE);
}

/**
 * The type of an NTLM message: 1 Negotiate, 2 Challenge, 3 Authenticate.
 *
 * @throws {NtlmError} when `buf` is not an NTLM message of one of these types.
 */
export function messageType(buf: Buffer): 1 | 2 | 3 {
  if (!isNtlmToken(buf)) throw new NtlmError('not an NTLM message (no NTLMSSP signature)');
  const type = buf.readUInt32LE(8);
  if (type !== 1 && type !== 2 && type !== 3) throw new NtlmError(`unknown NTLM message type ${type}`);
  return type;
}

/** The bytes of a security buffer (length, max length, offset at `at`), bounds-checked. */
function field(buf: Buffer, at: number, name: string): Buffer {
  if (at + 8 > buf.length) throw new NtlmError(`message too short for its ${name} field`);
  const length = buf.readUInt16LE(at);
  const offset = buf.readUInt32LE(at + 4);
  if (length === 0) return Buffer.alloc(0);
  if (offset > buf.length || offset + length > buf.length) throw new NtlmError(`${name} lies outside the message`);
  return buf.subarray(offset, offset + length);
}

/** The offset a non-empty security buffer points at, or undefined. */
function fieldOffset(buf: Buffer, at: number): number | undefined {
  return at + 8 <= buf.length && buf.readUInt16LE(at) > 0 ? buf.readUInt32LE(at + 4) : undefined;
}

function text(bytes: Buffer, unicode: boolean): string {
  if (unicode && bytes.length % 2 !== 0) throw new NtlmError('a UTF-16 string of odd length');
  return bytes.toString(unicode ? 'utf16le' : 'latin1');
}

/** Lays out a message: fixed part, then each payload in order, security buffers filled in. */
function layout(fixed: Buffer, payloads: readonly { at: number; bytes: Buffer }[]): Buffer {
  let offset = fixed.length;
  for (const p of payloads) {
    fixed.writeUInt16LE(p.bytes.length, p.at);
    fixed.writeUInt16LE(p.bytes.length, p.at + 2);
    fixed.writeUInt32LE(offset, p.at + 4);
    offset += p.bytes.length;
  }
  return Buffer.concat([fixed, ...payloads.map((p) => p.bytes)]);
}

function header(type: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  SIGNATURE.copy(b);
  b.writeUInt32LE(type, 8);
  return b;
}

/**
 * A Negotiate message (Type 1), as a modern client sends it: Unicode, NTLM with extended session
 * security, 128-bit, target info requested. No signing or sealing is asked for: HTTP needs neither.
 *
 * @example
 * ```ts
 * const negotiate = buildNegotiate();
 * ```
 */
export function buildNegotiate(): Buffer {
  const flags =
    NtlmFlag.Unicode | NtlmFlag.Oem | NtlmFlag.RequestTarget | NtlmFlag.Ntlm | NtlmFlag.AlwaysSign | NtlmFlag.ExtendedSessionSecurity | NtlmFlag.Version | NtlmFlag.N128 | NtlmFlag.N56;
  const b = header(1, 40);
  b.writeUInt32LE(flags >>> 0, 12);
  // (domain and workstation fields empty, offsets at the end)
  b.writeUInt32LE(40, 20);
  b.writeUInt32LE(40, 28);
  VERSION.copy(b, 32);
  return b;
}

/** What a Negotiate message says. */
export interface NegotiateMessage {
  readonly flags: number;
}

/**
 * Reads a Negotiate message (Type 1).
 *
 * @throws {NtlmError} when it is not one.
 */
export function parseNegotiate(buf: Buffer): NegotiateMessage {
  if (messageType(buf) !== 1) throw new NtlmError('expected an NTLM negotiate message (type 1)');
  if (buf.length < 16) throw new NtlmError('negotiate message too short');
  return { flags: buf.readUInt32LE(12) };
}

/** Encodes AV pairs, ending with MsvAvEOL. */
export function encodeAvPairs(pairs: readonly { id: number; value: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { id, value } of pairs) {
    if (id === AvId.Eol) continue;
    const h = Buffer.alloc(4);
    h.writeUInt16LE(id, 0);
    h.writeUInt16LE(value.length, 2);
    parts.push(h, value);
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

/**
 * Decodes AV pairs up to MsvAvEOL (which is not returned).
 *
 * @throws {NtlmError} when a pair runs past the end, or there is no MsvAvEOL.
 */
export function decodeAvPairs(buf: Buffer): { id: number; value: Buffer }[] {
  const pairs: { id: number; value: Buffer }[] = [];
  for (let at = 0; ; ) {
    if (at + 4 > buf.length) throw new NtlmError('target info without its end marker');
    const id = buf.readUInt16LE(at);
    const length = buf.readUInt16LE(at + 2);
    if (id === AvId.Eol) return pairs;
    if (at + 4 + length > buf.length) throw new NtlmError('a target info pair runs past its end');
    pairs.push({ id, value: buf.subarray(at + 4, at + 4 + length) });
    at += 4 + length;
  }
}

/** The current time as a Windows FILETIME (100 ns since 1601-01-01). */
export function fileTime(ms = Date.now()): bigint {
  return (BigInt(Math.round(ms)) + 11644473600000n) * 10000n;
}

/** Options of {@link buildChallenge}. */
export interface ChallengeOptions {
  /** The client's Negotiate message, whose flags the challenge answers. */
  readonly negotiate: Buffer;
  /** The domain the server names (NetBIOS form). */
  readonly targetName: string;
  /** The server's DNS host name, for the target info. */
  readonly dnsHostName?: string | undefined;
  /** 8 bytes; random by default. */
  readonly serverChallenge?: Buffer | undefined;
  /** FILETIME of the challenge; now by default. */
  readonly timestamp?: bigint | undefined;
}

/**
 * A Challenge message (Type 2) answering a Negotiate message: a fresh 8-byte server challenge and
 * target info with a timestamp, so that NTLMv2 clients add a MIC. Only flags the client asked for
 * (among those this side supports) are granted.
 *
 * @throws {NtlmError} when `negotiate` is not a Negotiate message.
 * @example
 * ```ts
 * const { message, serverChallenge } = buildChallenge({ negotiate, targetName: 'BITS' });
 * ```
 */
export function buildChallenge(o: ChallengeOptions): { message: Buffer; serverChallenge: Buffer } {
  const asked = parseNegotiate(o.negotiate).flags;
  const unicode = (asked & NtlmFlag.Unicode) !== 0;
  const grantable =
    NtlmFlag.Sign | NtlmFlag.Seal | NtlmFlag.AlwaysSign | NtlmFlag.ExtendedSessionSecurity | NtlmFlag.N128 | NtlmFlag.KeyExchange | NtlmFlag.N56 | NtlmFlag.Version;
  const flags =
    ((asked & grantable) | (unicode ? NtlmFlag.Unicode : NtlmFlag.Oem) | NtlmFlag.RequestTarget | NtlmFlag.Ntlm | NtlmFlag.TargetTypeDomain | NtlmFlag.TargetInfo) >>>
    0;
  const serverChallenge = o.serverChallenge ?? randomBytes(8);
  if (serverChallenge.length !== 8) throw new NtlmError('a server challenge has 8 bytes');
  const str = (s: string): Buffer => Buffer.from(s, 'utf16le');
  const host = (o.dnsHostName ?? o.targetName).toLowerCase();
  const stamp = Buffer.alloc(8);
  stamp.writeBigUInt64LE(o.timestamp ?? fileTime());
  const targetInfo = encodeAvPairs([
    { id: AvId.NbDomainName, value: str(o.targetName.toUpperCase()) },
    { id: AvId.NbComputerName, value: str((host.split('.')[0] ?? host).toUpperCase().slice(0, 15)) },
    { id: AvId.DnsDomainName, value: str(o.targetName.toLowerCase()) },
    { id: AvId.DnsComputerName, value: str(host) },
    { id: AvId.Timestamp, value: stamp },
  ]);
  const b = header(2, 56);
  b.writeUInt32LE(flags, 20);
  serverChallenge.copy(b, 24);
  VERSION.copy(b, 48);
  const target = unicode ? str(o.targetName.toUpperCase()) : Buffer.from(o.targetName.toUpperCase(), 'latin1');
  const message = layout(b, [
    { at: 12, bytes: target },
    { at: 40, bytes: targetInfo },
  ]);
  return { message, serverChallenge };
}

/** What a Challenge message says. */
export interface ChallengeMessage {
  readonly flags: number;
  readonly serverChallenge: Buffer;
  readonly targetName: string;
  /** The raw AV pairs (with their end marker). */
  readonly targetInfo: Buffer;
  /** MsvAvTimestamp, when the target info has one. */
  readonly timestamp: bigint | undefined;
}

/**
 * Reads a Challenge message (Type 2).
 *
 * @throws {NtlmError} when it is not one, or its fields do not fit.
 */
export function parseChallenge(buf: Buffer): ChallengeMessage {
  if (messageType(buf) !== 2) throw new NtlmError('expected an NTLM challenge message (type 2)');
  if (buf.length < 32) throw new NtlmError('challenge message too short');
  const flags = buf.readUInt32LE(20);
  const targetName = text(field(buf, 12, 'target name'), (flags & NtlmFlag.Unicode) !== 0);
  const serverChallenge = Buffer.from(buf.subarray(24, 32));
  const targetInfo = buf.length >= 48 && (flags & NtlmFlag.TargetInfo) !== 0 ? Buffer.from(field(buf, 40, 'target info')) : Buffer.alloc(0);
  let timestamp: bigint | undefined;
  if (targetInfo.length > 0) {
    const ts = decodeAvPairs(targetInfo).find((p) => p.id === AvId.Timestamp);
    if (ts && ts.value.length === 8) timestamp = ts.value.readBigUInt64LE();
  }
  return { flags, serverChallenge, targetName, targetInfo, timestamp };
}

/** What an Authenticate message says. */
export interface AuthenticateMessage {
  readonly flags: number;
  readonly lmResponse: Buffer;
  readonly ntResponse: Buffer;
  readonly domain: string;
  readonly user: string;
  readonly workstation: string;
  readonly encryptedRandomSessionKey: Buffer;
  /** The MIC and where it sits, when the message has room for one (a payload at 88 or later). */
  readonly mic: Buffer | undefined;
  readonly micOffset: number | undefined;
}

/** Where the MIC sits in an Authenticate message that has a version field. */
export const MIC_OFFSET = 72;

/**
 * Reads an Authenticate message (Type 3), every security buffer checked against the message's
 * length.
 *
 * @throws {NtlmError} when it is not one, or its fields do not fit.
 */
export function parseAuthenticate(buf: Buffer): AuthenticateMessage {
  if (messageType(buf) !== 3) throw new NtlmError('expected an NTLM authenticate message (type 3)');
  if (buf.length < 64) throw new NtlmError('authenticate message too short');
  const flags = buf.readUInt32LE(60);
  const unicode = (flags & NtlmFlag.Unicode) !== 0;
  const fields = [12, 20, 28, 36, 44, 52];
  const payloadStart = Math.min(buf.length, ...fields.map((at) => fieldOffset(buf, at) ?? buf.length));
  const hasMic = payloadStart >= MIC_OFFSET + 16;
  return {
    flags,
    lmResponse: field(buf, 12, 'LM response'),
    ntResponse: field(buf, 20, 'NT response'),
    domain: text(field(buf, 28, 'domain'), unicode),
    user: text(field(buf, 36, 'user name'), unicode),
    workstation: text(field(buf, 44, 'workstation'), unicode),
    encryptedRandomSessionKey: field(buf, 52, 'session key'),
    mic: hasMic ? Buffer.from(buf.subarray(MIC_OFFSET, MIC_OFFSET + 16)) : undefined,
    micOffset: hasMic ? MIC_OFFSET : undefined,
  };
}

/** Lays out an Authenticate message (Type 3) with room for a MIC (zeroed). */
export function layoutAuthenticate(o: {
  flags: number;
  lmResponse: Buffer;
  ntResponse: Buffer;
  domain: string;
  user: string;
  workstation: string;
  encryptedRandomSessionKey: Buffer;
}): Buffer {
  const unicode = (o.flags & NtlmFlag.Unicode) !== 0;
  const str = (s: string): Buffer => Buffer.from(s, unicode ? 'utf16le' : 'latin1');
  const b = header(3, 88);
  b.writeUInt32LE(o.flags >>> 0, 60);
  VERSION.copy(b, 64);
  return layout(b, [
    { at: 28, bytes: str(o.domain) },
    { at: 36, bytes: str(o.user) },
    { at: 44, bytes: str(o.workstation) },
    { at: 12, bytes: o.lmResponse },
    { at: 20, bytes: o.ntResponse },
    { at: 52, bytes: o.encryptedRandomSessionKey },
  ]);
}
