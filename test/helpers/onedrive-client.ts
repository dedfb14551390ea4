import { BITS_PROTOCOL_GUID } from '../../src/protocol/constants.js';
import { RawConnection } from './raw-http.js';
import type { RawResponse } from './raw-http.js';

/**
 * `data` in chunked framing: chunks of `chunkSize` bytes (hex sizes, lowercase as Python writes
 * them), each size line with `extension` appended, then the last chunk unless `terminate` is false.
 */
export function chunkedBody(data: Buffer, chunkSize: number, extension = '', terminate = true): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkSize) {
    const piece = data.subarray(at, at + chunkSize);
    parts.push(Buffer.from(`${piece.length.toString(16)}${extension}\r\n`, 'latin1'), piece, Buffer.from('\r\n'));
  }
  if (terminate) parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Options of one OneDrive-dialect request. */
export interface OneDriveRequest {
  path: string;
  /** BITS-Packet-Type */
  type: string;
  headers?: Record<string, string>;
  /** A Fragment body: sent chunked, without Content-Length. Absent: `Content-Length: 0`. */
  chunkedBody?: Buffer;
  /** Bytes per chunk of `chunkedBody`. */
  chunkSize?: number;
}

/**
 * The request bytes python-onedrive's `put_bits` makes through python-requests (the OneDrive
 * dialect): `POST` + `X-Http-Method-Override: BITS_POST`; Create-Session and Close-Session with
 * `Content-Length: 0`; Fragments with `Transfer-Encoding: chunked` and no Content-Length.
 */
export function oneDriveRequestBytes(r: OneDriveRequest): Buffer {
  let head =
    `POST ${r.path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: python-requests/2.31.0\r\nAccept-Encoding: gzip, deflate\r\n` +
    `Accept: */*\r\nConnection: keep-alive\r\nX-Http-Method-Override: BITS_POST\r\nBITS-Packet-Type: ${r.type}\r\n`;
  for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (r.chunkedBody === undefined) return Buffer.from(`${head}Content-Length: 0\r\n\r\n`, 'latin1');
  return Buffer.concat([Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n`, 'latin1'), chunkedBody(r.chunkedBody, r.chunkSize ?? 8192)]);
}

/** What a OneDrive-dialect upload saw: every response, in order. */
export interface OneDriveUpload {
  sessionId: string;
  responses: RawResponse[];
}

/**
 * Uploads `data` to `path` the way python-onedrive's `put_bits` does, on one keep-alive connection
 * (a requests.Session): Create-Session, one chunked Fragment per `fragmentSize` bytes, Close-Session.
 * Throws on any answer other than 200/201.
 */
export async function oneDriveUpload(port: number, path: string, data: Buffer, fragmentSize: number, chunkSize = 8192): Promise<OneDriveUpload> {
  const c = await RawConnection.connect(port);
  const responses: RawResponse[] = [];
  const send = async (r: OneDriveRequest): Promise<RawResponse> => {
    await c.write(oneDriveRequestBytes(r));
    const res = await c.read();
    responses.push(res);
    if (res.status !== 200 && res.status !== 201) throw new Error(`${r.type}: ${res.status} ${JSON.stringify(res.headers)}`);
    return res;
  };
  try {
    const created = await send({ path, type: 'Create-Session', headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } });
    const sessionId = created.headers['bits-session-id'];
    if (!sessionId) throw new Error('Create-Session without BITS-Session-Id');
    for (let at = 0; at < data.length; at += fragmentSize) {
      const piece = data.subarray(at, at + fragmentSize);
      const range = `bytes ${at}-${at + piece.length - 1}/${data.length}`;
      await send({ path, type: 'Fragment', headers: { 'BITS-Session-Id': sessionId, 'Content-Range': range }, chunkedBody: piece, chunkSize });
    }
    await send({ path, type: 'Close-Session', headers: { 'BITS-Session-Id': sessionId } });
    return { sessionId, responses };
  } finally {
    c.close();
  }
}
