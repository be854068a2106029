/**
 * The audit log names the client address a dashboard change came from, as the dashboard
 * reads it for sign-in lockouts: behind a proxy in `trustedProxies`, the client its
 * X-Forwarded-For names; else the peer's. Over plain HTTP (no browser needed to send the
 * header); the audit page shows it in its From column, and "—" for a change without one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { createKey } from '../../src/operations/keys.js';
import { newAccount, startDashboard, type DashboardFixture } from './support.js';
import { signedInOperator, type Visitor } from './visitor.js';

describe('dashboard: audit events name the client address of the change', () => {
  let fixture: DashboardFixture;
  let operator: Visitor;
  let accountId: string;

  beforeAll(async () => {
    fixture = await startDashboard(tempDir('keygate-dashboard-audit-address'), (profile) => ({ ...profile, trustedProxies: ['127.0.0.1'] }));
    accountId = await newAccount(fixture, 'Acme Analytics');
    operator = await signedInOperator(fixture, `/accounts/${accountId}`);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  /** A key made for the test (by the library: an event without an address), revoked on the account's page by the operator, with `headers`. */
  async function revokeFromPage(headers: Record<string, string>): Promise<string> {
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Acme production' }, 'test');
    expect((await operator.get(`/accounts/${accountId}/keys/${key.id}/revoke`)).status).toBe(200);
    expect((await operator.post(`/accounts/${accountId}/keys/${key.id}/revoke`, {}, headers)).status).toBe(303);
    return key.id;
  }

  it('records the client X-Forwarded-For names behind a trusted proxy, the peer without it, and none for a change made outside HTTP', async () => {
    const forwarded = await revokeFromPage({ 'x-forwarded-for': '203.0.113.7' });
    const direct = await revokeFromPage({});
    const events = await fixture.keygate.runtime.store.listAudit({ accountId });
    const byKey = (keyId: string) => events.filter((e) => e.keyId === keyId).map((e) => ({ actor: e.actor, actorAddress: e.actorAddress, action: e.action }));
    expect(byKey(forwarded)).toEqual([
      { actor: 'olga@ops.example', actorAddress: '203.0.113.7', action: 'key.revoked' },
      { actor: 'test', actorAddress: null, action: 'key.created' },
    ]);
    expect(byKey(direct)).toEqual([
      { actor: 'olga@ops.example', actorAddress: '127.0.0.1', action: 'key.revoked' },
      { actor: 'test', actorAddress: null, action: 'key.created' },
    ]);

    // The audit page: the address in the From column, "—" where there is none.
    const page = await operator.get(`/audit?account=${accountId}`);
    expect(page.status).toBe(200);
    const rows = [...page.html.matchAll(/<tr>\s*<td data-label="When">[\s\S]*?<\/tr>/g)].map((row) => ({
      // The cell's text, as read: an email sits in a span that keeps it on one line.
      who: /<td data-label="Who">([\s\S]*?)<\/td>/.exec(row[0])?.[1]?.replace(/<[^>]*>/g, ''),
      from: /<td data-label="From">([\s\S]*?)<\/td>/.exec(row[0])?.[1],
      what: /<td data-label="What">([^<]*)<\/td>/.exec(row[0])?.[1],
    }));
    expect(rows).toEqual([
      { who: 'olga@ops.example', from: '<code>127.0.0.1</code>', what: 'Revoked a key' },
      { who: 'test', from: '<span class="muted">—</span>', what: 'Created a key' },
      { who: 'olga@ops.example', from: '<code>203.0.113.7</code>', what: 'Revoked a key' },
      { who: 'test', from: '<span class="muted">—</span>', what: 'Created a key' },
      { who: 'test', from: '<span class="muted">—</span>', what: 'Created the account' },
    ]);
  });
});
