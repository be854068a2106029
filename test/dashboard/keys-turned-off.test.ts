/**
 * The operator's change of an account's plan or API access that turns off keys in use,
 * which worked until then, says so on the account's page (as `accounts update` and the
 * admin API's PATCH warn of it): how many, that their next request is refused and with
 * what code, and what undoes it (one key and several keys each in their own words; a
 * revoked key is not counted). An account without such keys is told nothing of them.
 * The page with that notice passes axe.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey, revokeKey } from '../../src/operations/keys.js';
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

  it('counts several keys in use, not a revoked one, in the plural, for a plan without API access, access turned off and a plan ended', async () => {
    const accountId = await newAccount(fixture, 'Globex');
    const rt = fixture.keygate.runtime;
    for (const name of ['Globex web', 'Globex batch']) await createKey(rt, { accountId, name, scopes: ['*'] }, 'admin-api');
    const { key: old } = await createKey(rt, { accountId, name: 'Globex old', scopes: ['*'] }, 'admin-api');
    await revokeKey(rt, old.id, 'admin-api');
    const warning = () => textOf(operator.locator('.notice.warning[role="status"]'));

    await choosePlan(accountId, 'free');
    await expectHeading(operator, 'Globex');
    expect(await warning()).toBe(
      '“Globex” is now on the Free plan. It does not include API access: the account’s 2 keys in use, which worked until now, are refused from their next request (api_disabled) until the account is on a plan that includes API access.',
    );

    await choosePlan(accountId, 'pro');
    await operator.getByRole('link', { name: 'Turn API access off' }).click();
    await operator.getByRole('button', { name: 'Turn API access off' }).click();
    expect(await warning()).toBe('API access is off for “Globex”: the account’s 2 keys in use, which worked until now, are refused from their next request (api_disabled) until API access is turned back on.');

    await operator.getByRole('button', { name: 'Turn API access on' }).click();
    expect(await textOf(operator.getByRole('status'))).toBe('API access is on for “Globex” (if its plan includes it).');
    await operator.getByLabel(/^Plan ends/).fill('2020-01-31');
    await operator.getByRole('button', { name: 'Change plan' }).click();
    expect(await warning()).toBe(
      '“Globex” stays on the Pro plan, which now ends 2020-01-31. That day has passed: the account’s 2 keys in use, which worked until now, are refused from their next request (plan_expired) until the plan is renewed.',
    );
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
