// The connection's idle timer (real timers, short durations): each kind fires with its own coded
// HttpError and reads its own limit; refresh() postpones, clear() cancels, arming another kind
// replaces the first. Also the HttpError brand that makes instanceof work across package copies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChunkedBodyError } from '../src/http/chunked-decoder.js';
import { HTTP_ERRORS, HttpError, isHttpError } from '../src/http/errors.js';
import { IdleTimer, LINGER_MS } from '../src/http/idle-timer.js';
import type { TimerKind } from '../src/http/idle-timer.js';

const LIMITS = { headerTimeoutMs: 30, bodyIdleTimeoutMs: 60, keepAliveTimeoutMs: 90, writeIdleTimeoutMs: 120 };

/** Arms a fresh timer for `kind`; resolves with what it fired and after how long. */
function fire(kind: TimerKind): Promise<{ kind: TimerKind; error: HttpError; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    // (the timer is unref'd: something else must keep the test's event loop alive meanwhile)
    const alive = setTimeout(() => undefined, 10_000);
    const timer = new IdleTimer(LIMITS, (k, error) => {
      clearTimeout(alive);
      resolve({ kind: k, error, ms: Date.now() - started });
    });
    timer.arm(kind);
    assert.equal(timer.kind, kind);
  });
}

describe('IdleTimer', () => {
  it('each kind fires with its own code, after its own limit', async () => {
    const expected: [TimerKind, string, number][] = [
      ['head', 'HTTP_HEADER_TIMEOUT', LIMITS.headerTimeoutMs],
      ['body', 'HTTP_BODY_IDLE_TIMEOUT', LIMITS.bodyIdleTimeoutMs],
      ['drain', 'HTTP_DRAIN_TIMEOUT', LIMITS.bodyIdleTimeoutMs],
      ['answer', 'HTTP_ANSWER_TIMEOUT', LIMITS.bodyIdleTimeoutMs],
      ['keep-alive', 'HTTP_KEEP_ALIVE_TIMEOUT', LIMITS.keepAliveTimeoutMs],
      ['write', 'HTTP_WRITE_IDLE_TIMEOUT', LIMITS.writeIdleTimeoutMs],
      ['linger', 'HTTP_LINGER_TIMEOUT', LINGER_MS],
    ];
    const fired = await Promise.all(expected.map(([kind]) => fire(kind)));
    for (const [i, [kind, code, ms]] of expected.entries()) {
      const f = fired[i]!;
      assert.equal(f.kind, kind);
      assert.ok(f.error instanceof HttpError, kind);
      assert.equal(f.error.code, code, kind);
      assert.equal(f.error.message, HTTP_ERRORS[f.error.code].message);
      // (timers never fire early; a loaded machine may make them late)
      assert.ok(f.ms >= ms - 2, `${kind} fired after ${f.ms} ms, limit ${ms}`);
    }
  });

  it('refresh() starts the running kind over; clear() cancels it; kind is null once fired', async () => {
    const fired: TimerKind[] = [];
    const timer = new IdleTimer(LIMITS, (kind) => fired.push(kind));
    timer.arm('head');
    for (let i = 0; i < 4; i++) {
      await sleep(15);
      timer.refresh();
    }
    assert.deepEqual(fired, [], '60 ms in all, never 30 ms idle');
    await sleep(60);
    assert.deepEqual(fired, ['head']);
    assert.equal(timer.kind, null);
    timer.refresh(); // nothing armed: nothing happens
    timer.arm('body');
    timer.clear();
    assert.equal(timer.kind, null);
    await sleep(90);
    assert.deepEqual(fired, ['head']);
  });

  it('arming another kind replaces the one running', async () => {
    const fired: string[] = [];
    const timer = new IdleTimer(LIMITS, (_kind, error) => fired.push(error.code));
    timer.arm('head');
    timer.arm('write');
    await sleep(60);
    assert.deepEqual(fired, [], 'the head deadline no longer runs');
    await sleep(100);
    assert.deepEqual(fired, ['HTTP_WRITE_IDLE_TIMEOUT']);
  });
});

describe('HttpError', () => {
  it('instanceof holds for an error of another copy of the package (the Symbol.for brand), not for a look-alike', () => {
    const foreign = Object.assign(new Error('body idle timeout'), {
      code: 'HTTP_BODY_IDLE_TIMEOUT',
      [Symbol.for('bits-upload.HttpError')]: true,
    });
    assert.ok(foreign instanceof HttpError);
    assert.ok(isHttpError(foreign));
    const lookAlike = Object.assign(new Error('x'), { code: 'HTTP_BODY_IDLE_TIMEOUT' });
    assert.ok(!(lookAlike instanceof HttpError));
    assert.ok(!isHttpError(lookAlike));
    assert.ok(!isHttpError(null) && !isHttpError('HTTP_BODY_IDLE_TIMEOUT'));
  });

  it('a subclass keeps the prototype check: a ChunkedBodyError is an HttpError, not the other way round', () => {
    const chunked = new ChunkedBodyError('bare LF in chunked framing');
    assert.ok(chunked instanceof HttpError);
    assert.ok(chunked instanceof ChunkedBodyError);
    assert.equal(chunked.code, 'HTTP_BAD_CHUNKED_BODY');
    assert.equal(chunked.name, 'ChunkedBodyError');
    assert.ok(!(new HttpError('HTTP_BAD_CHUNKED_BODY') instanceof ChunkedBodyError));
  });

  it('takes its default message from the table', () => {
    const err = new HttpError('HTTP_HEADER_TIMEOUT');
    assert.equal(err.message, 'header timeout');
    assert.equal(err.name, 'HttpError');
    assert.equal(new HttpError('HTTP_CONNECTION_CLOSED', 'connection is gone').message, 'connection is gone');
  });
});
