import { describe, expect, it } from 'vitest';
import { auditTable } from './audit.js';

describe('audit table', () => {
  it('shows a changed plan expiry as a UTC time, and cleared fields in words', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const rendered = auditTable(
      [
        { id: 'aud_1', at, actor: 'admin-api', action: 'account.updated', accountId: 'acc_1', keyId: null, detail: { planExpiresAt: Date.parse('2020-01-01T00:00:00Z'), apiAccess: false } },
        { id: 'aud_2', at, actor: 'cli', action: 'account.updated', accountId: 'acc_1', keyId: null, detail: { planExpiresAt: null, overage: null } },
      ],
      new Map([['acc_1', 'Acme']]),
      'Events',
    ).toString();
    expect(rendered).toContain('plan expiry → 2020-01-01 00:00 UTC, API access → off');
    expect(rendered).toContain('plan expiry → never, overage → as the plan says');
    expect(rendered).not.toContain('1577836800000');
  });
});
