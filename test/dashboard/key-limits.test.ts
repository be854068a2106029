/**
 * A key's own rate limits set by a member in the dashboard, in real Chromium: a key created
 * with 3-per-1m is served 3 times in a minute at the gateway and refused the 4th (429), on
 * top of its plan's 10-per-1s; changed to 5-per-1m on the key's Rate limits page it is
 * served 5; cleared, the plan's 10 again; each change audited as key.updated under the
 * member's email. A value the form cannot take is refused on the page naming the field,
 * with nothing made or changed. A member of another account cannot see or change the
 * key, and a form without the CSRF token changes nothing. An operator does the same from
 * the account's page, audited under the operator's email; members cannot reach that page.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey, updateKey } from '../../src/operations/keys.js';
import type { KeyRecord } from '../../src/store/store.js';
import { tempDir } from '../support/temp.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { chromiumAvailable, dashboardProfile, expectHeading, launchChromium, MEMBER, newContext, OPERATOR, postFromPage, screenshot, signIn, textOf } from './support.js';
import { addMember, Visitor } from './visitor.js';

const OTHER = 'bob@globex.example';
const WRITTEN = 'Write each as 10-per-1m or 2-per-1s (a number of requests, -per-, and a window: a number and ms, s, m, h or d; no spaces), separated by commas, or leave the field empty for none.';

describe.skipIf(!chromiumAvailable())('dashboard: a member sets, changes and clears a key’s own rate limits', () => {
  const dir = tempDir('keygate-dashboard-key-limits');
  // A clock that moves only when the test moves it: a burst is within one minute whatever the machine's speed.
  let now = Date.now();
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let keygate: TestKeygate;
  let browser: Browser;
  let page: Page;
  let acmeId: string;
  let globexId: string;
  let key: KeyRecord;
  let secret: string;

  /** Requests a minute after the last burst, until the first refusal (at most 40): how many got through, and the refusal's status. */
  async function burst(): Promise<{ served: number; refused: number | undefined }> {
    now += 61_000;
    for (let served = 0; served < 40; served++) {
      const response = await keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
      await response.arrayBuffer();
      if (response.status !== 200) return { served, refused: response.status };
    }
    return { served: 40, refused: undefined };
  }

  const stored = async () => (await keygate.runtime.store.getKey(key.id))?.rateLimits;
  const keyRow = () => page.locator(`tr[data-key-id="${key.id}"]`);

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    profile.plans = { ...profile.plans, pro: { name: 'Pro', maxKeys: 3, rateLimits: [{ limit: 10, window: '1s' }], meters: { units: { limit: 1000, unit: 'units' } } } };
    keygate = await startKeygate(profile, { dir, clock: () => now });
    acmeId = (await createAccount(keygate.runtime, { name: 'Acme Analytics', planId: 'pro' }, 'test')).id;
    globexId = (await createAccount(keygate.runtime, { name: 'Globex', planId: 'pro' }, 'test')).id;
    await addMember(keygate.runtime, MEMBER, acmeId, 'member');
    await addMember(keygate.runtime, OTHER, globexId, 'member');
    await addMember(keygate.runtime, OPERATOR, null, 'operator');
    await createKey(keygate.runtime, { accountId: globexId, name: 'Globex key', scopes: ['*'] }, 'test');
    browser = await launchChromium();
    page = await (await newContext(browser, keygate.dashboardUrl as string)).newPage();
    await page.goto('/sign-in');
    await signIn(page, MEMBER);
  });

  afterAll(async () => {
    await browser?.close();
    await keygate?.close();
    await upstream?.close();
  });

  it('creates a key with 3-per-1m: the key shown once says so, and the gateway serves it 3 times in a minute, then 429', async () => {
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Front end');
    await page.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await page.getByLabel('Rate limits').fill('3-per-1m');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    secret = await page.getByLabel('Key “Front end”').inputValue();
    expect(await textOf(page.locator('.facts div', { hasText: 'Own rate limits' }))).toMatch(/^Own rate limits\s+3-per-1m$/);
    [key] = (await keygate.runtime.store.listKeys({ accountId: acmeId })) as [KeyRecord];
    expect(key.rateLimits).toEqual([{ limit: 3, window: 60_000, scope: 'key' }]);
    expect(await burst()).toEqual({ served: 3, refused: 429 });
    const [created] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(created).toMatchObject({ action: 'key.created', actor: MEMBER, keyId: key.id });
  });

  it('changes them to 5-per-1m on the key’s Rate limits page (5 served), then clears them (the plan’s 10-per-1s alone); each audited under the member', async () => {
    await page.goto('/keys');
    expect(await textOf(keyRow().locator('.own-limits'))).toBe('own rate limit: 3-per-1m');
    await page.getByRole('link', { name: `Rate limits of Front end (${key.hint})` }).click();
    await expectHeading(page, 'Rate limits of key “Front end”');
    expect(await page.getByLabel('Rate limits').inputValue()).toBe('3-per-1m');
    await page.getByLabel('Rate limits').fill('5-per-1m');
    await page.getByRole('button', { name: 'Save rate limits' }).click();
    await expectHeading(page, 'API keys');
    expect(await textOf(page.getByRole('status'))).toBe(`The rate limits of key “Front end” (${key.hint}) are saved: 5-per-1m, on top of the account’s, from its next request.`);
    expect(await textOf(keyRow().locator('.own-limits'))).toBe('own rate limit: 5-per-1m');
    expect(await stored()).toEqual([{ limit: 5, window: 60_000, scope: 'key' }]);
    expect(await burst()).toEqual({ served: 5, refused: 429 });
    const [changed] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(changed).toMatchObject({
      action: 'key.updated',
      actor: MEMBER,
      actorAddress: '127.0.0.1',
      keyId: key.id,
      detail: { rateLimits: { before: [{ name: 'key-3-per-1m', limit: 3, window: '1m', scope: 'key' }], after: [{ name: 'key-5-per-1m', limit: 5, window: '1m', scope: 'key' }] } },
    });

    await page.getByRole('link', { name: `Rate limits of Front end (${key.hint})` }).click();
    await expectHeading(page, 'Rate limits of key “Front end”');
    await screenshot(page, 'key-limits');
    await page.getByRole('button', { name: 'Remove its own limits' }).click();
    await expectHeading(page, 'API keys');
    expect(await textOf(page.getByRole('status'))).toBe(`Key “Front end” (${key.hint}) has no rate limits of its own now: the account’s limits alone apply, from its next request.`);
    expect(await keyRow().locator('.own-limits').count()).toBe(0);
    expect(await stored()).toBeUndefined();
    expect(await burst()).toEqual({ served: 10, refused: 429 });
    const [cleared] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(cleared).toMatchObject({ action: 'key.updated', actor: MEMBER, actorAddress: '127.0.0.1', detail: { rateLimits: { before: [{ limit: 5, window: '1m' }], after: [] } } });

    // With none of its own, the page offers no button to remove them; sent as shown, nothing changes and nothing is audited.
    await page.getByRole('link', { name: `Rate limits of Front end (${key.hint})` }).click();
    expect(await page.getByRole('button', { name: 'Remove its own limits' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Save rate limits' }).click();
    expect(await textOf(page.getByRole('status'))).toBe(`Nothing changed: key “Front end” (${key.hint}) already has no rate limits of its own.`);
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual([cleared]);
  });

  it('shows a value it cannot take on the page, naming the field, with what was typed, and changes nothing', async () => {
    await page.goto(`/keys/${key.id}/limits`);
    await page.getByLabel('Rate limits').fill('10/s');
    await page.getByRole('button', { name: 'Save rate limits' }).click();
    await expectHeading(page, 'Rate limits of key “Front end”');
    expect(await textOf(page.getByRole('alert'))).toBe(`Rate limits: “10/s” is not a window. ${WRITTEN}`);
    const field = page.getByLabel('Rate limits');
    expect([await field.inputValue(), await field.getAttribute('aria-invalid'), await field.getAttribute('aria-describedby')]).toEqual(['10/s', 'true', 'key-windows-hint limits-error']);
    // The field refused has the focus: the member types the fix at once.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('key-windows');

    // The create form too: no key is made.
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Too shared');
    await page.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await page.getByLabel('Rate limits').fill('5-per-1h-per-account');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Create a key');
    expect(await textOf(page.getByRole('alert'))).toBe("Rate limits: “5-per-1h-per-account”: a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, which the API’s operator sets.");
    expect(await page.getByLabel('Rate limits').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByLabel('Name').inputValue()).toBe('Too shared');
    expect((await keygate.runtime.store.listKeys({ accountId: acmeId })).map((k) => k.name)).toEqual(['Front end']);
    expect(await stored()).toBeUndefined();
  });

  it('refuses each value the forms cannot take with a 400 naming the field and the window as typed, on both forms, and makes or changes nothing', async () => {
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, `/keys/${key.id}/limits`);
    const audited = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    const repeated = 'Rate limits: “5000-per-1m”: “100-per-1m” is already a per-key window of 1m: of two windows of one length and scope, the one with the larger limit never refuses a request (was another length meant?); give each length one window per scope.';
    const refusals: [string, string][] = [
      ['10/s', `Rate limits: “10/s” is not a window. ${WRITTEN}`],
      ['10 per 1m', `Rate limits: “10 per 1m” is not a window. ${WRITTEN}`],
      ['plan', `Rate limits: “plan” is not a window. ${WRITTEN}`],
      ['10-per-1m, none', `Rate limits: “none” is not a window. ${WRITTEN}`],
      ['0-per-1s', 'Rate limits: “0-per-1s”: the number of requests (before -per-) must be at least 1.'],
      ['10-per-1m, 5-per-0s', 'Rate limits: “5-per-0s”: the window (after -per-) must be longer than 0, as 1s or 1m.'],
      [`${'9'.repeat(400)}-per-1s`, `Rate limits: “${'9'.repeat(400)}-per-1s”: too large: a window’s limit is at most 999999999999999.`],
      ['100-per-1m, 20-per-1s, 5000-per-1m', repeated],
      ['5-per-1h-per-account', "Rate limits: “5-per-1h-per-account”: a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, which the API’s operator sets."],
      [Array.from({ length: 21 }, (_, i) => `1-per-${i + 1}s`).join(', '), 'Rate limits: at most 20 windows.'],
    ];
    for (const [typed, refusal] of refusals) {
      const changed = await member.post(`/keys/${key.id}/limits`, { rateLimits: typed });
      expect([changed.status, changed.heading, changed.alert]).toEqual([400, 'Rate limits of key “Front end”', refusal]);
      expect(changed.html).toContain(`value="${typed}"`);
      await member.get('/keys/new');
      const created = await member.post('/keys', { name: 'Refused', scope: '*', rateLimits: typed });
      expect([created.status, created.heading, created.alert]).toEqual([400, 'Create a key', refusal]);
    }
    // A hand-edited button: refused, not read as a save.
    const edited = await member.post(`/keys/${key.id}/limits`, { rateLimits: '1-per-1s', clear: 'all' });
    expect([edited.status, edited.alert]).toEqual([400, '“Remove its own limits” must be one of the choices the form offers: none.']);
    expect(await stored()).toBeUndefined();
    expect((await keygate.runtime.store.listKeys({ accountId: acmeId })).map((k) => k.name)).toEqual(['Front end']);
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(audited);
  });

  it('keeps another account’s member out (404 for the page and the form, with their own CSRF token) and refuses a form without the token (403)', async () => {
    const other = await Visitor.signedIn(keygate.dashboardUrl as string, OTHER, '/keys');
    expect((await other.get(`/keys/${key.id}/limits`)).status).toBe(404);
    const refused = await other.post(`/keys/${key.id}/limits`, { rateLimits: '1-per-1m' });
    expect([refused.status, refused.heading]).toEqual([404, 'Page not found']);
    const cleared = await other.post(`/keys/${key.id}/limits`, { rateLimits: '', clear: 'none' });
    expect(cleared.status).toBe(404);

    // The member's own browser, posting without the form's token.
    await page.goto(`/keys/${key.id}/limits`);
    const forged = await postFromPage(page, `/keys/${key.id}/limits`, { rateLimits: '1-per-1m' }, { withToken: false });
    expect(forged.status).toBe(403);
    // With it, the same post is taken: the 403 was the token's doing.
    const taken = await postFromPage(page, `/keys/${key.id}/limits`, { rateLimits: '1-per-1m' }, { withToken: true });
    expect([taken.status, taken.redirected]).toEqual([0, true]);
    expect(await stored()).toEqual([{ limit: 1, window: 60_000, scope: 'key' }]);
    expect(await burst()).toEqual({ served: 1, refused: 429 });
  });

  it('keeps a window’s name given by the admin API while the member writes that window again, in the RateLimit fields too; a changed window loses it', async () => {
    await updateKey(keygate.runtime, key.id, { rateLimits: [{ name: 'burst', limit: 2, window: '1s' }] }, 'admin-api');
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, `/keys/${key.id}/limits`);
    expect((await member.get(`/keys/${key.id}/limits`)).html).toContain('name="rateLimits" type="text" value="2-per-1s"');
    expect((await member.post(`/keys/${key.id}/limits`, { rateLimits: '2-per-1s, 100-per-1h' })).status).toBe(303);
    expect(await stored()).toEqual([
      { name: 'burst', limit: 2, window: 1000, scope: 'key' },
      { limit: 100, window: 3_600_000, scope: 'key' },
    ]);
    now += 61_000;
    const response = await keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    await response.arrayBuffer();
    expect(response.headers.get('ratelimit-policy')).toBe('"10-per-1s";q=10;w=1, "key-burst";q=2;w=1, "key-100-per-1h";q=100;w=3600');
    expect((await member.post(`/keys/${key.id}/limits`, { rateLimits: '3-per-1s' })).status).toBe(303);
    expect(await stored()).toEqual([{ limit: 3, window: 1000, scope: 'key' }]);
  });

  it('lets an operator change and clear them from the account’s page (served as set), with the member’s refusals, each change audited under the operator', async () => {
    const operator = await (await newContext(browser, keygate.dashboardUrl as string)).newPage();
    await operator.goto('/sign-in');
    await signIn(operator, OPERATOR);
    await operator.goto(`/accounts/${acmeId}`);
    const row = operator.locator(`tr[data-key-id="${key.id}"]`);
    expect(await textOf(row.locator('.own-limits'))).toBe('own rate limit: 3-per-1s');
    await operator.getByRole('link', { name: `Rate limits of Front end (${key.hint})` }).click();
    await expectHeading(operator, 'Rate limits of key “Front end”');
    expect(await operator.getByLabel('Rate limits').inputValue()).toBe('3-per-1s');

    // Refused in the member's words, but for a per-account window: the operator sets those on the account's page.
    const audited = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    await operator.getByLabel('Rate limits').fill('10/s');
    await operator.getByRole('button', { name: 'Save rate limits' }).click();
    await expectHeading(operator, 'Rate limits of key “Front end”');
    expect(await textOf(operator.getByRole('alert'))).toBe(`Rate limits: “10/s” is not a window. ${WRITTEN}`);
    await operator.getByLabel('Rate limits').fill('5-per-1h-per-account');
    await operator.getByRole('button', { name: 'Save rate limits' }).click();
    expect(await textOf(operator.getByRole('alert'))).toBe("Rate limits: “5-per-1h-per-account”: a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, set under Limits on the account’s page.");
    expect(await operator.getByLabel('Rate limits').getAttribute('aria-invalid')).toBe('true');
    expect(await stored()).toEqual([{ limit: 3, window: 1000, scope: 'key' }]);
    expect(await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 })).toEqual(audited);

    await operator.getByLabel('Rate limits').fill('4-per-1m');
    await operator.getByRole('button', { name: 'Save rate limits' }).click();
    await expectHeading(operator, 'Acme Analytics');
    expect(await textOf(operator.getByRole('status'))).toBe(`The rate limits of key “Front end” (${key.hint}) of Acme Analytics are saved: 4-per-1m, on top of the account’s, from its next request.`);
    expect(await textOf(row.locator('.own-limits'))).toBe('own rate limit: 4-per-1m');
    expect(await stored()).toEqual([{ limit: 4, window: 60_000, scope: 'key' }]);
    expect(await burst()).toEqual({ served: 4, refused: 429 });
    const [changed] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(changed).toMatchObject({
      action: 'key.updated',
      actor: OPERATOR,
      actorAddress: '127.0.0.1',
      keyId: key.id,
      detail: { rateLimits: { before: [{ limit: 3, window: '1s', scope: 'key' }], after: [{ name: 'key-4-per-1m', limit: 4, window: '1m', scope: 'key' }] } },
    });

    await operator.getByRole('link', { name: `Rate limits of Front end (${key.hint})` }).click();
    await screenshot(operator, 'operator-key-limits');
    await operator.getByRole('button', { name: 'Remove its own limits' }).click();
    await expectHeading(operator, 'Acme Analytics');
    expect(await textOf(operator.getByRole('status'))).toBe(`Key “Front end” (${key.hint}) of Acme Analytics has no rate limits of its own now: the account’s limits alone apply, from its next request.`);
    expect(await row.locator('.own-limits').count()).toBe(0);
    expect(await stored()).toBeUndefined();
    expect(await burst()).toEqual({ served: 10, refused: 429 });
    const [cleared] = await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 });
    expect(cleared).toMatchObject({ action: 'key.updated', actor: OPERATOR, actorAddress: '127.0.0.1', detail: { rateLimits: { before: [{ limit: 4, window: '1m' }], after: [] } } });

    // A form without the page's token changes nothing (403); with it, the same post is taken.
    await operator.goto(`/accounts/${acmeId}/keys/${key.id}/limits`);
    const path = `/accounts/${acmeId}/keys/${key.id}/limits`;
    expect((await postFromPage(operator, path, { rateLimits: '1-per-1m' }, { withToken: false })).status).toBe(403);
    expect(await stored()).toBeUndefined();
    expect(await postFromPage(operator, path, { rateLimits: '1-per-1m' }, { withToken: true })).toMatchObject({ status: 0, redirected: true });
    expect(await stored()).toEqual([{ limit: 1, window: 60_000, scope: 'key' }]);
    await operator.context().close();
  });

  it('keeps the operator’s page from members (404, page and form) and a key from an account it is not of (404)', async () => {
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, '/keys');
    const path = `/accounts/${acmeId}/keys/${key.id}/limits`;
    expect((await member.get(path)).status).toBe(404);
    expect([(await member.post(path, { rateLimits: '9-per-1m' })).status, (await member.post(path, { rateLimits: '', clear: 'none' })).status]).toEqual([404, 404]);
    const operator = await Visitor.signedIn(keygate.dashboardUrl as string, OPERATOR, `/accounts/${acmeId}`);
    expect((await operator.get(`/accounts/${globexId}/keys/${key.id}/limits`)).status).toBe(404);
    expect((await operator.post(`/accounts/${globexId}/keys/${key.id}/limits`, { rateLimits: '9-per-1m' })).status).toBe(404);
    expect(await stored()).toEqual([{ limit: 1, window: 60_000, scope: 'key' }]);
  });
});
