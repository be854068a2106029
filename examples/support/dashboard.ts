/**
 * What the seeds' "create a key in your settings" tests start from: a shipped example
 * served with its dashboard, Debian's Chromium, and one account whose member is signed
 * in; and the "Create a key" form filled in as a member would.
 */
import type { Browser, Page } from 'playwright-core';
import { expectHeading, launchChromium, signedInPage, TestClock, type DashboardFixture } from '../../test/dashboard/support.js';
import { startExample, type AccountOut, type RunningExample } from './example.js';

export interface ExampleDashboard {
  ex: RunningExample;
  browser: Browser;
  /** What the dashboard helpers of test/dashboard need of a running keygate. */
  fixture: DashboardFixture;
  account: AccountOut;
  /** The account's member (`MEMBER_EMAIL`), signed in. */
  page: Page;
  close(): Promise<void>;
}

export const MEMBER_EMAIL = 'ada@acme.example';

/** Starts example `name` with its dashboard and creates the account (on `plan`, or the profile's default). */
export async function startExampleDashboard(name: string, account: { name: string; plan?: string }): Promise<ExampleDashboard> {
  const ex = await startExample(name, { dashboard: true });
  const dashboardUrl = ex.kg.dashboardUrl;
  if (dashboardUrl === undefined) {
    await ex.close();
    throw new Error(`the ${name} profile served no dashboard`);
  }
  const fixture: DashboardFixture = { keygate: ex.kg, clock: new TestClock(), dashboardUrl, close: async () => undefined };
  const created = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', account.name, ...(account.plan ? ['--plan', account.plan] : [])]);
  const browser = await launchChromium();
  const page = await signedInPage(fixture, browser, MEMBER_EMAIL, created.id);
  return {
    ex,
    browser,
    fixture,
    account: created,
    page,
    close: async () => {
      await browser.close();
      await ex.close();
    },
  };
}

/** Creates a key on the "Create a key" form of the keys page, as a member would; answers the secret shown once. */
export async function createKeyInDashboard(page: Page, name: string, options: { mode?: 'Live' | 'Test'; scopes?: string[] } = {}): Promise<string> {
  await page.goto('/keys');
  await expectHeading(page, 'API keys');
  await page.getByRole('link', { name: 'Create a key' }).click();
  await expectHeading(page, 'Create a key');
  await page.getByLabel('Name').fill(name);
  if (options.mode) await page.getByRole('radio', { name: options.mode }).check();
  for (const scope of options.scopes ?? []) await page.getByRole('checkbox', { name: scope, exact: true }).check();
  await page.getByRole('button', { name: 'Create key' }).click();
  await expectHeading(page, 'Copy your new key');
  return page.getByLabel(`Key “${name}”`).inputValue();
}
