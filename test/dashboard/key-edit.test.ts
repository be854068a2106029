/**
 * A key renamed and given other scopes on its Edit page, in real Chromium against the real
 * gateway: a member makes a key with no scope (the create form's default), the gateway
 * refuses it on a scoped route (403 insufficient_scope), the page that showed the key once
 * leads to its Edit page, the member ticks the scope, and the SAME key (no new secret) is
 * served. A rename shows in the keys table; each change is audited as key.updated under
 * the member (or the operator) and shown on the audit page. Refusals name the field in the
 * create form's words (a scope the plan does not offer, an empty or too long name) and
 * change nothing; another account's key is a 404, a stopped key cannot be edited, and a
 * form without the CSRF token changes nothing. An operator does the same from the
 * account's page; members cannot reach that page.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import type { KeyRecord } from '../../src/store/store.js';
import { tempDir } from '../support/temp.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { chromiumAvailable, dashboardProfile, expectHeading, launchChromium, MEMBER, newContext, OPERATOR, postFromPage, signIn, textOf } from './support.js';
import { addMember, Visitor } from './visitor.js';

const OTHER = 'bob@globex.example';

describe.skipIf(!chromiumAvailable())('dashboard: a member renames a key and changes its scopes, keeping its secret', () => {
  const dir = tempDir('keygate-dashboard-key-edit');
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let keygate: TestKeygate;
  let browser: Browser;
  let page: Page;
  let acmeId: string;
  let globexId: string;
  let key: KeyRecord;
  let secret: string;

  const stored = async () => (await keygate.runtime.store.getKey(key.id)) as KeyRecord;
  const keyRow = () => page.locator(`tr[data-key-id="${key.id}"]`);
  const call = async (path: string) => {
    const response = await keygate.call(path, { headers: { authorization: `Bearer ${secret}` } });
    return { status: response.status, body: (await response.json()) as unknown };
  };
  const lastAudit = async () => (await keygate.runtime.store.listAudit({ accountId: acmeId, limit: 1 }))[0];

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    // The Pro plan offers projects:read alone; a route that needs no scope lets a key be made with none.
    profile.plans = { ...profile.plans, pro: { name: 'Pro', maxKeys: 3, scopes: ['projects:read'], meters: { units: { limit: 1000, unit: 'units' } } } };
    profile.routes = [...(profile.routes ?? []), { path: '/v1/echo' }];
    keygate = await startKeygate(profile, { dir });
    acmeId = (await createAccount(keygate.runtime, { name: 'Acme Analytics', planId: 'pro' }, 'test')).id;
    globexId = (await createAccount(keygate.runtime, { name: 'Globex', planId: 'pro' }, 'test')).id;
    await addMember(keygate.runtime, MEMBER, acmeId, 'member');
    await addMember(keygate.runtime, OTHER, globexId, 'member');
    await addMember(keygate.runtime, OPERATOR, null, 'operator');
    await createKey(keygate.runtime, { accountId: globexId, name: 'Globex key', scopes: ['projects:read'] }, 'test');
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

  it('gives a key made with no scope the scope it needs from the page that showed it: refused 403 before, served 200 after, with the same secret', async () => {
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Front end');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    secret = await page.getByLabel('Key “Front end”').inputValue();
    [key] = (await keygate.runtime.store.listKeys({ accountId: acmeId })) as [KeyRecord];
    expect(key.scopes).toEqual([]);
    // The page says the scopes can be given to this key, not that a new key is needed.
    expect(await textOf(page.locator('#no-scope'))).toBe(
      'This key has no scope: it reaches only the routes that need none. To call the others, tick the scopes they need on this key’s Edit page: the same key keeps working, with no new secret to copy.',
    );
    const refused = await call('/v1/projects');
    expect(refused.status).toBe(403);
    expect(JSON.stringify(refused.body)).toContain('insufficient_scope');
    expect((await call('/v1/echo')).status).toBe(200);

    await page.locator('#no-scope').getByRole('link', { name: 'this key’s Edit page' }).click();
    await expectHeading(page, 'Edit key “Front end”');
    expect(await page.getByLabel('Name').inputValue()).toBe('Front end');
    // The create form's checkboxes: only what the plan offers, none ticked, with its hint.
    const boxes = page.getByRole('checkbox');
    expect(await boxes.count()).toBe(1);
    expect(await page.getByRole('checkbox', { name: 'projects:read' }).isChecked()).toBe(false);
    expect(await textOf(page.locator('fieldset', { hasText: 'Scopes' }).locator('.hint'))).toBe('What the key may do. With none ticked, the key reaches only the routes that need no scope.');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(page, 'API keys');
    expect(await textOf(page.getByRole('status'))).toBe(`Key “Front end” (${key.hint}) has the scopes projects:read, from its next request.`);
    expect(await textOf(keyRow().locator('td[data-label="Scopes"]'))).toBe('projects:read');

    // The same secret, no new key: served now.
    expect((await call('/v1/projects')).status).toBe(200);
    expect((await keygate.runtime.store.listKeys({ accountId: acmeId })).map((k) => k.id)).toEqual([key.id]);
    expect(await lastAudit()).toMatchObject({ action: 'key.updated', actor: MEMBER, actorAddress: '127.0.0.1', keyId: key.id, detail: { hint: key.hint, scopes: ['projects:read'] } });
  });

  it('renames it from the Edit button in the keys table (shown in the table), and a form sent as shown changes nothing and audits nothing', async () => {
    await page.goto('/keys');
    await page.getByRole('link', { name: `Edit Front end (${key.hint})` }).click();
    await expectHeading(page, 'Edit key “Front end”');
    expect(await page.getByRole('checkbox', { name: 'projects:read' }).isChecked()).toBe(true);
    await page.getByLabel('Name').fill('Web app');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(page, 'API keys');
    expect(await textOf(page.getByRole('status'))).toBe(`Key “Front end” (${key.hint}) is renamed “Web app”.`);
    expect(await textOf(keyRow().locator('.key-name'))).toBe('Web app');
    expect((await stored()).name).toBe('Web app');
    const renamed = await lastAudit();
    expect(renamed).toMatchObject({ action: 'key.updated', actor: MEMBER, keyId: key.id, detail: { hint: key.hint, name: 'Web app' } });
    expect(renamed?.detail).not.toHaveProperty('scopes');

    await page.getByRole('link', { name: `Edit Web app (${key.hint})` }).click();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(page, 'API keys');
    expect(await textOf(page.getByRole('status'))).toBe(`Nothing changed: key “Web app” (${key.hint}) already has that name and the scopes projects:read.`);
    expect(await lastAudit()).toEqual(renamed);
  });

  it('refuses a scope the plan does not offer, an empty name and a too long one, naming the field, with a 400, and changes nothing', async () => {
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, `/keys/${key.id}/edit`);
    const audited = await lastAudit();
    const refusals: [[string, string][], string][] = [
      [[['name', 'Web app'], ['scope', 'rankings:read']], 'Scope rankings:read not allowed; allowed: projects:read.'],
      [[['name', 'Web app'], ['scope', 'projects:read'], ['scope', 'rankings:read']], 'Scope rankings:read not allowed; allowed: projects:read.'],
      [[['name', '   '], ['scope', 'projects:read']], 'Give the key a name, so you can tell it apart later.'],
      [[['name', 'x'.repeat(101)], ['scope', 'projects:read']], 'A key name is at most 100 characters.'],
    ];
    for (const [fields, refusal] of refusals) {
      const answer = await member.post(`/keys/${key.id}/edit`, fields);
      expect([answer.status, answer.heading, answer.alert]).toEqual([400, 'Edit key “Web app”', refusal]);
    }
    // A refused name is shown as sent, marked, and takes the focus.
    await page.goto(`/keys/${key.id}/edit`);
    await page.getByLabel('Name').evaluate((input) => input.removeAttribute('maxlength'));
    await page.getByLabel('Name').fill('y'.repeat(101));
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(page, 'Edit key “Web app”');
    expect(await textOf(page.getByRole('alert'))).toBe('A key name is at most 100 characters.');
    expect([await page.getByLabel('Name').inputValue(), await page.getByLabel('Name').getAttribute('aria-invalid')]).toEqual(['y'.repeat(101), 'true']);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('name');

    expect(await stored()).toMatchObject({ name: 'Web app', scopes: ['projects:read'] });
    expect(await lastAudit()).toEqual(audited);
  });

  it('keeps another account’s member out (404, page and form), refuses a form without the CSRF token (403), and edits no key that has stopped', async () => {
    const other = await Visitor.signedIn(keygate.dashboardUrl as string, OTHER, '/keys');
    expect((await other.get(`/keys/${key.id}/edit`)).status).toBe(404);
    const refused = await other.post(`/keys/${key.id}/edit`, [['name', 'Taken'], ['scope', 'projects:read']]);
    expect([refused.status, refused.heading]).toEqual([404, 'Page not found']);

    await page.goto(`/keys/${key.id}/edit`);
    const forged = await postFromPage(page, `/keys/${key.id}/edit`, { name: 'Forged' }, { withToken: false });
    expect(forged.status).toBe(403);
    expect((await stored()).name).toBe('Web app');

    const { key: old } = await createKey(keygate.runtime, { accountId: acmeId, name: 'Old laptop', scopes: [] }, 'test');
    await revokeKey(keygate.runtime, old.id, 'test');
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, '/keys');
    const shown = await member.get(`/keys/${old.id}/edit`);
    expect([shown.status, shown.heading]).toEqual([409, 'Key “Old laptop” is revoked']);
    expect(shown.html).toContain('It no longer works, so its name and scopes cannot be changed.');
    const sent = await member.post(`/keys/${old.id}/edit`, [['name', 'Revived'], ['scope', 'projects:read']]);
    expect([sent.status, sent.heading]).toEqual([409, 'Key “Old laptop” is revoked']);
    expect(await keygate.runtime.store.getKey(old.id)).toMatchObject({ name: 'Old laptop', scopes: [] });
    // The revoked keys' table offers no Edit.
    await page.goto('/keys');
    expect(await page.locator(`tr[data-key-id="${old.id}"]`).getByRole('link').count()).toBe(0);
  });

  it('lets an operator rename a key and take its scopes away from the account’s page, audited under the operator and shown on the audit page; members cannot reach that page', async () => {
    const operator = await (await newContext(browser, keygate.dashboardUrl as string)).newPage();
    await operator.goto('/sign-in');
    await signIn(operator, OPERATOR);
    await operator.goto(`/accounts/${acmeId}`);
    await operator.getByRole('link', { name: `Edit Web app (${key.hint})` }).click();
    await expectHeading(operator, 'Edit key “Web app”');
    await operator.getByLabel('Name').fill('Web app (legacy)');
    await operator.getByRole('checkbox', { name: 'projects:read' }).uncheck();
    await operator.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(operator, 'Acme Analytics');
    expect(await textOf(operator.getByRole('status'))).toBe(
      `Key “Web app” (${key.hint}) of Acme Analytics is renamed “Web app (legacy)” and has no scope: it reaches only the routes that need none, from its next request.`,
    );
    expect(await textOf(operator.locator(`tr[data-key-id="${key.id}"] .key-name`))).toBe('Web app (legacy)');
    expect(await stored()).toMatchObject({ name: 'Web app (legacy)', scopes: [] });
    expect((await call('/v1/projects')).status).toBe(403);
    expect(await lastAudit()).toMatchObject({ action: 'key.updated', actor: OPERATOR, actorAddress: '127.0.0.1', keyId: key.id, detail: { hint: key.hint, name: 'Web app (legacy)', scopes: [] } });

    await operator.goto('/audit');
    const rows = operator.locator('tbody tr', { hasText: 'Changed a key' });
    expect(await textOf(rows.filter({ hasText: OPERATOR }).locator('td[data-label="Details"]'))).toBe('name → “Web app (legacy)”, scopes → none');
    expect(await textOf(rows.filter({ hasText: MEMBER }).filter({ hasText: 'scopes' }).locator('td[data-label="Details"]'))).toBe('scopes → projects:read');
    expect(await textOf(rows.filter({ hasText: MEMBER }).filter({ hasText: 'name' }).locator('td[data-label="Details"]'))).toBe('name → “Web app”');
    await operator.context().close();

    const path = `/accounts/${acmeId}/keys/${key.id}/edit`;
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, '/keys');
    expect((await member.get(path)).status).toBe(404);
    expect((await member.post(path, [['name', 'Mine'], ['scope', 'projects:read']])).status).toBe(404);
    const asOperator = await Visitor.signedIn(keygate.dashboardUrl as string, OPERATOR, `/accounts/${acmeId}`);
    expect((await asOperator.get(`/accounts/${globexId}/keys/${key.id}/edit`)).status).toBe(404);
    expect((await stored()).name).toBe('Web app (legacy)');
  });
});

/**
 * Where the profile says every key carries a scope (keys.requireScopes), the Edit page
 * refuses to take a key's last scope away, in the create form's words; a key stored with
 * none before the profile said so can still be renamed (its scopes unchanged), as
 * `keygate keys update --name` allows.
 */
describe.skipIf(!chromiumAvailable())('dashboard: a key’s Edit page where every key carries a scope', () => {
  const dir = tempDir('keygate-dashboard-key-edit-required');
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let keygate: TestKeygate;
  let acmeId: string;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    profile.keys = { ...profile.keys, requireScopes: true };
    keygate = await startKeygate(profile, { dir });
    acmeId = (await createAccount(keygate.runtime, { name: 'Acme Analytics', planId: 'pro' }, 'test')).id;
    await addMember(keygate.runtime, MEMBER, acmeId, 'member');
  });

  afterAll(async () => {
    await keygate?.close();
    await upstream?.close();
  });

  it('refuses a key with no scope ticked (400, the create form’s words) and renames one stored with none', async () => {
    const { key } = await createKey(keygate.runtime, { accountId: acmeId, name: 'Scoped', scopes: ['projects:read'] }, 'test');
    const { key: bare } = await createKey(keygate.runtime, { accountId: acmeId, name: 'Bare', scopes: ['projects:read'] }, 'test');
    // As stored before keys.requireScopes was set.
    await keygate.runtime.store.updateKey(bare.id, { scopes: [] });
    const member = await Visitor.signedIn(keygate.dashboardUrl as string, MEMBER, `/keys/${key.id}/edit`);
    const refused = await member.post(`/keys/${key.id}/edit`, { name: 'Scoped' });
    expect([refused.status, refused.heading, refused.alert]).toEqual([400, 'Edit key “Scoped”', 'Choose at least one scope: every key of this API carries one.']);
    expect((await keygate.runtime.store.getKey(key.id))?.scopes).toEqual(['projects:read']);

    await member.get(`/keys/${bare.id}/edit`);
    const renamed = await member.post(`/keys/${bare.id}/edit`, { name: 'Bare (old)' });
    expect([renamed.status, renamed.location]).toEqual([303, '/keys']);
    expect(await keygate.runtime.store.getKey(bare.id)).toMatchObject({ name: 'Bare (old)', scopes: [] });
  });
});
