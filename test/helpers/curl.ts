import { spawn, spawnSync } from 'node:child_process';

/** Whether this machine's curl has a feature (`NTLM`, `GSS-API`, `SPNEGO`) on its `Features:` line. */
export function curlHas(feature: string): boolean {
  const r = spawnSync('curl', ['-V'], { encoding: 'utf8' });
  return r.status === 0 && new RegExp(`^Features:.*\\b${feature}\\b`, 'm').test(r.stdout);
}

/**
 * Runs curl silently with a 20 s limit (asynchronously: an in-process server keeps serving);
 * `env` is added to this process's environment.
 *
 * @example
 * ```ts
 * const { code, out } = await curl(['-w', '%{http_code}', url]);
 * ```
 */
export function curl(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-s', '--max-time', '20', ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}
