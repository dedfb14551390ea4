// The pure protocol layer: Content-Range codec, packet parsing, protocol choice, HRESULT formatting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatContentRange, parseContentRange } from '../src/protocol/content-range.js';
import { BitsError } from '../src/protocol/errors.js';
import { formatHresult, hresultName, parseHresult } from '../src/protocol/hresult.js';
import { chooseProtocol, parsePacket } from '../src/protocol/packet.js';
import { errorAck } from '../src/protocol/ack.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { sessionKey } from '../src/protocol/session-id.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof BitsError);
    return err.code;
  }
  return 'no error';
};

describe('protocol', () => {
  it('parses Content-Range and round-trips the Windows form', () => {
    assert.deepEqual(parseContentRange('bytes 128-212/4892'), { first: 128, last: 212, total: 4892, length: 85 });
    assert.deepEqual(parseContentRange('BYTES 0-0/1'), { first: 0, last: 0, total: 1, length: 1 });
    assert.deepEqual(parseContentRange('bytes */0'), { first: 0, last: -1, total: 0, length: 0 });
    assert.equal(formatContentRange(0, 4892, 4892), 'bytes 0-4891/4892');
    assert.equal(formatContentRange(0, 0, 0), 'bytes */0');
    const big = Number.MAX_SAFE_INTEGER;
    assert.equal(parseContentRange(`bytes 0-${big - 1}/${big}`).total, big);
    for (const bad of [undefined, '', 'bytes 0-99', '0-99/300', 'bytes 10-9/10', 'bytes 0-300/300', 'bytes a-b/c', 'bytes 1-2/3 x', `bytes 0-1/${big}0`, 'bytes */5']) {
      assert.equal(code(() => parseContentRange(bad)), 'BITS_BAD_CONTENT_RANGE', String(bad));
    }
  });

  it('chooses the protocol from space/comma lists, any case', () => {
    assert.equal(chooseProtocol(BITS_PROTOCOL_GUID.toUpperCase()), BITS_PROTOCOL_GUID);
    assert.equal(chooseProtocol(`{11111111-1111-1111-1111-111111111111},${BITS_PROTOCOL_GUID}`), BITS_PROTOCOL_GUID);
    assert.equal(code(() => chooseProtocol('{11111111-1111-1111-1111-111111111111}')), 'BITS_NO_PROTOCOL');
    assert.equal(code(() => chooseProtocol(undefined)), 'BITS_NO_PROTOCOL');
  });

  it('parses packets and applies the framing rules', () => {
    assert.deepEqual(parsePacket({ 'bits-packet-type': 'PING' }, undefined), { type: 'Ping', sessionId: undefined });
    const f = parsePacket({ 'bits-packet-type': 'fragment', 'bits-session-id': '{A}', 'content-range': 'bytes 0-1/2' }, 2);
    assert.equal(f.type, 'Fragment');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Fragment', 'bits-session-id': '{A}', 'content-range': 'bytes 0-1/2' }, undefined)), 'BITS_MISSING_CONTENT_LENGTH');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Fragment', 'content-range': 'bytes 0-1/2' }, 2)), 'BITS_MISSING_SESSION_ID');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Close-Session', 'bits-session-id': '{A}' }, 1)), 'BITS_UNEXPECTED_BODY');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Ping', 'transfer-encoding': 'chunked' }, undefined)), 'BITS_TRANSFER_ENCODING');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Ping', 'x': 'y'.repeat(4097) }, 0)), 'BITS_HEADER_TOO_LARGE');
    assert.equal(code(() => parsePacket({}, 0)), 'BITS_MISSING_PACKET_TYPE');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Ack' }, 0)), 'BITS_UNKNOWN_PACKET_TYPE');
    assert.equal(code(() => parsePacket({ 'bits-packet-type': 'Cancel-Session', 'bits-session-id': 'x'.repeat(101) }, 0)), 'BITS_BAD_REQUEST');
  });

  it('formats HRESULTs and error Acks', () => {
    assert.equal(formatHresult(0x8020001f), '0x8020001F');
    assert.equal(parseHresult('0x8020001f'), 0x8020001f);
    assert.equal(parseHresult('8020001F'), 0x8020001f);
    assert.equal(parseHresult('nope'), undefined);
    assert.equal(hresultName(0x80190194), 'BG_E_HTTP_ERROR_404');
    const ack = errorAck(new BitsError('BITS_SESSION_NOT_FOUND', 'x'), { sessionId: '{S}' });
    assert.equal(ack.status, 500);
    assert.deepEqual(ack.headers, {
      'BITS-Packet-Type': 'Ack',
      'Content-Length': '0',
      'BITS-Session-Id': '{S}',
      'BITS-Error-Code': '0x8020001F',
      'BITS-Error-Context': '0x5',
    });
    const gap = errorAck(new BitsError('BITS_RANGE_GAP', 'x'), { receivedContentRange: 100 });
    assert.equal(gap.status, 416);
    assert.equal(gap.headers['BITS-Error-Code'], undefined);
    assert.equal(gap.headers['BITS-Received-Content-Range'], '100');
  });

  it('session keys ignore case and braces', () => {
    assert.equal(sessionKey('{abc}'), sessionKey('ABC'));
  });
});
