/**
 * A profile whose keys never expire and cannot be rotated in place (keys.expiry and
 * keys.rotation false, as Ranktracker's document says): the dashboard offers neither, in
 * real Chromium, and the rotate address does not exist. And one with one working key per
 * account (keys.rotation: replace, as SE Ranking's Data API): Rotate offers no overlap and
 * revokes the old key at once. And a key given no scope, refused only with keys.requireScopes.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { chromiumAvailable, expectHeading, launchChromium, newAccount, type DashboardFixture, signedInPage, startDashboard, textOf, useDashboard } from './support.js';
import { createKey, getKey, revokeKey, rotateKey } from '../../src/operations/keys.js';
import { updateAccount } from '../../src/operations/accounts.js';
import type { ConfigInput } from '../../src/config/schema.js';

/**
 * A dashboard on the test profile with `keys` settings changed, and a member of a new
 * account signed in to it in Chromium, the account holding one key named "production".
 */
async function memberWithKey(dir: string, keys: Partial<NonNullable<ConfigInput['keys']>>, accountName: string, email: string) {
  const fixture = await startDashboard(dir, (profile) => ({ ...profile, keys: { ...profile.keys, ...keys } }));
  const browser = await launchChromium();
  const accountId = await newAccount(fixture, accountName);
  const keyId = (await createKey(fixture.keygate.runtime, { accountId, name: 'production' }, 'test')).key.id;
  const page = await signedInPage(fixture, browser, email, accountId);
  return { fixture, browser, page, keyId, accountId };
}

describe.skipIf(!chromiumAvailable())('dashboard: keys that never expire and are not rotated in place', () => {
  const dir = tempDir('keygate-dashboard-key-switches');
  let fixture: DashboardFixture;
  let browser: Browser;
  let page: Page;
  let keyId: string;
  let accountId: string;

  beforeAll(async () => {
    ({ fixture, browser, page, keyId, accountId } = await memberWithKey(dir, { expiry: false, rotation: false }, 'Acme Analytics', 'ada@acme.example'));
  });

  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
  });

  it('lists keys with Revoke but no Rotate', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys`);
    await expectHeading(page, 'API keys');
    await expect.poll(() => page.getByRole('link', { name: 'Revoke production' }).count()).toBe(1);
    expect(await page.getByRole('link', { name: 'Rotate production' }).count()).toBe(0);
  });

  it('creates a key without an Expires choice', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys/new`);
    await expectHeading(page, 'Create a key');
    expect(await page.getByLabel('Name').count()).toBe(1);
    expect(await page.getByLabel('Expires').count()).toBe(0);
  });

  it('has no rotate page', async () => {
    const response = await page.goto(`${fixture.dashboardUrl}/keys/${keyId}/rotate`);
    expect(response?.status()).toBe(404);
  });

  it('tells a member what brings API access back: a renewed plan, or the operator', async () => {
    const rt = fixture.keygate.runtime;
    const warning = async () => {
      await page.goto(`${fixture.dashboardUrl}/keys`);
      return (await page.locator('.notice.warning').first().textContent())?.trim();
    };
    await updateAccount(rt, accountId, { planExpiresAt: Date.now() - 60_000 }, 'test');
    expect(await warning()).toBe('API access is off for this account (the plan has expired). You can manage keys, but requests are refused until the plan is renewed.');
    await updateAccount(rt, accountId, { planExpiresAt: null, apiAccess: false }, 'test');
    expect(await warning()).toBe('API access is off for this account (it was turned off by the operator). You can manage keys, but requests are refused until it is turned back on.');
    await updateAccount(rt, accountId, { apiAccess: true }, 'test');
  });

  it('tells a member on the usage page when the plan ends, or ended', async () => {
    const rt = fixture.keygate.runtime;
    const plan = async () => {
      await page.goto(`${fixture.dashboardUrl}/usage`);
      return textOf(page.locator('.facts div', { hasText: 'Plan' }).locator('dd'));
    };
    expect(await plan()).toBe('Pro');
    await updateAccount(rt, accountId, { planExpiresAt: Date.UTC(2030, 0, 31) }, 'test');
    expect(await plan()).toBe('Pro (until 2030-01-31 00:00 UTC)');
    await updateAccount(rt, accountId, { planExpiresAt: Date.UTC(2020, 0, 31) }, 'test');
    expect(await plan()).toBe('Pro (ended 2020-01-31 00:00 UTC)');
    await updateAccount(rt, accountId, { planExpiresAt: null }, 'test');
  });

  it('warns, on a new key’s page and where there are no keys yet, that requests are refused while API access is off', async () => {
    const rt = fixture.keygate.runtime;
    await updateAccount(rt, accountId, { apiAccess: false }, 'test');
    await page.goto(`${fixture.dashboardUrl}/keys/new`);
    await page.getByLabel('Name').fill('staging');
    await page.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    expect(await textOf(page.locator('.notice.warning'))).toBe('API access is off for this account (it was turned off by the operator): requests with this key are refused until API access is turned back on.');
    const secret = await page.getByLabel('Key “staging”').inputValue();
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(403);
    // No keys left: the empty state does not promise that a new key calls the API.
    for (const key of await rt.store.listKeys({ accountId })) await revokeKey(rt, key.id, 'test');
    await page.goto(`${fixture.dashboardUrl}/keys`);
    expect(await textOf(page.locator('.empty'))).toBe('No keys yet.\n\nA key created now is refused until API access is turned back on. Its secret is shown once, right after you create it.');
    await updateAccount(rt, accountId, { apiAccess: true }, 'test');
    await page.reload();
    expect(await textOf(page.locator('.empty'))).toBe('No keys yet.\n\nCreate a key to start calling the API. Its secret is shown once, right after you create it.');
  });
});

describe.skipIf(!chromiumAvailable())('dashboard: one working key per account (keys.rotation: replace)', () => {
  const dir = tempDir('keygate-dashboard-rotation-replace');
  let fixture: DashboardFixture;
  let browser: Browser;
  let page: Page;
  let keyId: string;

  beforeAll(async () => {
    ({ fixture, browser, page, keyId } = await memberWithKey(dir, { rotation: 'replace' }, 'Single Key Co', 'ada@single.example'));
  });

  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
  });

  it('refuses a form edited to keep the current key for an overlap, and the key is unchanged', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys/${keyId}/rotate`);
    await expectHeading(page, 'Rotate key “production”');
    await page.locator('input[name="overlap"]').evaluate((input) => ((input as HTMLInputElement).value = '24h'));
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(page, 'Rotate key “production”');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('This API replaces a key at once: the current key cannot be kept working beside its replacement.');
    const key = await getKey(fixture.keygate.runtime, keyId);
    expect([key.revokedAt, key.expiresAt]).toEqual([null, null]);
  });

  it('rotates without an overlap to choose, and the old key is revoked at once', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys`);
    await page.getByRole('link', { name: 'Rotate production' }).click();
    await expectHeading(page, 'Rotate key “production”');
    expect(await page.getByRole('radio').count()).toBe(0);
    await expect.poll(() => page.getByText('stops working as soon as the replacement is created').count()).toBe(1);
    // No earlier rotation is in its overlap: none is named as ending.
    expect(await page.locator('#overlaps-ending').count()).toBe(0);
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(page, 'Copy your replacement key');
    await expect.poll(() => page.getByText('was revoked and stopped working').count()).toBe(1);
    expect(await page.locator('#overlaps-ended').count()).toBe(0);
    expect((await getKey(fixture.keygate.runtime, keyId)).revokedAt).not.toBeNull();
  });
});

describe.skipIf(!chromiumAvailable())('dashboard: a rotation under keys.rotation: replace names the earlier key whose overlap it ends', () => {
  const dir = tempDir('keygate-dashboard-rotation-replace-overlap');
  const EMAIL = 'ada@overlap.example';
  let fixture: DashboardFixture;
  let browser: Browser;
  let page: Page;
  let first: { hint: string; secret: string };
  let second: { hint: string; secret: string };

  const works = async (secret: string) => (await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status;

  beforeAll(async () => {
    // An overlap begun while the profile rotated with overlaps (keys.rotation: true)...
    const earlier = await startDashboard(dir);
    const accountId = await newAccount(earlier, 'Overlap Co');
    const issued = await createKey(earlier.keygate.runtime, { accountId, name: 'production', scopes: ['*'] }, 'test');
    const rotated = await rotateKey(earlier.keygate.runtime, issued.key.id, 24 * 3_600_000, 'test');
    first = { hint: issued.key.hint, secret: issued.secret };
    second = { hint: rotated.key.hint, secret: rotated.secret };
    await earlier.close();
    // ...still running once it replaces keys at once (a change a restart applies).
    fixture = await startDashboard(dir, (profile) => ({ ...profile, keys: { ...profile.keys, rotation: 'replace' } }));
    browser = await launchChromium();
    page = await signedInPage(fixture, browser, EMAIL, accountId);
  });

  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
  });

  it('the rotate page names the earlier key it will end, by name and hint; the answer says it was ended, and only the replacement works', async () => {
    expect([await works(first.secret), await works(second.secret)]).toEqual([200, 200]);
    await page.goto(`${fixture.dashboardUrl}/keys`);
    await page.getByRole('link', { name: `Rotate production (${second.hint})` }).click();
    await expectHeading(page, 'Rotate key “production”');
    expect(await textOf(page.locator('#overlaps-ending'))).toMatch(
      new RegExp(`^Rotating also ends the overlap of an earlier rotation: the earlier key “production” ${literally(first.hint)}, still working beside this one \\(until \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC\\), is revoked with it and stops working at once\\.$`),
    );
    // Named, never shown: no secret is in the page.
    const content = await page.content();
    expect([content.includes(first.secret), content.includes(second.secret)]).toEqual([false, false]);
    // Asking is not doing: the earlier key still works.
    expect(await works(first.secret)).toBe(200);

    await page.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(page, 'Copy your replacement key');
    expect(await textOf(page.locator('#overlaps-ended'))).toBe(`The rotation also ended the overlap of an earlier rotation: the earlier key “production” ${first.hint} was revoked and stopped working.`);
    const third = await page.getByLabel('Key “production”').inputValue();
    expect([await works(first.secret), await works(second.secret), await works(third)]).toEqual([401, 401, 200]);
  });
});

/** `text` as a regular expression matching it literally. */
function literally(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe.skipIf(!chromiumAvailable())('dashboard: plans that allow one key, or none', () => {
  const fixture = useDashboard('keygate-dashboard-key-limits', (profile) => ({
    ...profile,
    plans: { ...profile.plans, solo: { name: 'Solo', maxKeys: 1 }, duo: { name: 'Duo', maxKeys: 2 }, starter: { name: 'Starter', maxKeys: 0, apiAccess: false } },
  }));
  let solo: Page;
  let starter: Page;
  let moved: Page;
  let duo: Page;

  beforeAll(async () => {
    const soloAccount = await newAccount(fixture, 'Solo Co', 'solo');
    await createKey(fixture.keygate.runtime, { accountId: soloAccount, name: 'production' }, 'test');
    solo = await signedInPage(fixture, fixture.browser, 'ada@solo.example', soloAccount);
    // Three keys on Pro, then moved to Solo (one key): over the limit.
    const movedAccount = await newAccount(fixture, 'Moved Co', 'pro');
    for (const name of ['one', 'two', 'three']) await createKey(fixture.keygate.runtime, { accountId: movedAccount, name }, 'test');
    await updateAccount(fixture.keygate.runtime, movedAccount, { planId: 'solo' }, 'test');
    moved = await signedInPage(fixture, fixture.browser, 'cy@moved.example', movedAccount);
    // Two keys on Duo (two keys), one of them the other's replacement in its overlap: neither can be rotated now.
    const duoAccount = await newAccount(fixture, 'Duo Co', 'duo');
    const first = await createKey(fixture.keygate.runtime, { accountId: duoAccount, name: 'first', scopes: ['projects:read'] }, 'test');
    await rotateKey(fixture.keygate.runtime, first.key.id, 3_600_000, 'test');
    duo = await signedInPage(fixture, fixture.browser, 'di@duo.example', duoAccount);
    const starterAccount = await newAccount(fixture, 'Starter Co', 'starter');
    starter = await signedInPage(fixture, fixture.browser, 'bo@starter.example', starterAccount);
  });

  it('at the limit of one key: no Create, and the page says how to make room (Rotate is there)', async () => {
    await solo.goto(`${fixture.dashboardUrl}/keys`);
    await expectHeading(solo, 'API keys');
    expect(await solo.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    await expect.poll(() => solo.getByText('1 of 1 key in use on the Solo plan: revoke a key to create another, or rotate one to replace it.').count()).toBe(1);
    expect(await solo.getByRole('link', { name: /^Rotate production/ }).count()).toBe(1);
  });

  it('at the limit with a rotation in its overlap: says to revoke a key, not to rotate one (no key can be rotated now)', async () => {
    const makeRoom = '2 of 2 keys in use on the Duo plan (1 of them being replaced): revoke a key to create another.';
    await duo.goto(`${fixture.dashboardUrl}/keys`);
    await expectHeading(duo, 'API keys');
    await expect.poll(() => duo.getByText(makeRoom, { exact: true }).count()).toBe(1);
    expect(await duo.getByRole('link', { name: /^Rotate / }).count()).toBe(0);
    await duo.goto(`${fixture.dashboardUrl}/keys/new`);
    await expectHeading(duo, 'No room for another key');
    expect(await textOf(duo.getByRole('alert'))).toBe(makeRoom);
  });

  it('over the limit after a move to a smaller plan: says how many keys to revoke, and offers no Rotate (it would be refused)', async () => {
    await moved.goto(`${fixture.dashboardUrl}/keys`);
    await expectHeading(moved, 'API keys');
    expect(await moved.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    await expect.poll(() => moved.getByText('3 of 1 key in use on the Solo plan: revoke 3 keys to create another.', { exact: true }).count()).toBe(1);
    expect(await moved.getByRole('link', { name: /^Rotate / }).count()).toBe(0);
    expect(await moved.getByRole('link', { name: /^Revoke / }).count()).toBe(3);
    await moved.goto(`${fixture.dashboardUrl}/keys/new`);
    await expectHeading(moved, 'No room for another key');
    await expect.poll(() => moved.getByText('3 of 1 key in use on the Solo plan: revoke 3 keys to create another.', { exact: true }).count()).toBe(1);
  });

  it('a rotation the limit refuses names the other keys as the member sees them (name and hint, no ids), and leaves no form to send again', async () => {
    const rt = fixture.keygate.runtime;
    const moves = await rt.store.listAccounts({ search: 'Moved Co' });
    const movedId = moves[0]?.id as string;
    const keys = await rt.store.listKeys({ accountId: movedId });
    const hint = (name: string) => keys.find((k) => k.name === name)?.hint as string;
    const one = keys.find((k) => k.name === 'one')?.id as string;
    // A rotate form opened while the account was on Pro (3 keys: room for the overlap), sent after a move to Solo.
    await updateAccount(rt, movedId, { planId: 'pro' }, 'test');
    await moved.goto(`${fixture.dashboardUrl}/keys/${one}/rotate`);
    await expectHeading(moved, 'Rotate key “one”');
    await updateAccount(rt, movedId, { planId: 'solo' }, 'test');
    // Listed in creation order; two keys made in the same millisecond, by id.
    const others = keys.filter((k) => k.name !== 'one').map((k) => `“${k.name}” ${hint(k.name)}`);
    expect(others).toHaveLength(2);
    const refusal = `The Solo plan allows 1 key per account, and this account has 2 other active keys (${others.join('; ')}); revoke both first.`;
    await moved.getByRole('button', { name: 'Rotate key' }).click();
    expect(await textOf(moved.getByRole('alert'))).toBe(refusal);
    await expectHeading(moved, 'Key “one” cannot be rotated');
    expect(await moved.getByRole('button', { name: 'Rotate key' }).count()).toBe(0);
    // Creating a key is refused too: not offered as the way out.
    expect(await moved.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    // Its rotate page, opened again (by its address, or Back), says so at once.
    const opened = await moved.goto(`${fixture.dashboardUrl}/keys/${one}/rotate`);
    expect(opened?.status()).toBe(409);
    await expectHeading(moved, 'Key “one” cannot be rotated');
    expect(await textOf(moved.getByRole('alert'))).toBe(refusal);
    expect(await moved.getByRole('button', { name: 'Rotate key' }).count()).toBe(0);
    expect((await rt.store.listKeys({ accountId: movedId })).length).toBe(3);
  });

  it('a stopped key whose replacement the limit will not let rotate either says why and offers to revoke the keys in the way, then the replacement’s rotation', async () => {
    const rt = fixture.keygate.runtime;
    // Rotated at once on Pro (the old key revoked), beside a second key; then moved to Solo (one key).
    const accountId = await newAccount(fixture, 'Shrunk Co', 'pro');
    const first = (await createKey(rt, { accountId, name: 'first' }, 'test')).key;
    const second = (await createKey(rt, { accountId, name: 'second' }, 'test')).key;
    const replacement = (await rotateKey(rt, first.id, 0, 'test', accountId)).key;
    await updateAccount(rt, accountId, { planId: 'solo' }, 'test');
    const page = await signedInPage(fixture, fixture.browser, 'di@shrunk.example', accountId);

    const opened = await page.goto(`${fixture.dashboardUrl}/keys/${first.id}/rotate`);
    expect(opened?.status()).toBe(409);
    await expectHeading(page, 'Key “first” cannot be rotated');
    expect(await textOf(page.getByRole('alert'))).toMatch(new RegExp(`only an active key can be rotated: rotate its replacement “first” ${literally(replacement.hint)} instead\\.$`));
    expect(await textOf(page.locator('#replacement-not-yet'))).toBe(
      `“first” ${replacement.hint} cannot be rotated either: the Solo plan allows 1 key per account, and this account has 1 other active key (“second” ${second.hint}); revoke it first.`,
    );
    expect(await page.getByRole('link', { name: /^Rotate “/ }).count()).toBe(0);
    await page.getByRole('link', { name: `Revoke “second” ${second.hint}` }).click();
    await expectHeading(page, 'Revoke key “second”?');
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await expectHeading(page, 'API keys');

    // With room again, the same page offers the replacement's rotation, and says nothing more.
    await page.goto(`${fixture.dashboardUrl}/keys/${first.id}/rotate`);
    expect(await page.locator('#replacement-not-yet').count()).toBe(0);
    await page.getByRole('link', { name: `Rotate “first” ${replacement.hint}` }).click();
    await expectHeading(page, 'Rotate key “first”');
    expect(await page.getByRole('button', { name: 'Rotate key' }).count()).toBe(1);
  });

  it('during a rotation’s overlap at the limit, says when Rotate comes back: once the key being replaced stops working, or is revoked', async () => {
    await solo.goto(`${fixture.dashboardUrl}/keys`);
    await solo.getByRole('link', { name: /^Rotate production/ }).click();
    await solo.getByRole('radio', { name: '1 hour' }).check();
    await solo.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(solo, 'Copy your replacement key');
    await solo.goto(`${fixture.dashboardUrl}/keys`);
    const outgoing = (await fixture.keygate.runtime.store.listKeys({})).find((k) => k.name === 'production' && k.accountId !== null && k.revokedAt === null && k.expiresAt !== null);
    // An end to wait for: to the minute, rounded up (at the minute named, it has stopped), as a refusal names it.
    const ends = `${new Date(Math.ceil((outgoing?.expiresAt as number) / 60_000) * 60_000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    expect(await textOf(solo.locator('.actions .muted'))).toBe(
      `2 of 1 key in use on the Solo plan (1 of them being replaced): revoke 2 keys to create another. Rotate comes back once the key being replaced stops working (${ends}), or once you revoke it.`,
    );
    expect(await solo.getByRole('link', { name: /^Rotate / }).count()).toBe(0);
    // Revoked early, there is room to rotate again.
    await solo.getByRole('link', { name: `Revoke production (${outgoing?.hint})` }).click();
    await solo.getByRole('button', { name: 'Revoke key' }).click();
    await expectHeading(solo, 'API keys');
    await expect.poll(() => solo.getByRole('link', { name: /^Rotate production/ }).count()).toBe(1);
  });

  it('before revoking either key of a rotation’s overlap, says what becomes of the other, and names the old key’s end at the same minute on every page', async () => {
    // Thirty seconds past a minute, so that the overlap's end is too: truncating and rounding up name different minutes.
    const now = fixture.keygate.runtime.clock();
    fixture.clock.advance(Math.ceil(now / 60_000) * 60_000 + 30_000 - now);
    await solo.goto(`${fixture.dashboardUrl}/keys`);
    await solo.getByRole('link', { name: /^Rotate production/ }).click();
    await solo.getByRole('radio', { name: '1 hour' }).check();
    await solo.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(solo, 'Copy your replacement key');
    const keys = (await fixture.keygate.runtime.store.listKeys({})).filter((k) => k.name === 'production' && k.revokedAt === null);
    const outgoing = keys.find((k) => k.expiresAt !== null);
    const replacement = keys.find((k) => k.rotatedFrom === outgoing?.id);
    // The overlap's end, on the page after the rotation as in its Expires cell and on the revoke page: one minute,
    // rounded up as a refusal names it (truncated here, it read "until 10:16" beside "stops working at 10:17").
    const endsAt = outgoing?.expiresAt as number;
    const endsUp = `${new Date(Math.ceil(endsAt / 60_000) * 60_000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    expect(await textOf(solo.locator('.notice', { hasText: 'keeps working until' }))).toBe(
      `The previous key ${outgoing?.hint} keeps working until ${endsUp} (in 1 h), then expires by itself. Deploy the new key before then.`,
    );
    await solo.goto(`${fixture.dashboardUrl}/keys`);
    expect(await textOf(solo.locator(`tr[data-key-id="${outgoing?.id}"] td[data-label="Expires (UTC)"]`))).toBe(endsUp.replace(' UTC', ''));
    // Revoking the replacement does not undo the rotation: the key it replaces stops all the same.
    await solo.goto(`${fixture.dashboardUrl}/keys/${replacement?.id}/revoke`);
    expect(await textOf(solo.locator('.notice.warning'))).toBe(
      `Programs using ${replacement?.hint} will be refused from their next request. This cannot be undone. It replaces ${outgoing?.hint}, which stops working at ${endsUp} all the same: revoking this key does not keep that one working.`,
    );
    await solo.goto(`${fixture.dashboardUrl}/keys/${outgoing?.id}/revoke`);
    expect(await textOf(solo.locator('.notice.warning'))).toBe(
      `Programs using ${outgoing?.hint} will be refused from their next request. This cannot be undone. Its replacement ${replacement?.hint} keeps working.`,
    );
  });

  it('a plan with neither meters nor rate limits says so on the usage page, and no more', async () => {
    await solo.goto(`${fixture.dashboardUrl}/usage`);
    await expect.poll(() => solo.getByText('The Solo plan has no metered quotas.', { exact: true }).count()).toBe(1);
  });

  it('a plan without keys or API access: no Create, no empty-state invitation, and says why', async () => {
    await starter.goto(`${fixture.dashboardUrl}/keys`);
    await expectHeading(starter, 'API keys');
    expect(await starter.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    await expect.poll(() => starter.getByText('The Starter plan does not include API keys: keys can be created once the account is on a plan that does.').count()).toBe(1);
    await expect.poll(() => starter.getByText('Requests are refused until the account is on a plan that includes it.', { exact: false }).count()).toBe(1);
    expect(await starter.getByText('Create a key to start calling the API').count()).toBe(0);
  });
});

/**
 * A key created in the dashboard with no scope ticked, as `keygate keys create --scopes ''`
 * and the admin API make one: it reaches the routes that need no scope. Refused only
 * where the profile says every key carries one (keys.requireScopes).
 */
describe.skipIf(!chromiumAvailable())('dashboard: a key with no scope (keys.requireScopes)', () => {
  const dir = tempDir('keygate-dashboard-no-scope');
  let fixture: DashboardFixture;
  let required: DashboardFixture;
  let browser: Browser;
  let page: Page;
  let strict: Page;
  let requiredAccount: string;

  /** The profile with a route that needs no scope (the demo's echo), beside its scoped ones. */
  const withOpenRoute = (requireScopes: boolean) => (profile: ConfigInput): ConfigInput => ({
    ...profile,
    keys: { ...profile.keys, requireScopes },
    routes: [...(profile.routes ?? []), { path: '/v1/echo' }],
  });

  /** Fills the create form with every scope unticked and sends it. */
  async function createWithoutScopes(on: Page, url: string, name: string): Promise<void> {
    await on.goto(`${url}/keys/new`);
    await expectHeading(on, 'Create a key');
    await on.getByLabel('Name').fill(name);
    for (const box of await on.getByRole('checkbox').all()) await box.uncheck();
    await on.getByRole('button', { name: 'Create key' }).click();
  }

  beforeAll(async () => {
    fixture = await startDashboard(dir, withOpenRoute(false));
    required = await startDashboard(tempDir('keygate-dashboard-scope-required'), withOpenRoute(true));
    browser = await launchChromium();
    page = await signedInPage(fixture, browser, 'ada@open.example', await newAccount(fixture, 'Open Co'));
    requiredAccount = await newAccount(required, 'Strict Co');
    strict = await signedInPage(required, browser, 'ada@strict.example', requiredAccount);
  });

  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
    await required?.close();
  });

  it('creates it where keys may carry none, and it reaches the routes that need no scope only', async () => {
    await createWithoutScopes(page, fixture.dashboardUrl, 'Health check');
    await expectHeading(page, 'Copy your new key');
    expect(await textOf(page.locator('dl.facts div', { hasText: 'Scopes' }).locator('dd'))).toBe('none');
    // Said beside the key, as the form's hint said it: the key is refused by every route that needs a scope.
    expect(await textOf(page.locator('#no-scope'))).toBe('This key has no scope: it reaches only the routes that need none. To call the others, tick the scopes they need on this key’s Edit page: the same key keeps working, with no new secret to copy.');
    const secret = await page.getByLabel('Key “Health check”').inputValue();
    const call = async (path: string) => (await fixture.keygate.call(path, { headers: { authorization: `Bearer ${secret}` } })).status;
    expect([await call('/v1/echo'), await call('/v1/projects')]).toEqual([200, 403]);
  });

  it('opens the form with no scope ticked: a name and Enter make a key with no scope, never an all-scopes one', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys/new`);
    await expectHeading(page, 'Create a key');
    const boxes = page.getByRole('checkbox');
    expect(await boxes.count()).toBeGreaterThan(1);
    for (const box of await boxes.all()) expect(await box.isChecked()).toBe(false);
    expect(await textOf(page.locator('fieldset', { hasText: 'Scopes' }).locator('.hint'))).toBe(
      'What the key may do; * grants every scope, including ones added later, so it is chosen alone. With none ticked, the key reaches only the routes that need no scope.',
    );
    await page.getByLabel('Name').fill('Just a name');
    await page.getByLabel('Name').press('Enter');
    await expectHeading(page, 'Copy your new key');
    expect(await textOf(page.locator('dl.facts div', { hasText: 'Scopes' }).locator('dd'))).toBe('none');
    const secret = await page.getByLabel('Key “Just a name”').inputValue();
    const call = async (path: string) => (await fixture.keygate.call(path, { headers: { authorization: `Bearer ${secret}` } })).status;
    expect([await call('/v1/echo'), await call('/v1/projects')]).toEqual([200, 403]);
  });

  it('where every key carries a scope, the form says so, and a name and Enter are refused with the reason', async () => {
    await strict.goto(`${required.dashboardUrl}/keys/new`);
    for (const box of await strict.getByRole('checkbox').all()) expect(await box.isChecked()).toBe(false);
    expect(await textOf(strict.locator('fieldset', { hasText: 'Scopes' }).locator('.hint'))).toBe(
      'What the key may do; * grants every scope, including ones added later, so it is chosen alone. Tick at least one: every key of this API carries one.',
    );
    await strict.getByLabel('Name').fill('Just a name');
    await strict.getByLabel('Name').press('Enter');
    await expectHeading(strict, 'Create a key');
    expect(await textOf(strict.getByRole('alert'))).toBe('Choose at least one scope: every key of this API carries one.');
    expect(await required.keygate.runtime.store.listKeys({ accountId: requiredAccount })).toEqual([]);
  });

  it('refuses it, saying why, where every key carries a scope; no key is made', async () => {
    await createWithoutScopes(strict, required.dashboardUrl, 'Health check');
    await expectHeading(strict, 'Create a key');
    expect(await textOf(strict.getByRole('alert'))).toBe('Choose at least one scope: every key of this API carries one.');
    expect(await required.keygate.runtime.store.listKeys({ accountId: requiredAccount })).toEqual([]);
  });
});

/**
 * The test profile as it is: every route needs a scope (/v1/projects, /v1/rankings), so a
 * key given none could call nothing, keys.requireScopes or not. The create form, opened
 * with no scope ticked, says to tick one and refuses a key without. (Operators belong to
 * no account: members' form is the dashboard's only one.)
 */
describe.skipIf(!chromiumAvailable())('dashboard: a key with no scope where every route needs one', () => {
  const fixture = useDashboard('keygate-dashboard-scoped-routes');
  let page: Page;
  let accountId: string;

  beforeAll(async () => {
    accountId = await newAccount(fixture, 'Scoped Co');
    page = await signedInPage(fixture, fixture.browser, 'ada@scoped.example', accountId);
  });

  it('says to tick one, and refuses a name and Enter with the reason; no key is made', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys/new`);
    await expectHeading(page, 'Create a key');
    for (const box of await page.getByRole('checkbox').all()) expect(await box.isChecked()).toBe(false);
    expect(await textOf(page.locator('fieldset', { hasText: 'Scopes' }).locator('.hint'))).toBe(
      'What the key may do; * grants every scope, including ones added later, so it is chosen alone. Tick at least one: every route of this API needs one.',
    );
    await page.getByLabel('Name').fill('Just a name');
    await page.getByLabel('Name').press('Enter');
    await expectHeading(page, 'Create a key');
    expect(await textOf(page.getByRole('alert'))).toBe('Choose at least one scope: every route of this API needs one.');
    expect(await fixture.keygate.runtime.store.listKeys({ accountId })).toEqual([]);
  });

  it('makes the key once a scope is ticked, and it calls the route that scope opens', async () => {
    await page.goto(`${fixture.dashboardUrl}/keys/new`);
    await page.getByLabel('Name').fill('Projects');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    expect(await textOf(page.locator('dl.facts div', { hasText: 'Scopes' }).locator('dd'))).toBe('projects:read');
    const secret = await page.getByLabel('Key “Projects”').inputValue();
    const call = async (path: string) => (await fixture.keygate.call(path, { headers: { authorization: `Bearer ${secret}` } })).status;
    expect([await call('/v1/projects'), await call('/v1/rankings')]).toEqual([200, 403]);
  });
});
