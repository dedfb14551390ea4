// One user-name rule for `bits user add` and for the users file the server reads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { USER_NAME, USER_NAME_RULE, readUsers } from '../src/server/auth/users-file.js';
import { CLI } from './helpers/cli.js';

const BAD_NAMES = ['a b', 'a:b', '', 'x'.repeat(129), 'tab\there'];
const GOOD_NAMES = ['alice', 'x'.repeat(128), 'DOMAIN\\bob', 'ünïcode'];

describe('user names', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bits-user-names-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the rule: 1 to 128 characters, no white space, no colon', () => {
    for (const name of BAD_NAMES) assert.ok(!USER_NAME.test(name), JSON.stringify(name));
    for (const name of GOOD_NAMES) assert.ok(USER_NAME.test(name), JSON.stringify(name));
  });

  it('bits user add refuses a bad name with exit 2 and the rule, and takes a good one', () => {
    const users = join(dir, 'users.json');
    for (const name of BAD_NAMES.filter((n) => n !== '')) {
      const r = spawnSync(process.execPath, [CLI, 'user', 'add', name, '--users', users], { input: 'long enough password\n', encoding: 'utf8' });
      assert.equal(r.status, 2, `${JSON.stringify(name)}: ${r.stderr}`);
      assert.equal(r.stderr, `bits user: ${USER_NAME_RULE}\n`);
    }
    const ok = spawnSync(process.execPath, [CLI, 'user', 'add', GOOD_NAMES[1]!, '--users', users], { input: 'long enough password\n', encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('a users file with a bad name is refused by the same rule', async () => {
    const file = join(dir, 'bad-users.json');
    await writeFile(file, JSON.stringify({ users: { 'a:b': { hash: 'scrypt$x', groups: [] } } }));
    await assert.rejects(readUsers(file), (err: Error) => err.message.includes(`a:b: ${USER_NAME_RULE}`));
  });
});
