import type { Readable } from 'node:stream';

/** A JSON value, as records keep it. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * A byte store's own memo of one upload (an object store's multipart upload id, its parts and the
 * current tail), kept in the session's record so that it is durable and fenced with it. The server
 * stores it and hands it back; it never reads it.
 */
export type ByteState = { readonly [key: string]: JsonValue };

/** What the server remembers about one upload session. */
export interface SessionRecord {
  /** The id as issued to the client (`{GUID}`). */
  readonly id: string;
  /** The virtual directory's URL path (`/uploads`). */
  readonly vdir: string;
  /** The decoded URL path the session uploads to (`/uploads/dump.bin`). */
  readonly urlPath: string;
  /**
   * Where the upload lands, as its destination store names it (`/srv/uploads/dump.bin`,
   * `s3://bits-uploads/uploads/dump.bin`): for logs, hooks, and to notice a vdir that moved.
   */
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
  /** The byte store's memo of the upload ({@link ByteState}); absent for stores that keep none. */
  bytes?: ByteState | undefined;
  /** The node that last wrote the record (farm mode); set by the record store. */
  node?: string | undefined;
  /** The client of the last packet that wrote the record: its address and `User-Agent`. */
  client?: { address: string; userAgent: string | null } | undefined;
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

/**
 * A held per-session lease. `signal` aborts when a newer request for the session supersedes this one
 * (D10), on this node or on another. `token` is the fencing token: it grows with every new holder,
 * and the record store refuses writes made under a token that is no longer the session's newest.
 */
export interface SessionLock {
  readonly signal: AbortSignal;
  readonly token: number;
  /** Gives the lease up (no error when it was already superseded). */
  release(): Promise<void>;
}

/**
 * Thrown by {@link RecordStore.update} and {@link RecordStore.delete} when the lease they were made
 * under has been superseded: a newer request owns the session, and the stale write changed nothing.
 */
export class LeaseLostError extends Error {
  constructor(
    readonly id: string,
    readonly token: number,
  ) {
    super(`the lease ${token} of session ${id} was superseded`);
    this.name = 'LeaseLostError';
  }
}

/**
 * Thrown by a store whose backing service (a database, an object store) cannot be reached or is
 * failing transiently. The packet is answered 503 with `Retry-After`, which a BITS client retries;
 * nothing acknowledged is lost.
 */
export class StoreUnavailableError extends Error {
  constructor(
    readonly service: string,
    cause: unknown,
  ) {
    super(`${service} is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'StoreUnavailableError';
  }
}

/** Whose sessions to count: one principal's on one vdir. */
export interface SessionOwner {
  readonly vdir: string;
  readonly principal: string;
}

/** Options of {@link RecordStore.list}. */
export interface ListOptions {
  readonly vdir?: string | undefined;
  readonly principal?: string | undefined;
  readonly state?: SessionRecord['state'] | undefined;
  /** Only records whose session key sorts after this one (the last key of the previous page). */
  readonly after?: string | undefined;
  readonly limit: number;
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

/** Options of {@link RecordStore.update}. */
export interface UpdateOptions {
  /**
   * Only the progress changed (`received`, `updatedAt`, `client`, and `total` when it was not known
   * yet), and the byte store made the new length durable itself ({@link WriteResult.tracked}), the
   * total with it: the store may keep the change in memory and
   * write it with the next full update, or when it closes. After a crash the server takes the
   * length back from the byte store ({@link ProgressTracking.recover}).
   */
  readonly progressOnly?: boolean | undefined;
}

/**
 * Session records: create / get / update / delete, the expired ones, a per-owner count, and a
 * per-session lock. Implementations make every write atomic and durable before resolving.
 */
export interface RecordStore {
  create(record: SessionRecord, options?: CreateOptions): Promise<void>;
  /** The record, or `undefined` when the id is unknown (ids compare case-insensitively, braces optional). */
  get(id: string): Promise<SessionRecord | undefined>;
  /**
   * Replaces the record, made under `lock`. Once a newer holder has taken the session over, writes
   * under the older lease are refused with {@link LeaseLostError} and change nothing, so a stale
   * node can never overwrite a newer record. (Across nodes a newer request takes over at once; a
   * single-process store may let the superseded holder finish, and record what it wrote, first.)
   */
  update(record: SessionRecord, lock: SessionLock, options?: UpdateOptions): Promise<void>;
  /**
   * Deletes the record (no error when it is already gone). With `lock`, fenced as
   * {@link RecordStore.update} is.
   */
  delete(id: string, lock?: SessionLock): Promise<void>;
  /**
   * Up to `limit` records ordered by session key (the id in upper case without braces), those past `after` (a key)
   * only, filtered by vdir, principal and state: pages of the session table for the admin API.
   * Expired records that the sweep has not removed yet are listed too.
   */
  list(options: ListOptions): Promise<SessionRecord[]>;
  /** Up to `limit` records idle for longer than their timeout at `now` (for sweeps). */
  listExpired(now: number, limit: number): Promise<SessionRecord[]>;
  /** How many live (unexpired at `now`) sessions an owner holds. */
  countLive(owner: SessionOwner, now: number): Promise<number>;
  /** Optional (readiness): resolves when the store can be used now, fails (`StoreUnavailableError`) when not. */
  ping?(): Promise<void>;
  /** Optional (metrics): live sessions at `now`, by vdir path, of every node that shares the store. */
  countLiveByVdir?(now: number): Promise<Map<string, number>>;
  /**
   * Takes the session's lock. A holder already there is told to stop (its `signal` aborts) and the
   * new caller gets the lock as soon as the holder releases it.
   */
  lock(id: string): Promise<SessionLock>;
  /** Takes the session's lock only when nobody holds it (the sweeper); `undefined` otherwise. */
  tryLock(id: string): Promise<SessionLock | undefined>;
  /**
   * Runs `work` on one node of a farm at a time (the expiry sweep); resolves `undefined` without
   * running it while another node runs work of the same name. A single-process store runs it once at a time the same way.
   */
  exclusive<T>(name: string, work: () => Promise<T>): Promise<T | undefined>;
  /** Closes connections and stops background work (the server is stopping). */
  close?(): Promise<void>;
  /**
   * Start-up recovery, called once the server owns its state and before it serves: an
   * implementation may clean up what a crash left half-done.
   */
  recover?(): Promise<void>;
}

/** Thrown by {@link ByteStore.write} when the source or the storage fails part way. */
export class PartialWriteError extends Error {
  /** Bytes durably written before the failure. */
  readonly written: number;
  /** What failed: the incoming stream (client gone, idle, aborted) or the storage itself. */
  readonly origin: 'source' | 'storage';
  /** The store's memo that records the {@link PartialWriteError.written} bytes (`undefined`: unchanged). */
  readonly bytes: ByteState | undefined;
  constructor(written: number, cause: unknown, origin: 'source' | 'storage' = 'storage', bytes?: ByteState) {
    super(`write failed after ${written} bytes: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'PartialWriteError';
    this.written = written;
    this.origin = origin;
    this.bytes = bytes;
  }
  /** The errno code of the underlying failure (`ENOSPC`, …), if any. */
  get errno(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

/** Options of {@link ByteStore.open}. */
export interface OpenOptions {
  /**
   * The data will be read back before it is committed (the vdir notifies an application): an
   * object store keeps it where it can be read once complete, rather than at the destination.
   */
  readonly readBack?: boolean | undefined;
}

/** Options of {@link ByteStore.write}. */
export interface WriteOptions {
  /** Aborts when a newer request supersedes this one; the write then ends as a source failure. */
  readonly signal?: AbortSignal | undefined;
  /** The upload's total size, when known: a store may seal the upload once it is reached. */
  readonly total?: number | undefined;
  /** How many bytes `source` yields when it does not fail (an object store streams parts of known length). */
  readonly length?: number | undefined;
  /**
   * Track a write that completes the upload too (a store with {@link ByteStore.progress}): its
   * record need not be written before the commit, which seals the upload once the record says it is
   * complete. Without it such a write is left for the record to vouch for, so that the upload can
   * be sealed at once (a notified upload is read by the application before it is committed).
   */
  readonly trackCompletion?: boolean | undefined;
}

/**
 * Exclusive claims on destination names for the time of one commit, so that two sessions that
 * commit the same name at once with overwrites off cannot both succeed on a store that has no
 * atomic create-if-absent. A farm's record store provides them (PostgreSQL advisory locks).
 */
export interface DestinationClaims {
  /** Claims `name`; `undefined` when another commit holds it. A claim ends with its holder's process. */
  claim(name: string): Promise<{ release(): Promise<void> } | undefined>;
}

/** Thrown by {@link ByteStore.write} when the session's upload is no longer there (deleted from outside). */
export class UploadMissingError extends Error {
  constructor(readonly id: string) {
    super(`the data of session ${id} is gone`);
    this.name = 'UploadMissingError';
  }
}

/**
 * Thrown by {@link ByteStore.commit} when overwrites are off and something is already at the
 * destination; both are left as they were. Its `code` is `EEXIST`, as a filesystem's would be.
 */
export class DestinationExistsError extends Error {
  readonly code = 'EEXIST';
  constructor(readonly destination: string) {
    super(`${destination} exists`);
    this.name = 'DestinationExistsError';
  }
}

/** One upload as the byte store sees it: the session's id, its destination and the store's memo. */
export type StoredUpload = Pick<SessionRecord, 'id' | 'destination' | 'bytes'>;

/** What a successful {@link ByteStore.write} made durable. */
export interface WriteResult {
  /** Bytes written from `source` and made durable. */
  readonly written: number;
  /** The store's new memo of the upload, to be recorded with the new offset (`undefined`: unchanged). */
  readonly bytes?: ByteState | undefined;
  /**
   * The store made the new length durable itself, recoverable after a crash with
   * {@link ProgressTracking.recover}: the record may be updated with `progressOnly`.
   */
  readonly tracked?: boolean | undefined;
}

/**
 * Capability of a byte store that keeps each upload's durable length itself (see
 * {@link ByteStore.progress}).
 */
export interface ProgressTracking {
  /**
   * At start-up, before serving: the durable length of an upload whose record says `recorded`
   * (never less than `recorded.received`), when it was last written and the upload's total, if the
   * store knows. A complete upload (by its record) is sealed on the way.
   */
  recover(
    upload: StoredUpload,
    recorded: Pick<SessionRecord, 'received' | 'total'>,
  ): Promise<{ received: number; at: number | undefined; total?: number | undefined }>;
  /**
   * The upload is complete and its record says so: makes the stored data exactly its `length`
   * bytes, ready to be read or committed. Idempotent.
   */
  seal(upload: StoredUpload, length: number): Promise<void>;
}

/** Where a commit puts an upload: a path of names in a vdir's destination store. */
export interface UploadTarget {
  readonly destinations: DestinationStore;
  /** Decoded names below the vdir's root, the file name last (`['crash', 'dump.bin']`). */
  readonly path: readonly string[];
}

/**
 * A stored file or object, opened for reading ranges (downloads, reply files). Its `etag` and
 * `modified` describe this version; reads of a version replaced meanwhile fail rather than mix.
 */
export interface StoredObject {
  readonly size: number;
  /** A strong entity tag, quoted (`"…"`). */
  readonly etag: string;
  readonly modified: Date;
  /** The bytes `start..end`, both inclusive (`end` may be `start - 1` for none). */
  read(start: number, end: number): Readable;
  /** Releases what the open holds (a file descriptor). */
  close(): Promise<void>;
}

/**
 * A vdir's destination: a local folder, or a bucket and prefix. It names and checks where a path
 * lands, and opens what is there for downloads. Placing an upload there is the byte store's
 * {@link ByteStore.commit}.
 */
export interface DestinationStore {
  /** What it is, for logs and errors (`/srv/uploads`, `s3://bits-uploads/uploads/`). */
  readonly name: string;
  /**
   * The name of where `path` lands, as recorded in {@link SessionRecord.destination}; checks that it
   * may land there.
   *
   * @throws {BitsError} `BITS_BAD_PATH` when it would escape the destination,
   * `BITS_DESTINATION_IS_DIRECTORY` when it names a folder (or nothing, the vdir itself).
   */
  resolve(path: readonly string[]): Promise<string>;
  /** Whether a file or object is at `path` (the overwrite policy at Create-Session). */
  exists(path: readonly string[]): Promise<boolean>;
  /** The file or object at `path` for a download; `undefined` when there is none. */
  open(path: readonly string[]): Promise<StoredObject | undefined>;
}

/**
 * The bytes of sessions' uploads, and the replies of upload-reply sessions. Every method that
 * resolves has made what it reports durable.
 */
export interface ByteStore {
  /**
   * Creates the empty upload of a session bound for `target` and returns the store's memo of it, to
   * be kept in the record. An object store may start the upload at the destination itself, so long
   * as nothing appears there before {@link ByteStore.commit}.
   */
  open(id: string, target: UploadTarget, options?: OpenOptions): Promise<ByteState | undefined>;
  /**
   * Writes `source` at `offset` (the upload's durable length) and makes it durable before
   * resolving. On failure throws {@link PartialWriteError} with the bytes made durable (and the memo
   * that records them), or {@link UploadMissingError} when the upload is gone.
   */
  write(upload: StoredUpload, offset: number, source: Readable, options?: WriteOptions): Promise<WriteResult>;
  /**
   * Places the upload at `target` atomically. Without `overwrite` an existing destination makes it
   * fail with {@link DestinationExistsError} and leaves both as they were, even when two sessions
   * commit the same destination at once. The upload never lands outside the destination, whatever
   * is swapped in meanwhile. A repeated commit of an upload that an interrupted earlier commit
   * already placed succeeds.
   */
  commit(upload: StoredUpload, target: UploadTarget, options: { overwrite: boolean }): Promise<void>;
  /** Whether the upload's data is still there (it is not once committed or discarded). */
  exists(upload: StoredUpload): Promise<boolean>;
  /** Reads the upload's data (by-value notification, in-process hooks). */
  openRead(upload: StoredUpload): Readable;
  /** Stores the reply of an upload-reply session from a stream, durably; returns its size. A failure leaves nothing. */
  writeReply(upload: StoredUpload, source: Readable): Promise<number>;
  /** The stored reply, opened for a download; `undefined` when there is none. */
  openReply(upload: StoredUpload): Promise<StoredObject | undefined>;
  /** Deletes the upload's data and reply (no error when they are already gone). */
  discard(upload: StoredUpload): Promise<void>;
  /** Optional (readiness): resolves when the store can be used now, fails (`StoreUnavailableError`) when not. */
  ping?(): Promise<void>;
  /** Optional: releases what the store holds open (file handles); it is not used after. */
  close?(): Promise<void>;
  /**
   * Capability: the store keeps each upload's durable length itself, so that a fragment needs no
   * record write ({@link WriteResult.tracked}); absent on stores that do not.
   */
  readonly progress?: ProgressTracking;
  /**
   * Optional, for stores that several nodes write: one bounded pass deleting what sessions with no
   * record left behind (a superseded request that finished writing after its session ended),
   * last modified before `before`. `isLive` says whether a session still has a record. The sweep
   * calls it now and then, on one node at a time. Returns the number of objects deleted.
   */
  collectOrphans?(isLive: (id: string) => Promise<boolean>, options: { before: number; limit: number }): Promise<number>;
  /**
   * Capability: the upload's data and reply as local files, for by-reference notification. Absent
   * on stores without local files.
   */
  readonly local?: LocalFiles;
  /**
   * Capability: the upload and reply as object URLs, for by-reference notification from an object
   * store. Absent on stores with local files.
   */
  readonly remote?: RemoteObjects;
}

/** A byte store's local files (see {@link ByteStore.local}). */
export interface LocalFiles {
  /** The path of the upload's data file. */
  dataPath(upload: StoredUpload): string | undefined;
  /** The path where the reply is, or is to be written by the application. */
  replyPath(upload: StoredUpload): string | undefined;
  /**
   * Adopts what the application wrote at {@link LocalFiles.replyPath} as the reply: makes it durable
   * and returns its size (an empty reply, 0, when it wrote none). Anything there that is not a
   * regular file is removed, and the call fails.
   */
  adoptReply(upload: StoredUpload): Promise<number>;
  /** Removes whatever is at {@link LocalFiles.replyPath} (no error when nothing is). */
  removeReply(upload: StoredUpload): Promise<void>;
}

/** A byte store's object addresses (see {@link ByteStore.remote}). */
export interface RemoteObjects {
  /** The committed-or-not upload data: its `s3://bucket/key` name and a presigned GET URL. */
  request(upload: StoredUpload, expiresInSeconds: number): Promise<{ name: string; url: string }>;
  /** Where the application puts its reply: its `s3://bucket/key` name and a presigned PUT URL. */
  response(upload: StoredUpload, expiresInSeconds: number): Promise<{ name: string; url: string }>;
  /** Adopts what the application PUT at the response URL as the reply; returns its size (an empty reply, 0, when it put none). */
  adoptReply(upload: StoredUpload): Promise<number>;
  /** Removes what the application PUT at the response URL (no error when nothing is). */
  removeReply(upload: StoredUpload): Promise<void>;
}
