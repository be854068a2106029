/**
 * An account's own limits from the operator's account page: in real Chromium, the page
 * shows the plan's limits, the account's own and those in effect; setting 25-per-1s lets
 * the account's key through 25 times in a second and refuses the 26th at the gateway,
 * audited under the operator's email; clearing gives the plan's 10 back. Over HTTP: what
 * the form cannot read is refused on the page (400) with nothing changed, and neither a
 * member nor a form without the CSRF token changes anything.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount, getAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { tempDir } from '../support/temp.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { chromiumAvailable, dashboardProfile, screenshot, expectHeading, launchChromium, MEMBER, newContext, OPERATOR, signIn, textOf } from './support.js';
import { addMember, Visitor } from './visitor.js';

describe.skipIf(!chromiumAvailable())('dashboard: the operator sets and clears an account’s own limits', () => {
  const dir = tempDir('keygate-dashboard-account-limits');
  // A clock that moves only when the test moves it: a burst is within one second whatever the machine's speed.
  let now = Date.now();
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let keygate: TestKeygate;
  let browser: Browser;
  let page: Page;
  let acmeId: string;
  let secret: string;

  /** Requests inside one second until the first refusal (at most 40): how many got through, and the refusal's status. */
  async function burst(): Promise<{ served: number; refused: number | undefined }> {
    now += 1_000;
    for (let served = 0; served < 40; served++) {
      const response = await keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
      await response.arrayBuffer();
      if (response.status !== 200) return { served, refused: response.status };
    }
    return { served: 40, refused: undefined };
  }

  const limitsRow = (name: string) => textOf(page.getByRole('table', { name: 'Limits', exact: true }).locator('tr', { hasText: name }));

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    profile.plans = {
      ...profile.plans,
      pro: { name: 'Pro', maxKeys: 3, rateLimits: [{ limit: 10, window: '1s' }], meters: { units: { limit: 1000, unit: 'units' } } },
      team: { name: 'Team', meters: { units: { limit: 5000, unit: 'units' }, rows: { limit: 100, unit: 'rows' } } },
    };
    keygate = await startKeygate(profile, { dir, clock: () => now });
    acmeId = (await createAccount(keygate.runtime, { name: 'Acme Analytics', planId: 'pro' }, 'test')).id;
    secret = (await createKey(keygate.runtime, { accountId: acmeId, name: 'Acme production', scopes: ['*'] }, 'test')).secret;
    await addMember(keygate.runtime, MEMBER, acmeId, 'member');
    browser = await launchChromium();
    page = await (await newContext(browser, keygate.dashboardUrl as string)).newPage();
    await addMember(keygate.runtime, OPERATOR, null, 'operator');
    await page.goto('/sign-in');
    await signIn(page, OPERATOR);
  });

  afterAll(async () => {
    await browser?.close();
    await keygate?.close();
    await upstream?.close();
  });

  it('shows the plan’s limits, the account’s own and those in effect; 25-per-1s set in the form lets 25 through and refuses the 26th; clearing gives the plan’s 10 back', async () => {
    await page.goto(`/accounts/${acmeId}`);
    await expectHeading(page, 'Acme Analytics');
    expect(await limitsRow('Rate limits')).toMatch(/^Rate limits\s+10-per-1s\s+the plan’s\s+10-per-1s$/);
    expect(await limitsRow('Limit of “units”')).toMatch(/^Limit of “units”\s+1,000\s+the plan’s\s+1,000$/);
    // The hints give an example to type, and what an empty field gives: the plan's own, as they are.
    expect(await textOf(page.locator('#limits-windows-hint'))).toBe('For example 25-per-1s (per key), 5000-per-1h-per-account, separated by commas; none: no window. Empty: the Pro plan’s own, 10-per-1s.');
    expect(await textOf(page.locator('#limits-meter-units-hint'))).toBe('A number, 0 or more. Empty: the Pro plan’s own, 1,000.');
    expect(await burst()).toEqual({ served: 10, refused: 429 });

    await page.getByLabel('Rate-limit windows').fill('25-per-1s');
    await page.getByRole('button', { name: 'Save limits' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('The limits of “Acme Analytics” are saved. In effect from its keys’ next request: rate limits 25-per-1s (its own); units 1,000 (the plan’s).');
    expect(await limitsRow('Rate limits')).toMatch(/^Rate limits\s+10-per-1s\s+25-per-1s\s+25-per-1s\s+Own$/);
    expect(await page.getByLabel('Rate-limit windows').inputValue()).toBe('25-per-1s');
    expect(await burst()).toEqual({ served: 25, refused: 429 });
    await screenshot(page, 'account-limits');
    const [changed] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(changed).toMatchObject({
      action: 'account.limits_changed',
      actor: OPERATOR,
      detail: { before: { rateLimits: null, meters: {} }, after: { rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: {} } },
    });

    // A meter's limit beside it: the windows, left as shown, stay as they are.
    await page.getByLabel('Limit of “units”').fill('500');
    await page.getByRole('button', { name: 'Save limits' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('The limits of “Acme Analytics” are saved. In effect from its keys’ next request: rate limits 25-per-1s (its own); units 500 (its own).');
    expect(await limitsRow('Limit of “units”')).toMatch(/^Limit of “units”\s+1,000\s+500\s+500\s+Own$/);
    expect((await getAccount(keygate.runtime, acmeId)).limits).toEqual({ rateLimits: [{ limit: 25, window: 1000, scope: 'key' }], meters: { units: 500 } });

    await page.getByRole('button', { name: 'Use the plan’s limits' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Acme Analytics” is back on the Pro plan’s limits. In effect from its keys’ next request: rate limits 10-per-1s (the plan’s); units 1,000 (the plan’s).');
    expect(await limitsRow('Rate limits')).toMatch(/^Rate limits\s+10-per-1s\s+the plan’s\s+10-per-1s$/);
    expect(await page.getByLabel('Rate-limit windows').inputValue()).toBe('');
    expect(await page.getByRole('button', { name: 'Use the plan’s limits' }).count()).toBe(0);
    expect(await burst()).toEqual({ served: 10, refused: 429 });
    const [cleared] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(cleared).toMatchObject({ action: 'account.limits_changed', actor: OPERATOR, detail: { after: { rateLimits: null, meters: {} } } });
  });

  it('refuses what the form cannot read, on the page (400) with what was typed and why, and changes nothing', async () => {
    const operator = await Visitor.signedIn(keygate.dashboardUrl as string, OPERATOR, `/accounts/${acmeId}`);
    const before = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    const WINDOWS_WRITTEN = 'Write each as 25-per-1s (per key) or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), separated by commas; none for no window; or leave the field empty for the plan’s.';
    const refusals: [Record<string, string>, string][] = [
      [{ rateLimits: '10/s' }, `Rate-limit windows: “10/s” is not a window. ${WINDOWS_WRITTEN}`],
      [{ rateLimits: '25-per-1s, plan' }, `Rate-limit windows: “plan” is not a window. ${WINDOWS_WRITTEN}`],
      [{ rateLimits: '0-per-1s' }, 'Rate-limit windows: “0-per-1s”: the number of requests (before -per-) must be at least 1.'],
      [{ rateLimits: '25-per-1s, 5-per-0s' }, 'Rate-limit windows: “5-per-0s”: the window (after -per-) must be longer than 0, as 1s or 1m.'],
      // A near miss is quoted whole, as written between its commas.
      [{ rateLimits: '25-per-1s, 10-per-1 hour' }, `Rate-limit windows: “10-per-1 hour” is not a window. ${WINDOWS_WRITTEN}`],
      [{ rateLimits: '10 per 1h' }, `Rate-limit windows: “10 per 1h” is not a window. ${WINDOWS_WRITTEN}`],
      [{ rateLimits: '10-per-1hr' }, `Rate-limit windows: “10-per-1hr” is not a window. ${WINDOWS_WRITTEN}`],
      // Hundreds of digits: too large, not "Infinity".
      [{ rateLimits: `${'9'.repeat(400)}-per-1s` }, `Rate-limit windows: “${'9'.repeat(400)}-per-1s”: too large: a window’s limit is at most 999999999999999.`],
      // Two of one length and scope: the larger limit would never refuse (1m typed for 1h).
      [
        { rateLimits: '100-per-1m, 20-per-1s, 5000-per-1m' },
        'Rate-limit windows: “5000-per-1m”: “100-per-1m” is already a per-key window of 1m: of two windows of one length and scope, the one with the larger limit never refuses a request (was another length meant?); give each length one window per scope.',
      ],
      [{ 'meter.units': '-5' }, 'Limit of “units”: “-5” is not a limit. Write a whole or decimal number, 0 or more, without separators (5000000), or leave the field empty for the plan’s.'],
      [{ 'meter.units': '1,000' }, 'Limit of “units”: “1,000” is not a limit. Write a whole or decimal number, 0 or more, without separators (5000000), or leave the field empty for the plan’s.'],
      [{ 'meter.units': '1'.padEnd(30, '0') }, 'Limit of “units”: too large: a meter’s limit is at most 999999999999999.'],
      [{ 'meter.units': '1e99' }, 'Limit of “units”: “1e99” is not a limit. Write a whole or decimal number, 0 or more, without separators (5000000), or leave the field empty for the plan’s.'],
    ];
    for (const [fields, refusal] of refusals) {
      const answer = await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '', 'meter.units': '', ...fields });
      expect([answer.status, answer.heading, answer.alert]).toEqual([400, 'Acme Analytics', refusal]);
      // What was typed is in the form again.
      expect(answer.html).toContain(`value="${(fields.rateLimits ?? fields['meter.units'] as string)}"`);
    }
    // A hand-edited button: refused, not read as a save.
    const edited = await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '25-per-1s', 'meter.units': '', reset: 'forever' });
    expect([edited.status, edited.alert]).toEqual([400, '“Use the plan’s limits” must be one of the choices the form offers: plan.']);
    expect((await getAccount(keygate.runtime, acmeId)).limits ?? { rateLimits: null, meters: {} }).toEqual({ rateLimits: null, meters: {} });
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(before);

    // The form sent as it was shown: nothing to change, nothing audited.
    const same = await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '', 'meter.units': '' });
    expect(same.status).toBe(303);
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(before);
    // “Use the plan’s limits” from a page shown before they were given back (or clicked twice): said so, nothing audited.
    const again = await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '', 'meter.units': '', reset: 'plan' });
    expect(again.status).toBe(303);
    expect((await operator.get(`/accounts/${acmeId}`)).html).toContain('<p>Nothing changed: “Acme Analytics” already uses the Pro plan’s limits.</p>');
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(before);
  });

  it('refuses a member’s form (the page does not exist for them) and a form without the CSRF token; the account keeps the plan’s limits', async () => {
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, '/keys');
    expect((await member.get(`/accounts/${acmeId}`)).status).toBe(404);
    const refused = await member.post(`/accounts/${acmeId}/limits`, { rateLimits: '1000-per-1s', 'meter.units': '1000000' });
    expect([refused.status, refused.heading]).toEqual([404, 'Page not found']);

    // The operator's own browser, posting without the form's token.
    const forged = await page.context().request.post(`/accounts/${acmeId}/limits`, { form: { rateLimits: '1000-per-1s' }, maxRedirects: 0 });
    expect(forged.status()).toBe(403);

    expect((await getAccount(keygate.runtime, acmeId)).limits ?? { rateLimits: null, meters: {} }).toEqual({ rateLimits: null, meters: {} });
    expect(await burst()).toEqual({ served: 10, refused: 429 });
  });

  it('writes windows as --rate-limit does, without names: a window named through the admin API keeps its name while it is written again with its length, scope and limit, also when the field is changed; a changed window loses it', async () => {
    await updateAccount(keygate.runtime, acmeId, { limits: { rateLimits: [{ name: 'burst', limit: 20, window: '1s' }, { name: 'daily', limit: 900, window: '1d', scope: 'account' }] } }, 'test');
    const operator = await Visitor.signedIn(keygate.dashboardUrl as string, OPERATOR, `/accounts/${acmeId}`);
    const shown = await operator.get(`/accounts/${acmeId}`);
    expect(shown.html).toContain('<td data-label="Account’s own">burst (20-per-1s), daily (900-per-1d per account)</td>');
    expect(shown.html).toContain('name="rateLimits" type="text" value="20-per-1s, 900-per-1d-per-account"');
    const windows = async () => (await getAccount(keygate.runtime, acmeId)).limits?.rateLimits;
    /** The RateLimit-Policy a client of the account is answered with now. */
    const policy = async () => {
      now += 1_000;
      const response = await keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
      await response.arrayBuffer();
      return response.headers.get('ratelimit-policy');
    };
    expect((await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '20-per-1s, 900-per-1d-per-account', 'meter.units': '900' })).status).toBe(303);
    expect(await windows()).toEqual([
      { name: 'burst', limit: 20, window: 1000, scope: 'key' },
      { name: 'daily', limit: 900, window: 86_400_000, scope: 'account' },
    ]);

    // A window added: the two given again keep their names, in the page and in the RateLimit fields.
    expect((await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '20-per-1s, 100-per-1h, 900-per-1d-per-account', 'meter.units': '900' })).status).toBe(303);
    expect(await windows()).toEqual([
      { name: 'burst', limit: 20, window: 1000, scope: 'key' },
      { limit: 100, window: 3_600_000, scope: 'key' },
      { name: 'daily', limit: 900, window: 86_400_000, scope: 'account' },
    ]);
    expect((await operator.get(`/accounts/${acmeId}`)).html).toContain('<td data-label="Account’s own">burst (20-per-1s), 100-per-1h, daily (900-per-1d per account)</td>');
    expect(await policy()).toBe('"burst";q=20;w=1, "100-per-1h";q=100;w=3600, "daily";q=900;w=86400');

    // A window's limit changed: it loses its name; one written as the same length otherwise (24h for 1d) keeps its own.
    expect((await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '30-per-1s, 900-per-24h-per-account', 'meter.units': '900' })).status).toBe(303);
    expect(await windows()).toEqual([
      { limit: 30, window: 1000, scope: 'key' },
      { name: 'daily', limit: 900, window: 86_400_000, scope: 'account' },
    ]);
    expect(await policy()).toBe('"30-per-1s";q=30;w=1, "daily";q=900;w=86400');
    await updateAccount(keygate.runtime, acmeId, { limits: null }, 'test');
  });

  it('refuses a move to a plan without a meter the account has its own limit of in the form’s terms (empty that meter’s field and save), not the admin API’s; done so, the move goes through', async () => {
    await updateAccount(keygate.runtime, acmeId, { limits: { meters: { units: 500 } } }, 'test');
    const operator = await Visitor.signedIn(keygate.dashboardUrl as string, OPERATOR, `/accounts/${acmeId}`);
    const before = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    const moved = await operator.post(`/accounts/${acmeId}/plan`, { plan: 'free', planEnds: '' });
    expect([moved.status, moved.heading, moved.alert]).toEqual([
      400,
      'Acme Analytics',
      'Limit of “units”: the Free plan has no meter “units”, and this account has its own limit for it: empty the Limit of “units” field under Limits and save the limits, then change the plan.',
    ]);
    expect(await getAccount(keygate.runtime, acmeId)).toMatchObject({ planId: 'pro', limits: { meters: { units: 500 } } });
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(before);

    // As it says: the field emptied and saved, then the plan changed.
    expect((await operator.post(`/accounts/${acmeId}/limits`, { rateLimits: '', 'meter.units': '' })).status).toBe(303);
    expect((await operator.post(`/accounts/${acmeId}/plan`, { plan: 'free', planEnds: '' })).status).toBe(303);
    const after = await getAccount(keygate.runtime, acmeId);
    expect([after.planId, after.limits ?? { rateLimits: null, meters: {} }]).toEqual(['free', { rateLimits: null, meters: {} }]);
    await updateAccount(keygate.runtime, acmeId, { planId: 'pro' }, 'test');
  });
  it('names every own limit a move to another plan would lose in one refusal, in the form’s terms; done as it says, the move goes through', async () => {
    const { id } = await createAccount(keygate.runtime, { name: 'Twin Meters', planId: 'team', limits: { meters: { units: 50, rows: 3 } } }, 'test');
    await page.goto(`/accounts/${id}`);
    await expectHeading(page, 'Twin Meters');
    await page.getByLabel('Plan', { exact: true }).selectOption('free');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('alert'))).toBe(
      'Limits of “units” and “rows”: the Free plan has no meters “units” or “rows”, and this account has its own limits for them: empty the Limit of “units” and Limit of “rows” fields under Limits and save the limits, then change the plan.',
    );
    expect(await getAccount(keygate.runtime, id)).toMatchObject({ planId: 'team', limits: { meters: { units: 50, rows: 3 } } });

    // As it says, once: both fields emptied and saved, then the plan changed.
    await page.goto(`/accounts/${id}`);
    await page.getByLabel('Limit of “units”').fill('');
    await page.getByLabel('Limit of “rows”').fill('');
    await page.getByRole('button', { name: 'Save limits' }).click();
    expect(await textOf(page.getByRole('status'))).toMatch(/^The limits of “Twin Meters” are saved\./);
    await page.getByLabel('Plan', { exact: true }).selectOption('free');
    await page.getByRole('button', { name: 'Change plan' }).click();
    // Without keys in use, nothing of them to say.
    expect(await textOf(page.getByRole('status'))).toBe('“Twin Meters” is now on the Free plan.');
    expect((await getAccount(keygate.runtime, id)).planId).toBe('free');
  });

  it('takes the plan the account is already on, sent again, as no move: nothing changed is said, also with an own limit of a meter the profile took from that plan; its end changed is said as such', async () => {
    const { id } = await createAccount(keygate.runtime, { name: 'Kept Ltd', planId: 'pro', limits: { meters: { units: 500 } } }, 'test');
    // As a profile from before left it: a limit of credits, a meter Pro no longer has.
    await keygate.runtime.store.updateAccount(id, { limits: { rateLimits: null, meters: { units: 500, credits: 7 } } });
    const audited = async () => keygate.runtime.store.listAudit({ accountId: id, limit: 10 });
    const before = await audited();
    await page.goto(`/accounts/${id}`);
    await expectHeading(page, 'Kept Ltd');
    expect(await page.getByLabel('Plan', { exact: true }).inputValue()).toBe('pro');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await textOf(page.getByRole('status'))).toBe('Nothing changed: “Kept Ltd” is already on the Pro plan.');
    expect(await audited()).toEqual(before);

    await page.getByLabel('Plan ends').fill('2999-01-31');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Kept Ltd” stays on the Pro plan, which now ends 2999-01-31.');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('Nothing changed: “Kept Ltd” is already on the Pro plan, until 2999-01-31.');
    await page.getByLabel('Plan ends').fill('');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Kept Ltd” stays on the Pro plan, which now has no end.');
    expect(await getAccount(keygate.runtime, id)).toMatchObject({ planId: 'pro', planExpiresAt: null, limits: { meters: { units: 500, credits: 7 } } });
  });
});
