import { describe, expect, it } from 'vitest';
import { audit, type Actor } from './audit.js';
import type { AuditEntry } from '../store/store.js';

/** The entry `audit` writes for `actor`. */
async function written(actor: Actor): Promise<AuditEntry> {
  const entries: AuditEntry[] = [];
  await audit({ store: { appendAudit: async (entry) => void entries.push(entry) }, clock: () => Date.UTC(2026, 11, 5) }, actor, 'key.revoked', { accountId: 'acc_1', keyId: 'key_1' });
  return entries[0] as AuditEntry;
}

describe('audit: who, and from which client address', () => {
  it('keeps the address of an actor that has one, none for a bare name, and none for an address Node could not tell', async () => {
    expect(await written({ name: 'admin-api', address: '2001:db8::7' })).toMatchObject({ actor: 'admin-api', actorAddress: '2001:db8::7', action: 'key.revoked' });
    expect(await written('cli')).toMatchObject({ actor: 'cli', actorAddress: null });
    expect(await written({ name: 'admin-api', address: '' })).toMatchObject({ actor: 'admin-api', actorAddress: null });
  });
});
