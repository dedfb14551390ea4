import { S3Client } from '@aws-sdk/client-s3';

/** Where and how to reach an S3-compatible service. Credentials come from the SDK's standard chain. */
export interface S3ClientOptions {
  /** `http://127.0.0.1:7480`; the AWS endpoint of the region when absent. */
  readonly endpoint?: string | undefined;
  readonly region?: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`), as RGW, MinIO and most self-hosted services want. */
  readonly forcePathStyle?: boolean | undefined;
  /** Connection set-up limit in ms (default 5 s). */
  readonly connectionTimeoutMs?: number | undefined;
  /** A socket idle for this long is given up (default 30 s): a stalled service does not hang a packet. */
  readonly socketTimeoutMs?: number | undefined;
  /** Attempts of a request whose body can be resent (default 3); streamed bodies are sent once. */
  readonly maxAttempts?: number | undefined;
  /** Parallel sockets (default 64). */
  readonly maxSockets?: number | undefined;
  /** Static credentials; absent: the SDK's standard chain (environment, shared config, instance roles). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string | undefined } | undefined;
}

/**
 * An S3 client with the settings the S3 stores rely on: timeouts so that an unreachable service
 * fails fast (and becomes a 503), bounded retries, and checksums only where S3 requires them
 * (S3-compatible services such as Ceph 16 do not know the newer trailing checksums).
 *
 * @example
 * ```ts
 * const client = createS3Client({ endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', forcePathStyle: true });
 * ```
 */
export function createS3Client(options: S3ClientOptions = {}): S3Client {
  return new S3Client({
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    region: options.region ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? false,
    ...(options.credentials !== undefined ? { credentials: { ...options.credentials } } : {}),
    maxAttempts: options.maxAttempts ?? 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? 5_000,
      socketTimeout: options.socketTimeoutMs ?? 30_000,
      httpAgent: { keepAlive: true, maxSockets: options.maxSockets ?? 64 },
    },
    // The SDK warns on the console of a streamed request it will not retry; the stores know.
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
}
