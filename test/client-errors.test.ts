// The client's error table and how failures become client errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BitsClientError, CLIENT_ERRORS, describeClientError, isBitsClientError, toClientError } from '../src/client/errors.js';
import { HostIdRoute } from '../src/client/host-id-route.js';
import type { HostIdState } from '../src/client/host-id-route.js';
import { networkError } from '../src/client/transport.js';
import { readAck } from '../src/protocol/ack-info.js';
import { hostIdUrl } from '../src/protocol/host-id.js';
import { HResult } from '../src/protocol/hresult.js';

const url = new URL('http://farm:8080/up/a.bin');

describe('client errors', () => {
  it('operating-system errors are local-file errors; programming errors are internal, both fatal', () => {
    const fs = toClientError(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', errno: -13 }));
    assert.equal(fs.code, 'BITS_CLIENT_LOCAL_FILE');
    assert.equal(fs.kind, 'fatal');
    for (const bug of [new TypeError("Cannot read properties of undefined (reading 'x')"), Object.assign(new Error('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' }), 'a string']) {
      const e = toClientError(bug);
      assert.equal(e.code, 'BITS_CLIENT_INTERNAL', String(bug));
      assert.equal(e.kind, 'fatal');
      assert.equal(e.hresult, HResult.Fail);
    }
    assert.match(toClientError(new TypeError('x is undefined')).message, /^TypeError: x is undefined$/);
    const same = new BitsClientError('BITS_CLIENT_NETWORK', 'lost');
    assert.equal(toClientError(same), same);
  });

  it('an untrusted certificate is BITS_CLIENT_TLS, fatal; a reset stays BITS_CLIENT_NETWORK, transient', () => {
    const tls = networkError(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'Ping', url);
    assert.ok(isBitsClientError(tls));
    assert.equal(tls.code, 'BITS_CLIENT_TLS');
    assert.equal(tls.kind, 'fatal');
    const reset = networkError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 'Ping', url);
    assert.ok(isBitsClientError(reset));
    assert.equal(reset.code, 'BITS_CLIENT_NETWORK');
    assert.equal(reset.kind, 'transient');
  });

  it('every row has a kind except server errors, whose kind is decided per answer', () => {
    for (const [code, row] of Object.entries(CLIENT_ERRORS)) {
      if (code === 'BITS_CLIENT_SERVER_ERROR') assert.equal('kind' in row, false);
      else assert.ok('kind' in row, code);
    }
    assert.equal(new BitsClientError('BITS_CLIENT_SERVER_ERROR', 'x', { kind: 'transient' }).kind, 'transient');
  });

  it('the README\'s table of client error codes lists every code, with its kind', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [code, row] of Object.entries(CLIENT_ERRORS)) {
      const line = readme.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      assert.ok(line, `${code} is in the table`);
      if ('kind' in row) assert.equal(line.split('|')[2]!.trim(), row.kind, code);
    }
  });

  it('isBitsClientError knows an error of another copy of the package by its Symbol.for brand', () => {
    const err = new BitsClientError('BITS_CLIENT_NETWORK', 'lost');
    assert.equal(isBitsClientError(err), true);
    const foreign = Object.defineProperty(new Error('lost'), Symbol.for('bits-upload.BitsClientError'), { value: true });
    assert.equal(isBitsClientError(foreign), true);
    assert.equal(isBitsClientError(Object.assign(new Error('x'), { code: 'BITS_CLIENT_NETWORK' })), false);
    assert.equal(isBitsClientError(null), false);
    assert.equal(Object.keys(err).some((k) => k.includes('Symbol')), false);
    assert.equal(JSON.stringify(err.toJSON()).includes('bits-upload.BitsClientError'), false, 'the brand stays out of JSON');
  });

  it('describes the context by its name', () => {
    const err = new BitsClientError('BITS_CLIENT_SERVER_ERROR', 'failed', { kind: 'fatal', status: 500, hresult: 0x801901f4, context: 0x7 });
    assert.match(describeClientError(err), /context 0x7 \(remote application\)/);
  });
});

describe('Host-Id routing', () => {
  it('hostIdUrl refuses a value that names no host instead of keeping the upload host', () => {
    assert.equal(hostIdUrl(url, 'not a host'), undefined);
    assert.equal(hostIdUrl(url, 'node1/evil'), undefined);
    assert.equal(hostIdUrl(url, 'node1')?.href, 'http://node1:8080/up/a.bin');
  });

  it('adopts a Host-Id, falls back after the timeout, and never takes that Host-Id again', () => {
    const state: HostIdState = { sessionId: '{A}' };
    const trusted: string[] = [];
    const route = new HostIdRoute(url, state, (u) => trusted.push(u.origin));
    const ack = readAck(200, { 'bits-session-id': '{A}', 'bits-host-id': 'node1', 'bits-host-id-fallback-timeout': '10' });
    const adopted = route.adopt(ack, url);
    assert.equal(adopted.kind, 'adopted');
    assert.equal(route.url().href, 'http://node1:8080/up/a.bin');
    assert.deepEqual(trusted, ['http://node1:8080']);
    assert.equal(state.hostIdFallbackTimeoutMs, 10_000);
    assert.equal(route.waitCapMs(0), Number.POSITIVE_INFINITY, 'nothing is failing');
    route.failed('http://farm:8080/up/a.bin', 1000);
    assert.equal(route.waitCapMs(1000), Number.POSITIVE_INFINITY, 'a failure elsewhere starts no clock');
    route.failed('http://node1:8080/up/a.bin', 1000);
    route.failed('http://node1:8080/up/a.bin', 5000);
    assert.equal(route.waitCapMs(4000), 7000, 'the clock runs from the first failure');
    assert.equal(route.fallbackDue(10_999), undefined);
    assert.equal(route.fallbackDue(11_000), 'node1');
    assert.equal(route.url().href, url.href);
    assert.deepEqual(state.failedHostIds, ['node1']);
    assert.equal(route.adopt(ack, url).kind, 'none', 'given up on for the rest of the job');
  });

  it('a success of the Host-Id host stops its clock; a resumed session goes on at its Host-Id', () => {
    const state: HostIdState = { sessionId: '{A}', hostId: 'node2:81', hostIdFallbackTimeoutMs: 10 };
    const route = new HostIdRoute(url, state, () => undefined);
    assert.equal(route.url().href, 'http://node2:81/up/a.bin');
    route.failed('http://node2:81/up/a.bin', 0);
    route.succeeded(new URL('http://node2:81/up/a.bin'));
    assert.equal(route.fallbackDue(1_000_000), undefined);
    assert.equal(route.adopt(readAck(200, { 'bits-host-id': 'not a host' }), url).kind, 'ignored');
    assert.equal(route.url().href, url.href);
  });
});
