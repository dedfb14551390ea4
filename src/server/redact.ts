/**
 * Query keys whose values are credentials, compared in lowercase: anything naming a token, secret,
 * password, signature, credential, bearer or JWT, API and private keys, and the short names that
 * clients use for them.
 */
const SECRET_KEY = /token|secret|pass|signature|credential|bearer|jwt|api[-_]?key|(^|[-_])key$|^(sig|pw|pwd|code|auth|authorization)$/;

/** A reply URL's path carries its secret token: `BITS-Sessions/Replies/<id>/<token>/…`. */
const REPLY_TOKEN = /(\/BITS-Sessions\/Replies\/[^/]+\/)[^/?]+/i;

/**
 * A request target fit for a log line: the values of credential-like query keys (`access_token`,
 * `sig`, `password`, …) replaced by `REDACTED`, the token of a reply URL too, and user information
 * of an absolute-form target removed. Key names stay, so the log still shows which parameters were
 * sent.
 *
 * @example
 * ```ts
 * redactTarget('/up/a.bin?access_token=eyJ...&part=2'); // '/up/a.bin?access_token=REDACTED&part=2'
 * ```
 */
export function redactTarget(target: string): string {
  // user information runs to the last '@' before the path
  const withoutUser = target.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1');
  const q = withoutUser.indexOf('?');
  const path = (q === -1 ? withoutUser : withoutUser.slice(0, q)).replace(REPLY_TOKEN, '$1REDACTED');
  if (q === -1) return path;
  const query = withoutUser.slice(q + 1).replace(/([^&;=]*)=([^&;]*)/g, (pair: string, rawKey: string) => {
    let key = rawKey;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
    } catch {
      /* keep it as sent */
    }
    return SECRET_KEY.test(key.toLowerCase()) ? `${rawKey}=REDACTED` : pair;
  });
  return `${path}?${query}`;
}

/**
 * A session id as the log may show it: whole, except on vdirs in session-capability mode, where the
 * id is a credential and only its first eight characters are logged.
 *
 * @example
 * ```ts
 * loggedSessionId('{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}', true); // '{A0FF5911…'
 * ```
 */
export function loggedSessionId(id: string, isCapability: boolean): string {
  return isCapability ? `${id.slice(0, 9)}…` : id;
}
