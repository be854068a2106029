/**
 * The operator's change of an account's plan or API access that turns off keys in use,
 * which worked until then, says so on the account's page (as `accounts update` and the
 * admin API's PATCH warn of it): how many, that their next request is refused and with
 * what code, and what undoes it. An account without such keys is told nothing of them.
 * The page with that notice passes axe.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { axeViolationLine, axeViolations, chromiumAvailable, expectHeading, newAccount, OPERATOR, signedInPage, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: a plan or access change that turns keys off says so', () => {
  const fixture = useDashboard('keygate-dashboard-keys-turned-off');
  let operator: Page;

  beforeAll(async () => {
    // bypassCSP: axe is injected as an inline script.
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator', bypassCSP: true });
  });

  const choosePlan = async (accountId: string, plan: string) => {
    await operator.goto(`/accounts/${accountId}`);
    await operator.getByLabel('Plan', { exact: true }).selectOption(plan);
    await operator.getByRole('button', { name: 'Change plan' }).click();
  };

  it('warns, on the account’s page, that a move to a plan without API access refuses its key in use from its next request, and what undoes it', async () => {
    const accountId = await newAccount(fixture, 'Initech');
    const { secret } = await createKey(fixture.keygate.runtime, { accountId, name: 'Initech production', scopes: ['*'] }, 'admin-api');
    const call = () => fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    expect((await call()).status).toBe(200);

    await choosePlan(accountId, 'free');
    await expectHeading(operator, 'Initech');
    const notice = operator.locator('.notice.warning[role="status"]');
    expect(await textOf(notice)).toBe(
      '“Initech” is now on the Free plan. It does not include API access: the account’s key in use, which worked until now, is refused from its next request (api_disabled) until the account is on a plan that includes API access.',
    );
    expect(await notice.locator('code').allInnerTexts()).toEqual(['api_disabled']);
    expect((await call()).status).toBe(403);

    const violations = await axeViolations(operator);
    expect(violations.map((v) => axeViolationLine(`/accounts/${accountId} (keys turned off)`, v))).toEqual([]);

    // Back on Pro, then API access turned off: said the same way, with the switch as what undoes it.
    await choosePlan(accountId, 'pro');
    expect(await textOf(operator.getByRole('status'))).toBe('“Initech” is now on the Pro plan.');
    await operator.getByRole('link', { name: 'Turn API access off' }).click();
    await operator.getByRole('button', { name: 'Turn API access off' }).click();
    expect(await textOf(operator.locator('.notice.warning[role="status"]'))).toBe(
      'API access is off for “Initech”: the account’s key in use, which worked until now, is refused from its next request (api_disabled) until API access is turned back on.',
    );

    // Its keys refused already (access off), a move to a plan without API access turns nothing off: nothing said of them.
    await choosePlan(accountId, 'free');
    expect(await textOf(operator.getByRole('status'))).toBe('“Initech” is now on the Free plan.');
    expect(await operator.locator('.notice.warning').count()).toBe(0);
  });

  it('says nothing of keys when the account has none in use', async () => {
    const accountId = await newAccount(fixture, 'Hooli');
    await choosePlan(accountId, 'free');
    await expectHeading(operator, 'Hooli');
    expect(await textOf(operator.getByRole('status'))).toBe('“Hooli” is now on the Free plan.');
    expect(await operator.locator('.notice.warning').count()).toBe(0);

    await choosePlan(accountId, 'pro');
    await operator.getByRole('link', { name: 'Turn API access off' }).click();
    await operator.getByRole('button', { name: 'Turn API access off' }).click();
    expect(await textOf(operator.getByRole('status'))).toBe('API access is off for “Hooli”.');
  });
});
