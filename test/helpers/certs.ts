import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** PEM files of a test PKI: a CA, a server certificate for localhost/127.0.0.1, client certificates. */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** Client certificate and key files by common name. */
  clients: Record<string, { cert: string; key: string }>;
  /** A client certificate from an unrelated CA. */
  rogue: { cert: string; key: string };
  read(file: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function ca(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`]);
}

function issue(dir: string, caName: string, name: string, subject: string, extensions: string): void {
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

/** Makes a CA, a server certificate and client certificates with openssl in `dir`. */
export function makePki(dir: string, clientNames: string[]): TestPki {
  ca(dir, 'ca');
  ca(dir, 'rogue-ca');
  issue(dir, 'ca', 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  const clients: TestPki['clients'] = {};
  for (const n of clientNames) {
    issue(dir, 'ca', n, `/CN=${n}`, `subjectAltName=email:${n}@example.test\nextendedKeyUsage=clientAuth\n`);
    clients[n] = { cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) };
  }
  issue(dir, 'rogue-ca', 'rogue', '/CN=alice', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clients,
    rogue: { cert: join(dir, 'rogue.crt'), key: join(dir, 'rogue.key') },
    read: (file) => readFileSync(file),
  };
}
