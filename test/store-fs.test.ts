// The filesystem stores run the store compliance suites, as any other implementation would.
import { FsByteStore } from '../src/store/fs/fs-byte-store.js';
import { FsRecordStore } from '../src/store/fs/fs-record-store.js';
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
