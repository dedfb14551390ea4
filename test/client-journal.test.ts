// What the client job commands accept: fragment sizes Windows would send.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { upload } from '../src/client/upload.js';
import { runCli } from './helpers/cli-run.js';
import { journaledJobs, randomFile } from './helpers/client-files.js';

describe('the client journal and the job commands', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-journal-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (size: number) => {
    const name = `j${n++}.bin`;
    const file = join(dir, name);
    await randomFile(file, size);
    return { name, file, data: await readFile(file), stateDir: join(dir, `state-${name}`) };
  };

  it('--fragment-size below 5 KiB is a usage error naming the flag (exit 2); the library refuses it too', async () => {
    const f = await fresh(10);
    for (const size of ['5119', '1', '0']) {
      const r = await runCli(['upload', f.file, 'http://127.0.0.1:9/up/a.bin', '--state-dir', f.stateDir, '--fragment-size', size]);
      assert.equal(r.code, 2, `${size}: ${r.stderr}`);
      assert.match(r.stderr, /--fragment-size must be a whole number of bytes >= 5120/);
    }
    assert.deepEqual(await journaledJobs(f.stateDir), [], 'nothing journaled');
    assert.throws(() => upload({ file: f.file, url: 'http://127.0.0.1:9/up/a.bin', fragmentSize: 5119, stateDir: false }), /fragmentSize must be an integer >= 5120/);
  });
});
