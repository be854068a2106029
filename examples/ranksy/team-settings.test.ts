/**
 * shared/seeds/001, "Getting a key", done where the document says: "Sign in, open your
 * team's settings, and create a key — give it a descriptive name and copy it immediately,
 * as the secret is shown only once." The team's settings are the example's dashboard:
 * the shipped examples/ranksy profile and upstream, real Chromium, and every key used
 * over real HTTP against the gateway.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, launchChromium, newContext, shown, signedInPage, signIn, TestClock, textOf, type DashboardFixture } from '../../test/dashboard/support.js';
import { createKeyInDashboard } from '../support/dashboard.js';
import { read, startExample, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const INVALID = { error: { type: 'authentication_error', code: 'invalid_api_key', message: 'The API key is unknown or revoked.' } };

/** "Authorization: Bearer rk_live_xxxxxxxxxxxxxxxxxxxxxxxx" */
const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

describe.skipIf(!chromiumAvailable())('Ranksy "Getting a key": from the team\'s settings (the dashboard) of examples/ranksy', () => {
  let ex: RunningExample;
  let browser: Browser;
  /** What the dashboard helpers need of a running keygate: its admin API and the dashboard's address. */
  let settings: DashboardFixture;
  let team: AccountOut;
  let ada: Page;
  let appId: string;
  let production = '';

  const mrr = (app: string) => `/api/v1/apps/${app}/metrics/mrr`;

  beforeAll(async () => {
    ex = await startExample('ranksy', { dashboard: true });
    const dashboardUrl = ex.kg.dashboardUrl;
    if (dashboardUrl === undefined) throw new Error('the ranksy profile served no dashboard');
    settings = { keygate: ex.kg, clock: new TestClock(), dashboardUrl, close: async () => undefined };
    team = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme Apps']);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await ex?.close();
  });

  it('sign in, open the team\'s settings, create a named key: an rk_live_ secret, shown once, that reads the team\'s metrics', async () => {
    ada = await signedInPage(settings, browser, 'ada@acme.example', team.id);
    await ada.goto('/keys');
    await expectHeading(ada, 'API keys');

    production = await createKeyInDashboard(ada, 'Production sync', { scopes: ['metrics:read', 'apps:read'] });
    expect(production).toMatch(/^rk_live_[0-9A-Za-z]{30}$/);
    await shown(ada.getByText('This is the only time this key is shown.'));
    expect(await textOf(ada.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: Bearer <your key>.');

    const list = await read(await ex.call('/api/v1/apps', bearer(production)));
    expect(list.status).toBe(200);
    appId = ((list.body as { data: { id: string }[] }).data[0] as { id: string }).id;
    const metric = await read(await ex.call(mrr(appId), bearer(production)));
    expect(metric).toMatchObject({ status: 200, type: JSON_TYPE, body: { data: { app: appId, metric: 'mrr', unit: 'USD' }, livemode: true } });

    // Shown only once: the list names it by its hint, and no page holds the secret again.
    await ada.goto('/keys');
    const row = await textOf(ada.locator('tr', { hasText: 'Production sync' }));
    expect(row).toContain(`rk_live_…${production.slice(-4)}`);
    expect(row).toContain('metrics:read');
    expect(await ada.content()).not.toContain(production);
  });

  it('a test-mode key from the same form is rk_test_ and reads the same figures (livemode false)', async () => {
    const sandbox = await createKeyInDashboard(ada, 'Sandbox', { mode: 'Test', scopes: ['metrics:read'] });
    expect(sandbox).toMatch(/^rk_test_[0-9A-Za-z]{30}$/);
    const test = await read(await ex.call(mrr(appId), bearer(sandbox)));
    const live = await read(await ex.call(mrr(appId), bearer(production)));
    expect(test).toMatchObject({ status: 200, body: { livemode: false } });
    expect((test.body as { data: unknown }).data).toEqual((live.body as { data: unknown }).data);
  });

  it('"A key carries one or more scopes": the form refuses a key with none ticked, and makes none', async () => {
    const before = (await ex.cliJson<unknown[]>(['keys', 'list', '--account', team.id])).length;
    await ada.goto('/keys/new');
    await ada.getByLabel('Name').fill('No scopes');
    for (const box of await ada.getByRole('checkbox').all()) await box.uncheck();
    await ada.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(ada, 'Create a key');
    expect(await textOf(ada.getByRole('alert'))).toBe('Choose at least one scope: every key of this API carries one.');
    expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', team.id])).toHaveLength(before);
  });

  it('no per-user token: the key is the team\'s — its other members see it, another team\'s do not, and it outlives its creator\'s membership', async () => {
    const bo = await signedInPage(settings, browser, 'bo@acme.example', team.id);
    await bo.goto('/keys');
    expect(await textOf(bo.locator('tr', { hasText: 'Production sync' }))).toContain(`rk_live_…${production.slice(-4)}`);

    const other = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Other Team']);
    const cy = await signedInPage(settings, browser, 'cy@other.example', other.id);
    await cy.goto('/keys');
    await shown(cy.getByText('No keys yet.'));
    expect(await cy.locator('tr', { hasText: 'Production sync' }).count()).toBe(0);

    await ex.cliOk(['members', 'remove', '--email', 'ada@acme.example']);
    expect(await read(await ex.call(mrr(appId), bearer(production)))).toMatchObject({ status: 200, body: { data: { app: appId, metric: 'mrr' }, livemode: true } });
    await bo.close();
    await cy.close();
  });

  it('"if you lose one, revoke it and issue a new one": revoked in the settings it is 401 invalid_api_key; the new one works', async () => {
    // Signed in again (the last test closed the page), with the password chosen when joining.
    const bo = await (await newContext(browser, settings.dashboardUrl)).newPage();
    await bo.goto('/sign-in');
    await signIn(bo, 'bo@acme.example');
    await expectHeading(bo, 'API keys');
    await bo.getByRole('link', { name: `Revoke Production sync (rk_live_…${production.slice(-4)})` }).click();
    await bo.getByRole('button', { name: 'Revoke key' }).click();
    await bo.waitForURL('**/keys');
    expect(await textOf(bo.locator('tr', { hasText: 'Production sync' }))).toContain('Revoked');

    const revoked = await ex.call(mrr(appId), bearer(production));
    expect(await read(revoked)).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
    const replacement = await createKeyInDashboard(bo, 'Production sync (new)', { scopes: ['metrics:read'] });
    expect((await ex.call(mrr(appId), bearer(replacement))).status).toBe(200);
  });
});
