import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import rangeParser from 'range-parser';
import type { HttpRequest, HttpResponse, ResponseHeaders } from '../http/types.js';
import { ConfinementError } from '../store/fs/confined.js';
import { fileObject, isFileObject, isMissingFile, READ_FLAGS } from '../store/fs/file-object.js';
import type { StoredObject } from '../store/types.js';
import { formatContentRange } from '../protocol/content-range.js';

/** More ranges than this in one `Range` header and the header is ignored (200 with the whole file). */
const MAX_RANGES = 100;
/** A body of at most this many bytes from a local file is read whole and written with its head in one piece. */
const SMALL_BODY = 64 * 1024;

let lastModifiedSeconds = Number.NaN;
let lastModifiedText = '';

/** The `Last-Modified` value of a time in whole seconds (the last one is remembered: a hot file asks again and again). */
function httpDateOfSeconds(seconds: number): string {
  if (seconds !== lastModifiedSeconds) {
    lastModifiedText = new Date(seconds * 1000).toUTCString();
    lastModifiedSeconds = seconds;
  }
  return lastModifiedText;
}

/** Errors of a response stream that only mean the client went away. */
const CLIENT_GONE_CODES = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ECONNRESET', 'EPIPE']);


/** A byte range of the file, both ends inclusive. */
interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** What the request asked for, once `Range` and `If-Range` are weighed against the file. */
type Selection =
  | { readonly kind: 'full' }
  | { readonly kind: 'ranges'; readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'unsatisfiable' };

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Whether a failure to reach a file means "there is nothing to serve here" (missing, not a file, a
 * path that leaves its folder) rather than a broken store.
 *
 * @example
 * ```ts
 * if (isNotFound(err)) res.send(404, { 'Content-Length': '0' });
 * ```
 */
export function isNotFound(err: unknown): boolean {
  return err instanceof ConfinementError || isMissingFile(err);
}

/**
 * Whether `If-Range` names the current file version (RFC 9110 §13.1.5): an entity tag must match
 * strongly (a weak tag never does), a date must equal `Last-Modified` exactly.
 */
function ifRangeMatches(ifRange: string, etag: string, mtimeSeconds: number): boolean {
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === etag;
  const date = Date.parse(value);
  return !Number.isNaN(date) && date === mtimeSeconds * 1000;
}

/** Weighs `Range` (and `If-Range`) against a file of `size` bytes. */
function select(headers: Readonly<Record<string, string>>, size: number, etag: string, mtimeSeconds: number): Selection {
  const range = headers['range'];
  if (range === undefined) return { kind: 'full' };
  const ifRange = headers['if-range'];
  if (ifRange !== undefined && !ifRangeMatches(ifRange, etag, mtimeSeconds)) return { kind: 'full' };
  const eq = range.indexOf('=');
  // Unknown units are ignored; `bytes` is compared case-insensitively (spec D2).
  if (eq === -1 || range.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const parsed = rangeParser(size, range, { combine: false });
  if (parsed === -2) return { kind: 'full' };
  if (parsed === -1) return { kind: 'unsatisfiable' };
  if (parsed.length > MAX_RANGES) return { kind: 'full' };
  return { kind: 'ranges', ranges: parsed.map((r) => ({ start: r.start, end: r.end })) };
}

/** The body of a `multipart/byteranges` response: each part's head, then its slice; then the close delimiter. */
async function* multipartBody(
  object: StoredObject,
  ranges: readonly ByteRange[],
  heads: readonly Buffer[],
  tail: Buffer,
): AsyncGenerator<Buffer> {
  for (let i = 0; i < ranges.length; i++) {
    yield heads[i]!;
    yield* object.read(ranges[i]!.start, ranges[i]!.end) as AsyncIterable<Buffer>;
  }
  yield tail;
}

/** Streams `body` as the response, treating a client that goes away as a normal end. */
async function streamBody(req: HttpRequest, res: HttpResponse, status: number, headers: ResponseHeaders, body: Readable): Promise<void> {
  try {
    await res.stream(status, headers, body);
  } catch (err) {
    // Let the body wind down (its file reads settle) before the caller closes the file handle.
    if (!body.closed) {
      const closed = new Promise<void>((resolve) => body.once('close', () => resolve()));
      body.destroy();
      await closed;
    }
    if (req.signal.aborted || CLIENT_GONE_CODES.has(errorCode(err) ?? '')) return;
    throw err;
  }
}

/**
 * Answers with the bytes `start..end` of `object`: a small slice of a local file is read whole and
 * sent with the head in one write, anything else is streamed.
 */
async function sendSlice(req: HttpRequest, res: HttpResponse, status: number, headers: ResponseHeaders, object: StoredObject, start: number, end: number): Promise<void> {
  if (!isFileObject(object) || end - start + 1 > SMALL_BODY) {
    await streamBody(req, res, status, headers, object.read(start, end));
    return;
  }
  const body = await object.readBuffer(start, end);
  try {
    res.send(status, headers, body);
  } catch (err) {
    // (a client that went away meanwhile is a normal end, as for a streamed body)
    if (!req.signal.aborted) throw err;
  }
}

function bodyStream(source: AsyncGenerator<Buffer>): Readable {
  return Readable.from(source, { objectMode: false, highWaterMark: 64 * 1024 });
}

/**
 * Answers a GET or HEAD for the regular file at `file` (an absolute path the caller has already
 * confined), the way BITS download jobs need it (spec §11): `Content-Length`, `Last-Modified`, a
 * strong `ETag` and `Accept-Ranges: bytes` on every success; `Range` as a single 206 slice or a
 * `multipart/byteranges` 206 with the parts in request order; 416 with `Content-Range: bytes *\/size`
 * when nothing is satisfiable; a stale `If-Range`, a malformed `Range`, an unknown unit or more than
 * 100 ranges give the whole file with 200. Never compressed. Bodies are streamed from one open file
 * descriptor, so every byte sent belongs to the version the headers describe. A missing path or one
 * that is not a regular file gets 404.
 *
 * HEAD gets exactly the headers GET would get (including 206/416 for a `Range`), and no body.
 *
 * @example
 * ```ts
 * const handler: HttpHandler = async (req, res) => {
 *   if (req.method === 'GET' || req.method === 'HEAD') await serveFile(req, res, '/srv/files/a.bin');
 *   else res.send(405, { Allow: 'GET, HEAD', 'Content-Length': '0' });
 * };
 * ```
 */
export async function serveFile(req: HttpRequest, res: HttpResponse, file: string | ((flags: number) => Promise<FileHandle>)): Promise<void> {
  let object: StoredObject | undefined;
  try {
    object = await fileObject(typeof file === 'string' ? await open(file, READ_FLAGS) : await file(READ_FLAGS));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await serveObject(req, res, object);
}

/**
 * Answers a GET or HEAD for a stored file or object as {@link serveFile} does for a file; no object
 * is a 404. Closes the object when done.
 *
 * @example
 * ```ts
 * await serveObject(req, res, await destinations.open(['reports', 'q3.pdf']));
 * ```
 */
export async function serveObject(req: HttpRequest, res: HttpResponse, object: StoredObject | undefined): Promise<void> {
  if (!object) {
    res.send(404, { 'Content-Length': '0' });
    return;
  }
  try {
    const size = object.size;
    const mtimeSeconds = Math.floor(object.modified.getTime() / 1000);
    const etag = object.etag;
    const validators = {
      'Last-Modified': httpDateOfSeconds(mtimeSeconds),
      ETag: etag,
      'Accept-Ranges': 'bytes',
    };
    const head = req.method === 'HEAD';
    const selection = select(req.headers, size, etag, mtimeSeconds);

    if (selection.kind === 'unsatisfiable') {
      res.send(416, { ...validators, 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
      return;
    }

    if (selection.kind === 'full') {
      const headers = { ...validators, 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) };
      if (head || size === 0) res.send(200, headers);
      else await sendSlice(req, res, 200, headers, object, 0, size - 1);
      return;
    }

    const { ranges } = selection;
    if (ranges.length === 1) {
      const { start, end } = ranges[0]!;
      const headers = {
        ...validators,
        'Content-Type': 'application/octet-stream',
        'Content-Range': formatContentRange(start, end - start + 1, size),
        'Content-Length': String(end - start + 1),
      };
      if (head) res.send(206, headers);
      else await sendSlice(req, res, 206, headers, object, start, end);
      return;
    }

    // multipart/byteranges (RFC 9110 §14.6): the body starts right at the first delimiter.
    const boundary = randomBytes(12).toString('hex');
    const partHeads = ranges.map((r, i) =>
      Buffer.from(
        `${i === 0 ? '' : '\r\n'}--${boundary}\r\n` +
          `Content-Type: application/octet-stream\r\n` +
          `Content-Range: ${formatContentRange(r.start, r.end - r.start + 1, size)}\r\n\r\n`,
        'latin1',
      ),
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
    let length = tail.length;
    for (let i = 0; i < ranges.length; i++) length += partHeads[i]!.length + ranges[i]!.end - ranges[i]!.start + 1;
    const headers = {
      ...validators,
      'Content-Type': `multipart/byteranges; boundary=${boundary}`,
      'Content-Length': String(length),
    };
    if (head) res.send(206, headers);
    else await streamBody(req, res, 206, headers, bodyStream(multipartBody(object, ranges, partHeads, tail)));
  } finally {
    await object.close();
  }
}
