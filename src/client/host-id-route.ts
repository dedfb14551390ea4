import type { AckInfo } from '../protocol/ack-info.js';
import { hostIdUrl } from '../protocol/host-id.js';
import type { UploadRecord } from './journal.js';

/** The journaled Host-Id state of an upload (spec §8), kept in its {@link UploadRecord}. */
export type HostIdState = Pick<UploadRecord, 'sessionId' | 'hostId' | 'hostIdFallbackTimeoutMs' | 'failedHostIds'>;

/** What {@link HostIdRoute.adopt} did with the `BITS-Host-Id` of a Create-Session Ack. */
export type AdoptOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'adopted'; readonly hostId: string; readonly url: URL }
  /** The value names no host: the session stays at the upload URL. */
  | { readonly kind: 'ignored'; readonly hostId: string };

/**
 * Where the packets of an upload session go (spec §8): to the upload URL, or to the host a
 * Create-Session Ack named in `BITS-Host-Id` until that host has failed for longer than
 * `BITS-Host-Id-Fallback-Timeout`. Then the route falls back to the upload URL and never takes that
 * Host-Id again in this job. Owns the failing-since clock; the Host-Id itself, its timeout and the
 * Host-Ids given up on live in the journaled `state`.
 *
 * @example
 * ```ts
 * const route = new HostIdRoute(new URL(record.url), record, (u) => transport.trust(u));
 * route.adopt(ack, route.origin);          // after Create-Session
 * await transport.send({ url: route.url(), ... });
 * route.failed(err.url, Date.now());       // a transient error
 * const fell = route.fallbackDue(Date.now()); // before the next step
 * ```
 */
export class HostIdRoute {
  private hostUrl: URL | undefined;
  /** When the Host-Id host started failing (no success since); `undefined` while it answers. */
  private failingSince: number | undefined;

  /**
   * @param origin the upload URL: Create-Session goes there, and every packet when no Host-Id is in use
   * @param state the journaled fields; a resumed session with a Host-Id goes on at that host
   * @param trust lets credentials and custom headers go to a Host-Id host
   */
  constructor(
    readonly origin: URL,
    private readonly state: HostIdState,
    private readonly trust: (url: URL) => void,
  ) {
    if (state.sessionId !== undefined && state.hostId !== undefined) {
      this.hostUrl = hostIdUrl(origin, state.hostId);
      if (this.hostUrl) trust(this.hostUrl);
    }
  }

  /** Where session packets go: the Host-Id host while one is in use, else the upload URL. */
  url(): URL {
    return this.hostUrl ?? this.origin;
  }

  /** Whether packets go to a Host-Id host. */
  get active(): boolean {
    return this.hostUrl !== undefined;
  }

  /**
   * Takes the `BITS-Host-Id` of a new session's Create-Session Ack (sent to `sentTo`): forgets the
   * previous session's Host-Id, and routes later packets to the new one unless it was given up on
   * before or names no host.
   */
  adopt(ack: AckInfo, sentTo: URL): AdoptOutcome {
    const s = this.state;
    s.hostId = undefined;
    s.hostIdFallbackTimeoutMs = undefined;
    this.hostUrl = undefined;
    this.failingSince = undefined;
    const hostId = ack.hostId;
    if (hostId === undefined || (s.failedHostIds ?? []).includes(hostId)) return { kind: 'none' };
    const url = hostIdUrl(sentTo, hostId);
    if (!url) return { kind: 'ignored', hostId };
    this.hostUrl = url;
    s.hostId = hostId;
    s.hostIdFallbackTimeoutMs = ack.hostIdFallbackTimeout === undefined ? undefined : ack.hostIdFallbackTimeout * 1000;
    this.trust(url);
    return { kind: 'adopted', hostId, url };
  }

  /** A request to `url` (an error's URL) failed transiently: the Host-Id host's clock starts. */
  failed(url: string | undefined, now: number): void {
    if (this.hostUrl && url !== undefined && new URL(url).origin === this.hostUrl.origin) this.failingSince ??= now;
  }

  /** A request to `url` was answered with success: the Host-Id host is well. */
  succeeded(url: URL): void {
    if (this.hostUrl && url.origin === this.hostUrl.origin) this.failingSince = undefined;
  }

  /**
   * Falls back to the upload URL when the Host-Id host has been failing for the whole fallback
   * timeout: the Host-Id joins the ones given up on. Returns the Host-Id given up on, if any.
   */
  fallbackDue(now: number): string | undefined {
    const timeout = this.state.hostIdFallbackTimeoutMs;
    if (!this.hostUrl || this.failingSince === undefined || timeout === undefined || now - this.failingSince < timeout) return undefined;
    const s = this.state;
    const hostId = s.hostId!;
    s.failedHostIds = [...new Set([...(s.failedHostIds ?? []), hostId])];
    s.hostId = undefined;
    this.hostUrl = undefined;
    this.failingSince = undefined;
    return hostId;
  }

  /** The longest a retry may wait: until the fallback falls due (`Infinity` when none is pending). */
  waitCapMs(now: number): number {
    const timeout = this.state.hostIdFallbackTimeoutMs;
    if (!this.hostUrl || this.failingSince === undefined || timeout === undefined) return Number.POSITIVE_INFINITY;
    return Math.max(0, this.failingSince + timeout - now);
  }
}
