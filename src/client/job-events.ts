import type { EventEmitter } from 'node:events';
import type { BitsClientError } from './errors.js';

/** What a job is doing. */
export type JobPhase =
  | 'ping'
  | 'create-session'
  | 'fragments'
  | 'reply'
  | 'close-session'
  | 'cancel-session'
  | 'download'
  | 'waiting'
  | 'done';

/** A progress report. `bytesTotal` is `undefined` while a download's size is not known yet. */
export interface JobProgress {
  /** `upload` for fragments, `reply` for an upload-reply's reply, `download` for downloads. */
  readonly phase: 'upload' | 'reply' | 'download';
  readonly bytesDone: number;
  readonly bytesTotal: number | undefined;
}

/** A transient failure about to be retried. */
export interface RetryEvent {
  /** 1 for the first retry since the last progress. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: BitsClientError;
}

/** Typed events of a job. */
export interface JobEvents {
  state: [phase: JobPhase];
  progress: [progress: JobProgress];
  retry: [event: RetryEvent];
  /** A new upload session (at the start, or after the server lost the previous one). */
  session: [info: { sessionId: string; url: string }];
  /** Later packets go to a Host-Id host. */
  'host-id': [info: { hostId: string; url: string }];
  /** The Host-Id host stayed unreachable past the fallback timeout; back to the original URL. */
  fallback: [info: { hostId: string; url: string }];
  /** Work is redone: the server lost the session, or the remote file of a download changed. */
  restart: [info: { reason: string }];
  /** A Fragment was acknowledged: its size and the time from sending it to its Ack. */
  fragment: [info: { bytes: number; ms: number }];
  /** Something worth telling that does not stop the job. */
  warning: [message: string];
}

/** What callers hold of a job: its id, events, result, and stop. */
export interface JobHandle<Result> extends EventEmitter<JobEvents> {
  readonly id: string;
  readonly result: Promise<Result>;
  readonly inJournal: boolean;
  stop(): void;
  cancel(): Promise<void>;
}
