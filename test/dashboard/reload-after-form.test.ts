/**
 * Reload after a form, in real Chromium. A change answers 303 to the page it leads to
 * (Post/Redirect/Get): reloading that page asks for it again with GET, resends nothing, and
 * its notice is not shown twice. The forms that show a secret once (a new key, a
 * replacement, an invitation link) answer with the page itself: after a redirect the secret
 * would have to be in the address or kept somewhere to show it, so their reload resends the
 * form, which makes nothing twice and does not show the secret again.
 */
import type { Page, Request } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, textOf, useDashboard } from './support.js';

/** The requests of the page's main frame's navigations that `act` starts, as `METHOD path`. */
async function navigations(page: Page, act: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const note = (request: Request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) seen.push(`${request.method()} ${new URL(request.url()).pathname}`);
  };
  page.on('request', note);
  try {
    await act();
  } finally {
    page.off('request', note);
  }
  return seen;
}

describe.skipIf(!chromiumAvailable())('dashboard: reloading the page a form led to', () => {
  const fixture = useDashboard('keygate-dashboard-reload', { signedIn: ['member'] });

  it('after a revocation, asks for the keys page again with GET: nothing is resent and the notice is not shown again', async () => {
    const { member: page, accountId } = fixture;
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Reloaded', scopes: ['projects:read'] }, 'test');
    await page.goto(`/keys/${key.id}/revoke`);
    const sent = await navigations(page, () => Promise.all([page.waitForURL(/\/keys$/), page.getByRole('button', { name: 'Revoke key' }).click()]));
    expect(sent).toEqual([`POST /keys/${key.id}/revoke`, 'GET /keys']);
    expect(await textOf(page.getByRole('status').first())).toContain('Key “Reloaded”');
    expect(await navigations(page, () => page.reload())).toEqual(['GET /keys']);
    await expectHeading(page, 'API keys');
    expect(await page.getByText('is revoked. Requests with it are refused').count()).toBe(0);
    const revocations = (await fixture.keygate.runtime.store.listAudit({ accountId, limit: 50 })).filter((e) => e.action === 'key.revoked' && e.detail.name === 'Reloaded');
    expect(revocations).toHaveLength(1);
  });

  it('after creating a key, resends the form: no second key, and the secret is not shown again', async () => {
    const { member: page, accountId } = fixture;
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Shown once');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    const sent = await navigations(page, () => Promise.all([page.waitForURL(/\/keys$/), page.getByRole('button', { name: 'Create key' }).click()]));
    expect(sent).toEqual(['POST /keys']);
    await expectHeading(page, 'Copy your new key');
    const secret = await page.locator('#secret').inputValue();
    expect(secret).toMatch(/^rk_live_/);
    expect(await navigations(page, () => page.reload())).toEqual(['POST /keys']);
    await expectHeading(page, 'This form was sent already');
    expect(await page.content()).not.toContain(secret);
    expect((await fixture.keygate.runtime.store.listKeys({ accountId })).filter((k) => k.name === 'Shown once')).toHaveLength(1);
  });
});
