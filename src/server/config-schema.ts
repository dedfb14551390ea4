import { z } from 'zod';
import { ADMIN_DEFAULTS, AUTH_DEFAULTS, LIMITS_DEFAULTS, POSTGRES_DEFAULTS, S3_DEFAULTS, SERVER_DEFAULTS, STORE_DEFAULTS, TLS_DEFAULTS, VDIR_DEFAULTS, WEBHOOK_DEFAULTS } from './defaults.js';
import { DURATION_FORMS, SIZE_FORMS, durationMs, sizeBytes } from './human-units.js';
import { notificationUrlProblem, publicUrlProblem } from './notification/public-url.js';
import { MAX_REPLY_URL } from '../protocol/constants.js';
import { MIN_PART_SIZE } from '../store/s3/part-layout.js';
import { parseS3Url } from '../store/s3/s3-url.js';

// The configuration as it is written (seconds, bytes, or human units) and, through the transforms,
// as the server reads it: every duration in milliseconds, so that no caller converts units.

const numberOrString = (forms: string) =>
  z.custom<number | string>((v) => typeof v === 'number' || typeof v === 'string', { message: `expected ${forms}` });

/** A value read by `read` (undefined: not one of `forms`); `positive` refuses 0. */
const measured =
  (read: (value: number | string) => number | undefined, forms: string) =>
  (options: { positive?: boolean } = {}) =>
    numberOrString(forms).transform((value, ctx) => {
      const result = read(value);
      if (result === undefined) ctx.addIssue({ code: 'custom', message: `expected ${forms}` });
      else if (options.positive && result === 0) ctx.addIssue({ code: 'custom', message: 'must be more than 0' });
      else return result;
      return z.NEVER;
    });

/** A duration written in seconds or with a unit, read as milliseconds. */
const durationMsSchema = measured(durationMs, DURATION_FORMS);
/** A size written in bytes or with a unit, read as bytes. */
const sizeSchema = measured(sizeBytes, SIZE_FORMS);

/** A duration sent on the wire in whole seconds (BITS-Host-Id-Fallback-Timeout): read as seconds. */
const wireSeconds = numberOrString(DURATION_FORMS).transform((value, ctx) => {
  const result = durationMs(value);
  if (result === undefined || !Number.isInteger(result / 1000) || result / 1000 > 0xffffffff) {
    ctx.addIssue({ code: 'custom', message: `expected a whole number of seconds up to ${0xffffffff}, or a duration such as "1d"` });
    return z.NEVER;
  }
  return result / 1000;
});

/** A string checked by `problem`, whose answer (if any) is the key's error message. */
const checked = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

/** `s3://bucket/prefix/`: a vdir's destination in object storage. */
const s3Url = checked((value) => {
  try {
    parseS3Url(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
});

/** The origin clients reach the server at, e.g. `https://bits.example.com` (normalised, no trailing `/`). */
const publicUrl = checked(publicUrlProblem).transform((u) => new URL(u).origin);

const authSchema = z
  .object({
    /**
     * Accepted schemes; a request may use any of them. A 401 offers the challenge schemes (negotiate,
     * ntlm, basic) in this order.
     */
    schemes: z
      .array(z.enum(['basic', 'client-certificate', 'negotiate', 'ntlm']))
      .min(1)
      .refine((s) => new Set(s).size === s.length, 'a scheme is listed twice'),
    realm: z.string().min(1).regex(/^[^"\\\r\n]*$/, 'no quotes, backslashes or line breaks').default(AUTH_DEFAULTS.realm),
    /** Users file for Basic (see `bits user`). */
    users: z.string().min(1).nullable().default(AUTH_DEFAULTS.users),
    /** Principals allowed on the vdir: user names, `group:<name>`, or `*` for any authenticated one. */
    allow: z.array(z.string().min(1)).default([...AUTH_DEFAULTS.allow]),
    /** Let requests without credentials in (principal: anonymous). */
    anonymous: z.boolean().default(AUTH_DEFAULTS.anonymous),
    /** Accept Basic credentials over plain HTTP (e.g. behind a TLS-terminating proxy). */
    allowInsecureBasic: z.boolean().default(AUTH_DEFAULTS.allowInsecureBasic),
    /**
     * Session-capability mode (transfervm's dialect): packets that carry the id of a live session of
     * this vdir, and no credentials, act as the session's principal. The session id becomes a bearer
     * capability; Create-Session still needs credentials.
     */
    sessionCapability: z.boolean().default(AUTH_DEFAULTS.sessionCapability),
    /** Which part of a client certificate names its principal. */
    certificateName: z.enum(['cn', 'san']).default(AUTH_DEFAULTS.certificateName),
    /** Negotiate: the keytab holding the service's keys (null: `KRB5_KTNAME`, else the system's). */
    keytab: z.string().min(1).nullable().default(AUTH_DEFAULTS.keytab),
    /** Negotiate: the one service principal accepted, e.g. `HTTP/bits.example.com@EXAMPLE.COM` (null: any in the keytab). */
    servicePrincipal: z
      .string()
      .regex(/^[^\s@/]+\/[^\s@/]+(@[^\s@]+)?$/, 'expected SERVICE/host or SERVICE/host@REALM, e.g. HTTP/bits.example.com@EXAMPLE.COM')
      .nullable()
      .default(AUTH_DEFAULTS.servicePrincipal),
    /** Negotiate: name principals of the service's own realm without it (`alice@EXAMPLE.COM` is `alice`). */
    stripRealm: z.boolean().default(AUTH_DEFAULTS.stripRealm),
    /** A group mapping file (`{"groups": {"uploaders": ["alice@EXAMPLE.COM"]}}`) for `group:` entries of any scheme. */
    groups: z.string().min(1).nullable().default(AUTH_DEFAULTS.groups),
    /** NTLM: the domain name the server's challenge names (null: the host name, upper case). */
    ntlmDomain: z
      .string()
      .regex(/^[^\s\\/:*?"<>|@]{1,64}$/, 'a NetBIOS-style name: no spaces or \\/:*?"<>|@')
      .nullable()
      .default(AUTH_DEFAULTS.ntlmDomain),
  })
  .strict()
  .refine((a) => !a.schemes.includes('basic') || a.users !== null, { message: 'basic needs a users file', path: ['users'] })
  .refine((a) => !a.schemes.includes('ntlm') || a.users !== null, {
    message: 'ntlm needs a users file (accounts added with bits user add NAME --ntlm)',
    path: ['users'],
  });

/** Most retries a webhook may be given (with the backoff's 30 s cap: about 10 minutes of waits). */
const MAX_WEBHOOK_RETRIES = 20;

/** A vdir's `createWebhook` or `commitWebhook`: where to POST, how to sign, how long to try. */
const webhookSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }),
    /** The HMAC-SHA256 key of `X-Bits-Signature`. */
    secret: z.string().min(16, 'use at least 16 characters').nullable().default(WEBHOOK_DEFAULTS.secret),
    /** A file holding the secret (first line), read when the server is made; kept out of the configuration. */
    secretFile: z.string().min(1).nullable().default(WEBHOOK_DEFAULTS.secretFile),
    timeout: durationMsSchema({ positive: true }).prefault(WEBHOOK_DEFAULTS.timeout),
    retries: z.number().int().min(0).max(MAX_WEBHOOK_RETRIES).default(WEBHOOK_DEFAULTS.retries),
  })
  .strict()
  .refine((w) => w.secret === null || w.secretFile === null, { message: 'give secret or secretFile, not both', path: ['secretFile'] })
  .transform(({ timeout, ...rest }) => ({ ...rest, timeoutMs: timeout }));

/** A vdir's durations, in milliseconds. */
interface VdirDurations {
  /** Idle session lifetime (IIS BITSSessionTimeout). */
  sessionTimeoutMs: number;
  /** How long the application may stay silent before the upload's Ack fails with 408. */
  notificationTimeoutMs: number;
}

const vdirSchema = z
  .object({
    /** URL path prefix, e.g. `/uploads` (or `/`). */
    path: z
      .string()
      .regex(/^\/([^/]+(\/[^/]+)*)?$/, 'must start with "/" and have no empty segments or trailing "/"'),
    /** Local folder the vdir maps to (with the filesystem byte store). */
    directory: z.string().min(1).optional(),
    /** `s3://bucket/prefix/` the vdir maps to (with the S3 byte store). */
    destination: s3Url.optional(),
    uploadEnabled: z.boolean().default(VDIR_DEFAULTS.uploadEnabled),
    downloadEnabled: z.boolean().default(VDIR_DEFAULTS.downloadEnabled),
    /** Largest entity in bytes; 0 = unlimited (D17). */
    maximumUploadSize: sizeSchema().prefault(VDIR_DEFAULTS.maximumUploadSize),
    /** Largest fragment body in bytes (413 beyond). */
    maxFragmentSize: sizeSchema({ positive: true }).prefault(VDIR_DEFAULTS.maxFragmentSize),
    sessionTimeout: durationMsSchema().prefault(VDIR_DEFAULTS.sessionTimeout),
    allowOverwrites: z.boolean().default(VDIR_DEFAULTS.allowOverwrites),
    hostId: z.string().min(1).max(300).regex(/^[^\s\r\n]+$/, 'must be a host name without spaces').nullable().default(VDIR_DEFAULTS.hostId),
    /** Seconds, as BITS-Host-Id-Fallback-Timeout carries them. */
    hostIdFallbackTimeout: wireSeconds.prefault(VDIR_DEFAULTS.hostIdFallbackTimeout),
    /** Server-application notification (upload-reply): none, by reference (paths) or by value (body). */
    notificationType: z.enum(['none', 'by-reference', 'by-value']).default(VDIR_DEFAULTS.notificationType),
    /**
     * Where to POST: an absolute http(s) URL, or a path relative to the upload URL's directory on
     * the vdir's public origin (never one taken from the request). Host-looking values without a
     * scheme are refused (see `notificationUrlProblem`).
     */
    notificationUrl: checked(notificationUrlProblem)
      .pipe(z.string().min(1).max(MAX_REPLY_URL))
      .nullable()
      .default(VDIR_DEFAULTS.notificationUrl),
    notificationTimeout: durationMsSchema({ positive: true }).prefault(VDIR_DEFAULTS.notificationTimeout),
    /** Largest reply (bytes) an application may give, by value, by reference or from a hook. */
    maxReplySize: sizeSchema().prefault(VDIR_DEFAULTS.maxReplySize),
    /** The origin of this vdir's URLs (`BITS-Original-Request-URL`, relative notification URLs); default: the server's. */
    publicUrl: publicUrl.nullable().default(VDIR_DEFAULTS.publicUrl),
    /** Who may use the vdir; absent = everyone, anonymously. */
    auth: authSchema.nullable().default(VDIR_DEFAULTS.auth),
    /** Most live sessions one principal may hold on the vdir (IIS BITSNumberOfSessionsLimit); 0 = no limit. */
    sessionsPerUserLimit: z.number().int().nonnegative().default(VDIR_DEFAULTS.sessionsPerUserLimit),
    /** Asked at each Create-Session (accept, reject, or another name), before anything is created. */
    createWebhook: webhookSchema.nullable().default(VDIR_DEFAULTS.createWebhook),
    /** Told of each plain upload Close-Session committed, in the background. */
    commitWebhook: webhookSchema.nullable().default(VDIR_DEFAULTS.commitWebhook),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.directory === undefined) === (v.destination === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['directory'], message: 'give either directory (a local folder) or destination (s3://bucket/prefix/), not both or neither' });
    }
  })
  .transform(({ sessionTimeout, notificationTimeout, ...rest }): typeof rest & VdirDurations => ({
    ...rest,
    sessionTimeoutMs: sessionTimeout,
    notificationTimeoutMs: notificationTimeout,
  }));

const count = z.number().int().positive();

const limitsSchema = z
  .object({
    maxRequestLine: sizeSchema({ positive: true }).prefault(LIMITS_DEFAULTS.maxRequestLine),
    maxHeaderValue: sizeSchema({ positive: true }).prefault(LIMITS_DEFAULTS.maxHeaderValue),
    maxHeaders: count.default(LIMITS_DEFAULTS.maxHeaders),
    maxHead: sizeSchema({ positive: true }).prefault(LIMITS_DEFAULTS.maxHead),
    maxDrain: sizeSchema().prefault(LIMITS_DEFAULTS.maxDrain),
    headerTimeout: durationMsSchema().prefault(LIMITS_DEFAULTS.headerTimeout),
    bodyIdleTimeout: durationMsSchema().prefault(LIMITS_DEFAULTS.bodyIdleTimeout),
    keepAliveTimeout: durationMsSchema().prefault(LIMITS_DEFAULTS.keepAliveTimeout),
    writeIdleTimeout: durationMsSchema().prefault(LIMITS_DEFAULTS.writeIdleTimeout),
  })
  .strict()
  .transform(({ headerTimeout, bodyIdleTimeout, keepAliveTimeout, writeIdleTimeout, ...sizes }) => ({
    ...sizes,
    /** Time allowed for a request head, from its first byte. */
    headerTimeoutMs: headerTimeout,
    /** Longest wait for the next body byte. */
    bodyIdleTimeoutMs: bodyIdleTimeout,
    /** Longest idle time between requests on a connection. */
    keepAliveTimeoutMs: keepAliveTimeout,
    /** Longest time a response write may make no progress. */
    writeIdleTimeoutMs: writeIdleTimeout,
  }));

const fsStoreSchema = z.object({ type: z.literal('fs') }).strict();

const postgresSchema = z
  .object({
    type: z.literal('postgres'),
    /** `postgres://user:password@host:port/database` (the password may also come from PGPASSWORD or ~/.pgpass). */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres://user@host:port/database URL'),
    /** This node's id in records and leases; null: `<hostname>:<pid>`. */
    node: z.string().min(1).max(200).nullable().default(POSTGRES_DEFAULTS.node),
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lowercase SQL identifier').default(POSTGRES_DEFAULTS.schema),
    leaseTtl: durationMsSchema({ positive: true }).prefault(POSTGRES_DEFAULTS.leaseTtl),
    connectTimeout: durationMsSchema({ positive: true }).prefault(POSTGRES_DEFAULTS.connectTimeout),
    queryTimeout: durationMsSchema({ positive: true }).prefault(POSTGRES_DEFAULTS.queryTimeout),
    poolSize: count.default(POSTGRES_DEFAULTS.poolSize),
  })
  .strict()
  .transform(({ leaseTtl, connectTimeout, queryTimeout, ...rest }) => ({
    ...rest,
    leaseTtlMs: leaseTtl,
    connectTimeoutMs: connectTimeout,
    queryTimeoutMs: queryTimeout,
  }));

const s3Schema = z
  .object({
    type: z.literal('s3'),
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }).nullable().default(S3_DEFAULTS.endpoint),
    region: z.string().min(1).default(S3_DEFAULTS.region),
    /** The bucket of the sessions' own objects (tail segments, replies); must exist. */
    bucket: z.string().min(1),
    prefix: z.string().default(S3_DEFAULTS.prefix),
    forcePathStyle: z.boolean().default(S3_DEFAULTS.forcePathStyle),
    partSize: sizeSchema()
      .refine((n) => n >= MIN_PART_SIZE, { message: `must be at least ${MIN_PART_SIZE} bytes (5 MiB)` })
      .prefault(S3_DEFAULTS.partSize),
    /** Static credentials; null: the SDK's standard chain (environment, shared config, instance roles). */
    credentials: z
      .object({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().min(1).optional() })
      .strict()
      .nullable()
      .default(S3_DEFAULTS.credentials),
  })
  .strict()
  .superRefine((b, ctx) => {
    try {
      parseS3Url(`s3://${b.bucket}/${b.prefix}`);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['bucket'], message: (err as Error).message });
    }
  });

const storeSchema = z
  .object({
    /** Session records and leases. */
    records: z.discriminatedUnion('type', [fsStoreSchema, postgresSchema]).prefault(STORE_DEFAULTS.records),
    /** Upload bytes (and where they are committed: vdir folders or s3:// destinations). */
    bytes: z.discriminatedUnion('type', [fsStoreSchema, s3Schema]).prefault(STORE_DEFAULTS.bytes),
  })
  .strict();

const listenDefaults = SERVER_DEFAULTS.listen;

const portSchema = z.number({ error: 'expected a port number, 0 to 65535 (0 picks a free one)' }).int().min(0).max(65535);

const adminSchema = z
  .object({
    listen: z
      .object({ host: z.string().min(1).default(ADMIN_DEFAULTS.listen.host), port: portSchema.default(ADMIN_DEFAULTS.listen.port) })
      .strict()
      .prefault({}),
    /** Bearer token every admin request but /healthz and /readyz must carry. */
    token: z.string().min(16, 'use at least 16 characters').nullable().default(ADMIN_DEFAULTS.token),
    /** A file holding the token (first line), read at start; kept out of the configuration. */
    tokenFile: z.string().min(1).nullable().default(ADMIN_DEFAULTS.tokenFile),
  })
  .strict()
  .refine((a) => a.token === null || a.tokenFile === null, { message: 'give token or tokenFile, not both', path: ['tokenFile'] });

/** The whole configuration: the shape users write, read into the shape the server uses. */
export const configSchema = z
  .object({
    listen: z
      .object({
        host: z.string().min(1).default(listenDefaults.host),
        port: portSchema.default(listenDefaults.port),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        /** CA bundle that client certificates must chain to (vdirs with the client-certificate scheme). */
        ca: z.string().min(1).nullable().default(TLS_DEFAULTS.ca),
      })
      .strict()
      .nullable()
      .default(SERVER_DEFAULTS.tls),
    /** The origin clients reach the server at; default: the listener's own address. */
    publicUrl: publicUrl.nullable().default(SERVER_DEFAULTS.publicUrl),
    stateDir: z.string().min(1).default(SERVER_DEFAULTS.stateDir),
    /** The admin listener (health, metrics, sessions API, dashboard); off when null. */
    admin: adminSchema.nullable().default(SERVER_DEFAULTS.admin),
    /** Where records and bytes are kept; default: files under `stateDir`. */
    store: storeSchema.prefault({}),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(SERVER_DEFAULTS.logLevel),
    sweepInterval: durationMsSchema().prefault(SERVER_DEFAULTS.sweepInterval),
    shutdownGrace: durationMsSchema().prefault(SERVER_DEFAULTS.shutdownGrace),
    limits: limitsSchema.prefault({}),
    vdirs: z.array(vdirSchema).min(1),
  })
  .strict()
  .transform(({ sweepInterval, shutdownGrace, ...rest }) => ({
    ...rest,
    /** Time between sweeps of expired sessions. */
    sweepIntervalMs: sweepInterval,
    /** Time requests in progress get to finish on shutdown. */
    shutdownGraceMs: shutdownGrace,
  }));

/** One virtual directory, validated, with absolute paths and durations in milliseconds. */
export type VdirConfig = z.output<typeof vdirSchema>;
/** The admin listener's settings. */
export type AdminConfig = z.output<typeof adminSchema>;
/** Where records and bytes are kept. */
export type StoreConfig = z.output<typeof storeSchema>;
/** The PostgreSQL record store's settings, durations in milliseconds. */
export type PostgresConfig = z.output<typeof postgresSchema>;
/** The S3 byte store's settings. */
export type S3Config = z.output<typeof s3Schema>;
/** A vdir's webhook settings, the timeout in milliseconds. */
export type WebhookConfig = z.output<typeof webhookSchema>;
/** A vdir's authentication settings. */
export type AuthConfig = z.output<typeof authSchema>;
/** The server configuration, validated, with defaults applied, paths made absolute and durations in milliseconds. */
export type ServerConfig = z.output<typeof configSchema>;
/**
 * The configuration as a user writes it: every key with a default may be left out; durations are
 * seconds or strings such as "14d", sizes bytes or strings such as "32MB".
 */
export type ServerConfigInput = z.input<typeof configSchema>;
