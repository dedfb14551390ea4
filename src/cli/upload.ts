import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEFAULT_FRAGMENT_SIZE, DEFAULT_MAX_FRAGMENT_SIZE, isFragmentSize, MIN_FRAGMENT_SIZE } from '../client/options.js';
import { upload } from '../client/upload.js';
import type { UploadResult } from '../client/upload.js';
import { addTransferFlags, reporterFor, runAction, runJob, transferOptions, urlArgument, UsageError } from './client-flags.js';
import type { TransferFlags } from './client-flags.js';
import type { ProgressReporter } from './progress.js';
import { addBackgroundFlags, backgroundOnlyFlag, enqueueBackground } from './agent.js';
import type { BackgroundFlags } from './agent.js';
import { formatBytes } from './progress.js';

interface UploadFlags extends TransferFlags, BackgroundFlags {
  replyFile?: string;
  fragmentSize?: string;
  maxFragment?: string;
}

/**
 * A fragment size flag's value in bytes.
 *
 * @throws {UsageError} naming the flag when it is not a whole number of bytes >= 5 KiB.
 */
function fragmentFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!isFragmentSize(n)) throw new UsageError(`${name} must be a whole number of bytes >= ${MIN_FRAGMENT_SIZE} (5 KiB), not "${value}"`);
  return n;
}

/**
 * Prints the end of an upload: a summary line, and the reply when it was kept in memory (its bytes on
 * stdout after the summary; in `--json` mode base64 in the `done` event).
 *
 * @example
 * ```ts
 * printUploadResult(reporter, result, Date.now() - started);
 * ```
 */
export function printUploadResult(reporter: ProgressReporter, r: UploadResult, ms: number): void {
  const rate = ms > 0 ? `${formatBytes((r.bytes * 1000) / ms)}/s` : '';
  reporter.event(
    {
      event: 'done',
      type: 'upload',
      bytes: r.bytes,
      ms,
      sessionId: r.sessionId,
      url: r.url,
      ...(r.reply
        ? { reply: { url: r.reply.url, bytes: r.reply.bytes, file: r.reply.file, data: r.reply.data?.toString('base64') } }
        : {}),
    },
    `done: ${formatBytes(r.bytes)} in ${(ms / 1000).toFixed(1)} s${rate ? ` (${rate})` : ''} to ${r.url}` +
      (r.reply ? `; reply ${formatBytes(r.reply.bytes)}${r.reply.file ? ` saved to ${r.reply.file}` : ' follows'}` : ''),
  );
  if (r.reply?.data && reporter.mode !== 'json') process.stdout.write(r.reply.data);
}

async function uploadAction(file: string, urlText: string, flags: UploadFlags): Promise<number> {
  const url = urlArgument(urlText);
  const options = transferOptions(flags, url);
  const fragmentSize = fragmentFlag('--fragment-size', flags.fragmentSize);
  const maxFragmentSize = fragmentFlag('--max-fragment', flags.maxFragment);
  if (fragmentSize !== undefined && maxFragmentSize !== undefined && maxFragmentSize < fragmentSize) {
    throw new UsageError(`--max-fragment (${maxFragmentSize}) must be at least --fragment-size (${fragmentSize})`);
  }
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new UsageError(`${file} is not a readable file`);
  if (flags.background) {
    if (fragmentSize !== undefined || maxFragmentSize !== undefined) throw new UsageError('--fragment-size and --max-fragment are not for --background jobs (the agent sizes fragments)');
    return enqueueBackground(flags.replyFile === undefined ? 'upload' : 'upload-reply', [{ url, file }], options, flags);
  }
  const backgroundOnly = backgroundOnlyFlag(flags);
  if (backgroundOnly) throw new UsageError(`${backgroundOnly} needs --background`);
  const reporter = reporterFor('upload', flags);
  const job = upload({ ...options, file, url, fragmentSize, maxFragmentSize, replyFile: flags.replyFile });
  reporter.info(`upload ${job.id}: ${file} (${formatBytes(st.size)}) → ${url.origin}${url.pathname}`);
  const started = Date.now();
  return runJob('upload', job, reporter, (r) => printUploadResult(reporter, r, Date.now() - started));
}

/**
 * Registers `bits upload`.
 *
 * @example
 * ```ts
 * registerUpload(program);
 * ```
 */
export function registerUpload(program: Command): void {
  const cmd = program
    .command('upload')
    .description('upload a file with the BITS Upload Protocol (resumable; see bits resume)')
    .argument('<file>', 'local file')
    .argument('<url>', 'destination URL (http or https)')
    .option('--reply-file <path>', 'save the reply of an upload-reply job here (default: print it, up to 1 MiB)')
    .option('--fragment-size <bytes>', `bytes per fragment, at least ${MIN_FRAGMENT_SIZE}; halved on 413, never below 5 KiB; alone a fixed size, with --max-fragment the first size (default: start at ${DEFAULT_FRAGMENT_SIZE} and grow)`)
    .option('--max-fragment <bytes>', `fragments double after each Ack that comes within a second, up to this (default ${DEFAULT_MAX_FRAGMENT_SIZE} unless --fragment-size is given alone); a 413 caps them lower`);
  addBackgroundFlags(addTransferFlags(cmd)).action((file: string, url: string, flags: UploadFlags) => runAction('upload', () => uploadAction(file, url, flags)));
}
