import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestLogFields } from '../request-log.js';

/** Why authentication failed, as a bounded label. */
export type AuthFailure = 'challenge' | 'denied' | 'not-allowed';

/** Where the gauges read their values at scrape time. */
export interface MetricSources {
  /** Live sessions by vdir path (all nodes of a farm); undefined where the record store cannot count them. */
  liveSessions(): Promise<ReadonlyMap<string, number> | undefined>;
  /** Local folders to report the free space of: the state directory and the vdirs' folders. */
  folders(): readonly { readonly label: string; readonly path: string }[];
}

const DURATIONS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The label of requests that matched no vdir. */
const NO_VDIR = '';

/**
 * The server's Prometheus metrics, on a registry of its own (two servers in one process do not
 * mix). Request metrics are read off each request's log line ({@link Metrics.request}), so that
 * what is counted is what is logged; labels are bounded (vdir paths as configured, packet types,
 * statuses, HRESULTs), never session ids or request paths.
 *
 * @example
 * ```ts
 * const metrics = new Metrics(sources);
 * metrics.request(fields);
 * const text = await metrics.registry.metrics();
 * ```
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly packets: Counter<'vdir' | 'type' | 'status'>;
  private readonly bytes: Counter<'vdir'>;
  private readonly committed: Counter<'vdir'>;
  private readonly errors: Counter<'vdir' | 'hresult'>;
  private readonly authFailures: Counter<'vdir' | 'reason'>;
  private readonly fragmentSeconds: Histogram<'vdir'>;
  private readonly commitSeconds: Histogram<'vdir'>;
  private readonly notificationSeconds: Histogram<'vdir'>;
  private readonly notificationFailures: Counter<'vdir'>;

  /** False: nothing is counted (no admin listener is configured, so no one could read them). */
  readonly enabled: boolean;

  constructor(sources: MetricSources, options: { enabled?: boolean } = {}) {
    this.enabled = options.enabled ?? true;
    const registers = [this.registry];
    this.packets = new Counter({ name: 'bits_packets_total', help: 'BITS packets answered, by vdir, packet type and status', labelNames: ['vdir', 'type', 'status'], registers });
    this.bytes = new Counter({ name: 'bits_bytes_received_total', help: 'Upload bytes written and acknowledged', labelNames: ['vdir'], registers });
    this.committed = new Counter({ name: 'bits_uploads_committed_total', help: 'Uploads placed at their destination by Close-Session', labelNames: ['vdir'], registers });
    this.errors = new Counter({ name: 'bits_errors_total', help: 'Error Acks sent, by BITS-Error-Code', labelNames: ['vdir', 'hresult'], registers });
    this.authFailures = new Counter({ name: 'bits_auth_failures_total', help: 'Requests refused by authentication (challenge: 401; denied, not-allowed: 403)', labelNames: ['vdir', 'reason'], registers });
    this.fragmentSeconds = new Histogram({ name: 'bits_fragment_duration_seconds', help: 'Time from a Fragment request to its Ack', labelNames: ['vdir'], buckets: DURATIONS, registers });
    this.commitSeconds = new Histogram({ name: 'bits_commit_duration_seconds', help: 'Time of a Close-Session that committed an upload', labelNames: ['vdir'], buckets: DURATIONS, registers });
    this.notificationSeconds = new Histogram({ name: 'bits_notification_duration_seconds', help: 'Time the server application took to answer a notification', labelNames: ['vdir'], buckets: DURATIONS, registers });
    this.notificationFailures = new Counter({ name: 'bits_notification_failures_total', help: 'Notifications that failed (the application refused, timed out or was unreachable)', labelNames: ['vdir'], registers });
    new Gauge({
      name: 'bits_sessions_active',
      help: 'Live sessions, by vdir (in a farm: on all nodes)',
      labelNames: ['vdir'],
      registers,
      async collect() {
        this.reset();
        const live = await sources.liveSessions();
        for (const [vdir, n] of live ?? []) this.set({ vdir }, n);
      },
    });
    new Gauge({
      name: 'bits_free_bytes',
      help: 'Free space available to the server in its local folders (state directory, vdir folders)',
      labelNames: ['folder'],
      registers,
      async collect() {
        this.reset();
        for (const { label, path } of sources.folders()) {
          const fs = await statfs(path).catch(() => undefined);
          if (fs) this.set({ folder: label }, fs.bavail * fs.bsize);
        }
      },
    });
    if (this.enabled) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one BITS request from the fields of its log line. */
  request(fields: Readonly<RequestLogFields>): void {
    if (!this.enabled || fields.packet === undefined) return; // (downloads and refused methods are not packets)
    const vdir = fields.vdir ?? NO_VDIR;
    this.packets.inc({ vdir, type: fields.packet, status: String(fields.status ?? 'none') });
    if (fields.bytes) this.bytes.inc({ vdir }, fields.bytes);
    if (fields.error) this.errors.inc({ vdir, hresult: fields.error });
    const seconds = (fields.ms ?? 0) / 1000;
    if (fields.packet === 'Fragment' && fields.status === 200) this.fragmentSeconds.observe({ vdir }, seconds);
    if (fields.committed) {
      this.committed.inc({ vdir });
      this.commitSeconds.observe({ vdir }, seconds);
    }
  }

  /** Counts a request refused by authentication. */
  authFailed(vdir: string, reason: AuthFailure): void {
    if (!this.enabled) return;
    this.authFailures.inc({ vdir, reason });
  }

  /** Records a notification of the server application, and whether it failed. */
  notified(vdir: string, seconds: number, failed: boolean): void {
    if (!this.enabled) return;
    this.notificationSeconds.observe({ vdir }, seconds);
    if (failed) this.notificationFailures.inc({ vdir });
  }
}
