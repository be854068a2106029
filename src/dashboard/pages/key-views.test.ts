import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '../../store/store.js';
import { blockedBadge, keyTable, keyTraits, usageHint, type KeyTraits } from './key-views.js';
import { parseConfigObject } from '../../config/load.js';

const T0 = Date.parse('2026-12-01T00:00:00Z');
/** A profile with scopes and two modes: every column shown. */
const TRAITS: KeyTraits = { scopes: true, modes: ['live', 'test'] };

function key(id: string, hint: string, createdAt: number, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id,
    hash: `hash_${id}`,
    hint,
    name: 'Nightly export',
    accountId: 'acc_1',
    mode: 'live',
    scopes: ['*'],
    createdAt,
    lastUsedAt: null,
    expiresAt: null,
    revokedAt: null,
    createdBy: null,
    rotatedFrom: null,
    ...extra,
  };
}

describe('key traits', () => {
  it('shows scopes where the account\'s plan allows any, not wherever the profile has some', () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:9' }, plans: { reports: { scopes: ['reports:read'] }, basic: {} } });
    const rt = { config, keyFormat: { modes: ['live'] } } as unknown as Parameters<typeof keyTraits>[0];
    expect(keyTraits(rt, 'reports').scopes).toBe(true);
    expect(keyTraits(rt, 'basic').scopes).toBe(false);
  });
});

describe('key table', () => {
  it('names the latest replacement of a key rotated twice (the first replacement revoked)', () => {
    const old = key('key_old', 'sk_live_…aaaa', T0, { expiresAt: T0 + 3_600_000 });
    const first = key('key_first', 'sk_live_…bbbb', T0 + 1_000, { rotatedFrom: 'key_old', revokedAt: T0 + 2_000 });
    const second = key('key_second', 'sk_live_…cccc', T0 + 3_000, { rotatedFrom: 'key_old' });
    const all = [second, first, old];
    const row = (html: string, id: string) => html.slice(html.indexOf(`data-key-id="${id}"`)).split('</tr>')[0] ?? '';
    for (const order of [all, [...all].reverse()]) {
      const rendered = keyTable([old], T0 + 4_000, { caption: 'Keys in use' }, TRAITS, { all: order }).toString();
      expect(row(rendered, 'key_old')).toContain('replaced by <code class="hint">sk_live_…cccc</code>');
    }
  });

  it("shows a key's own rate limits under its name, and nothing for a key without", () => {
    const limited = key('key_lim', 'sk_live_…eeee', T0, { rateLimits: [{ limit: 10, window: 60_000, scope: 'key' }, { limit: 2, window: 1_000, scope: 'key' }] });
    const plain = key('key_plain', 'sk_live_…ffff', T0);
    const rendered = keyTable([limited, plain], T0 + 1_000, { caption: 'Keys in use' }, TRAITS).toString();
    const row = (id: string) => rendered.slice(rendered.indexOf(`data-key-id="${id}"`)).split('</tr>')[0] ?? '';
    expect(row('key_lim').replace(/<[^>]+>/g, '')).toContain('own rate limits: 10-per-1m, 2-per-1s');
    expect(row('key_plain')).not.toContain('own rate limit');
  });

  it('keeps a revoked key\'s expiry in its Expires cell and says when it was revoked in its Status cell', () => {
    const revoked = key('key_gone', 'sk_live_…dddd', T0, { expiresAt: Date.parse('2027-01-31T00:00:00Z'), revokedAt: T0 + 2 * 86_400_000 });
    const rendered = keyTable([revoked], T0 + 5 * 86_400_000, { caption: 'Revoked and expired keys' }, TRAITS).toString();
    // Each cell's text by its label.
    const cells = Object.fromEntries([...rendered.matchAll(/<td data-label="([^"]*)">(.*?)<\/td>/gs)].map((m) => [m[1], (m[2] ?? '').replace(/<[^>]+>/g, '')]));
    // To the minute, as Created is shown.
    expect(cells['Expires (UTC)']).toBe('2027-01-31 00:00');
    expect(cells.Status).toBe('Revoked 3 days ago');
    expect(rendered).toContain('title="Revoked 2026-12-03 00:00 UTC"');
  });

  it('shows a key’s Expires to the minute (UTC), rounded up while it is to come (as a refusal names it), truncated once it has passed', () => {
    const expiring = key('key_soon', 'sk_live_…cccc', Date.parse('2026-12-01T09:15:42Z'), { expiresAt: Date.parse('2026-12-01T10:22:59.900Z') });
    const cellsAt = (now: string) => {
      const rendered = keyTable([expiring], Date.parse(now), { caption: 'Keys in use' }, TRAITS).toString();
      return { rendered, cells: Object.fromEntries([...rendered.matchAll(/<td data-label="([^"]*)">(.*?)<\/td>/gs)].map((m) => [m[1], (m[2] ?? '').replace(/<[^>]+>/g, '')])) };
    };
    const before = cellsAt('2026-12-01T09:30:00Z');
    // Created is a moment past, truncated; at 10:23 the key has stopped, as "works until 10:23 UTC" in a refusal says.
    expect([before.cells['Created (UTC)'], before.cells['Expires (UTC)']]).toEqual(['2026-12-01 09:15', '2026-12-01 10:23']);
    // The exact moment stays in the time element, for machines and hover tools.
    expect(before.rendered).toContain('<time datetime="2026-12-01T10:22:59.900Z">2026-12-01 10:23</time>');
    expect(cellsAt('2026-12-01T10:30:00Z').cells['Expires (UTC)']).toBe('2026-12-01 10:22');
  });

  it('shows no "Never" for a revoked key that had no expiry: it has ended', () => {
    const revoked = key('key_done', 'sk_live_…eeee', T0, { revokedAt: T0 + 86_400_000 });
    const rendered = keyTable([revoked], T0 + 2 * 86_400_000, { caption: 'Revoked and expired keys' }, TRAITS).toString();
    const cells = Object.fromEntries([...rendered.matchAll(/<td data-label="([^"]*)">(.*?)<\/td>/gs)].map((m) => [m[1], (m[2] ?? '').replace(/<[^>]+>/g, '')]));
    expect(cells['Expires (UTC)']).toBe('—');
  });
});

describe('blocked badge', () => {
  it('says on hover when the block ends to the second, rounded up, as the CLI and the other ends shown do', () => {
    const ends = Date.parse('2026-12-01T10:22:30.250Z');
    const rendered = blockedBadge(ends, ends - 9 * 60_000).toString();
    expect(rendered).toContain('title="Refused until 2026-12-01 10:22:31 UTC for exceeding the rate limit repeatedly"');
    expect(rendered).toContain('Blocked, ends in 9 min');
  });
});

describe('how to send a new key', () => {
  const hint = (extra: object) => String(usageHint({ config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:4000' }, ...extra }) }).value);

  it('names the header and its scheme, and with dashboard.apiUrl where to send it and a curl line to try', () => {
    const auth = { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }] };
    expect(hint({ auth })).toBe('<p>Send it with each request in the header <code>Authorization: Token &lt;your key&gt;</code>.</p>');
    expect(hint({ auth, dashboard: { apiUrl: 'https://api.example.com/v1' } })).toBe(
      "<p>Send it with each request to <code>https://api.example.com/v1</code> in the header <code>Authorization: Token &lt;your key&gt;</code>.</p>" +
        "<pre class=\"try\"><code>curl -H 'Authorization: Token &lt;your key&gt;' 'https://api.example.com/v1'</code></pre>",
    );
  });
});
