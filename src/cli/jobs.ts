import { join } from 'node:path';
import type { Command } from 'commander';
import { describeClientError, isBitsClientError } from '../client/errors.js';
import type { BitsClientError } from '../client/errors.js';
import { cancelJob, listJobs, PasswordNeededError, pruneJobs, resumeJob, UnknownJobError } from '../client/jobs.js';
import type { JobSummary } from '../client/jobs.js';
import { defaultStateDir, Journal } from '../client/journal.js';
import { effectiveState } from '../client/jobs.js';
import type { UploadResult } from '../client/upload.js';
import type { DownloadResult } from '../client/download.js';
import type { JobHandle } from '../client/job-events.js';
import { cliLogger, envPassword, ExitCode, PASSWORD_ENV, printError, runAction, runJob, secondsFlag, UsageError } from './client-flags.js';
import { formatBytes, formatTable, outputMode, ProgressReporter } from './progress.js';
import { printUploadResult } from './upload.js';
import { agentCancel, agentJobs, agentResume, agentTable, isAgentJob, watchJobs } from './agent.js';

function row(j: JobSummary): string[] {
  const total = j.bytesTotal === undefined ? '?' : String(j.bytesTotal);
  return [j.id, j.type, j.state, `${j.bytesDone}/${total}`, j.url];
}

interface JobsFlags {
  stateDir?: string;
  prune?: boolean;
  watch?: boolean;
  json?: boolean;
}

async function jobsAction(flags: JobsFlags): Promise<number> {
  if (flags.watch) {
    if (flags.prune) throw new UsageError('--watch and --prune exclude each other');
    return watchJobs(flags.stateDir, flags.json === true);
  }
  const stateDir = flags.stateDir ?? defaultStateDir();
  if (flags.prune) {
    // No BITS_PASSWORD here: one password would go to the host of every job that signs in.
    for (const { job: j, pruned, error, warnings } of await pruneJobs({ stateDir, logger: cliLogger() })) {
      if (pruned) process.stdout.write(`pruned ${j.id} (${j.type} ${j.url})${j.error ? `: ${j.error}` : ''}\n`);
      else printError('jobs', `warning: ${j.id} not pruned: ${keptReason(error, journalEntry(stateDir, j.id))}`);
      for (const w of warnings ?? []) printError('jobs', `warning: ${j.id}: ${w}`);
    }
  }
  const jobs = await listJobs(stateDir);
  const background = await agentJobs(flags.stateDir);
  if (flags.json) {
    for (const j of jobs) process.stdout.write(`${JSON.stringify({ agent: false, ...j })}\n`);
    for (const j of background ?? []) process.stdout.write(`${JSON.stringify({ agent: true, ...j })}\n`);
    return ExitCode.Done;
  }
  if (jobs.length === 0 && !background?.length) {
    process.stdout.write('no jobs\n');
    return ExitCode.Done;
  }
  if (jobs.length > 0) {
    process.stdout.write(formatTable([['ID', 'TYPE', 'STATE', 'BYTES', 'URL'], ...jobs.map(row)]));
    for (const j of jobs) if (j.error) process.stdout.write(`${j.id}: ${j.error}\n`);
  }
  if (background?.length) {
    if (jobs.length > 0) process.stdout.write('\nbackground jobs (bits agent):\n');
    process.stdout.write(agentTable(background));
  }
  return ExitCode.Done;
}

interface ResumeFlags {
  stateDir?: string;
  retryDelay?: string;
  quiet?: boolean;
}

async function resumeAction(id: string | undefined, flags: ResumeFlags): Promise<number> {
  if (id !== undefined && (await isAgentJob(flags.stateDir, id))) return agentResume(flags.stateDir, id);
  const stateDir = flags.stateDir ?? defaultStateDir();
  const retryDelayMs = secondsFlag('--retry-delay', flags.retryDelay);
  let ids: string[];
  if (id !== undefined) {
    ids = [id];
  } else {
    const records = await new Journal(stateDir).list();
    ids = records.filter((r) => effectiveState(r) === 'interrupted').map((r) => r.id);
    if (ids.length === 0) {
      if (!flags.quiet) process.stdout.write('nothing to resume\n');
      return ExitCode.Done;
    }
  }
  let worst: number = ExitCode.Done;
  for (const jobId of ids) {
    let job;
    try {
      // BITS_PASSWORD only for a job named on the command line: resuming every interrupted job with
      // it would send it to the host of every job that signs in, whoever that is.
      job = await resumeJob(jobId, { stateDir, retryDelayMs, password: id !== undefined ? envPassword() : undefined, logger: cliLogger() });
    } catch (err) {
      if (isBitsClientError(err)) {
        // The job could not be set up again (its client key's file is gone, say): it stays as it was.
        printError('resume', `error: job ${jobId}: ${describeClientError(err)}`);
        worst = ExitCode.Fatal;
        continue;
      }
      if (!(err instanceof UnknownJobError || err instanceof PasswordNeededError)) throw err;
      const message = err instanceof PasswordNeededError ? passwordHint(err, 'resume') : err.message;
      if (id !== undefined) throw new UsageError(message);
      printError('resume', message);
      // The job waits for its password: say so in the exit code, unless something worse happened.
      if (err instanceof PasswordNeededError && worst === ExitCode.Done) worst = ExitCode.Usage;
      continue;
    }
    const reporter = new ProgressReporter(outputMode(flags, process.stdout), process.stdout, 'resume');
    reporter.info(`resume ${job.id}`);
    const started = Date.now();
    const handle: JobHandle<UploadResult | DownloadResult> = job;
    const code = await runJob('resume', handle, reporter, (r) => {
      if ('sessionId' in r) printUploadResult(reporter, r, Date.now() - started);
      else reporter.info(`resume ${job.id}: done: ${formatBytes(r.bytes)} to ${r.file}`);
    });
    if (code === ExitCode.Fatal || (code === ExitCode.Interrupted && worst !== ExitCode.Fatal)) worst = code;
    if (code === ExitCode.Interrupted && job.result !== undefined) {
      // Stopped by a signal: do not go on with the next job.
      const err = await job.result.catch((e: unknown) => e);
      if (isBitsClientError(err) && err.code === 'BITS_CLIENT_INTERRUPTED') break;
    }
  }
  return worst;
}

/** How to give the password of a job again: with the job's id, so it goes to that job's hosts only. */
function passwordHint(err: PasswordNeededError, command: 'resume' | 'cancel'): string {
  return `${err.message}: set ${PASSWORD_ENV} to it and name the job, e.g. ${PASSWORD_ENV}=<password> bits ${command} ${err.jobId}`;
}

/** Why `--prune` kept a job. */
function keptReason(error: unknown, entry: string): string {
  if (error instanceof PasswordNeededError) return passwordHint(error, 'cancel');
  if (isBitsClientError(error)) return `${describeClientError(error)}${refusedHint(error, entry)}`;
  return (error as Error | undefined)?.message ?? String(error);
}

/** After a refused Cancel-Session: the job is kept (its journal `entry`), and how to cancel it. */
function refusedHint(err: BitsClientError, entry: string): string {
  if (err.request !== 'Cancel-Session') return '';
  return `; the job is kept: give its password (${PASSWORD_ENV}) and run bits cancel again, or delete ${entry} to forget it`;
}

/** The file of a job in a journal. */
function journalEntry(stateDir: string, id: string): string {
  return join(new Journal(stateDir).dir, `${id}.json`);
}

async function cancelAction(id: string, flags: { stateDir?: string }): Promise<number> {
  if (await isAgentJob(flags.stateDir, id)) return agentCancel(flags.stateDir, id);
  try {
    const summary = await cancelJob(id, {
      stateDir: flags.stateDir ?? defaultStateDir(),
      password: envPassword(),
      logger: cliLogger(),
      onWarning: (m) => printError('cancel', `warning: ${m}`),
    });
    process.stdout.write(`cancelled ${summary.id} (${summary.type} ${summary.url})\n`);
    return ExitCode.Done;
  } catch (err) {
    if (err instanceof UnknownJobError) throw new UsageError(err.message);
    if (isBitsClientError(err)) {
      const stateDir = flags.stateDir ?? defaultStateDir();
      const found = await new Journal(stateDir).find(id).catch(() => undefined);
      const entry = journalEntry(stateDir, typeof found === 'object' ? found.id : id);
      printError('cancel', `${describeClientError(err)}${refusedHint(err, entry)}`);
      return ExitCode.Fatal;
    }
    throw err;
  }
}

/**
 * Registers `bits jobs`, `bits resume` and `bits cancel`.
 *
 * @example
 * ```ts
 * registerJobs(program);
 * ```
 */
export function registerJobs(program: Command): void {
  program
    .command('jobs')
    .description('list upload and download jobs in the state directory, and the background jobs of its agent')
    .option('--state-dir <dir>', `where jobs are journaled (default ${defaultStateDir()})`)
    .option('--prune', 'first cancel every job that failed fatally (Cancel-Session, partial files and journal entry removed)')
    .option('--watch', "print the agent's jobs as they change, until interrupted")
    .option('--json', 'one JSON object per job (per change with --watch)')
    .action((flags: JobsFlags) => runAction('jobs', () => jobsAction(flags)));
  program
    .command('resume')
    .description(`resume a job (a background job: queue it again), or every interrupted job when no id is given (a job that signs in takes its password from ${PASSWORD_ENV})`)
    .argument('[job-id]', 'job id (or a unique prefix)')
    .option('--state-dir <dir>', `where jobs are journaled (default ${defaultStateDir()})`)
    .option('--retry-delay <seconds>', 'wait before the first retry; later ones back off exponentially (default 5)')
    .option('--quiet', 'print nothing but errors')
    .action((id: string | undefined, flags: ResumeFlags) => runAction('resume', () => resumeAction(id, flags)));
  program
    .command('cancel')
    .description('cancel a job (a background job too): Cancel-Session on the server, journal entry and partial files removed')
    .argument('<job-id>', 'job id (or a unique prefix)')
    .option('--state-dir <dir>', `where jobs are journaled (default ${defaultStateDir()})`)
    .action((id: string, flags: { stateDir?: string }) => runAction('cancel', () => cancelAction(id, flags)));
}
