// Both directions of every wire concept in protocol/, pinned together: what one side formats, the
// other side reads back unchanged (packets, Acks, Content-Range, Range, reply URLs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import rangeParser from 'range-parser';
import { errorAck, okAck } from '../src/protocol/ack.js';
import { readAck } from '../src/protocol/ack-info.js';
import { BITS_METHOD, BITS_PROTOCOL_GUID, MAX_SESSION_ID_LENGTH } from '../src/protocol/constants.js';
import { formatContentRange, formatRangeRequest, fragmentRange, parseContentRange, parseResponseRange } from '../src/protocol/content-range.js';
import { parseDecimal } from '../src/protocol/decimal.js';
import { BitsError, ERRORS } from '../src/protocol/errors.js';
import type { BitsErrorCode } from '../src/protocol/errors.js';
import { parsePacket } from '../src/protocol/packet.js';
import type { HeaderMap, Packet } from '../src/protocol/packet.js';
import { matchReplyPath, replyUrl, resolveReplyUrl } from '../src/protocol/reply-url.js';
import { formatPacket } from '../src/protocol/request-packet.js';
import { newSessionId, sessionKey } from '../src/protocol/session-id.js';

/** Headers as a receiver sees them: names lowercased (Node and the engine do this). */
function received(headers: Readonly<Record<string, string>>): HeaderMap {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/** Formats a packet and parses it back the way the server does. */
function roundTrip(packet: Packet): Packet {
  const { method, headers } = formatPacket(packet);
  assert.equal(method, BITS_METHOD);
  const h = received(headers);
  return parsePacket(h, parseDecimal(h['content-length']));
}

const sessionId = fc.stringMatching(new RegExp(`^[\\x21-\\x7e]{1,${MAX_SESSION_ID_LENGTH}}$`));
const contentName = fc.option(fc.string({ maxLength: 260 }), { nil: undefined });
const range = fc
  .tuple(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([total, a, b]) => {
    const first = Math.min(total - 1, Math.floor(a * total));
    const length = Math.max(1, Math.min(total - first, Math.floor(b * (total - first))));
    return fragmentRange(first, length, total);
  });

describe('protocol round trips', () => {
  it('formatPacket → parsePacket gives back every packet type', () => {
    const id = newSessionId();
    const packets: Packet[] = [
      { type: 'Ping', sessionId: undefined },
      { type: 'Ping', sessionId: id },
      { type: 'Create-Session', protocol: BITS_PROTOCOL_GUID, contentName: 'a.bin' },
      { type: 'Create-Session', protocol: BITS_PROTOCOL_GUID, contentName: undefined },
      { type: 'Fragment', sessionId: id, contentName: 'a.bin', range: fragmentRange(0, 100, 300) },
      { type: 'Fragment', sessionId: id, contentName: undefined, range: fragmentRange(299, 1, 300) },
      { type: 'Close-Session', sessionId: id, contentName: 'a.bin' },
      { type: 'Close-Session', sessionId: id, contentName: undefined },
      { type: 'Cancel-Session', sessionId: id },
    ];
    for (const p of packets) assert.deepEqual(roundTrip(p), p, p.type);
  });

  it('formatPacket writes Windows casing, the packet type first, and Content-Length 0 on body-less packets', () => {
    const { headers } = formatPacket({ type: 'Close-Session', sessionId: '{A}', contentName: 'a.bin' });
    assert.deepEqual(Object.keys(headers), ['BITS-Packet-Type', 'Content-Length', 'BITS-Session-Id', 'Content-Name']);
    assert.equal(headers['Content-Length'], '0');
    assert.equal(formatPacket({ type: 'Create-Session', protocol: BITS_PROTOCOL_GUID, contentName: undefined }).headers['BITS-Supported-Protocols'], BITS_PROTOCOL_GUID);
    assert.equal(formatPacket({ type: 'Fragment', sessionId: '{A}', contentName: undefined, range: fragmentRange(5, 10, 20) }).headers['Content-Length'], '10');
  });

  it('formatPacket → parsePacket for any session id, Content-Name and range (property)', () => {
    fc.assert(
      fc.property(sessionId, contentName, range, (sid, name, r) => {
        const packets: Packet[] = [
          { type: 'Ping', sessionId: sid },
          { type: 'Create-Session', protocol: BITS_PROTOCOL_GUID, contentName: name },
          { type: 'Fragment', sessionId: sid, contentName: name, range: r },
          { type: 'Close-Session', sessionId: sid, contentName: name },
          { type: 'Cancel-Session', sessionId: sid },
        ];
        for (const p of packets) assert.deepEqual(roundTrip(p), p);
      }),
      { numRuns: 300 },
    );
  });

  it('okAck → readAck gives back every field a client acts on', () => {
    const sid = newSessionId();
    const ack = okAck({ sessionId: sid, protocol: BITS_PROTOCOL_GUID, receivedContentRange: 4892, hostId: 'node1:8080', hostIdFallbackTimeout: 60, replyUrl: 'BITS-Sessions/Replies/x/t/responsefile.bin' });
    const info = readAck(ack.status, received(ack.headers));
    assert.equal(info.ok, true);
    assert.equal(info.sessionId, sid);
    assert.equal(info.protocol, BITS_PROTOCOL_GUID);
    assert.equal(info.receivedContentRange, 4892);
    assert.equal(info.hostId, 'node1:8080');
    assert.equal(info.hostIdFallbackTimeout, 60);
    assert.equal(info.replyUrl, 'BITS-Sessions/Replies/x/t/responsefile.bin');
    assert.equal(info.hresult, undefined);
    assert.equal(info.retryAfterMs, undefined, 'only failures carry a pause');
  });

  it('okAck → readAck for any offset (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), sessionId, (n, sid) => {
        const ack = okAck({ sessionId: sid, receivedContentRange: n });
        const info = readAck(ack.status, received(ack.headers));
        assert.equal(info.receivedContentRange, n);
        assert.equal(info.sessionId, sid.trim() === '' ? undefined : sid.trim());
      }),
    );
  });

  it('errorAck → readAck gives back the status, HRESULT and context of every error code', () => {
    for (const code of Object.keys(ERRORS) as BitsErrorCode[]) {
      const error = new BitsError(code, 'x');
      const ack = errorAck(error, { sessionId: '{A}', retryAfter: 7 });
      const info = readAck(ack.status, received(ack.headers));
      assert.equal(info.status, error.status, code);
      assert.equal(info.ok, false, code);
      assert.equal(info.hresult, error.hresult ?? undefined, code);
      assert.equal(info.errorContext, error.hresult === null ? undefined : error.context, code);
      assert.equal(info.sessionId, '{A}', code);
      assert.equal(info.retryAfterMs, 7000, code);
    }
  });

  it('Content-Range: formatContentRange → parseContentRange (request) and parseResponseRange (206)', () => {
    fc.assert(
      fc.property(range, (r) => {
        const text = formatContentRange(r.first, r.length, r.total);
        assert.deepEqual(parseContentRange(text), r);
        assert.deepEqual(parseResponseRange(text), { first: r.first, last: r.last, total: r.total });
      }),
    );
    assert.deepEqual(parseContentRange(formatContentRange(0, 0, 0)), fragmentRange(0, 0, 0));
    assert.deepEqual(parseResponseRange('BYTES  10-19/*'), { first: 10, last: 19, total: undefined });
    assert.equal(parseResponseRange('bytes */300'), undefined, 'the form of a 416, not of a 206');
    assert.equal(parseResponseRange('bytes 20-10/300'), undefined);
    assert.equal(parseResponseRange('bytes 0-300/300'), undefined);
    assert.equal(parseResponseRange('bytes 0-1/99999999999999999'), undefined, 'bounded like every number read');
  });

  it('Range: formatRangeRequest is what a server (range-parser) reads as the rest of the file', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.double({ min: 0, max: 1, noNaN: true }), (total, a) => {
        const first = Math.min(total - 1, Math.floor(a * total));
        const parsed = rangeParser(total, formatRangeRequest(first, total));
        assert.ok(Array.isArray(parsed));
        assert.deepEqual([...parsed], [{ start: first, end: total - 1 }]);
        assert.deepEqual([...(rangeParser(total, formatRangeRequest(first, undefined)) as rangeParser.Ranges)], [{ start: first, end: total - 1 }]);
      }),
    );
  });

  it('reply URL: replyUrl → resolveReplyUrl → matchReplyPath gives back the session and token', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/), fc.array(fc.stringMatching(/^[a-z0-9]{1,8}$/), { maxLength: 3 }), (token, dirs) => {
        const id = newSessionId();
        const upload = new URL(`http://user:pw@h:8080/${[...dirs, 'f.bin'].join('/')}`);
        const url = resolveReplyUrl(replyUrl(id, token), upload);
        assert.equal(url.username, '', 'no credentials carried over');
        assert.equal(url.origin, 'http://h:8080');
        const segments = url.pathname.split('/').slice(1).map(decodeURIComponent);
        assert.deepEqual(matchReplyPath(segments), { sessionId: sessionKey(id), token, directory: '/' + dirs.join('/') });
      }),
    );
  });
});
