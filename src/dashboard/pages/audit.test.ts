import { describe, expect, it } from 'vitest';
import { auditTable } from './audit.js';
import type { AuditEntry } from '../../store/store.js';

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

  it('says an imported key in words, as a created one', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const rendered = auditTable(
      [{ id: 'aud_1', at, actor: 'cli', action: 'key.imported', accountId: 'acc_1', keyId: 'key_1', detail: { name: 'imported', mode: 'live', scopes: ['*'], hint: 'sk_live_…x4k9' } }],
      new Map([['acc_1', 'Acme']]),
      'Events',
    ).toString();
    expect(rendered).toContain('Imported a key (made elsewhere)');
    expect(rendered).toContain('“imported” sk_live_…x4k9, live, scopes *');
    expect(rendered).not.toContain('key.imported');
  });

  it('says from where a locked sign-in waits: one address, one IPv6 /64, or every address', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const until = '2026-12-01T06:15:00.000Z';
    const locked = (id: string, detail: Record<string, unknown>) => ({ id, at, actor: 'dashboard', action: 'member.locked', accountId: 'acc_1', keyId: null, detail: { email: 'ada@acme.example', until, ...detail } });
    const rendered = auditTable(
      [
        locked('aud_1', { scope: 'address', address: '203.0.113.9' }),
        locked('aud_2', { scope: 'network', address: '2001:db8:0:7::a', network: '2001:db8:0:7::/64' }),
        locked('aud_3', { scope: 'email', address: '192.0.2.4' }),
      ],
      new Map([['acc_1', 'Acme']]),
      'Events',
    ).toString();
    expect(rendered).toContain('ada@acme.example from 203.0.113.9 until 2026-12-01 06:15 UTC');
    expect(rendered).toContain('ada@acme.example from 2001:db8:0:7::/64 until 2026-12-01 06:15 UTC');
    expect(rendered).toContain('ada@acme.example from every address until 2026-12-01 06:15 UTC');
  });
});

const HOUR = 3_600_000;

function rotation(detail: Record<string, unknown>): AuditEntry {
  return { id: 'aud_1', at: Date.UTC(2026, 11, 3, 12), actor: 'ada@acme.example', action: 'key.rotated', accountId: 'acc_1', keyId: 'key_1', detail };
}

describe('audit log: a rotation', () => {
  it('names the key that was rotated, by name and hint, then how long it kept working', () => {
    const until = Date.UTC(2026, 11, 3, 13);
    const table = auditTable([rotation({ name: 'production', hint: 'rk_live_…x4Qz', replacement: 'key_2', overlapMs: HOUR, oldKeyValidUntil: until })], new Map([['acc_1', 'Acme']]), 'Audit log').value;
    expect(table).toContain('“production” rk_live_…x4Qz: old key kept working for 1 h<');
  });

  it('reads as before for a rotation recorded before names were kept', () => {
    const table = auditTable([rotation({ replacement: 'key_2', overlapMs: 0, oldKeyValidUntil: Date.UTC(2026, 11, 3, 12) })], new Map(), 'Audit log').value;
    expect(table).toContain('>old key revoked at once<');
  });
});
