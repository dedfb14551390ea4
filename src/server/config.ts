import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { isInside } from '../store/fs/is-inside.js';
import { configSchema } from './config-schema.js';
import type { ServerConfig, ServerConfigInput } from './config-schema.js';

export type { AdminConfig, AuthConfig, PostgresConfig, S3Config, ServerConfig, ServerConfigInput, StoreConfig, VdirConfig } from './config-schema.js';

/** One wrong key of a configuration and why. */
export interface ConfigIssue {
  /** Its path (`vdirs[0].maxFragmentSize`), or a flag; several keys at fault together are separated by ", ". */
  readonly key: string;
  readonly message: string;
}

/** A configuration that does not validate; `message` names each offending key, `issues` lists them. */
export class ConfigError extends Error {
  /** The keys at fault; empty when the error is about the configuration as a whole (a file that cannot be read). */
  readonly issues: readonly ConfigIssue[];

  constructor(problem: string | readonly ConfigIssue[]) {
    super(typeof problem === 'string' ? problem : `invalid configuration:\n  ${problem.map((i) => `${i.key}: ${i.message}`).join('\n  ')}`);
    this.name = 'ConfigError';
    this.issues = typeof problem === 'string' ? [] : problem;
  }

  /**
   * The same error with its keys renamed by `rename` (keys it returns undefined for are kept), for
   * callers that took the values from elsewhere, e.g. command-line flags.
   *
   * @example
   * ```ts
   * throw err.withKeys((key) => (key === 'listen.port' ? '--port' : undefined));
   * ```
   */
  withKeys(rename: (key: string) => string | undefined): ConfigError {
    if (this.issues.length === 0) return this;
    const renamed = (key: string): string => key.split(', ').map((k) => rename(k) ?? k).join(', ');
    return new ConfigError(this.issues.map((i) => ({ key: renamed(i.key), message: i.message })));
  }
}

/** `vdirs[0].auth.users` from zod's `['vdirs', 0, 'auth', 'users']`. */
function keyOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/**
 * Validates a configuration object, applies defaults, resolves relative paths against `baseDir`,
 * and reads every duration into milliseconds (`sessionTimeout` in, `sessionTimeoutMs` out).
 *
 * @throws {ConfigError} naming every key that is wrong.
 * @example
 * ```ts
 * const config = parseConfig({ vdirs: [{ path: '/', directory: './data/uploads', sessionTimeout: '2h' }] }, process.cwd());
 * config.listen.port; // 8080
 * config.vdirs[0].sessionTimeoutMs; // 7_200_000
 * ```
 */
export function parseConfig(input: ServerConfigInput, baseDir: string): ServerConfig {
  return parseConfigJson(input, baseDir);
}

/**
 * `parseConfig` for a value of unknown shape, such as parsed JSON: the same checks, at run time only.
 *
 * @throws {ConfigError} naming every key that is wrong.
 * @example
 * ```ts
 * const config = parseConfigJson(JSON.parse(text), dirname(file));
 * ```
 */
export function parseConfigJson(input: unknown, baseDir: string): ServerConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => ({ key: keyOf(i.path), message: i.message })));
  const config = result.data;
  config.stateDir = resolve(baseDir, config.stateDir);
  if (config.tls) {
    config.tls = {
      cert: resolve(baseDir, config.tls.cert),
      key: resolve(baseDir, config.tls.key),
      ca: config.tls.ca === null ? null : resolve(baseDir, config.tls.ca),
    };
  }
  if (config.admin?.tokenFile) config.admin.tokenFile = resolve(baseDir, config.admin.tokenFile);
  const seen = new Set<string>();
  let keytab: string | null | undefined;
  const objects = config.store.bytes.type === 's3';
  config.vdirs.forEach((v, i) => {
    if (objects && v.directory !== undefined) {
      throw new ConfigError([{ key: `vdirs[${i}].directory`, message: 'with store.bytes of type "s3" uploads go to object storage: give destination (s3://bucket/prefix/) instead' }]);
    }
    if (!objects && v.destination !== undefined) {
      throw new ConfigError([{ key: `vdirs[${i}].destination`, message: 'an s3:// destination needs store.bytes of type "s3" (see README, Running a farm)' }]);
    }
    if (v.directory !== undefined) v.directory = resolve(baseDir, v.directory);
    for (const hook of [v.createWebhook, v.commitWebhook]) if (hook?.secretFile) hook.secretFile = resolve(baseDir, hook.secretFile);
    v.publicUrl ??= config.publicUrl;
    if (v.auth?.users) v.auth.users = resolve(baseDir, v.auth.users);
    if (v.auth?.keytab) v.auth.keytab = resolve(baseDir, v.auth.keytab);
    if (v.auth?.groups) v.auth.groups = resolve(baseDir, v.auth.groups);
    if (v.auth?.stripRealm && !v.auth.servicePrincipal?.includes('@')) {
      throw new ConfigError([{ key: `vdirs[${i}].auth.stripRealm`, message: 'needs servicePrincipal with its realm (HTTP/host@REALM): only that realm is stripped' }]);
    }
    if (v.auth?.schemes.includes('negotiate')) {
      // (GSSAPI reads the acceptor's keytab from the process's environment: there is one per process)
      if (keytab !== undefined && keytab !== v.auth.keytab) {
        throw new ConfigError([{ key: `vdirs[${i}].auth.keytab`, message: 'every negotiate vdir must use the same keytab (one per server process)' }]);
      }
      keytab = v.auth.keytab;
    }
    if (v.auth?.schemes.includes('client-certificate') && !config.tls?.ca) {
      throw new ConfigError([{ key: 'tls.ca', message: `needed for vdirs[${i}].auth client-certificate` }]);
    }
    const key = v.path.toLowerCase();
    if (seen.has(key)) throw new ConfigError([{ key: `vdirs[${i}].path`, message: `"${v.path}" is configured twice` }]);
    seen.add(key);
    if (v.directory !== undefined && isInside(config.stateDir, v.directory)) {
      throw new ConfigError([{ key: 'stateDir', message: `${config.stateDir} must not be inside vdirs[${i}].directory (${v.directory})` }]);
    }
  });
  return config;
}

/** A configuration file as written, and the folder its relative paths are relative to. */
export interface ConfigFile {
  /** The parsed JSON, not validated yet (see `parseConfigJson`). */
  readonly input: unknown;
  readonly baseDir: string;
}

/**
 * Reads a JSON configuration file without validating it, for callers that add to it before
 * `parseConfigJson` (as `bits serve` does with its flags).
 *
 * @throws {ConfigError} when the file cannot be read or is not JSON.
 * @example
 * ```ts
 * const { input, baseDir } = await readConfigFile('/etc/bits/server.json');
 * const config = parseConfigJson(input, baseDir);
 * ```
 */
export async function readConfigFile(file: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration ${file}: ${(err as Error).message}`);
  }
  try {
    return { input: JSON.parse(text) as unknown, baseDir: dirname(resolve(file)) };
  } catch (err) {
    throw new ConfigError(`configuration ${file} is not valid JSON: ${(err as Error).message}`);
  }
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
  const { input, baseDir } = await readConfigFile(file);
  return parseConfigJson(input, baseDir);
}

/** A configured file, read; failing to read it is a configuration error naming `key`. */
async function readConfiguredFile(key: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError([{ key, message: `cannot read ${file} (${e.code ?? e.message})` }]);
  }
}

/** The certificate, key and CA bundle of the `tls` block. */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/**
 * Reads the files of the `tls` block and checks that they make a usable TLS context, so that a
 * missing or broken file stops the server at start-up with its key named, not at the first client.
 *
 * @throws {ConfigError} naming `tls.cert`, `tls.key` or `tls.ca` (a broken pair: `tls.cert, tls.key`).
 * @example
 * ```ts
 * const files = await readTlsFiles(config.tls); // undefined without TLS
 * ```
 */
export async function readTlsFiles(tls: ServerConfig['tls']): Promise<TlsFiles | undefined> {
  if (!tls) return undefined;
  const files: TlsFiles = {
    cert: await readConfiguredFile('tls.cert', tls.cert),
    key: await readConfiguredFile('tls.key', tls.key),
    ca: tls.ca === null ? undefined : await readConfiguredFile('tls.ca', tls.ca),
  };
  try {
    createSecureContext({ cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) });
  } catch (err) {
    throw new ConfigError([{ key: `tls.cert, tls.key${files.ca ? ', tls.ca' : ''}`, message: (err as Error).message }]);
  }
  return files;
}
