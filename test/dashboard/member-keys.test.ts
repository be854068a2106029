/**
 * A member manages keys in the dashboard, in real Chromium, against a real gateway:
 * accept an invitation, sign in, create a key with the keyboard only, copy it from the
 * page, call the gateway with it (200), revoke it in the page (the dialect's 401 on the
 * next call), and rotate a key with an overlap during which both keys work.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumAvailable,
  focusOutline,
  expectHeading,
  invite,
  join,
  newAccount,
  newContext,
  PAGE_TIMEOUT,
  screenshot,
  shown,
  tabTo,
  textOf,
  useDashboard,
} from './support.js';

const HOUR = 3_600_000;

describe.skipIf(!chromiumAvailable())('dashboard: a member manages the account’s keys', () => {
  const fixture = useDashboard('keygate-dashboard-keys');
  let context: BrowserContext;
  let page: Page;
  let copied = '';

  const callGateway = (secret: string) => fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });

  beforeAll(async () => {
    context = await newContext(fixture.browser, fixture.dashboardUrl);
    page = await context.newPage();
  });

  it('lets an invited member choose a password, which signs them in', async () => {
    const accountId = await newAccount(fixture, 'Acme Analytics');
    const link = await invite(fixture, 'ada@acme.example', accountId);

    await page.goto(fixture.dashboardUrl);
    expect(await page.title()).toBe('Sign in · Ranksy');
    // A member who forgot their password is told the way back (there is no reset form), before any failed try.
    expect(await textOf(page.getByText(/^Forgot your password\?/))).toBe('Forgot your password? Ask whoever invited you for a password reset link.');
    await screenshot(page, 'sign-in');

    await page.goto(link);
    await expectHeading(page, 'Choose your password');
    await shown(page.getByText('You will sign in as ada@acme.example'));
    // Which account the invitation is for.
    expect(await textOf(page.locator('main p').first())).toBe('You were invited to manage the API keys of Acme Analytics. You will sign in as ada@acme.example.');
    await screenshot(page, 'invitation');

    await join(page, link, 'ada@acme.example');
    expect(new URL(page.url()).pathname).toBe('/keys');
    expect(await textOf(page.getByRole('status'))).toBe('Your password is set. You are signed in as ada@acme.example.');
    expect((await context.cookies()).find((c) => c.name === 'kg_session')).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    await expectHeading(page, 'API keys');
    await shown(page.getByText('No keys yet.'));
    await screenshot(page, 'keys-empty');

    // The link worked once.
    const again = await page.goto(link);
    expect(again?.status()).toBe(404);
    await expectHeading(page, 'This link does not work');
  });

  it('creates a key with the keyboard only and shows its secret once, with a copy button', async () => {
    await page.goto('/keys');
    await tabTo(page, 'the "Create a key" link', (el) => el.tag === 'a' && el.text === 'Create a key');
    expect(await focusOutline(page)).toMatch(/^solid 3px/);
    await page.keyboard.press('Enter');
    await page.waitForURL('**/keys/new');
    expect(await page.title()).toBe('Create a key · Ranksy');
    // What a test key is here: told apart upstream, not spared the limits (docs/authentication.md).
    expect(await textOf(page.locator('fieldset', { has: page.locator('legend', { hasText: 'Mode' }) }).locator('.hint'))).toBe('The API is told each request’s mode; test keys spend the account’s rate limits and quotas as live keys do.');

    // The name field has the focus; everything else is reached with Tab, arrows and Space.
    // Chromium applies autofocus at its next rendering, which on a loaded machine can come after
    // the load event, so wait for the focus rather than type into whatever has it first.
    await page.waitForFunction(() => document.activeElement?.id === 'name', undefined, { timeout: PAGE_TIMEOUT });
    await page.keyboard.type('Production server');
    expect(await page.getByLabel('Name').inputValue()).toBe('Production server');
    await tabTo(page, 'the mode radio group', (el) => el.name === 'mode', 3);
    await page.keyboard.press('ArrowRight'); // Live → Test
    await page.keyboard.press('ArrowLeft'); // back to Live
    await tabTo(page, 'the first scope', (el) => el.name === 'scope', 3);
    // None is ticked at first: past "*" to projects:read.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Space'); // check projects:read
    await screenshot(page, 'create-key');
    await tabTo(page, 'the "Create key" button', (el) => el.tag === 'button' && el.text === 'Create key');
    const [created] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.keyboard.press('Enter')]);
    expect(created.status()).toBe(201);
    expect(created.headers()['cache-control']).toBe('no-store');

    await expectHeading(page, 'Copy your new key');
    await shown(page.getByText('This is the only time this key is shown.'));
    const displayed = await page.getByLabel('Key “Production server”').inputValue();
    expect(displayed).toMatch(/^rk_live_[0-9A-Za-z]{30}$/);
    // How to send it; where to (dashboard.apiUrl) is not set in this profile, so not said.
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: Bearer <your key>.');
    expect(await page.locator('pre.try').count()).toBe(0);

    // The secret is in the page, never in its address, and the answer is not cached.
    expect(page.url()).not.toContain(displayed);
    expect(new URL(page.url()).pathname).toBe('/keys');

    // The keyboard starts at the secret (it was 7 Tabs away): one Tab reaches Copy key.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('secret');
    await tabTo(page, 'the copy button', (el) => el.tag === 'button' && el.text === 'Copy key', 1);
    await page.keyboard.press('Enter');
    await shown(page.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }));
    copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(displayed);
    await screenshot(page, 'key-created');

    // Reloading the list shows the key by its hint only.
    await page.getByRole('link', { name: /back to the keys/ }).click();
    const row = page.locator('tr', { hasText: 'Production server' });
    const rowText = await textOf(row);
    expect(rowText).toContain(`rk_live_…${copied.slice(-4)}`);
    expect(rowText).toContain('projects:read');
    expect(rowText).toContain('Active');
    expect(await page.content()).not.toContain(copied);
  });

  it('the copied key calls the gateway; usage shows the request', async () => {
    const response = await callGateway(copied);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: unknown[] };
    expect(body.data).toHaveLength(2);

    // The same key lacks rankings:read, which the gateway enforces.
    const rankings = await fixture.keygate.call('/v1/rankings?limit=5', { headers: { authorization: `Bearer ${copied}` } });
    expect(rankings.status).toBe(403);

    await page.goto('/usage');
    await expectHeading(page, 'Usage');
    const facts = await textOf(page.locator('.facts'));
    expect(facts).toContain('Pro');
    expect(facts).toMatch(/API access\s+On/);
    const units = page.locator('tr', { hasText: 'units' }).first();
    expect((await textOf(units)).split(/\s+/)).toEqual(expect.arrayContaining(['1', '1,000', '999']));
    await shown(page.getByRole('img', { name: /Requests per day.*2 requests in all/ }));
    expect(await textOf(page.locator('.hbars'))).toContain('Insufficient scope');
    await screenshot(page, 'usage');

    await page.goto('/keys');
    expect(await textOf(page.locator('tr', { hasText: 'Production server' }).locator('td[data-label="Last used (UTC)"]'))).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
  });

  it('revokes the key after a confirmation; the next call gets the dialect’s 401', async () => {
    await page.goto('/keys');
    await page.getByRole('link', { name: 'Revoke Production server' }).click();
    await expectHeading(page, 'Revoke key “Production server”?');
    await screenshot(page, 'revoke-confirm');

    // Cancelling changes nothing.
    await page.getByRole('link', { name: 'Cancel' }).click();
    expect((await callGateway(copied)).status).toBe(200);

    await page.getByRole('link', { name: 'Revoke Production server' }).click();
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await page.waitForURL('**/keys');
    expect(await textOf(page.getByRole('status'))).toMatch(/^Key “Production server” \(rk_live_…\w{4}\) is revoked\./);
    expect(await textOf(page.locator('tr', { hasText: 'Production server' }))).toContain('Revoked');

    const refused = await callGateway(copied);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(await refused.json()).toEqual({ error: { type: 'authentication_error', code: 'revoked_key', message: 'This API key has been revoked.' } });
    await screenshot(page, 'keys-after-revoke');

    // A revoked key that was never rotated has no replacement to rotate: its rotate page offers a new key.
    const revoked = (await fixture.keygate.runtime.store.listKeys({})).find((k) => k.name === 'Production server');
    expect((await page.goto(`/keys/${revoked?.id}/rotate`))?.status()).toBe(409);
    expect(await textOf(page.getByRole('alert'))).toMatch(/; only an active key can be rotated: create a new key instead\.$/);
    expect(await page.getByRole('link', { name: /^Rotate “/ }).count()).toBe(0);
    await page.getByRole('link', { name: 'Create a key' }).click();
    await expectHeading(page, 'Create a key');
  });

  it('rotates a key: both work during the overlap, the old one stops after it', async () => {
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Nightly export');
    await page.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const oldSecret = await page.getByLabel('Key “Nightly export”').inputValue();
    expect((await callGateway(oldSecret)).status).toBe(200);

    await page.goto('/keys');
    await page.getByRole('link', { name: 'Rotate Nightly export' }).click();
    await expectHeading(page, 'Rotate key “Nightly export”');
    expect(await page.getByRole('radio', { name: '24 hours' }).isChecked()).toBe(true);
    await page.getByRole('radio', { name: '1 hour' }).check();
    await screenshot(page, 'rotate');
    await page.getByRole('button', { name: 'Rotate key' }).click();

    await expectHeading(page, 'Copy your replacement key');
    await shown(page.getByText(/keeps working until .* \(in 1 h\)/));
    const newSecret = await page.getByLabel('Key “Nightly export”').inputValue();
    expect(newSecret).not.toBe(oldSecret);
    await screenshot(page, 'rotated');

    // During the overlap both keys work.
    expect((await callGateway(oldSecret)).status).toBe(200);
    expect((await callGateway(newSecret)).status).toBe(200);
    await page.goto('/keys');
    const rows = page.locator('tr', { hasText: 'Nightly export' });
    expect(await rows.count()).toBe(2);
    expect(await rows.filter({ hasText: 'Expiring in 1 h' }).count()).toBe(1);
    // Neither offers another rotation until the outgoing key has stopped (it would be refused).
    expect(await page.getByRole('link', { name: 'Rotate Nightly export' }).count()).toBe(0);
    // Its rotate page, from an old tab or typed in, says so at once instead of offering a form that would be refused.
    const outgoing = (await fixture.keygate.runtime.store.listKeys({})).find((k) => k.name === 'Nightly export' && k.rotatedFrom === null);
    const stale = await page.goto(`/keys/${outgoing?.id}/rotate`);
    expect(stale?.status()).toBe(409);
    await expectHeading(page, 'Key “Nightly export” cannot be rotated');
    // The replacement named as the member sees it: name and hint (no internal id).
    const replacement = (await fixture.keygate.runtime.store.listKeys({})).find((k) => k.rotatedFrom === outgoing?.id);
    expect(await textOf(page.getByRole('alert'))).toBe(`This key was already rotated; rotate its replacement “Nightly export” ${replacement?.hint} instead.`);
    expect(await page.getByRole('button', { name: 'Rotate key' }).count()).toBe(0);
    // Nor is the replacement's rotation offered while the outgoing key works (it would be refused), nor a new key.
    expect(await page.getByRole('link', { name: /^Rotate “/ }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    // The page says why not yet, until when, and what the member can do now: revoke the outgoing key (its own confirmation page).
    // To the minute, rounded up, as its Expires cell and the refusal above name it: at that minute the rotation is accepted.
    const outgoingEnd = new Date(Math.ceil((outgoing?.expiresAt as number) / 60_000) * 60_000).toISOString().slice(0, 16).replace('T', ' ');
    expect(await textOf(page.locator('#replacement-not-yet'))).toBe(
      `“Nightly export” ${replacement?.hint} cannot be rotated yet either: it replaced this key, which keeps working until ${outgoingEnd} UTC (in 1 h). “Nightly export” ${replacement?.hint} can be rotated once this key has stopped working, or now if you revoke this key first.`,
    );
    await page.getByRole('link', { name: `Revoke “Nightly export” ${outgoing?.hint}` }).click();
    await expectHeading(page, 'Revoke key “Nightly export”?');
    expect(new URL(page.url()).pathname).toBe(`/keys/${outgoing?.id}/revoke`);
    await page.goto('/keys');
    expect(await page.getByRole('link', { name: 'Revoke Nightly export' }).count()).toBe(2);
    // Counted as the plan's limit counts them (the outgoing key too, until it stops), and said.
    await shown(page.getByText('2 of 3 keys in use on the Pro plan (1 of them being replaced)'));
    await screenshot(page, 'keys');

    // After it, only the replacement does.
    fixture.clock.advance(HOUR + 1_000);
    const expired = await callGateway(oldSecret);
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { error: { code: string } }).error.code).toBe('expired_key');
    expect((await callGateway(newSecret)).status).toBe(200);
    await page.reload();
    expect(await textOf(page.getByRole('table', { name: 'Revoked and expired keys' }))).toContain('Nightly export');
    expect(await page.getByRole('link', { name: 'Rotate Nightly export' }).count()).toBe(1);

    // The expired key's rotate page names its replacement and offers to rotate that one, instead of a new key.
    const stopped = await page.goto(`/keys/${outgoing?.id}/rotate`);
    expect(stopped?.status()).toBe(409);
    await expectHeading(page, 'Key “Nightly export” cannot be rotated');
    expect(await textOf(page.getByRole('alert'))).toMatch(new RegExp(`expired at .*; only an active key can be rotated: rotate its replacement “Nightly export” ${replacement?.hint} instead\\.$`));
    expect(await page.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    await page.getByRole('link', { name: `Rotate “Nightly export” ${replacement?.hint}` }).click();
    await expectHeading(page, 'Rotate key “Nightly export”');
    expect(new URL(page.url()).pathname).toBe(`/keys/${replacement?.id}/rotate`);
    expect(await page.getByRole('button', { name: 'Rotate key' }).count()).toBe(1);
  });

  it('refuses keys beyond the plan’s limit with a clear message', async () => {
    // Pro allows 3 keys in use; one is in use (the replacement), so two more fit.
    // Every route of the test profile needs a scope: each key is given one.
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Second');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    // A form opened while there was room, sent once there is none.
    const earlier = await page.context().newPage();
    await earlier.goto('/keys/new');
    await earlier.getByLabel('Name').fill('One too many');
    await earlier.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Third');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    await earlier.getByRole('button', { name: 'Create key' }).click();
    expect(await textOf(earlier.getByRole('alert'))).toBe('The Pro plan allows 3 keys per account; revoke one first.');
    expect(await earlier.getByLabel('Name').inputValue()).toBe('One too many');
    await screenshot(earlier, 'create-key-limit');
    await earlier.close();
    // Opened at the limit, the page says so instead of offering a form that would be refused.
    await page.goto('/keys/new');
    await expectHeading(page, 'No room for another key');
    expect(await textOf(page.getByRole('alert'))).toBe('3 of 3 keys in use on the Pro plan: revoke a key to create another, or rotate one to replace it.');
    expect(await page.getByLabel('Name').count()).toBe(0);
  });

  it('audits every key change under the member’s email', async () => {
    const entries = await fixture.keygate.runtime.store.listAudit();
    const byAda = entries.filter((e) => e.actor === 'ada@acme.example').map((e) => e.action);
    expect(byAda).toEqual(expect.arrayContaining(['key.created', 'key.revoked', 'key.rotated', 'member.joined']));
    expect(byAda.filter((a) => a === 'key.created')).toHaveLength(5);
    // Each from the browser's address, as the dashboard reads it (on loopback, no proxy).
    expect(new Set(entries.filter((e) => e.actor === 'ada@acme.example').map((e) => e.actorAddress))).toEqual(new Set(['127.0.0.1']));
  });

  it('never writes a secret to the logs or to the database in clear', async () => {
    const db = readFileSync(path.join(fixture.dir, 'keygate.db'));
    expect(copied).not.toBe('');
    expect(db.includes(Buffer.from(copied))).toBe(false);
    expect(fixture.keygate.logs.text).not.toContain(copied);
    expect(fixture.keygate.logs.text).not.toContain('/invite/');
  });
});
