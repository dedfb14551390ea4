// The filesystem stores run the store compliance suites, as any other implementation would.
import assert from 'node:assert/strict';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId } from '../src/protocol/session-id.js';
// Through the bits-upload/store entry, as a user of the package gets them.
import { FsByteStore, FsDestinationStore, FsRecordStore } from '../src/store/index.js';
import {
  byteStoreCompliance,
  destinationStoreCompliance,
  localPathsCompliance,
  recordStoreCompliance,
  replyStoreCompliance,
} from '../src/store/testing/index.js';
import type { MakeByteStore, MakeDestinationStore, MakeStore } from '../src/store/testing/index.js';
import { tempDir } from './helpers/temp-dir.js';

/** A store over a fresh state directory; `reopen` is a new instance over the same directory. */
function inStateDir<S>(open: (stateDir: string) => S): MakeStore<S> {
  return async () => {
    const dir = await tempDir('bits-store-');
    return { store: open(dir.path), reopen: async () => open(dir.path), cleanup: dir.cleanup };
  };
}

/** A byte store over a fresh state directory, committing into a fresh folder beside it. */
const bytes: MakeByteStore = async () => {
  const dir = await tempDir('bits-store-');
  await mkdir(join(dir.path, 'state'));
  await mkdir(join(dir.path, 'uploads'));
  const destinations = new FsDestinationStore(join(dir.path, 'uploads'));
  return {
    store: new FsByteStore(join(dir.path, 'state')),
    reopen: async () => new FsByteStore(join(dir.path, 'state')),
    destinations,
    cleanup: dir.cleanup,
  };
};

/** A local folder with files placed behind its back. */
const folder: MakeDestinationStore = async () => {
  const dir = await tempDir('bits-dest-');
  return {
    store: new FsDestinationStore(dir.path),
    reopen: async () => new FsDestinationStore(dir.path),
    put: async (path, content) => {
      await mkdir(join(dir.path, ...path.slice(0, -1)), { recursive: true });
      // (replaced as a commit replaces a file: a new file renamed over the old one)
      await writeFile(join(dir.path, '.put.tmp'), content);
      await rename(join(dir.path, '.put.tmp'), join(dir.path, ...path));
    },
    cleanup: dir.cleanup,
  };
};

recordStoreCompliance(inStateDir((dir) => new FsRecordStore(dir)), 'FsRecordStore');
byteStoreCompliance(bytes, 'FsByteStore');
replyStoreCompliance(bytes, 'FsByteStore');
localPathsCompliance(bytes, 'FsByteStore');
destinationStoreCompliance(folder, 'FsDestinationStore');

describe('FsByteStore, beyond the contract', () => {
  it('a reply whose source fails leaves no temp file in the session folder', async () => {
    const dir = await tempDir('bits-store-');
    try {
      const store = new FsByteStore(dir.path);
      const id = newSessionId();
      const upload = { id, destination: join(dir.path, 'x.bin'), bytes: undefined };
      await store.open(id, { destinations: new FsDestinationStore(dir.path), path: ['x.bin'] });
      const input = new PassThrough();
      const writing = store.writeReply(upload, input);
      input.write('half');
      await sleep(20);
      input.destroy(new Error('application went away'));
      await assert.rejects(writing, /application went away/);
      assert.deepEqual(await readdir(dirname(store.local.dataPath(upload)!)), ['data.bin']);
    } finally {
      await dir.cleanup();
    }
  });
});
