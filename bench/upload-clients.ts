import { createHash } from 'node:crypto';
import net from 'node:net';
import { SocketReader } from '../test/helpers/socket-reader.js';

/** The one BITS upload protocol GUID (spec §3.2). */
const BITS_PROTOCOL = '{7df0354d-249b-430f-820d-3d2a9bef4931}';

/** What to upload: `total` bytes in fragments of at most `fragmentSize`, bytes given by `chunk`. */
export interface UploadPlan {
  total: number;
  fragmentSize: number;
  /** The bytes at `offset`..`offset+length-1` of the upload (a view, never a copy). */
  chunk(offset: number, length: number): Buffer;
}

/** The outcome of one upload, as the client saw it. */
export interface UploadResult {
  bytes: number;
  /** Wall time of the whole exchange, connect to last answer. */
  ms: number;
  /** sha256 (hex) of every byte sent, computed while sending. */
  sha256: string;
  /** Time from writing each fragment to receiving its Ack, in ms. */
  fragmentMs: number[];
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

const now = (): number => performance.now();

/**
 * One keep-alive connection to a BITS server, for uploads one after another (the intake case:
 * many small files over a few connections). Each upload is Create-Session, Fragments (each waits
 * for its Ack, like Windows), Close-Session; any unexpected answer throws.
 *
 * @example
 * ```ts
 * const conn = await BitsConnection.open(port);
 * try {
 *   for (const name of names) await conn.upload(`/${name}`, plan);
 * } finally {
 *   conn.close();
 * }
 * ```
 */
export class BitsConnection {
  private readonly reader: SocketReader;
  private readonly extraLines: string;

  private constructor(
    private readonly socket: net.Socket,
    private readonly port: number,
    extraHeaders: Readonly<Record<string, string>>,
  ) {
    this.reader = new SocketReader(socket);
    this.extraLines = Object.entries(extraHeaders).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  }

  /** Connects to 127.0.0.1:`port`; `extraHeaders` go on every request (credentials). */
  static async open(port: number, extraHeaders: Readonly<Record<string, string>> = {}): Promise<BitsConnection> {
    return new BitsConnection(await connect(port), port, extraHeaders);
  }

  /** One whole upload on this connection; `ms` runs from its Create-Session to its Close's answer. */
  async upload(urlPath: string, plan: UploadPlan): Promise<UploadResult> {
    const started = now();
    const { socket } = this;
    const hash = createHash('sha256');
    const fragmentMs: number[] = [];
    const name = urlPath.slice(urlPath.lastIndexOf('/') + 1);
    const headOf = (type: string, extra: string): string =>
      `BITS_POST ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\nUser-Agent: bits-bench\r\n${this.extraLines}BITS-Packet-Type: ${type}\r\n${extra}`;
    const expect200 = async (what: string): Promise<Record<string, string>> => {
      const res = await this.reader.response({ skipInterim: true });
      if (res.status !== 200) {
        throw new Error(`${what} of ${urlPath}: HTTP ${res.status}, BITS-Error-Code ${res.headers['bits-error-code'] ?? '-'}`);
      }
      return res.headers;
    };
    socket.write(`${headOf('Create-Session', `BITS-Supported-Protocols: ${BITS_PROTOCOL}\r\nContent-Name: ${name}\r\n`)}Content-Length: 0\r\n\r\n`);
    const created = await expect200('Create-Session');
    const sessionId = created['bits-session-id'];
    if (!sessionId) throw new Error(`Create-Session of ${urlPath}: no BITS-Session-Id`);
    const session = `BITS-Session-Id: ${sessionId}\r\n`;
    for (let offset = 0; offset < plan.total; ) {
      const length = Math.min(plan.fragmentSize, plan.total - offset);
      const body = plan.chunk(offset, length);
      const head = headOf(
        'Fragment',
        `${session}Content-Name: ${name}\r\nContent-Range: bytes ${offset}-${offset + length - 1}/${plan.total}\r\nContent-Length: ${length}\r\n\r\n`,
      );
      const t = now();
      socket.cork();
      socket.write(head);
      socket.write(body);
      socket.uncork();
      // Hash while the server receives: the cost overlaps the transfer, as in the baseline.
      hash.update(body);
      const ack = await expect200(`Fragment at ${offset}`);
      fragmentMs.push(now() - t);
      offset += length;
      const received = Number(ack['bits-received-content-range']);
      if (received !== offset) throw new Error(`Fragment of ${urlPath}: Ack says ${received}, expected ${offset}`);
    }
    socket.write(`${headOf('Close-Session', session)}Content-Length: 0\r\n\r\n`);
    await expect200('Close-Session');
    return { bytes: plan.total, ms: now() - started, sha256: hash.digest('hex'), fragmentMs };
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }
}

/**
 * One upload through the full BITS protocol on a connection of its own ({@link BitsConnection});
 * `ms` runs from the connect to the last answer.
 *
 * @example
 * ```ts
 * const r = await bitsUpload(port, '/big.bin', { total, fragmentSize: 8 << 20, chunk: (o, n) => pool.subarray(0, n) });
 * // with credentials: bitsUpload(port, path, plan, { Authorization: 'Basic ...' })
 * ```
 */
export async function bitsUpload(port: number, urlPath: string, plan: UploadPlan, extraHeaders: Readonly<Record<string, string>> = {}): Promise<UploadResult> {
  const started = now();
  const conn = await BitsConnection.open(port, extraHeaders);
  try {
    const r = await conn.upload(urlPath, plan);
    return { ...r, ms: now() - started };
  } finally {
    conn.close();
  }
}

/**
 * Sends the same bytes to the raw sink (bench/raw-sink.ts): per chunk an 8-byte big-endian length
 * and the bytes, then waits for the sink's 1-byte ack; a zero length ends the upload. A sink that
 * takes many connections (`--dir`) is first sent the file's `name`, framed the same way.
 *
 * @example
 * ```ts
 * const r = await rawUpload(sinkPort, { total, fragmentSize: 8 << 20, chunk });
 * const s = await rawUpload(dirSinkPort, plan, 'conn-7.bin'); // lands in <dir>/conn-7.bin
 * ```
 */
export async function rawUpload(port: number, plan: UploadPlan, name?: string): Promise<UploadResult> {
  const started = now();
  const socket = await connect(port);
  const reader = new SocketReader(socket);
  const hash = createHash('sha256');
  const fragmentMs: number[] = [];
  const frame = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    return b;
  };
  try {
    if (name !== undefined) {
      const bytes = Buffer.from(name);
      socket.write(Buffer.concat([frame(bytes.length), bytes]));
    }
    for (let offset = 0; offset < plan.total; ) {
      const length = Math.min(plan.fragmentSize, plan.total - offset);
      const body = plan.chunk(offset, length);
      const t = now();
      socket.cork();
      socket.write(frame(length));
      socket.write(body);
      socket.uncork();
      hash.update(body);
      const ack = await reader.bytes(1);
      if (ack[0] !== 0x06) throw new Error(`raw sink answered ${ack[0]} for the chunk at ${offset}`);
      fragmentMs.push(now() - t);
      offset += length;
    }
    socket.write(frame(0));
    const ack = await reader.bytes(1);
    if (ack[0] !== 0x06) throw new Error(`raw sink answered ${ack[0]} at the end`);
  } finally {
    socket.destroy();
  }
  return { bytes: plan.total, ms: now() - started, sha256: hash.digest('hex'), fragmentMs };
}
