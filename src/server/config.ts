import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { isInside } from '../store/fs/is-inside.js';
import { z } from 'zod';
import { notificationUrlProblem, publicUrlProblem } from './notification/public-url.js';

/** Seconds → the unit every duration of the configuration uses. */
const seconds = z.number().nonnegative();
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A string checked by `problem`, whose answer (if any) is the key's error message. */
const checked = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

/** The origin clients reach the server at, e.g. `https://bits.example.com` (normalised, no trailing `/`). */
const publicUrl = checked(publicUrlProblem).transform((u) => new URL(u).origin);

/** Largest reply of a server application, by default: 64 MiB. */
export const DEFAULT_MAX_REPLY_SIZE = 64 * 1024 * 1024;

const authSchema = z
  .object({
    /** Accepted schemes; a request may use any of them. */
    schemes: z.array(z.enum(['basic', 'client-certificate'])).min(1),
    realm: z.string().min(1).regex(/^[^"\\\r\n]*$/, 'no quotes, backslashes or line breaks').default('bits'),
    /** Users file for Basic (see `bits user`). */
    users: z.string().min(1).nullable().default(null),
    /** Principals allowed on the vdir: user names, `group:<name>`, or `*` for any authenticated one. */
    allow: z.array(z.string().min(1)).default(['*']),
    /** Let requests without credentials in (principal: anonymous). */
    anonymous: z.boolean().default(false),
    /** Accept Basic credentials over plain HTTP (e.g. behind a TLS-terminating proxy). */
    allowInsecureBasic: z.boolean().default(false),
    /**
     * Session-capability mode (transfervm's dialect): packets that carry the id of a live session of
     * this vdir, and no credentials, act as the session's principal. The session id becomes a bearer
     * capability; Create-Session still needs credentials.
     */
    sessionCapability: z.boolean().default(false),
    /** Which part of a client certificate names its principal. */
    certificateName: z.enum(['cn', 'san']).default('cn'),
  })
  .strict()
  .refine((a) => !a.schemes.includes('basic') || a.users !== null, { message: 'basic needs a users file', path: ['users'] });

const vdirSchema = z
  .object({
    /** URL path prefix, e.g. `/uploads` (or `/`). */
    path: z
      .string()
      .regex(/^\/([^/]+(\/[^/]+)*)?$/, 'must start with "/" and have no empty segments or trailing "/"'),
    /** Folder the vdir maps to. */
    directory: z.string().min(1),
    uploadEnabled: z.boolean().default(true),
    downloadEnabled: z.boolean().default(false),
    /** Largest entity in bytes; 0 = unlimited (D17). */
    maximumUploadSize: size.default(0),
    /** Largest fragment body in bytes (413 beyond). */
    maxFragmentSize: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(33_554_432),
    /** Idle session lifetime in seconds (IIS BITSSessionTimeout). */
    sessionTimeout: seconds.default(1_209_600),
    allowOverwrites: z.boolean().default(false),
    hostId: z.string().min(1).max(300).regex(/^[^\s\r\n]+$/, 'must be a host name without spaces').nullable().default(null),
    hostIdFallbackTimeout: z.number().int().nonnegative().max(0xffffffff).default(86_400),
    /** Server-application notification (upload-reply): none, by reference (paths) or by value (body). */
    notificationType: z.enum(['none', 'by-reference', 'by-value']).default('none'),
    /**
     * Where to POST: an absolute http(s) URL, or a path relative to the upload URL's directory on
     * the vdir's public origin (never one taken from the request). Host-looking values without a
     * scheme are refused (see `notificationUrlProblem`).
     */
    notificationUrl: checked(notificationUrlProblem)
      .pipe(z.string().min(1).max(2200))
      .nullable()
      .default(null),
    /** Seconds the application may stay silent before the upload's Ack fails with 408. */
    notificationTimeout: z.number().positive().default(300),
    /** Largest reply (bytes) an application may give, by value, by reference or from a hook. */
    maxReplySize: size.default(DEFAULT_MAX_REPLY_SIZE),
    /** The origin of this vdir's URLs (`BITS-Original-Request-URL`, relative notification URLs); default: the server's. */
    publicUrl: publicUrl.nullable().default(null),
    /** Who may use the vdir; absent = everyone, anonymously. */
    auth: authSchema.nullable().default(null),
    /** Most live sessions one principal may hold on the vdir (IIS BITSNumberOfSessionsLimit); 0 = no limit. */
    sessionsPerUserLimit: z.number().int().nonnegative().default(50),
  })
  .strict();

const limitsSchema = z
  .object({
    maxRequestLine: z.number().int().positive(),
    maxHeaderValue: z.number().int().positive(),
    maxHeaders: z.number().int().positive(),
    maxHead: z.number().int().positive(),
    maxDrain: z.number().int().nonnegative(),
    /** Seconds. */
    headerTimeout: seconds,
    bodyIdleTimeout: seconds,
    keepAliveTimeout: seconds,
    writeIdleTimeout: seconds,
  })
  .partial()
  .strict();

const configSchema = z
  .object({
    listen: z
      .object({ host: z.string().min(1).default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(8080) })
      .strict()
      .default({ host: '0.0.0.0', port: 8080 }),
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        /** CA bundle that client certificates must chain to (vdirs with the client-certificate scheme). */
        ca: z.string().min(1).nullable().default(null),
      })
      .strict()
      .nullable()
      .default(null),
    /** The origin clients reach the server at; default: the listener's own address. */
    publicUrl: publicUrl.nullable().default(null),
    stateDir: z.string().min(1).default('./data/.bits'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Seconds between sweeps of expired sessions. */
    sweepInterval: seconds.default(60),
    /** Seconds that requests in progress get to finish on shutdown. */
    shutdownGrace: seconds.default(30),
    limits: limitsSchema.default({}),
    vdirs: z.array(vdirSchema).min(1),
  })
  .strict();

/** One virtual directory, validated, with absolute paths. */
export type VdirConfig = z.output<typeof vdirSchema>;
/** A vdir's authentication settings. */
export type AuthConfig = z.output<typeof authSchema>;
/** The server configuration, validated, with defaults applied and paths made absolute. */
export type ServerConfig = z.output<typeof configSchema>;
/** The configuration as a user writes it (every key with a default may be left out). */
export type ServerConfigInput = z.input<typeof configSchema>;

/** A configuration that does not validate; `message` names each offending key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}


/**
 * Validates a configuration object, applies defaults, and resolves relative paths against `baseDir`.
 *
 * @throws {ConfigError} naming every key that is wrong.
 * @example
 * ```ts
 * const config = parseConfig({ vdirs: [{ path: '/', directory: './data/uploads' }] }, process.cwd());
 * config.listen.port; // 8080
 * ```
 */
export function parseConfig(input: unknown, baseDir: string): ServerConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(root)';
      return `${key}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const config = result.data;
  config.stateDir = resolve(baseDir, config.stateDir);
  if (config.tls) {
    config.tls = {
      cert: resolve(baseDir, config.tls.cert),
      key: resolve(baseDir, config.tls.key),
      ca: config.tls.ca === null ? null : resolve(baseDir, config.tls.ca),
    };
  }
  const seen = new Set<string>();
  config.vdirs.forEach((v, i) => {
    v.directory = resolve(baseDir, v.directory);
    v.publicUrl ??= config.publicUrl;
    if (v.auth?.users) v.auth.users = resolve(baseDir, v.auth.users);
    if (v.auth?.schemes.includes('client-certificate') && !config.tls?.ca) {
      throw new ConfigError(`invalid configuration:\n  tls.ca: needed for vdirs[${i}].auth client-certificate`);
    }
    const key = v.path.toLowerCase();
    if (seen.has(key)) throw new ConfigError(`invalid configuration:\n  vdirs[${i}].path: "${v.path}" is configured twice`);
    seen.add(key);
    if (isInside(config.stateDir, v.directory)) {
      throw new ConfigError(
        `invalid configuration:\n  stateDir: ${config.stateDir} must not be inside vdirs[${i}].directory (${v.directory})`,
      );
    }
  });
  return config;
}

/**
 * Reads and validates a JSON configuration file; relative paths in it are relative to the file.
 *
 * @throws {ConfigError} when the file cannot be read, is not JSON, or does not validate.
 * @example
 * ```ts
 * const config = await loadConfigFile('/etc/bits/server.json');
 * ```
 */
export async function loadConfigFile(file: string): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`configuration ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(json, dirname(resolve(file)));
}

/** A configured file, read; failing to read it is a configuration error naming `key`. */
async function readConfiguredFile(key: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`invalid configuration:\n  ${key}: cannot read ${file} (${e.code ?? e.message})`);
  }
}

/** The certificate, key and CA bundle of the `tls` block. */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/** What the TLS files are called in messages: their keys, or the flags that gave them. */
export interface TlsFileNames {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

const TLS_KEYS: TlsFileNames = { cert: 'tls.cert', key: 'tls.key', ca: 'tls.ca' };

/**
 * Reads the files of the `tls` block and checks that they make a usable TLS context, so that a
 * missing or broken file stops the server at start-up with its key named, not at the first client.
 * `names` is how the operator gave them (`--tls-cert`, …), for the message.
 *
 * @throws {ConfigError} naming `tls.cert`, `tls.key` or `tls.ca` (or `names`).
 * @example
 * ```ts
 * const files = await readTlsFiles(config.tls); // undefined without TLS
 * ```
 */
export async function readTlsFiles(tls: ServerConfig['tls'], names: TlsFileNames = TLS_KEYS): Promise<TlsFiles | undefined> {
  if (!tls) return undefined;
  const files: TlsFiles = {
    cert: await readConfiguredFile(names.cert, tls.cert),
    key: await readConfiguredFile(names.key, tls.key),
    ca: tls.ca === null ? undefined : await readConfiguredFile(names.ca, tls.ca),
  };
  try {
    createSecureContext({ cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) });
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  ${names.cert}, ${names.key}${files.ca ? `, ${names.ca}` : ''}: ${(err as Error).message}`);
  }
  return files;
}
