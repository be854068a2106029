/**
 * Issuing keys: create (the secret is returned once and never stored), revoke (effective
 * on the next request, in every process), rotate (a replacement now, the old key valid
 * for an overlap and then expired by itself).
 */
import { DAY_MS, formatDuration, HOUR_MS } from '../config/duration.js';
import { accountBlockId, CountersUnavailableError, keyBlockId } from '../counters/counters.js';
import type { Runtime } from '../runtime.js';
import type { KeyIssuing, KeyPatch, KeyRecord } from '../store/store.js';
import { importedShapeWords, type KeyMode } from '../keys/format.js';
import { utcSecond, utcSecondUp } from '../meters/period.js';
import { newId } from '../ids.js';
import { checkedName, checkedTime, LATEST_TIME, notFound, OperationError, ordinal, type KeyMoments, type KeyNaming } from './errors.js';
import { actorName, audit, type Actor } from './audit.js';
import { didYouMean } from '../config/closest-name.js';
import { checkedWindows, getAccount, isoTime } from './accounts.js';
import type { RateLimit } from '../config/schema.js';
import { keyWindowsOut } from '../limits/key-windows.js';
import { PerAccountKeyWindowError } from '../limits/window-shape.js';

export interface NewKey {
  accountId: string;
  name: string;
  mode?: KeyMode;
  scopes?: string[];
  expiresAt?: number | null;
  /**
   * The key's own rate-limit windows, on top of its account's (limits/key-windows.ts), as
   * the profile writes windows (`{ limit: 10, window: "1m" }`): per key only. None: [] or absent.
   */
  rateLimits?: unknown[];
}

export interface IssuedKey {
  key: KeyRecord;
  /** Shown exactly once. */
  secret: string;
}

/** Rotation overlaps offered by the dashboard. */
export const ROTATION_OVERLAPS_MS = { now: 0, '1h': HOUR_MS, '24h': DAY_MS, '7d': 7 * DAY_MS } as const;
/** How long a rotated key keeps working when no overlap is asked for (`keys.rotation: true`); the dashboard's preselected choice. */
export const DEFAULT_ROTATION_OVERLAP = '24h' satisfies keyof typeof ROTATION_OVERLAPS_MS;

/**
 * The overlap a rotation gets when none is asked for, as a duration: `keys.rotation:
 * replace` revokes the old key at once ("0").
 */
export function defaultRotationOverlap(rt: Pick<Runtime, 'config'>): string {
  return rt.config.keys.rotation === 'replace' ? '0' : DEFAULT_ROTATION_OVERLAP;
}
/** A key this close to its expiry is shown as expiring. */
const EXPIRING_WITHIN_MS = 7 * DAY_MS;

/** The scope that satisfies every route. */
const WILDCARD = '*';

/** The scopes keys on an account's plan may carry. `*` is offered when the plan allows all. */
export function allowedScopes(rt: Pick<Runtime, 'config'>, planId: string): string[] {
  const plan = rt.config.plans[planId];
  if (plan?.scopes) return plan.scopes;
  return rt.config.scopes.length > 0 ? [WILDCARD, ...rt.config.scopes] : [];
}

/**
 * Those of `scopes` that a key on the plan may not be given: neither allowed by it nor,
 * where it allows `*`, a scope of the profile. A key holding one (its plan changed since)
 * is refused, at the gateway, what the plan does not offer.
 */
export function scopesNotOffered(rt: Pick<Runtime, 'config'>, planId: string, scopes: readonly string[]): string[] {
  const allowed = allowedScopes(rt, planId);
  const wildcard = allowed.includes(WILDCARD);
  return scopes.filter((s) => !allowed.includes(s) && !(wildcard && rt.config.scopes.includes(s)));
}

/** Why keys on the plan can carry no scope, and what would change that. */
function noScopesWhy(rt: Pick<Runtime, 'config'>, planId: string): string {
  if (rt.config.plans[planId]?.scopes) return `keys on plan ${planId} carry no scopes (its scopes list is empty); give the key none, or list scopes under plans.${planId}.scopes in the profile`;
  return 'keys of this API carry no scopes (the profile lists none under scopes); give the key none, or list the scopes under scopes in the profile';
}

function defaultScopes(rt: Runtime, planId: string): string[] {
  const allowed = allowedScopes(rt, planId);
  if (allowed.length === 0) return [];
  return allowed.includes(WILDCARD) ? [WILDCARD] : allowed;
}

/**
 * Why a key on the plan cannot be given no scope, if it cannot: the profile says every key
 * carries one (`keys.requireScopes`), or every route needs one, so that a key without
 * would be refused everything. On a plan that allows no scope neither is said: there is
 * nothing to choose, and `keys.requireScopes` is refused beside such a plan at load.
 */
export function scopeNeeded(rt: Pick<Runtime, 'config' | 'routes'>, planId: string): 'every key carries one' | 'every route needs one' | undefined {
  if (rt.config.keys.requireScopes) return 'every key carries one';
  return rt.routes.scopedOnly && allowedScopes(rt, planId).length > 0 ? 'every route needs one' : undefined;
}

/**
 * Scopes a key on the plan may carry, each once; anything else is refused, naming what is
 * allowed. None at all is refused where a key needs one (see `scopeNeeded`). `held`: the
 * scopes the key carries already, kept even where its plan no longer offers them (they
 * are not granted again: the gateway refuses what the plan does not offer), so that
 * renaming a key or changing another scope does not also demand that they go.
 */
function checkedScopes(rt: Runtime, planId: string, scopes: readonly string[], held: readonly string[] = []): string[] {
  const allowed = allowedScopes(rt, planId);
  const notAllowed = scopesNotOffered(rt, planId, scopes).filter((s) => !held.includes(s));
  if (notAllowed.length > 0) {
    // With the allowed scope each most likely meant (`stations:raed`): a name keygate knows,
    // never the value typed. One refused scope is followed by its guess, each of several by its own.
    const one = notAllowed.length === 1;
    const meant = (s: string) => didYouMean(s, allowed);
    const each = (s: string, named: string) => (one ? named : `${named}${meant(s)}`);
    const after = one ? meant(notAllowed[0] as string) : '';
    const refused = `scope${one ? '' : 's'} ${notAllowed.map((s) => each(s, s)).join(', ')} not allowed${after}`;
    // Without the values: a scope the profile declares by its name, any other by its place in the list.
    const placed = notAllowed.map((s) => each(s, s === WILDCARD || rt.config.scopes.includes(s) ? s : scopes.length === 1 ? 'the scope given' : `the ${ordinal(scopes.indexOf(s) + 1)} of ${scopes.length}`));
    const refusedPlaced = `${placed.join(', ')} ${one ? 'is' : 'are'} not allowed${after}`;
    // "allowed: (none)" alone leaves an operator guessing: say where scopes come from.
    const why = allowed.length === 0 ? `: ${noScopesWhy(rt, planId)}` : `; allowed: ${allowed.join(', ')}`;
    throw new OperationError('invalid', `${refused}${why}`, undefined, { field: 'scopes', message: `${refusedPlaced}${why}` });
  }
  const needed = scopes.length === 0 ? scopeNeeded(rt, planId) : undefined;
  if (needed === 'every key carries one') {
    throw new OperationError('invalid', `scopes cannot be empty: every key of this API carries at least one scope; allowed: ${allowed.join(', ')}`);
  }
  if (needed === 'every route needs one') {
    throw new OperationError('invalid', `scopes cannot be empty: every route of this API needs a scope, so a key with none could call nothing; allowed: ${allowed.join(', ')}`);
  }
  // `*` beside other scopes: the others grant nothing more, and what was meant (every
  // scope, or only those) is for the caller to say, not for keygate to guess.
  const others = [...new Set(scopes.filter((s) => s !== WILDCARD))];
  if (scopes.includes(WILDCARD) && others.length > 0) {
    throw new OperationError('invalid', `scope * already grants every scope, so ${others.join(', ')} would add nothing: give * alone, or the scopes the key needs without *`);
  }
  return [...new Set(scopes)];
}

/**
 * A key's own windows as a request gives them, checked as an account's are (a duration, a
 * positive whole limit, each length once), and each per key: a per-account window is the
 * account's own limit, not one key's. [] is none.
 */
export function checkedKeyWindows(given: unknown[]): RateLimit[] {
  const windows = checkedWindows(given, 'rateLimits', 'a list of windows ({ limit, window }), or [] for none');
  const shared = windows.findIndex((rl) => rl.scope === 'account');
  if (shared >= 0) throw new PerAccountKeyWindowError(shared);
  return windows;
}

function isActive(key: KeyRecord, now: number): boolean {
  return key.revokedAt === null && (key.expiresAt === null || key.expiresAt > now);
}

/**
 * Creates a key. `options.secret`: a key the API issued before keygate (a migration),
 * imported: it must have the profile's format, and only its hash is kept. `options.id`:
 * the new key's id, chosen by the caller (a key id, `key_` and 16 base62 characters) so
 * that a request sent twice (a dashboard form posted again by a reload) issues one key:
 * the second is a conflict.
 */
export async function createKey(rt: Runtime, input: NewKey, actor: Actor, options: { secret?: string; id?: string } = {}): Promise<IssuedKey> {
  return (await issueKey(rt, input, actor, options)).issued;
}

/** A key id as `newId('key')` makes them: what a caller may choose for a new key. */
export function isNewKeyId(value: unknown): value is string {
  return typeof value === 'string' && /^key_[0-9A-Za-z]{16}$/.test(value);
}

/** A rotation: the key being replaced and how long it keeps working. */
interface Replacing {
  old: KeyRecord;
  overlapMs: number;
}

/** A stored window as a request writes it (its length as text), to be checked again as given. */
function windowWritten(rl: RateLimit) {
  return { ...(rl.name === undefined ? {} : { name: rl.name }), limit: rl.limit, window: formatDuration(rl.window), scope: rl.scope };
}

/** The key a rotation replaced, as written, and when it stops working. */
interface Replaced {
  previous: KeyRecord;
  until: number;
  /** How long it still works (the overlap asked for, or less: never past its own end). */
  overlapMs: number;
  /** The keys before it whose overlap the rotation ended (`keys.rotation: replace`), as revoked. */
  ended: KeyRecord[];
}

/**
 * Checks and writes a new key. The plan's key limit and, for a replacement, the rotation
 * rules are checked against the account's keys as they are when it is written (while no
 * other key of the account is being issued): simultaneous requests cannot all pass them.
 */
async function issueKey(
  rt: Runtime,
  input: NewKey,
  actor: Actor,
  options: { secret?: string; id?: string; replacing?: Replacing },
): Promise<{ issued: IssuedKey; replaced?: Replaced }> {
  if (options.id !== undefined && !isNewKeyId(options.id)) throw new OperationError('invalid', 'a new key id is "key_" and 16 letters or digits');
  const account = await getAccount(rt, input.accountId);
  const { replacing } = options;
  // A replacement keeps its key's name, even one stored before names were checked.
  const name = replacing === undefined ? await checkedName('a key', input.name, 100, rt, { accountId: input.accountId, importing: options.secret }) : input.name;
  const shape = options.secret === undefined ? undefined : rt.keyFormat.check(options.secret);
  // An imported key's prefix says its mode where the import does not.
  const mode = input.mode ?? (shape?.ok ? shape.mode : undefined) ?? 'live';
  if (!rt.keyFormat.modes.includes(mode)) {
    throw new OperationError('invalid', `this API issues ${rt.keyFormat.modes.join(' and ')} keys only, not ${mode}`);
  }
  // A replacement holds what its key held, a scope its plan has dropped since too (see checkedScopes).
  const scopes = checkedScopes(rt, account.planId, input.scopes ?? defaultScopes(rt, account.planId), replacing?.old.scopes);
  const rateLimits = input.rateLimits === undefined ? [] : checkedKeyWindows(input.rateLimits);
  if (input.expiresAt !== undefined && input.expiresAt !== null) {
    if (!rt.config.keys.expiry) throw new OperationError('invalid', "this API's keys do not expire: a key works until it is revoked");
    if (!Number.isFinite(input.expiresAt) || input.expiresAt <= rt.clock()) throw new OperationError('invalid', 'the expiry must be in the future');
    checkedTime('the expiry', input.expiresAt);
  }
  let secret: string;
  if (options.secret === undefined || shape === undefined) {
    secret = rt.keyFormat.generate(mode);
  } else {
    secret = options.secret;
    if (shape.ok && shape.mode !== undefined && shape.mode !== mode) throw new OperationError('invalid', `that key is a ${shape.mode} key (its prefix says so), not a ${mode} one`);
    if (!shape.ok) {
      throw new OperationError(
        'invalid',
        rt.config.keys.imported === undefined
          ? `that key does not have this API's key format (${rt.config.keys.format === 'hex' ? `${rt.config.keys.hexLength} hex digits` : 'its prefix, length and checksum'}); keys issued before keygate are taken once keys.imported describes them`
          : `that key has neither this API's key format nor the shape keys.imported describes: ${importedShapeWords(rt.config.keys.imported)}`,
      );
    }
  }

  const key: KeyRecord = {
    id: options.id ?? newId('key'),
    hash: rt.hashKey(secret),
    hint: rt.keyFormat.hint(secret),
    name,
    accountId: account.id,
    mode,
    scopes,
    createdAt: 0, // when it is written
    lastUsedAt: null,
    expiresAt: input.expiresAt ?? null,
    revokedAt: null,
    createdBy: actorName(actor),
    rotatedFrom: replacing?.old.id ?? null,
    ...(rateLimits.length > 0 ? { rateLimits } : {}),
  };
  const replaced = await rt.store.issuingKeysOf(account.id, async (store): Promise<Replaced | undefined> => {
    // The account and its plan as they are now (a plan change waits for this, or came first).
    const current = await store.getAccount(account.id);
    if (!current) throw new OperationError('not_found', `no account "${account.id}"`);
    if (options.secret !== undefined && (await store.findKeyByHash(key.hash))) throw new OperationError('conflict', 'that key is already registered');
    if (options.id !== undefined && (await store.getKey(options.id))) throw new OperationError('conflict', `key "${options.id}" was issued already`);
    const now = rt.clock();
    key.createdAt = now;
    const plan = rt.config.plans[current.planId];
    // Only the account's keys in use can refuse this one (the plan's key limit, a rotation's
    // rules), and only those are read, only where something is checked: the revoked and
    // expired keys of years would make every new key slower.
    const inUse = plan?.maxKeys !== undefined || replacing ? await store.listKeys({ accountId: account.id, inUseAt: now }) : [];
    // The key being replaced as it is now: revoked or rotated since it was read, it cannot be.
    const stored = replacing && (await store.getKey(replacing.old.id));
    const old = stored?.accountId === account.id ? stored : undefined;
    // A change of the key that came first (its scopes narrowed through another process, say) is what the replacement holds.
    if (replacing && old) {
      key.name = old.name;
      key.scopes = old.scopes.includes(WILDCARD) ? [WILDCARD] : old.scopes;
      if (old.rateLimits !== undefined && old.rateLimits.length > 0) key.rateLimits = old.rateLimits;
      else delete key.rateLimits;
    }
    const endsOverlaps = rt.config.keys.rotation === 'replace';
    if (replacing) key.expiresAt = await replacementEnd(old, inUse, now, endsOverlaps, (id) => store.listKeys({ accountId: account.id, rotatedFrom: id }));
    // With `replace`, the keys before it still in an overlap end with it: they leave no room to make.
    const ending = old && endsOverlaps ? overlapsEndedBy(old, inUse, now) : [];
    if (plan?.maxKeys !== undefined) checkKeyLimit(plan.maxKeys, plan.name ?? current.planId, inUse.filter((k) => !ending.includes(k)), now, old?.id);
    // The checks above see another account's import of the same key only once it commits: the insert meets one made meanwhile.
    if (!(await store.insertKey(key))) throw new OperationError('conflict', options.secret !== undefined ? 'that key is already registered' : `key "${key.id}" was issued already`);
    if (!replacing || !old) return undefined;
    // The overlap never lengthens the old key's life.
    const { overlapMs } = replacing;
    const until = overlapMs === 0 ? now : old.expiresAt === null ? now + overlapMs : Math.min(old.expiresAt, now + overlapMs);
    const previous = (await store.updateKey(old.id, overlapMs === 0 ? { revokedAt: now } : { expiresAt: until })) as KeyRecord;
    const ended: KeyRecord[] = [];
    for (const earlier of ending) ended.push((await store.updateKey(earlier.id, { revokedAt: now })) as KeyRecord);
    return { previous, until, overlapMs: until - now, ended };
  });
  // A process may remember this hash as unknown (an imported key tried before): forget it.
  if (options.secret !== undefined) await rt.invalidate({ type: 'key', hash: key.hash });
  await audit(rt, actor, options.secret === undefined ? 'key.created' : 'key.imported', { accountId: account.id, keyId: key.id, detail: { name: key.name, mode, scopes: key.scopes, hint: key.hint, ...(key.rateLimits !== undefined && key.rateLimits.length > 0 ? { rateLimits: keyWindowsOut(key.rateLimits) } : {}) } });
  return { issued: { key, secret }, ...(replaced ? { replaced } : {}) };
}

/**
 * Refuses a key past the plan's limit. A replacement may outnumber the limit by the key it
 * replaces, for the overlap; by no more (a key still in an earlier rotation's overlap counts).
 */
function checkKeyLimit(maxKeys: number, planName: string, accountKeys: readonly KeyRecord[], now: number, replacing: string | undefined): void {
  const refusal = (name: KeyNaming, moments?: KeyMoments) => keyLimitRefusal(maxKeys, planName, accountKeys, now, replacing, name, moments);
  const message = refusal(keyWithId);
  if (message !== undefined) throw new OperationError('limit', message, (name, moments) => refusal(name, moments) ?? message);
}

/**
 * Why the plan's limit refuses a new key (or, with `replacing`, a replacement of that
 * key), or undefined if it has room. A refused replacement names the other keys in use,
 * and says how many of them to revoke. The dashboard asks this too, to say so before
 * showing a rotate form.
 */
export function keyLimitRefusal(maxKeys: number, planName: string, accountKeys: readonly KeyRecord[], now: number, replacing: string | undefined, name: KeyNaming = keyWithId, moments: KeyMoments = keyMomentsToTheSecond): string | undefined {
  if (maxKeys === 0) return `the ${planName} plan does not include API keys; upgrade the plan first`;
  const others = accountKeys.filter((k) => isActive(k, now) && k.id !== replacing);
  if (others.length < maxKeys) return undefined;
  const limit = `the ${planName} plan allows ${maxKeys} key${maxKeys === 1 ? '' : 's'} per account`;
  // Over the limit (the plan was changed to a smaller one), revoking one is not enough.
  const toRevoke = others.length - maxKeys + 1;
  if (replacing === undefined) return `${limit}; revoke ${toRevoke === 1 ? 'one' : toRevoke} first`;
  const listed = others.map((k) => (k.expiresAt === null ? name(k) : `${name(k)}, which works until ${moments.end(k.expiresAt)}`)).join('; ');
  const which = toRevoke === 1 ? (others.length === 1 ? 'it' : 'one') : toRevoke === others.length ? (toRevoke === 2 ? 'both' : `all ${toRevoke}`) : `${toRevoke} of them`;
  return `${limit}, and this account has ${others.length} other active key${others.length === 1 ? '' : 's'} (${listed}); revoke ${which} first`;
}

/**
 * When the replacement of `old` ends, after checking that the key may be rotated
 * now: rotation changes the secret, never how long access lasts. A key rotated before
 * (its replacement since revoked) now ends with that overlap; its own end date went
 * down the chain of replacements, to the newest one (each earlier link's end was cut to
 * its overlap in turn).
 */
async function replacementEnd(
  old: KeyRecord | undefined,
  inUse: readonly KeyRecord[],
  now: number,
  endsOverlaps: boolean,
  replacementsOf: (id: string) => Promise<readonly KeyRecord[]>,
): Promise<number | null> {
  if (!old) throw new OperationError('conflict', 'only an active key can be rotated');
  refuseIfStopped(old, inUse, now);
  const conflict = rotationConflict(old, inUse, now, keyWithId, { endsOverlaps });
  if (conflict) throw new OperationError('conflict', conflict, (name, moments) => rotationConflict(old, inUse, now, name, { endsOverlaps, moments }) ?? conflict);
  // The chain's links past `old` no longer work (a working one is a conflict, above): read one by one, not among the keys in use.
  const newestOf = (keys: readonly KeyRecord[]) => keys.reduce<KeyRecord | undefined>((a, k) => (!a || k.createdAt > a.createdAt ? k : a), undefined);
  let last = newestOf(await replacementsOf(old.id));
  for (let next = last; next; next = newestOf(await replacementsOf(next.id))) last = next;
  return last ? last.expiresAt : old.expiresAt;
}

export async function getKey(rt: Runtime, id: string, accountId?: string): Promise<KeyRecord> {
  const key = await rt.store.getKey(id);
  // A key of another account does not exist for the caller.
  if (!key || (accountId !== undefined && key.accountId !== accountId)) throw notFound('key', id);
  return key;
}

/** `work` with the account's keys to itself, as a rotation has them; an unbound key (no account) has only the store. */
function withKeysOf<T>(rt: Runtime, accountId: string | null, work: (store: KeyIssuing) => Promise<T>): Promise<T> {
  return accountId === null ? work(rt.store) : rt.store.issuingKeysOf(accountId, work);
}

export async function revokeKey(rt: Runtime, id: string, actor: Actor, accountId?: string): Promise<KeyRecord> {
  const found = await getKey(rt, id, accountId);
  if (found.revokedAt !== null) return found;
  // With the account's keys to itself, as a rotation: one revoked during a rotation comes before it (the rotation is
  // refused) or after it; and of two revocations at once, the second finds the key revoked (one time, one audit entry).
  const revoke = async (store: KeyIssuing): Promise<{ key: KeyRecord; revoked?: KeyRecord }> => {
    const key = (await store.getKey(id)) ?? found;
    if (key.revokedAt !== null) return { key };
    return { key, revoked: (await store.updateKey(id, { revokedAt: rt.clock() })) as KeyRecord };
  };
  const { key, revoked } = await withKeysOf(rt, found.accountId, revoke);
  if (!revoked) return key;
  await rt.invalidate({ type: 'key', hash: key.hash });
  await audit(rt, actor, 'key.revoked', { accountId: key.accountId, keyId: id, detail: { name: key.name, hint: key.hint } });
  return revoked;
}

export interface KeyChanges {
  name?: string;
  scopes?: string[];
  /** Every window of its own the key should have (see NewKey); [] or null: none again. */
  rateLimits?: unknown[] | null;
}

/**
 * Renames a key, changes its scopes (checked as at creation, against its account's
 * plan, except that a scope the key has already may stay after its plan stopped offering
 * it) or its own rate-limit windows. Each holds from the key's next request on, in
 * every process.
 */
export async function updateKey(rt: Runtime, id: string, changes: KeyChanges, actor: Actor, accountId?: string): Promise<KeyRecord> {
  const key = await getKey(rt, id, accountId);
  if (changes.name === undefined && changes.scopes === undefined && changes.rateLimits === undefined) throw new OperationError('invalid', 'nothing to change: give a name, scopes or rateLimits');
  if (key.revokedAt !== null) throw new OperationError('conflict', 'a revoked key cannot be changed');
  const patch: KeyPatch = {};
  if (changes.name !== undefined) patch.name = await checkedName('a key', changes.name, 100, rt, { accountId: key.accountId });
  if (changes.scopes !== undefined && key.accountId === null) throw new OperationError('conflict', 'the scopes of an unbound key cannot be changed');
  if (changes.rateLimits !== undefined) patch.rateLimits = changes.rateLimits === null ? [] : checkedKeyWindows(changes.rateLimits);
  // Read and written with the account's keys to itself, as a rotation does: a rotation at the same moment comes
  // wholly before this change (its replacement holds it: issueKey) or wholly after, never carrying what this changed away.
  const write = async (store: KeyIssuing): Promise<{ before: KeyRecord; updated: KeyRecord }> => {
    const current = await store.getKey(id);
    if (!current) throw notFound('key', id);
    if (current.revokedAt !== null) throw new OperationError('conflict', 'a revoked key cannot be changed');
    if (changes.scopes !== undefined) {
      // Its account deleted meanwhile: the key is unbound now.
      if (current.accountId === null) throw new OperationError('conflict', 'the scopes of an unbound key cannot be changed');
      const account = await store.getAccount(current.accountId);
      if (!account) throw notFound('account', current.accountId);
      patch.scopes = checkedScopes(rt, account.planId, changes.scopes, current.scopes);
    }
    return { before: current, updated: (await store.updateKey(id, patch)) as KeyRecord };
  };
  const { before, updated } = await withKeysOf(rt, key.accountId, write);
  // Cached records carry the name and windows too (built-in endpoints show the name; the pipeline counts the windows).
  await rt.invalidate({ type: 'key', hash: key.hash });
  const { rateLimits, ...fields } = patch;
  // Windows as the admin API gives them, before and after (as account.limits_changed does).
  const windows = rateLimits === undefined ? {} : { rateLimits: { before: keyWindowsOut(before.rateLimits), after: keyWindowsOut(rateLimits) } };
  await audit(rt, actor, 'key.updated', { accountId: key.accountId, keyId: id, detail: { hint: key.hint, ...fields, ...windows } });
  return updated;
}

/** The blocks that can stop a key: its own, and its account's. */
function blockIdsOf(key: KeyRecord): string[] {
  return key.accountId === null ? [keyBlockId(key.id)] : [keyBlockId(key.id), accountBlockId(key.accountId)];
}

/**
 * When each of these keys' rate-limit blocks ends (its own, or its account's, whichever
 * ends later), for the keys blocked now. Undefined when the counters cannot be asked
 * (Redis away): not known, rather than "not blocked".
 */
export async function blockedUntilOf(rt: Runtime, keys: readonly KeyRecord[]): Promise<Map<string, number> | undefined> {
  const now = rt.clock();
  const ids = [...new Set(keys.flatMap(blockIdsOf))];
  if (ids.length === 0) return new Map();
  let inForce: Map<string, number>;
  try {
    inForce = await rt.counters.blocksInForce(ids, now);
  } catch (error) {
    if (error instanceof CountersUnavailableError) return undefined;
    throw error;
  }
  const blocked = new Map<string, number>();
  for (const key of keys) {
    const until = Math.max(...blockIdsOf(key).map((id) => inForce.get(id) ?? 0));
    if (until > now) blocked.set(key.id, until);
  }
  return blocked;
}

/**
 * Lifts a key's rate-limit block, and its account's (an account-wide block stops this key
 * too), in every process, and forgets their violations: the next block starts the
 * escalation afresh. `lifted`: how many blocks were in force. Audited only when one was:
 * a call that found none lifted nothing, and the log would say it had.
 */
export async function unblockKey(rt: Runtime, id: string, actor: Actor, accountId?: string): Promise<{ key: KeyRecord; lifted: number }> {
  const key = await getKey(rt, id, accountId);
  const lifted = await rt.counters.liftBlocks(blockIdsOf(key), rt.clock());
  if (lifted > 0) await audit(rt, actor, 'key.unblocked', { accountId: key.accountId, keyId: id, detail: { name: key.name, hint: key.hint, lifted } });
  return { key, lifted };
}

/**
 * `options.id`: the replacement's id, chosen by the caller (see `createKey`). Answers the
 * replacement, the key it replaced (`previous`) and, under `keys.rotation: replace`, the
 * keys before that one whose overlap it ended (`ended`, revoked).
 */
export async function rotateKey(rt: Runtime, id: string, overlapMs: number, actor: Actor, accountId?: string, options: { id?: string } = {}): Promise<IssuedKey & { previous: KeyRecord; ended: KeyRecord[] }> {
  const old = await getKey(rt, id, accountId);
  if (!rt.config.keys.rotation) {
    throw new OperationError('invalid', 'this API has no in-place rotation: create a new key, move your integration to it, then revoke the old one');
  }
  const now = rt.clock();
  if (!isActive(old, now)) refuseIfStopped(old, old.accountId === null ? [] : await rt.store.listKeys({ accountId: old.accountId, inUseAt: now }), now);
  if (old.accountId === null) throw new OperationError('conflict', 'an unbound key cannot be rotated');
  // Stored before keys.requireScopes was set: its replacement would carry none either.
  if (old.scopes.length === 0 && rt.config.keys.requireScopes) {
    throw new OperationError('conflict', 'this key has no scopes, and every key of this API carries at least one: give it scopes first, or create a new key with scopes and revoke this one');
  }
  if (!Number.isFinite(overlapMs) || overlapMs < 0) throw new OperationError('invalid', 'the overlap cannot be negative');
  // One key per account means one working key, also while a replacement is deployed.
  if (overlapMs > 0 && rt.config.keys.rotation === 'replace') {
    throw new OperationError('invalid', 'this API replaces a rotated key at once (one working key per account): the old key cannot be kept for an overlap; rotate with an overlap of 0');
  }
  // Checked before anything is written: a date past JavaScript's range made every later key listing fail.
  if (now + overlapMs > LATEST_TIME) throw new OperationError('invalid', 'the overlap is too long: it would end after the year 9999');
  // A key stored with `*` beside other scopes (before they were refused together) is
  // replaced by one with `*` alone: the same access.
  const scopes = old.scopes.includes(WILDCARD) ? [WILDCARD] : old.scopes;
  // The replacement keeps the old key's own windows (a rotation changes the secret, not the limits).
  const { issued, replaced } = await issueKey(rt, { accountId: old.accountId, name: old.name, mode: old.mode, scopes, ...(old.rateLimits ? { rateLimits: old.rateLimits.map(windowWritten) } : {}) }, actor, { replacing: { old, overlapMs }, ...(options.id === undefined ? {} : { id: options.id }) });
  // Issued as a replacement: the key it replaced was updated with it.
  const { previous, until, overlapMs: kept, ended } = replaced as Replaced;
  await rt.invalidate({ type: 'key', hash: old.hash });
  for (const earlier of ended) await rt.invalidate({ type: 'key', hash: earlier.hash });
  await audit(rt, actor, 'key.rotated', {
    accountId: old.accountId,
    keyId: old.id,
    detail: { name: old.name, hint: old.hint, replacement: issued.key.id, overlapMs: kept, oldKeyValidUntil: until, ...(ended.length > 0 ? { overlapsEnded: ended.map((k) => k.id) } : {}) },
  });
  // Each ended key is revoked in the audit log too, as if by hand: who ended it, and why.
  for (const earlier of ended) {
    await audit(rt, actor, 'key.revoked', { accountId: earlier.accountId, keyId: earlier.id, detail: { name: earlier.name, hint: earlier.hint, overlapEndedByRotationOf: old.id } });
  }
  return { ...issued, previous, ended };
}

/**
 * The keys before `key` in its chain of rotations (the key it replaced, the one that one
 * replaced, ...) that still work, in an overlap: what a rotation under
 * `keys.rotation: replace` ends with it, so that only its replacement works after.
 * `accountKeys` may be only the keys in use: a link before one that stopped has stopped
 * too (a key is rotated only while it works, once the key it replaced has stopped or is
 * ended with it), so the walk ends there either way.
 */
export function overlapsEndedBy(key: KeyRecord, accountKeys: readonly KeyRecord[], now: number): KeyRecord[] {
  const ending: KeyRecord[] = [];
  const seen = new Set([key.id]);
  for (let id = key.rotatedFrom; id !== null && !seen.has(id); ) {
    seen.add(id);
    const earlier = accountKeys.find((k) => k.id === id);
    if (!earlier) break;
    if (isActive(earlier, now)) ending.push(earlier);
    id = earlier.rotatedFrom;
  }
  return ending;
}

/**
 * Why `key` cannot be rotated because it no longer works, or undefined while it works:
 * since when (a bare "only an active key" left the operator to look the key up), and
 * what to do instead. A rotation hands on a working key's access, and this one has none
 * left: where it was rotated and its replacement works (its overlap over, or none asked),
 * that is the key to rotate; else a new key replaces it.
 */
export function stoppedKeyRefusal(key: KeyRecord, accountKeys: readonly KeyRecord[], now: number, name: KeyNaming = keyWithId, moments: KeyMoments = keyMomentsToTheSecond): string | undefined {
  const stopped = key.revokedAt !== null ? `was revoked at ${moments.stopped(key.revokedAt)}` : key.expiresAt !== null && key.expiresAt <= now ? `expired at ${moments.stopped(key.expiresAt)}` : undefined;
  if (stopped === undefined) return undefined;
  const replacement = newestReplacement(key, accountKeys, now);
  return `${name(key)} ${stopped}; only an active key can be rotated: ${replacement ? `rotate its replacement ${name(replacement)} instead` : 'create a new key instead'}`;
}

/** Refuses to rotate a key that no longer works (see `stoppedKeyRefusal`), in words each caller names keys in. */
function refuseIfStopped(key: KeyRecord, accountKeys: readonly KeyRecord[], now: number): void {
  const refusal = (name: KeyNaming, moments?: KeyMoments) => stoppedKeyRefusal(key, accountKeys, now, name, moments);
  const message = refusal(keyWithId);
  if (message !== undefined) throw new OperationError('conflict', message, (name, moments) => refusal(name, moments) ?? message);
}

/**
 * The working key at the end of `key`'s chain of replacements (its replacement may have
 * been rotated since), if any: the key the refusals to rotate `key` name instead, and
 * the one the dashboard's refusal page then offers to rotate.
 */
export function newestReplacement(key: KeyRecord, accountKeys: readonly KeyRecord[], now: number): KeyRecord | undefined {
  const replacementOf = (k: KeyRecord) => accountKeys.find((r) => r.rotatedFrom === k.id && isActive(r, now));
  let newest = replacementOf(key);
  for (let next = newest && replacementOf(newest); next; next = replacementOf(next)) newest = next;
  return newest;
}

/**
 * Why `key` cannot be rotated now, or undefined if it can. Rotating a key twice, or a
 * replacement while the key it replaced still works, would leave three keys alive (and
 * dodge the plan's key limit). `accountKeys`: the keys of its account (those in use will do). The dashboard
 * asks this too, to offer Rotate only where it would be accepted.
 */
export function rotationConflict(key: KeyRecord, accountKeys: readonly KeyRecord[], now: number, name: KeyNaming = keyWithId, options: { endsOverlaps?: boolean; moments?: KeyMoments } = {}): string | undefined {
  // The newest key of the chain is the one to rotate (its replacement may have been rotated since).
  const replacement = newestReplacement(key, accountKeys, now);
  if (replacement) return `this key was already rotated; rotate its replacement ${name(replacement)} instead`;
  // Under `keys.rotation: replace` the rotation ends the key it replaced with the others (overlapsEndedBy).
  if (options.endsOverlaps) return undefined;
  const replaced = key.rotatedFrom === null ? undefined : accountKeys.find((k) => k.id === key.rotatedFrom && isActive(k, now));
  if (!replaced) return undefined;
  const until = replaced.expiresAt === null ? '' : `, which works until ${(options.moments ?? keyMomentsToTheSecond).end(replaced.expiresAt)}`;
  return `this key replaced ${name(replaced)}${until}: revoke that key first, or rotate this one once it has expired`;
}

/**
 * A key's moments as the CLI and admin API say them in refusals, to the second. When a key
 * stops, in a refusal that says to wait for it (`end`): rounded up, so that at the time
 * named it has stopped (a minute cut short named a time at which the same refusal came
 * back). When it was revoked or expired (`stopped`): truncated, never after it happened.
 */
export const keyMomentsToTheSecond: KeyMoments = {
  stopped: (ms) => `${utcSecond(ms)} UTC`,
  end: (ms) => `${utcSecondUp(ms)} UTC`,
};

/** A key as the CLI and admin API name it in messages: its name and hint, as people recognise it, and the id their commands take. */
export const keyWithId: KeyNaming = (key) => `“${key.name}” ${key.hint} (${key.id})`;

export type KeyStatus = 'active' | 'revoked' | 'expired' | 'expiring' | 'unbound';

/** A key's status as members see it. */
export function keyStatus(key: KeyRecord, now: number): KeyStatus {
  if (key.revokedAt !== null && key.revokedAt <= now) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  // Its account was deleted: refused with key_not_bound.
  if (key.accountId === null) return 'unbound';
  if (key.expiresAt !== null && key.expiresAt - now <= EXPIRING_WITHIN_MS) return 'expiring';
  return 'active';
}

/**
 * A key as the admin API answers it and `keygate keys … --json` prints it (never its
 * hash): times in ISO 8601, its status now, and `blockedUntil` (null: not blocked) when
 * `blocked` says whom the counters block, left out where they cannot be asked. Fields in
 * the order of the API's schema, as its serializer sends them.
 */
export function keyOut(key: KeyRecord, now: number, blocked?: ReadonlyMap<string, number>) {
  return {
    id: key.id,
    name: key.name,
    hint: key.hint,
    accountId: key.accountId,
    mode: key.mode,
    scopes: key.scopes,
    status: keyStatus(key, now),
    createdAt: isoTime(key.createdAt) as string,
    lastUsedAt: isoTime(key.lastUsedAt),
    expiresAt: isoTime(key.expiresAt),
    revokedAt: isoTime(key.revokedAt),
    createdBy: key.createdBy,
    rotatedFrom: key.rotatedFrom,
    rateLimits: keyWindowsOut(key.rateLimits),
    ...(blocked ? { blockedUntil: isoTime(blocked.get(key.id) ?? null) } : {}),
  };
}

/**
 * A rotation as the admin API answers it and `keygate keys rotate --json` prints it: the
 * replacement with its secret, the key it replaced, and the earlier keys of the chain whose
 * overlap it ended (`keys.rotation: replace`; empty when none), by id and hint.
 */
export function rotationOut(rotated: IssuedKey & { previous: KeyRecord; ended: KeyRecord[] }, now: number, blocked?: ReadonlyMap<string, number>) {
  return {
    ...keyOut(rotated.key, now, blocked),
    secret: rotated.secret,
    previous: keyOut(rotated.previous, now, blocked),
    ended: rotated.ended.map((key) => ({ id: key.id, hint: key.hint })),
  };
}
