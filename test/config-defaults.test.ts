// The defaults table (src/server/defaults.ts) against the schema that applies it and the README that
// documents it: a default changed in one place and not the others fails here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseConfig } from '../src/server/config.js';
import { ADMIN_DEFAULTS, AUTH_DEFAULTS, LIMITS_DEFAULTS, POSTGRES_DEFAULTS, S3_DEFAULTS, SERVER_DEFAULTS, STORE_DEFAULTS, TLS_DEFAULTS, VDIR_DEFAULTS } from '../src/server/defaults.js';
import { DEFAULT_LIMITS } from '../src/http/limits.js';
import { CLI } from './helpers/cli.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The text of the README section `## <title>`, up to the next one. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/**
 * The `| key | meaning | default |` rows of a section, one entry per key: a cell such as
 * "`vdirs[].notificationType`, `notificationUrl`" names several keys (the later ones under the
 * first one's parent), and its default cell lists their defaults in the same order.
 */
function documentedDefaults(text: string): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line.slice(1, -1).split('|');
    const keys = [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const values = [...cells[cells.length - 1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const parent = keys[0]!.includes('.') ? keys[0]!.slice(0, keys[0]!.lastIndexOf('.') + 1) : '';
    keys.forEach((key, i) => {
      const full = i > 0 && !key.includes('.') ? parent + key : key;
      found.set(full, values.length === keys.length ? values[i] : values[0]);
    });
  }
  return found;
}

/** A default as the README writes it: JSON where it is JSON (`8080`, `null`, `["*"]`), else the word. */
function readmeValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Every entry of the defaults table, keyed as the README's Configuration and Security tables name it. */
const TABLE: ReadonlyMap<string, unknown> = new Map<string, unknown>([
  ['listen.host', SERVER_DEFAULTS.listen.host],
  ['listen.port', SERVER_DEFAULTS.listen.port],
  ...Object.entries(SERVER_DEFAULTS).filter(([k]) => k !== 'listen'),
  ...Object.entries(TLS_DEFAULTS).map(([k, v]) => [`tls.${k}`, v] as const),
  ...Object.entries(LIMITS_DEFAULTS).map(([k, v]) => [`limits.${k}`, v] as const),
  ...Object.entries(VDIR_DEFAULTS).map(([k, v]) => [`vdirs[].${k}`, v] as const),
  ...Object.entries(AUTH_DEFAULTS).map(([k, v]) => [`auth.${k}`, v] as const),
  ['admin.listen.host', ADMIN_DEFAULTS.listen.host],
  ['admin.listen.port', ADMIN_DEFAULTS.listen.port],
  ['admin.token', ADMIN_DEFAULTS.token],
  ['admin.tokenFile', ADMIN_DEFAULTS.tokenFile],
  ['store.records.type', STORE_DEFAULTS.records.type],
  ['store.bytes.type', STORE_DEFAULTS.bytes.type],
  ...Object.entries(POSTGRES_DEFAULTS).map(([k, v]) => [`store.records.${k}`, v] as const),
  ...Object.entries(S3_DEFAULTS).map(([k, v]) => [`store.bytes.${k}`, v] as const),
]);

/** Entries the README documents in another row (the `tls` block by its keys) or in words. */
const DOCUMENTED_AS: Readonly<Record<string, { row: string; text: string }>> = {
  tls: { row: 'tls.cert', text: 'null' },
  'vdirs[].publicUrl': { row: 'vdirs[].publicUrl', text: 'publicUrl' }, // null: the server's publicUrl
  // null: what GSSAPI and the host say
  'auth.keytab': { row: 'auth.keytab', text: 'KRB5_KTNAME' },
};

/** README rows that are not defaults-table entries: required keys, and the `tls` block's own keys. */
const NOT_IN_TABLE = new Set([
  'vdirs[].path',
  'vdirs[].directory',
  'vdirs[].destination',
  'tls.cert',
  'tls.key',
  'auth.schemes',
  'sessionsPerUserLimit',
  'store.records.url',
  'store.bytes.bucket',
]);

const configuration = documentedDefaults(section('Configuration'));
const security = documentedDefaults(section('Security'));
const documented = new Map([...security, ...configuration]);

describe('configuration defaults', () => {
  it('every entry of the defaults table is in the README with the same default', () => {
    for (const [key, value] of TABLE) {
      const as = DOCUMENTED_AS[key];
      const row = as?.row ?? key;
      assert.ok(documented.has(row), `${key} is documented in the README`);
      const text = documented.get(row);
      if (as) assert.equal(text, as.text, key);
      else if (key.startsWith('auth.') && value === null) assert.equal(text, undefined, `${key}: "—" in the README`);
      else assert.deepEqual(readmeValue(text ?? '(none)'), value, `${key}: README says ${text}`);
    }
  });

  it('every default the Configuration section documents comes from the table', () => {
    for (const [key, text] of configuration) {
      if (NOT_IN_TABLE.has(key)) continue;
      assert.ok(TABLE.has(key), `README row ${key} (default ${text}) has an entry in src/server/defaults.ts`);
    }
  });

  it('the limits are the HTTP engine\'s own defaults, in seconds where they are times', () => {
    assert.equal(LIMITS_DEFAULTS.maxHead, DEFAULT_LIMITS.maxHead);
    assert.equal(LIMITS_DEFAULTS.headerTimeout * 1000, DEFAULT_LIMITS.headerTimeoutMs);
    assert.equal(LIMITS_DEFAULTS.writeIdleTimeout * 1000, DEFAULT_LIMITS.writeIdleTimeoutMs);
  });

  it('a configuration with nothing but a vdir gets the table\'s defaults, durations in milliseconds', () => {
    const config = parseConfig({ vdirs: [{ path: '/', directory: 'u', auth: { schemes: ['client-certificate'] } }], tls: { cert: 'c', key: 'k', ca: 'ca' } }, '/srv');
    const vdir = config.vdirs[0]!;
    assert.deepEqual(config.listen, SERVER_DEFAULTS.listen);
    assert.equal(config.stateDir, '/srv/data/.bits');
    assert.equal(config.logLevel, SERVER_DEFAULTS.logLevel);
    assert.equal(config.sweepIntervalMs, SERVER_DEFAULTS.sweepInterval * 1000);
    assert.equal(config.shutdownGraceMs, SERVER_DEFAULTS.shutdownGrace * 1000);
    assert.deepEqual(config.limits, {
      maxRequestLine: DEFAULT_LIMITS.maxRequestLine,
      maxHeaderValue: DEFAULT_LIMITS.maxHeaderValue,
      maxHeaders: DEFAULT_LIMITS.maxHeaders,
      maxHead: DEFAULT_LIMITS.maxHead,
      maxDrain: DEFAULT_LIMITS.maxDrain,
      headerTimeoutMs: DEFAULT_LIMITS.headerTimeoutMs,
      bodyIdleTimeoutMs: DEFAULT_LIMITS.bodyIdleTimeoutMs,
      keepAliveTimeoutMs: DEFAULT_LIMITS.keepAliveTimeoutMs,
      writeIdleTimeoutMs: DEFAULT_LIMITS.writeIdleTimeoutMs,
    });
    const { sessionTimeout, notificationTimeout, auth, ...sameUnits } = VDIR_DEFAULTS;
    for (const [key, value] of Object.entries(sameUnits)) assert.deepEqual(vdir[key as keyof typeof vdir], value, `vdirs[0].${key}`);
    assert.equal(vdir.sessionTimeoutMs, sessionTimeout * 1000);
    assert.equal(vdir.notificationTimeoutMs, notificationTimeout * 1000);
    assert.equal(auth, null);
    assert.deepEqual(vdir.auth, { schemes: ['client-certificate'], ...AUTH_DEFAULTS });
    assert.ok(!('sessionTimeout' in vdir), 'only the millisecond key is read');
  });

  it('bits serve --help prints the defaults the README\'s flag table documents', () => {
    const help = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8', timeout: 10_000 }).stdout;
    const serveSection = section('CLI');
    const table = serveSection.slice(serveSection.indexOf('### `bits serve`'), serveSection.indexOf('### `bits user`'));
    let checked = 0;
    for (const line of table.split('\n')) {
      if (!line.startsWith('| `-')) continue;
      const cells = line.slice(1, -1).split('|');
      const flags = [...cells[0]!.matchAll(/`(?:-\w, )?(--[\w-]+)[^`]*`/g)].map((m) => m[1]!);
      const value = /`([^`]+)`/.exec(cells[cells.length - 1]!)?.[1];
      if (flags.length !== 1 || value === undefined) continue;
      const helpLine = help.split('\n').find((l) => l.trimStart().match(new RegExp(`^(-\\w, )?${flags[0]}\\b`)));
      assert.ok(helpLine, `${flags[0]} is in the help`);
      assert.ok(helpLine.includes(`default ${value}`), `${flags[0]}: the README says ${value}, the help: ${helpLine.trim()}`);
      checked++;
    }
    assert.ok(checked >= 12, `checked ${checked} flags`);
  });
});
