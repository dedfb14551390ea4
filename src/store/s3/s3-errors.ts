import { StoreUnavailableError } from '../types.js';

/** The parts of an SDK error this store looks at. */
interface SdkErrorLike {
  readonly name?: string;
  readonly code?: string;
  readonly Code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
  readonly $retryable?: unknown;
}

function fields(err: unknown): SdkErrorLike {
  return typeof err === 'object' && err !== null ? (err as SdkErrorLike) : {};
}

/** The HTTP status of an S3 error answer, if it was one. */
export function s3Status(err: unknown): number | undefined {
  return fields(err).$metadata?.httpStatusCode;
}

function named(err: unknown, ...names: string[]): boolean {
  const e = fields(err);
  return names.some((n) => e.name === n || e.Code === n || e.code === n);
}

/**
 * Whether S3 said the object is not there (404, `NoSuchKey`, `NotFound`).
 *
 * @example
 * ```ts
 * try { await client.send(new HeadObjectCommand(...)); } catch (err) { if (isNotFound(err)) return undefined; throw err; }
 * ```
 */
export function isNotFound(err: unknown): boolean {
  return named(err, 'NoSuchKey', 'NotFound') || (s3Status(err) === 404 && !named(err, 'NoSuchUpload', 'NoSuchBucket'));
}

/**
 * Whether S3 said the multipart upload is gone (`NoSuchUpload`: completed or aborted).
 *
 * @example
 * ```ts
 * if (isNoSuchUpload(err)) throw new UploadMissingError(id);
 * ```
 */
export function isNoSuchUpload(err: unknown): boolean {
  return named(err, 'NoSuchUpload');
}

/**
 * Whether a conditional request was refused (412, `PreconditionFailed`).
 *
 * @example
 * ```ts
 * if (isPreconditionFailed(err)) throw new DestinationExistsError(name);
 * ```
 */
export function isPreconditionFailed(err: unknown): boolean {
  return named(err, 'PreconditionFailed') || s3Status(err) === 412;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);
const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
]);

/**
 * Whether an S3 failure is the service being unreachable or failing transiently (connection
 * refused or reset, timeouts, 5xx, `SlowDown`): the client may retry later.
 *
 * @example
 * ```ts
 * isTransient(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })); // true
 * ```
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const e = fields(err);
  const status = s3Status(err);
  if (status !== undefined && status >= 500) return true;
  if (status === 503 || status === 429) return true;
  if ((e.name && TRANSIENT_NAMES.has(e.name)) || (e.code && (TRANSIENT_CODES.has(e.code) || TRANSIENT_NAMES.has(e.code)))) return true;
  if (status === undefined && e.$retryable !== undefined) return true;
  return false;
}

/**
 * The error to report for an S3 failure: {@link StoreUnavailableError} (`S3`) for a transient one
 * (so that the server answers 503 and the client retries), the error itself otherwise.
 *
 * @example
 * ```ts
 * try { await client.send(cmd); } catch (err) { throw s3Failure(err); }
 * ```
 */
export function s3Failure(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  return isTransient(err) ? new StoreUnavailableError('S3', err) : err;
}
