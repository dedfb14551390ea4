import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERRORS } from '../src/protocol/errors.js';
import { formatHresult } from '../src/protocol/hresult.js';

/** The repository root (tests run from `dist/test/`). */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The rows of the first Markdown table under a heading (`### Error codes`), each as its cells keyed
 * by the table's column names; backticks around a cell are removed. For any code table of the
 * README (server, client, engine): the table ends at the first line that is not a table row.
 *
 * @example
 * ```ts
 * const rows = readTable(readme, 'Error codes');
 * rows[0]; // { code: 'BITS_BAD_REQUEST', status: '400', HRESULT: '0x80070057', context: '0x5', meaning: '…' }
 * ```
 */
function readTable(markdown: string, heading: string): Record<string, string>[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, '').trim() === heading);
  assert.notEqual(start, -1, `no heading "${heading}"`);
  let i = start + 1;
  while (i < lines.length && !lines[i]!.startsWith('|')) {
    assert.ok(!/^#{1,6} /.test(lines[i]!), `no table under "${heading}"`);
    i++;
  }
  const cells = (line: string): string[] =>
    line
      .slice(1, line.lastIndexOf('|'))
      .split('|')
      .map((c) => c.trim().replace(/^`(.*)`$/, '$1'));
  const names = cells(lines[i]!);
  const rows: Record<string, string>[] = [];
  for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const values = cells(lines[i]!);
    rows.push(Object.fromEntries(names.map((n, k) => [n, values[k] ?? ''])));
  }
  return rows;
}

/** Every `.ts` file under a folder, with its text. */
async function sources(dir: string): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push({ path, text: await readFile(path, 'utf8') });
  }
  return out;
}

describe('error codes: the README and the ERRORS table agree, and every code is used', () => {
  it('the reader finds a table under its heading and refuses a heading that is not there', () => {
    const md = '# A\n\ntext\n\n### Codes\n\nsome words\n\n| code | status |\n|---|---|\n| `X_ONE` | 400 |\n| `X_TWO` | 500 |\n\nafter\n';
    assert.deepEqual(readTable(md, 'Codes'), [
      { code: 'X_ONE', status: '400' },
      { code: 'X_TWO', status: '500' },
    ]);
    assert.throws(() => readTable(md, 'Missing'));
  });

  it('"Error codes" lists exactly the codes of ERRORS, with the same status, HRESULT and context', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const rows = readTable(readme, 'Error codes');
    const documented = rows.map((r) => r['code']);
    assert.deepEqual([...documented].sort(), Object.keys(ERRORS).sort(), 'the same codes');
    assert.equal(new Set(documented).size, documented.length, 'each code once');
    for (const row of rows) {
      const code = row['code'] as keyof typeof ERRORS;
      const spec = ERRORS[code];
      assert.equal(row['status'], String(spec.status), `${code}: status`);
      assert.equal(row['HRESULT'], spec.hresult === null ? '\u2014' : formatHresult(spec.hresult), `${code}: HRESULT`);
      assert.equal(row['context'], '0x' + spec.context.toString(16).toUpperCase(), `${code}: context`);
      assert.ok((row['meaning'] ?? '').length > 0, `${code}: meaning`);
    }
  });

  it('every code of ERRORS is used somewhere in src/ outside its table', async () => {
    const files = (await sources(join(ROOT, 'src'))).filter((f) => !f.path.endsWith(join('protocol', 'errors.ts')));
    const unused = Object.keys(ERRORS).filter((code) => !files.some((f) => f.text.includes(`'${code}'`)));
    assert.deepEqual(unused, [], 'codes no source file uses');
  });
});
