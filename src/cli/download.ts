import type { Command } from 'commander';
import { download } from '../client/download.js';
import { addTransferFlags, reporterFor, runAction, runJob, transferOptions, urlArgument } from './client-flags.js';
import type { TransferFlags } from './client-flags.js';
import { formatBytes } from './progress.js';

async function downloadAction(urlText: string, file: string, flags: TransferFlags): Promise<number> {
  const url = urlArgument(urlText);
  const options = transferOptions(flags, url);
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
    .argument('<file>', 'where to save it');
  addTransferFlags(cmd).action((url: string, file: string, flags: TransferFlags) => runAction('download', () => downloadAction(url, file, flags)));
}
