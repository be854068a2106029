/** Accounts (teams): create, list, change plan or API access, delete. */
import type { Runtime } from '../runtime.js';
import { rateLimitSchema, type Config, type Plan, type RateLimit } from '../config/schema.js';
import { describeProblem, isZodDefault, JSON_FORMAT } from '../config/load.js';
import { closestName, didYouMean } from '../config/closest-name.js';
import type { AccountPatch, AccountRecord, LimitOverrides } from '../store/store.js';
import { effectiveLimitsOut, effectivePlan, overridesOut } from '../limits/overrides.js';
import { MAX_REPORTED } from '../meters/cost.js';
import { repeatedWindow, RepeatedWindowError } from '../limits/repeated-windows.js';
import { MeterLimitError, WindowShapeError, WindowsRefusal, type WindowsField } from '../limits/window-shape.js';
import { newId } from '../ids.js';
import { checkedName, checkedTime, notFound, OperationError } from './errors.js';
import { audit, type Actor } from './audit.js';

export interface NewAccount {
  name: string;
  planId?: string;
  planExpiresAt?: number | null;
  apiAccess?: boolean;
  overage?: boolean | null;
  /** Its own limits from the start, as an update takes them (LimitsChange; null or absent: the plan's). */
  limits?: LimitsChange | null;
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

/**
 * What an operator who just gave the account a key is told when its keys are refused for
 * now, as the dashboard says on the new key's page: the key is made (it works once the
 * reason goes), but its first request would otherwise be the first sign. In the order the
 * gateway refuses (api_disabled, then plan_expired). The CLI prints it on stderr, the
 * admin API sends it as `Keygate-Warning`; each names the change in its own terms
 * (`said`: a CLI command, or the admin API's PATCH).
 * Undefined when the account's keys can call the API.
 */
export function refusedKeyWarning(
  account: Pick<AccountRecord, 'id' | 'apiAccess' | 'planId' | 'planExpiresAt'>,
  plans: Config['plans'],
  now: number,
  said: 'cli' | 'http' = 'cli',
  keys = 'the key',
): string | undefined {
  if (apiEnabledOf(account, plans, now)) return undefined;
  const plan = plans[account.planId];
  const refused = (reason: string) => `requests with ${keys} are refused (${reason}) until`;
  /** The change that ends the refusal: the CLI's flag, or the admin API's field. */
  const change = (flag: string, field: string) => (said === 'cli' ? `accounts update ${account.id} ${flag}` : `PATCH /v1/accounts/${account.id} ${field}`);
  const newPlan = change('--plan …', '{"planId": …}');
  if (!plan) return `plan ${account.planId} of account ${account.id} is no longer in the profile: ${refused('api_disabled')} the account is moved to another plan (${newPlan})`;
  if (!plan.apiAccess) return `plan ${account.planId} of account ${account.id} has API access off: ${refused('api_disabled')} the account is on a plan that includes it (${newPlan})`;
  if (!account.apiAccess) return `account ${account.id} has its API access turned off: ${refused('api_disabled')} it is turned back on (${change('--api-access on', '{"apiAccess": true}')})`;
  return `the plan of account ${account.id} expired at ${isoTime(account.planExpiresAt)}: ${refused('plan_expired')} it is renewed (${change('--plan-expires …', '{"planExpiresAt": …}')})`;
}

/**
 * What to say when a change of an account (a plan without API access, its access turned
 * off, a plan expiry in the past) turns off keys that worked until then: their next
 * request is refused. Undefined where the account's keys worked before or still work, or
 * where it has no key in use.
 */
export function keysTurnedOffWarning(
  before: Pick<AccountRecord, 'apiAccess' | 'planId' | 'planExpiresAt'>,
  after: Pick<AccountRecord, 'id' | 'apiAccess' | 'planId' | 'planExpiresAt'>,
  plans: Config['plans'],
  now: number,
  keysInUse: number,
  said: 'cli' | 'http' = 'cli',
): string | undefined {
  if (keysInUse === 0 || !apiEnabledOf(before, plans, now)) return undefined;
  return refusedKeyWarning(after, plans, now, said, `its ${keysInUse === 1 ? 'key' : `${keysInUse} keys`} in use, which worked until now,`);
}

/**
 * How many keys in use a change of an account turned off: 0 unless its keys worked before
 * the change (`before`) and are refused after it (`after`), as keysTurnedOffWarning counts
 * them. Read only then: most changes cost no query.
 */
export async function keysTurnedOff(
  rt: Pick<Runtime, 'store' | 'config'>,
  before: Pick<AccountRecord, 'apiAccess' | 'planId' | 'planExpiresAt'>,
  after: Pick<AccountRecord, 'id' | 'apiAccess' | 'planId' | 'planExpiresAt'>,
  now: number,
): Promise<number> {
  if (!apiEnabledOf(before, rt.config.plans, now) || apiEnabledOf(after, rt.config.plans, now)) return 0;
  return (await rt.store.listKeys({ accountId: after.id, inUseAt: now })).length;
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
    limits: overridesOut(account.limits),
    effectiveLimits: effectiveLimitsOut(accountPlan(account, rt.config.plans)),
    createdAt: isoTime(account.createdAt) as string,
  };
}

/** The plan with nothing in it: what an account on a plan the profile no longer has is shown with. */
const NO_PLAN: Plan = Object.freeze({ apiAccess: false, rateLimits: [], meters: {} });

/** The account's plan with its own limits in place (limits/overrides.ts); a plan the profile lacks has none. */
export function accountPlan(account: Pick<AccountRecord, 'planId' | 'limits'>, plans: Config['plans']): Plan {
  const plan = plans[account.planId];
  return plan ? effectivePlan(plan, account.limits) : NO_PLAN;
}

/**
 * A change of an account's own limits, as the admin API's PATCH takes it (a JSON merge
 * patch): a part left out stays as it is, null gives it back to the plan. `limits: null`
 * as a whole returns every limit to the plan's.
 */
export interface LimitsChange {
  /** The account's windows in place of the plan's own (as the profile writes them: `{ limit: 100, window: "1s", scope: "key" }`). */
  rateLimits?: unknown[] | null;
  /** Meter name → its limit; null: the plan's. The whole map null: the plan's for every meter (a JSON merge patch's null). */
  meters?: Record<string, number | null> | null;
}

/** Most windows an account's own list may hold (a plan has a few). */
const MAX_OWN_WINDOWS = 20;

/**
 * The account's overrides once `change` is applied to `before`, checked against its plan
 * (`planId`, the new one where the same change moves it): every error names the field,
 * as the request gave it. Meter overrides the plan has no meter for are refused, also
 * those kept from before a move to a plan without that meter.
 */
export function changedLimits(rt: Pick<Runtime, 'config'>, planId: string, before: LimitOverrides | undefined, change: LimitsChange | null | undefined): LimitOverrides {
  const plan = rt.config.plans[planId];
  let rateLimits = before?.rateLimits ?? null;
  // Without a prototype: a meter named "__proto__" is a name like another (and refused as one the plan lacks).
  const meters = Object.assign(Object.create(null) as Record<string, number>, change?.meters === null ? {} : (before?.meters ?? {}));
  if (change === null) return { rateLimits: null, meters: {} };
  if (change?.rateLimits !== undefined) rateLimits = change.rateLimits === null ? null : checkedWindows(change.rateLimits);
  for (const [name, limit] of Object.entries(change?.meters ?? {})) {
    if (limit === null) {
      delete meters[name];
      continue;
    }
    if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0 || limit > MAX_REPORTED) {
      throw new MeterLimitError(name, { reason: 'not_a_limit', got: `${JSON.stringify(limit)}` });
    }
    meters[name] = limit;
  }
  const has = Object.keys(plan?.meters ?? {});
  const lacked = Object.keys(meters).filter((name) => plan?.meters[name] === undefined);
  // Meters given now first (likely typos), every one in one refusal; then those kept from before, all in one refusal:
  // one try fixes them all, or gives them all back.
  const given = Object.entries(change?.meters ?? {}).filter(([name, limit]) => limit !== null && plan?.meters[name] === undefined);
  const [typed, ...others] = given.map(([meter]) => ({ meter, near: closestName(meter, has) }));
  if (typed !== undefined) throw new MeterLimitError(typed.meter, { reason: 'no_such_meter', planId, meters: has, near: typed.near, others });
  const [first] = lacked;
  if (first !== undefined) throw new MeterLimitError(first, { reason: 'kept_from_before', planId, meters: has, kept: lacked });
  return { rateLimits, meters };
}

/** A window's fields, for "did you mean" in a refusal of one. */
const WINDOW_FIELDS = ['name', 'limit', 'window', 'scope'];

/**
 * Windows as the profile writes them, each checked as the profile's are (a duration "1s", a
 * positive whole limit; each length once per scope). `field`: where the request gave them
 * (an account's `limits.rateLimits`, a key's `rateLimits`), named in every refusal.
 */
export function checkedWindows(given: unknown[], field: WindowsField = 'limits.rateLimits', whole = "a list of windows ({ limit, window, scope }), or null for the plan's"): RateLimit[] {
  if (!Array.isArray(given)) throw new WindowsRefusal(field, whole);
  if (given.length > MAX_OWN_WINDOWS) throw new WindowsRefusal(field, `at most ${MAX_OWN_WINDOWS} windows`);
  const windows = given.map((window, i) => {
    // With the value refused in each issue: without it every wrong value reads as one left out ("required").
    const parsed = rateLimitSchema.safeParse(window, { reportInput: true });
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const within = (issue?.path ?? []).map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('');
    // In the profile's words ("expected more than 0"), not zod's ("Too small: expected number to be >0"); no value echoed.
    // The admin API adds how a window is written (WINDOW_SHAPE_NOTE) where it answers.
    const why = issue === undefined ? 'not a window' : isZodDefault(issue.message) ? describeProblem(issue, () => WINDOW_FIELDS, JSON_FORMAT) : issue.message;
    throw new WindowShapeError(field, i, within, why);
  });
  const repeated = repeatedWindow(windows);
  if (repeated) throw new RepeatedWindowError(repeated.at, repeated.earlier, windows[repeated.at] as (typeof windows)[number], field);
  return windows;
}

/** The longest account name (the dashboard's form says so too). */
const ACCOUNT_NAME_MAX = 200;

function checkPlan(rt: Runtime, planId: string): void {
  if (!rt.config.plans[planId]) {
    // The plan asked for is not repeated (it may be anything pasted into the field): the list says which there are,
    // and the one a typo most likely meant (only the profile's own names are offered).
    const plans = Object.keys(rt.config.plans);
    const message = `no such plan${didYouMean(planId, plans)}; plans are: ${plans.join(', ')}`;
    // The same words for the CLI, which names its option (--plan) before them.
    throw new OperationError('invalid', message, undefined, { field: 'planId', message });
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
export async function createAccount(rt: Runtime, input: NewAccount, actor: Actor, options: { id?: string } = {}): Promise<AccountRecord> {
  if (options.id !== undefined && !isNewAccountId(options.id)) throw new OperationError('invalid', 'a new account id is "acc_" and 16 letters or digits');
  const name = await checkedName('an account', input.name, ACCOUNT_NAME_MAX, rt);
  const planId = input.planId ?? defaultPlanId(rt);
  checkPlan(rt, planId);
  if (input.planExpiresAt !== undefined && input.planExpiresAt !== null) checkedTime("the plan's expiry", input.planExpiresAt);
  // Checked as an update checks them, against the plan the account is created on.
  const limits = input.limits === undefined ? undefined : changedLimits(rt, planId, undefined, input.limits);
  const ownLimits = limits !== undefined && (limits.rateLimits !== null || Object.keys(limits.meters).length > 0);
  const createdAlready = () => new OperationError('conflict', `account "${options.id}" was created already`);
  if (options.id !== undefined && (await rt.store.listAudit({ accountId: options.id, limit: 1 })).length > 0) throw createdAlready();
  const account: AccountRecord = {
    id: options.id ?? newId('acc'),
    name,
    planId,
    planExpiresAt: input.planExpiresAt ?? null,
    apiAccess: input.apiAccess ?? true,
    overage: input.overage ?? null,
    ...(ownLimits ? { limits } : {}),
    createdAt: rt.clock(),
  };
  if (!(await rt.store.createAccount(account))) throw createdAlready();
  // One event: the limits it was created with are in it (as account.limits_changed's `after`), absent when the plan's.
  await audit(rt, actor, 'account.created', { accountId: account.id, detail: { name, planId, ...(ownLimits ? { limits: overridesOut(limits) } : {}) } });
  return account;
}

export async function getAccount(rt: Runtime, id: string): Promise<AccountRecord> {
  const account = await rt.store.getAccount(id);
  if (!account) throw notFound('account', id);
  return account;
}

/** A change of an account: its fields, and its own limits as a merge patch (LimitsChange). */
export type AccountChange = Omit<AccountPatch, 'limits'> & { limits?: LimitsChange | null };

export async function updateAccount(rt: Runtime, id: string, change: AccountChange, actor: Actor): Promise<AccountRecord> {
  return (await changeAccount(rt, id, change, actor)).account;
}

/** An account after a change, and whether the change moved anything (if not, nothing was written or audited). */
export interface AccountUpdate {
  account: AccountRecord;
  changed: boolean;
  /** The account as it was before the change. */
  before: AccountRecord;
}

/** updateAccount, saying whether anything changed: a change to what the account already has writes nothing, audits nothing. */
export async function changeAccount(rt: Runtime, id: string, change: AccountChange, actor: Actor): Promise<AccountUpdate> {
  const { limits: limitsChange, ...fields } = change;
  let patch: AccountPatch = fields;
  if (patch.planId !== undefined) checkPlan(rt, patch.planId);
  if (patch.name !== undefined) patch = { ...patch, name: await checkedName('an account', patch.name, ACCOUNT_NAME_MAX, rt, { accountId: id }) };
  if (patch.planExpiresAt !== undefined && patch.planExpiresAt !== null) checkedTime("the plan's expiry", patch.planExpiresAt);
  // Read, merged and written with the account to itself: two changes at once (one of its meters' limits through one
  // process, its windows through another) both hold, rather than the later writing the account as it was before the other.
  const written = await rt.store.changingAccount(id, async (store) => {
    const before = await store.getAccount(id);
    if (!before) throw notFound('account', id);
    // Checked against the plan the account will be on; a move to another plan alone checks the limits it keeps. The plan it
    // is on, given again, is no move: an own limit of a meter the profile has since taken from that plan is not refused for it
    // (it counts for nothing, and a change of the limits still meets it).
    const moves = patch.planId !== undefined && patch.planId !== before.planId;
    const limits = limitsChange !== undefined || moves ? changedLimits(rt, patch.planId ?? before.planId, before.limits, limitsChange) : undefined;
    const limitsBefore = overridesOut(before.limits);
    const limitsMoved = limits !== undefined && JSON.stringify(overridesOut(limits)) !== JSON.stringify(limitsBefore);
    const changes = Object.fromEntries(Object.entries(patch).filter(([field, value]) => before[field as keyof AccountRecord] !== value));
    if (Object.keys(changes).length === 0 && !limitsMoved) return { before, changes, limitsBefore, limits, limitsMoved, after: undefined };
    const after = await store.updateAccount(id, limitsMoved ? { ...patch, limits } : patch);
    if (!after) throw notFound('account', id);
    return { before, changes, limitsBefore, limits, limitsMoved, after };
  });
  const { before, changes, limitsBefore, limits, limitsMoved, after } = written;
  if (after === undefined) return { account: before, changed: false, before };
  // Every process drops the account's cached keys: their next request is judged with the new plan or limits.
  await rt.invalidate({ type: 'account', accountId: id });
  // The new values, as always, and in `from` what each was (as account.limits_changed keeps its `before`): the log alone says what a change undid.
  const from = Object.fromEntries(Object.keys(changes).map((field) => [field, before[field as keyof AccountRecord] ?? null]));
  if (Object.keys(changes).length > 0) await audit(rt, actor, 'account.updated', { accountId: id, detail: { ...changes, from } });
  if (limitsMoved) await audit(rt, actor, 'account.limits_changed', { accountId: id, detail: { before: limitsBefore, after: overridesOut(limits) } });
  return { account: after, changed: true, before };
}

export async function deleteAccount(rt: Runtime, id: string, actor: Actor): Promise<void> {
  // Its name and plan go into the audit log: nothing else will remember them.
  const before = await rt.store.getAccount(id);
  const deleted = await rt.store.deleteAccount(id);
  if (!deleted || !before) throw notFound('account', id);
  await rt.invalidate({ type: 'account', accountId: id });
  await audit(rt, actor, 'account.deleted', { accountId: id, detail: { name: before.name, planId: before.planId } });
}
