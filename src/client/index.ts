// The public client API: jobs, their handles, options, results and events, the job journal's
// control functions, the error type, and the defaults a caller sets. Internals (the journal, the
// transport, the retry policy) are imported from their modules by the CLI.
export { upload } from './upload.js';
export type { UploadJob, UploadOptions, UploadResult } from './upload.js';
export type { ReceivedReply } from './reply-phase.js';
export { download } from './download.js';
export type { DownloadJob, DownloadOptions, DownloadResult } from './download.js';
export type { JobEvents, JobHandle, JobPhase, JobProgress, RetryEvent } from './job-events.js';
export { cancelJob, listJobs, PasswordNeededError, pruneJobs, resumeJob, UnknownJobError } from './jobs.js';
export type { JobControlOptions, JobSummary, PruneOptions, PruneOutcome } from './jobs.js';
export { defaultStateDir } from './journal.js';
export type { JobState } from './journal.js';
export { AgentClient, AgentError } from './agent-client.js';
export type { AgentClientEvents, AgentClientOptions } from './agent-client.js';
export { AGENT_JOB_STATES, AGENT_JOB_TYPES, agentSocketPath, parseRate, PRIORITIES } from './agent-protocol.js';
export type { AgentFileInfo, AgentFileSpec, AgentJobInfo, AgentJobSpec, AgentJobState, AgentJobType, AgentStatus, Priority } from './agent-protocol.js';
export type { Throttle } from './throttle.js';
export { BitsClientError, CLIENT_ERRORS, describeClientError, isBitsClientError } from './errors.js';
export type { ClientErrorCode, ClientErrorDetails, ErrorKind } from './errors.js';
export {
  DEFAULT_CANCEL_TIMEOUT_MS,
  DEFAULT_FRAGMENT_SIZE,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_NO_PROGRESS_TIMEOUT_MS,
  DEFAULT_RETRY_DELAY_MS,
  MAX_MEMORY_REPLY,
  MIN_FRAGMENT_SIZE,
} from './options.js';
export type { ClientOptions } from './options.js';
