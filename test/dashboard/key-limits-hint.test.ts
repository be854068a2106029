/**
 * The hint under a key's Rate limits field gives the way to write windows as an example:
 * on the page of a key without windows of its own (the field empty) it must not read as
 * if the key had 10-per-1m and 2-per-1s.
 */
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: the hint of a key’s Rate limits field', () => {
  const fixture = useDashboard('keygate-dashboard-key-limits-hint', { signedIn: ['member'] });

  it('says the windows it names are an example, under the empty field of a key without its own', async () => {
    const { member, accountId } = fixture;
    const key = (await createKey(fixture.keygate.runtime, { accountId, name: 'production' }, 'admin-api')).key;
    await member.goto(`/keys/${key.id}/limits`);
    await expectHeading(member, 'Rate limits of key “production”');
    const field = member.getByLabel('Rate limits', { exact: true });
    expect(await field.inputValue()).toBe('');
    const hintId = (await field.getAttribute('aria-describedby')) ?? '';
    expect(await textOf(member.locator(`#${hintId}`))).toBe('The key’s own windows, written as 10-per-1m, 2-per-1s for example (requests per window), separated by commas; empty: none of its own.');
  });
});
