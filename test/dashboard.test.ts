// The dashboard of the admin listener: its page, assets and sign-in over plain HTTP, then in headless
// Chromium (Debian's `chromium`, driven by playwright-core) against a real server: it signs in, shows
// a live upload's progress moving, shows the error of a refused packet, survives a phone-sized
// screen, and cancels a session through its confirmation dialog.
//
// BITS_DASHBOARD_SCREENSHOT=PATH writes the screenshot taken during the upload to PATH (that is how
// docs/dashboard.png is made: `npm run screenshot`); otherwise it goes to a temp folder.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { formatHresult, HResult } from '../src/protocol/hresult.js';
import { assertAck, assertErr } from './helpers/assert-ack.js';
import { fragmentRequest, startServer } from './helpers/bits-server.js';
import type { TestServer } from './helpers/bits-server.js';
import { tempDir } from './helpers/temp-dir.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-token-0123456789abcdef';
/** How long the page may take to show what the server has: a bound on waiting, not a speed check. */
const UI_WAIT_MS = 20_000;
const KiB = 1024;

const adminUrl = (s: TestServer, path = '/'): string => `http://127.0.0.1:${s.server.adminAddress()!.port}${path}`;

/** A server with the admin listener (token set) and two vdirs, `/up` and `/drop`. */
async function startWithAdmin(t: TestContext, token: string | null = TOKEN): Promise<TestServer> {
  const dir = await tempDir('bits-dash-');
  t.after(() => dir.cleanup());
  const vdirs = ['/up', '/drop'].map((path) => ({ path, directory: join(dir.path, path.slice(1)) }));
  for (const v of vdirs) await mkdir(v.directory);
  const s = await startServer({ vdirs, config: { admin: { listen: { host: '127.0.0.1', port: 0 }, token } } });
  t.after(() => s.stop());
  return s;
}

function signIn(s: TestServer, token: string): Promise<Response> {
  return fetch(adminUrl(s, '/login'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
    redirect: 'manual',
  });
}

/** Sends `count` fragments of `size` bytes from `first`, one at a time; returns the next offset. */
async function sendFragments(s: TestServer, path: string, id: string, first: number, count: number, size: number, total: number): Promise<number> {
  let at = first;
  for (let i = 0; i < count; i++) {
    assertAck(await s.request(fragmentRequest(path, id, at, Buffer.alloc(size, i), total)));
    at += size;
  }
  return at;
}

const progressOf = (id: string): string => `[data-session="${id}"] [role="progressbar"]`;

/** Waits until the session's progress bar says `received` bytes. */
async function waitForReceived(page: Page, id: string, received: number): Promise<void> {
  await page.locator(`${progressOf(id)}[aria-valuenow="${received}"]`).waitFor({ timeout: UI_WAIT_MS });
}

/** Launches Debian's Chromium headless; the browser closes with the test. */
async function launch(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.after(() => browser.close());
  return browser;
}

describe('dashboard over HTTP', () => {
  it('serves the page and its bundled assets without the token; the API still needs it', async (t) => {
    const s = await startWithAdmin(t);
    const page = await fetch(adminUrl(s));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/assets\/app\.js"><\/script>/);
    assert.match(html, /data-signin="1"/);

    const js = await fetch(adminUrl(s, '/assets/app.js'));
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.ok((await js.text()).includes('/api/sessions'), 'the bundle reads the sessions API');
    const etag = js.headers.get('etag')!;
    assert.equal((await fetch(adminUrl(s, '/assets/app.js'), { headers: { 'If-None-Match': etag } })).status, 304);
    const css = await fetch(adminUrl(s, '/assets/app.css'));
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    assert.equal((await fetch(adminUrl(s, '/assets/..%2Fsrc%2Fserver')).then((r) => r.status)), 404);
    assert.equal((await fetch(adminUrl(s, '/api/stats'))).status, 401);
  });

  it('signs in with the token into an HttpOnly SameSite=Strict cookie, refuses a wrong one, signs out', async (t) => {
    const s = await startWithAdmin(t);
    const form = await fetch(adminUrl(s, '/login'));
    assert.equal(form.status, 200);
    assert.match(await form.text(), /<input id="token" name="token" type="password"/);

    const wrong = await signIn(s, 'dashboard-token-0123456789abcdeX');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
    assert.match(await wrong.text(), /That token is not valid/);

    const right = await signIn(s, TOKEN);
    assert.equal(right.status, 303);
    assert.equal(right.headers.get('location'), '/');
    const cookie = right.headers.get('set-cookie')!;
    assert.match(cookie, /^bits_admin=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
    const stats = await fetch(adminUrl(s, '/api/stats'), { headers: { Cookie: cookie.split(';')[0]! } });
    assert.equal(stats.status, 200, 'the cookie stands for the token');

    const out = await fetch(adminUrl(s, '/logout'), { method: 'POST', redirect: 'manual' });
    assert.equal(out.status, 303);
    assert.equal(out.headers.get('location'), '/login');
    assert.match(out.headers.get('set-cookie') ?? '', /^bits_admin=; .*Max-Age=0/);
    assert.equal((await fetch(adminUrl(s, '/login'), { method: 'POST', body: 'x'.repeat(5000), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } })).status, 400);
  });

  it('without a token there is nothing to sign in to', async (t) => {
    const s = await startWithAdmin(t, null);
    const login = await fetch(adminUrl(s, '/login'), { redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/');
    const posted = await signIn(s, TOKEN);
    assert.equal(posted.status, 303);
    assert.equal(posted.headers.get('set-cookie'), null);
    assert.match(await (await fetch(adminUrl(s))).text(), /data-signin="0"/);
  });
});

describe('dashboard in headless Chromium', () => {
  it('signs in, shows a live upload moving and a refused packet, fits a phone, cancels a session after confirmation', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`!!! SKIPPED: ${CHROMIUM} is missing (apt-get install chromium, or bash scripts/services/install.sh)`);
      return;
    }
    const s = await startWithAdmin(t);
    const browser = await launch(t);
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, colorScheme: 'light' });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      // (the first poll's 401 before sign-in is expected)
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
    });

    // Not signed in: the page sends the browser to the sign-in form.
    await page.goto(adminUrl(s));
    await page.waitForURL(adminUrl(s, '/login'), { timeout: UI_WAIT_MS });
    await page.fill('#token', TOKEN);
    await Promise.all([page.waitForURL(adminUrl(s), { timeout: UI_WAIT_MS }), page.click('button[type="submit"]')]);
    const cookie = (await page.context().cookies()).find((c) => c.name === 'bits_admin');
    assert.ok(cookie, 'the sign-in cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate('document.cookie'), '', 'the page script cannot read the token');

    // A slow upload, fragment by fragment: the page follows it.
    const total = 1024 * KiB;
    const big = await s.createSession('/up/images/win11-build.iso');
    let at = await sendFragments(s, '/up/images/win11-build.iso', big, 0, 1, 128 * KiB, total);
    await waitForReceived(page, big, at);
    at = await sendFragments(s, '/up/images/win11-build.iso', big, at, 3, 128 * KiB, total);
    await waitForReceived(page, big, at);
    assert.match(await page.locator(`[data-session="${big}"] .received`).innerText(), /512 KiB of 1\.00 MiB · 50\.0 %/);

    // More sessions for a fuller picture, and a few seconds of steady traffic so that rates show.
    const drop = await s.createSession('/drop/logs/host-42.zip');
    let dropAt = await sendFragments(s, '/drop/logs/host-42.zip', drop, 0, 1, 96 * KiB, 1536 * KiB);
    await s.createSession('/drop/reports/q4.xlsx');
    for (let i = 0; i < 8; i++) {
      dropAt = await sendFragments(s, '/drop/logs/host-42.zip', drop, dropAt, 1, 48 * KiB, 1536 * KiB);
      at = await sendFragments(s, '/up/images/win11-build.iso', big, at, 1, 32 * KiB, total);
      await new Promise((r) => setTimeout(r, 400));
    }
    await waitForReceived(page, big, at);
    await waitForReceived(page, drop, dropAt);
    await page.locator(`[data-session="${big}"] .rate`, { hasText: /\/s$/ }).waitFor({ timeout: UI_WAIT_MS });

    // Refused packets: a fragment that leaves a gap (416), one whose total differs from the session's.
    const gap = await s.request(fragmentRequest('/up/images/win11-build.iso', big, at + 4096, Buffer.alloc(10), total));
    assert.equal(gap.status, 416);
    const gapError = page.locator('.error', { hasText: `fragment starts at ${at + 4096}, expected ${at}` });
    await gapError.waitFor({ timeout: UI_WAIT_MS });
    assert.match(await gapError.innerText(), /416/);
    const invalid = formatHresult(HResult.InvalidArg);
    assertErr(await s.request(fragmentRequest('/up/images/win11-build.iso', big, at, Buffer.alloc(10), 2 * total)), 400, invalid);
    const refused = page.locator('.error', { hasText: 'E_INVALIDARG' });
    await refused.waitFor({ timeout: UI_WAIT_MS });
    assert.match(await refused.innerText(), new RegExp(`400\\s+${invalid}\\s+E_INVALIDARG\\s+total ${2 * total} differs`));

    const shot = resolve(process.env['BITS_DASHBOARD_SCREENSHOT'] ?? join(s.root, 'dashboard.png'));
    await mkdir(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);

    const vdirRow = page.locator('tr[data-vdir="/drop"]');
    assert.match(await vdirRow.innerText(), /^\/drop\s+2\s/, 'two active sessions on /drop');

    // A phone: one column, nothing wider than the screen, the Cancel button at hand.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.equal(overflow, 0, 'no horizontal scrolling on a phone');
    const cancelBox = await page.locator(`[data-session="${drop}"] button.cancel`).boundingBox();
    assert.ok(cancelBox && cancelBox.x >= 0 && cancelBox.x + cancelBox.width <= 390, `the Cancel button fits the screen: ${JSON.stringify(cancelBox)}`);
    await page.setViewportSize({ width: 1280, height: 1000 });

    // Cancel asks first: keeping the upload keeps it.
    const dialog = page.locator('dialog.confirm');
    await page.click(`[data-session="${drop}"] button.cancel`);
    await dialog.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    assert.match(await dialog.innerText(), /\/drop\/logs\/host-42\.zip/);
    await dialog.getByRole('button', { name: 'Keep uploading' }).click();
    await dialog.waitFor({ state: 'hidden', timeout: UI_WAIT_MS });
    assertAck(await s.request(fragmentRequest('/drop/logs/host-42.zip', drop, dropAt, Buffer.alloc(KiB), 1536 * KiB)));
    dropAt += KiB;

    // Confirming cancels it, as a Cancel-Session would.
    await page.click(`[data-session="${drop}"] button.cancel`);
    await dialog.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    await dialog.getByRole('button', { name: 'Cancel upload' }).click();
    await page.locator(`[data-session="${drop}"]`).waitFor({ state: 'detached', timeout: UI_WAIT_MS });
    await page.locator('.notice', { hasText: 'Cancelled /drop/logs/host-42.zip' }).waitFor({ timeout: UI_WAIT_MS });

    // The server no longer has it: the API and the client say so.
    const shown = await fetch(adminUrl(s, `/api/sessions/${encodeURIComponent(drop)}`), { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(shown.status, 404);
    const late = await s.request(fragmentRequest('/drop/logs/host-42.zip', drop, dropAt, Buffer.alloc(KiB), 1536 * KiB));
    assertErr(late, 500, formatHresult(HResult.SessionNotFound));
    // ... and that refused fragment shows among the errors.
    await page.locator('.error', { hasText: 'BG_E_SESSION_NOT_FOUND' }).waitFor({ timeout: UI_WAIT_MS });
    assert.ok(await page.locator(`[data-session="${big}"]`).isVisible(), 'the other upload goes on');
    assert.deepEqual(problems, []);
  });
});
