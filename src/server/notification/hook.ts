import type { Readable } from 'node:stream';

/** What an `onUploadComplete` hook learns about a completed upload. */
export interface CompletedUpload {
  readonly sessionId: string;
  /** The vdir's URL path. */
  readonly vdir: string;
  /**
   * The upload's URL on the vdir's public origin (`publicUrl`, else the listener; never the request's
   * `Host`) with the request's path and query (`https://bits.example.com/up/dump.bin?x=1`), as in
   * BITS-Original-Request-URL.
   */
  readonly url: string;
  /** Decoded URL path of the destination. */
  readonly urlPath: string;
  /** Where the upload goes if it is copied to its destination. */
  readonly destination: string;
  readonly size: number;
  /** The authenticated principal that created the session, or `null`. */
  readonly principal: string | null;
  /** A local path of the uploaded bytes, when the store has one. Valid until the session ends. */
  readonly path: string | undefined;
  /** A fresh stream of the uploaded bytes. */
  stream(): Readable;
}

/**
 * The reply of an upload-reply job: bytes, a string (UTF-8), a stream, a file to copy from, or a
 * static URL (`BITS-Static-Response-URL`, given to the client verbatim and never deleted).
 */
export type UploadReply = Buffer | string | Readable | { readonly file: string } | { readonly url: string };

/** What a hook returns. Nothing at all means an empty reply and no copy to the destination. */
export interface UploadCompleteResult {
  readonly reply?: UploadReply;
  /** Also place the upload at its destination at Close-Session (`BITS-Copy-File-To-Destination`). */
  readonly copyToDestination?: boolean;
}

/**
 * An in-process server application: called once the last byte of an upload is durable, before the
 * completing Fragment is acknowledged. Throw `NotificationError` to choose the Ack's status; the
 * signal aborts when the notification deadline passes or the client's retry supersedes the request.
 *
 * @example
 * ```ts
 * const hook: UploadCompleteHook = async (upload) => {
 *   const ticket = await saveDump(upload.stream());
 *   return { reply: `ticket=${ticket}` };
 * };
 * ```
 */
export type UploadCompleteHook = (
  upload: CompletedUpload,
  signal: AbortSignal,
) => UploadCompleteResult | void | Promise<UploadCompleteResult | void>;
