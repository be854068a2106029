/**
 * Every dashboard page audited by axe-core in real Chromium, at desktop and phone widths:
 * signed out (sign-in, invitation and password reset links), a member's pages (keys,
 * a new key shown once, a key's rate limits, its name and scopes, rotate and revoke, usage, changing the password) and an
 * operator's (accounts, an account, a key's rate limits, its name and scopes, an invitation link, address
 * blocks, audit log, changing the password), each in the states worth seeing: a form
 * error shown, a key just created, a blocked key, a confirmation notice. The hand-made
 * checks of accessibility.test.ts stay; this holds each page to WCAG 2.0 and 2.1 A and
 * AA and axe's best practices, and names each violation and its elements on failure.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { keyBlockId } from '../../src/counters/counters.js';
import { updateAccount } from '../../src/operations/accounts.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import {
  axeViolationLine,
  axeViolations,
  chromiumAvailable,
  DESKTOP,
  expectHeading,
  invite,
  memberAndOperator,
  newAccount,
  newContext,
  PASSWORD,
  PHONE,
  shown,
  useDashboard,
} from './support.js';

const WIDTHS = [
  ['desktop', DESKTOP],
  ['phone', PHONE],
] as const;
type Width = (typeof WIDTHS)[number][0];

/** What one width's pages are about: an account of its own (its keys are created, rotated and revoked by the member's pages). */
interface Scene {
  accountId: string;
  /** "Reporting script": has made requests, and is blocked by the rate limiter. */
  keyId: string;
  revokedId: string;
  member: Page;
  operator: Page;
  visitor: Page;
}

const NEW_PASSWORD = 'a brand new passphrase';
/** Unknown keys from one client before it is blocked (auth.unknownKeys). */
const UNKNOWN_KEYS = 3;

/** Fills in the password page's form and sends it. */
async function changePassword(page: Page, current: string, password: string, confirm: string): Promise<void> {
  await page.getByLabel('Current password').fill(current);
  await page.getByLabel('New password', { exact: true }).fill(password);
  await page.getByLabel('Confirm new password').fill(confirm);
  await page.getByRole('button', { name: 'Change password' }).click();
}

/** The violations found on the pages one test visits, one line each. */
class Findings {
  readonly lines: string[] = [];
  constructor(private readonly width: Width) {}

  /** Waits for the page whose heading is `heading`, then audits it. */
  async audit(page: Page, heading: string, state = ''): Promise<void> {
    await expectHeading(page, heading);
    await page.waitForLoadState('load');
    const where = `${new URL(page.url()).pathname} "${heading}"${state === '' ? '' : `, ${state}`} (${this.width})`;
    for (const violation of await axeViolations(page)) this.lines.push(axeViolationLine(where, violation));
  }
}

describe.skipIf(!chromiumAvailable())('dashboard: axe-core finds no WCAG 2.1 A/AA or best-practice violations', () => {
  // Unknown keys counted per client (X-Forwarded-For from the test, a trusted proxy): the operator's Address blocks page has blocks to show.
  const fixture = useDashboard('keygate-dashboard-axe', (profile) => ({ ...profile, trustedProxies: ['127.0.0.1'], auth: { ...profile.auth, unknownKeys: { limit: UNKNOWN_KEYS, window: '1m', block: '10m' } } }));
  const scenes = new Map<Width, Scene>();

  beforeAll(async () => {
    const { runtime } = fixture.keygate;
    for (const [width, viewport] of WIDTHS) {
      const accountId = await newAccount(fixture, `Acme Analytics ${width}`);
      const issued = await createKey(runtime, { accountId, name: 'Reporting script', scopes: ['projects:read'] }, 'admin-api');
      const revokedId = (await createKey(runtime, { accountId, name: 'Old laptop' }, 'admin-api')).key.id;
      await revokeKey(runtime, revokedId, 'admin-api', accountId);
      // Requests answered and refused (a scope the key lacks), so that the usage charts have bars.
      const authorization = `Bearer ${issued.secret}`;
      for (const path of ['/v1/projects', '/v1/projects', '/v1/rankings?limit=5']) await fixture.keygate.call(path, { headers: { authorization } });
      // Blocked as the counters block it (three refusals in a row with after: 2): the Blocked badge and the Unblock button.
      const window = { id: `k:${issued.key.id}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
      const policy = { after: 2, within: 60_000, duration: 300_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
      for (let i = 0; i < 3; i++) await runtime.counters.admit({ now: fixture.clock.now(), windows: [window], block: { id: keyBlockId(issued.key.id), policy } });

      const { member, operator } = await memberAndOperator(fixture, fixture.browser, accountId, { member: `ada-${width}@acme.example`, operator: `olga-${width}@ops.example`, viewport, bypassCSP: true });
      const visitor = await (await newContext(fixture.browser, fixture.dashboardUrl, viewport, { bypassCSP: true })).newPage();
      scenes.set(width, { accountId, keyId: issued.key.id, revokedId, member, operator, visitor });
    }
  });

  for (const [width] of WIDTHS) {
    it(`signed out (${width}): sign-in, an invitation, a password reset, a link that does not work, a form refused`, async () => {
      const { accountId, visitor: page } = scenes.get(width) as Scene;
      const found = new Findings(width);
      await page.goto('/sign-in');
      await found.audit(page, 'Sign in');
      await page.getByLabel('Email').fill(`nobody-${width}@acme.example`);
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Sign in', 'wrong password');

      const email = `bea-${width}@acme.example`;
      await page.goto(await invite(fixture, email, accountId));
      await found.audit(page, 'Choose your password');
      await page.getByLabel('New password', { exact: true }).fill(PASSWORD);
      await page.getByLabel('Confirm new password').fill(`${PASSWORD}!`);
      await page.getByRole('button', { name: 'Set password' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Choose your password', 'passwords differ');
      await page.getByLabel('New password', { exact: true }).fill(PASSWORD);
      await page.getByLabel('Confirm new password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Set password' }).click();
      // Signed in at once, on the keys page with its notice.
      await page.waitForURL((url) => url.pathname === '/keys');
      await shown(page.getByRole('status'));
      await found.audit(page, 'API keys', 'password set, signed in');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL((url) => url.pathname === '/sign-in');

      const reset = await fixture.keygate.admin('/v1/members/password-resets', { method: 'POST', body: JSON.stringify({ email }) });
      expect(reset.status).toBe(201);
      await page.goto(fixture.dashboardUrl + new URL(((await reset.json()) as { url: string }).url).pathname);
      await found.audit(page, 'Choose a new password');
      await page.goto('/invite/not-a-token');
      await found.audit(page, 'This link does not work');
      await page.goto('/sign-in');
      await page.locator('input[name=_csrf]').evaluate((token) => ((token as HTMLInputElement).value = 'stale'));
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await found.audit(page, 'This form could not be accepted');
      expect(found.lines).toEqual([]);
    });

    it(`a member's pages (${width}): keys, create, the key shown once, a key's rate limits, its Edit page, rotate, revoke, usage, API access off`, async () => {
      const { keyId, revokedId, member: page } = scenes.get(width) as Scene;
      const { store } = fixture.keygate.runtime;
      const found = new Findings(width);
      await page.goto('/keys');
      await found.audit(page, 'API keys', 'a blocked key and a revoked one');

      await page.goto('/keys/new');
      await found.audit(page, 'Create a key');
      // Spaces pass the browser's `required`; the server refuses them.
      await page.getByLabel('Name').fill('   ');
      await page.getByRole('button', { name: 'Create key' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Create a key', 'no name given');
      // A rate limit the form cannot take: refused naming the field, which is marked and takes the focus.
      await page.getByLabel('Name').fill('Audit key');
      await page.getByLabel('Rate limits').fill('10/s');
      await page.getByRole('button', { name: 'Create key' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Create a key', 'a rate limit refused');
      await page.getByLabel('Rate limits').fill('');
      await page.getByLabel('Name').fill('Audit key');
      // Every route of the test profile needs a scope: a key without one is refused.
      await page.getByRole('checkbox', { name: 'projects:read' }).check();
      await page.getByRole('button', { name: 'Create key' }).click();
      await found.audit(page, 'Copy your new key');

      await page.goto(`/keys/${keyId}/limits`);
      await found.audit(page, 'Rate limits of key “Reporting script”');
      await page.getByLabel('Rate limits').fill('5-per-1h-per-account');
      await page.getByRole('button', { name: 'Save rate limits' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Rate limits of key “Reporting script”', 'a window refused');

      await page.goto(`/keys/${keyId}/edit`);
      await found.audit(page, 'Edit key “Reporting script”');
      // Spaces pass the browser's `required`; the server refuses them, marking the name.
      await page.getByLabel('Name').fill('   ');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Edit key “Reporting script”', 'no name given');

      await page.goto(`/keys/${keyId}/rotate`);
      await found.audit(page, 'Rotate key “Reporting script”');
      // No overlap chosen (the page always offers one chosen): the server asks for one.
      await page.locator('input[name=overlap]:checked').evaluate((radio) => ((radio as HTMLInputElement).checked = false));
      await page.getByRole('button', { name: 'Rotate key' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Rotate key “Reporting script”', 'no overlap chosen');
      await page.getByRole('radio', { name: '24 hours' }).check();
      await page.getByRole('button', { name: 'Rotate key' }).click();
      await found.audit(page, 'Copy your replacement key');

      const keys = await store.listKeys({ accountId: scenes.get(width)?.accountId as string });
      const replacement = keys.find((k) => k.rotatedFrom === keyId);
      const created = keys.find((k) => k.name === 'Audit key');
      if (!replacement || !created) throw new Error('the rotation or the new key is missing');
      await page.goto('/keys');
      await found.audit(page, 'API keys', 'a key being replaced, at the plan\'s limit');
      await page.goto(`/keys/${replacement.id}/rotate`);
      await found.audit(page, 'Key “Reporting script” cannot be rotated');
      // The key being replaced: its replacement cannot be rotated yet either, said with a way on.
      await page.goto(`/keys/${keyId}/rotate`);
      await shown(page.locator('#replacement-not-yet'));
      await found.audit(page, 'Key “Reporting script” cannot be rotated', 'its replacement not yet either');
      await page.goto('/keys/new');
      await found.audit(page, 'No room for another key');
      await page.goto(`/keys/${keyId}/revoke`);
      await found.audit(page, 'Revoke key “Reporting script”?');
      await page.goto(`/keys/${created.id}/revoke`);
      await found.audit(page, 'Revoke key “Audit key”?');
      await page.getByRole('button', { name: 'Revoke key' }).click();
      await page.waitForURL((url) => url.pathname === '/keys');
      await shown(page.getByRole('status'));
      await found.audit(page, 'API keys', 'a key just revoked');
      await page.goto(`/keys/${revokedId}/revoke`);
      await found.audit(page, 'Key “Old laptop” is already revoked');
      await page.goto('/keys/key_nothing_here/revoke');
      await found.audit(page, 'Page not found');

      await page.goto('/usage');
      await found.audit(page, 'Usage');
      await page.locator('details.numbers').evaluateAll((all) => all.forEach((details) => ((details as HTMLDetailsElement).open = true)));
      await found.audit(page, 'Usage', 'the charts\' numbers shown');

      // The operator's switch off: warnings on the keys page, an Off badge and its reason on usage.
      const accountId = scenes.get(width)?.accountId as string;
      await updateAccount(fixture.keygate.runtime, accountId, { apiAccess: false }, 'admin-api');
      try {
        await page.goto('/keys');
        await found.audit(page, 'API keys', 'API access off');
        await page.goto('/usage');
        await found.audit(page, 'Usage', 'API access off');
      } finally {
        await updateAccount(fixture.keygate.runtime, accountId, { apiAccess: true }, 'admin-api');
      }
      expect(found.lines).toEqual([]);
    });

    // The member's run goes on in a test of its own (the same member, after the pages above: it stays signed in).
    it(`a member's pages (${width}): changing the password`, async () => {
      const { member: page } = scenes.get(width) as Scene;
      const found = new Findings(width);
      await page.goto('/password');
      await found.audit(page, 'Change your password');
      await changePassword(page, PASSWORD, NEW_PASSWORD, `${NEW_PASSWORD}!`);
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Change your password', 'passwords differ');
      await changePassword(page, 'not the password', NEW_PASSWORD, NEW_PASSWORD);
      await shown(page.getByRole('alert').filter({ hasText: 'The current password is incorrect' }));
      await found.audit(page, 'Change your password', 'wrong current password');
      await changePassword(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
      await shown(page.getByRole('status'));
      await found.audit(page, 'Change your password', 'password changed');
      expect(found.lines).toEqual([]);
    });

    it(`an operator's pages (${width}): accounts, plans, an account, its members, an invitation, a key's rate limits, its Edit page, address blocks, the audit log, the password`, async () => {
      const { accountId, keyId, operator: page } = scenes.get(width) as Scene;
      const found = new Findings(width);
      await page.goto('/accounts');
      await found.audit(page, 'Accounts');
      await page.goto('/accounts?q=nothing-like-this');
      await found.audit(page, 'Accounts', 'a search that finds nothing');
      await page.goto('/accounts');
      await page.getByLabel('Name').fill('   ');
      await page.getByRole('button', { name: 'Create account' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Accounts', 'a name refused');

      const account = await fixture.keygate.runtime.store.getAccount(accountId);
      await page.goto(`/accounts/${accountId}`);
      await found.audit(page, account?.name ?? '', 'a blocked key, members, usage, recent activity');
      // An operator cannot be invited into an account: refused, on the account's page.
      await page.getByLabel('Invite a member by email').fill(`olga-${width}@ops.example`);
      await page.getByRole('button', { name: 'Create invitation link' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, account?.name ?? '', 'an invitation refused');
      await page.getByLabel('Invite a member by email').fill(`cleo-${width}@acme.example`);
      await page.getByRole('button', { name: 'Create invitation link' }).click();
      await found.audit(page, `Invitation for cleo-${width}@acme.example`);
      await page.goto(`/accounts/${accountId}/keys/${keyId}/revoke`);
      await found.audit(page, 'Revoke key “Reporting script”?');
      await page.goto(`/accounts/${accountId}/keys/${keyId}/limits`);
      await found.audit(page, 'Rate limits of key “Reporting script”');
      await page.getByLabel('Rate limits').fill('10/s');
      await page.getByRole('button', { name: 'Save rate limits' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Rate limits of key “Reporting script”', 'a window refused');
      await page.goto(`/accounts/${accountId}/keys/${keyId}/edit`);
      await found.audit(page, 'Edit key “Reporting script”');
      await page.getByLabel('Name').fill('   ');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Edit key “Reporting script”', 'no name given');
      await page.goto(`/accounts/${accountId}/api-access`);
      await found.audit(page, `Turn API access off for ${account?.name ?? ''}?`);

      // A client blocked for its unknown keys, then lifted.
      const client = width === 'desktop' ? '203.0.113.1' : '203.0.113.2';
      for (let i = 0; i < UNKNOWN_KEYS; i++) {
        const guessed = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${fixture.keygate.runtime.keyFormat.generate('live')}`, 'x-forwarded-for': client } });
        await guessed.arrayBuffer();
        expect(guessed.status).toBe(401);
      }
      await page.goto('/address-blocks');
      await found.audit(page, 'Address blocks', 'a client blocked');
      await page.getByRole('button', { name: `Lift the block of ${client}` }).click();
      await shown(page.getByRole('status'));
      await found.audit(page, 'Address blocks', 'a block just lifted');

      await page.goto('/audit');
      await found.audit(page, 'Audit log');
      await page.goto(`/audit?account=${accountId}`);
      await found.audit(page, 'Audit log', 'one account');
      await page.goto('/audit?account=acc_nothing_here');
      await found.audit(page, 'Audit log', 'an account id that does not exist');

      await page.goto('/password');
      await found.audit(page, 'Change your password');
      await changePassword(page, PASSWORD, PASSWORD, PASSWORD);
      await shown(page.getByRole('alert'));
      await found.audit(page, 'Change your password', 'the same password again');
      expect(found.lines).toEqual([]);
    });
  }
});
