// 50 concurrent uploads of 20 MB each complete byte-identical.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { uploadAll } from './helpers/upload.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('concurrency', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.stop());

  it('50 concurrent uploads of 20 MB each', { timeout: 300_000 }, async () => {
    const base = randomBytes(20 * 1024 * 1024);
    // Each upload differs (its index stamped at the front) so mix-ups between sessions show.
    const files = Array.from({ length: 50 }, (_, i) => {
      const b = Buffer.from(base);
      b.writeUInt32BE(i, 0);
      b.writeUInt32BE(i, b.length - 4);
      return b;
    });
    await Promise.all(files.map((data, i) => uploadAll(t.port, `/up/c${i}.bin`, data, 4 * 1024 * 1024)));
    for (let i = 0; i < files.length; i++) {
      assert.equal(sha(await readFile(join(t.uploads, `c${i}.bin`))), sha(files[i]!), `c${i}.bin differs`);
    }
  });
});
