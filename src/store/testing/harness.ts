import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach } from 'node:test';
import { newSessionId } from '../../protocol/session-id.js';
import { PartialWriteError } from '../types.js';
import type { ByteState, ByteStore, DestinationStore, OpenOptions, SessionRecord, StoredObject, StoredUpload, UploadTarget, WriteOptions } from '../types.js';

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

/** A byte store under test, with an empty destination to commit into, fresh for every case. */
export interface ByteStoreHarness extends StoreHarness<ByteStore> {
  /** Where the case's uploads are committed (a temp folder, a fresh bucket prefix). */
  readonly destinations: DestinationStore;
}

/** Makes a fresh {@link ByteStoreHarness} (called before every case). */
export type MakeByteStore = () => Promise<ByteStoreHarness>;

/** A destination store under test, with a way to place objects in it behind its back. */
export interface DestinationStoreHarness extends StoreHarness<DestinationStore> {
  /** Places (or replaces) `content` at `path`, as another writer of the destination would. */
  put(path: readonly string[], content: Buffer): Promise<void>;
}

/** Makes a fresh {@link DestinationStoreHarness} (called before every case). */
export type MakeDestinationStore = () => Promise<DestinationStoreHarness>;

/** What {@link TestUpload.write} takes: a stream, or parts that become one chunk each. */
export type TestSource = Readable | string | Buffer | readonly (string | Buffer)[];

/**
 * One upload driven as the server drives it: the record's `received` and `bytes` (the store's
 * memo) are threaded from every write (and from a {@link PartialWriteError}) into the next call.
 *
 * @example
 * ```ts
 * const up = await TestUpload.open(store, destinations, ['a.bin']);
 * await up.write('hello ');
 * await up.write(['wor', 'ld']);
 * await up.commit(false);
 * ```
 */
export class TestUpload {
  received = 0;
  bytes: ByteState | undefined;

  constructor(
    public store: ByteStore,
    readonly id: string,
    readonly target: UploadTarget,
    readonly destination: string,
    bytes: ByteState | undefined,
  ) {
    this.bytes = bytes;
  }

  /** Opens a new upload bound for `path` in `destinations` (Create-Session). */
  static async open(store: ByteStore, destinations: DestinationStore, path: readonly string[], options?: OpenOptions): Promise<TestUpload> {
    const id = newSessionId();
    const destination = await destinations.resolve(path);
    const target = { destinations, path };
    return new TestUpload(store, id, target, destination, await store.open(id, target, options));
  }

  /** The upload as the byte store gets it from the record. */
  get upload(): StoredUpload {
    return { id: this.id, destination: this.destination, bytes: this.bytes };
  }

  /** The same upload on another store instance (a restarted server, another node). */
  on(store: ByteStore): TestUpload {
    const copy = new TestUpload(store, this.id, this.target, this.destination, this.bytes);
    copy.received = this.received;
    return copy;
  }

  /**
   * Writes at the durable offset and records the outcome as the server does. Parts given as
   * strings or buffers announce their length (`length`), as a Fragment's Content-Length does;
   * pass `length: undefined` explicitly to withhold it.
   */
  async write(source: TestSource, options: WriteOptions = {}): Promise<number> {
    const stream = toStream(source);
    const announced = source instanceof Readable ? undefined : stream.readableLength;
    const length = 'length' in options ? options.length : announced;
    try {
      const { written, bytes } = await this.store.write(this.upload, this.received, stream, { ...options, length });
      this.received += written;
      this.bytes = bytes ?? this.bytes;
      return written;
    } catch (err) {
      if (err instanceof PartialWriteError) {
        this.received += err.written;
        this.bytes = err.bytes ?? this.bytes;
      }
      throw err;
    }
  }

  /** Commits to the upload's target (Close-Session). */
  commit(overwrite: boolean): Promise<void> {
    return this.store.commit(this.upload, this.target, { overwrite });
  }

  exists(): Promise<boolean> {
    return this.store.exists(this.upload);
  }

  discard(): Promise<void> {
    return this.store.discard(this.upload);
  }
}

function toStream(source: TestSource): Readable {
  if (source instanceof Readable) return source;
  const parts = typeof source === 'string' || Buffer.isBuffer(source) ? [source] : source;
  const stream = new Readable({ read() {} });
  for (const p of parts) stream.push(Buffer.from(p));
  stream.push(null);
  return stream;
}

/**
 * The whole of a stored object, read through its `read`; `undefined` when there is none.
 *
 * @example
 * ```ts
 * assert.equal((await contentOf(await destinations.open(['a.bin'])))?.toString(), 'hello');
 * ```
 */
export async function contentOf(object: StoredObject | undefined): Promise<Buffer | undefined> {
  if (!object) return undefined;
  try {
    return await readAll(object.read(0, object.size - 1));
  } finally {
    await object.close();
  }
}

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
  return toStream(parts);
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
export interface CaseContext<H extends StoreHarness<unknown>> {
  readonly h: H;
  readonly store: H['store'];
  /** An empty folder a case may use. */
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
export function perCase<H extends StoreHarness<unknown>>(make: () => Promise<H>): () => CaseContext<H> {
  let current: CaseContext<H> | undefined;
  beforeEach(async () => {
    const h = await make();
    current = { h, store: h.store as H['store'], dest: await mkdtemp(join(tmpdir(), 'bits-dest-')) };
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
