/** Accounts (teams): create, list, change plan or API access, delete. */
import type { Runtime } from '../runtime.js';
import type { Config } from '../config/schema.js';
import type { AccountPatch, AccountRecord } from '../store/store.js';
import { newId } from '../ids.js';
import { checkedName, checkedTime, notFound, OperationError } from './errors.js';
import { audit } from './audit.js';

export interface NewAccount {
  name: string;
  planId?: string;
  planExpiresAt?: number | null;
  apiAccess?: boolean;
  overage?: boolean | null;
}

export function defaultPlanId(rt: Pick<Runtime, 'config'>): string {
  return rt.config.defaultPlan ?? (Object.keys(rt.config.plans)[0] as string);
}

/**
 * Whether the account's keys can call the API now, as the gateway judges it: its own
 * switch (`apiAccess`), its plan's, and the plan not expired. The admin API and the CLI
 * give it as `apiEnabled`, beside the switch, in accounts and in usage.
 */
export function apiEnabledOf(account: Pick<AccountRecord, 'apiAccess' | 'planId' | 'planExpiresAt'>, plans: Config['plans'], now: number): boolean {
  const plan = plans[account.planId];
  return Boolean(plan?.apiAccess && account.apiAccess && !planEnded(account, now));
}

/** Whether the account's plan has ended by `now` (its keys are refused as plan_expired). */
export function planEnded(account: Pick<AccountRecord, 'planExpiresAt'>, now: number): boolean {
  return account.planExpiresAt !== null && account.planExpiresAt <= now;
}

/**
 * What an operator who just set the account's plan expiry is told when it is already past:
 * allowed (ending an account's access now is a use of it), but it may be a mistyped year.
 * The admin API sends it as `Keygate-Warning`, the CLI on stderr. Undefined when the plan
 * has not ended.
 */
export function pastPlanExpiryWarning(account: Pick<AccountRecord, 'id' | 'planExpiresAt'>, now: number): string | undefined {
  if (!planEnded(account, now)) return undefined;
  return `the plan expiry ${isoTime(account.planExpiresAt)} is in the past: the plan is already expired for account ${account.id}, whose requests are refused (plan_expired)`;
}

/** A time as the admin API and `--json` give it: ISO 8601 in UTC; null stays null. */
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/**
 * An account as the admin API answers it and `keygate accounts … --json` prints it: times
 * in ISO 8601, `apiEnabled` beside the account's own switch. Its fields are named one by
 * one, in the order of the API's schema, so that the CLI prints no field (nor order) the
 * API's serializer would not.
 */
export function accountOut(account: AccountRecord, rt: Pick<Runtime, 'config' | 'clock'>) {
  return {
    id: account.id,
    name: account.name,
    planId: account.planId,
    planExpiresAt: isoTime(account.planExpiresAt),
    apiAccess: account.apiAccess,
    apiEnabled: apiEnabledOf(account, rt.config.plans, rt.clock()),
    overage: account.overage,
    createdAt: isoTime(account.createdAt) as string,
  };
}

/** The longest account name (the dashboard's form says so too). */
const ACCOUNT_NAME_MAX = 200;

function checkPlan(rt: Runtime, planId: string): void {
  if (!rt.config.plans[planId]) {
    throw new OperationError('invalid', `no plan "${planId}"; plans are: ${Object.keys(rt.config.plans).join(', ')}`);
  }
}

/** An account id as `newId('acc')` makes them: what a caller may choose for a new account. */
export function isNewAccountId(value: unknown): value is string {
  return typeof value === 'string' && /^acc_[0-9A-Za-z]{16}$/.test(value);
}

/**
 * `options.id`: the new account's id, chosen by the caller (`acc_` and 16 base62
 * characters) so that a request sent twice (a dashboard form sent again, or twice at once
 * by a double click) creates one account: the second is a conflict. So is an id that an
 * account had before (one deleted since: its audit entries name it).
 */
export async function createAccount(rt: Runtime, input: NewAccount, actor: string, options: { id?: string } = {}): Promise<AccountRecord> {
  if (options.id !== undefined && !isNewAccountId(options.id)) throw new OperationError('invalid', 'a new account id is "acc_" and 16 letters or digits');
  const name = checkedName('an account', input.name, ACCOUNT_NAME_MAX, rt.keyFormat);
  const planId = input.planId ?? defaultPlanId(rt);
  checkPlan(rt, planId);
  if (input.planExpiresAt !== undefined && input.planExpiresAt !== null) checkedTime("the plan's expiry", input.planExpiresAt);
  const createdAlready = () => new OperationError('conflict', `account "${options.id}" was created already`);
  if (options.id !== undefined && (await rt.store.listAudit({ accountId: options.id, limit: 1 })).length > 0) throw createdAlready();
  const account: AccountRecord = {
    id: options.id ?? newId('acc'),
    name,
    planId,
    planExpiresAt: input.planExpiresAt ?? null,
    apiAccess: input.apiAccess ?? true,
    overage: input.overage ?? null,
    createdAt: rt.clock(),
  };
  if (!(await rt.store.createAccount(account))) throw createdAlready();
  await audit(rt, actor, 'account.created', { accountId: account.id, detail: { name, planId } });
  return account;
}

export async function getAccount(rt: Runtime, id: string): Promise<AccountRecord> {
  const account = await rt.store.getAccount(id);
  if (!account) throw notFound('account', id);
  return account;
}

export async function updateAccount(rt: Runtime, id: string, patch: AccountPatch, actor: string): Promise<AccountRecord> {
  if (patch.planId !== undefined) checkPlan(rt, patch.planId);
  if (patch.name !== undefined) patch = { ...patch, name: checkedName('an account', patch.name, ACCOUNT_NAME_MAX, rt.keyFormat) };
  if (patch.planExpiresAt !== undefined && patch.planExpiresAt !== null) checkedTime("the plan's expiry", patch.planExpiresAt);
  const before = await getAccount(rt, id);
  const after = await rt.store.updateAccount(id, patch);
  if (!after) throw notFound('account', id);
  await rt.invalidate({ type: 'account', accountId: id });
  const changes = Object.fromEntries(
    Object.entries(patch).filter(([field, value]) => before[field as keyof AccountRecord] !== value),
  );
  if (Object.keys(changes).length > 0) await audit(rt, actor, 'account.updated', { accountId: id, detail: changes });
  return after;
}

export async function deleteAccount(rt: Runtime, id: string, actor: string): Promise<void> {
  // Its name and plan go into the audit log: nothing else will remember them.
  const before = await rt.store.getAccount(id);
  const deleted = await rt.store.deleteAccount(id);
  if (!deleted || !before) throw notFound('account', id);
  await rt.invalidate({ type: 'account', accountId: id });
  await audit(rt, actor, 'account.deleted', { accountId: id, detail: { name: before.name, planId: before.planId } });
}
