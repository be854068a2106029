/**
 * A key's end, to the minute, reads the same in the keys table as in a refusal that says
 * to wait for it: rounded up (at the minute named, the key has stopped and the refusal
 * does not come back), never a minute earlier in the table. A key ending at 14:05:30 is
 * "14:06" in both; once it has stopped, its expiry is truncated, as when it happened.
 */
import { describe, expect, it } from 'vitest';
import { createKey, rotateKey } from '../../src/operations/keys.js';
import { utcMinute, utcMinuteUp } from '../../src/meters/period.js';
import { chromiumAvailable, expectHeading, signIn, textOf, MEMBER, useDashboard } from './support.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

describe.skipIf(!chromiumAvailable())('dashboard: a key’s end in the table and in a refusal', () => {
  const fixture = useDashboard('keygate-dashboard-key-end-minute', { signedIn: ['member'] });

  const expiresCell = (keyId: string) => textOf(fixture.member.locator(`tr[data-key-id="${keyId}"] td[data-label="Expires (UTC)"]`));

  it('names the end of a key in its overlap at the same minute, rounded up, in the table and in the refusal to rotate its replacement', async () => {
    const { member: page, accountId } = fixture;
    const rt = fixture.keygate.runtime;
    // Thirty seconds past a minute: truncating and rounding up differ by one.
    const ends = Math.ceil(rt.clock() / MINUTE) * MINUTE + 2 * DAY + 30_000;
    const outgoing = (await createKey(rt, { accountId, name: 'production', scopes: ['*'], expiresAt: ends }, 'admin-api')).key;
    const replacement = (await rotateKey(rt, outgoing.id, 7 * DAY, 'admin-api', accountId)).key;

    await page.goto(`/keys/${replacement.id}/rotate`);
    await expectHeading(page, 'Key “production” cannot be rotated');
    const refusal = await textOf(page.getByRole('alert'));
    expect(refusal).toContain(`, which works until ${utcMinuteUp(ends)}: revoke that key first`);

    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    expect(`${await expiresCell(outgoing.id)} UTC`).toBe(utcMinuteUp(ends));

    // Stopped: when it expired, truncated, as a refusal says "expired at".
    fixture.clock.advance(ends - rt.clock() + MINUTE);
    // Two days on, the session has ended too.
    await signIn(page, MEMBER);
    await page.goto('/keys');
    expect(`${await expiresCell(outgoing.id)} UTC`).toBe(utcMinute(ends));
  });
});
