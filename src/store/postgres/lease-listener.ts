import pg from 'pg';
import type { Logger } from 'pino';

/** Options of {@link LeaseListener}. */
export interface LeaseListenerOptions {
  /** Connection settings of the dedicated (unpooled) connection that LISTENs. */
  readonly connection: pg.ClientConfig;
  /** The NOTIFY channel. */
  readonly channel: string;
  /** Called with each notification's payload. */
  readonly onNotify: (payload: string) => void;
  /** Called after every reconnect (not the first connect): notifications may have been missed meanwhile. */
  readonly onReconnect: () => void;
  readonly logger?: Logger | undefined;
  /** Backoff bounds of reconnects, ms (default 100 … 5000, doubling). */
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
}

/**
 * Keeps one connection LISTENing on a channel and hands each notification on. When the
 * connection drops it reconnects by itself with bounded exponential backoff (for as long as it is
 * not closed), and says so through `onReconnect` so the owner can check what it may have missed.
 *
 * @example
 * ```ts
 * const listener = new LeaseListener({ connection: { connectionString: url }, channel: 'bits_leases:public',
 *   onNotify: (p) => console.log(p), onReconnect: () => recheck() });
 * await listener.start();
 * // …
 * await listener.close();
 * ```
 */
export class LeaseListener {
  private client: pg.Client | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private backoff: number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private connectedOnce = false;

  constructor(private readonly options: LeaseListenerOptions) {
    this.minBackoff = options.minBackoffMs ?? 100;
    this.maxBackoff = options.maxBackoffMs ?? 5000;
    this.backoff = this.minBackoff;
  }

  /** Whether the connection is up and listening. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and LISTENs; rejects when the first attempt fails (nothing is retried then). */
  async start(): Promise<void> {
    await this.connect();
  }

  /** Stops listening and reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.options.connection);
    let dropped = false;
    const drop = (err?: Error): void => {
      if (dropped) return;
      dropped = true;
      // only a connection that was up is reconnected here; a failing connect() is its caller's to retry
      const wasUp = this.client === client;
      if (wasUp) this.client = undefined;
      client.end().catch(() => undefined);
      if (this.closed || !wasUp) return;
      this.options.logger?.warn({ err }, 'the PostgreSQL lease listener lost its connection; reconnecting');
      this.schedule();
    };
    client.on('error', drop);
    client.on('end', () => drop());
    client.on('notification', (msg) => {
      if (msg.channel === this.options.channel && msg.payload !== undefined) this.options.onNotify(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.options.channel)}`);
    } catch (err) {
      dropped = true;
      client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.backoff = this.minBackoff;
    if (this.connectedOnce) this.options.onReconnect();
    this.connectedOnce = true;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this.timer = setTimeout(() => {
      this.connect().catch((err: unknown) => {
        if (this.closed) return;
        this.options.logger?.debug({ err }, 'the PostgreSQL lease listener could not reconnect yet');
        this.schedule();
      });
    }, delay);
    this.timer.unref();
  }
}
