/** The audit log of key and account events: who did what, when. */
import type { Runtime } from '../runtime.js';
import { newId } from '../ids.js';

export async function audit(
  rt: Pick<Runtime, 'store' | 'clock'>,
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
