export { upload, UploadJob } from './upload.js';
export type { UploadOptions, UploadResult, ReceivedReply } from './upload.js';
export { download, DownloadJob } from './download.js';
export type { DownloadOptions, DownloadResult } from './download.js';
export { Job, toClientError } from './job.js';
export type { JobEvents, JobHandle, JobPhase, JobProgress, RetryEvent } from './job.js';
export { listJobs, resumeJob, cancelJob, pruneJobs, summarize, effectiveState, UnknownJobError, PasswordNeededError } from './jobs.js';
export type { JobSummary, JobControlOptions, PruneOptions, PruneOutcome } from './jobs.js';
export { Journal, defaultStateDir, newJobId, isRunningElsewhere } from './journal.js';
export type { JobRecord, UploadRecord, DownloadRecord, JobState, JobConnection, DownloadProgress, RemoteVersion } from './journal.js';
export { BitsClientError, CLIENT_ERRORS, describeClientError, isBitsClientError } from './errors.js';
export type { ClientErrorCode, ClientErrorDetails, ErrorKind } from './errors.js';
export { classifyServerError, backoffDelay, defaultMaxRetryDelay } from './retry-policy.js';
export type { RetryTiming } from './retry-policy.js';
export {
  DEFAULT_CANCEL_TIMEOUT_MS,
  DEFAULT_FRAGMENT_SIZE,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_NO_PROGRESS_TIMEOUT_MS,
  DEFAULT_RETRY_DELAY_MS,
  MAX_MEMORY_REPLY,
  MIN_FRAGMENT_SIZE,
  parseHeaderArgs,
  resolveTiming,
} from './options.js';
export type { ClientOptions } from './options.js';
export { readAck } from '../protocol/ack-info.js';
export type { AckInfo } from '../protocol/ack-info.js';
export { resolveReplyUrl } from '../protocol/reply-url.js';
export { hostIdUrl } from '../protocol/host-id.js';
export { ClientHResult, clientHresultName } from '../protocol/client-hresults.js';
