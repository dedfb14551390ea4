// A throw-away MIT Kerberos KDC for tests: realm BITS.TEST on a free 127.0.0.1 TCP port, its own
// krb5.conf (KRB5_CONFIG) and kdc.conf (KRB5_KDC_PROFILE), a keytab for HTTP/localhost, and user
// principals with kinit into throw-away credential caches. Started from Debian's krb5-kdc and
// krb5-admin-server (scripts/services/install.sh); when they are missing the caller gets a reason
// to skip loudly.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { deadPort } from './dead-port.js';

/** The clock skew the realm's krb5.conf allows, in seconds (small, so that expired tickets fail fast). */
const CLOCK_SKEW_S = 1;

/** A running test KDC. */
export interface Kdc {
  readonly realm: 'BITS.TEST';
  /** The throw-away folder: configuration, database, keytab, credential caches, replay cache. */
  readonly dir: string;
  /** KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5RCACHEDIR and a default KRB5CCNAME, for this process and children. */
  readonly env: Readonly<Record<string, string>>;
  /** The keytab of HTTP/localhost@BITS.TEST. */
  readonly keytab: string;
  addPrincipal(name: string, password: string): Promise<void>;
  /** Gets a ticket-granting ticket into `ccache` (default: a new file in `dir`); returns the cache's path. */
  kinit(name: string, password: string, options?: { ccache?: string; lifetime?: string }): Promise<string>;
  /** How long to wait until a ticket of `lifetimeMs` is expired for an acceptor (lifetime, skew, margin). */
  expiryWaitMs(lifetimeMs: number): number;
  stop(): Promise<void>;
}

const PROGRAMS = ['/usr/sbin/krb5kdc', '/usr/sbin/kdb5_util', '/usr/sbin/kadmin.local', '/usr/bin/kinit'];

function run(file: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { env, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function listening(port: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return true;
    await sleep(50);
  }
  return false;
}

/**
 * Starts a KDC for realm BITS.TEST, with HTTP/localhost in a keytab. Resolves with `{ skip }` when
 * the Kerberos programs are not installed.
 *
 * @example
 * ```ts
 * const kdc = await startKdc();
 * if ('skip' in kdc) return t.skip(kdc.skip);
 * await kdc.addPrincipal('alice', 'pw');
 * ```
 */
export async function startKdc(): Promise<Kdc | { skip: string }> {
  const missing = PROGRAMS.filter((p) => !existsSync(p));
  if (missing.length) return { skip: `MIT Kerberos programs missing (${missing.join(', ')}): install krb5-kdc krb5-admin-server krb5-user (scripts/services/install.sh)` };
  const dir = await mkdtemp(join(tmpdir(), 'bits-kdc-'));
  const port = await deadPort();
  const realm = 'BITS.TEST' as const;
  const krb5conf = join(dir, 'krb5.conf');
  const kdcconf = join(dir, 'kdc.conf');
  await writeFile(
    krb5conf,
    `[libdefaults]
  default_realm = ${realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
  clockskew = ${CLOCK_SKEW_S}
  default_ccache_name = FILE:${join(dir, 'default.ccache')}
[realms]
  ${realm} = {
    kdc = 127.0.0.1:${port}
  }
[domain_realm]
  localhost = ${realm}
  .localhost = ${realm}
`,
  );
  await writeFile(
    kdcconf,
    `[kdcdefaults]
  kdc_ports = ${port}
  kdc_tcp_ports = ${port}
[realms]
  ${realm} = {
    database_name = ${join(dir, 'principal')}
    key_stash_file = ${join(dir, 'stash')}
    acl_file = ${join(dir, 'kadm5.acl')}
    kdc_listen = 127.0.0.1:${port}
    kdc_tcp_listen = 127.0.0.1:${port}
    max_life = 1h
    max_renewable_life = 1h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:${join(dir, 'kdc.log')}
`,
  );
  await writeFile(join(dir, 'kadm5.acl'), '');
  const env: Record<string, string> = {
    KRB5_CONFIG: krb5conf,
    KRB5_KDC_PROFILE: kdcconf,
    KRB5RCACHEDIR: dir,
    KRB5CCNAME: `FILE:${join(dir, 'default.ccache')}`,
  };
  const childEnv = { ...process.env, ...env };
  let kdc: ChildProcess | undefined;
  try {
    await run('/usr/sbin/kdb5_util', ['create', '-s', '-r', realm, '-P', 'bits-test-master-key'], childEnv);
    kdc = spawn('/usr/sbin/krb5kdc', ['-n', '-r', realm], { env: childEnv, stdio: 'ignore' });
    if (!(await listening(port, Date.now() + 10_000))) {
      const log = await readFile(join(dir, 'kdc.log'), 'utf8').catch(() => '');
      throw new Error(`krb5kdc did not listen on 127.0.0.1:${port}\n${log}`);
    }
  } catch (err) {
    kdc?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const admin = (query: string): Promise<string> => run('/usr/sbin/kadmin.local', ['-r', realm, '-q', query], childEnv);
  const keytab = join(dir, 'http.keytab');
  await admin('addprinc -randkey HTTP/localhost');
  await admin(`ktadd -k ${keytab} HTTP/localhost`);
  let caches = 0;
  return {
    realm,
    dir,
    env,
    keytab,
    async addPrincipal(name, password) {
      await admin(`addprinc -pw ${password} ${name}`);
    },
    async kinit(name, password, options = {}) {
      const ccache = options.ccache ?? join(dir, `cc-${++caches}`);
      await run('/usr/bin/kinit', ['-c', `FILE:${ccache}`, ...(options.lifetime ? ['-l', options.lifetime] : []), `${name}@${realm}`], childEnv, `${password}\n`);
      return `FILE:${ccache}`;
    },
    expiryWaitMs(lifetimeMs) {
      return lifetimeMs + CLOCK_SKEW_S * 1000 + 1500;
    },
    async stop() {
      kdc?.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
