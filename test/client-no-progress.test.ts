// The client's no-progress clock (§7.2 NoProgressTimeout, DESIGN principle 6: time limits are idle
// limits): what counts as a sign of life while a request is in flight, what only the job's clock
// (acknowledged or received bytes) decides, and what the limit must never hide or cost.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import { randomFile } from './helpers/client-files.js';
import { startFakeBitsServer } from './helpers/fake-bits-server.js';

describe('the no-progress clock', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-no-progress-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `p${n++}.bin`;
    const file = join(dir, name);
    const sha = await randomFile(file, size);
    return { name, file, sha };
  };

  it('costs nothing per step: the job signal gathers no dependants however many steps run', async () => {
    const server = await startFakeBitsServer();
    try {
      const f = await fresh(60 * 5120);
      const job = upload({ file: f.file, url: `http://127.0.0.1:${server.port}/up/${f.name}`, fragmentSize: 5120, stateDir: false, noProgressTimeoutMs: 60_000 });
      await job.result;
      // White-box, on purpose: Node 20 keeps a WeakRef per AbortSignal.any call in the source signal
      // (kDependantSignals) for the source's whole life, about 65 bytes a step for a long job.
      const signal = (job as unknown as { abort: AbortController }).abort.signal as unknown as Record<symbol, unknown>;
      const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
      const dependants = key === undefined ? undefined : (signal[key] as Set<unknown> | undefined);
      assert.ok((dependants?.size ?? 0) < 5, `${dependants?.size} dependants after 60 fragments`);
    } finally {
      await server.close();
    }
  });
});
