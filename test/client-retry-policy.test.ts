// The client's retry rules as pure functions: what is retried (spec §7.2, §3.4, §3.5) and how long a
// job waits before the next attempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyServerError, retryWaitMs } from '../src/client/retry-policy.js';
import { HResult } from '../src/protocol/hresult.js';

const timing = { retryDelayMs: 1000, maxRetryDelayMs: 8000, noProgressTimeoutMs: 10_000 };
const noJitter = (): number => 0;

describe('client retry policy', () => {
  it('classifies answers by spec §7.2, fatal HRESULTs whatever the status', () => {
    assert.equal(classifyServerError(503), 'transient');
    assert.equal(classifyServerError(409), 'transient');
    assert.equal(classifyServerError(409, HResult.AccessDenied), 'fatal');
    assert.equal(classifyServerError(500, HResult.ProtocolMismatch), 'fatal');
    assert.equal(classifyServerError(501), 'fatal');
  });

  it('Close-Session and Cancel-Session are resent on 5xx but 501/505 only, whatever the HRESULT', () => {
    for (const packet of ['Close-Session', 'Cancel-Session']) {
      assert.equal(classifyServerError(500, undefined, { packet }), 'transient', packet);
      assert.equal(classifyServerError(500, HResult.TooLarge, { packet }), 'transient', `${packet}: the status decides`);
      assert.equal(classifyServerError(503, undefined, { packet }), 'transient', packet);
      assert.equal(classifyServerError(501, undefined, { packet }), 'fatal', packet);
      assert.equal(classifyServerError(505, undefined, { packet }), 'fatal', packet);
      assert.equal(classifyServerError(408, undefined, { packet }), 'fatal', `${packet}: 4xx is never resent`);
      assert.equal(classifyServerError(409, undefined, { packet }), 'fatal', packet);
      assert.equal(classifyServerError(307, undefined, { packet }), 'fatal', packet);
    }
    assert.equal(classifyServerError(408, undefined, { packet: 'Fragment' }), 'transient', 'other packets keep the §7.2 rule');
  });

  it('retryWaitMs: the backoff, doubled per attempt and capped', () => {
    assert.equal(retryWaitMs({ attempt: 1, timing, idleMs: 0, random: noJitter }), 1000);
    assert.equal(retryWaitMs({ attempt: 3, timing, idleMs: 0, random: noJitter }), 4000);
    assert.equal(retryWaitMs({ attempt: 9, timing, idleMs: 0, random: noJitter }), 8000);
    const jittered = retryWaitMs({ attempt: 1, timing, idleMs: 0, random: () => 1 });
    assert.equal(jittered, 1200, 'up to 20 % of jitter');
  });

  it('retryWaitMs: never beyond the no-progress limit, nor the job cap', () => {
    assert.equal(retryWaitMs({ attempt: 4, timing, idleMs: 9_500, random: noJitter }), 500);
    assert.equal(retryWaitMs({ attempt: 4, timing, idleMs: 12_000, random: noJitter }), 0);
    assert.equal(retryWaitMs({ attempt: 4, timing, idleMs: 0, capMs: 250, random: noJitter }), 250, 'a Host-Id fallback falls due');
    assert.equal(retryWaitMs({ attempt: 9, timing: { ...timing, noProgressTimeoutMs: 0 }, idleMs: 1e9, random: noJitter }), 8000, '0 = no limit');
  });

  it('retryWaitMs: at least the server\'s Retry-After, within the no-progress limit', () => {
    assert.equal(retryWaitMs({ attempt: 1, timing, idleMs: 0, retryAfterMs: 5000, random: noJitter }), 5000);
    assert.equal(retryWaitMs({ attempt: 1, timing, idleMs: 0, retryAfterMs: 5000, capMs: 100, random: noJitter }), 5000, 'the server\'s pause beats the cap');
    assert.equal(retryWaitMs({ attempt: 1, timing, idleMs: 8000, retryAfterMs: 5000, random: noJitter }), 2000);
    assert.equal(retryWaitMs({ attempt: 1, timing: { ...timing, noProgressTimeoutMs: 0 }, idleMs: 0, retryAfterMs: 60_000, random: noJitter }), 60_000);
  });
});
