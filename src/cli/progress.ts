import type { JobHandle, JobProgress } from '../client/job-events.js';
import { describeClientError } from '../client/errors.js';

/** How a command reports: a redrawn bar (terminal), periodic lines, JSON events, or nothing. */
export type OutputMode = 'bar' | 'lines' | 'json' | 'quiet';

/** Seconds between two plain progress lines when stdout is not a terminal. */
const LINE_INTERVAL_MS = 2_000;
/** Shortest time between two redraws of the bar, or two JSON progress events. */
const REDRAW_MS = 100;
const JSON_PROGRESS_MS = 250;

/**
 * Picks the output mode from the flags and whether stdout is a terminal.
 *
 * @example
 * ```ts
 * outputMode({ json: true }, process.stdout); // 'json'
 * ```
 */
export function outputMode(flags: { quiet?: boolean; json?: boolean }, out: NodeJS.WriteStream): OutputMode {
  if (flags.json) return 'json';
  if (flags.quiet) return 'quiet';
  return out.isTTY ? 'bar' : 'lines';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/**
 * Bytes for people: `512 B`, `1.5 MiB`.
 *
 * @example
 * ```ts
 * formatBytes(1572864); // '1.5 MiB'
 * ```
 */
export function formatBytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/**
 * Rows as a plain table: columns padded to their widest cell, two spaces apart, the last column
 * not padded.
 *
 * @example
 * ```ts
 * formatTable([['ID', 'STATE'], ['3f9c', 'QUEUED']]); // 'ID    STATE\n3f9c  QUEUED\n'
 * ```
 */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/**
 * A duration for people: `0:42`, `1:02:03`.
 *
 * @example
 * ```ts
 * formatDuration(3723); // '1:02:03'
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Rate over a sliding window of recent samples. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  add(bytes: number): void {
    const t = Date.now();
    const last = this.samples[this.samples.length - 1];
    if (last && bytes < last.bytes) this.samples = [];
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 5_000) this.samples.shift();
  }
  /** Bytes per second, or NaN before two samples. */
  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t === first.t) return Number.NaN;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  }
}

/**
 * Reports a job's events on stdout in the chosen {@link OutputMode}; errors go to stderr.
 *
 * @example
 * ```ts
 * const reporter = new ProgressReporter('json', process.stdout, 'upload');
 * reporter.attach(job);
 * ```
 */
export class ProgressReporter {
  private last: JobProgress | undefined;
  private lastDraw = 0;
  private lastJson = 0;
  private lastLinePrinted: JobProgress | undefined;
  private timer: NodeJS.Timeout | undefined;
  private barShown = false;
  private stopped = false;
  private readonly meter = new RateMeter();
  private jobId = '';

  constructor(
    readonly mode: OutputMode,
    private readonly out: NodeJS.WriteStream,
    private readonly command: string,
  ) {}

  /** Subscribes to a job's events. */
  attach(job: JobHandle<unknown>): void {
    this.jobId = job.id;
    job.on('progress', (p) => this.progress(p));
    job.on('state', (phase) => this.event({ event: 'state', phase }));
    job.on('retry', (r) =>
      this.event(
        { event: 'retry', attempt: r.attempt, delayMs: r.delayMs, error: r.error.toJSON() },
        `retry ${r.attempt} in ${(r.delayMs / 1000).toFixed(r.delayMs < 1000 ? 2 : 1)} s: ${describeClientError(r.error)}`,
      ),
    );
    job.on('session', (s) => this.event({ event: 'session', ...s }, `session ${s.sessionId}`));
    job.on('host-id', (h) => this.event({ event: 'host-id', ...h }, `Host-Id ${h.hostId}: later packets go to ${h.url}`));
    job.on('fallback', (f) => this.event({ event: 'fallback', ...f }, `Host-Id ${f.hostId} unreachable: back to ${f.url}`));
    job.on('restart', (r) => this.event({ event: 'restart', ...r }, `restart: ${r.reason}`));
    job.on('warning', (message) => this.event({ event: 'warning', message }, `warning: ${message}`));
    if (this.mode === 'lines') {
      this.timer = setInterval(() => this.printLine(), LINE_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Prints a line (or a JSON event) that is not progress. */
  event(json: Record<string, unknown>, line?: string): void {
    if (this.mode === 'json') {
      this.write(JSON.stringify({ ...json, job: this.jobId, time: new Date().toISOString() }) + '\n');
    } else if (line !== undefined && this.mode !== 'quiet') {
      this.clearBar();
      this.write(`${this.command} ${this.jobId}: ${line}\n`);
      this.draw(true);
    }
  }

  /** A plain message (not in JSON or quiet mode). */
  info(line: string): void {
    if (this.mode === 'bar' || this.mode === 'lines') {
      this.clearBar();
      this.write(`${line}\n`);
    }
  }

  private progress(p: JobProgress): void {
    if (this.last?.phase !== p.phase) this.meter.add(0);
    this.last = p;
    this.meter.add(p.bytesDone);
    if (this.mode === 'json') {
      const now = Date.now();
      const final = p.bytesTotal !== undefined && p.bytesDone === p.bytesTotal;
      if (final || now - this.lastJson >= JSON_PROGRESS_MS) {
        this.lastJson = now;
        this.event({ event: 'progress', ...p });
      }
    } else if (this.mode === 'bar') {
      this.draw(false);
    }
  }

  private describe(p: JobProgress): { pct: string; text: string } {
    const rate = this.meter.rate();
    const total = p.bytesTotal;
    const pct = total ? `${((p.bytesDone / total) * 100).toFixed(1)}%` : total === 0 ? '100.0%' : '';
    const amount = total === undefined ? formatBytes(p.bytesDone) : `${formatBytes(p.bytesDone)}/${formatBytes(total)}`;
    const rateText = Number.isFinite(rate) ? `${formatBytes(Math.max(0, rate))}/s` : '';
    const eta = total !== undefined && Number.isFinite(rate) && rate > 0 ? `ETA ${formatDuration((total - p.bytesDone) / rate)}` : '';
    const phase = p.phase === 'reply' ? 'reply ' : '';
    return { pct, text: [phase + amount, rateText, eta].filter(Boolean).join('  ') };
  }

  private draw(force: boolean): void {
    if (this.mode !== 'bar' || !this.last || this.stopped) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < REDRAW_MS && this.last.bytesDone !== this.last.bytesTotal) return;
    this.lastDraw = now;
    const { pct, text } = this.describe(this.last);
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - text.length - 12));
    const total = this.last.bytesTotal;
    const frac = total ? this.last.bytesDone / total : total === 0 ? 1 : 0;
    const filled = Math.round(frac * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    this.write(`\r${bar} ${pct.padStart(6)}  ${text}\x1b[K`);
    this.barShown = true;
  }

  private clearBar(): void {
    if (this.barShown) {
      this.write('\r\x1b[K');
      this.barShown = false;
    }
  }

  private printLine(): void {
    const p = this.last;
    if (!p || p === this.lastLinePrinted) return;
    this.lastLinePrinted = p;
    const { pct, text } = this.describe(p);
    this.write(`${this.command} ${this.jobId}: ${[pct, text].filter(Boolean).join('  ')}\n`);
  }

  /** Stops the periodic lines; leaves the bar's line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.mode === 'lines') this.printLine();
    if (this.barShown) {
      this.draw(true);
      this.write('\n');
      this.barShown = false;
    }
    this.stopped = true;
  }

  private write(s: string): void {
    this.out.write(s);
  }
}
