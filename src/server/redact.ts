/**
 * Query keys whose values are credentials, compared in lowercase: anything naming a token, secret,
 * password, signature or credential, and the short names that clients use for them.
 */
const SECRET_KEY = /token|secret|passw|pwd|signature|credential|apikey|api_key|^(sig|key|code|auth|authorization)$/;

/**
 * A request target fit for a log line: the values of credential-like query keys (`access_token`,
 * `sig`, `password`, …) replaced by `REDACTED`, and user information of an absolute-form target
 * removed. Key names stay, so the log still shows which parameters were sent.
 *
 * @example
 * ```ts
 * redactTarget('/up/a.bin?access_token=eyJ...&part=2'); // '/up/a.bin?access_token=REDACTED&part=2'
 * ```
 */
export function redactTarget(target: string): string {
  let out = target.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
  const q = out.indexOf('?');
  if (q === -1) return out;
  const params = out
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawKey = eq === -1 ? pair : pair.slice(0, eq);
      let key = rawKey;
      try {
        key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      } catch {
        /* keep it as sent */
      }
      return eq !== -1 && SECRET_KEY.test(key.toLowerCase()) ? `${rawKey}=REDACTED` : pair;
    });
  out = `${out.slice(0, q)}?${params.join('&')}`;
  return out;
}
