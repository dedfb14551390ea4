import type { Readable } from 'node:stream';

/** What the server remembers about one upload session. */
export interface SessionRecord {
  /** The id as issued to the client (`{GUID}`). */
  readonly id: string;
  /** The virtual directory's URL path (`/uploads`). */
  readonly vdir: string;
  /** The decoded URL path the session uploads to (`/uploads/dump.bin`). */
  readonly urlPath: string;
  /** Absolute filesystem path of the destination. */
  readonly destination: string;
  readonly protocol: string;
  /** Entity size, fixed by the first accepted fragment; `null` before it. */
  total: number | null;
  /** Contiguous bytes durably held from offset 0 (the next expected offset, N). */
  received: number;
  readonly createdAt: number;
  /** Time of the last successful packet, ms since the epoch. */
  updatedAt: number;
  /** Idle lifetime in ms: the session expires at `updatedAt + timeoutMs`. */
  readonly timeoutMs: number;
  /** `committing` is written just before the data is moved to its destination. */
  state: 'receiving' | 'committing';
  /** The authenticated principal that created the session, if any. */
  readonly principal: string | null;
  /** Set once the server application was notified successfully (upload-reply); survives restarts. */
  reply?: ReplyRecord | null;
}

/** The outcome of a successful notification. */
export interface ReplyRecord {
  /** The `BITS-Reply-URL` sent on the completing Ack (and on resends of it). */
  readonly url: string;
  /** True when the application gave a `BITS-Static-Response-URL`: no reply file, never deleted by us. */
  readonly static: boolean;
  /** Secret part of a generated reply URL (empty for static replies). */
  readonly token: string;
  /** Whether the application asked for the upload to be placed at its destination too. */
  readonly copyToDestination: boolean;
}

/** A held per-session lock. `signal` aborts when a newer request for the session supersedes this one (D10). */
export interface SessionLock {
  readonly signal: AbortSignal;
  release(): void;
}

/** Whose sessions to count: one principal's on one vdir. */
export interface SessionOwner {
  readonly vdir: string;
  readonly principal: string;
}

/** Thrown by {@link RecordStore.create} when the owner already holds `limit` live sessions. */
export class SessionLimitError extends Error {
  constructor(
    readonly held: number,
    readonly limit: number,
  ) {
    super(`${held} live sessions held, the limit is ${limit}`);
    this.name = 'SessionLimitError';
  }
}

/** Options of {@link RecordStore.create}. */
export interface CreateOptions {
  /**
   * Refuse (with {@link SessionLimitError}) when the record's principal already holds this many live
   * sessions on its vdir. The count and the insert are one atomic step, so simultaneous creates
   * cannot overshoot the limit.
   */
  readonly limit?: number | undefined;
  /** The clock for liveness (default `Date.now()`). */
  readonly now?: number | undefined;
}

/**
 * Session records: create / get / update / delete, the expired ones, a per-owner count, and a
 * per-session lock. Implementations make every write atomic and durable before resolving.
 */
export interface RecordStore {
  create(record: SessionRecord, options?: CreateOptions): Promise<void>;
  /** The record, or `undefined` when the id is unknown (ids compare case-insensitively, braces optional). */
  get(id: string): Promise<SessionRecord | undefined>;
  update(record: SessionRecord): Promise<void>;
  delete(id: string): Promise<void>;
  /** Up to `limit` records idle for longer than their timeout at `now` (for sweeps). */
  listExpired(now: number, limit: number): Promise<SessionRecord[]>;
  /** How many live (unexpired at `now`) sessions an owner holds. */
  countLive(owner: SessionOwner, now: number): Promise<number>;
  /**
   * Takes the session's lock. A holder already there is told to stop (its `signal` aborts) and the
   * new caller gets the lock as soon as the holder releases it.
   */
  lock(id: string): Promise<SessionLock>;
  /**
   * Start-up recovery, called once the server owns its state and before it serves: an
   * implementation may clean up what a crash left half-done.
   */
  recover?(): Promise<void>;
}

/** Thrown by {@link ByteStore.write} when the source or the disk fails part way. */
export class PartialWriteError extends Error {
  /** Bytes durably written before the failure. */
  readonly written: number;
  /** What failed: the incoming stream (client gone, idle, aborted) or the storage itself. */
  readonly origin: 'source' | 'storage';
  constructor(written: number, cause: unknown, origin: 'source' | 'storage' = 'storage') {
    super(`write failed after ${written} bytes: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'PartialWriteError';
    this.written = written;
    this.origin = origin;
  }
  /** The errno code of the underlying failure (`ENOSPC`, …), if any. */
  get errno(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

/** Where a commit puts an upload: a path of names below a root folder. */
export interface UploadDestination {
  /** The vdir's folder. */
  readonly root: string;
  /** Decoded names below it, the file name last (`['crash', 'dump.bin']`). */
  readonly path: readonly string[];
}

/** Thrown by {@link ByteStore.write} when the session's upload is no longer there (deleted from outside). */
export class UploadMissingError extends Error {
  constructor(readonly id: string) {
    super(`the data of session ${id} is gone`);
    this.name = 'UploadMissingError';
  }
}

/**
 * The bytes of sessions' uploads.
 */
export interface ByteStore {
  /** Creates the empty upload of a session. */
  open(id: string): Promise<void>;
  /**
   * Writes `source` at `offset` and makes it durable (fdatasync) before resolving with the number of
   * bytes written. On failure throws {@link PartialWriteError} with the bytes made durable, or
   * {@link UploadMissingError} when the upload is gone.
   */
  write(id: string, offset: number, source: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Moves the upload to `destination` atomically. Without `overwrite` an existing destination makes
   * it fail with an `EEXIST` error and leaves both files as they were. Missing folders are created.
   * The file never lands outside `destination.root`, whatever is swapped in the tree meanwhile. A
   * repeated commit of an upload that an interrupted earlier commit already placed succeeds.
   */
  commit(id: string, destination: UploadDestination, options: { overwrite: boolean }): Promise<void>;
  /** Whether the upload's data is still there. */
  exists(id: string): Promise<boolean>;
  /** Reads the upload's data (for by-value notification and in-process hooks). */
  openRead(id: string): Readable;
  /** A local filesystem path of the upload's data, when the store has one (by-reference notification). */
  localPath(id: string): string | undefined;
  /** Where the reply of an upload-reply session is (or is to be written by the application). */
  replyPath(id: string): string | undefined;
  /** Stores a reply from a stream, durably; returns its size. When it fails, nothing of it is left behind. */
  writeReply(id: string, source: Readable): Promise<number>;
  /** Deletes the upload's data and reply (no error when they are already gone). */
  discard(id: string): Promise<void>;
}
