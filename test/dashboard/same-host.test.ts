/**
 * A page on another port of the dashboard's host, in real Chromium. Cookies do not tell
 * ports apart: such a page is the same site, gets the dashboard's SameSite cookies sent
 * with its forms, and may set cookies the dashboard then reads. It must not be able to
 * sign a visitor in to an account of its choosing, nor put words in the dashboard's mouth.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfToken } from '../../src/dashboard/csrf.js';
import { chromiumAvailable, expectHeading, invite, join, newAccount, newContext, PASSWORD, signIn, useDashboard } from './support.js';

/** A secret of the other page's choosing, for the sign-in form's cookie. */
const PLANTED_SECRET = 'planted-by-another-port';

describe.skipIf(!chromiumAvailable())('dashboard: a page on another port of the same host', () => {
  const fixture = useDashboard('keygate-dashboard-same-host');
  let otherPort: Server;
  let otherOrigin: string;
  /** What the page on the other port answers with; each test sets it. */
  let otherPage = '';

  beforeAll(async () => {
    otherPort = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(otherPage));
    await new Promise<void>((resolve) => otherPort.listen(0, '127.0.0.1', resolve));
    otherOrigin = `http://127.0.0.1:${(otherPort.address() as AddressInfo).port}`;
    // The other page's owner has an account of their own, with a password they know.
    const malloryId = await newAccount(fixture, 'Mallory Metrics');
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    await join(await context.newPage(), await invite(fixture, 'mallory@example.com', malloryId), 'mallory@example.com');
    await context.close();
  });

  afterAll(async () => {
    await new Promise((resolve) => otherPort?.close(resolve));
  });

  it('refuses a sign-in form posted from another port with a form cookie that port planted (403), and signs no one in', async () => {
    otherPage = `<!doctype html><script>document.cookie = 'kg_form=${PLANTED_SECRET}; path=/';</script>
<form id="f" method="post" action="${fixture.dashboardUrl}/sign-in">
  <input name="_csrf" value="${csrfToken(PLANTED_SECRET)}"><input name="email" value="mallory@example.com"><input name="password" value="${PASSWORD}">
</form><script>document.getElementById('f').submit();</script>`;
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    const page = await context.newPage();
    const answer = page.waitForResponse((response) => response.url() === `${fixture.dashboardUrl}/sign-in` && response.request().method() === 'POST');
    await page.goto(otherOrigin);
    expect((await answer).status()).toBe(403);
    await expectHeading(page, 'This form could not be accepted');
    expect((await context.cookies()).map((cookie) => cookie.name)).not.toContain('kg_session');
    await page.goto('/keys');
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    await context.close();
  });

  it('shows no notice that a page on another port put in the notice cookie, and its own notices still', async () => {
    const planted = JSON.stringify({ kind: 'error', text: 'Security alert: your keys leaked. Confirm them at evil.example' });
    otherPage = `<!doctype html><script>document.cookie = 'kg_notice=' + encodeURIComponent(${JSON.stringify(planted)}) + '; path=/'; location.href = '${fixture.dashboardUrl}/sign-in';</script>`;
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    const page = await context.newPage();
    await page.goto(otherOrigin);
    await page.waitForURL(`${fixture.dashboardUrl}/sign-in`);
    await expectHeading(page, 'Sign in');
    expect(await page.content()).not.toContain('Security alert');
    expect(await page.locator('.notice').count()).toBe(0);

    // The dashboard's own notice, carried to the next page the same way, is shown.
    await signIn(page, 'mallory@example.com');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${fixture.dashboardUrl}/sign-in`);
    expect(await page.locator('.notice').allTextContents()).toEqual(['You are signed out.']);
    await context.close();
  });
});
