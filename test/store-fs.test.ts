// The filesystem stores run the store compliance suites, as any other implementation would.
import assert from 'node:assert/strict';
import { mkdir, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSessionId, sessionKey } from '../src/protocol/session-id.js';
// Through the bits-upload/store entry, as a user of the package gets them.
import { FsByteStore, FsDestinationStore, FsRecordStore } from '../src/store/index.js';
import {
  byteStoreCompliance,
  destinationStoreCompliance,
  localPathsCompliance,
  recordStoreCompliance,
  replyStoreCompliance,
  sampleRecord,
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

describe('FsDestinationStore.resolve: confinement through symlinks', () => {
  const refused = (code: string) => (err: unknown) => (err as { code?: string }).code === code;

  it('names inside the folder, through links that stay inside, resolve; links that lead out, dangle or pass a file are refused', async () => {
    const dir = await tempDir('bits-dest-');
    try {
      const root = join(dir.path, 'up');
      const outside = join(dir.path, 'outside');
      await mkdir(join(root, 'sub', 'deeper'), { recursive: true });
      await mkdir(outside);
      await writeFile(join(root, 'file.txt'), 'x');
      await writeFile(join(outside, 'secret.txt'), 'x');
      await symlink(join(root, 'sub'), join(root, 'inner'));
      await symlink(outside, join(root, 'out'));
      await symlink(join(outside, 'secret.txt'), join(root, 'secret-link'));
      await symlink(join(root, 'nowhere'), join(root, 'dangling'));
      await symlink(join(root, 'nowhere'), join(root, 'sub', 'dangling-dir'));
      const store = new FsDestinationStore(root);

      assert.equal(await store.resolve(['new.bin']), join(root, 'new.bin'));
      assert.equal(await store.exists(['new.bin']), false);
      assert.equal(await store.exists(['file.txt']), true);
      assert.equal(await store.resolve(['sub', 'deeper', 'a', 'b.bin']), join(root, 'sub', 'deeper', 'a', 'b.bin'), 'folders not there yet');
      assert.equal(await store.resolve(['inner', 'x.bin']), join(root, 'inner', 'x.bin'), 'a link that stays inside');

      await assert.rejects(store.resolve(['out', 'x.bin']), refused('BITS_BAD_PATH'), 'a parent link to the outside');
      await assert.rejects(store.resolve(['out', 'new', 'x.bin']), refused('BITS_BAD_PATH'), 'below a parent link to the outside, folders not there yet');
      await assert.rejects(store.exists(['out', 'secret.txt']), refused('BITS_BAD_PATH'), 'exists says nothing of the outside');
      await assert.rejects(store.resolve(['secret-link']), refused('BITS_BAD_PATH'), 'the target itself a link to the outside');
      await assert.rejects(store.resolve(['dangling']), refused('BITS_BAD_PATH'), 'a dangling link at the target');
      await assert.rejects(store.resolve(['sub', 'dangling-dir', 'x.bin']), refused('BITS_BAD_PATH'), 'a dangling link on the way');
      await assert.rejects(store.resolve(['file.txt', 'x.bin']), refused('BITS_BAD_PATH'), 'a file as a folder');
      await assert.rejects(store.resolve(['sub']), refused('BITS_DESTINATION_IS_DIRECTORY'));

    } finally {
      await dir.cleanup();
    }
  });

  it('the root\'s real path is kept only while the root is that folder: re-pointed, its old folder is outside', async () => {
    const dir = await tempDir('bits-dest-');
    try {
      const [a, b, current] = ['a', 'b', 'current'].map((n) => join(dir.path, n)) as [string, string, string];
      await mkdir(a);
      await mkdir(b);
      await writeFile(join(a, 'file.txt'), 'x');
      await symlink(a, current);
      const store = new FsDestinationStore(current);
      assert.equal(await store.exists(['file.txt']), true);
      // A release switch: the vdir's folder is a link, moved to the next folder.
      await rename(current, join(dir.path, 'old-link'));
      await symlink(b, current);
      await symlink(join(a, 'file.txt'), join(b, 'back'));
      assert.equal(await store.exists(['file.txt']), false, 'names resolve in the new folder');
      await assert.rejects(store.resolve(['back']), refused('BITS_BAD_PATH'), 'the old folder is outside the vdir now');
    } finally {
      await dir.cleanup();
    }
  });

  it('the same folder moved and its link re-pointed (a release renamed): names below it still resolve', async () => {
    const dir = await tempDir('bits-dest-');
    try {
      const current = join(dir.path, 'current');
      await mkdir(join(dir.path, 'r1', 'sub'), { recursive: true });
      await symlink(join(dir.path, 'r1'), current);
      const store = new FsDestinationStore(current);
      assert.equal(await store.resolve(['sub', 'x.bin']), join(current, 'sub', 'x.bin'));
      // The folder itself (same inode) renamed, the link moved with it.
      await rename(join(dir.path, 'r1'), join(dir.path, 'r2'));
      await rename(current, join(dir.path, 'old-link'));
      await symlink(join(dir.path, 'r2'), current);
      assert.equal(await store.resolve(['sub', 'x.bin']), join(current, 'sub', 'x.bin'));
    } finally {
      await dir.cleanup();
    }
  });

  it('a folder that does not exist yet resolves names below it', async () => {
    const dir = await tempDir('bits-dest-');
    try {
      const store = new FsDestinationStore(join(dir.path, 'later', 'up'));
      assert.equal(await store.resolve(['a', 'b.bin']), join(dir.path, 'later', 'up', 'a', 'b.bin'));
      assert.equal(await store.exists(['a', 'b.bin']), false);
    } finally {
      await dir.cleanup();
    }
  });
});

describe('FsRecordStore.delete', () => {
  it('removes a session folder that still holds other files than its record', async () => {
    const dir = await tempDir('bits-records-');
    try {
      const records = new FsRecordStore(dir.path);
      const record = sampleRecord();
      await records.create(record);
      const folder = join(dir.path, 'sessions', sessionKey(record.id));
      await writeFile(join(folder, 'left-behind.bin'), 'x');
      await records.delete(record.id);
      await assert.rejects(readdir(folder), { code: 'ENOENT' });
      assert.equal(await records.get(record.id), undefined);
    } finally {
      await dir.cleanup();
    }
  });
});
