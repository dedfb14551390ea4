import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import type { Agent } from '../agent/agent.js';
import { AGENT_DEFAULTS } from '../agent/defaults.js';
import type { RateSchedule } from '../agent/rate-schedule.js';
import { AgentClient, AgentError } from '../client/agent-client.js';
import { agentSocketPath, parseRate, PRIORITIES } from '../client/agent-protocol.js';
import type { AgentJobInfo, AgentJobSpec, AgentJobType, Priority } from '../client/agent-protocol.js';
import { defaultStateDir } from '../client/journal.js';
import type { ClientOptions } from '../client/options.js';
import { ExitCode, printError, runAction, secondsFlag, UsageError } from './client-flags.js';
import { formatBytes, formatTable } from './progress.js';

/** Flags of `--background` transfers (on `bits upload` and `bits download`). */
export interface BackgroundFlags {
  background?: boolean;
  priority?: string;
  maxRate?: string;
  notifyCmd?: string;
  notifyArg: string[];
  notifyShell?: boolean;
  notifyUrl?: string;
  autoComplete?: boolean;
  name?: string;
  yield?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * Adds the `--background` flags to a transfer command.
 *
 * @example
 * ```ts
 * addBackgroundFlags(program.command('upload'));
 * ```
 */
export function addBackgroundFlags(cmd: Command): Command {
  return cmd
    .option('--background', 'hand the job to the agent of --state-dir (bits agent) and print its id at once')
    .option('--priority <level>', `with --background: ${PRIORITIES.join(', ')} (default normal)`)
    .option('--max-rate <rate>', 'with --background: this job\'s bandwidth limit, bytes/s with K, M or G (e.g. 500K, 2M)')
    .option('--notify-cmd <program>', 'with --background: run this program when the job is transferred or fails (job id, state and error in BITS_JOB_* variables)')
    .option('--notify-arg <arg>', 'an argument of --notify-cmd (repeatable)', collect, [])
    .option('--notify-shell', 'run --notify-cmd through /bin/sh -c (it is then one shell command line)')
    .option('--notify-url <url>', 'with --background: POST the job as JSON here when it is transferred or fails')
    .option('--auto-complete', 'with --background: complete the job as soon as it is transferred (else: bits complete ID)')
    .option('--no-yield', 'with --background: do not back off when other traffic needs the link')
    .option('--name <name>', 'with --background: a name to show in bits jobs');
}

/** Whether any background-only flag was given. */
export function backgroundOnlyFlag(f: BackgroundFlags): string | undefined {
  if (f.priority !== undefined) return '--priority';
  if (f.maxRate !== undefined) return '--max-rate';
  if (f.notifyCmd !== undefined) return '--notify-cmd';
  if (f.notifyArg.length > 0) return '--notify-arg';
  if (f.notifyShell) return '--notify-shell';
  if (f.notifyUrl !== undefined) return '--notify-url';
  if (f.autoComplete) return '--auto-complete';
  if (f.yield === false) return '--no-yield';
  if (f.name !== undefined) return '--name';
  return undefined;
}

function priorityArg(value: string | undefined): Priority | undefined {
  if (value === undefined) return undefined;
  if (!PRIORITIES.includes(value as Priority)) throw new UsageError(`priority must be one of ${PRIORITIES.join(', ')}, not "${value}"`);
  return value as Priority;
}

function rateArg(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseRate(value);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

/**
 * Connects to the agent of a state directory, or says how to start one.
 *
 * @throws {UsageError} when no agent runs there.
 * @example
 * ```ts
 * const agent = await connectAgent(flags.stateDir);
 * ```
 */
export async function connectAgent(stateDir: string | undefined): Promise<AgentClient> {
  try {
    return await AgentClient.connect({ stateDir: stateDir ?? defaultStateDir() });
  } catch (err) {
    if (err instanceof AgentError && err.code === 'NOT_RUNNING') {
      throw new UsageError(`${err.message}: start one with bits agent${stateDir ? ` --state-dir ${stateDir}` : ''}`);
    }
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** The agent of a state directory, or `undefined` when none runs there (then there is nothing to ask). */
async function connectIfRunning(stateDir: string | undefined): Promise<AgentClient | undefined> {
  return AgentClient.connect({ stateDir: stateDir ?? defaultStateDir() }).catch(() => undefined);
}

/**
 * Hands a transfer to the agent: prints the job id (or the job as JSON) and returns at once.
 *
 * @example
 * ```ts
 * return enqueueBackground('upload', [{ url, file }], options, flags);
 * ```
 */
export async function enqueueBackground(
  type: AgentJobType,
  files: { url: URL; file: string }[],
  options: ClientOptions,
  flags: BackgroundFlags & { replyFile?: string; json?: boolean; quiet?: boolean },
): Promise<number> {
  if (flags.notifyShell && flags.notifyArg.length > 0) throw new UsageError('--notify-shell takes the whole command in --notify-cmd, without --notify-arg');
  if (flags.notifyArg.length > 0 && flags.notifyCmd === undefined) throw new UsageError('--notify-arg needs --notify-cmd');
  // URLs go without user information: the spec's user carries the credentials.
  const bare = (url: URL): string => {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.href;
  };
  // Credentials in the URL (user:password@) go to the agent as the job's user, sealed there.
  const first = files[0]!.url;
  const user = options.user ?? (first.username !== '' ? `${decodeURIComponent(first.username)}:${decodeURIComponent(first.password)}` : undefined);
  const spec: AgentJobSpec = {
    type,
    files: files.map((f) => ({ url: bare(f.url), file: resolve(f.file) })),
    name: flags.name,
    priority: priorityArg(flags.priority),
    minRetryDelayMs: options.retryDelayMs,
    noProgressTimeoutMs: options.noProgressTimeoutMs,
    headers: options.headers as Record<string, string> | undefined,
    user,
    auth: options.auth,
    ca: options.ca?.toString(),
    insecure: options.insecure,
    cert: options.cert?.toString(),
    keyFile: options.keyFile,
    notifyCommand: flags.notifyCmd === undefined ? undefined : [flags.notifyCmd, ...flags.notifyArg],
    notifyShell: flags.notifyShell,
    notifyUrl: flags.notifyUrl,
    autoComplete: flags.autoComplete,
    maxRateBps: rateArg('--max-rate', flags.maxRate),
    yield: flags.yield === false ? false : undefined,
    replyFile: flags.replyFile === undefined ? undefined : resolve(flags.replyFile),
  };
  const agent = await connectAgent(options.stateDir === false ? undefined : options.stateDir);
  try {
    const job = await agent.enqueue(spec);
    if (flags.json) process.stdout.write(`${JSON.stringify(job)}\n`);
    else process.stdout.write(`${job.id}\n`);
    return ExitCode.Done;
  } catch (err) {
    if (err instanceof AgentError && err.code === 'BAD_REQUEST') throw new UsageError(err.message);
    throw err;
  } finally {
    agent.close();
  }
}

function bytesOf(j: AgentJobInfo): string {
  return `${j.bytesDone}/${j.bytesTotal ?? '?'}`;
}

function jobLine(j: AgentJobInfo): string[] {
  const what = j.files.length === 1 ? (j.type === 'download' ? j.files[0]!.file : j.files[0]!.url) : `${j.files.length} files`;
  return [j.id, j.type, j.state, j.priority, bytesOf(j), j.name ? `${j.name}: ${what}` : what];
}

/**
 * The agent's jobs as `bits jobs` prints them: a table, then each job's error.
 *
 * @example
 * ```ts
 * process.stdout.write(agentTable(await agent.list()));
 * ```
 */
export function agentTable(jobs: readonly AgentJobInfo[]): string {
  let out = formatTable([['ID', 'TYPE', 'STATE', 'PRIORITY', 'BYTES', 'FILES'], ...jobs.map(jobLine)]);
  for (const j of jobs) if (j.error && (j.state === 'ERROR' || j.state === 'TRANSIENT_ERROR')) out += `${j.id}: ${j.error.message}\n`;
  return out;
}

/**
 * The agent's jobs, or `undefined` when no agent runs for the state directory.
 *
 * @example
 * ```ts
 * const jobs = await agentJobs(flags.stateDir);
 * ```
 */
export async function agentJobs(stateDir: string | undefined): Promise<AgentJobInfo[] | undefined> {
  const agent = await connectIfRunning(stateDir);
  if (!agent) return undefined;
  try {
    return await agent.list();
  } finally {
    agent.close();
  }
}

/**
 * Streams job changes until interrupted: one line per change (`--json`: one JSON job per line).
 *
 * @example
 * ```ts
 * return watchJobs(flags.stateDir, flags.json === true);
 * ```
 */
export async function watchJobs(stateDir: string | undefined, json: boolean): Promise<number> {
  const agent = await connectAgent(stateDir);
  const last = new Map<string, string>();
  const print = (j: AgentJobInfo): void => {
    if (json) {
      process.stdout.write(`${JSON.stringify(j)}\n`);
      return;
    }
    const line = `${j.id} ${j.state} ${j.priority} ${bytesOf(j)}${j.error && j.state.endsWith('ERROR') ? ` ${j.error.message}` : ''}`;
    if (last.get(j.id) === line) return;
    last.set(j.id, line);
    process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  };
  agent.on('job', print);
  for (const j of await agent.watch()) print(j);
  return new Promise<number>((resolveCode) => {
    const end = (code: number): void => {
      agent.close();
      resolveCode(code);
    };
    process.once('SIGINT', () => end(ExitCode.Done));
    process.once('SIGTERM', () => end(ExitCode.Done));
    agent.once('close', () => {
      printError('jobs', 'the agent went away');
      end(ExitCode.Fatal);
    });
  });
}

function describe(j: AgentJobInfo): string {
  const lines = [
    `id:         ${j.id}${j.name ? ` (${j.name})` : ''}`,
    `type:       ${j.type}`,
    `state:      ${j.state}${j.completing ? ' (completing)' : ''}`,
    `priority:   ${j.priority}`,
    `bytes:      ${bytesOf(j)}${j.bytesTotal ? ` (${formatBytes(j.bytesDone)} of ${formatBytes(j.bytesTotal)})` : ''}`,
    `created:    ${new Date(j.createdAt).toISOString()}`,
    `modified:   ${new Date(j.modifiedAt).toISOString()}`,
  ];
  if (j.transferredAt) lines.push(`transferred: ${new Date(j.transferredAt).toISOString()}`);
  if (j.completedAt) lines.push(`completed:  ${new Date(j.completedAt).toISOString()}`);
  lines.push(`errors:     ${j.errorCount}${j.error ? ` (last: ${j.error.code}: ${j.error.message})` : ''}`);
  lines.push(`options:    autoComplete=${j.autoComplete} yield=${j.yield}${j.maxRateBps ? ` maxRate=${formatBytes(j.maxRateBps)}/s` : ''}`);
  if (j.replyFile) lines.push(`reply file: ${j.replyFile}`);
  for (const f of j.files) lines.push(`file:       ${f.url} ${j.type === 'download' ? '→' : '←'} ${f.file} ${f.bytesDone}/${f.bytesTotal ?? '?'}${f.done ? ' done' : ''}`);
  return lines.join('\n') + '\n';
}

/**
 * Runs one control request on the agent and prints the job: usage errors (no agent, an unknown
 * job, a job in the wrong state) exit 2.
 */
async function control(stateDir: string | undefined, json: boolean, call: (agent: AgentClient) => Promise<AgentJobInfo>, print: (j: AgentJobInfo) => string): Promise<number> {
  const agent = await connectAgent(stateDir);
  try {
    const job = await call(agent);
    process.stdout.write(json ? `${JSON.stringify(job)}\n` : print(job));
    return ExitCode.Done;
  } catch (err) {
    if (err instanceof AgentError && err.code !== 'INTERNAL' && err.code !== 'DISCONNECTED') throw new UsageError(err.message);
    throw err;
  } finally {
    agent.close();
  }
}

/**
 * Whether an agent runs for the state directory and knows the job `id` (or a unique prefix of it):
 * `bits resume` and `bits cancel` then go to the agent.
 *
 * @example
 * ```ts
 * if (await isAgentJob(flags.stateDir, id)) return agentResume(flags.stateDir, id);
 * ```
 */
export async function isAgentJob(stateDir: string | undefined, id: string): Promise<boolean> {
  const agent = await connectIfRunning(stateDir);
  if (!agent) return false;
  try {
    await agent.info(id);
    return true;
  } catch (err) {
    return err instanceof AgentError && err.code === 'AMBIGUOUS_JOB';
  } finally {
    agent.close();
  }
}

/** `bits resume ID` for an agent job. */
export function agentResume(stateDir: string | undefined, id: string): Promise<number> {
  return control(stateDir, false, (a) => a.resume(id), (j) => `resumed ${j.id}: ${j.state}\n`);
}

/** `bits cancel ID` for an agent job. */
export function agentCancel(stateDir: string | undefined, id: string): Promise<number> {
  return control(stateDir, false, (a) => a.cancel(id), (j) => `cancelled ${j.id} (${j.type})\n`);
}

interface AgentFlags {
  stateDir?: string;
  maxConcurrent?: string;
  maxRate?: string;
  rateSchedule?: string;
  slice?: string;
  aging?: string;
  retain?: string;
  retryDelay?: string;
  logLevel?: string;
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number >= 1, not "${value}"`);
  return n;
}

async function agentAction(flags: AgentFlags): Promise<number> {
  // (the agent itself is loaded only here: bits upload --background needs the client side alone)
  const { Agent } = await import('../agent/agent.js');
  const { serveControl } = await import('../agent/control-server.js');
  const { RateSchedule } = await import('../agent/rate-schedule.js');
  const stateDir = resolve(flags.stateDir ?? defaultStateDir());
  let schedule: RateSchedule | undefined;
  if (flags.rateSchedule !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.rateSchedule, 'utf8');
    } catch (err) {
      throw new UsageError(`--rate-schedule: cannot read ${flags.rateSchedule}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      schedule = RateSchedule.parse(JSON.parse(text));
    } catch (err) {
      throw new UsageError(`--rate-schedule ${flags.rateSchedule}: ${(err as Error).message}`);
    }
  }
  if (schedule && flags.maxRate !== undefined) throw new UsageError('--max-rate and --rate-schedule exclude each other (put "default" in the schedule)');
  let socketPath: string;
  try {
    socketPath = agentSocketPath(stateDir);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const logger = pino({ level: flags.logLevel ?? process.env['BITS_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } }, pino.destination(2));
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  let agent: Agent;
  try {
    agent = await Agent.start({
      stateDir,
      maxConcurrent: positiveInt('--max-concurrent', flags.maxConcurrent),
      maxRateBps: rateArg('--max-rate', flags.maxRate),
      schedule,
      sliceMs: secondsFlag('--slice', flags.slice),
      agingMs: secondsFlag('--aging', flags.aging),
      retainMs: secondsFlag('--retain', flags.retain),
      minRetryDelayMs: secondsFlag('--retry-delay', flags.retryDelay),
      logger,
      version: pkg.version,
    });
  } catch (err) {
    printError('agent', (err as Error).message);
    return ExitCode.Fatal;
  }
  let server: { close(): Promise<void> };
  try {
    server = await serveControl(agent, socketPath, logger);
  } catch (err) {
    await agent.stop();
    printError('agent', (err as Error).message);
    return ExitCode.Fatal;
  }
  logger.info({ socket: socketPath, stateDir }, 'agent listening');
  await new Promise<void>((resolveStop) => {
    const stop = (): void => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('stopping: jobs are kept and go on at the next start');
  await server.close();
  await agent.stop();
  return ExitCode.Done;
}

/**
 * Registers `bits agent` and the agent verbs `bits info`, `bits suspend`, `bits complete` and
 * `bits priority`.
 *
 * @example
 * ```ts
 * registerAgent(program);
 * ```
 */
export function registerAgent(program: Command): void {
  const stateDirHelp = `the agent's state directory (default ${defaultStateDir()})`;
  program
    .command('agent')
    .description('run the background transfer service in the foreground (systemd, launchd): jobs queued with --background')
    .option('--state-dir <dir>', `where the agent keeps its jobs; its control socket lives with it (default ${defaultStateDir()})`)
    .option('--max-concurrent <n>', `background jobs transferring at once (default ${AGENT_DEFAULTS.maxConcurrent}); foreground jobs never wait`)
    .option('--max-rate <rate>', 'global bandwidth limit, bytes/s with K, M or G (e.g. 2M); default unlimited')
    .option('--rate-schedule <file>', 'JSON file of limits by time of week, e.g. {"Mon-Fri 08:00-18:00": "1M", "default": "unlimited"}')
    .option('--slice <seconds>', `a running job gives its slot to a waiting one of the same priority after this long (default ${AGENT_DEFAULTS.sliceMs / 1000})`)
    .option('--aging <seconds>', `a waiting job rises one priority level per this long, so none starves (default ${AGENT_DEFAULTS.agingMs / 1000})`)
    .option('--retain <seconds>', `ended jobs (ACKNOWLEDGED, CANCELLED) are listed this long (default ${AGENT_DEFAULTS.retainMs / 1000})`)
    .option('--retry-delay <seconds>', `first retry wait of jobs that set none (default ${AGENT_DEFAULTS.minRetryDelayMs / 1000})`)
    .option('--log-level <level>', 'pino level of the log on stderr (default info)')
    .action((flags: AgentFlags) => runAction('agent', () => agentAction(flags)));
  program
    .command('info')
    .description('show one background job')
    .argument('<job-id>', 'job id (or a unique prefix)')
    .option('--state-dir <dir>', stateDirHelp)
    .option('--json', 'print the job as JSON')
    .action((id: string, flags: { stateDir?: string; json?: boolean }) => runAction('info', () => control(flags.stateDir, flags.json === true, (a) => a.info(id), describe)));
  program
    .command('suspend')
    .description('suspend a background job until bits resume')
    .argument('<job-id>', 'job id (or a unique prefix)')
    .option('--state-dir <dir>', stateDirHelp)
    .action((id: string, flags: { stateDir?: string }) => runAction('suspend', () => control(flags.stateDir, false, (a) => a.suspend(id), (j) => `suspended ${j.id}\n`)));
  program
    .command('complete')
    .description('complete a TRANSFERRED background job: downloads appear under their names, an upload is committed (Close-Session)')
    .argument('<job-id>', 'job id (or a unique prefix)')
    .option('--state-dir <dir>', stateDirHelp)
    .option('--no-wait', 'return at once instead of waiting for ACKNOWLEDGED')
    .action((id: string, flags: { stateDir?: string; wait: boolean }) =>
      runAction('complete', async () => {
        const agent = await connectAgent(flags.stateDir);
        try {
          const asked = await agent.complete(id).catch((err: unknown) => {
            throw err instanceof AgentError && err.code !== 'INTERNAL' ? new UsageError(err.message) : err;
          });
          const done = flags.wait ? await agent.waitFor(asked.id, ['ACKNOWLEDGED', 'ERROR', 'CANCELLED']) : asked;
          if (done.state === 'ERROR') {
            printError('complete', `job ${done.id} failed: ${done.error?.message ?? 'unknown error'}`);
            return ExitCode.Fatal;
          }
          process.stdout.write(`${flags.wait ? 'completed' : 'completing'} ${done.id}\n`);
          return ExitCode.Done;
        } finally {
          agent.close();
        }
      }),
    );
  program
    .command('priority')
    .description('change the priority of a background job')
    .argument('<job-id>', 'job id (or a unique prefix)')
    .argument('<level>', PRIORITIES.join(' | '))
    .option('--state-dir <dir>', stateDirHelp)
    .action((id: string, level: string, flags: { stateDir?: string }) =>
      runAction('priority', async () => {
        const priority = priorityArg(level)!;
        return control(flags.stateDir, false, (a) => a.setPriority(id, priority), (j) => `${j.id}: priority ${j.priority}\n`);
      }),
    );
}
