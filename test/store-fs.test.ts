// The filesystem stores run the store compliance suites, as any other implementation would.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId } from '../src/protocol/session-id.js';
// Through the bits-upload/store entry, as a user of the package gets them.
import { FsByteStore, FsRecordStore } from '../src/store/index.js';
import { byteStoreCompliance, localPathsCompliance, recordStoreCompliance, replyStoreCompliance } from '../src/store/testing/index.js';
import type { MakeStore } from '../src/store/testing/index.js';
import { tempDir } from './helpers/temp-dir.js';

/** A store over a fresh state directory; `reopen` is a new instance over the same directory. */
function inStateDir<S>(open: (stateDir: string) => S): MakeStore<S> {
  return async () => {
    const dir = await tempDir('bits-store-');
    return { store: open(dir.path), reopen: async () => open(dir.path), cleanup: dir.cleanup };
  };
}

recordStoreCompliance(inStateDir((dir) => new FsRecordStore(dir)), 'FsRecordStore');
const bytes = inStateDir((dir) => new FsByteStore(dir));
byteStoreCompliance(bytes, 'FsByteStore');
replyStoreCompliance(bytes, 'FsByteStore');
localPathsCompliance(bytes, 'FsByteStore');

describe('FsByteStore, beyond the contract', () => {
  it('a reply whose source fails leaves no temp file in the session folder', async () => {
    const dir = await tempDir('bits-store-');
    try {
      const store = new FsByteStore(dir.path);
      const id = newSessionId();
      await store.open(id);
      const input = new PassThrough();
      const writing = store.writeReply(id, input);
      input.write('half');
      await sleep(20);
      input.destroy(new Error('application went away'));
      await assert.rejects(writing, /application went away/);
      assert.deepEqual(await readdir(dirname(store.localPath(id)!)), ['data.bin']);
    } finally {
      await dir.cleanup();
    }
  });
});
