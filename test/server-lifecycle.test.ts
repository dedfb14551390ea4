import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { BitsServer } from '../src/server/bits-server.js';
import { parseConfig } from '../src/server/config.js';
import { StateDirInUseError } from '../src/store/fs/state-dir-lock.js';

const logger = pino({ level: 'silent' });

describe('BitsServer lifecycle: start, listen, stop, close', () => {
  let root: string;
  const make = (name: string, port = 0): BitsServer =>
    new BitsServer(
      parseConfig({ listen: { host: '127.0.0.1', port }, stateDir: join(root, name, 'state'), vdirs: [{ path: '/up', directory: join(root, name, 'up') }] }, root),
      { logger },
    );
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'bits-lifecycle-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('start() twice is refused; stop() releases the state directory for the next server', async () => {
    const first = make('a');
    await first.start();
    await assert.rejects(first.start(), /already started/);
    await assert.rejects(make('a').start(), StateDirInUseError);
    await first.stop();
    await first.stop(); // (a second stop is harmless)
    const next = make('a');
    await next.start();
    await next.close(); // close() without a listener is stop()
  });

  it('a listen() that fails (port in use) leaves nothing claimed', async () => {
    const holder = make('b');
    const { port } = await holder.listen();
    try {
      const clash = make('c', port);
      await assert.rejects(clash.listen(), /EADDRINUSE/);
      // Its state directory is free again: another server takes it at once.
      const after = make('c');
      await after.start();
      await after.stop();
    } finally {
      await holder.close(1000);
    }
  });
});
