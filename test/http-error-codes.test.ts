// The engine's error table against the README and the source: every HTTP_* code is documented in
// the README's "HTTP engine error codes" table, every code documented there exists, and every code
// is used somewhere in src/http (a code nothing raises is dead and misleads a log reader).
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { HTTP_ERRORS } from '../src/http/errors.js';

const root = new URL('../../', import.meta.url);
const codes = Object.keys(HTTP_ERRORS);

async function readmeSection(): Promise<string> {
  const readme = await readFile(new URL('README.md', root), 'utf8');
  const start = readme.indexOf('### HTTP engine error codes');
  assert.ok(start !== -1, 'the README has an "HTTP engine error codes" section');
  const end = readme.indexOf('\n#', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

describe('HTTP engine error codes', () => {
  it('the README table lists every code of HTTP_ERRORS, and no other', async () => {
    const rows = (await readmeSection()).split('\n').filter((line) => line.startsWith('| `'));
    // (the first cell of each row: one code or several)
    const documented = new Set(rows.flatMap((row) => row.split('|')[1]!.match(/`HTTP_[A-Z_]+`/g) ?? []).map((c) => c.slice(1, -1)));
    assert.deepEqual([...documented].filter((c) => !codes.includes(c)), [], 'documented but not in HTTP_ERRORS');
    assert.deepEqual(codes.filter((c) => !documented.has(c)), [], 'in HTTP_ERRORS but not documented');
  });

  it('every code is raised somewhere in src/http besides the table', async () => {
    const dir = new URL('src/http/', root);
    let source = '';
    for (const name of await readdir(dir)) {
      if (name.endsWith('.ts') && name !== 'errors.ts') source += await readFile(new URL(name, dir), 'utf8');
    }
    assert.deepEqual(codes.filter((c) => !source.includes(`'${c}'`)), [], 'codes nothing raises');
  });
});
