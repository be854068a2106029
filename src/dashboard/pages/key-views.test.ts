import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '../../store/store.js';
import { keyTable } from './key-views.js';

const T0 = Date.parse('2026-12-01T00:00:00Z');

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

describe('key table', () => {
  it('names the latest replacement of a key rotated twice (the first replacement revoked)', () => {
    const old = key('key_old', 'sk_live_…aaaa', T0, { expiresAt: T0 + 3_600_000 });
    const first = key('key_first', 'sk_live_…bbbb', T0 + 1_000, { rotatedFrom: 'key_old', revokedAt: T0 + 2_000 });
    const second = key('key_second', 'sk_live_…cccc', T0 + 3_000, { rotatedFrom: 'key_old' });
    const all = [second, first, old];
    const row = (html: string, id: string) => html.slice(html.indexOf(`data-key-id="${id}"`)).split('</tr>')[0] ?? '';
    for (const order of [all, [...all].reverse()]) {
      const rendered = keyTable([old], T0 + 4_000, 'Keys in use', undefined, order).toString();
      expect(row(rendered, 'key_old')).toContain('replaced by <code class="hint">sk_live_…cccc</code>');
    }
  });
});
