import { BITS_PROTOCOL_GUID } from '../../src/protocol/constants.js';
import { RawConnection, bitsRequestBytes } from './raw-http.js';
import type { RawResponse } from './raw-http.js';

/** Sends one request on `c` and reads its answer. */
export async function exchange(c: RawConnection, bytes: Buffer): Promise<RawResponse> {
  await c.write(bytes);
  return c.read({ timeoutMs: 60_000 });
}

/**
 * Uploads `data` to `path` over one keep-alive connection: Create-Session, fragments of
 * `fragmentSize` (resyncing to BITS-Received-Content-Range), Close-Session. Throws on any
 * unexpected answer. Returns the session id.
 */
export async function uploadAll(port: number, path: string, data: Buffer, fragmentSize = 1024 * 1024): Promise<string> {
  const c = await RawConnection.connect(port);
  try {
    const created = await exchange(
      c,
      bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }),
    );
    const id = created.headers['bits-session-id'];
    if (created.status !== 200 || !id) throw new Error(`Create-Session: ${created.status}`);
    await sendFrom(c, path, id, data, 0, fragmentSize);
    const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id }));
    if (closed.status !== 200) throw new Error(`Close-Session: ${closed.status} ${closed.headers['bits-error-code']}`);
    return id;
  } finally {
    c.close();
  }
}

/** Sends fragments of `data` from `offset` until the server holds `until` bytes (default: all). */
export async function sendFrom(
  c: RawConnection,
  path: string,
  id: string,
  data: Buffer,
  offset: number,
  fragmentSize: number,
  until = data.length,
): Promise<void> {
  let next = offset;
  while (next < until) {
    const body = data.subarray(next, Math.min(until, next + fragmentSize));
    const res = await exchange(
      c,
      bitsRequestBytes({
        type: 'Fragment',
        path,
        sessionId: id,
        headers: { 'Content-Range': `bytes ${next}-${next + body.length - 1}/${data.length}` },
        body,
      }),
    );
    if (res.status !== 200 && res.status !== 416) {
      throw new Error(`Fragment at ${next}: ${res.status} ${res.headers['bits-error-code']}`);
    }
    next = Number(res.headers['bits-received-content-range']);
  }
}
