import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { BitsClientError, describeClientError } from '../client/errors.js';
import type { JobHandle } from '../client/job-events.js';
import { defaultStateDir } from '../client/journal.js';
import { certKeyProblem, credentialHeader, parseHeaderArgs } from '../client/options.js';
import { publicHref } from '../protocol/userinfo.js';
import type { ClientOptions } from '../client/options.js';
import { outputMode, ProgressReporter } from './progress.js';

/** Exit codes of the client commands. */
export const ExitCode = { Done: 0, Fatal: 1, Usage: 2, Interrupted: 3 } as const;

/** A bad flag or argument: printed, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Flags shared by `bits upload` and `bits download`. */
export interface TransferFlags {
  user?: string;
  negotiate?: boolean;
  ntlm?: boolean;
  header: string[];
  ca?: string;
  insecure?: boolean;
  cert?: string;
  key?: string;
  stateDir?: string;
  retryDelay?: string;
  idleTimeout?: string;
  /** commander's name for `--no-progress-timeout <seconds>`: the value, or `true` when absent. */
  progressTimeout?: string | boolean;
  quiet?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The environment variable a password may come from (the journal never keeps one). */
export const PASSWORD_ENV = 'BITS_PASSWORD';

/**
 * The password in `BITS_PASSWORD`, if set: for `--user <name>`, and for resuming or cancelling a job
 * that signs in (the journal keeps only the user name).
 *
 * @example
 * ```ts
 * resumeJob(id, { password: envPassword() });
 * ```
 */
export function envPassword(): string | undefined {
  return process.env[PASSWORD_ENV];
}

/**
 * Adds the authentication, TLS, journal, retry and output flags to a transfer command.
 *
 * @example
 * ```ts
 * addTransferFlags(program.command('download').argument('<url>').argument('<file>'));
 * ```
 */
export function addTransferFlags(cmd: Command): Command {
  return cmd
    .option('--user <user[:password]>', `Basic authentication (default: user information in the URL); without ":password" the password comes from ${PASSWORD_ENV}`)
    .option('--negotiate', 'Windows Authentication with Kerberos: the ticket in the credential cache (kinit), no password')
    .option('--ntlm', 'Windows Authentication with NTLMv2: --user DOMAIN\\user[:password]')
    .option('--header <header>', 'extra request header "Name: value" to the job\'s own hosts (repeatable); no credentials (Authorization, Proxy-Authorization, Cookie)', collect, [])
    .option('--ca <file>', 'PEM file of the CA(s) to trust for HTTPS')
    .option('--insecure', 'do not check the HTTPS certificate')
    .option('--cert <file>', 'PEM client certificate for servers that ask for one (with --key)')
    .option('--key <file>', 'PEM private key of --cert (the journal keeps its path, never the key: read again on resume)')
    .option('--state-dir <dir>', `where jobs are journaled (default ${defaultStateDir()})`)
    .option('--retry-delay <seconds>', 'wait before the first retry; later ones back off exponentially (default 5)')
    .option('--idle-timeout <seconds>', 'abandon a request after this long with no bytes moving either way, and retry it (default 120)')
    .option('--no-progress-timeout <seconds>', 'stop (resumably, exit 3) after this long without progress; 0 = never (default 3600)')
    .option('--quiet', 'print nothing but errors')
    .option('--json', 'print one JSON event per line');
}

/**
 * Parses seconds (fractions allowed) into milliseconds.
 *
 * @throws {UsageError} when the value is not a number >= 0.
 * @example
 * ```ts
 * secondsFlag('--retry-delay', '0.05'); // 50
 * ```
 */
export function secondsFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number of seconds >= 0, not "${value}"`);
  return Math.round(n * 1000);
}

/**
 * Parses a URL argument: http or https only.
 *
 * @throws {UsageError} for anything else.
 * @example
 * ```ts
 * urlArgument('http://h/up/a.bin').host; // 'h'
 * ```
 */
export function urlArgument(value: string): URL {
  // Error messages show the URL without its user information: it may hold a password.
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`"${publicHref(value)}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`"${publicHref(url)}" is not an http:// or https:// URL`);
  return url;
}

/**
 * The logger of the client commands: silent unless `BITS_LOG_LEVEL` names a pino level; logs go to
 * stderr.
 *
 * @example
 * ```ts
 * const logger = cliLogger();
 * ```
 */
export function cliLogger(): Logger {
  return pino({ level: process.env['BITS_LOG_LEVEL'] ?? 'silent' }, pino.destination(2));
}

/**
 * Turns the shared flags into client options. `url` is the transfer's URL: a user name in it
 * without a password takes the password from `BITS_PASSWORD`, as `--user <name>` does.
 *
 * @throws {UsageError} naming the flag that is wrong.
 * @example
 * ```ts
 * transferOptions({ header: ['X-A: 1'], retryDelay: '0.1' }, url); // { headers: { 'X-A': '1' }, retryDelayMs: 100, ... }
 * ```
 */
export function transferOptions(flags: TransferFlags, url: URL): ClientOptions {
  let headers: Record<string, string>;
  try {
    headers = parseHeaderArgs(flags.header ?? []);
  } catch (err) {
    throw new UsageError(`--header: ${(err as Error).message}`);
  }
  // The journal keeps custom headers so that a job resumes with them: credentials must not be there.
  const credential = credentialHeader(headers);
  if (credential !== undefined) {
    throw new UsageError(`--header ${credential}: credentials are never journaled; sign in with --user <name> and the password in ${PASSWORD_ENV}`);
  }
  if (flags.negotiate && flags.ntlm) throw new UsageError('--negotiate and --ntlm exclude each other');
  if (flags.negotiate && (flags.user !== undefined || url.username !== '')) {
    throw new UsageError('--negotiate signs in with the Kerberos ticket of the credential cache: give no --user (run kinit)');
  }
  if (flags.ntlm && flags.user === undefined && url.username === '') throw new UsageError('--ntlm needs --user DOMAIN\\user[:password]');
  let user = flags.user;
  if (user !== undefined && !user.includes(':')) {
    const password = envPassword();
    if (password === undefined) throw new UsageError(`--user must be "user:password", or "user" with the password in ${PASSWORD_ENV}`);
    user = `${user}:${password}`;
  } else if (user === undefined && url.username !== '' && url.password === '') {
    const name = decodeURIComponent(url.username);
    const password = envPassword();
    if (password === undefined) throw new UsageError(`the URL names the user "${name}" without a password: give it in ${PASSWORD_ENV}`);
    user = `${name}:${password}`;
  }
  let ca: string | undefined;
  if (flags.ca !== undefined) {
    try {
      ca = readFileSync(flags.ca, 'utf8');
    } catch (err) {
      throw new UsageError(`--ca: cannot read ${flags.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca: ${flags.ca} holds no PEM certificate`);
  }
  const unpaired = certKeyProblem(flags.cert !== undefined, flags.key !== undefined, '--cert', '--key');
  if (unpaired) throw new UsageError(unpaired);
  const pem = (flag: string, file: string | undefined, marker: RegExp): string | undefined => {
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!marker.test(text)) throw new UsageError(`${flag}: ${file} is not the expected PEM file`);
    return text;
  };
  const cert = pem('--cert', flags.cert, /-----BEGIN CERTIFICATE-----/);
  // Checked here, read again by the job from its path: the journal keeps the path, never the key.
  pem('--key', flags.key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const idle = secondsFlag('--idle-timeout', flags.idleTimeout);
  if (idle === 0) throw new UsageError('--idle-timeout must be more than 0 seconds');
  const noProgress = typeof flags.progressTimeout === 'string' ? secondsFlag('--no-progress-timeout', flags.progressTimeout) : undefined;
  return {
    user,
    auth: flags.negotiate ? 'negotiate' : flags.ntlm ? 'ntlm' : undefined,
    headers: Object.keys(headers).length ? headers : undefined,
    ca,
    insecure: flags.insecure,
    cert,
    keyFile: flags.key === undefined ? undefined : resolve(flags.key),
    stateDir: flags.stateDir,
    retryDelayMs: secondsFlag('--retry-delay', flags.retryDelay),
    noProgressTimeoutMs: noProgress,
    idleTimeoutMs: idle,
    logger: cliLogger(),
  };
}

/**
 * Writes an error line for a command to stderr.
 *
 * @example
 * ```ts
 * printError('upload', 'error: ...'); // bits upload: error: ...
 * ```
 */
export function printError(command: string, message: string): void {
  process.stderr.write(`bits ${command}: ${message}\n`);
}

/**
 * Runs a job to its end with progress output and signal handling (SIGINT/SIGTERM stop it resumably);
 * returns the exit code. `onDone` prints the result.
 *
 * @example
 * ```ts
 * const code = await runJob('upload', job, reporter, (r) => reporter.info(`done: ${r.bytes} bytes`));
 * ```
 */
export async function runJob<R>(command: string, job: JobHandle<R>, reporter: ProgressReporter, onDone: (result: R) => void): Promise<number> {
  reporter.attach(job);
  const onSignal = (): void => job.stop();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await job.result;
    reporter.stop();
    onDone(result);
    return ExitCode.Done;
  } catch (err) {
    reporter.stop();
    if (!(err instanceof BitsClientError)) throw err;
    reporter.event({ event: 'error', error: err.toJSON() });
    if (err.kind === 'interrupted') {
      printError(command, `interrupted: ${describeClientError(err)}`);
      printError(command, `job ${job.id} can be resumed: bits resume ${job.id}`);
      return ExitCode.Interrupted;
    }
    printError(command, `error: ${describeClientError(err)}`);
    if (job.inJournal) {
      printError(command, `job ${job.id} is kept: bits resume ${job.id} retries it, bits cancel ${job.id} removes it`);
    }
    return ExitCode.Fatal;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Runs a command action: usage errors print and exit 2; the exit code of the action otherwise.
 *
 * @example
 * ```ts
 * .action((a, flags) => runAction('upload', () => uploadAction(a, flags)));
 * ```
 */
export async function runAction(command: string, action: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await action();
  } catch (err) {
    if (err instanceof UsageError) {
      printError(command, err.message);
      code = ExitCode.Usage;
    } else {
      printError(command, `unexpected error: ${(err as Error)?.stack ?? String(err)}`);
      code = ExitCode.Fatal;
    }
  }
  process.stdout.write('', () => process.exit(code));
}

/**
 * A progress reporter on stdout for a command's `--quiet`/`--json` flags.
 *
 * @example
 * ```ts
 * const reporter = reporterFor('upload', flags);
 * ```
 */
export function reporterFor(command: string, flags: { quiet?: boolean; json?: boolean }): ProgressReporter {
  return new ProgressReporter(outputMode(flags, process.stdout), process.stdout, command);
}
