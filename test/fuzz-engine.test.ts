// Property/fuzz test of the HTTP engine (fast-check): random and mutated request heads and bodies,
// scanned by scanHead alone (pure: no crash, the same answer however the bytes arrive), and
// (Content-Length or chunked framing), written in random pieces, then a half-close, an abrupt reset, or nothing. For every connection:
// no crash, no hang, and what comes back is zero or more well-formed responses followed by a close;
// a connection still open once every idle timeout has passed must be at a request boundary (a probe
// request sent on it is the next one answered). The server answers normally afterwards.
//
// Replay a failure with FUZZ_SEED=<seed> (printed on failure); FUZZ_RUNS raises the run count.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { pino } from 'pino';
import { scanHead } from '../src/http/head-scanner.js';
import type { HeadScan } from '../src/http/head-scanner.js';
import { HttpServer } from '../src/http/server.js';
import type { HttpHandler } from '../src/http/types.js';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';

/** Engine idle timeouts used here (ms); keep-alive is long so that an idle open connection is telling. */
const IDLE_MS = 150;
/** How long after the last byte a connection must have settled (closed, or idle at a boundary). */
const SETTLE_MS = 1000;
/** Bound of any one connection; beyond it the engine hangs. */
const HANG_MS = 6000;
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 12);
const SEED = process.env['FUZZ_SEED'] === undefined ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(process.env['FUZZ_SEED']);

// ---------------------------------------------------------------------------------------------
// Response stream validation

interface Parsed {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

const STATUS_LINE = /^HTTP\/1\.1 [1-5]\d\d [\x20-\x7e]*$/;
const HEADER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [\t\x20-\x7e\x80-\xff]*$/;

/**
 * Splits `buf` into responses. Throws on anything that is not a well-formed response; `complete`
 * false when the bytes end inside a response (only acceptable while the connection is open).
 */
function parseResponses(buf: Buffer): { responses: Parsed[]; complete: boolean } {
  const responses: Parsed[] = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end === -1) {
      assert.ok(buf.length - at < 16 * 1024, 'an endless response head');
      return { responses, complete: false };
    }
    const [statusLine, ...lines] = buf.subarray(at, end).toString('latin1').split('\r\n');
    assert.match(statusLine!, STATUS_LINE, 'status line');
    const headers: [string, string][] = [];
    for (const line of lines) {
      assert.match(line, HEADER_LINE, 'header line');
      const i = line.indexOf(':');
      headers.push([line.slice(0, i).toLowerCase(), line.slice(i + 2)]);
    }
    const status = Number(statusLine!.slice(9, 12));
    let length = 0;
    if (status >= 200) {
      const lengths = headers.filter(([k]) => k === 'content-length');
      assert.equal(lengths.length, 1, `one Content-Length in ${statusLine}`);
      assert.match(lengths[0]![1], /^\d+$/);
      length = Number(lengths[0]![1]);
      assert.ok(!headers.some(([k]) => k === 'transfer-encoding'), 'no Transfer-Encoding');
    } else {
      assert.equal(status, 100, 'the only interim response is 100 Continue');
      assert.equal(headers.length, 0);
    }
    if (buf.length < end + 4 + length) return { responses, complete: false };
    responses.push({ status, headers, body: buf.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
    const connection = headers.find(([k]) => k === 'connection')?.[1].toLowerCase();
    if (connection === 'close') assert.equal(at, buf.length, 'bytes after a Connection: close response');
  }
  return { responses, complete: true };
}

// ---------------------------------------------------------------------------------------------
// Generators

const INTERESTING = ['\r\n', '\r', '\n', '\r\n\r\n', ' ', '\t', ':', '\0', '\r\n ', 'Content-Length: 5\r\n', 'Content-Length: 99999\r\n',
  'Transfer-Encoding: chunked\r\n', 'Expect: 100-continue\r\n', 'Connection: close\r\n', 'Connection: keep-alive\r\n', 'HTTP/1.0', 'BITS_POST ', '\xff', '0', '9'];

const token = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_!#$%&'*+.^`|~-]{0,12}$/).filter((m) => m.toUpperCase() !== 'HEAD');
const fieldValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);

interface Req {
  method: string;
  path: string;
  version: string;
  headers: [string, string][];
  body: Uint8Array;
  length: 'exact' | 'none' | 'short' | 'long' | 'chunked';
  /** Data bytes per chunk when `length` is `chunked`. */
  chunkSize?: number;
}

function requestArb(method: fc.Arbitrary<string>, path: fc.Arbitrary<string>, header: fc.Arbitrary<[string, string]>): fc.Arbitrary<Req> {
  return fc.record({
    method,
    path,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
    headers: fc.array(header, { maxLength: 6 }),
    body: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 4000 })),
    length: fc.constantFrom('exact', 'exact', 'exact', 'exact', 'none', 'short', 'long', 'chunked', 'chunked'),
    chunkSize: fc.integer({ min: 1, max: 1500 }),
  });
}

/** The body as sent: as is, or in chunked framing (hex sizes of either case, some with an extension). */
function bodyBytes(r: Req): Buffer {
  const body = Buffer.from(r.body);
  if (r.length !== 'chunked') return body;
  const size = r.chunkSize ?? 100;
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < body.length; at += size, i++) {
    const piece = body.subarray(at, at + size);
    const hex = i % 2 ? piece.length.toString(16).toUpperCase() : piece.length.toString(16);
    parts.push(Buffer.from(`${hex}${i % 3 === 2 ? ';x=y' : ''}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(body.length % 2 ? '0\r\nX-Trailer: t\r\n\r\n' : '0\r\n\r\n'));
  return Buffer.concat(parts);
}

function serialize(r: Req): Buffer {
  let head = `${r.method} ${r.path} ${r.version}\r\n`;
  for (const [k, v] of r.headers) head += `${k}: ${v}\r\n`;
  const n = r.body.length;
  if (r.length === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  else if (r.length !== 'none') head += `Content-Length: ${r.length === 'exact' ? n : r.length === 'short' ? Math.max(0, n - 3) : n + 3}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), bodyBytes(r)]);
}

type Mutation =
  | { kind: 'replace'; at: number; bytes: string }
  | { kind: 'insert'; at: number; bytes: string }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'dup'; at: number; len: number }
  | { kind: 'repeat'; at: number; len: number; times: number }
  | { kind: 'truncate'; at: number };

const someBytes = fc.oneof(fc.constantFrom(...INTERESTING), fc.string({ unit: 'binary-ascii', maxLength: 12 }));
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), bytes: someBytes }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: someBytes }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }), times: fc.integer({ min: 2, max: 3000 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(buf: Buffer, m: Mutation): Buffer {
  if (buf.length === 0) return buf;
  const at = m.at % buf.length;
  switch (m.kind) {
    case 'replace':
      return Buffer.concat([buf.subarray(0, at), Buffer.from(m.bytes, 'latin1'), buf.subarray(at + m.bytes.length)]);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), Buffer.from(m.bytes, 'latin1'), buf.subarray(at)]);
    case 'delete':
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.len)]);
    case 'dup':
      return Buffer.concat([buf.subarray(0, at + m.len), buf.subarray(at)]);
    case 'repeat': {
      const piece = buf.subarray(at, at + m.len);
      return Buffer.concat([buf.subarray(0, at), ...Array<Buffer>(m.times).fill(piece), buf.subarray(at)]);
    }
    case 'truncate':
      return buf.subarray(0, at);
  }
}

interface Script {
  requests: Req[];
  mutations: Mutation[];
  /** Where the bytes are cut into separate writes (taken modulo the length). */
  cuts: number[];
  end: 'half-close' | 'open' | 'reset';
}

function scriptArb(request: fc.Arbitrary<Req>): fc.Arbitrary<Script> {
  return fc.record({
    requests: fc.array(request, { minLength: 1, maxLength: 4 }),
    mutations: fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutationArb, { minLength: 1, maxLength: 4 })),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
    end: fc.constantFrom('half-close', 'half-close', 'open', 'open', 'reset'),
  });
}

/**
 * A batch of scripts run side by side: random ones, plus one of valid requests left open, so that
 * every batch also checks that a connection at a request boundary stays usable (the probe).
 */
function batchArb(request: fc.Arbitrary<Req>, valid: fc.Arbitrary<Req>): fc.Arbitrary<Script[]> {
  const validOpen = fc.record({
    requests: fc.array(valid, { minLength: 1, maxLength: 3 }),
    mutations: fc.constant<Mutation[]>([]),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
    end: fc.constant('open' as const),
  });
  return fc.tuple(validOpen, fc.array(scriptArb(request), { minLength: 2, maxLength: 7 })).map(([v, rest]) => [v, ...rest]);
}

// ---------------------------------------------------------------------------------------------
// Running one connection

interface ProbeSpec {
  bytes: Buffer;
  /** Whether a response is the answer to the probe. */
  matches: (r: Parsed) => boolean;
}

/** How the connections of the fuzz runs ended (to check that every path was exercised). */
const stats = { halfClosed: 0, closedByServer: 0, probed: 0, reset: 0 };

async function runScript(port: number, s: Script, probe: ProbeSpec): Promise<void> {
  let bytes: Buffer = Buffer.concat(s.requests.map(serialize));
  for (const m of s.mutations) bytes = mutate(bytes, m);
  const cuts = [...new Set(s.cuts.map((c) => (bytes.length ? c % bytes.length : 0)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    if (c > prev) pieces.push(bytes.subarray(prev, c));
    prev = c;
  }

  const socket = net.connect(port, '127.0.0.1');
  let received = Buffer.alloc(0);
  let ended = false;
  let lastData = Date.now();
  const endedPromise = new Promise<void>((resolve) => {
    const done = (): void => {
      ended = true;
      resolve();
    };
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  });
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    lastData = Date.now();
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('error', resolve);
  });
  const context = (): string =>
    `sent ${JSON.stringify(bytes.subarray(0, 600).toString('latin1'))}${bytes.length > 600 ? `… (${bytes.length} bytes)` : ''}\n` +
    `received ${JSON.stringify(received.subarray(0, 600).toString('latin1'))}`;
  try {
    for (const [i, piece] of pieces.entries()) {
      if (ended) break;
      socket.write(piece);
      if (i % 2 === 1) await sleep(1);
    }
    if (s.end === 'reset') {
      socket.resetAndDestroy();
      stats.reset++;
      return;
    }
    const lastWrite = Date.now();
    if (s.end === 'half-close') {
      if (!ended) socket.end();
      const bounded = await Promise.race([endedPromise.then(() => true), sleep(HANG_MS).then(() => false)]);
      assert.ok(bounded, `hang: the server did not close a half-closed connection within ${HANG_MS} ms\n${context()}`);
      const { complete } = parseResponses(received);
      assert.ok(complete, `a response cut short by the close\n${context()}`);
      stats.halfClosed++;
      return;
    }
    // open: wait until the connection closes, or is quiet after every idle timeout has passed
    while (!ended && (Date.now() - lastWrite < SETTLE_MS || Date.now() - lastData < 150)) {
      assert.ok(Date.now() - lastWrite < HANG_MS, `hang: the server keeps answering or never settles\n${context()}`);
      await sleep(25);
    }
    const before = parseResponses(received);
    if (ended) {
      assert.ok(before.complete, `a response cut short by the close\n${context()}`);
      stats.closedByServer++;
      return;
    }
    assert.ok(before.complete, `an open connection holds half a response\n${context()}`);
    // Still open: the engine must be waiting at a request boundary, so a probe is the next request.
    const seen = received.length;
    socket.write(probe.bytes);
    const started = Date.now();
    for (;;) {
      const after = parseResponses(received.subarray(seen));
      const final = after.responses.filter((r) => r.status >= 200);
      if (final.length > 0) {
        assert.ok(probe.matches(final[0]!), `the probe was not the next request answered (open after an incomplete request?)\n${context()}`);
        stats.probed++;
        break;
      }
      assert.ok(!ended, `the connection closed instead of answering the probe\n${context()}`);
      assert.ok(Date.now() - started < HANG_MS, `hang: no answer to the probe\n${context()}`);
      await sleep(10);
    }
  } finally {
    socket.destroy();
  }
}

async function runBatch(port: number, scripts: Script[], probe: (n: number) => ProbeSpec): Promise<void> {
  await Promise.all(scripts.map((s, i) => runScript(port, s, probe(i))));
}

function assertAllPaths(): void {
  const { halfClosed, closedByServer, probed, reset } = stats;
  assert.ok(halfClosed > 0 && closedByServer > 0 && probed > 0 && reset > 0, `every way a connection ends was exercised: ${JSON.stringify(stats)} (FUZZ_SEED=${SEED})`);
  stats.halfClosed = stats.closedByServer = stats.probed = stats.reset = 0;
}

const fcOptions = (): fc.Parameters<[Script[]]> => ({
  numRuns: RUNS,
  seed: SEED,
  endOnFailure: true, // shrinking replays timing-dependent runs: report the first failure as found
  interruptAfterTimeLimit: 40_000,
});

// ---------------------------------------------------------------------------------------------
// The properties

describe('fuzz: HTTP engine (HttpServer with echo, early, failing and slow handlers)', () => {
  let http: HttpServer;
  let port: number;
  let calls = 0;
  const handler: HttpHandler = async (req, res) => {
    calls++;
    if (req.path.includes('early')) return res.send(403, { 'Content-Length': '5' }, 'early');
    if (req.path.includes('throw')) throw new Error('handler failure');
    if (req.path.includes('slow')) await sleep(20);
    let n = 0;
    for await (const chunk of req.body as AsyncIterable<Buffer>) n += chunk.length;
    const body = `${req.method} ${req.path} ${n}`;
    res.send(200, { 'Content-Length': String(Buffer.byteLength(body, 'latin1')) }, Buffer.from(body, 'latin1'));
  };
  before(async () => {
    http = new HttpServer({
      handler,
      logger: pino({ level: 'silent' }),
      limits: {
        maxRequestLine: 512,
        maxHeaderValue: 256,
        maxHeaders: 12,
        maxHead: 2048,
        maxDrain: 2048,
        headerTimeoutMs: IDLE_MS,
        bodyIdleTimeoutMs: IDLE_MS,
        keepAliveTimeoutMs: 30_000,
        writeIdleTimeoutMs: 2000,
      },
    });
    ({ port } = await http.listen(0, '127.0.0.1'));
  });
  after(() => http.close(100));

  const header: fc.Arbitrary<[string, string]> = fc.oneof(
    fc.constantFrom<[string, string]>(['Host', 'x'], ['Connection', 'close'], ['Connection', 'keep-alive'], ['Expect', '100-continue'],
      ['Transfer-Encoding', 'chunked'], ['Content-Length', '3'], ['X-Long', 'l'.repeat(300)]),
    fc.tuple(token, fieldValue),
  );
  const method = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'BITS_POST', 'bits_post', 'M-SEARCH', 'OPTIONS'), token);
  const path = fc.oneof(
    fc.constantFrom('/', '/echo', '/early', '/throw', '/slow', '/echo?q=1', '*', 'http://h/echo', '/' + 'p'.repeat(600)),
    fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/),
  );
  const valid: fc.Arbitrary<Req> = fc.record({
    method: fc.constantFrom('GET', 'POST', 'BITS_POST', 'X-ANY'),
    path: fc.stringMatching(/^\/(echo|early|slow)-[a-z0-9]{0,8}$/),
    version: fc.constant('HTTP/1.1'),
    headers: fc.array(fc.tuple(fc.stringMatching(/^X-[A-Za-z]{1,8}$/), fieldValue), { maxLength: 4 }),
    body: fc.uint8Array({ maxLength: 1500 }),
    length: fc.constant('exact' as const),
  });
  const probe = (n: number): ProbeSpec => ({
    bytes: Buffer.from(`GET /probe-${n} HTTP/1.1\r\n\r\n`),
    matches: (r) => r.status === 200 && r.body.toString('latin1') === `GET /probe-${n} 0`,
  });

  it('random and mutated requests: well-formed answers or clean closes, no hang, no leak', async () => {
    await fc.assert(
      fc.asyncProperty(batchArb(requestArb(method, path, header), valid), async (scripts) => {
        await runBatch(port, scripts, probe);
        // every connection the server kept goes away once its client does
        const deadline = Date.now() + 3000;
        while (http.connectionCount > 0 && Date.now() < deadline) await sleep(20);
        assert.equal(http.connectionCount, 0, 'connections left open on the server');
      }),
      fcOptions(),
    );
    assert.ok(calls > 0, 'some requests reached the handler');
    assertAllPaths();
  });

  it('unmutated pipelined requests (some answered early, bodies that look like requests) are answered in order', async () => {
    // A body that is itself a request: if the engine ever parsed body bytes, it would be answered.
    const smuggled = fc
      .tuple(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 3000 }))
      .map(([a, b]) => Buffer.concat([a, Buffer.from('GET /smuggled HTTP/1.1\r\n\r\n'), b]));
    const plain = fc.record({
      method: fc.constantFrom('GET', 'POST', 'BITS_POST', 'X-ANY'),
      path: fc.stringMatching(/^\/(echo|early|slow)-[a-z0-9]{0,8}$/),
      version: fc.constant('HTTP/1.1'),
      headers: fc.array(fc.tuple(fc.stringMatching(/^X-[A-Za-z]{1,8}$/), fieldValue), { maxLength: 5 }),
      body: fc.oneof(fc.uint8Array({ maxLength: 5000 }), smuggled),
      length: fc.constantFrom('exact' as const, 'chunked' as const),
      chunkSize: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 6000 })),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(plain, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), async (reqs, cuts) => {
        const bytes = Buffer.concat(reqs.map(serialize));
        const socket = net.connect(port, '127.0.0.1');
        let received = Buffer.alloc(0);
        let ended = false;
        socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
        socket.on('error', () => undefined);
        socket.on('end', () => (ended = true));
        socket.on('close', () => (ended = true));
        await new Promise((r) => socket.once('connect', r));
        let prev = 0;
        for (const c of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b).concat(bytes.length)) {
          if (c > prev && !ended) socket.write(bytes.subarray(prev, c));
          prev = c;
          await sleep(0);
        }
        const deadline = Date.now() + HANG_MS;
        let parsed = parseResponses(received);
        while ((parsed.responses.length < reqs.length && !ended) || !parsed.complete) {
          assert.ok(Date.now() < deadline, `hang after ${parsed.responses.length} of ${reqs.length} answers`);
          assert.ok(parsed.complete || !ended, 'a response cut short by the close');
          await sleep(5);
          parsed = parseResponses(received);
        }
        await sleep(20);
        parsed = parseResponses(received);
        socket.destroy();
        const expected = reqs.map((r) => (r.path.startsWith('/early') ? [403, 'early'] : [200, `${r.method} ${r.path} ${r.body.length}`]));
        const got = parsed.responses.map((r) => [r.status, r.body.toString('latin1')]);
        assert.deepEqual(got, expected.slice(0, got.length), 'answers in order, none to a body');
        if (got.length < expected.length) {
          // only an early answer with more than maxDrain of body still to come may end the connection
          const last = parsed.responses.at(-1);
          const lastReq = reqs[got.length - 1];
          assert.ok(last && lastReq, 'the connection closed before the first answer');
          // (the rest of a chunked body is unknown when the answer is made: the close comes while draining)
          if (lastReq.length !== 'chunked') assert.ok(last.headers.some(([k, v]) => k === 'connection' && v === 'close'));
          // (a chunked body is drained by its bytes on the wire, framing included)
          assert.ok(lastReq.path.startsWith('/early') && bodyBytes(lastReq).length > 2048, `closed after ${lastReq.path}`);
        }
      }),
      { numRuns: 4 * RUNS, seed: SEED, endOnFailure: true },
    );
  });

  it('Transfer-Encoding values of codings, commas, SP, HTAB and NBSP: chunked exactly when only SP/HTAB surround a single chunked', async () => {
    // (NBSP is byte 0xA0, obs-text: part of the value, no whitespace, whatever String.prototype.trim() thinks)
    const piece = fc.constantFrom('chunked', 'Chunked', 'CHUNKED', 'gzip', 'identity', ' ', '\t', '\xa0', ',', ', ', '\xff', 'k');
    const value = fc.oneof(
      fc.constantFrom('\xa0chunked', 'chunked\xa0', '\xa0\xa0chunked', ' \xa0chunked', 'chunked \xa0', ' chunked', '\tchunked\t', 'chunked'),
      fc.array(piece, { minLength: 1, maxLength: 5 }).map((p) => p.join('')),
    );
    await fc.assert(
      fc.asyncProperty(value, async (te) => {
        const chunked = te.replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase() === 'chunked';
        const socket = net.connect(port, '127.0.0.1');
        let received = Buffer.alloc(0);
        let ended = false;
        socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
        socket.on('error', () => undefined);
        socket.on('close', () => (ended = true));
        socket.write(Buffer.from(`POST /echo-te HTTP/1.1\r\nTransfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /echo-next HTTP/1.1\r\n\r\n`, 'latin1'));
        const deadline = Date.now() + HANG_MS;
        const wanted = chunked ? 2 : 1;
        while (parseResponses(received).responses.length < wanted && !ended) {
          assert.ok(Date.now() < deadline, 'hang');
          await sleep(5);
        }
        socket.destroy();
        const got = parseResponses(received).responses.map((r) => [r.status, r.body.toString('latin1')]);
        if (chunked) assert.deepEqual(got, [[200, 'POST /echo-te 3'], [200, 'GET /echo-next 0']], JSON.stringify(te));
        else assert.deepEqual(got.map(([status]) => status), [400], JSON.stringify(te));
      }),
      { numRuns: 4 * RUNS, seed: SEED, endOnFailure: true },
    );
  });

  it('still answers a normal request afterwards', async () => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    socket.write('GET /after HTTP/1.1\r\n\r\n');
    const deadline = Date.now() + 3000;
    while (parseResponses(received).responses.length === 0) {
      assert.ok(Date.now() < deadline);
      await sleep(10);
    }
    socket.destroy();
    assert.equal(parseResponses(received).responses[0]!.body.toString(), 'GET /after 0');
  });
});

describe('fuzz: BITS server', () => {
  let t: TestServer;
  let sessionId = '';
  before(async () => {
    t = await startServer({
      config: {
        limits: {
          maxRequestLine: 1024,
          maxHeaderValue: 512,
          maxHeaders: 20,
          maxHead: 4096,
          maxDrain: 4096,
          headerTimeout: IDLE_MS / 1000,
          bodyIdleTimeout: IDLE_MS / 1000,
          keepAliveTimeout: 30,
        },
      },
    });
    sessionId = await t.createSession('/up/fuzz.bin');
  });
  after(() => t.stop());

  const bitsHeader = (): fc.Arbitrary<[string, string]> =>
    fc.oneof(
      fc.constantFrom<[string, string]>(
        ['BITS-Packet-Type', 'Ping'],
        ['BITS-Packet-Type', 'Create-Session'],
        ['BITS-Packet-Type', 'Fragment'],
        ['BITS-Packet-Type', 'Close-Session'],
        ['BITS-Packet-Type', 'cancel-session'],
        ['BITS-Packet-Type', 'Bogus'],
        ['BITS-Supported-Protocols', BITS_PROTOCOL_GUID],
        ['Content-Name', 'fuzz.bin'],
        ['Connection', 'close'],
        ['Expect', '100-continue'],
        ['Transfer-Encoding', 'chunked'],
        ['X-HTTP-Method-Override', 'BITS_POST'],
      ),
      fc.constant<[string, string]>(['BITS-Session-Id', sessionId]),
      fc.tuple(fc.constant('BITS-Session-Id'), fc.stringMatching(/^\{[0-9A-Fa-f-]{0,36}\}$/)),
      fc
        .tuple(fc.nat(20_000), fc.nat(5000), fc.nat(30_000))
        .map(([first, len, total]): [string, string] => ['Content-Range', `bytes ${first}-${first + len}/${total}`]),
      fc.tuple(token, fieldValue),
    );

  it('random and mutated BITS requests: well-formed answers or clean closes, no hang', async () => {
    const method = fc.oneof(fc.constantFrom('BITS_POST', 'BITS_POST', 'BITS_POST', 'bits_post', 'POST', 'GET'), token);
    const path = fc.oneof(fc.constantFrom('/up/fuzz.bin', '/up/other.bin', '/up', '/nowhere/x', '/up/%2e%2e/x', '/up/a/../../b'), fc.stringMatching(/^\/up\/[\x21-\x7e]{0,20}$/));
    const valid: fc.Arbitrary<Req> = fc.record({
      method: fc.constant('BITS_POST'),
      path: fc.constantFrom('/up/fuzz.bin', '/up/other.bin', '/nowhere/x'),
      version: fc.constant('HTTP/1.1'),
      headers: fc
        .array(fc.tuple(fc.stringMatching(/^X-[A-Za-z]{1,8}$/), fieldValue), { maxLength: 3 })
        .map((h): [string, string][] => [['BITS-Packet-Type', 'Ping'], ...h]),
      body: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 3000 })),
      length: fc.constant('exact' as const),
    });
    const probe = (n: number): ProbeSpec => ({
      bytes: Buffer.from(`BITS_POST /up/fuzz.bin HTTP/1.1\r\nBITS-Packet-Type: Ping\r\nBITS-Session-Id: {PROBE-${n}}\r\nContent-Length: 0\r\n\r\n`),
      matches: (r) => r.status === 200 && r.headers.some(([k, v]) => k === 'bits-session-id' && v === `{PROBE-${n}}`),
    });
    await fc.assert(
      fc.asyncProperty(batchArb(requestArb(method, path, bitsHeader()), valid), (scripts) =>
        runBatch(t.port, scripts, probe),
      ),
      fcOptions(),
    );
    assertAllPaths();
  });

  it('still answers a Ping afterwards, and the session is usable', async () => {
    const res = await t.request({ type: 'Ping', path: '/up/a.bin' });
    assert.equal(res.status, 200);
    const created = await t.createSession('/up/after.bin');
    assert.ok(created);
  });
});

// ---------------------------------------------------------------------------------------------
// scanHead alone: pure, so thousands of inputs cost nothing

/** The result without its Buffers' identity: comparable with deepEqual. */
function summary(r: HeadScan): unknown {
  switch (r.kind) {
    case 'none':
      return r;
    case 'partial':
    case 'truncated':
      return { kind: r.kind, pending: r.pending.toString('latin1') };
    case 'head':
      return { kind: r.kind, text: r.text, rest: r.rest.toString('latin1') };
    case 'error':
      return { kind: r.kind, code: r.error.code, status: r.error.status };
  }
}

describe('fuzz: scanHead (pure)', () => {
  const header: fc.Arbitrary<[string, string]> = fc.tuple(token, fc.oneof(fieldValue, fc.constant('l'.repeat(300))));
  const method = fc.oneof(fc.constantFrom('GET', 'BITS_POST'), token);
  const path = fc.oneof(fc.constant('/' + 'p'.repeat(600)), fc.stringMatching(/^\/[\x21-\x7e]{0,80}$/));
  const input = fc
    .tuple(fc.array(requestArb(method, path, header), { minLength: 1, maxLength: 3 }), fc.array(mutationArb, { maxLength: 4 }), fc.nat())
    .map(([reqs, mutations, cut]) => {
      let bytes: Buffer = Buffer.concat(reqs.map(serialize));
      for (const m of mutations) bytes = mutate(bytes, m);
      return { bytes, cut: bytes.length ? cut % (bytes.length + 1) : 0 };
    });
  const limitSets = [
    { maxRequestLine: 64, maxHead: 256 },
    { maxRequestLine: 512, maxHead: 2048 },
  ];

  it('never throws; a head or a refusal found in a prefix stays the answer once more bytes come', () => {
    const kinds = new Set<string>();
    fc.assert(
      fc.property(input, fc.constantFrom(...limitSets), ({ bytes, cut }, limits) => {
        const whole = scanHead(bytes, limits);
        const ended = scanHead(bytes, limits, true);
        const prefix = scanHead(bytes.subarray(0, cut), limits);
        kinds.add(whole.kind);
        // the end of the stream only turns an incomplete head (partial, or already too large) into a truncated one
        if (whole.kind === 'partial') assert.deepEqual(summary(ended), { ...(summary(whole) as object), kind: 'truncated' });
        else if (ended.kind === 'truncated') assert.ok(whole.kind === 'error' && whole.error.code === 'HTTP_HEAD_TOO_LARGE');
        else assert.deepEqual(summary(ended), summary(whole));
        // how the bytes are split into reads does not matter
        if (prefix.kind === 'head') {
          assert.equal(whole.kind, 'head');
          if (whole.kind === 'head') assert.equal(whole.text, prefix.text);
        }
        if (prefix.kind === 'error') assert.deepEqual(summary(whole), summary(prefix));
        // empty lines before a head are skipped
        assert.deepEqual(summary(scanHead(Buffer.concat([Buffer.from('\r\n\r\n'), bytes]), limits)), summary(whole));
        if (whole.kind === 'head') {
          // within the limits, and split exactly at the first CRLFCRLF
          assert.ok(whole.text.length <= limits.maxHead);
          const line = whole.text.split('\r\n')[0]!;
          assert.ok(line.length <= limits.maxRequestLine, `request line of ${line.length}`);
          assert.ok(!whole.text.includes('\r\n\r\n'));
          const skipped = bytes.length - whole.text.length - 4 - whole.rest.length;
          assert.equal(bytes.toString('latin1', skipped, skipped + whole.text.length + 4), `${whole.text}\r\n\r\n`);
        }
      }),
      { numRuns: RUNS * 100, seed: SEED },
    );
    for (const kind of ['head', 'error', 'partial']) assert.ok(kinds.has(kind), `no ${kind} result in ${[...kinds].join(', ')} (FUZZ_SEED=${SEED})`);
  });
});
