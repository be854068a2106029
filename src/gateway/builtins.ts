/**
 * Built-in endpoints: keygate answers them itself from its accounts, plans and meters,
 * in the shape the profile's template gives (e.g. Ranktracker's /v1/account/usage).
 */
import type { Runtime } from '../runtime.js';
import type { Identity } from '../pipeline/identity.js';
import type { Builtin } from '../config/schema.js';
import { accountUsage } from '../operations/usage.js';
import { renderTemplate } from './template.js';

export async function builtinContext(rt: Runtime, identity: Identity): Promise<Record<string, unknown>> {
  const usage = await accountUsage(rt, identity.account);
  const { account, key } = identity;
  return {
    now: new Date(rt.clock()).toISOString(),
    account: {
      id: account.id,
      name: account.name,
      apiEnabled: usage.apiEnabled,
      /** `active`, `expired` (plan past its date) or `disabled` (no API access). */
      status: usage.planExpired ? 'expired' : usage.apiEnabled ? 'active' : 'disabled',
      planId: account.planId,
      planName: usage.planName,
      planExpiresAt: account.planExpiresAt === null ? null : new Date(account.planExpiresAt).toISOString(),
      planExpired: usage.planExpired,
      createdAt: new Date(account.createdAt).toISOString(),
    },
    plan: { id: usage.planId, name: usage.planName },
    key: { id: key.id, name: key.name, mode: key.mode, hint: key.hint, scopes: key.scopes },
    meters: usage.meters,
  };
}

export async function renderBuiltin(rt: Runtime, builtin: Builtin, identity: Identity): Promise<string> {
  return JSON.stringify(renderTemplate(builtin.body ?? {}, await builtinContext(rt, identity)));
}
