/**
 * shared/seeds/004, "API Keys": "You can view and manage your API keys from your account
 * settings. API keys are available on the Scale plan and above. Free and Growth plans do
 * not include API access." The account settings are the example's dashboard: the shipped
 * examples/trakkr profile and upstream, real Chromium, and every key used over real HTTP
 * against the gateway.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, launchChromium, shown, signedInPage, TestClock, textOf, type DashboardFixture } from '../../test/dashboard/support.js';
import { read, startExample, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json; charset=utf-8';

/** curl -H "Authorization: Bearer $TRAKKR_API_KEY" 'https://api.trakkr.ai/get-brands' */
const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

describe.skipIf(!chromiumAvailable())('Trakkr "API Keys": from the account settings (the dashboard) of examples/trakkr', () => {
  let ex: RunningExample;
  let browser: Browser;
  let dashboard: DashboardFixture;
  let scale: AccountOut;
  let page: Page;

  beforeAll(async () => {
    ex = await startExample('trakkr', { dashboard: true });
    const dashboardUrl = ex.kg.dashboardUrl;
    if (dashboardUrl === undefined) throw new Error('the trakkr profile served no dashboard');
    dashboard = { keygate: ex.kg, clock: new TestClock(), dashboardUrl, close: async () => undefined };
    scale = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme', '--plan', 'scale']);
    browser = await launchChromium();
    page = await signedInPage(dashboard, browser, 'ada@acme.example', scale.id);
  });

  afterAll(async () => {
    await browser?.close();
    await ex?.close();
  });

  it('on the Scale plan: a key made in the settings is sk_live_, shown once, sent as a Bearer token, and reads the brands', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    await page.getByRole('link', { name: 'Create a key' }).click();
    await expectHeading(page, 'Create a key');
    await page.getByLabel('Name').fill('production');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    const secret = await page.getByLabel('Key “production”').inputValue();
    expect(secret).toMatch(/^sk_live_[0-9A-Za-z]{30}$/);
    await shown(page.getByText('This is the only time this key is shown.'));
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: Bearer <your key>.');
    expect(await read(await ex.call('/get-brands', bearer(secret)))).toEqual({ status: 200, type: JSON_TYPE, body: { brands: [] } });

    // "Rotate keys regularly": the settings offer it for the key.
    await page.goto('/keys');
    expect(await page.getByRole('link', { name: /^Rotate production/ }).count()).toBe(1);
  });

  it('"Free and Growth plans do not include API access": their settings offer no key to create, and say why', async () => {
    for (const [plan, name] of [['free', 'Free'], ['growth', 'Growth']] as const) {
      const small = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', `On ${name}`, '--plan', plan]);
      const member = await signedInPage(dashboard, browser, `${plan}@small.example`, small.id);
      try {
        await member.goto('/keys');
        await expectHeading(member, 'API keys');
        expect(await member.getByRole('link', { name: 'Create a key' }).count(), plan).toBe(0);
        await shown(member.getByText(`The ${name} plan does not include API keys: keys can be created once the account is on a plan that does.`));
        // The form's own address makes none either.
        await member.goto('/keys/new');
        expect(await member.getByLabel('Name').count(), plan).toBe(0);
        expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', small.id]), plan).toEqual([]);
      } finally {
        await member.context().close();
      }
    }
  });
});
