import { describe, expect, it } from 'vitest';
import { auditTable } from './audit.js';
import type { AuditEntry } from '../../store/store.js';

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
