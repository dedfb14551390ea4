import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach } from 'node:test';
import { newSessionId } from '../../protocol/session-id.js';
import type { SessionRecord } from '../types.js';

/** One store under test over fresh, empty storage, as a compliance suite gets it for each case. */
export interface StoreHarness<S> {
  readonly store: S;
  /**
   * A new instance over the same storage, as a restarted server gets it: nothing may be shared
   * with {@link store} but what the storage itself holds.
   */
  reopen(): Promise<S>;
  /** Removes the storage. */
  cleanup(): Promise<void>;
}

/** Makes a fresh {@link StoreHarness} (called before every case). */
export type MakeStore<S> = () => Promise<StoreHarness<S>>;

/**
 * A valid session record with a new id, live for a minute from now.
 *
 * @example
 * ```ts
 * await records.create(sampleRecord({ principal: 'alice' }));
 * ```
 */
export function sampleRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    id: newSessionId(),
    vdir: '/up',
    urlPath: '/up/a.bin',
    destination: '/nowhere/a.bin',
    protocol: '{7df0354d-249b-430f-820d-3d2a9bef4931}',
    total: null,
    received: 0,
    createdAt: now,
    updatedAt: now,
    timeoutMs: 60_000,
    state: 'receiving',
    principal: null,
    ...overrides,
  };
}

/**
 * A source stream of the given parts, one chunk each.
 *
 * @example
 * ```ts
 * await bytes.write(id, 0, source('hello ', 'world'));
 * ```
 */
export function source(...parts: (string | Buffer)[]): Readable {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

/**
 * Reads a stream to its end.
 *
 * @example
 * ```ts
 * assert.equal((await readAll(bytes.openRead(id))).toString(), 'hello world');
 * ```
 */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The current case's harness and a temp folder for destinations, fresh for every case. */
export interface CaseContext<S> {
  readonly h: StoreHarness<S>;
  readonly store: S;
  /** An empty folder a case may commit uploads into. */
  readonly dest: string;
}

/**
 * Registers the per-case set-up and tear-down of a suite (inside its `describe`), and returns the
 * current case's context.
 *
 * @example
 * ```ts
 * describe('RecordStore compliance', () => {
 *   const ctx = perCase(make);
 *   it('…', async () => {
 *     const { store } = ctx();
 *   });
 * });
 * ```
 */
export function perCase<S>(make: MakeStore<S>): () => CaseContext<S> {
  let current: CaseContext<S> | undefined;
  beforeEach(async () => {
    const h = await make();
    current = { h, store: h.store, dest: await mkdtemp(join(tmpdir(), 'bits-dest-')) };
  });
  afterEach(async () => {
    const c = current;
    current = undefined;
    await c?.h.cleanup();
    if (c) await rm(c.dest, { recursive: true, force: true });
  });
  return () => {
    if (!current) throw new Error('no store: the case runs outside its suite');
    return current;
  };
}
