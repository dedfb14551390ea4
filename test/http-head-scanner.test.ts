// scanHead, the pure function that finds a request head in the bytes received: empty lines before
// it, the CRLFCRLF search, the 414 request-line and 431 head-size limits, and a stream that ends
// inside a head. No sockets: the same bytes always give the same answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HTTP_ERRORS } from '../src/http/errors.js';
import { scanHead } from '../src/http/head-scanner.js';
import type { HeadScan } from '../src/http/head-scanner.js';

const LIMITS = { maxRequestLine: 32, maxHead: 128 };
const scan = (text: string, ended = false): HeadScan => scanHead(Buffer.from(text, 'latin1'), LIMITS, ended);

function codeOf(r: HeadScan): string {
  assert.equal(r.kind, 'error', `expected a refusal, got ${r.kind}`);
  return r.kind === 'error' ? r.error.code : '';
}

describe('scanHead', () => {
  it('nothing, or only empty lines, is no head at all', () => {
    assert.deepEqual(scan(''), { kind: 'none' });
    assert.deepEqual(scan('\r\n\r\n\r\n'), { kind: 'none' });
  });

  it('a complete head: its text without the final empty line, and the bytes after it', () => {
    const r = scan('GET /a HTTP/1.1\r\nHost: x\r\n\r\nPUT /b');
    assert.equal(r.kind, 'head');
    if (r.kind !== 'head') return;
    assert.equal(r.text, 'GET /a HTTP/1.1\r\nHost: x');
    assert.equal(r.rest.toString(), 'PUT /b');
  });

  it('RFC 9112 §2.2: empty lines before the request line are skipped', () => {
    const r = scan('\r\n\r\nGET / HTTP/1.1\r\n\r\n');
    assert.equal(r.kind, 'head');
    if (r.kind === 'head') assert.equal(r.text, 'GET / HTTP/1.1');
    // a lone CR is the start of an empty line still coming, or of a request: not skipped yet
    const p = scan('\r\n\r');
    assert.equal(p.kind, 'partial');
    if (p.kind === 'partial') assert.equal(p.pending.toString(), '\r');
  });

  it('an incomplete head is partial (the bytes from its first one on), or truncated once the stream has ended', () => {
    const p = scan('\r\nGET / HTTP/1.1\r\nHo');
    assert.equal(p.kind, 'partial');
    if (p.kind === 'partial') assert.equal(p.pending.toString(), 'GET / HTTP/1.1\r\nHo');
    const t = scan('GET / HTTP/1.1\r\nHo', true);
    assert.equal(t.kind, 'truncated');
    // a complete head is complete even at the end of the stream
    assert.equal(scan('GET / HTTP/1.1\r\n\r\n', true).kind, 'head');
  });

  it('414: a request line over the limit is refused as soon as it is, complete or not', () => {
    const line = `GET /${'a'.repeat(LIMITS.maxRequestLine + 1 - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
    assert.equal(line.length, LIMITS.maxRequestLine + 1);
    const atLimit = line.replace('a', '');
    assert.equal(scan(`${atLimit}\r\n\r\n`).kind, 'head', 'exactly the limit');
    const complete = scan(`${line}\r\n\r\n`);
    assert.equal(codeOf(complete), 'HTTP_REQUEST_LINE_TOO_LONG');
    if (complete.kind === 'error') assert.equal(complete.error.status, 414);
    assert.equal(codeOf(scan(line)), 'HTTP_REQUEST_LINE_TOO_LONG', 'before its CRLF has come');
    // the CR that ends a line of exactly the limit may come without its LF: not part of the line
    assert.equal(scan(`${atLimit}\r`).kind, 'partial');
  });

  it('414: the request line is everything before the first CRLF (a bare LF does not end it)', () => {
    const r = scan(`GET /a\n${'b'.repeat(40)} HTTP/1.1\r\n\r\n`);
    assert.equal(codeOf(r), 'HTTP_REQUEST_LINE_TOO_LONG');
  });

  it('414 is judged before the stream end and before the head size', () => {
    assert.equal(codeOf(scan('G'.repeat(200), true)), 'HTTP_REQUEST_LINE_TOO_LONG');
  });

  it('431: a head over maxHead is refused, complete or not; the end of the stream instead leaves it truncated', () => {
    const head = (n: number) => `GET / HTTP/1.1\r\nX: ${'v'.repeat(n)}`;
    // the head ends right at maxHead: accepted
    const exact = head(LIMITS.maxHead - head(0).length);
    assert.equal(exact.length, LIMITS.maxHead);
    assert.equal(scan(`${exact}\r\n\r\n`).kind, 'head');
    const over = scan(`${head(LIMITS.maxHead)}\r\n\r\n`);
    assert.equal(codeOf(over), 'HTTP_HEAD_TOO_LARGE');
    if (over.kind === 'error') assert.equal(over.error.status, 431);
    assert.equal(codeOf(scan(head(LIMITS.maxHead))), 'HTTP_HEAD_TOO_LARGE', 'incomplete and already too large');
    assert.equal(scan(head(LIMITS.maxHead), true).kind, 'truncated');
  });

  it('the refusals carry the status and message of the error table', () => {
    for (const r of [scan('G'.repeat(100)), scan(`GET / HTTP/1.1\r\n${'X: y\r\n'.repeat(30)}\r\n`)]) {
      assert.equal(r.kind, 'error');
      if (r.kind !== 'error') continue;
      assert.equal(r.error.status, HTTP_ERRORS[r.error.code].status);
      assert.equal(r.error.message, HTTP_ERRORS[r.error.code].message);
    }
  });
});
