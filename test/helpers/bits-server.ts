import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { BitsServer } from '../../src/server/bits-server.js';
import type { BitsServerOptions } from '../../src/server/bits-server.js';
import { parseConfig } from '../../src/server/config.js';
import type { ServerConfigInput } from '../../src/server/config.js';
import { BITS_PROTOCOL_GUID } from '../../src/protocol/constants.js';
import { RawConnection, bitsRequestBytes } from './raw-http.js';
import type { BitsRequest, RawResponse } from './raw-http.js';

type VdirInput = ServerConfigInput['vdirs'][number];

/** A running in-process server on a loopback port with its own temp folders. */
export interface TestServer {
  server: BitsServer;
  port: number;
  /** Stops the server and starts a new one on the same configuration, state and port. */
  restart(): Promise<void>;
  root: string;
  uploads: string;
  stateDir: string;
  /** Sends one request on a fresh connection and reads the answer. */
  request(r: BitsRequest): Promise<RawResponse>;
  /** Creates a session on `path`, returns its id. */
  createSession(path: string): Promise<string>;
  connect(): Promise<RawConnection>;
  stop(): Promise<void>;
}

/**
 * Starts a BitsServer with one vdir `/up` → `<tmp>/uploads` (override with `vdir`) and
 * extra config, on 127.0.0.1 and an ephemeral port.
 */
export async function startServer(
  options: {
    vdir?: Partial<VdirInput>;
    vdirs?: VdirInput[];
    config?: Partial<ServerConfigInput>;
    hooks?: BitsServerOptions['hooks'];
    authenticate?: BitsServerOptions['authenticate'];
  } = {},
): Promise<TestServer> {
  const root = await mkdtemp(join(tmpdir(), 'bits-test-'));
  const uploads = join(root, 'uploads');
  const stateDir = join(root, 'state');
  await mkdir(uploads, { recursive: true });
  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      stateDir,
      vdirs: options.vdirs ?? [{ path: '/up', directory: uploads, ...options.vdir }],
      ...options.config,
    },
    root,
  );
  const make = () =>
    new BitsServer(config, { logger: pino({ level: process.env['BITS_TEST_LOG'] ?? 'silent' }), hooks: options.hooks, authenticate: options.authenticate });
  const server = make();
  const { port } = await server.listen();
  const t: TestServer = {
    server,
    port,
    async restart() {
      await t.server.close(1000);
      config.listen.port = t.port; // clients come back to the same address
      t.server = make();
      t.port = (await t.server.listen()).port;
    },
    root,
    uploads,
    stateDir,
    async request(r) {
      const c = await RawConnection.connect(t.port);
      try {
        await c.write(bitsRequestBytes(r));
        return await c.read();
      } finally {
        c.close();
      }
    },
    async createSession(path) {
      const res = await t.request({
        type: 'Create-Session',
        path,
        headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID, 'Content-Name': 'a.bin' },
      });
      const id = res.headers['bits-session-id'];
      if (res.status !== 200 || !id) throw new Error(`Create-Session failed: ${res.status} ${JSON.stringify(res.headers)}`);
      return id;
    },
    connect: () => RawConnection.connect(t.port),
    async stop() {
      await t.server.close(1000);
      await rm(root, { recursive: true, force: true });
    },
  };
  return t;
}

/** A fragment request for `body` at `first` of a `total`-byte file. */
export function fragmentRequest(path: string, sessionId: string, first: number, body: Buffer, total: number): BitsRequest {
  return {
    type: 'Fragment',
    path,
    sessionId,
    headers: { 'Content-Range': `bytes ${first}-${first + body.length - 1}/${total}`, 'Content-Name': 'a.bin' },
    body,
  };
}
