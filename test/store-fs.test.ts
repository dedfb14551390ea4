import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsByteStore } from '../src/store/fs/fs-byte-store.js';
import { FsRecordStore } from '../src/store/fs/fs-record-store.js';
import { storeCompliance } from './helpers/store-compliance.js';

storeCompliance('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bits-store-'));
  return {
    records: new FsRecordStore(dir),
    bytes: new FsByteStore(dir),
    reopen: async () => ({ records: new FsRecordStore(dir), bytes: new FsByteStore(dir) }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
