/**
 * Where the focus is as a confirmation page opens (revoke or rotate a key, remove a member,
 * withdraw an invitation, turn API access off): on its heading, the question it asks, so
 * that a keyboard or screen-reader user starts there rather than at the top of the page,
 * and one Tab reaches its form. Not on the confirm button, where Enter would act unread.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, invite, MEMBER, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: the focus on confirmation pages', () => {
  const fixture = useDashboard('keygate-dashboard-confirmation-focus', { signedIn: ['member', 'operator'] });

  /** The focused element: its tag and its text (a control's, its label's or accessible name). */
  function focused(page: Page): Promise<{ tag: string; text: string }> {
    return page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const labelled = (el as HTMLInputElement).labels?.[0]?.textContent ?? el.textContent ?? '';
      return { tag: el.tagName.toLowerCase(), text: labelled.trim() };
    });
  }

  /** Opens `path`, expects the focus on its heading `question`, and the next Tab on `first`. */
  async function expectFocusOnQuestion(page: Page, path: string, question: string, first: { tag: string; text: string }): Promise<void> {
    await page.goto(path);
    await expectHeading(page, question);
    await expect.poll(() => focused(page)).toEqual({ tag: 'h1', text: question });
    await page.keyboard.press('Tab');
    expect(await focused(page)).toEqual(first);
  }

  it('focuses the question of a member’s revoke and rotate pages', async () => {
    const { member, accountId } = fixture;
    const key = (await createKey(fixture.keygate.runtime, { accountId, name: 'production', scopes: ['*'] }, 'admin-api')).key;
    await expectFocusOnQuestion(member, `/keys/${key.id}/revoke`, 'Revoke key “production”?', { tag: 'button', text: 'Revoke key' });
    await expectFocusOnQuestion(member, `/keys/${key.id}/rotate`, 'Rotate key “production”', { tag: 'input', text: '24 hours' });
  });

  it('focuses the question of an operator’s revoke, remove-member, withdraw-invitation and API-access pages', async () => {
    const { operator, accountId } = fixture;
    const key = (await createKey(fixture.keygate.runtime, { accountId, name: 'nightly', scopes: ['*'] }, 'admin-api')).key;
    await expectFocusOnQuestion(operator, `/accounts/${accountId}/keys/${key.id}/revoke`, 'Revoke key “nightly”?', { tag: 'button', text: 'Revoke key' });

    const memberId = (await fixture.keygate.runtime.store.findMemberByEmail(MEMBER))?.id as string;
    await expectFocusOnQuestion(operator, `/accounts/${accountId}/members/${memberId}/remove`, `Remove ${MEMBER} from Acme Analytics?`, { tag: 'button', text: 'Remove member' });

    const invited = 'ivan@acme.example';
    await invite(fixture, invited, accountId);
    const invitedId = (await fixture.keygate.runtime.store.findMemberByEmail(invited))?.id as string;
    await expectFocusOnQuestion(operator, `/accounts/${accountId}/members/${invitedId}/remove`, `Withdraw the invitation of ${invited}?`, { tag: 'button', text: 'Withdraw invitation' });

    await expectFocusOnQuestion(operator, `/accounts/${accountId}/api-access`, 'Turn API access off for Acme Analytics?', { tag: 'button', text: 'Turn API access off' });
  });
});
