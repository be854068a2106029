import { describe, expect, it } from 'vitest';
import { auditTable } from './audit.js';
import type { AuditEntry } from '../../store/store.js';

describe('audit table', () => {
  it('shows a changed plan expiry as a UTC time, and cleared fields in words', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const rendered = auditTable(
      [
        { id: 'aud_1', at, actor: 'admin-api', actorAddress: null, action: 'account.updated', accountId: 'acc_1', keyId: null, detail: { planExpiresAt: Date.parse('2020-01-01T00:00:00Z'), apiAccess: false } },
        { id: 'aud_2', at, actor: 'cli', actorAddress: null, action: 'account.updated', accountId: 'acc_1', keyId: null, detail: { planExpiresAt: null, overage: null } },
      ],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Events' },
      new Map(),
    ).toString();
    expect(rendered).toContain('plan expiry → 2020-01-01 00:00 UTC, API access → off');
    expect(rendered).toContain('plan expiry → never, overage → as the plan says');
    expect(rendered).not.toContain('1577836800000');
  });

  it('says what each changed account field was where the event keeps it (from), and the new value alone in entries from before', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const detail = { planId: 'free', apiAccess: false, from: { planId: 'pro', apiAccess: true } };
    const rendered = auditTable(
      [
        { id: 'aud_1', at, actor: 'cli', actorAddress: null, action: 'account.updated', accountId: 'acc_1', keyId: null, detail },
        { id: 'aud_2', at, actor: 'cli', actorAddress: null, action: 'account.updated', accountId: 'acc_1', keyId: null, detail: { overage: true, from: { overage: null } } },
      ],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Events' },
      new Map([['free', 'Free'], ['pro', 'Pro']]),
    ).value;
    expect(textOf(rendered)).toContain('plan Pro pro → Free free , API access on → off');
    expect(textOf(rendered)).toContain('overage as the plan says → on');
    expect(textOf(rendered)).not.toMatch(/from →|object/);
  });

  it('says an imported key in words, as a created one', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const rendered = auditTable(
      [{ id: 'aud_1', at, actor: 'cli', actorAddress: null, action: 'key.imported', accountId: 'acc_1', keyId: 'key_1', detail: { name: 'imported', mode: 'live', scopes: ['*'], hint: 'sk_live_…x4k9' } }],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Events' },
      new Map(),
    ).toString();
    expect(rendered).toContain('Imported a key (made elsewhere)');
    expect(rendered).toContain('“imported” <code>sk_live_…x4k9</code>, live, scopes *');
    expect(rendered).not.toContain('key.imported');
  });

  it("says a key's own rate limits where it was created with some, and what they became where they changed", () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const windows = [{ name: 'key-10-per-1m', limit: 10, window: '1m', scope: 'key' }];
    const rendered = auditTable(
      [
        { id: 'aud_1', at, actor: 'cli', actorAddress: null, action: 'key.created', accountId: 'acc_1', keyId: 'key_1', detail: { name: 'widget', mode: 'live', scopes: ['*'], hint: 'sk_live_…x4k9', rateLimits: windows } },
        { id: 'aud_2', at, actor: 'cli', actorAddress: null, action: 'key.updated', accountId: 'acc_1', keyId: 'key_1', detail: { hint: 'sk_live_…x4k9', rateLimits: { before: windows, after: [] } } },
        { id: 'aud_3', at, actor: 'cli', actorAddress: null, action: 'key.updated', accountId: 'acc_1', keyId: 'key_1', detail: { hint: 'sk_live_…x4k9', name: 'w', rateLimits: { before: [], after: windows } } },
      ],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Events' },
      new Map(),
    ).toString();
    expect(rendered).toContain('“widget” <code>sk_live_…x4k9</code>, live, scopes *, own rate limits 10-per-1m');
    expect(rendered).toContain('own rate limits → none');
    expect(rendered).toContain('name → “w”, own rate limits → 10-per-1m');
  });

  it('says from where a locked sign-in waits: one address, one IPv6 /64, or every address', () => {
    const at = Date.parse('2026-12-01T06:00:00Z');
    const until = '2026-12-01T06:15:00.000Z';
    const locked = (id: string, detail: Record<string, unknown>) => ({ id, at, actor: 'dashboard', actorAddress: null, action: 'member.locked', accountId: 'acc_1', keyId: null, detail: { email: 'ada@acme.example', until, ...detail } });
    const rendered = auditTable(
      [
        locked('aud_1', { scope: 'address', address: '203.0.113.9' }),
        locked('aud_2', { scope: 'network', address: '2001:db8:0:7::a', network: '2001:db8:0:7::/64' }),
        locked('aud_3', { scope: 'email', address: '192.0.2.4' }),
      ],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Events' },
      new Map(),
    ).toString();
    expect(rendered).toContain('<span class="email">ada@acme.example</span> from 203.0.113.9 until 2026-12-01 06:15:00 UTC');
    expect(rendered).toContain('<span class="email">ada@acme.example</span> from 2001:db8:0:7::/64 until 2026-12-01 06:15:00 UTC');
    expect(rendered).toContain('<span class="email">ada@acme.example</span> from every address until 2026-12-01 06:15:00 UTC');
  });
});

describe('a client address block lifted, in the audit log', () => {
  it('says which address, after how many unknown keys, and until when it would have lasted, in words', () => {
    const entry: AuditEntry = { id: 'aud_1', at: Date.UTC(2026, 11, 1, 15, 9), actor: 'admin-api', actorAddress: null, action: 'address.unblocked', accountId: null, keyId: null, detail: { address: '2001:db8:0:7::/64', unknownKeys: 20, blockedAt: Date.UTC(2026, 11, 1, 15, 0), blockedUntil: Date.UTC(2026, 11, 1, 15, 10) } };
    const rendered = auditTable([entry], new Map(), { caption: 'Events' }, new Map()).toString();
    expect(rendered).toContain('Lifted a client address’s block for unknown keys');
    expect(rendered).toContain('2001:db8:0:7::/64 (after 20 unknown keys, blocked until 2026-12-01 15:10:00 UTC)');
    expect(rendered).not.toContain(String(Date.UTC(2026, 11, 1, 15, 10)));
  });

  it('says one unknown key in the singular (a policy of limit 1)', () => {
    const entry: AuditEntry = { id: 'aud_1', at: Date.UTC(2026, 11, 1, 15, 9), actor: 'admin-api', actorAddress: null, action: 'address.unblocked', accountId: null, keyId: null, detail: { address: '192.0.2.1', unknownKeys: 1, blockedAt: Date.UTC(2026, 11, 1, 15, 0), blockedUntil: Date.UTC(2026, 11, 1, 15, 10) } };
    const rendered = auditTable([entry], new Map(), { caption: 'Events' }, new Map()).toString();
    expect(rendered).toContain('192.0.2.1 (after 1 unknown key, blocked until 2026-12-01 15:10:00 UTC)');
  });

  it('says a lift made while Redis did not answer reached one keygate process only; a shared one as before', () => {
    const lift = (id: string, from: string): AuditEntry => ({ id, at: Date.UTC(2026, 11, 1, 15, 9), actor: 'admin-api', actorAddress: null, action: 'address.unblocked', accountId: null, keyId: null, detail: { address: `192.0.2.${id.slice(-1)}`, unknownKeys: 20, blockedAt: Date.UTC(2026, 11, 1, 15, 0), blockedUntil: Date.UTC(2026, 11, 1, 15, 10), from } });
    const rendered = auditTable([lift('aud_1', 'this-process-redis-away'), lift('aud_2', 'shared')], new Map(), { caption: 'Events' }, new Map()).toString();
    expect(rendered).toContain('192.0.2.1 (after 20 unknown keys, blocked until 2026-12-01 15:10:00 UTC, in one keygate process only: Redis did not answer)');
    expect(rendered).toContain('192.0.2.2 (after 20 unknown keys, blocked until 2026-12-01 15:10:00 UTC)');
  });
});

describe('a sign-in lock in the audit log', () => {
  it('ends to the second, rounded up, as the sign-in page says it (15:24:17.2 is 15:24:18, not 15:24)', () => {
    const entry: AuditEntry = { id: 'aud_1', at: Date.UTC(2026, 11, 1, 15, 9), actor: 'dashboard', actorAddress: null, action: 'member.locked', accountId: 'acc_1', keyId: null, detail: { email: 'ada@acme.example', until: '2026-12-01T15:24:17.200Z', scope: 'email' } };
    const rendered = auditTable([entry], new Map([['acc_1', 'Acme']]), { caption: 'Events' }, new Map()).toString();
    expect(rendered).toContain('<span class="email">ada@acme.example</span> from every address until 2026-12-01 15:24:18 UTC');
  });
});

const HOUR = 3_600_000;

function rotation(detail: Record<string, unknown>): AuditEntry {
  return { id: 'aud_1', at: Date.UTC(2026, 11, 3, 12), actor: 'ada@acme.example', actorAddress: null, action: 'key.rotated', accountId: 'acc_1', keyId: 'key_1', detail };
}

describe('audit log: a rotation', () => {
  it('names the key that was rotated, by name and hint, then how long it kept working', () => {
    const until = Date.UTC(2026, 11, 3, 13);
    const table = auditTable([rotation({ name: 'production', hint: 'rk_live_…x4Qz', replacement: 'key_2', overlapMs: HOUR, oldKeyValidUntil: until })], new Map([['acc_1', 'Acme']]), { caption: 'Audit log' }, new Map()).value;
    expect(table).toContain('“production” <code>rk_live_…x4Qz</code>: old key kept working for 1 h<');
  });

  it('reads as before for a rotation recorded before names were kept', () => {
    const table = auditTable([rotation({ replacement: 'key_2', overlapMs: 0, oldKeyValidUntil: Date.UTC(2026, 11, 3, 12) })], new Map(), { caption: 'Audit log' }, new Map()).value;
    expect(table).toContain('>old key revoked at once<');
  });
});

/** The table's text as a person reads it: tags dropped, entities and spaces as shown. */
function textOf(table: string): string {
  return table.replace(/<[^>]*>/g, ' ').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/\s+/g, ' ');
}

describe('audit log: plans by name', () => {
  const at = Date.UTC(2026, 11, 3, 12);
  const plans = new Map([['pro', 'Pro'], ['free', 'Free']]);
  const entry = (action: string, detail: Record<string, unknown>): AuditEntry => ({ id: `aud_${action}`, at, actor: 'ops@example.com', actorAddress: null, action, accountId: 'acc_1', keyId: null, detail });

  it('names the plan an account moved to, created on or deleted from, with its id beside the name', () => {
    const table = auditTable(
      [entry('account.updated', { planId: 'free', apiAccess: true }), entry('account.created', { name: 'Acme', planId: 'pro' }), entry('account.deleted', { name: 'Acme', planId: 'pro' })],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Audit log' },
      plans,
    ).value;
    expect(textOf(table)).toContain('plan → Free free , API access → on');
    expect(textOf(table)).toContain('“Acme” on the Pro pro plan');
    expect(table).toContain('<code>free</code>');
    expect(textOf(table)).not.toMatch(/plan → free|the pro plan/);
  });

  it('shows the id alone for a plan the profile no longer has', () => {
    const table = auditTable([entry('account.updated', { planId: 'legacy' })], new Map([['acc_1', 'Acme']]), { caption: 'Audit log' }, plans).value;
    expect(textOf(table)).toContain('plan → legacy (no longer configured)');
  });
});

describe("audit log: an account's own limits", () => {
  const at = Date.UTC(2026, 11, 3, 12);
  const entry = (detail: Record<string, unknown>): AuditEntry => ({ id: 'aud_limits', at, actor: 'cli', actorAddress: null, action: 'account.limits_changed', accountId: 'acc_1', keyId: null, detail });

  it('says what the account was given, or that it has the plan\'s again', () => {
    const given = auditTable([entry({ before: { rateLimits: null, meters: {} }, after: { rateLimits: [{ name: '50-per-1s', limit: 50, window: '1s', scope: 'key' }, { name: '9-per-1h', limit: 9, window: '1h', scope: 'account' }], meters: { units: 5_000_000 } } })], new Map([['acc_1', 'Acme']]), { caption: 'Audit log' }, new Map()).value;
    expect(textOf(given)).toContain('Changed the account’s own limits');
    expect(textOf(given)).toContain('rate limits → 50-per-1s, 9-per-1h per account, limit of units → 5,000,000');
    const back = auditTable([entry({ before: { rateLimits: [], meters: {} }, after: { rateLimits: null, meters: {} } })], new Map([['acc_1', 'Acme']]), { caption: 'Audit log' }, new Map()).value;
    expect(textOf(back)).toContain('rate limits → the plan’s, meter limits → the plan’s');
  });

  it('says the limits an account was created with, in its account.created line', () => {
    const created: AuditEntry = { id: 'aud_created', at, actor: 'cli', actorAddress: null, action: 'account.created', accountId: 'acc_1', keyId: null, detail: { name: 'Acme', planId: 'pro', limits: { rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: {} } } };
    const table = auditTable([created], new Map([['acc_1', 'Acme']]), { caption: 'Audit log' }, new Map([['pro', 'Pro']])).value;
    expect(textOf(table)).toContain('on the Pro pro plan, rate limits → 25-per-1s, meter limits → the plan’s');
  });
});

describe('audit log: a deleted account', () => {
  const at = Date.UTC(2026, 11, 3, 12);
  const entry = (id: string, action: string, detail: Record<string, unknown>): AuditEntry => ({ id, at, actor: 'cli', actorAddress: null, action, accountId: 'acc_gone', keyId: null, detail });

  it('is named as it was called, without a link to its page (which no longer exists)', () => {
    const table = auditTable(
      [entry('aud_2', 'account.deleted', { name: 'Globex', planId: 'pro' }), entry('aud_1', 'key.revoked', { name: 'nightly', hint: 'rk_live_…a1B2' })],
      new Map(),
      { caption: 'Audit log' },
      new Map([['pro', 'Pro']]),
    ).value;
    expect(textOf(table)).toContain('Revoked a key Globex (deleted) acc_gone “nightly” rk_live_…a1B2');
    expect(table).not.toContain('href="/accounts/acc_gone"');
  });

  it('is known by its id where the page does not show its deletion', () => {
    const table = auditTable([entry('aud_1', 'key.revoked', { name: 'nightly', hint: 'rk_live_…a1B2' })], new Map(), { caption: 'Audit log' }, new Map()).value;
    expect(textOf(table)).toContain('Revoked a key deleted account acc_gone “nightly”');
    expect(table).not.toContain('href="/accounts/acc_gone"');
  });
});

describe('audit log: a new password', () => {
  const at = Date.UTC(2026, 11, 3, 12);
  const entry = (id: string, detail: Record<string, unknown>): AuditEntry => ({ id, at, actor: 'ada@acme.example', actorAddress: null, action: 'member.password_changed', accountId: 'acc_1', keyId: null, detail });

  it('says whether the member changed it while signed in or set it from a reset link (entries before `via` were reset links)', () => {
    const table = auditTable(
      [entry('aud_3', { email: 'ada@acme.example', via: 'current_password' }), entry('aud_2', { email: 'ada@acme.example', via: 'reset_link' }), entry('aud_1', { email: 'ada@acme.example' })],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Audit log' },
      new Map(),
    ).value;
    const rows = table.split('<tr>').slice(2).map(textOf);
    expect(rows[0]).toContain('Changed their password (signed in; other sessions signed out) Acme ada@acme.example');
    expect(rows[1]).toContain('Set a new password (reset link) Acme ada@acme.example');
    expect(rows[2]).toContain('Set a new password (reset link) Acme ada@acme.example');
    expect(table).not.toContain('current_password');
  });
});

describe('audit log: long words in the details', () => {
  const at = Date.UTC(2026, 11, 3, 12);
  const created = (id: string, name: string): AuditEntry => ({ id, at, actor: 'cli', actorAddress: null, action: 'key.created', accountId: 'acc_1', keyId: 'key_1', detail: { name, mode: 'live', scopes: ['*'], hint: 'rk_live_…x4Qz' } });

  it('marks a word of 40 characters as read (a name with its quotes) to break anywhere; one with ampersands counts each as one', () => {
    const table = auditTable(
      [created('aud_1', 'x'.repeat(38)), created('aud_2', 'Research&Development&Operations&Co')],
      new Map([['acc_1', 'Acme']]),
      { caption: 'Audit log' },
      new Map(),
    ).value;
    expect(table).toContain(`<span class="long-word">“${'x'.repeat(38)}”</span> <code>rk_live_…x4Qz</code>, live, scopes *`);
    expect(table).toContain('>“Research&amp;Development&amp;Operations&amp;Co” <code>rk_live_…x4Qz</code>, live, scopes *');
  });
});
