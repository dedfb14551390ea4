// The NTLM implementation (src/auth/ntlm): MD4 against RFC 1320, NTLMv2 against MS-NLMP §4.2.4,
// handshakes built by one side and checked by the other, every refusal, and hostile input.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  buildAuthenticate,
  buildChallenge,
  buildNegotiate,
  clientBlob,
  encodeAvPairs,
  isNtlmToken,
  md4,
  NtlmError,
  ntHash,
  ntowfv2,
  parseAuthenticate,
  parseChallenge,
  parseNegotiate,
  verifyAuthenticate,
} from '../src/auth/ntlm/index.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('NTLM', () => {
  it('MD4 gives the RFC 1320 test vectors; the NT hash of "Password" is the known one', () => {
    const vectors: [string, string][] = [
      ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
      ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
      ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
      ['message digest', 'd9130a8164549fe818874806e1c7014b'],
      ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
      ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
      ['1234567890'.repeat(8), 'e33b4ddc9c38f2199c3e7b164fcc0536'],
    ];
    for (const [input, digest] of vectors) assert.equal(hex(md4(Buffer.from(input))), digest, JSON.stringify(input));
    assert.equal(hex(ntHash('Password')), 'a4f49c406510bdcab6824ee7c30fd852');
  });

  it('NTLMv2 gives the MS-NLMP §4.2.4 values', () => {
    const key = ntowfv2(ntHash('Password'), 'User', 'Domain');
    assert.equal(hex(key), '0c868a403bfd7a93a3001ef22ef02e3f');
    const serverChallenge = Buffer.from('0123456789abcdef', 'hex');
    const clientChallenge = Buffer.from('aaaaaaaaaaaaaaaa', 'hex');
    const targetInfo = encodeAvPairs([
      { id: 2, value: Buffer.from('Domain', 'utf16le') },
      { id: 1, value: Buffer.from('Server', 'utf16le') },
    ]);
    const blob = clientBlob(0n, clientChallenge, targetInfo);
    const proof = createHmac('md5', key).update(serverChallenge).update(blob).digest();
    assert.equal(hex(proof), '68cd0ab851e51c96aabc927bebef6a1c');
    assert.equal(hex(createHmac('md5', key).update(serverChallenge).update(clientChallenge).digest()), '86c35097ac9cec102554764a57cccc19');
    assert.equal(hex(createHmac('md5', key).update(proof).digest()), '8de40ccadbc14a82f15cb0ad0de95ca3');
  });

  const handshake = (password: string, user = 'alice', domain = 'BITS') => {
    const negotiate = buildNegotiate();
    const { message: challenge } = buildChallenge({ negotiate, targetName: 'BITS', dnsHostName: 'bits.example.test' });
    const authenticate = buildAuthenticate({ negotiate, challenge, user, domain, password, workstation: 'PC-1' });
    return { negotiate, challenge, authenticate };
  };
  const accounts = new Map([['alice', ntHash('s3cret')]]);
  const lookup = (user: string): Buffer | undefined => accounts.get(user.toLowerCase());

  it('a handshake built by the client side is accepted by the server side, with a MIC', () => {
    const h = handshake('s3cret');
    assert.ok(isNtlmToken(h.negotiate) && isNtlmToken(h.challenge) && isNtlmToken(h.authenticate));
    assert.ok(parseChallenge(h.challenge).timestamp !== undefined);
    const msg = parseAuthenticate(h.authenticate);
    assert.equal(msg.user, 'alice');
    assert.equal(msg.workstation, 'PC-1');
    assert.ok(msg.mic && !msg.mic.equals(Buffer.alloc(16)), 'a MIC is sent');
    assert.deepEqual(verifyAuthenticate({ ...h, lookup }), { ok: true, user: 'alice', domain: 'BITS', workstation: 'PC-1' });
  });

  it('refuses a wrong password and an unknown user with the same reason', () => {
    const wrong = verifyAuthenticate({ ...handshake('wrong'), lookup });
    const unknown = verifyAuthenticate({ ...handshake('s3cret', 'mallory'), lookup });
    assert.deepEqual(wrong, { ok: false, reason: 'unknown user or wrong password' });
    assert.deepEqual(unknown, wrong);
  });

  it('refuses an answer to another challenge, a tampered MIC or blob, a missing negotiate message', () => {
    const h = handshake('s3cret');
    const other = buildChallenge({ negotiate: h.negotiate, targetName: 'BITS' }).message;
    assert.equal(verifyAuthenticate({ ...h, challenge: other, lookup }).ok, false, 'replayed against a new challenge');
    const micTampered = Buffer.from(h.authenticate);
    micTampered[72]! ^= 1;
    assert.match((verifyAuthenticate({ ...h, authenticate: micTampered, lookup }) as { reason: string }).reason, /MIC/);
    const negotiateTampered = Buffer.from(h.negotiate);
    negotiateTampered[13]! ^= 0x40;
    assert.match((verifyAuthenticate({ ...h, negotiate: negotiateTampered, lookup }) as { reason: string }).reason, /MIC/);
    assert.equal(verifyAuthenticate({ ...h, negotiate: undefined, lookup }).ok, false);
    const msg = parseAuthenticate(h.authenticate);
    const blobTampered = Buffer.from(h.authenticate);
    blobTampered[blobTampered.indexOf(msg.ntResponse) + 20]! ^= 1;
    assert.equal(verifyAuthenticate({ ...h, authenticate: blobTampered, lookup }).ok, false);
  });

  it('refuses NTLMv1 / LM responses and anonymous logins', () => {
    const h = handshake('s3cret');
    const msg = parseAuthenticate(h.authenticate);
    // an NTLMv1-shaped message: 24-byte responses in the same layout
    const v1 = Buffer.from(h.authenticate.subarray(0, h.authenticate.indexOf(msg.ntResponse) + 24));
    v1.writeUInt16LE(24, 20);
    v1.writeUInt16LE(24, 22);
    assert.match((verifyAuthenticate({ ...h, authenticate: v1, lookup }) as { reason: string }).reason, /NTLMv1/);
    const anonymous = Buffer.from(h.authenticate);
    anonymous.writeUInt16LE(0, 20); // no NT response
    assert.match((verifyAuthenticate({ ...h, authenticate: anonymous, lookup }) as { reason: string }).reason, /anonymous/);
  });

  it('hostile input: parsers throw only NtlmError, verification never throws', () => {
    const h = handshake('s3cret');
    const samples = [h.negotiate, h.challenge, h.authenticate];
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(),
        (which, edits, cut) => {
          const buf = Buffer.from(samples[which]!);
          for (const [at, value] of edits) buf[at % buf.length] = value;
          const mutated = buf.subarray(0, Math.max(0, buf.length - (cut % 40)));
          for (const parse of [parseNegotiate, parseChallenge, parseAuthenticate]) {
            try {
              parse(mutated);
            } catch (err) {
              assert.ok(err instanceof NtlmError, `${parse.name}: ${String(err)}`);
            }
          }
          const r = verifyAuthenticate({ ...h, authenticate: mutated, lookup });
          // (the MIC covers every byte: only the untouched message verifies)
          if (r.ok) assert.ok(mutated.equals(h.authenticate), 'a changed message verified');
          verifyAuthenticate({ negotiate: h.negotiate, challenge: mutated, authenticate: h.authenticate, lookup });
        },
      ),
      { numRuns: 2000 },
    );
    assert.equal(verifyAuthenticate({ ...h, authenticate: randomBytes(3), lookup }).ok, false);
  });
});
