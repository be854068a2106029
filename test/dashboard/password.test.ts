/**
 * A member changing their own password in the dashboard, in real Chromium: the new one
 * signs in and the old one no longer does; their other sessions are signed out while this
 * one goes on under a new id; a wrong current password is refused and counted as a failed
 * sign-in (the fifth in a row pauses it, here and on the sign-in page); a mismatch, a short
 * or spaces-only password, or the same one again are refused with a message, and no typed
 * password comes back in the page; a POST without the form's token is refused.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { LOCKOUT_MS, MAX_FAILED_SIGN_INS } from '../../src/members/lockout.js';
import { verifyPassword } from '../../src/members/password.js';
import { sha256Hex } from '../../src/keys/hash.js';
import {
  chromiumAvailable,
  expectHeading,
  invite,
  join,
  newAccount,
  newContext,
  PASSWORD,
  signIn,
  textOf,
  useDashboard,
} from './support.js';

const NEW_PASSWORD = 'a brand new passphrase';
const SESSION_COOKIE = 'kg_session';

describe.skipIf(!chromiumAvailable())('dashboard: changing your own password', () => {
  const fixture = useDashboard('keygate-dashboard-password');

  /** A new member of an account of their own, signed in in a browser context of their own. */
  async function newMember(name: string): Promise<{ email: string; accountId: string; context: BrowserContext; page: Page }> {
    const email = `${name}@acme.example`;
    const accountId = await newAccount(fixture, `Acme ${name}`);
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    const page = await context.newPage();
    await join(page, await invite(fixture, email, accountId), email);
    return { email, accountId, context, page };
  }

  /** Fills the form and sends it; the answer's status (the page then shows the answer, or the page redirected to). */
  async function change(page: Page, current: string, password: string, confirm = password): Promise<number> {
    if (new URL(page.url()).pathname !== '/password') await page.goto('/password');
    await page.getByLabel('Current password').fill(current);
    await page.getByLabel('New password', { exact: true }).fill(password);
    await page.getByLabel('Confirm new password').fill(confirm);
    const [answer] = await Promise.all([
      page.waitForResponse((response) => new URL(response.url()).pathname === '/password' && response.request().method() === 'POST'),
      page.getByRole('button', { name: 'Change password' }).click(),
    ]);
    await page.waitForLoadState();
    return answer.status();
  }

  async function storedPasswordIs(email: string, password: string): Promise<boolean> {
    const member = await fixture.keygate.runtime.store.findMemberByEmail(email);
    return verifyPassword(password, member?.passwordHash ?? '');
  }

  /** Signs in with fetch (a cookie jar of its own) and returns the session cookie's value. */
  async function signInOverHttp(email: string, password = PASSWORD): Promise<string> {
    const form = await fetch(`${fixture.dashboardUrl}/sign-in`);
    const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string;
    const formCookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const answer = await fetch(`${fixture.dashboardUrl}/sign-in`, {
      method: 'POST',
      headers: { cookie: formCookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: token, email, password }),
      redirect: 'manual',
    });
    expect(answer.status).toBe(303);
    const cookie = answer.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`)) as string;
    return /^kg_session=([^;]+)/.exec(cookie)?.[1] as string;
  }

  async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
    return (await context.cookies()).find((c) => c.name === SESSION_COOKIE)?.value;
  }

  it('labels the new password and its confirmation alike on the invitation page and the password page', async () => {
    const email = 'labels@acme.example';
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    const page = await context.newPage();
    await page.goto(await invite(fixture, email, await newAccount(fixture, 'Acme labels')));
    await expectHeading(page, 'Choose your password');
    expect(await page.locator('form label').allInnerTexts()).toEqual(['New password', 'Confirm new password']);
    await page.getByLabel('New password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Confirm new password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.waitForURL((url) => !url.pathname.startsWith('/invite/'));
    await page.goto('/password');
    expect(await page.locator('form label').allInnerTexts()).toEqual(['Current password', 'New password', 'Confirm new password']);
    await context.close();
  });

  it('refuses on the invitation page beside the field at fault, which is focused and described by it, and never sends a typed password back', async () => {
    const email = 'beside@acme.example';
    const link = await invite(fixture, email, await newAccount(fixture, 'Acme beside'));
    const context = await newContext(fixture.browser, fixture.dashboardUrl);
    const page = await context.newPage();
    const cases: [string, string, string, string, string][] = [
      // Both fields come back empty: typing starts again at the first.
      ['differs', 'one new passphrase', 'another new passphrase', 'New password', 'The two passwords are different. Type the same password twice.'],
      ['short', 'short', 'short', 'New password', 'Choose a password of at least 10 characters.'],
    ];
    for (const [what, password, confirm, label, message] of cases) {
      await page.goto(link);
      await page.locator('input[minlength]').evaluateAll((inputs) => inputs.forEach((input) => input.removeAttribute('minlength')));
      await page.getByLabel('New password', { exact: true }).fill(password);
      await page.getByLabel('Confirm new password').fill(confirm);
      const [answer] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.getByRole('button', { name: 'Set password' }).click()]);
      await page.waitForLoadState();
      expect({ what, status: answer.status() }).toEqual({ what, status: 400 });
      await expectHeading(page, 'Choose your password');
      expect({ what, alert: await textOf(page.getByRole('alert')) }).toEqual({ what, alert: message });
      // Beside its field: the form's next field after the refusal is the one it is about, and the one focused.
      const after = await page.getByRole('alert').evaluate((alert) => {
        const next = alert.nextElementSibling?.querySelector('input');
        return { inForm: alert.closest('form') !== null, next: next?.labels?.[0]?.textContent, focused: (document.activeElement as HTMLInputElement | null)?.labels?.[0]?.textContent };
      });
      expect({ what, ...after }).toEqual({ what, inForm: true, next: label, focused: label });
      const field = page.getByLabel(label, { exact: true });
      expect({ what, invalid: await field.getAttribute('aria-invalid'), describedBy: await field.evaluate((input) => (input.getAttribute('aria-describedby') ?? '').split(' ').map((id) => document.getElementById(id)?.getAttribute('role'))) }).toEqual({
        what,
        invalid: 'true',
        describedBy: expect.arrayContaining(['alert']),
      });
      const typed = await page.locator('input[type=password]').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).value));
      expect({ what, typed }).toEqual({ what, typed: ['', ''] });
      const markup = await page.content();
      for (const secret of [password, confirm]) expect(markup).not.toContain(secret);
    }
    expect((await fixture.keygate.runtime.store.findMemberByEmail(email))?.passwordHash).toBeNull();
    await context.close();
  });

  it('refuses on the password page beside the field at fault, which is focused and described by it: New password for two that differ (all fields come back empty), Current password when that is wrong', async () => {
    const { context, page } = await newMember('beside');
    const cases: [string, string, string, string, string, string][] = [
      ['differs', PASSWORD, 'one new passphrase', 'another new passphrase', 'New password', 'The new password and its confirmation are different. Type the same new password twice.'],
      ['short', PASSWORD, 'short', 'short', 'New password', 'Choose a password of at least 10 characters.'],
      ['same', PASSWORD, PASSWORD, PASSWORD, 'New password', 'The new password is the same as the current one: choose a different one.'],
      ['wrong current', 'not my password', NEW_PASSWORD, NEW_PASSWORD, 'Current password', `The current password is incorrect; nothing was changed. It counts as a failed sign-in: after ${MAX_FAILED_SIGN_INS} in a row, checking your password (here and on the sign-in page) is paused for 15 minutes.`],
    ];
    for (const [what, current, password, confirm, label, message] of cases) {
      await page.goto('/password');
      await page.locator('input[minlength]').evaluateAll((inputs) => inputs.forEach((input) => input.removeAttribute('minlength')));
      await change(page, current, password, confirm);
      await expectHeading(page, 'Change your password');
      expect({ what, alert: await textOf(page.getByRole('alert')) }).toEqual({ what, alert: message });
      // Chromium applies autofocus at its next rendering, which can come after the load event: wait for a field to have it.
      await page.waitForFunction(() => document.activeElement instanceof HTMLInputElement, undefined, { timeout: 10_000 }).catch(() => undefined);
      // Beside its field: the form's next field after the refusal is the one it is about, and the one focused.
      const after = await page.getByRole('alert').evaluate((alert) => {
        const next = alert.nextElementSibling?.querySelector('input');
        return { inForm: alert.closest('form') !== null, next: next?.labels?.[0]?.textContent, focused: (document.activeElement as HTMLInputElement | null)?.labels?.[0]?.textContent };
      });
      expect({ what, ...after }).toEqual({ what, inForm: true, next: label, focused: label });
      // Only that field is marked, and it is described by the refusal.
      const marked = await page.locator('input[aria-invalid="true"]').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).labels?.[0]?.textContent));
      expect({ what, marked }).toEqual({ what, marked: [label] });
      const field = page.getByLabel(label, { exact: true });
      expect({ what, describedBy: await field.evaluate((input) => (input.getAttribute('aria-describedby') ?? '').split(' ').map((id) => document.getElementById(id)?.getAttribute('role'))) }).toEqual({
        what,
        describedBy: expect.arrayContaining(['alert']),
      });
      const typed = await page.locator('input[type=password]').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).value));
      expect({ what, typed }).toEqual({ what, typed: ['', '', ''] });
    }
    await context.close();
  });

  it('changes it from the header\'s link: the new password signs in, the old does not, and every other session is signed out', async () => {
    const { email, accountId, context, page } = await newMember('ada');
    // The same member signed in in another browser (a laptop left signed in, a stolen cookie).
    const other = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await other.goto('/sign-in');
    await signIn(other, email);
    await expectHeading(other, 'API keys');
    const before = await sessionCookie(context);

    await page.getByRole('link', { name: 'Change password' }).click();
    await expectHeading(page, 'Change your password');
    expect(await page.getByRole('link', { name: 'Change password' }).getAttribute('aria-current')).toBe('page');
    expect(await page.getByLabel('Current password').getAttribute('autocomplete')).toBe('current-password');
    expect(await page.getByLabel('New password', { exact: true }).getAttribute('autocomplete')).toBe('new-password');
    expect(await page.getByLabel('Confirm new password').getAttribute('autocomplete')).toBe('new-password');
    expect(await change(page, PASSWORD, NEW_PASSWORD)).toBe(303);
    await expectHeading(page, 'Change your password');
    expect(await textOf(page.getByRole('status'))).toBe('Your password is changed. You are still signed in here; every other session of yours is signed out.');

    // This browser stays signed in, under a new session id; the old id opens nothing.
    const after = await sessionCookie(context);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    const replay = await fetch(`${fixture.dashboardUrl}/keys`, { headers: { cookie: `${SESSION_COOKIE}=${before}` }, redirect: 'manual' });
    expect(replay.status).toBe(303);
    // The other browser is signed out.
    await other.goto('/keys');
    expect(new URL(other.url()).pathname).toBe('/sign-in');
    expect(await textOf(other.getByRole('status'))).toBe('Your session has ended. Sign in again to continue.');

    // The old password no longer signs in; the new one does.
    await other.getByLabel('Email').fill(email);
    await other.getByLabel('Password').fill(PASSWORD);
    await other.getByRole('button', { name: 'Sign in' }).click();
    await expectHeading(other, 'Sign in');
    expect(await textOf(other.getByRole('alert'))).toBe('The email or password is incorrect.');
    await signIn(other, email, NEW_PASSWORD);
    await expectHeading(other, 'API keys');

    // Audited, with nothing secret in it.
    const events = (await fixture.keygate.runtime.store.listAudit({ accountId })).filter((e) => e.action === 'member.password_changed');
    expect(events.map((e) => ({ actor: e.actor, actorAddress: e.actorAddress, detail: e.detail }))).toEqual([{ actor: email, actorAddress: '127.0.0.1', detail: { email, via: 'current_password' } }]);
    await other.context().close();
    await context.close();
  });

  it('refuses a new password that differs from its confirmation, is short, is only spaces, or is the current one, and never sends a typed password back', async () => {
    const { email, context, page } = await newMember('bea');
    const cases: [string, string, string, string][] = [
      ['differs', 'one new passphrase', 'another new passphrase', 'The new password and its confirmation are different. Type the same new password twice.'],
      ['short', 'short', 'short', 'Choose a password of at least 10 characters.'],
      ['spaces', ' '.repeat(12), ' '.repeat(12), 'Choose a password that is more than spaces.'],
      ['same', PASSWORD, PASSWORD, 'The new password is the same as the current one: choose a different one.'],
    ];
    for (const [what, password, confirm, message] of cases) {
      await page.goto('/password');
      // The browser's own minlength check would stop "short" before it is sent (an older browser, or a script, would not).
      await page.locator('input[minlength]').evaluateAll((inputs) => inputs.forEach((input) => input.removeAttribute('minlength')));
      expect({ what, status: await change(page, PASSWORD, password, confirm) }).toEqual({ what, status: 400 });
      await expectHeading(page, 'Change your password');
      expect({ what, alert: await textOf(page.getByRole('alert')) }).toEqual({ what, alert: message });
      const typed = await page.locator('input[type=password]').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).value));
      expect({ what, typed }).toEqual({ what, typed: ['', '', ''] });
      const markup = await page.content();
      for (const secret of [PASSWORD, password, confirm].filter((s) => s.trim() !== '')) expect(markup).not.toContain(secret);
    }
    expect(await storedPasswordIs(email, PASSWORD)).toBe(true);
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    await context.close();
  });

  it('refuses a wrong current password and counts it as a failed sign-in: the fifth in a row pauses it, here and on the sign-in page', async () => {
    const { email, accountId, context, page } = await newMember('cleo');
    for (let i = 1; i < MAX_FAILED_SIGN_INS; i++) {
      expect(await change(page, `wrong guess ${i}`, NEW_PASSWORD)).toBe(401);
      expect(await textOf(page.getByRole('alert'))).toBe(
        `The current password is incorrect; nothing was changed. It counts as a failed sign-in: after ${MAX_FAILED_SIGN_INS} in a row, checking your password (here and on the sign-in page) is paused for 15 minutes.`,
      );
      expect(await page.getByLabel('Current password').getAttribute('aria-invalid')).toBe('true');
    }
    expect(await change(page, `wrong guess ${MAX_FAILED_SIGN_INS}`, NEW_PASSWORD)).toBe(429);
    const paused = /^Too many wrong passwords: your password cannot be checked until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(15 minutes\), here or on the sign-in page; nothing was changed\. Try again after that \(you stay signed in\)\.$/;
    expect(await textOf(page.getByRole('alert'))).toMatch(paused);
    // The right password waits too: guessing it after the pause would be no slower.
    expect(await change(page, PASSWORD, NEW_PASSWORD)).toBe(429);
    expect(await textOf(page.getByRole('alert'))).toMatch(paused);
    expect(await storedPasswordIs(email, PASSWORD)).toBe(true);
    const locked = (await fixture.keygate.runtime.store.listAudit({ accountId })).filter((e) => e.action === 'member.locked');
    expect(locked.map((e) => e.detail.scope)).toEqual(['address']);
    // Caused by a check from this browser: the lock names its address as where it came from.
    expect(locked.map((e) => [e.actor, e.actorAddress])).toEqual([['dashboard', '127.0.0.1']]);

    // Signing in from this address is paused the same way.
    const visitor = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await visitor.goto('/sign-in');
    await visitor.getByLabel('Email').fill(email);
    await visitor.getByLabel('Password').fill(PASSWORD);
    await visitor.getByRole('button', { name: 'Sign in' }).click();
    await expectHeading(visitor, 'Sign in');
    expect(await textOf(visitor.getByRole('alert'))).toMatch(/^Too many failed sign-ins\. Signing in with this email is paused until/);
    await visitor.context().close();

    // The session itself stays; once the pause is over the change goes through.
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    fixture.clock.advance(LOCKOUT_MS + 1_000);
    expect(await change(page, PASSWORD, NEW_PASSWORD)).toBe(303);
    expect(await storedPasswordIs(email, NEW_PASSWORD)).toBe(true);
    await context.close();
  });

  it('keeps this session\'s end where it was (no fresh sessionTtl) and signs out the member\'s other sessions, over HTTP with two cookie jars', async () => {
    const email = 'erin@acme.example';
    const accountId = await newAccount(fixture, 'Acme erin');
    const joining = await newContext(fixture.browser, fixture.dashboardUrl);
    await join(await joining.newPage(), await invite(fixture, email, accountId), email);
    await joining.close();
    const here = await signInOverHttp(email);
    const elsewhere = await signInOverHttp(email);
    const ttlMs = 12 * 3_600_000;
    const stored = async (id: string) => fixture.keygate.runtime.store.getSession(sha256Hex(id));
    const signedInAt = fixture.clock.now();
    const originalEnd = (await stored(here))?.expiresAt as number;
    expect(originalEnd).toBeGreaterThanOrEqual(signedInAt - 5_000 + ttlMs);

    // Ten hours into the twelve, the password is changed in this browser.
    fixture.clock.advance(10 * 3_600_000);
    const form = await fetch(`${fixture.dashboardUrl}/password`, { headers: { cookie: `${SESSION_COOKIE}=${here}` } });
    const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string;
    const changed = await fetch(`${fixture.dashboardUrl}/password`, {
      method: 'POST',
      headers: { cookie: `${SESSION_COOKIE}=${here}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: token, current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD }),
      redirect: 'manual',
    });
    expect(changed.status).toBe(303);
    const cookie = changed.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`)) as string;
    const renewed = /^kg_session=([^;]+)/.exec(cookie)?.[1] as string;
    expect(renewed).not.toBe(here);
    // The new id lasts as long as the old one had left (two hours, give or take the requests' own time), not twelve hours.
    const maxAge = Number(/Max-Age=(\d+)/i.exec(cookie)?.[1]);
    expect(maxAge).toBeGreaterThan(2 * 3_600 - 60);
    expect(maxAge).toBeLessThanOrEqual(2 * 3_600);
    expect((await stored(renewed))?.expiresAt).toBe(originalEnd);

    const keysWith = async (id: string) => {
      const answer = await fetch(`${fixture.dashboardUrl}/keys`, { headers: { cookie: `${SESSION_COOKIE}=${id}` }, redirect: 'manual' });
      return { status: answer.status, location: answer.headers.get('location') };
    };
    expect(await keysWith(renewed)).toEqual({ status: 200, location: null });
    // The other cookie jar is signed out, and so is the old id.
    expect(await keysWith(elsewhere)).toEqual({ status: 303, location: '/sign-in?next=%2Fkeys' });
    expect(await keysWith(here)).toEqual({ status: 303, location: '/sign-in?next=%2Fkeys' });
    // Once the time the session began with is past, it has ended.
    fixture.clock.advance(originalEnd - fixture.clock.now() + 1_000);
    expect(await keysWith(renewed)).toEqual({ status: 303, location: '/sign-in?next=%2Fkeys' });
  });

  it('refuses a POST without the form\'s token (403), changing nothing; the same POST with it changes the password', async () => {
    const { email, context, page } = await newMember('dave');
    await page.goto('/password');
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const fields = { current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD };
    const post = (extra: Record<string, string> = {}) =>
      fetch(`${fixture.dashboardUrl}/password`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ ...fields, ...extra }).toString(), redirect: 'manual' });
    const refused = await post();
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('<h1>This form could not be accepted</h1>');
    expect(await storedPasswordIs(email, PASSWORD)).toBe(true);
    // Still signed in: nothing happened to the session either.
    await page.goto('/keys');
    await expectHeading(page, 'API keys');

    const token = await page.locator('input[name=_csrf]').first().inputValue();
    const accepted = await post({ _csrf: token });
    expect({ status: accepted.status, location: accepted.headers.get('location') }).toEqual({ status: 303, location: '/password' });
    expect(await storedPasswordIs(email, NEW_PASSWORD)).toBe(true);
    await context.close();
  });
});
