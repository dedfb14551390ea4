// Failed Basic logins must cost the same for unknown users as for wrong passwords (no user
// enumeration by timing). 200 tries of each, interleaved, against a real server over loopback.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { BitsServer } from '../src/server/bits-server.js';
import { parseConfig } from '../src/server/config.js';
import { RawConnection, bitsRequestBytes } from '../test/helpers/raw-http.js';

const TRIES = Number(process.env['AUTH_TRIES'] ?? 200);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const dir = await mkdtemp(join(tmpdir(), 'bits-auth-bench-'));
const users = join(dir, 'users.json');
spawnSync(process.execPath, [CLI, 'user', 'add', 'alice', '--users', users], { input: 'correct horse battery\n' });
const config = parseConfig(
  {
    listen: { host: '127.0.0.1', port: 0 },
    stateDir: join(dir, 'state'),
    vdirs: [{ path: '/up', directory: join(dir, 'up'), auth: { schemes: ['basic'], users, allowInsecureBasic: true } }],
  },
  dir,
);
const server = new BitsServer(config, { logger: pino({ level: 'silent' }) });
const { port } = await server.listen();
const conn = await RawConnection.connect(port);

async function attempt(user: string, password: string): Promise<number> {
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const started = process.hrtime.bigint();
  await conn.write(bitsRequestBytes({ type: 'Ping', path: '/up/x', headers: { Authorization: auth } }));
  const res = await conn.read();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (res.status !== 401) throw new Error(`expected 401, got ${res.status}`);
  return ms;
}

const unknown: number[] = [];
const wrong: number[] = [];
await attempt('warm-up', 'x');
for (let i = 0; i < TRIES; i++) {
  // interleaved, so drift of the machine affects both alike
  unknown.push(await attempt(`user${i}`, `guess${i}`));
  wrong.push(await attempt('alice', `guess${i}`));
}
conn.close();
await server.close(1000);
await rm(dir, { recursive: true, force: true });

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const mu = mean(unknown);
const mw = mean(wrong);
const diff = Math.abs(mu - mw) / Math.max(mu, mw);
console.log(`failed Basic logins, ${TRIES} tries each (ms per try):`);
console.log(`  unknown user:    mean ${mu.toFixed(2)}  median ${median(unknown).toFixed(2)}`);
console.log(`  wrong password:  mean ${mw.toFixed(2)}  median ${median(wrong).toFixed(2)}`);
console.log(`  difference of means: ${(diff * 100).toFixed(1)}%  (target < 10%: ${diff < 0.1 ? 'PASS' : 'MISS'})`);
