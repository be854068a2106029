/**
 * shared/seeds/000, "Creating and revoking keys", done where the document says: "Open
 * your account settings and go to the API keys section. Create a key, then copy it ... To
 * revoke a key, delete it from the same screen. The key stops working immediately." The
 * app's settings are the example's dashboard: the shipped examples/ranktracker profile
 * and upstream, real Chromium, and every key used over real HTTP against the gateway.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, shown, textOf } from '../../test/dashboard/support.js';
import { createKeyInDashboard, startExampleDashboard, type ExampleDashboard } from '../support/dashboard.js';
import { read, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const UNAUTHORIZED = { status: 401, type: JSON_TYPE, body: { errors: [{ code: 'unauthorized', status: 401, detail: 'Invalid or missing API key.' }] } };

/** "Authorization: tkn_usr_your_api_key_here" — no Bearer prefix. */
const auth = (key: string): RequestInit => ({ headers: { authorization: key } });

describe.skipIf(!chromiumAvailable())('Ranktracker "Creating and revoking keys": from the account settings (the dashboard) of examples/ranktracker', () => {
  let settings: ExampleDashboard;
  let ex: RunningExample;
  let account: AccountOut;
  let page: Page;
  let production = '';

  beforeAll(async () => {
    settings = await startExampleDashboard('ranktracker', { name: 'Acme', plan: 'pro' });
    ({ ex, account, page } = settings);
  });

  afterAll(async () => {
    await settings?.close();
  });

  it('"Create a key, then copy it": a tkn_usr_ key, shown once, sent as the whole Authorization value', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    // "No expiry. A key stays valid until you delete it.": the form offers no expiry to choose.
    await page.getByRole('link', { name: 'Create a key' }).click();
    await expectHeading(page, 'Create a key');
    expect(await page.getByLabel(/Expires/).count()).toBe(0);

    production = await createKeyInDashboard(page, 'production');
    expect(production).toMatch(/^tkn_usr_[0-9A-Za-z]{30}$/);
    await shown(page.getByText('This is the only time this key is shown.'));
    // "There is no Bearer prefix — the header value is the key itself."
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: <your key>.');

    expect(await read(await ex.call('/v1/domains', auth(production)))).toEqual({ status: 200, type: JSON_TYPE, body: { data: [] } });
    const usage = await read(await ex.call('/v1/account/usage', auth(production)));
    expect(usage.body).toMatchObject({ data: { id: account.id, type: 'usage', attributes: { apiEnabled: true } } });

    await page.goto('/keys');
    expect(await textOf(page.locator('tr', { hasText: 'production' }))).toContain(`tkn_usr_…${production.slice(-4)}`);
    expect(await page.content()).not.toContain(production);
  });

  it('"There is no in-place roll operation": the key offers Revoke and no Rotate', async () => {
    await page.goto('/keys');
    expect(await page.getByRole('link', { name: /^Revoke production/ }).count()).toBe(1);
    expect(await page.getByRole('link', { name: /^Rotate/ }).count()).toBe(0);
  });

  it('"To revoke a key, delete it from the same screen. The key stops working immediately." The other key of the account is untouched', async () => {
    const next = await createKeyInDashboard(page, 'production v2');
    // Rotation as the document does it: both keys work at once.
    expect((await ex.call('/v1/domains', auth(production))).status).toBe(200);
    expect((await ex.call('/v1/domains', auth(next))).status).toBe(200);

    await page.goto('/keys');
    await page.getByRole('link', { name: `Revoke production (tkn_usr_…${production.slice(-4)})` }).click();
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await page.waitForURL('**/keys');
    expect(await textOf(page.locator('tr', { hasText: `tkn_usr_…${production.slice(-4)}` }))).toContain('Revoked');

    expect(await read(await ex.call('/v1/domains', auth(production)))).toEqual(UNAUTHORIZED);
    expect(await read(await ex.call('/v1/account/usage', auth(production)))).toEqual(UNAUTHORIZED);
    expect((await ex.call('/v1/domains', auth(next))).status).toBe(200);
  });
});
