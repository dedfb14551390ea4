import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { pino } from 'pino';
import { BitsServer } from '../server/bits-server.js';
import { ConfigError, loadConfigFile, parseConfig, readTlsFiles } from '../server/config.js';
import type { ServerConfig } from '../server/config.js';

interface ServeFlags {
  config?: string;
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
}

const VDIR_FLAGS = [
  ['root', '--root'],
  ['maxUploadSize', '--max-upload-size'],
  ['maxFragmentSize', '--max-fragment-size'],
  ['sessionTimeout', '--session-timeout'],
  ['allowOverwrite', '--allow-overwrite'],
  ['hostId', '--host-id'],
  ['hostIdFallbackTimeout', '--host-id-fallback-timeout'],
  ['downloads', '--downloads'],
  ['notifyUrl', '--notify-url'],
  ['notifyType', '--notify-type'],
  ['notifyTimeout', '--notify-timeout'],
  ['maxReplySize', '--max-reply-size'],
] as const;

const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));

/** Builds the configuration from `--config` and/or flags; flags override the file's listener settings. */
async function resolveConfig(flags: ServeFlags): Promise<ServerConfig> {
  let input: Record<string, unknown>;
  if (flags.config) {
    const used = VDIR_FLAGS.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
    if (used.length) throw new ConfigError(`${used.join(', ')} cannot be combined with --config: set them in the file's vdirs`);
    // (vdirs inherit the file's publicUrl as it is loaded: a flag could no longer reach them)
    if (flags.publicUrl !== undefined) throw new ConfigError('--public-url cannot be combined with --config: set publicUrl in the file');
    const fromFile = await loadConfigFile(flags.config);
    input = { ...fromFile, limits: fromFile.limits };
  } else {
    input = {
      publicUrl: flags.publicUrl ?? null,
      vdirs: [
        {
          path: '/',
          directory: flags.root ?? './data/uploads',
          downloadEnabled: flags.downloads ?? false,
          maximumUploadSize: num(flags.maxUploadSize),
          maxFragmentSize: num(flags.maxFragmentSize),
          sessionTimeout: num(flags.sessionTimeout),
          allowOverwrites: flags.allowOverwrite ?? false,
          hostId: flags.hostId ?? null,
          hostIdFallbackTimeout: num(flags.hostIdFallbackTimeout),
          notificationUrl: flags.notifyUrl ?? null,
          notificationType: flags.notifyType ?? (flags.notifyUrl ? 'by-value' : 'none'),
          notificationTimeout: num(flags.notifyTimeout),
          maxReplySize: num(flags.maxReplySize),
        },
      ],
    };
  }
  const listen = { ...((input['listen'] as object | undefined) ?? {}) } as Record<string, unknown>;
  if (flags.host !== undefined) listen['host'] = flags.host;
  if (flags.port !== undefined) listen['port'] = num(flags.port);
  input['listen'] = listen;
  if (flags.stateDir !== undefined) input['stateDir'] = flags.stateDir;
  if (flags.logLevel !== undefined) input['logLevel'] = flags.logLevel;
  if (flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
    if (!flags.tlsCert || !flags.tlsKey) throw new ConfigError('--tls-cert and --tls-key go together');
    input['tls'] = { cert: flags.tlsCert, key: flags.tlsKey };
  }
  // Paths from the file are already absolute; flag paths are relative to the working directory.
  return parseConfig(JSON.parse(JSON.stringify(input)), process.cwd());
}

/** Registers `bits serve`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the BITS upload server')
    .option('-c, --config <file>', 'JSON configuration file (see README)')
    .option('--host <host>', 'address to listen on (default 0.0.0.0)')
    .option('-p, --port <port>', 'port to listen on (default 8080; 0 picks a free one)')
    .option('--root <dir>', 'folder served as vdir "/" (default ./data/uploads)')
    .option('--state-dir <dir>', 'where sessions are kept (default ./data/.bits)')
    .option('--max-upload-size <bytes>', 'largest upload; 0 = unlimited (default 0)')
    .option('--max-fragment-size <bytes>', 'largest fragment body; 413 beyond (default 33554432)')
    .option('--session-timeout <seconds>', 'idle session lifetime (default 1209600 = 14 days)')
    .option('--allow-overwrite', 'let uploads replace existing files')
    .option('--host-id <name>', 'BITS-Host-Id sent on Create-Session (server farms)')
    .option('--host-id-fallback-timeout <seconds>', 'BITS-Host-Id-Fallback-Timeout (default 86400)')
    .option('--downloads', 'also serve the folder over GET/HEAD with ranges')
    .option('--notify-url <url>', 'server application notified of each completed upload (upload-reply)')
    .option('--notify-type <type>', 'by-value | by-reference | none (default by-value with --notify-url)')
    .option('--notify-timeout <seconds>', 'how long the application may stay silent (default 300)')
    .option('--max-reply-size <bytes>', "largest reply an application may give (default 67108864 = 64 MiB)")
    .option('--public-url <url>', 'origin clients reach the server at, e.g. https://bits.example.com (default: the listener)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default info)')
    .action(async (flags: ServeFlags) => {
      let config: ServerConfig;
      try {
        config = await resolveConfig(flags);
        // TLS files given by flag are checked here, so that a missing one is named by its flag (the
        // server checks them again at listen, by key).
        if (flags.tlsCert !== undefined) await readTlsFiles(config.tls, { cert: '--tls-cert', key: '--tls-key', ca: 'tls.ca' });
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`bits serve: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      // Fragment bodies stream through many short-lived socket buffers; with incremental marking V8
      // starts a full collection about once per fragment, costing a third of the throughput
      // (measured by npm run bench). Atomic marking of this small heap is cheaper.
      setFlagsFromString('--no-incremental-marking');
      const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
      let server: BitsServer;
      try {
        server = new BitsServer(config, { logger });
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`bits serve: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      try {
        await server.listen();
      } catch (err) {
        logger.fatal({ err }, 'cannot start');
        // (also on stderr, in words: the operator has to act on it)
        if (err instanceof ConfigError) {
          process.stderr.write(`bits serve: ${err.message}\n`);
          process.exit(2);
        }
        process.stderr.write(`bits serve: cannot start: ${(err as Error).message}\n`);
        process.exit(1);
      }
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal, graceSeconds: config.shutdownGrace }, 'shutting down');
        server.close().then(
          () => {
            logger.info('stopped');
            process.exit(0);
          },
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
