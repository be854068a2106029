/**
 * What the store keeps of a failed sign-in: never the text typed in the email field, which
 * may be a password pasted there (it was kept in clear for a day). Something that cannot
 * be an address is not counted at all; an address is counted under a digest, and still
 * paused after five wrong passwords.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { startDashboard, type DashboardFixture } from './support.js';

let fixture: DashboardFixture;
const dir = tempDir('sign-in-stored');
beforeAll(async () => {
  fixture = await startDashboard(dir);
});
afterAll(async () => fixture?.close());

async function signIn(email: string, password: string): Promise<number> {
  const url = `${fixture.dashboardUrl}/sign-in`;
  const page = await fetch(url);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const response = await fetch(url, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, email, password }).toString(), redirect: 'manual' });
  await response.text();
  return response.status;
}

/** Every byte of the database's files (the database, its WAL and shared memory), as text. */
function databaseBytes(): string {
  return readdirSync(dir)
    .filter((name) => name.startsWith('keygate.db'))
    .map((name) => readFileSync(path.join(dir, name)).toString('latin1'))
    .join('');
}

it('keeps no text typed in the email field: a password pasted there is not counted, an address only by its digest, and still paused', async () => {
  const pasted = 'HunterPasswordTyped99';
  const address = 'Nobody.Here@Acme.example';
  expect(await signIn(pasted, 'x')).toBe(401);
  for (let i = 1; i <= 4; i++) expect(await signIn(address, `wrong ${i}`)).toBe(401);
  // The fifth wrong password in a row pauses this address for the email, as before.
  expect(await signIn(` ${address.toLowerCase()}`, 'wrong 5')).toBe(429);
  expect(await signIn(address, 'wrong 6')).toBe(429);

  // Emails are compared lower-cased: so would be what the store kept of them.
  const bytes = databaseBytes().toLowerCase();
  expect(bytes).not.toContain(pasted.toLowerCase());
  expect(bytes).not.toContain('nobody.here');
  // Nothing counted for what is no one's address: however often it is tried, it is never paused.
  for (let i = 1; i <= 5; i++) expect(await signIn(pasted, `x${i}`)).toBe(401);
});
