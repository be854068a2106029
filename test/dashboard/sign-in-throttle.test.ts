/**
 * A client trying a new email with every sign-in is paused by no lockout (each counts an
 * email from an address): it is told to wait once its address has made a minute's worth
 * of attempts, before any password is hashed. Other addresses sign in meanwhile.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_SIGN_INS_PER_ADDRESS } from '../../src/members/lockout.js';
import { tempDir } from '../support/temp.js';
import { invite, newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';

let fixture: DashboardFixture;
beforeAll(async () => {
  // Sign-ins from behind a trusted proxy: the address is the one it names.
  fixture = await startDashboard(tempDir('sign-in-throttle'), (profile) => ({ ...profile, trustedProxies: ['127.0.0.1'] }));
});
afterAll(async () => fixture?.close());

async function submit(path: string, fields: Record<string, string>, from: string): Promise<{ status: number; retryAfter: string | null; html: string }> {
  const url = `${fixture.dashboardUrl}${path}`;
  const page = await fetch(url, { headers: { 'x-forwarded-for': from } });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const response = await fetch(url, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from },
    body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
    redirect: 'manual',
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), html: await response.text() };
}

it('tells an address that tried a new email every time to wait, and no other; a minute later it may try again', async () => {
  const email = 'ada@acme.example';
  const link = await invite(fixture, email, await newAccount(fixture, 'Acme'));
  expect((await submit(new URL(link).pathname, { password: PASSWORD, confirm: PASSWORD }, '198.51.100.7')).status).toBe(303);

  const spraying = '203.0.113.9';
  for (let i = 0; i < MAX_SIGN_INS_PER_ADDRESS; i++) expect((await submit('/sign-in', { email: `guess-${i}@acme.example`, password: 'nope' }, spraying)).status, `attempt ${i + 1}`).toBe(401);
  const refused = await submit('/sign-in', { email, password: PASSWORD }, spraying);
  expect(refused.status).toBe(429);
  expect(Number(refused.retryAfter)).toBeGreaterThan(0);
  expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
  expect(refused.html).toContain('Too many sign-in attempts from your network address. Try again in');
  // Another address is not held up.
  expect((await submit('/sign-in', { email, password: PASSWORD }, '198.51.100.8')).status).toBe(303);

  fixture.clock.advance(60_000);
  expect((await submit('/sign-in', { email, password: PASSWORD }, spraying)).status).toBe(303);
}, 60_000);

it('counts an IPv6 /64 as one address', async () => {
  for (let i = 0; i < MAX_SIGN_INS_PER_ADDRESS; i++) expect((await submit('/sign-in', { email: `v6-${i}@acme.example`, password: 'nope' }, `2001:db8:1:2::${(i + 1).toString(16)}`)).status).toBe(401);
  expect((await submit('/sign-in', { email: 'v6@acme.example', password: 'nope' }, '2001:db8:1:2::ffff')).status).toBe(429);
  expect((await submit('/sign-in', { email: 'v6@acme.example', password: 'nope' }, '2001:db8:1:3::1')).status).toBe(401);
}, 60_000);

it('says the wait on the Change password page in whole seconds, one second as "1 second"', async () => {
  const email = 'bea@acme.example';
  const link = await invite(fixture, email, await newAccount(fixture, 'Bea Co'));
  const from = '203.0.113.77';
  // Chosen from that address, as the sign-ins below: each is an attempt of the address's minute.
  expect((await submit(new URL(link).pathname, { password: PASSWORD, confirm: PASSWORD }, '198.51.100.70')).status).toBe(303);
  const minuteBegan = fixture.clock.now();
  const signIn = await fetch(`${fixture.dashboardUrl}/sign-in`, { headers: { 'x-forwarded-for': from } });
  const formCookie = signIn.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const signedIn = await fetch(`${fixture.dashboardUrl}/sign-in`, {
    method: 'POST',
    headers: { cookie: formCookie, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from },
    body: new URLSearchParams({ _csrf: /name="_csrf" value="([^"]+)"/.exec(await signIn.text())?.[1] ?? '', email, password: PASSWORD }).toString(),
    redirect: 'manual',
  });
  expect(signedIn.status).toBe(303);
  const session = signedIn.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  for (let i = 1; i < MAX_SIGN_INS_PER_ADDRESS; i++) expect((await submit('/sign-in', { email: `spray-${i}@acme.example`, password: 'nope' }, from)).status).toBe(401);
  // Under a second of the address's minute left (the clock is real time plus what tests add).
  fixture.clock.advance(minuteBegan + 60_000 - 700 - fixture.clock.now());
  const form = await fetch(`${fixture.dashboardUrl}/password`, { headers: { cookie: session, 'x-forwarded-for': from } });
  const changed = await fetch(`${fixture.dashboardUrl}/password`, {
    method: 'POST',
    headers: { cookie: session, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from },
    body: new URLSearchParams({ _csrf: [...(await form.text()).matchAll(/name="_csrf" value="([^"]+)"/g)].at(-1)?.[1] ?? '', current: PASSWORD, password: 'a new passphrase', confirm: 'a new passphrase' }).toString(),
    redirect: 'manual',
  });
  expect(changed.status).toBe(429);
  expect(changed.headers.get('retry-after')).toBe('1');
  expect(await changed.text()).toContain('Too many password checks from your network address; nothing was changed. Try again in 1 second.');
}, 60_000);
