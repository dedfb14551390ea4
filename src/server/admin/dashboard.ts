import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ADMIN_COOKIE, adminToken } from './admin-server.js';
import type { AdminDeps, AdminRoute } from './route.js';
import { sendJson } from './route.js';

/** Where `npm run build` puts the bundled front end (dashboard/ → dist/dashboard/). */
const ASSET_DIR = new URL('../../../dashboard/', import.meta.url);
const ASSET_TYPES: Readonly<Record<string, string>> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
/** The most a sign-in form may send. */
const FORM_LIMIT = 4096;

/** Headers of every page: nothing but this origin's own script, style and API. */
const PAGE_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** An HTML page with the dashboard's stylesheet; `signIn` marks a listener that has a token. */
function page(title: string, body: string, signIn: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
</head>
<body data-signin="${signIn ? '1' : '0'}">
${body}
</body>
</html>
`;
}

function sendPage(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { ...PAGE_HEADERS, 'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}

function redirect(res: ServerResponse, location: string, cookie?: string): void {
  res.writeHead(303, { Location: location, 'Cache-Control': 'no-store', 'Content-Length': 0, ...(cookie ? { 'Set-Cookie': cookie } : {}) });
  res.end();
}

function loginPage(failed: boolean): string {
  const alert = failed ? '<p class="bad" role="alert">That token is not valid.</p>' : '';
  return page(
    'Sign in · BITS upload',
    `<main class="login">
<form method="post" action="/login">
<h1>BITS upload</h1>
<p>Sign in with the admin token (<code>admin.token</code> or the first line of <code>admin.tokenFile</code>).</p>
${alert}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</main>`,
    true,
  );
}

/** The fields of a small `application/x-www-form-urlencoded` body; undefined when it is not one or too large. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > FORM_LIMIT) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The cookie that signs a browser in: the token itself, for this origin's requests only, gone with the browser session. */
function signInCookie(token: string): string {
  return `${ADMIN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The bundled assets, read once from the build output. */
function assetReader(): (name: string) => Promise<{ body: Buffer; etag: string } | undefined> {
  const cache = new Map<string, { body: Buffer; etag: string }>();
  return async (name) => {
    const known = cache.get(name);
    if (known) return known;
    const body = await readFile(new URL(name, ASSET_DIR)).catch(() => undefined);
    if (!body) return undefined;
    const asset = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
    cache.set(name, asset);
    return asset;
  };
}

/**
 * The dashboard (`/`, its assets under `/assets/`) and its sign-in (`/login`, `/logout`). The page
 * and assets hold no data and are served without the token; the page reads the API, which needs it.
 * With a token configured, POST /login checks the one given and sets the HttpOnly, SameSite=Strict
 * cookie `bits_admin` that the listener accepts in place of `Authorization: Bearer`; without one,
 * there is nothing to sign in to and /login leads to the dashboard.
 */
export function dashboardRoutes(deps: AdminDeps): AdminRoute[] {
  const admin = deps.config.admin!;
  const hasToken = admin.token !== null || admin.tokenFile !== null;
  const asset = assetReader();
  return [
    {
      method: 'GET',
      path: /^\/$/,
      open: true,
      handle: (_req, res) =>
        sendPage(res, 200, page('BITS upload', '<div id="app"></div>\n<noscript>The dashboard needs JavaScript.</noscript>\n<script type="module" src="/assets/app.js"></script>', hasToken)),
    },
    {
      method: 'GET',
      path: /^\/assets\/(app\.(js|css))$/,
      open: true,
      handle: async (req, res, match) => {
        const found = await asset(match[1]!);
        if (!found) return sendJson(res, 503, { error: 'the dashboard is not built: run npm run build' });
        const headers = { ETag: found.etag, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
        if (req.headers['if-none-match'] === found.etag) {
          res.writeHead(304, headers);
          return void res.end();
        }
        res.writeHead(200, { ...headers, 'Content-Type': ASSET_TYPES[match[2]!]!, 'Content-Length': found.body.length });
        res.end(found.body);
      },
    },
    {
      method: 'GET',
      path: /^\/login$/,
      open: true,
      handle: (_req, res) => (hasToken ? sendPage(res, 200, loginPage(false)) : redirect(res, '/')),
    },
    {
      method: 'POST',
      path: /^\/login$/,
      open: true,
      handle: async (req, res) => {
        if (!hasToken) return redirect(res, '/');
        const form = await readForm(req);
        if (!form) return sendJson(res, 400, { error: `send the form field token as application/x-www-form-urlencoded, at most ${FORM_LIMIT} bytes` });
        const given = form.get('token')?.trim() ?? '';
        const token = await adminToken(admin);
        if (token === null || !timingSafeEqual(digest(given), digest(token))) return sendPage(res, 401, loginPage(true));
        redirect(res, '/', signInCookie(token));
      },
    },
    {
      method: 'POST',
      path: /^\/logout$/,
      open: true,
      handle: (_req, res) => redirect(res, hasToken ? '/login' : '/', `${ADMIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`),
    },
  ];
}
