/**
 * shared/seeds/004, "API Keys": "You can view and manage your API keys from your account
 * settings. API keys are available on the Scale plan and above. Free and Growth plans do
 * not include API access." The account settings are the example's dashboard: the shipped
 * examples/trakkr profile and upstream, real Chromium, and every key used over real HTTP
 * against the gateway.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, shown, signedInPage, textOf } from '../../test/dashboard/support.js';
import { createKeyInDashboard, startExampleDashboard, type ExampleDashboard } from '../support/dashboard.js';
import { read, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json; charset=utf-8';

/** curl -H "Authorization: Bearer $TRAKKR_API_KEY" 'https://api.trakkr.ai/get-brands' */
const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

describe.skipIf(!chromiumAvailable())('Trakkr "API Keys": from the account settings (the dashboard) of examples/trakkr', () => {
  let settings: ExampleDashboard;
  let ex: RunningExample;
  let page: Page;

  beforeAll(async () => {
    settings = await startExampleDashboard('trakkr', { name: 'Acme', plan: 'scale' });
    ({ ex, page } = settings);
  });

  afterAll(async () => {
    await settings?.close();
  });

  it('on the Scale plan: a key made in the settings is sk_live_, shown once, sent as a Bearer token, and reads the brands', async () => {
    const secret = await createKeyInDashboard(page, 'production');
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
      const member = await signedInPage(settings.fixture, settings.browser, `${plan}@small.example`, small.id);
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
