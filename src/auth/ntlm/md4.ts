/**
 * MD4 (RFC 1320), for the NT hash only: OpenSSL 3 no longer offers it by default, so
 * `createHash('md4')` throws on current Node. MD4 is broken as a general hash; NTLM needs it anyway.
 *
 * @example
 * ```ts
 * md4(Buffer.from('abc')).toString('hex'); // 'a448017aaf21d8525fc10ae87aa6729d'
 * ```
 */
export function md4(data: Buffer): Buffer {
  const bitLength = BigInt(data.length) * 8n;
  const padded = Buffer.alloc((((data.length + 8) >> 6) + 1) << 6);
  data.copy(padded);
  padded[data.length] = 0x80;
  padded.writeBigUInt64LE(bitLength & 0xffffffffffffffffn, padded.length - 8);
  let a = 0x67452301;
  let b = 0xefcdab89;
  let c = 0x98badcfe;
  let d = 0x10325476;
  const x = new Uint32Array(16);
  const rotl = (v: number, s: number): number => (v << s) | (v >>> (32 - s));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(block + i * 4);
    const [aa, bb, cc, dd] = [a, b, c, d];
    // Round 1: F(x, y, z) = xy v (not x)z
    for (const k of [0, 4, 8, 12]) {
      a = rotl((a + ((b & c) | (~b & d)) + x[k]!) | 0, 3);
      d = rotl((d + ((a & b) | (~a & c)) + x[k + 1]!) | 0, 7);
      c = rotl((c + ((d & a) | (~d & b)) + x[k + 2]!) | 0, 11);
      b = rotl((b + ((c & d) | (~c & a)) + x[k + 3]!) | 0, 19);
    }
    // Round 2: G(x, y, z) = xy v xz v yz, + 0x5A827999
    for (const k of [0, 1, 2, 3]) {
      a = rotl((a + ((b & c) | (b & d) | (c & d)) + x[k]! + 0x5a827999) | 0, 3);
      d = rotl((d + ((a & b) | (a & c) | (b & c)) + x[k + 4]! + 0x5a827999) | 0, 5);
      c = rotl((c + ((d & a) | (d & b) | (a & b)) + x[k + 8]! + 0x5a827999) | 0, 9);
      b = rotl((b + ((c & d) | (c & a) | (d & a)) + x[k + 12]! + 0x5a827999) | 0, 13);
    }
    // Round 3: H(x, y, z) = x xor y xor z, + 0x6ED9EBA1
    for (const k of [0, 2, 1, 3]) {
      a = rotl((a + (b ^ c ^ d) + x[k]! + 0x6ed9eba1) | 0, 3);
      d = rotl((d + (a ^ b ^ c) + x[k + 8]! + 0x6ed9eba1) | 0, 9);
      c = rotl((c + (d ^ a ^ b) + x[k + 4]! + 0x6ed9eba1) | 0, 11);
      b = rotl((b + (c ^ d ^ a) + x[k + 12]! + 0x6ed9eba1) | 0, 15);
    }
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  const out = Buffer.alloc(16);
  out.writeInt32LE(a, 0);
  out.writeInt32LE(b, 4);
  out.writeInt32LE(c, 8);
  out.writeInt32LE(d, 12);
  return out;
}

/**
 * The NT hash of a password (MS-NLMP's NTOWFv1): MD4 of its UTF-16LE encoding.
 *
 * @example
 * ```ts
 * ntHash('Password').toString('hex'); // 'a4f49c406510bdcab6824ee7c30fd852'
 * ```
 */
export function ntHash(password: string): Buffer {
  return md4(Buffer.from(password, 'utf16le'));
}
