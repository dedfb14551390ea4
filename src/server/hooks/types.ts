import type { UploadCompleteHook } from '../notification/hook.js';

/** What an `onSessionCreate` hook (or a vdir's `createWebhook`) learns about a Create-Session. */
export interface SessionCreateRequest {
  /** The vdir's URL path (`/uploads`). */
  readonly vdir: string;
  /** The decoded URL path the client asked for (`/uploads/dump.bin`). */
  readonly urlPath: string;
  /** That path below the vdir (`dump.bin`, `a/b.bin`): the name a rename replaces. */
  readonly name: string;
  /** The authenticated principal, or `null` for anonymous. */
  readonly principal: string | null;
  /** The address of the client's connection. */
  readonly clientAddress: string;
  /** The request's headers, lowercase names, without `Authorization`, `Proxy-Authorization` and `Cookie`. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * A hook's answer to a Create-Session: go ahead; refuse with an Ack of the given HTTP status
 * (400–599, default 403) and HRESULT (a failure code, default `E_ACCESSDENIED` for 403 and
 * `BG_E_HTTP_ERROR_<status>` otherwise); or go ahead under another destination name below the vdir
 * (`a/b.bin`), confined and checked (overwrite policy included) exactly like a name the client gave.
 */
export type SessionCreateDecision =
  | { readonly action: 'accept' }
  | { readonly action: 'reject'; readonly status?: number; readonly hresult?: number | string; readonly message?: string }
  | { readonly action: 'rename'; readonly name: string };

/**
 * An in-process Create-Session hook: runs before anything of the session exists. Returning nothing
 * accepts. Throwing a `BitsError` answers with it; any other error is a 500.
 *
 * @example
 * ```ts
 * const onSessionCreate: SessionCreateHook = ({ principal, name }) =>
 *   principal === null ? { action: 'reject', status: 403 } : { action: 'rename', name: `${principal}/${name}` };
 * ```
 */
export type SessionCreateHook = (request: SessionCreateRequest) => SessionCreateDecision | void | Promise<SessionCreateDecision | void>;

/** What an `onUploadCommitted` hook (or a vdir's `commitWebhook`) learns about a committed upload. */
export interface CommittedUpload {
  readonly sessionId: string;
  /** The vdir's URL path. */
  readonly vdir: string;
  /** The decoded URL path the client uploaded to. */
  readonly urlPath: string;
  /** The name below the vdir the upload was placed at (a create hook's rename, else the client's). */
  readonly name: string;
  /** Where it is, as its destination store names it (`/srv/uploads/dump.bin`, `s3://bucket/prefix/dump.bin`). */
  readonly destination: string;
  /** Its size in bytes. */
  readonly size: number;
  /** The principal that created the session, or `null`. */
  readonly principal: string | null;
  /** When Close-Session committed it, ms since the epoch. */
  readonly committedAt: number;
}

/**
 * An in-process hook called after Close-Session placed a plain upload (one of a vdir that does not
 * notify a server application) at its destination. It runs in the background, after the Ack: it
 * cannot delay, fail or undo the upload; a failure is logged.
 *
 * @example
 * ```ts
 * const onUploadCommitted: UploadCommittedHook = async (upload) => queue.push(upload.destination);
 * ```
 */
export type UploadCommittedHook = (upload: CommittedUpload) => void | Promise<void>;

/** The per-vdir in-process hooks of `BitsServerOptions.hooks`. */
export interface VdirHooks {
  /** Makes the vdir's uploads upload-reply uploads (see `UploadCompleteHook`). */
  readonly onUploadComplete?: UploadCompleteHook;
  readonly onSessionCreate?: SessionCreateHook;
  readonly onUploadCommitted?: UploadCommittedHook;
}
