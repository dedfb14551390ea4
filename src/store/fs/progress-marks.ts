import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * Progress marks: how a session's data file says, by itself, how many of its bytes are durable, so
 * that a fragment costs one fdatasync and no record rewrite.
 *
 * A mark is a 64-byte block written into the same file, in the sparse region past the data: the
 * fragment's range, the time, a CRC-32 of the fragment's bytes, the upload's total and an HMAC
 * under the session's key.
 * The fragment's bytes and its mark go out with the same fdatasync. Marks sit at strictly growing
 * positions, and never where the next fragment's bytes go (a mark is moved further out, with a
 * sync of its own, before a larger fragment would reach it), so the newest mark made durable is
 * always intact. After a crash the newest mark whose HMAC and CRC both check tells the durable
 * length: a mark that reached the disk before its fragment's bytes did fails its CRC, and the one
 * before it counts. A large fragment's mark is written instead after its bytes were made durable
 * by a sync of their own (one more sync, amortized over megabytes, against a CRC pass over them);
 * it says so (`synced`) and carries no CRC. The file is cut back to its data before it is read or
 * committed.
 */

/** Size of a mark on disk. */
export const MARK_SIZE = 64;
const MAGIC = Buffer.from('BITSMRK1', 'latin1');
/** Where the upload's total is (0: not said, as in marks written before it was added). */
const TOTAL_AT = 36;
/** Flags (0 in marks written before they were added). */
const FLAGS_AT = 44;
/** The fragment's bytes were durable before the mark was written: it needs no CRC. */
const FLAG_SYNCED = 1;
const MAC_AT = 48;
const MAC_SIZE = 16;
/** Smallest space left between the data and its mark (bytes the next fragment may take without moving it). */
const MIN_GAP = 8 * 1024 * 1024;
/** Bytes read at a time while looking for marks: first, and at most. */
const FIRST_SCAN = 4096;
const SCAN_CHUNK = 1024 * 1024;

/** What a mark says: the bytes `start..end-1` of the file are the last fragment, written at `time`. */
export interface Mark {
  readonly start: number;
  readonly end: number;
  /** When the fragment was written, ms since the epoch. */
  readonly time: number;
  /** CRC-32 of the fragment's bytes. */
  readonly crc: number;
  /** The upload's total size, as the fragment gave it. */
  readonly total?: number | undefined;
  /** Written after the fragment's bytes were made durable (`crc` is then 0 and not checked). */
  readonly synced?: boolean | undefined;
}

function mac(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', key).update(body).digest().subarray(0, MAC_SIZE);
}

/** The 64 bytes of `mark` under `key`. */
export function encodeMark(key: Buffer, mark: Mark): Buffer {
  const buf = Buffer.alloc(MARK_SIZE);
  MAGIC.copy(buf, 0);
  buf.writeBigUInt64BE(BigInt(mark.start), 8);
  buf.writeBigUInt64BE(BigInt(mark.end), 16);
  buf.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(mark.time))), 24);
  buf.writeUInt32BE(mark.crc >>> 0, 32);
  buf.writeBigUInt64BE(BigInt(mark.total ?? 0), TOTAL_AT);
  buf.writeUInt8(mark.synced ? FLAG_SYNCED : 0, FLAGS_AT);
  mac(key, buf.subarray(0, MAC_AT)).copy(buf, MAC_AT);
  return buf;
}

/** The mark in `buf` (64 bytes) when it is one made under `key`; `undefined` otherwise. */
export function decodeMark(key: Buffer, buf: Buffer): Mark | undefined {
  if (buf.length < MARK_SIZE || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (!timingSafeEqual(mac(key, buf.subarray(0, MAC_AT)), buf.subarray(MAC_AT, MARK_SIZE))) return undefined;
  const start = Number(buf.readBigUInt64BE(8));
  const end = Number(buf.readBigUInt64BE(16));
  const total = Number(buf.readBigUInt64BE(TOTAL_AT));
  if (!Number.isSafeInteger(end) || start > end || !Number.isSafeInteger(total) || (total > 0 && total < end)) return undefined;
  const synced = (buf.readUInt8(FLAGS_AT) & FLAG_SYNCED) !== 0;
  return { start, end, time: Number(buf.readBigUInt64BE(24)), crc: buf.readUInt32BE(32), ...(total > 0 ? { total } : {}), ...(synced ? { synced } : {}) };
}

/**
 * Where the mark of a fragment ending at `end` goes. Marks follow each other 64 bytes apart (sharing
 * disk blocks) while that stays out of reach of a next fragment up to twice this one's `length`;
 * otherwise the mark jumps well past the data, where a run of marks fits again.
 */
export function markPosition(end: number, length: number, after: number | undefined): number {
  const next = after === undefined ? undefined : after + MARK_SIZE;
  if (next !== undefined && next >= end + 2 * length) return next;
  return Math.max(end + Math.max(MIN_GAP, 4 * length), next ?? 0);
}

/** CRC-32 of the file's bytes `start..end-1`. */
async function crcOf(fh: FileHandle, start: number, end: number): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(1, end - start)));
  let crc = 0;
  for (let at = start; at < end; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - at), at);
    if (bytesRead === 0) throw new Error(`the data file ends at ${at}, before ${end}`);
    crc = crc32(buf.subarray(0, bytesRead), crc);
    at += bytesRead;
  }
  return crc;
}

/** A mark found in a file, and where it is. */
export interface FoundMark {
  readonly mark: Mark;
  readonly position: number;
}

/**
 * The newest mark in the file (of `size` bytes) whose HMAC under `key` and CRC both check, looking
 * no lower than `floor` (the length the session's record already vouches for): `undefined` when
 * there is none. Marks are searched backwards from the end, so the first that checks is the newest.
 */
export async function findMark(fh: FileHandle, key: Buffer, size: number, floor: number): Promise<FoundMark | undefined> {
  // Window [from, to) of the file in buf; consecutive windows overlap by a mark's size. The newest
  // mark is normally the file's last 64 bytes: the first window is small and they grow from there.
  let to = size;
  for (let chunk = FIRST_SCAN; to - floor >= MARK_SIZE; chunk = Math.min(SCAN_CHUNK, chunk * 4)) {
    const from = Math.max(floor, to - chunk - MARK_SIZE);
    const buf = Buffer.allocUnsafe(to - from);
    const { bytesRead } = await fh.read(buf, 0, to - from, from);
    const window = buf.subarray(0, bytesRead);
    for (let i = window.lastIndexOf(MAGIC); i >= 0; i = i === 0 ? -1 : window.lastIndexOf(MAGIC, i - 1)) {
      if (i + MARK_SIZE > window.length) continue;
      const mark = decodeMark(key, window.subarray(i, i + MARK_SIZE));
      const position = from + i;
      if (!mark || mark.end > position || mark.end < floor) continue;
      // (bytes the record already vouches for need no check: a clean stop leaves exactly this; nor
      // do the bytes of a mark written after they were synced)
      if (mark.end === floor || mark.synced === true || (await crcOf(fh, mark.start, mark.end)) === mark.crc) return { mark, position };
    }
    if (from === floor) break;
    to = from + MARK_SIZE - 1;
  }
  return undefined;
}
