/** The audit log of key and account events: who did what, when. */
import type { Runtime } from '../runtime.js';
import { newId } from '../ids.js';
import type { AuditEntry, Store } from '../store/store.js';

/** `rt`: the runtime, or a store inside a transaction (with the runtime's clock). */
export async function audit(
  rt: { store: Pick<Store, 'appendAudit'>; clock: Runtime['clock'] },
  actor: string,
  action: string,
  target: { accountId?: string | null; keyId?: string | null; detail?: Record<string, unknown> } = {},
): Promise<void> {
  await rt.store.appendAudit({
    id: newId('aud'),
    at: rt.clock(),
    actor,
    action,
    accountId: target.accountId ?? null,
    keyId: target.keyId ?? null,
    detail: target.detail ?? {},
  });
}

/** A time in an event's detail: a field named `...At` or `...Until` holding milliseconds. */
const TIME_FIELD = /(?:At|Until)$/;

/**
 * An event as the admin API and `keygate audit --json` give it: its time, and the times in
 * its detail (`planExpiresAt`, `oldKeyValidUntil`, ...), in ISO 8601 UTC like every other
 * time they give, not milliseconds.
 */
export function auditEventOut(entry: AuditEntry): Omit<AuditEntry, 'at'> & { at: string } {
  const detail = Object.fromEntries(
    Object.entries(entry.detail).map(([field, value]) => [field, TIME_FIELD.test(field) && typeof value === 'number' && Number.isFinite(value) ? new Date(value).toISOString() : value]),
  );
  return { ...entry, at: new Date(entry.at).toISOString(), detail };
}
