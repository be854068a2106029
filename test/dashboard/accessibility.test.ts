/**
 * Every dashboard page for keyboard and screen-reader users, in real Chromium: one h1
 * and a matching title, a label for every field, a skip link, a visible focus ring, no
 * tab traps; the revoke flow done with the keyboard only; and the key flow still
 * working with JavaScript turned off (the copy button is the only thing lost).
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { keyBlockId } from '../../src/counters/counters.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import type { KeyRecord } from '../../src/store/store.js';
import { STYLESHEET } from '../../src/dashboard/assets.js';
import { html } from '../../src/dashboard/html.js';
import { keyTable } from '../../src/dashboard/pages/key-views.js';
import { chromiumAvailable, DESKTOP, focusOutline, expectHeading, newContext, PAGE_TIMEOUT, screenshot, tabTo, textOf, useDashboard } from './support.js';

interface PageAudit {
  h1Count: number;
  title: string;
  unlabelled: string[];
  emptyButtons: number;
  positiveTabindex: number;
  lang: string | null;
}

function auditPage(page: Page): Promise<PageAudit> {
  return page.evaluate(() => {
    const fields = [...document.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select, textarea')].filter(
      (el) => el.type !== 'hidden' && !el.hidden,
    );
    return {
      h1Count: document.querySelectorAll('h1').length,
      title: document.title,
      unlabelled: fields.filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML),
      emptyButtons: [...document.querySelectorAll('button, a')].filter((el) => (el.textContent ?? '').trim() === '' && !el.getAttribute('aria-label')).length,
      positiveTabindex: document.querySelectorAll('[tabindex]:not([tabindex="-1"]):not([tabindex="0"])').length,
      lang: document.documentElement.getAttribute('lang'),
    };
  });
}

describe.skipIf(!chromiumAvailable())('dashboard: keyboard and screen-reader basics', () => {
  const fixture = useDashboard('keygate-dashboard-a11y', { signedIn: ['member', 'operator'] });
  let keyId: string;

  beforeAll(async () => {
    keyId = (await createKey(fixture.keygate.runtime, { accountId: fixture.accountId, name: 'Reporting script' }, 'admin-api')).key.id;
  });

  it('gives every page one h1, a matching title, labelled fields and named controls', async () => {
    const { member, operator, accountId } = fixture;
    const pages: [Page, string][] = [
      [member, '/keys'],
      [member, '/keys/new'],
      [member, `/keys/${keyId}/rotate`],
      [member, `/keys/${keyId}/revoke`],
      [member, '/usage'],
      [member, '/keys/key_nothing_here/revoke'],
      [member, '/password'],
      [operator, '/accounts'],
      [operator, `/accounts/${accountId}`],
      [operator, `/accounts/${accountId}/keys/${keyId}/revoke`],
      [operator, '/audit'],
      [operator, '/password'],
    ];
    for (const [page, path] of pages) {
      await page.goto(path);
      const audit = await auditPage(page);
      expect(audit.h1Count, path).toBe(1);
      expect(audit.lang, path).toBe('en');
      expect(audit.title, path).toMatch(/ · Ranksy$/);
      expect(audit.unlabelled, path).toEqual([]);
      expect(audit.emptyButtons, path).toBe(0);
      expect(audit.positiveTabindex, path).toBe(0);
    }
    const anonymous = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await anonymous.goto('/sign-in');
    expect((await auditPage(anonymous)).unlabelled).toEqual([]);
    await anonymous.context().close();
  });

  it('writes the apostrophes of its prose curly (’), as most of its text does; code and typed values keep theirs', async () => {
    const { member, operator, accountId } = fixture;
    const pages: [Page, string][] = [
      [member, '/keys'],
      [member, '/keys/new'],
      [member, `/keys/${keyId}/limits`],
      [member, `/keys/${keyId}/edit`],
      [member, `/keys/${keyId}/rotate`],
      [member, `/keys/${keyId}/revoke`],
      [member, '/usage'],
      [member, '/password'],
      [operator, '/accounts'],
      [operator, `/accounts/${accountId}`],
      [operator, `/accounts/${accountId}/api-access`],
      [operator, '/audit'],
      [operator, '/no-such-page'],
    ];
    for (const [page, path] of pages) {
      await page.goto(path);
      const straight = await page.evaluate(() => {
        const body = document.body.cloneNode(true) as HTMLElement;
        for (const code of body.querySelectorAll('code, pre, script, style')) code.remove();
        return (body.textContent ?? '').match(/\S*[A-Za-z]'[A-Za-z]\S*/g) ?? [];
      });
      expect(straight, path).toEqual([]);
    }
  });

  it('names each table once: by the heading above it, a caption only where it says more', async () => {
    const { member, operator, accountId } = fixture;
    // A revoked key, so that both key tables are shown.
    const gone = (await createKey(fixture.keygate.runtime, { accountId, name: 'Old export' }, 'admin-api')).key;
    await revokeKey(fixture.keygate.runtime, gone.id, 'admin-api');
    const pages: [Page, string, string[]][] = [
      [member, '/keys', ['Keys in use', 'Revoked and expired keys']],
      [member, '/usage', ['Meters of the Pro plan', 'Requests by key this period']],
      [operator, '/accounts', ['Accounts', 'Plans']],
      [operator, `/accounts/${accountId}`, ['Limits', 'Keys in use of Acme Analytics', 'Revoked and expired keys', 'Members', 'Meters of the Pro plan', 'Requests by key this period', 'Recent activity']],
      [operator, '/audit', ['Audit log']],
      [operator, `/audit?account=${accountId}`, ['Audit log of Acme Analytics']],
    ];
    for (const [page, path, names] of pages) {
      await page.goto(path);
      // Each table's name as Chromium gives it to a screen reader.
      for (const name of names) expect(await page.getByRole('table', { name, exact: true }).count(), `${path}: ${name}`).toBe(1);
      expect(await page.getByRole('table').count(), path).toBe(names.length);
      // What a screen reader reads out going down the page: no table's text says again the heading just read.
      const repeats = await page.evaluate(() =>
        [...document.querySelectorAll('table')].flatMap((table) => {
          const headings = [...document.querySelectorAll('h1, h2, h3, h4')].filter((h) => h.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING);
          const heading = headings.at(-1)?.textContent?.trim() ?? '';
          const page = document.querySelector('h1')?.textContent?.trim() ?? '';
          const caption = table.caption?.textContent?.trim();
          return caption !== undefined && (caption === heading || caption === `${heading} of ${page}`) ? [`${heading} → caption "${caption}"`] : [];
        }),
      );
      expect(repeats, path).toEqual([]);
    }
  });

  it('starts every page with a skip link to the content, and shows where the focus is', async () => {
    const { member } = fixture;
    await member.goto('/keys');
    await member.keyboard.press('Tab');
    expect(await textOf(member.locator(':focus'))).toBe('Skip to content');
    expect(await focusOutline(member)).toMatch(/^solid 3px/);
    await member.keyboard.press('Enter');
    // Chromium may move the focus to a fragment's target at its next rendering, not at the key press.
    await expect.poll(() => member.evaluate(() => document.activeElement?.id), { timeout: PAGE_TIMEOUT }).toBe('main');
    // The next Tab lands inside the content, past the navigation.
    await member.keyboard.press('Tab');
    expect(await textOf(member.locator(':focus'))).toBe('Create a key');
    expect(await focusOutline(member)).toMatch(/^solid 3px/);
  });

  it('revokes a key with the keyboard only', async () => {
    const { member } = fixture;
    await member.goto('/keys');
    await tabTo(member, 'the Revoke link', (el) => el.tag === 'a' && el.label.startsWith('Revoke Reporting script ('));
    await member.keyboard.press('Enter');
    await member.waitForURL(`**/keys/${keyId}/revoke`);
    await tabTo(member, 'the "Revoke key" button', (el) => el.tag === 'button' && el.text === 'Revoke key');
    expect(await focusOutline(member)).toMatch(/^solid 3px/);
    await member.keyboard.press('Enter');
    await member.waitForURL('**/keys');
    expect(await textOf(member.getByRole('status'))).toMatch(/^Key “Reporting script” .* is revoked\./);
  });

  it('scrolls a table wider than the window with the keyboard; a table that fits is no tab stop', async () => {
    const { member, accountId } = fixture;
    await createKey(fixture.keygate.runtime, { accountId, name: 'Wide table key' }, 'admin-api');
    const box = member.getByRole('region', { name: 'Keys in use' });
    try {
      // Wider than a phone (no cards), narrower than the table.
      await member.setViewportSize({ width: 720, height: 800 });
      await member.goto('/keys');
      expect(await box.getAttribute('tabindex')).toBe('0');
      await tabTo(member, 'the keys table', (el) => el.tag === 'div' && el.label === 'Keys in use');
      expect(await focusOutline(member)).toMatch(/^solid 3px/);
      for (let i = 0; i < 5; i++) await member.keyboard.press('ArrowRight');
      // Chromium scrolls smoothly: the box moves over the next frames, not at the key press.
      await expect.poll(() => box.evaluate((el) => el.scrollLeft)).toBeGreaterThan(0);
      // Wide enough again: the box is no longer a stop on the way through the page.
      await member.setViewportSize(DESKTOP);
      await expect.poll(() => member.locator('.table-wrap').first().getAttribute('tabindex')).toBeNull();
      expect(await box.count()).toBe(0);
    } finally {
      await member.setViewportSize(DESKTOP);
    }
  });

  it('fits the keys table at 1280 px with blocked keys, a replacement and the operator\'s buttons (Unblock, Edit, Rate limits, Revoke)', async () => {
    const { accountId } = fixture;
    const now = Date.parse('2026-12-01T12:00:00Z');
    const wide = (id: string, extra: Partial<KeyRecord> = {}): KeyRecord => ({
      id,
      hash: `hash_${id}`,
      hint: 'rk_live_…abcd',
      name: 'Production ingestion pipeline',
      accountId,
      mode: 'live',
      scopes: ['projects:read', 'rankings:read'],
      createdAt: now - 86_400_000,
      lastUsedAt: now - 60_000,
      expiresAt: now + 90 * 86_400_000,
      revokedAt: null,
      createdBy: null,
      rotatedFrom: null,
      ...extra,
    });
    const keys = [wide('key_a'), wide('key_b', { rotatedFrom: 'key_a' })];
    // As the operator's account page gives a blocked key (src/dashboard/pages/accounts.ts).
    const buttons = () =>
      html`<form method="post" class="inline-form"><button type="submit" class="secondary small">Unblock</button></form><a class="button secondary small" href="#">Edit</a><a class="button secondary small" href="#">Rate limits</a><a class="button secondary small" href="#">Revoke</a>`;
    const table = keyTable(keys, now, { caption: 'Keys in use' }, { scopes: true, modes: ['live', 'test'] }, { actions: buttons, all: keys, blocked: new Map(keys.map((k) => [k.id, now + 15 * 60_000])) });
    const page = await fixture.browser.newPage({ viewport: DESKTOP });
    try {
      await page.setContent(`<!doctype html><html lang="en"><head><style>${STYLESHEET}</style></head><body><main class="wrap">${table.toString()}</main></body></html>`);
      const { scrollWidth, clientWidth } = await page.locator('.table-wrap').evaluate((el) => ({ scrollWidth: el.scrollWidth, clientWidth: el.clientWidth }));
      expect(scrollWidth).toBeLessThanOrEqual(clientWidth);
    } finally {
      await page.close();
    }
  });

  it('fits the keys page at 1280 px while a key is blocked for under a minute more: its Rotate and Revoke in view, nothing to scroll', async () => {
    const { member, accountId } = fixture;
    // Every column as full as it gets: used, expiring (a date to the second and a badge), both scopes.
    const { key, secret } = await createKey(fixture.keygate.runtime, { accountId, name: 'Production ingestion pipeline', scopes: ['projects:read', 'rankings:read'], expiresAt: fixture.clock.now() + 3 * 86_400_000 }, 'admin-api');
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    const { counters } = fixture.keygate.runtime;
    // Blocked as the counters block it (three refusals in a row with after: 2), 4.5 minutes ago: 30 s of its 5 minutes are left.
    const then = fixture.clock.now() - 270_000;
    const window = { id: `k:${key.id}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
    const policy = { after: 2, within: 60_000, duration: 300_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
    try {
      for (let i = 0; i < 3; i++) await counters.admit({ now: then, windows: [window], block: { id: keyBlockId(key.id), policy } });
      await member.setViewportSize(DESKTOP);
      await member.goto('/keys');
      const row = member.locator(`tr[data-key-id="${key.id}"]`);
      expect(await textOf(row.locator('.badge.blocked'))).toBe('Blocked, ends in under a minute');
      const box = member.locator('.table-wrap').first();
      const { scrollWidth, clientWidth } = await box.evaluate((el) => ({ scrollWidth: el.scrollWidth, clientWidth: el.clientWidth }));
      expect(scrollWidth).toBeLessThanOrEqual(clientWidth);
      const boxRight = await box.evaluate((el) => el.getBoundingClientRect().right);
      for (const name of [`Rotate ${key.name} (${key.hint})`, `Revoke ${key.name} (${key.hint})`]) {
        const button = await row.getByRole('link', { name, exact: true }).boundingBox();
        expect(button, name).not.toBeNull();
        expect(button!.x + button!.width, name).toBeLessThanOrEqual(Math.min(boxRight, DESKTOP.width));
      }
      await screenshot(member, 'keys-blocked-desktop');
    } finally {
      await counters.liftBlocks([keyBlockId(key.id)], fixture.clock.now());
    }
  });

  it('works without JavaScript: the key is shown selectable, only the copy button is missing', async () => {
    const context = await fixture.browser.newContext({ baseURL: fixture.dashboardUrl, javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto('/sign-in');
    await page.getByLabel('Email').fill('ada@acme.example');
    await page.getByLabel('Password').fill('correct horse battery staple');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('No-script key');
    await page.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    // The keyboard starts at the secret, without a script: Ctrl+C copies it once selected.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('secret');
    const secret = await page.getByLabel('Key “No-script key”').inputValue();
    expect(secret).toMatch(/^rk_live_/);
    expect(await page.getByRole('button', { name: 'Copy key' }).count()).toBe(0);
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);

    await page.goto('/keys');
    await page.getByRole('link', { name: 'Rotate No-script key' }).click();
    await page.getByRole('radio', { name: /No overlap/ }).check();
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(page, 'Copy your replacement key');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('secret');
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
    await context.close();
  });
});
