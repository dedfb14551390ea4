import assert from 'node:assert/strict';
import type { RawResponse } from './raw-http.js';

/** Asserts an Ack: status, `BITS-Packet-Type: Ack`, `Content-Length: 0`, empty body. */
export function assertAck(res: RawResponse, status = 200): void {
  assert.equal(res.status, status, `status (headers: ${JSON.stringify(res.headers)})`);
  assert.equal(res.headers['bits-packet-type'], 'Ack');
  assert.equal(res.headers['content-length'], '0');
  assert.equal(res.body.length, 0);
  if (status === 200) {
    assert.equal(res.headers['bits-error-code'], undefined);
    assert.equal(res.headers['bits-error-context'], undefined);
  }
}

/** Asserts ERR(status, code, ctx) of spec §15. */
export function assertErr(res: RawResponse, status: number, code: string, context = '0x5'): void {
  assertAck(res, status);
  assert.equal(res.headers['bits-error-code'], code, 'BITS-Error-Code');
  assert.equal(res.headers['bits-error-context'], context, 'BITS-Error-Context');
}
