/**
 * What the dashboard must refuse, in real Chromium: another account's keys and usage
 * (in pages and by direct URL), form posts without the CSRF token, guessing passwords
 * (a lockout that looks the same for unknown emails), and sessions past their time.
 * Also what it must not keep: session ids in clear.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumAvailable,
  postFromPage,
  expectHeading,
  invite,
  join,
  newAccount,
  newContext,
  PASSWORD,
  screenshot,
  signedInPage,
  signIn,
  textOf,
  useDashboard,
} from './support.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The browser context's cookies as a Cookie header, for a request sent outside the page. */
async function cookieHeader(context: BrowserContext): Promise<string> {
  return (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
}

describe.skipIf(!chromiumAvailable())('dashboard: isolation, CSRF, lockout and sessions', () => {
  const fixture = useDashboard('keygate-dashboard-isolation');
  let acme: { context: BrowserContext; page: Page; accountId: string; keyId: string; secret: string; hint: string };
  let globex: { context: BrowserContext; page: Page; accountId: string };

  beforeAll(async () => {
    // Acme's member creates a key and uses it.
    const acmeId = await newAccount(fixture, 'Acme Analytics');
    const acmeContext = await newContext(fixture.browser, fixture.dashboardUrl);
    const acmePage = await acmeContext.newPage();
    await join(acmePage, await invite(fixture, 'ada@acme.example', acmeId), 'ada@acme.example');
    await acmePage.goto('/keys/new');
    await acmePage.getByLabel('Name').fill('Acme production');
    await acmePage.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await acmePage.getByRole('button', { name: 'Create key' }).click();
    const secret = await acmePage.getByLabel('Key “Acme production”').inputValue();
    const [key] = await fixture.keygate.runtime.store.listKeys({ accountId: acmeId });
    for (let i = 0; i < 3; i++) expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    acme = { context: acmeContext, page: acmePage, accountId: acmeId, keyId: key!.id, secret, hint: key!.hint };

    const globexId = await newAccount(fixture, 'Globex');
    const globexContext = await newContext(fixture.browser, fixture.dashboardUrl);
    const globexPage = await globexContext.newPage();
    await join(globexPage, await invite(fixture, 'bob@globex.example', globexId), 'bob@globex.example');
    globex = { context: globexContext, page: globexPage, accountId: globexId };
  });

  it('a member of another account sees none of the first account’s keys or usage', async () => {
    const { page } = globex;
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    const keys = await page.content();
    expect(keys).not.toContain('Acme production');
    expect(keys).not.toContain(acme.hint);
    expect(keys).not.toContain(acme.keyId);
    expect(await textOf(page.locator('.empty'))).toContain('No keys yet.');

    await page.goto('/usage');
    const usage = await page.content();
    expect(usage).not.toContain('Acme');
    expect(await textOf(page.locator('tr', { hasText: 'units' }))).toMatch(/^units\s+0\s+1,000\s+1,000/);
    expect(await textOf(page.getByRole('figure', { name: 'Requests per day' }))).toContain('No requests yet in this period.');

    // Acme's own member does see them.
    await acme.page.goto('/usage');
    expect(await textOf(acme.page.locator('tr', { hasText: 'units' }))).toMatch(/^units\s+3\s+1,000\s+997/);
  });

  it('direct URLs to another account’s key are 404, and posting to them changes nothing', async () => {
    const { page } = globex;
    for (const url of [`/keys/${acme.keyId}/revoke`, `/keys/${acme.keyId}/rotate`, '/keys/key_doesnotexist00/revoke']) {
      const response = await page.goto(url);
      expect(response?.status(), url).toBe(404);
      await expectHeading(page, 'Page not found');
      expect(await page.content()).not.toContain('Acme production');
    }
    await screenshot(page, 'not-found');

    await page.goto('/keys');
    for (const action of ['revoke', 'rotate']) {
      const answer = await postFromPage(page, `/keys/${acme.keyId}/${action}`, { overlap: 'now' }, { withToken: true });
      expect(answer.status, action).toBe(404);
    }
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${acme.secret}` } })).status).toBe(200);
    expect((await fixture.keygate.runtime.store.listKeys({ accountId: acme.accountId })).every((k) => k.revokedAt === null)).toBe(true);
  });

  it('operator pages do not exist for members', async () => {
    const { page } = globex;
    for (const url of ['/accounts', `/accounts/${acme.accountId}`, '/audit', `/accounts/${acme.accountId}/keys/${acme.keyId}/revoke`, `/accounts/${acme.accountId}/api-access`]) {
      const response = await page.goto(url);
      expect(response?.status(), url).toBe(404);
    }
    await page.goto('/keys');
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts()).toEqual(['API keys', 'Usage']);
    const answer = await postFromPage(page, `/accounts/${acme.accountId}/api-access`, { apiAccess: 'off' }, { withToken: true });
    expect(answer.status).toBe(404);
    expect((await fixture.keygate.runtime.store.getAccount(acme.accountId))?.apiAccess).toBe(true);
    // Lifting a block is an operator's: a member's post changes nothing (and is not audited).
    const unblock = await postFromPage(page, `/accounts/${acme.accountId}/keys/${acme.keyId}/unblock`, {}, { withToken: true });
    expect(unblock.status).toBe(404);
    expect((await fixture.keygate.runtime.store.listAudit({ accountId: acme.accountId, limit: 50 })).some((e) => e.action === 'key.unblocked')).toBe(false);
  });

  it('a member cannot remove a member of their own account, nor themselves: the removal pages do not exist for them', async () => {
    const { page, accountId } = acme;
    await invite(fixture, 'cy@acme.example', accountId);
    const colleague = (await fixture.keygate.runtime.store.findMemberByEmail('cy@acme.example'))?.id as string;
    const self = (await fixture.keygate.runtime.store.findMemberByEmail('ada@acme.example'))?.id as string;
    await page.goto('/keys');
    for (const id of [colleague, self]) {
      const url = `/accounts/${accountId}/members/${id}/remove`;
      expect((await page.goto(url))?.status(), url).toBe(404);
      await page.goto('/keys');
      expect((await postFromPage(page, url, {}, { withToken: true })).status, url).toBe(404);
      expect(await fixture.keygate.runtime.store.getMember(id), url).toBeDefined();
    }
    expect((await fixture.keygate.runtime.store.listAudit({ accountId, limit: 50 })).some((e) => e.action === 'member.removed')).toBe(false);
  });

  it('refuses form posts without the CSRF token with 403', async () => {
    const { page } = globex;
    await page.goto('/keys/new');
    const withoutToken = await postFromPage(page, '/keys', { name: 'forged', mode: 'live', scope: '*' }, { withToken: false });
    expect(withoutToken.status).toBe(403);
    expect(withoutToken.text).toContain('This form could not be accepted');
    const wrongToken = await postFromPage(page, '/keys', { name: 'forged', _csrf: 'not-the-token' }, { withToken: false });
    expect(wrongToken.status).toBe(403);
    const asJson = await postFromPage(page, '/keys', { name: 'forged' }, { withToken: false, contentType: 'application/json' });
    expect(asJson.status).toBe(403);
    const signOut = await postFromPage(page, '/sign-out', {}, { withToken: false });
    expect(signOut.status).toBe(403);
    // Acme's token is no good for Globex's session either.
    await acme.page.goto('/keys');
    const acmeToken = await acme.page.locator('input[name="_csrf"]').first().inputValue();
    const foreignToken = await postFromPage(page, '/keys', { name: 'forged', _csrf: acmeToken }, { withToken: false });
    expect(foreignToken.status).toBe(403);
    expect(await fixture.keygate.runtime.store.listKeys({ accountId: globex.accountId })).toEqual([]);

    // The same form with its token works, so the 403s were the token's doing.
    const withToken = await postFromPage(page, '/keys', { name: 'genuine', mode: 'live', scope: '*' }, { withToken: true });
    expect(withToken.status).toBe(201);
    expect(withToken.text).toContain('Copy your new key');

    // Sign-in and invitation forms are protected too, by a pre-session token.
    const anonymous = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await anonymous.goto('/sign-in');
    const forgedSignIn = await postFromPage(anonymous, '/sign-in', { email: 'bob@globex.example', password: PASSWORD }, { withToken: false });
    expect(forgedSignIn.status).toBe(403);
    await anonymous.context().close();
  });

  it('keeps only a hash of the session id, in an HttpOnly SameSite cookie that expires', async () => {
    const cookies = await globex.context.cookies();
    const session = cookies.find((c) => c.name === 'kg_session');
    expect(session).toBeDefined();
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe('Lax');
    expect(session?.path).toBe('/');
    const hoursLeft = ((session?.expires ?? 0) * 1000 - Date.now()) / HOUR;
    expect(hoursLeft).toBeGreaterThan(11.9);
    expect(hoursLeft).toBeLessThanOrEqual(12);

    const db = new Database(path.join(fixture.dir, 'keygate.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT * FROM sessions').all() as { id_hash: string }[];
      const value = session?.value as string;
      expect(rows.map((r) => r.id_hash)).toContain(createHash('sha256').update(value).digest('hex'));
      expect(JSON.stringify(rows)).not.toContain(value);
    } finally {
      db.close();
    }
  });

  it('locks an email after repeated failed sign-ins, and says the same for unknown emails', async () => {
    const carolAccount = await newAccount(fixture, 'Initech');
    const setUp = await signedInPage(fixture, fixture.browser, 'carol@initech.example', carolAccount);
    await setUp.context().close();

    const page = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    const attempt = async (email: string, password: string) => {
      await page.goto('/sign-in');
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(password);
      const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.getByRole('button', { name: 'Sign in' }).click()]);
      return { status: response.status(), message: await textOf(page.getByRole('alert')) };
    };

    for (let i = 1; i <= 4; i++) {
      expect(await attempt('carol@initech.example', `wrong password ${i}`)).toEqual({ status: 401, message: 'The email or password is incorrect.' });
    }
    // The pause ends 15 minutes after the fifth failure, told to the second (rounded up), as
    // the dashboard's other ends; somewhere between the request's start and its answer.
    const within15 = (shown: string | undefined, from: number, to: number) => {
      const at = Date.parse(`${(shown ?? '').replace(' ', 'T')}Z`);
      return at >= Math.ceil((from + 15 * MINUTE) / 1000) * 1000 && at <= Math.ceil((to + 15 * MINUTE) / 1000) * 1000;
    };
    const shownEnd = /paused until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/;
    const before = fixture.clock.now();
    const locked = await attempt('carol@initech.example', 'wrong password 5');
    expect(locked.status).toBe(429);
    const until = shownEnd.exec(locked.message)?.[1];
    expect(within15(until, before, fixture.clock.now()), until).toBe(true);
    expect(locked.message).toBe(
      `Too many failed sign-ins. Signing in with this email is paused until ${until} UTC (15 minutes); try again after that. If you forgot your password, contact whoever invited you.`,
    );
    await screenshot(page, 'sign-in-locked');
    // Even the right password is refused while locked.
    expect(await attempt('carol@initech.example', PASSWORD)).toEqual(locked);

    // An email that is nobody's gets exactly the same answers.
    for (let i = 1; i <= 4; i++) {
      expect(await attempt('nobody@initech.example', `guess ${i}`)).toEqual({ status: 401, message: 'The email or password is incorrect.' });
    }
    // Its pause began a moment later, so its end may be later; the rest is the same.
    const nobodyBefore = fixture.clock.now();
    const nobody = await attempt('nobody@initech.example', 'guess 5');
    const nobodyUntil = shownEnd.exec(nobody.message)?.[1];
    expect(within15(nobodyUntil, nobodyBefore, fixture.clock.now()), nobodyUntil).toBe(true);
    expect(nobody).toEqual({ status: 429, message: locked.message.replace(`until ${until} UTC`, `until ${nobodyUntil} UTC`) });

    // The operator can see it happened; after the lockout the right password works.
    const audit = await fixture.keygate.runtime.store.listAudit({ accountId: carolAccount });
    expect(audit.map((e) => e.action)).toContain('member.locked');
    fixture.clock.advance(15 * MINUTE + 1_000);
    await signIn(page, 'carol@initech.example');
    await expectHeading(page, 'API keys');
    await page.context().close();
  });

  it('lets a member paused for wrong passwords back in as soon as they set a new one by a reset link', async () => {
    const account = await newAccount(fixture, 'Umbrella');
    const page = await signedInPage(fixture, fixture.browser, 'dave@umbrella.example', account);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/sign-in');
    for (let i = 1; i <= 5; i++) {
      await page.getByLabel('Email').fill('dave@umbrella.example');
      await page.getByLabel('Password').fill(`forgotten ${i}`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
    }
    expect(await textOf(page.getByRole('alert'))).toMatch(/^Too many failed sign-ins/);
    // The operator sends a reset link; the member sets a new password with it.
    const response = await fixture.keygate.admin('/v1/members/password-resets', { method: 'POST', body: JSON.stringify({ email: 'dave@umbrella.example' }) });
    const { url } = (await response.json()) as { url: string };
    await join(page, fixture.dashboardUrl + new URL(url).pathname, 'dave@umbrella.example', 'a brand new passphrase');
    await expectHeading(page, 'API keys');
    const audit = await fixture.keygate.runtime.store.listAudit({ accountId: account });
    expect(audit.map((e) => e.action)).toContain('member.password_changed');
    // A used link says which links there are, and for how long they work.
    await page.goto(fixture.dashboardUrl + new URL(url).pathname);
    await expectHeading(page, 'This link does not work');
    await page.context().close();
  });

  it('ends sessions at sign-out and after the session time', async () => {
    // Sign-out: the old cookie no longer opens anything.
    const cookie = (await acme.context.cookies()).find((c) => c.name === 'kg_session')?.value as string;
    await acme.page.goto('/keys');
    await acme.page.getByRole('button', { name: 'Sign out' }).click();
    await acme.page.waitForURL('**/sign-in');
    expect(await textOf(acme.page.getByRole('status'))).toBe('You are signed out.');
    const replay = await fetch(`${fixture.dashboardUrl}/keys`, { headers: { cookie: `kg_session=${cookie}` }, redirect: 'manual' });
    expect(replay.status).toBe(303);
    expect(replay.headers.get('location')).toBe('/sign-in?next=%2Fkeys');

    // Expiry: 12 hours (the default sessionTtl) later, Globex's member must sign in again.
    // A form sent then is told so (not refused as a forgery); the page asked for next is
    // where signing in leads back to.
    await globex.page.goto('/keys/new');
    fixture.clock.advance(12 * HOUR + MINUTE);
    await globex.page.getByLabel('Name').fill('After hours');
    await globex.page.getByRole('button', { name: 'Create key' }).click();
    await globex.page.waitForURL((url) => url.pathname === '/sign-in');
    expect(await textOf(globex.page.getByRole('status'))).toBe('Your session has ended. Sign in again to continue.');
    await globex.page.goto('/usage');
    expect(new URL(globex.page.url())).toMatchObject({ pathname: '/sign-in', search: '?next=%2Fusage' });
    await signIn(globex.page, 'bob@globex.example');
    expect(new URL(globex.page.url()).pathname).toBe('/usage');
    // A form sent without the cookie (the browser dropped it when the session ended) is told
    // so when it is the dashboard's own; one from another site is sent on without a word.
    for (const [site, notice] of [['same-origin', true], ['cross-site', false]] as const) {
      const answer = await fetch(`${fixture.dashboardUrl}/keys`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': site }, body: 'name=x', redirect: 'manual' });
      expect({ site, status: answer.status, location: answer.headers.get('location'), notice: answer.headers.getSetCookie().some((c) => c.startsWith('kg_notice=')) }).toEqual({ site, status: 303, location: '/sign-in', notice });
    }
    // Only a page of this dashboard: another site is no place to go back to.
    for (const next of ['//evil.example/', '/\\evil.example/', 'https://evil.example/', '/sign-out']) {
      const answer = await fetch(`${fixture.dashboardUrl}/sign-in?next=${encodeURIComponent(next)}`, { headers: { cookie: await cookieHeader(globex.context) }, redirect: 'manual' });
      expect({ next, location: answer.headers.get('location') }).toEqual({ next, location: '/' });
    }
  });
});
