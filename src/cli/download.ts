import type { Command } from 'commander';
import { download } from '../client/download.js';
import { addTransferFlags, reporterFor, runAction, runJob, transferOptions, urlArgument, UsageError } from './client-flags.js';
import type { TransferFlags } from './client-flags.js';
import { addBackgroundFlags, backgroundOnlyFlag, enqueueBackground } from './agent.js';
import type { BackgroundFlags } from './agent.js';
import { formatBytes } from './progress.js';

async function downloadAction(urlText: string, file: string, more: string[], flags: TransferFlags & BackgroundFlags): Promise<number> {
  const url = urlArgument(urlText);
  const options = transferOptions(flags, url);
  if (more.length % 2 !== 0) throw new UsageError(`"${more.at(-1)}" has no local file: give URL FILE pairs`);
  const files = [{ url, file }];
  for (let i = 0; i < more.length; i += 2) {
    const next = urlArgument(more[i]!);
    if (next.origin !== url.origin || next.username !== url.username) throw new UsageError(`${next.origin}: every file of one job comes from the same host (${url.origin})`);
    files.push({ url: next, file: more[i + 1]! });
  }
  if (flags.background) return enqueueBackground('download', files, options, flags);
  if (files.length > 1) throw new UsageError('several files make one job with --background; without it, download them one by one');
  const backgroundOnly = backgroundOnlyFlag(flags);
  if (backgroundOnly) throw new UsageError(`${backgroundOnly} needs --background`);
  const reporter = reporterFor('download', flags);
  const job = download({ ...options, url, file });
  reporter.info(`download ${job.id}: ${url.origin}${url.pathname} → ${file}`);
  const started = Date.now();
  return runJob('download', job, reporter, (r) => {
    const ms = Date.now() - started;
    reporter.event(
      { event: 'done', type: 'download', bytes: r.bytes, ms, file: r.file, url: r.url, restarts: r.restarts },
      `done: ${formatBytes(r.bytes)} in ${(ms / 1000).toFixed(1)} s to ${r.file}`,
    );
  });
}

/**
 * Registers `bits download`.
 *
 * @example
 * ```ts
 * registerDownload(program);
 * ```
 */
export function registerDownload(program: Command): void {
  const cmd = program
    .command('download')
    .description('download a URL BITS-style: ranged, resumable, restarted when the remote file changes')
    .argument('<url>', 'what to download (http or https)')
    .argument('<file>', 'where to save it')
    .argument('[more...]', 'with --background: more URL FILE pairs, all in one job');
  addBackgroundFlags(addTransferFlags(cmd)).action((url: string, file: string, more: string[], flags: TransferFlags & BackgroundFlags) =>
    runAction('download', () => downloadAction(url, file, more, flags)),
  );
}
