/**
 * A form sent after the session ended (sessionTtl passed while the member was typing) is
 * not carried out, and the sign-in page says so; signing in again leads back to the page
 * the form was on, not to the home page, so the member starts again where they were.
 */
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, MEMBER, signIn, textOf, useDashboard } from './support.js';

const HOUR = 3_600_000;

describe.skipIf(!chromiumAvailable())('dashboard: a form sent after the session ended', () => {
  const fixture = useDashboard('keygate-dashboard-session-end-form', { signedIn: ['member'] });

  it('leads back, once signed in again, to the create form it was sent from, and made no key', async () => {
    const { member, accountId } = fixture;
    await member.goto('/keys/new');
    await member.getByLabel('Name').fill('After hours');
    await member.getByRole('checkbox', { name: 'projects:read' }).check();
    fixture.clock.advance(12 * HOUR + 60_000);
    await member.getByRole('button', { name: 'Create key' }).click();
    await member.waitForURL((url) => url.pathname === '/sign-in');
    expect(await textOf(member.getByRole('status'))).toBe('Your session has ended. Sign in again to continue.');
    expect(new URL(member.url()).search).toBe('?next=%2Fkeys%2Fnew');
    await signIn(member, MEMBER);
    await expectHeading(member, 'Create a key');
    expect(new URL(member.url()).pathname).toBe('/keys/new');
    expect(await fixture.keygate.runtime.store.listKeys({ accountId })).toEqual([]);
  });

  it('leads back to a key’s revoke confirmation, which then revokes it', async () => {
    const { member, accountId } = fixture;
    const key = (await createKey(fixture.keygate.runtime, { accountId, name: 'production' }, 'admin-api')).key;
    await member.goto(`/keys/${key.id}/revoke`);
    fixture.clock.advance(12 * HOUR + 60_000);
    await member.getByRole('button', { name: 'Revoke key' }).click();
    await member.waitForURL((url) => url.pathname === '/sign-in');
    expect(await textOf(member.getByRole('status'))).toBe('Your session has ended. Sign in again to continue.');
    expect((await fixture.keygate.runtime.store.getKey(key.id))?.revokedAt).toBeNull();
    await signIn(member, MEMBER);
    await expectHeading(member, 'Revoke key “production”?');
    await member.getByRole('button', { name: 'Revoke key' }).click();
    expect(await textOf(member.getByRole('status'))).toBe(`Key “production” (${key.hint}) is revoked. Requests with it are refused from now on.`);
  });

  it('sends a form from another host’s page (its Referer) to the plain sign-in page', async () => {
    const answer = await fetch(`${fixture.dashboardUrl}/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', referer: 'http://elsewhere.example/keys/new' },
      body: 'name=x',
      redirect: 'manual',
    });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe('/sign-in');
  });
});
