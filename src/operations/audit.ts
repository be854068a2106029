/** The audit log of key and account events: who did what, when, and from which client address. */
import type { Runtime } from '../runtime.js';
import { newId } from '../ids.js';
import type { AuditEntry, Store } from '../store/store.js';

/**
 * Who makes a change, as the audit log names it: a name (`admin-api`, a member's email,
 * `cli`) and, for a change asked for over HTTP (the admin API, the dashboard), the client's
 * address as the admin access log reads it (behind a proxy in `trustedProxies`, the client
 * it names). A bare name has no address: the CLI's changes and the library's.
 *
 * Handed down by each caller as an argument, never kept in an async context: nothing is
 * added to the gateway's per-request path for it.
 */
export type Actor = string | { name: string; address: string | null };

/** The name an actor is known by (a key's `createdBy`, a log line's `actor`). */
export function actorName(actor: Actor): string {
  return typeof actor === 'string' ? actor : actor.name;
}

/** `rt`: the runtime, or a store inside a transaction (with the runtime's clock). */
export async function audit(
  rt: { store: Pick<Store, 'appendAudit'>; clock: Runtime['clock'] },
  actor: Actor,
  action: string,
  target: { accountId?: string | null; keyId?: string | null; detail?: Record<string, unknown> } = {},
): Promise<void> {
  await rt.store.appendAudit({
    id: newId('aud'),
    at: rt.clock(),
    actor: actorName(actor),
    // '': the peer had gone before its address was read (Node then has none); unknown, as null.
    actorAddress: typeof actor === 'string' || actor.address === '' ? null : actor.address,
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
