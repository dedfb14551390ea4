// deploy/: the systemd unit passes systemd-analyze, and the Grafana dashboard and the Prometheus
// example only use metrics the server exports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { SpawnSyncReturns } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Metrics } from '../src/server/admin/metrics.js';
import { SERVER_DEFAULTS } from '../src/server/defaults.js';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const UNIT = `${DEPLOY}bits-upload.service`;
const PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url));

/** The metric names PromQL can ask for: the server's registry, with the series a histogram adds. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = new Metrics({ liveSessions: async () => new Map([['/up', 1]]), folders: () => [{ label: 'state', path: tmpdir() }] });
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

/** The metric names a PromQL text refers to (the server's and the default process metrics). */
const metricsIn = (promql: string): string[] => promql.match(/\b(?:bits|process|nodejs)_[a-z0-9_]+\b/g) ?? [];

/** The values of `key` in the unit's lines `key=value`. */
function directives(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

/** Runs systemd-analyze, or undefined when it is not installed. */
function systemdAnalyze(args: string[]): SpawnSyncReturns<string> | undefined {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 });
  return (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' ? undefined : r;
}

const NO_SYSTEMD = 'SKIPPED LOUDLY: systemd-analyze is not installed (scripts/services/install.sh installs systemd from Debian); the unit is not checked';

describe('deploy/bits-upload.service', () => {
  it('passes systemd-analyze verify without a warning', (t) => {
    const r = systemdAnalyze(['verify', UNIT]);
    if (!r) {
      console.warn(`\n*** ${NO_SYSTEMD} ***\n`);
      t.skip(NO_SYSTEMD);
      return;
    }
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '', 'no warnings (an unknown or misspelt key is only a warning)');
  });

  it('is hardened: systemd-analyze security rates its exposure 2.0 or lower', (t) => {
    const r = systemdAnalyze(['security', '--offline=yes', UNIT]);
    if (!r) {
      console.warn(`\n*** ${NO_SYSTEMD} ***\n`);
      t.skip(NO_SYSTEMD);
      return;
    }
    const score = /Overall exposure level for bits-upload\.service: ([\d.]+)/.exec(r.stdout);
    assert.ok(score, `${r.stdout}${r.stderr}`);
    assert.ok(Number(score[1]) <= 2.0, `exposure ${score[1]}:\n${r.stdout}`);
  });

  it('runs as its own user with its state directory, a read-only system but for the upload folders, and a stop timeout over the shutdown grace', async () => {
    const unit = await readFile(UNIT, 'utf8');
    const one = (key: string): string => {
      const values = directives(unit, key);
      assert.equal(values.length, 1, `one ${key}= line`);
      return values[0]!;
    };
    assert.equal(one('User'), 'bits-upload');
    assert.equal(one('StateDirectory'), 'bits-upload');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('NoNewPrivileges'), 'yes');
    assert.ok(one('ReadWritePaths').length > 0);
    assert.equal(one('RestartPreventExitStatus'), '2', 'a configuration error (exit 2) is not restarted');
    const stopSeconds = Number(one('TimeoutStopSec'));
    assert.ok(stopSeconds > SERVER_DEFAULTS.shutdownGrace, `TimeoutStopSec ${stopSeconds} s must cover shutdownGrace ${SERVER_DEFAULTS.shutdownGrace} s`);
    // ExecStart names the installed package's own entry point, with the state directory systemd made.
    const pkg = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { name: string; bin: Record<string, string> };
    const exec = one('ExecStart');
    assert.ok(exec.includes(`/node_modules/${pkg.name}/${pkg.bin['bits']} serve `), exec);
    assert.match(exec, /--state-dir \$\{STATE_DIRECTORY\}/);
  });
});

describe('deploy/bits-agent.service and deploy/bits-agent.user.service', () => {
  const SYSTEM = `${DEPLOY}bits-agent.service`;
  const USER = `${DEPLOY}bits-agent.user.service`;

  it('the system unit passes systemd-analyze verify without a warning and rates 2.0 or lower', (t) => {
    const r = systemdAnalyze(['verify', SYSTEM]);
    if (!r) {
      console.warn(`\n*** ${NO_SYSTEMD} ***\n`);
      t.skip(NO_SYSTEMD);
      return;
    }
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '');
    const security = systemdAnalyze(['security', '--offline=yes', SYSTEM])!;
    const score = /Overall exposure level for bits-agent\.service: ([\d.]+)/.exec(security.stdout);
    assert.ok(score && Number(score[1]) <= 2.0, security.stdout);
  });

  it('the user unit passes systemd-analyze verify --user without a warning', async (t) => {
    // (installed as bits-agent.service; the user manager needs a runtime directory of its own)
    const dir = await mkdtemp(join(tmpdir(), 'bits-units-'));
    try {
      await copyFile(USER, join(dir, 'bits-agent.service'));
      const runtime = join(dir, 'run');
      await mkdir(runtime, { mode: 0o700 });
      const r = spawnSync('systemd-analyze', ['verify', '--user', join(dir, 'bits-agent.service')], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
      if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        console.warn(`\n*** ${NO_SYSTEMD} ***\n`);
        t.skip(NO_SYSTEMD);
        return;
      }
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim(), '');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('both run bits agent from the installed package; the system one with the state directory systemd made', async () => {
    const pkg = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { name: string; bin: Record<string, string> };
    const system = await readFile(SYSTEM, 'utf8');
    const user = await readFile(USER, 'utf8');
    const [sysExec] = directives(system, 'ExecStart');
    const [userExec] = directives(user, 'ExecStart');
    assert.ok(sysExec?.includes(`/node_modules/${pkg.name}/${pkg.bin['bits']} agent --state-dir \${STATE_DIRECTORY}`), sysExec);
    // The user agent keeps the default state directory, so that the CLI finds it without flags.
    assert.ok(userExec?.endsWith(`/node_modules/${pkg.name}/${pkg.bin['bits']} agent`), userExec);
    assert.deepEqual(directives(system, 'User'), ['bits-agent']);
    assert.deepEqual(directives(system, 'UMask'), ['0077']);
    assert.deepEqual(directives(user, 'WantedBy'), ['default.target']);
  });

  it('the launchd agent (macOS) runs the same entry point with the default state directory', async () => {
    const pkg = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { name: string; bin: Record<string, string> };
    const plist = await readFile(`${DEPLOY}com.bits-upload.agent.plist`, 'utf8');
    const args = /<key>ProgramArguments<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(plist)?.[1];
    assert.ok(args, 'ProgramArguments');
    const strings = [...args.matchAll(/<string>([^<]*)<\/string>/g)].map((m) => m[1]);
    assert.equal(strings.length, 3);
    assert.ok(strings[1]!.endsWith(`/${pkg.name}/${pkg.bin['bits']}`), strings[1]);
    assert.equal(strings[2], 'agent');
    assert.match(plist, /<key>Label<\/key>\s*<string>com\.bits-upload\.agent<\/string>/);
  });
});

describe('deploy/grafana-dashboard.json and deploy/prometheus.yml', () => {
  it('the dashboard parses, and every query uses metrics the server exports', async () => {
    const dashboard = JSON.parse(await readFile(`${DEPLOY}grafana-dashboard.json`, 'utf8')) as {
      uid: string;
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
      templating: { list: { name: string; definition?: string }[] };
    };
    const exported = await exportedNames();
    const queries = dashboard.panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr })));
    queries.push(...dashboard.templating.list.filter((v) => v.definition).map((v) => ({ where: `variable ${v.name}`, expr: v.definition! })));
    assert.ok(queries.length >= 10, `${queries.length} queries`);
    const used = new Set<string>();
    for (const { where, expr } of queries) {
      const names = metricsIn(expr);
      assert.ok(names.length > 0, `${where}: ${expr} uses no metric of the server`);
      for (const name of names) {
        assert.ok(exported.has(name), `${where}: ${name} is not exported by the server`);
        used.add(name);
      }
    }
    // Every metric the server defines itself is on the dashboard.
    for (const name of exported) {
      if (!name.startsWith('bits_') || /_(sum|count)$/.test(name)) continue;
      const histogram = exported.has(`${name}_bucket`);
      assert.ok(used.has(histogram ? `${name}_bucket` : name), `${name} is not on the dashboard`);
    }
  });

  it('the Prometheus example scrapes /metrics and names only exported metrics', async () => {
    const text = await readFile(`${DEPLOY}prometheus.yml`, 'utf8');
    assert.match(text, /^\s+metrics_path: \/metrics$/m);
    assert.match(text, /^\s+type: Bearer$/m);
    const exported = await exportedNames();
    for (const name of metricsIn(text)) assert.ok(exported.has(name), `${name} is not exported by the server`);
  });
});
