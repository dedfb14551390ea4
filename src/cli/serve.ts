import { hostname } from 'node:os';
import { resolve, sep } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { pino } from 'pino';
import { BitsServer } from '../server/bits-server.js';
import { ConfigError, parseConfigJson, readConfigFile, readTlsFiles } from '../server/config.js';
import type { ServerConfig } from '../server/config.js';
import { ADMIN_DEFAULTS, SERVE_DEFAULTS, SERVER_DEFAULTS, VDIR_DEFAULTS } from '../server/defaults.js';
import { DURATION_FORMS, SIZE_FORMS, formatDuration, formatSize } from '../server/human-units.js';
import { StateDirInUseError } from '../store/fs/state-dir-lock.js';
import { StoreUnavailableError } from '../store/types.js';
import { ExitCode } from './client-flags.js';
import { printAndExit } from './print-and-exit.js';
import type { ExitCodeValue } from './print-and-exit.js';

interface ServeFlags {
  config?: string;
  check?: boolean;
  host?: string;
  port?: string;
  root?: string;
  stateDir?: string;
  maxUploadSize?: string;
  maxFragmentSize?: string;
  sessionTimeout?: string;
  allowOverwrite?: boolean;
  hostId?: string;
  hostIdFallbackTimeout?: string;
  downloads?: boolean;
  notifyUrl?: string;
  notifyType?: string;
  notifyTimeout?: string;
  maxReplySize?: string;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel?: string;
  adminHost?: string;
  adminPort?: string;
}

/**
 * Each flag that sets a configuration key, with the key's path: those of the vdir `/` are refused
 * next to `--config`, the others override the file's.
 */
const FLAGS = [
  ['host', '--host', 'listen.host'],
  ['port', '--port', 'listen.port'],
  ['stateDir', '--state-dir', 'stateDir'],
  ['logLevel', '--log-level', 'logLevel'],
  ['adminHost', '--admin-host', 'admin.listen.host'],
  ['adminPort', '--admin-port', 'admin.listen.port'],
  ['publicUrl', '--public-url', 'publicUrl'],
  ['tlsCert', '--tls-cert', 'tls.cert'],
  ['tlsKey', '--tls-key', 'tls.key'],
  ['root', '--root', 'vdirs[0].directory'],
  ['maxUploadSize', '--max-upload-size', 'vdirs[0].maximumUploadSize'],
  ['maxFragmentSize', '--max-fragment-size', 'vdirs[0].maxFragmentSize'],
  ['sessionTimeout', '--session-timeout', 'vdirs[0].sessionTimeout'],
  ['allowOverwrite', '--allow-overwrite', 'vdirs[0].allowOverwrites'],
  ['hostId', '--host-id', 'vdirs[0].hostId'],
  ['hostIdFallbackTimeout', '--host-id-fallback-timeout', 'vdirs[0].hostIdFallbackTimeout'],
  ['downloads', '--downloads', 'vdirs[0].downloadEnabled'],
  ['notifyUrl', '--notify-url', 'vdirs[0].notificationUrl'],
  ['notifyType', '--notify-type', 'vdirs[0].notificationType'],
  ['notifyTimeout', '--notify-timeout', 'vdirs[0].notificationTimeout'],
  ['maxReplySize', '--max-reply-size', 'vdirs[0].maxReplySize'],
] as const satisfies readonly (readonly [keyof ServeFlags, string, string])[];

const VDIR = 'vdirs[0].';
const VDIR_FLAGS = FLAGS.filter(([, , key]) => key.startsWith(VDIR));

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Which flag set each configuration key, among the flags given: errors name the flag, not the key. */
function flagNames(flags: ServeFlags): (key: string) => string | undefined {
  const names = new Map<string, string>(FLAGS.filter(([prop]) => flags[prop] !== undefined).map(([, flag, key]) => [key, flag]));
  return (key) => names.get(key);
}

/** The configuration as written: the file's (`--config`), or one vdir `/` from the flags. */
async function configInput(flags: ServeFlags): Promise<{ input: unknown; baseDir: string }> {
  if (!flags.config) {
    const vdir: Record<string, unknown> = { path: '/', directory: SERVE_DEFAULTS.root };
    for (const [prop, , key] of VDIR_FLAGS) if (flags[prop] !== undefined) vdir[key.slice(VDIR.length)] = flags[prop];
    if (flags.notifyUrl !== undefined && flags.notifyType === undefined) vdir['notificationType'] = SERVE_DEFAULTS.notifyTypeWithUrl;
    return { input: { vdirs: [vdir] }, baseDir: process.cwd() };
  }
  const used = VDIR_FLAGS.filter(([prop]) => flags[prop] !== undefined).map(([, flag]) => flag);
  if (used.length) throw new ConfigError(`${used.join(', ')} cannot be combined with --config: set them in the file's vdirs`);
  // (a vdir's own publicUrl in the file would still win over the flag: the file is the one place for it)
  if (flags.publicUrl !== undefined) throw new ConfigError('--public-url cannot be combined with --config: set publicUrl in the file');
  return readConfigFile(flags.config);
}

/** Builds the configuration from `--config` and/or flags; flags override the file's listener settings. */
async function resolveConfig(flags: ServeFlags): Promise<ServerConfig> {
  if (flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
    if (!flags.tlsCert || !flags.tlsKey) throw new ConfigError('--tls-cert and --tls-key go together');
  }
  const { input, baseDir } = await configInput(flags);
  if (!isRecord(input)) return parseConfigJson(input, baseDir); // (refused, naming the root)
  // Flag paths are relative to the working directory, the file's to the file.
  const path = (p: string | undefined) => (p === undefined ? undefined : resolve(p));
  const overrides: Record<string, unknown> = {
    publicUrl: flags.publicUrl,
    stateDir: path(flags.stateDir),
    logLevel: flags.logLevel,
    tls: flags.tlsCert === undefined ? undefined : { cert: path(flags.tlsCert), key: path(flags.tlsKey) },
  };
  const config: Record<string, unknown> = { ...input };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) config[key] = value;
  if (flags.adminHost !== undefined || flags.adminPort !== undefined) {
    const admin = isRecord(input['admin']) ? input['admin'] : {};
    config['admin'] = {
      ...admin,
      listen: {
        ...(isRecord(admin['listen']) ? admin['listen'] : {}),
        ...(flags.adminHost === undefined ? {} : { host: flags.adminHost }),
        ...(flags.adminPort === undefined ? {} : { port: Number(flags.adminPort) }),
      },
    };
  }
  if (flags.host !== undefined || flags.port !== undefined) {
    config['listen'] = {
      ...(isRecord(input['listen']) ? input['listen'] : {}),
      ...(flags.host === undefined ? {} : { host: flags.host }),
      ...(flags.port === undefined ? {} : { port: Number(flags.port) }),
    };
  }
  try {
    return parseConfigJson(config, baseDir);
  } catch (err) {
    throw err instanceof ConfigError ? err.withKeys(flagNames(flags)) : err;
  }
}

/** What a listener's errno code means, for the start-up line. */
const LISTEN_PROBLEMS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'is already in use by another program',
  EACCES: 'may not be listened on by this user (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'is not an address of this machine',
};

/** What a folder's errno code means, for the start-up line. */
const FOLDER_PROBLEMS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOENT: 'a part of the path does not exist',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'exists and is not a directory',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
};

/** Why `bits serve` could not start: the one line it prints, and its exit code. */
interface StartFailure {
  readonly message: string;
  readonly exitCode: ExitCodeValue;
  /** Whether the cause is known (the environment, not a bug): then no stack trace is logged. */
  readonly known: boolean;
}

const isInsideOrAt = (path: string, dir: string): boolean => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** A configuration error in one line when it has one key at fault, else the key-per-line list. */
function configMessage(err: ConfigError): string {
  const [only, ...more] = err.issues;
  return only && more.length === 0 ? `${only.key}: ${only.message}` : err.message;
}

/** The start-up failure of a listener (BITS or admin), naming its key or flag; undefined for another error. */
function listenFailure(err: NodeJS.ErrnoException & { address?: string; port?: number }, config: ServerConfig, name: (key: string) => string): string | undefined {
  const problem = err.syscall === 'listen' && err.code ? LISTEN_PROBLEMS[err.code] : undefined;
  if (!problem) return undefined;
  const admin = err.port !== undefined && err.port === config.admin?.listen.port && err.port !== config.listen.port;
  const prefix = admin ? 'admin.listen.' : 'listen.';
  const key = name(prefix + (err.code === 'EADDRNOTAVAIL' ? 'host' : 'port'));
  const where = err.port ? `${err.address ?? ''}:${err.port}` : (err.address ?? 'the address');
  return `${key}: ${where} ${problem}`;
}

/** The start-up failure of the state directory or a vdir's folder, naming its key or flag; undefined for another error. */
function folderFailure(err: NodeJS.ErrnoException, config: ServerConfig, name: (key: string) => string): string | undefined {
  const problem = err.code ? FOLDER_PROBLEMS[err.code] : undefined;
  if (!problem || err.path === undefined) return undefined;
  const path = resolve(err.path);
  const vdir = config.vdirs.findIndex((v) => v.directory !== undefined && isInsideOrAt(path, v.directory));
  const key = vdir >= 0 ? `vdirs[${vdir}].directory` : isInsideOrAt(path, config.stateDir) ? 'stateDir' : undefined;
  return key === undefined ? undefined : `${name(key)}: cannot use ${path}: ${problem}`;
}

/** The words for a cause of exit 1 that the server knows, naming its key or flag; undefined for another error. */
function knownCause(err: unknown, config: ServerConfig, name: (key: string) => string): string | undefined {
  if (err instanceof StateDirInUseError) return `${name('stateDir')}: ${err.message}`;
  if (err instanceof StoreUnavailableError) return `${err.service === 'S3' ? 'store.bytes.endpoint' : 'store.records.url'}: ${err.message}`;
  const errno = err as NodeJS.ErrnoException;
  return listenFailure(errno, config, name) ?? folderFailure(errno, config, name);
}

/**
 * Why the server could not start, in one line that names the configuration key (or the flag that
 * set it): `cannot start: …` for a port in use, a folder that cannot be used or a store that cannot
 * be reached (exit 1); the configuration or file problem (exit 2). Anything else is reported as it
 * is (exit 1).
 */
function explainStartFailure(err: unknown, config: ServerConfig, flagOf: (key: string) => string | undefined): StartFailure {
  if (err instanceof ConfigError) return { message: configMessage(err.withKeys(flagOf)), exitCode: ExitCode.Usage, known: true };
  const words = knownCause(err, config, (key) => flagOf(key) ?? key);
  const message = `cannot start: ${words ?? (err as Error)?.message ?? String(err)}`;
  return { message, exitCode: ExitCode.Fatal, known: words !== undefined };
}

/** `bits serve --check`: one line per store check on stdout; exit 0 when every one passed, else 1. */
async function check(config: ServerConfig): Promise<number> {
  let failed = 0;
  try {
    await readTlsFiles(config.tls);
    if (config.tls) process.stdout.write('ok    TLS files: certificate and key make a usable context\n');
  } catch (err) {
    failed++;
    process.stdout.write(`FAIL  TLS files: ${(err as Error).message}\n`);
  }
  // (loaded only here: its PostgreSQL and S3 clients are not needed to serve)
  const { checkStores } = await import('../server/check-stores.js');
  for (const c of await checkStores(config)) {
    if (!c.ok) failed++;
    process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.subject}: ${c.detail}\n`);
  }
  process.stdout.write(failed === 0 ? 'configuration ok\n' : `${failed} check${failed === 1 ? '' : 's'} failed\n`);
  return failed === 0 ? ExitCode.Done : ExitCode.Fatal;
}

const sizeDefault = (bytes: number) => `(bytes or e.g. 1G; default ${formatSize(bytes)})`;
const durationDefault = (seconds: number) => `(seconds or e.g. 2h; default ${formatDuration(seconds * 1000)})`;

/** Registers `bits serve`. */
export function registerServe(program: Command): void {
  const vdir = VDIR_DEFAULTS;
  program
    .command('serve')
    .description('run the BITS upload server')
    .addHelpText('after', `\nSizes: ${SIZE_FORMS}.\nDurations: ${DURATION_FORMS}.`)
    .option('-c, --config <file>', 'JSON configuration file (see README)')
    .option('--check', 'check the configuration and connect to its stores (PostgreSQL, S3, folders), print what is wrong, and exit')
    .option('--host <host>', `address to listen on (default ${SERVER_DEFAULTS.listen.host})`)
    .option('-p, --port <port>', `port to listen on (default ${SERVER_DEFAULTS.listen.port}; 0 picks a free one)`)
    .option('--root <dir>', `folder served as vdir "/" (default ${SERVE_DEFAULTS.root})`)
    .option('--state-dir <dir>', `where sessions are kept (default ${SERVER_DEFAULTS.stateDir})`)
    .option('--max-upload-size <size>', `largest upload; 0 = unlimited ${sizeDefault(vdir.maximumUploadSize)}`)
    .option('--max-fragment-size <size>', `largest fragment body; 413 beyond ${sizeDefault(vdir.maxFragmentSize)}`)
    .option('--session-timeout <duration>', `idle session lifetime ${durationDefault(vdir.sessionTimeout)}`)
    .option('--allow-overwrite', 'let uploads replace existing files')
    .option('--host-id <name>', 'BITS-Host-Id sent on Create-Session (server farms)')
    .option('--host-id-fallback-timeout <duration>', `BITS-Host-Id-Fallback-Timeout ${durationDefault(vdir.hostIdFallbackTimeout)}`)
    .option('--downloads', 'also serve the folder over GET/HEAD with ranges')
    .option('--notify-url <url>', 'server application notified of each completed upload (upload-reply)')
    .option('--notify-type <type>', `by-value | by-reference | none (default ${SERVE_DEFAULTS.notifyTypeWithUrl} with --notify-url)`)
    .option('--notify-timeout <duration>', `how long the application may stay silent ${durationDefault(vdir.notificationTimeout)}`)
    .option('--max-reply-size <size>', `largest reply an application may give ${sizeDefault(vdir.maxReplySize)}`)
    .option('--public-url <url>', 'origin clients reach the server at, e.g. https://bits.example.com (default: the listener)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--admin-host <host>', `admin listener (health, metrics, sessions API, dashboard) address (default ${ADMIN_DEFAULTS.listen.host})`)
    .option('--admin-port <port>', `admin listener port; either flag turns it on (default ${ADMIN_DEFAULTS.listen.port})`)
    .option('--log-level <level>', `fatal|error|warn|info|debug|trace|silent (default ${SERVER_DEFAULTS.logLevel})`)
    .action(async (flags: ServeFlags) => {
      // A bad flag or configuration is a usage error, printed in words; anything else is a bug.
      function usage(err: unknown): never {
        if (err instanceof ConfigError) printAndExit('serve', configMessage(err));
        throw err;
      }
      const config = await resolveConfig(flags).catch(usage);
      if (flags.check) process.exit(await check(config));
      // TLS files given by flag are checked here, so that a missing one is named by its flag (the
      // server checks them again at listen, by key).
      if (flags.tlsCert !== undefined) {
        await readTlsFiles(config.tls).catch((err: unknown) => usage(err instanceof ConfigError ? err.withKeys(flagNames(flags)) : err));
      }
      // Fragment bodies stream through many short-lived socket buffers; with incremental marking V8
      // starts a full collection about once per fragment, costing a third of the throughput
      // (measured by npm run bench). Atomic marking of this small heap is cheaper.
      setFlagsFromString('--no-incremental-marking');
      const logger = pino({ level: config.logLevel, base: { pid: process.pid, hostname: hostname() } });
      let server: BitsServer;
      try {
        server = new BitsServer(config, { logger });
      } catch (err) {
        usage(err);
      }
      try {
        await server.listen();
      } catch (err) {
        const failure = explainStartFailure(err, config, flagNames(flags));
        // One line on stderr, for the operator to act on. When the logs go to a file, a pipe or the
        // journal (stdout not a terminal), the log gets the same line as JSON, with the stack only
        // for a cause that is not known (a bug); on a terminal the one line is all.
        if (!process.stdout.isTTY) logger.fatal({ reason: failure.message, ...(failure.known ? {} : { err }) }, 'cannot start');
        printAndExit('serve', failure.message, failure.exitCode);
      }
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting now');
          process.exit(ExitCode.Fatal);
        }
        stopping = true;
        logger.info({ signal, graceSeconds: config.shutdownGraceMs / 1000 }, 'shutting down');
        server.close().then(
          () => {
            logger.info('stopped');
            process.exit(ExitCode.Done);
          },
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(ExitCode.Fatal);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
