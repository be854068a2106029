/**
 * When a sign-in pause is said to end, in two answers during the same pause: the same,
 * even when the second (and the minute) turns while the fifth wrong password is checked
 * (scrypt); and the same in the audit log's row for the lock.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { auditTable } from '../../src/dashboard/pages/audit.js';
import { tempDir } from '../support/temp.js';
import { invite, newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';

let fixture: DashboardFixture;
const dir = tempDir('sign-in-pause');
beforeAll(async () => {
  fixture = await startDashboard(dir);
});
afterAll(async () => fixture?.close());

async function submit(path: string, fields: Record<string, string>): Promise<{ status: number; html: string }> {
  const url = `${fixture.dashboardUrl}${path}`;
  const page = await fetch(url);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const response = await fetch(url, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(), redirect: 'manual' });
  return { status: response.status, html: await response.text() };
}
const untilIn = (html: string) => /paused until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/.exec(html)?.[1];

it('names the same end in every answer during one pause, though the minute turns while the pause begins', async () => {
  const seen: string[] = [];
  for (let round = 0; round < 6; round++) {
    const email = `m${round}@acme.example`;
    const account = await newAccount(fixture, `Acme ${round}`);
    const link = await invite(fixture, email, account);
    const token = new URL(link).pathname;
    expect((await submit(token, { password: PASSWORD, confirm: PASSWORD })).status).toBe(303);
    for (let i = 1; i <= 4; i++) expect((await submit('/sign-in', { email, password: `wrong ${i}` })).status).toBe(401);
    // Put the fifth failure's pause end 5..30 ms before a minute turns (the real clock moves on).
    const now = fixture.clock.now();
    const target = 60_000 - 5 - round * 5;
    fixture.clock.advance(((target - ((now + 15 * 60_000) % 60_000)) + 60_000) % 60_000);
    const fifth = await submit('/sign-in', { email, password: 'wrong 5' });
    const sixth = await submit('/sign-in', { email, password: PASSWORD });
    expect([fifth.status, sixth.status]).toEqual([429, 429]);
    expect(untilIn(fifth.html)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    seen.push(`${untilIn(fifth.html)} vs ${untilIn(sixth.html)}`);
    // The audit log's row for the lock names the same end (as the audit page renders it).
    const locked = (await fixture.keygate.runtime.store.listAudit({ accountId: account })).filter((e) => e.action === 'member.locked');
    expect(locked).toHaveLength(1);
    // Its text, as read: the email is set in a span of its own (kept on one line).
    const rowText = auditTable(locked, new Map([[account, `Acme ${round}`]]), { caption: 'Events' }, new Map()).toString().replace(/<[^>]+>/g, '');
    expect(rowText).toMatch(new RegExp(`${email.replace('.', '\\.')} from \\S+ until ${untilIn(fifth.html)} UTC`));
  }
  expect(seen.filter((s) => s.split(' vs ')[0] !== s.split(' vs ')[1])).toEqual([]);
}, 60_000);
