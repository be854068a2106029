/**
 * The request pipeline: every check a request passes before it is forwarded, in the
 * order of shared/DESIGN.md. Each step is a call into a small module; each refusal is
 * a typed denial that the dialect renders. Charging happens last, after everything else
 * has passed, and is settled by the gateway once the upstream has answered.
 */
import type { Config, MeterPeriod, Plan, UnknownKeyPolicy } from '../config/schema.js';
import { extractCredential, type RequestView } from '../auth/credential.js';
import type { KeyFormat, KeyMode } from '../keys/format.js';
import { hexOfDigest, sameDigest, type KeyDigest, type KeyHasher } from '../keys/hash.js';
import type { CachedKey, KeyCache } from '../keys/key-cache.js';
import type { KeyMemo } from '../keys/key-memo.js';
import type { AccountRecord, KeyRecord, Store } from '../store/store.js';
import { accountBlockId, CountersUnavailableError, keyBlockId, type Admission, type AdmitRequest, type BlockStart, type Counters, type Reservation, type ChargeSpec, type WindowSpec } from '../counters/counters.js';
import { hasScopes, type RouteMatch, type RouteTable } from '../routes/route-table.js';
import { rateLimitFields, windowsFor, type createRateLimitPlanner, type RateLimitPlan } from '../limits/rate-limits.js';
import { keyWindowsPlanKey } from '../limits/key-windows.js';
import { effectivePlan, rateLimitPlanKey } from '../limits/overrides.js';
import { overageAllowed, reserveAmount } from '../meters/cost.js';
import { isoDay, periodBounds, type PeriodBounds } from '../meters/period.js';
import { deny, SCOPE_LIST_SEPARATOR, type Denial } from '../denial/reasons.js';
import type { Identity } from './identity.js';
import { withDeadline } from '../deadline.js';
import { OUTAGE_RETRY_AFTER_S } from '../operations/health.js';
import { UnknownKeyLimit, type AddressBlock, type UnknownKeyCount } from '../auth/unknown-key-limit.js';
import { addressGroup, clientAddress, trustedProxyCheck } from '../gateway/trusted-proxies.js';

export interface PipelineDeps {
  config: Config;
  keyFormat: KeyFormat;
  hashKey: KeyHasher;
  keyCache: KeyCache;
  store: Store;
  counters: Counters;
  routes: RouteTable;
  limits: ReturnType<typeof createRateLimitPlanner>;
  clock: () => number;
  /** Told each time a presented key was found in the store (proof that its hashing matches). */
  onKeyFound?: () => void;
  /** Counts of keys looked up in the store (the cache did not hold them), by what the store said. */
  storeLookups?: StoreLookups;
  /** Told once per block this process's admissions start, with whose it is (for the log and metrics). */
  onBlockStarted?: (started: BlockStart, identity: Identity) => void;
  /**
   * Unknown keys counted per client address, with `auth.unknownKeys` (kept by the runtime
   * across reloads, shared through Redis with Redis counters; a pipeline without one
   * counts in its own).
   */
  unknownKeyLimit?: UnknownKeyCount;
  /** Told once per client address blocked for its unknown keys (for the log and metrics). */
  onAddressBlocked?: (block: AddressBlock) => void;
  /** Told each time a key the cache does not hold could not be looked up (the store unreachable or slow): its request is refused. */
  onLookupFailed?: (error: unknown) => void;
}

/** Keys looked up in the store: found, not there (unknown), or no answer in time (the store unreachable or slow). */
export interface StoreLookups {
  found: number;
  unknown: number;
  failed: number;
}

export interface GatewayRequest extends RequestView {
  method: string;
  /** Path without the query string. */
  path: string;
  /**
   * Whether an account has as many requests in flight upstream as this process forwards
   * at once for one account (`upstream.maxInFlightPerAccount`): asked before the
   * counters, so a request that will not be forwarded uses up no rate limit.
   */
  accountBusy?: (accountId: string) => boolean;
  /**
   * The last key presented on the request's connection and its digest (the gateway keeps
   * one per client connection): the same key again is not hashed again.
   */
  keyMemo?: KeyMemo;
  /**
   * The address of the peer the request came from (behind a trusted proxy, X-Forwarded-For
   * names the client): with `auth.unknownKeys`, its unknown keys are counted. Without it,
   * none are (they would all count against one address).
   */
  peer?: string | undefined;
}

export type Decision =
  | {
      allowed: false;
      denial: Denial;
      identity?: Identity;
      /** A key that was found but refused before its account was judged (revoked, expired, unbound): for logs. */
      key?: { id: string; accountId: string | null };
    }
  | {
      allowed: true;
      identity: Identity;
      route: RouteMatch;
      reservation?: Reservation;
      /** Rate-limit headers for the response, as `rateLimitHeaders` says (do not modify: may be shared). */
      headers: Readonly<Record<string, string>>;
      /** When the request was judged (the clock's ms): the time its usage and the key's last use are counted at. */
      at: number;
    };

/** Whether what the cache or store said is a key the credential names: one of another mode is unknown too. */
function isKey(found: CachedKey | null, mode: KeyMode | undefined): found is CachedKey {
  return found !== null && (mode === undefined || mode === found.key.mode);
}

/** The plan an account on a plan missing from the profile is judged by: no access at all. */
const NO_SUCH_PLAN: Plan = Object.freeze({ apiAccess: false, rateLimits: [], meters: {} });

function refuse(denial: Denial, identity?: Identity): Decision {
  return identity ? { allowed: false, denial, identity } : { allowed: false, denial };
}

export type Refusal = Extract<Decision, { allowed: false }>;

/**
 * The account whose daily usage counts a refusal that carries no identity: the owner of a
 * revoked or expired key, so it sees that something still sends one. (A refusal with an
 * identity counts against its account; an unbound key's account is gone.)
 */
export function refusedKeyOwner({ denial, key }: Refusal): string | undefined {
  if (key?.accountId == null) return undefined;
  return denial.reason === 'revoked_key' || denial.reason === 'expired_key' ? key.accountId : undefined;
}

/** A refusal of a key that exists: the log can say which key (and whose) was still in use. */
function refuseKey(denial: Denial, key: KeyRecord): Decision {
  return { allowed: false, denial, key: { id: key.id, accountId: key.accountId } };
}

export interface Pipeline {
  /**
   * Steps 1–7. Answered synchronously when nothing needs I/O (a cached key on in-memory
   * counters: the common case), so a warm request costs no promise; otherwise a promise.
   */
  authorize(request: GatewayRequest): Decision | Promise<Decision>;
  /** Steps 1–3 only: the key and its account, for the in-process verification benchmark. */
  identify(secret: string, now: number): CachedKey | null | undefined;
}

/**
 * How long a key's lookup in the store may take before the request is answered 503: well
 * past a healthy store's milliseconds, well short of PostgreSQL's 10 s query timeout.
 */
const KEY_LOOKUP_DEADLINE_MS = 2_000;

/** A key as the store holds it, with its account (null: none, or the key is unbound). */
interface StoredKey {
  key: KeyRecord | undefined;
  account: AccountRecord | null;
}

/** A backend is away: the client is told when to ask again (as the admin API tells its own). */
const OUTAGE = Object.freeze({ retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
/** Denials of a request that did present a credential (`error="invalid_token"`). */
const PRESENTED = Object.freeze({ credentialPresented: true });
/** A credential sent by another authentication scheme (a bare key where `Bearer` goes): no error code in the challenge. */
const OTHER_SCHEME = Object.freeze({ credentialPresented: false });
/** When a request refused for its account's requests in flight may try again (Retry-After, seconds). */
export const CONCURRENCY_RETRY_AFTER_S = 1;
/** For requests with nothing to advertise: one object, never written to. */
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** The records a request asks for cannot be read (see requestedRecords): the parameter that says how many. */
class UnreadableRecords {
  constructor(readonly parameter: string | undefined) {}
}

export function createPipeline(deps: PipelineDeps): Pipeline {
  const { config, keyFormat, hashKey, keyCache, store, counters, routes, limits, clock } = deps;
  /** Unknown keys per client address: undefined while `auth.unknownKeys` is off (the default). */
  const unknownKeys = config.auth.unknownKeys;
  const unknownKeyLimit = unknownKeys ? (deps.unknownKeyLimit ?? new UnknownKeyLimit()) : undefined;
  const fromTrustedProxy = unknownKeys ? trustedProxyCheck(config.trustedProxies) : undefined;
  /** The rate-limit headers answers carry (`rateLimitHeaders`): chosen here, not tested per request. */
  const rateLimitHeaders = rateLimitFields(config.rateLimitHeaders);
  /** What a connection's KeyMemo was filled in by: this pipeline (its key format and hasher). */
  const memoOwner = {};

  /**
   * Step 3 from the cache: undefined means "not cached, ask the store". The cache is
   * keyed by the digest itself, so a hit needs no further comparison.
   */
  function identify(secret: string, now: number): CachedKey | null | undefined {
    return keyCache.get(hashKey.digest(secret), now);
  }

  /**
   * Step 3 from the store, for a digest the cache does not hold. A store that does not
   * answer within KEY_LOOKUP_DEADLINE_MS is taken as unreachable (a hung PostgreSQL would
   * hold the request for its 10 s query timeout); its late answer is still cached.
   */
  async function fromStore(digest: KeyDigest, now: number): Promise<CachedKey | null> {
    const hash = hexOfDigest(digest);
    const generation = keyCache.generation;
    let found: StoredKey;
    const counts = deps.storeLookups;
    try {
      found = await withDeadline(lookUp(hash), KEY_LOOKUP_DEADLINE_MS, { what: 'the store', onLate: (late) => remember(digest, hash, late, clock(), generation) });
    } catch (error) {
      if (counts) counts.failed += 1;
      // The store is unreachable: a key seen before keeps working; a new one cannot.
      const stale = keyCache.stale(digest);
      if (stale) return stale;
      deps.onLookupFailed?.(error);
      throw error;
    }
    const entry = remember(digest, hash, found, now, generation);
    if (counts) {
      if (entry) counts.found += 1;
      else counts.unknown += 1;
    }
    return entry;
  }

  async function lookUp(hash: string): Promise<StoredKey> {
    const key = await store.findKeyByHash(hash);
    const account = key && key.accountId !== null ? ((await store.getAccount(key.accountId)) ?? null) : null;
    return { key, account };
  }

  /**
   * What the store said of a digest: the key and its account, or null for none; cached
   * unless the cache dropped anything since the lookup began (`generation`, taken then).
   * The lookup may have read the key before a revocation whose message came while it ran:
   * cached, that would stand for keyCacheTtl. The request that asked is answered by it
   * (it was sent before the revocation was heard); the next one looks again.
   */
  function remember(digest: KeyDigest, hash: string, { key, account }: StoredKey, now: number, generation: number): CachedKey | null {
    const current = keyCache.generation === generation;
    if (!key || !sameDigest(key.hash, hash)) {
      if (current) keyCache.set(digest, null, now);
      return null;
    }
    const entry = { key, account };
    if (current) keyCache.set(digest, entry, now);
    deps.onKeyFound?.();
    return entry;
  }

  function authorize(request: GatewayRequest): Decision | Promise<Decision> {
    const now = clock();

    // 1. The credential, from the configured places → missing_key. The one its connection
    //    presented last, as this pipeline found it, is not read, checked or hashed again.
    const memo = request.keyMemo?.of(memoOwner);
    const credential = extractCredential(request, config.auth.credentials, memo);
    if (credential.kind === 'missing') return refuse(deny('missing_key'));
    // Sent by another scheme, it is no bearer token at all: challenged without invalid_token.
    if (credential.kind === 'malformed') return refuse(deny('malformed_key', credential.otherScheme ? OTHER_SCHEME : PRESENTED));

    // 2. Its shape (prefix and length) → malformed_key. Nothing longer is hashed.
    const secret = credential.secret;
    let mode: KeyMode | undefined;
    let digest: KeyDigest;
    // The same header value as before (extractCredential answered with what it found then), or the same key from the query.
    if (memo !== undefined && (credential === memo.found || (credential.sent === undefined && memo.found?.location === credential.location && memo.holds(secret)))) {
      mode = memo.mode;
      digest = memo.digest;
    } else {
      const shape = keyFormat.shape(secret);
      if (!shape.ok) return refuse(deny('malformed_key', PRESENTED));
      mode = shape.mode;
      digest = hashKey.digest(secret);
      request.keyMemo?.remember(memoOwner, credential, mode, digest);
    }

    // 3. The key itself, from the cache or else the store → unknown_key, ...
    if (store.changedElsewhere?.()) keyCache.clear('store_file');
    const cached = keyCache.get(digest, now);
    // A key the cache holds (one in use) is judged as usual from any address: many clients share one.
    if (cached) return check(request, mode, cached, now);
    if (unknownKeyLimit !== undefined && request.peer !== undefined) return guessed(request, secret, mode, digest, cached, now, unknownKeyLimit);
    if (cached === null) return check(request, mode, cached, now);
    // 2 (continued). Its alphabet and checksum, before the store is asked → malformed_key.
    // A cached key needs neither: the cache only ever holds the digests of keys that
    // passed them on their way here, so a string that would fail them is never found in it.
    if (!keyFormat.check(secret).ok) return refuse(deny('malformed_key', PRESENTED));
    return fromStore(digest, now).then(
      (found) => check(request, mode, found, now),
      () => refuse(deny('service_unavailable', OUTAGE)),
    );
  }

  /**
   * Steps 2 (continued) and 3 for a key not cached as valid, with `auth.unknownKeys`: from
   * a client address blocked for its unknown keys → too_many_failures, without a store lookup (but for a
   * key this process had cached as valid, whose entry has expired: it is looked up, as
   * keys in use are); otherwise as `authorize` goes on, each unknown key counted against
   * the address.
   */
  function guessed(request: GatewayRequest, secret: string, mode: KeyMode | undefined, digest: KeyDigest, cached: null | undefined, now: number, limit: UnknownKeyCount): Decision | Promise<Decision> {
    // As `authorize` goes on: a malformed key is that, blocked or not (it costs no lookup).
    if (cached === undefined && !keyFormat.check(secret).ok) return refuse(deny('malformed_key', PRESENTED));
    const address = addressGroup(clientAddress(request.peer, request.headers['x-forwarded-for'], fromTrustedProxy));
    const waitMs = limit.blockedFor(address, now);
    if (waitMs > 0 && keyCache.stale(digest) === undefined) return refuse(deny('too_many_failures', { retryAfterSeconds: waitMs / 1000 }));
    const counted = (found: CachedKey | null): Decision | Promise<Decision> => {
      if (isKey(found, mode)) return check(request, mode, found, now);
      const started = limit.fail(address, now, unknownKeys as UnknownKeyPolicy);
      if (!(started instanceof Promise)) {
        if (started) deps.onAddressBlocked?.(started);
        return check(request, mode, found, now);
      }
      // Counted in Redis, which may answer that another process blocked the address already.
      return started.then((block) => {
        if (block) deps.onAddressBlocked?.(block);
        const blockedMs = block ? 0 : limit.blockedFor(address, now);
        return blockedMs > 0 ? refuse(deny('too_many_failures', { retryAfterSeconds: blockedMs / 1000 })) : check(request, mode, found, now);
      });
    };
    if (cached === null) return counted(null);
    return fromStore(digest, now).then(counted, () => refuse(deny('service_unavailable', OUTAGE)));
  }

  /** Steps 3 (continued) to 7, for the key the credential names (or null if none). */
  function check(request: GatewayRequest, mode: KeyMode | undefined, found: CachedKey | null, now: number): Decision | Promise<Decision> {
    // ... revoked_key, expired_key.
    if (!found || (mode !== undefined && mode !== found.key.mode)) return refuse(deny('unknown_key', PRESENTED));
    const { key, account } = found;
    if (key.revokedAt !== null && key.revokedAt <= now) return refuseKey(deny('revoked_key', PRESENTED), key);
    if (key.expiresAt !== null && key.expiresAt <= now) return refuseKey(deny('expired_key', PRESENTED), key);

    // 4. Its account and the account's plan → key_not_bound, api_disabled, plan_expired.
    if (!account) return refuseKey(deny('key_not_bound', PRESENTED), key);
    const route = routes.match(request.method, request.path);
    // 4–5 and the windows of 6 depend on the key, its account and the route alone (and on
    // the profile: a reload brings another pipeline), so a key's next request on the same
    // route takes them as judged before; only what changes with the time is asked again.
    const before = judgedKeys.get(found);
    const judged = before !== undefined && before.route === route ? before : judge(request, found, key, account, route, now);
    if (!(judged instanceof Judged)) return judged;
    const { plan } = judged;
    // A new identity per request, as before: the library hands it to its caller.
    const identity: Identity = { key, account, planId: account.planId, plan };
    if (!judged.readsAccountState && account.planExpiresAt !== null && account.planExpiresAt <= now) return refuse(deny('plan_expired'), identity);

    // 6–7. Blocks and rate limits (all windows or none), then the cost reservation
    //      → blocked, rate_limited, insufficient_funds. One counters call.
    const { rateLimits } = judged;
    const admit: AdmitRequest = { now, windows: judged.windows };
    if (judged.block) admit.block = judged.block;
    const kept = judged.charge;
    const charge = kept !== undefined && now >= kept.startsAt && now < kept.endsAt ? kept.spec : chargeFor(judged, identity, request.method, request.url, now);
    if (charge instanceof UnreadableRecords) return refuse(deny('invalid_parameter', charge.parameter === undefined ? {} : { fill: { parameter: charge.parameter } }), identity);
    if (charge) admit.charge = charge;
    // 6 (before the counters). The account's requests in flight in this process →
    // concurrency_limited: a request that will not be forwarded neither counts towards
    // the rate limits nor brings a block nearer.
    if (judged.route.kind === 'proxy' && request.accountBusy?.(account.id) === true) return refuse(deny('concurrency_limited', { retryAfterSeconds: CONCURRENCY_RETRY_AFTER_S }), identity);
    // A backend that needs no I/O answers at once, sparing the request a promise.
    if (counters.admitNow) return admitted(identity, judged.route, rateLimits, counters.admitNow(admit), charge, now);
    return counters.admit(admit).then((admission) => admitted(identity, judged.route, rateLimits, admission, charge, now), (error: unknown) => {
      if (error instanceof CountersUnavailableError) return refuse(deny('service_unavailable', OUTAGE), identity);
      throw error;
    });
  }

  /**
   * Steps 4–5 for a key with an account, and its rate-limit windows (6): a refusal, or what
   * the key's next requests on this route can take as it is (judgedKeys).
   */
  function judge(request: GatewayRequest, found: CachedKey, key: KeyRecord, account: AccountRecord, route: RouteMatch | undefined, now: number): Judged | Decision {
    // The account's own limits in place of its plan's, resolved here, once per cached key
    // and route: an account change drops its keys from the cache, so the next request is
    // judged again with the new ones.
    const configured = config.plans[account.planId];
    const plan = configured && effectivePlan(configured, account.limits);
    // A plan the profile no longer defines gives no access; the refusal is still the key's and account's (logs, usage).
    const identity: Identity = { key, account, planId: account.planId, plan: plan ?? NO_SUCH_PLAN };
    const readsAccountState = route?.kind === 'builtin' && route.builtin.allowWhenApiDisabled;
    if (!plan) return refuse(deny('api_disabled'), identity);
    if (!readsAccountState) {
      if (!plan.apiAccess || !account.apiAccess) return refuse(deny('api_disabled'), identity);
      if (account.planExpiresAt !== null && account.planExpiresAt <= now) return refuse(deny('plan_expired'), identity);
    }

    // 5. The route and the key's scopes → no_route (method_not_allowed when the path is
    //    known under other methods, which `Allow` lists), insufficient_scope.
    if (!route) {
      const allow = routes.methodsAt(request.path);
      return refuse(allow.length > 0 ? deny('method_not_allowed', { headers: { allow: allow.join(', ') } }) : deny('no_route'), identity);
    }
    const required = route.kind === 'proxy' ? route.route.scopes : route.builtin.scopes;
    // The key's scopes, within what its plan allows now (a plan change narrows old keys).
    if (!hasScopes(key.scopes, required) || (plan.scopes && !hasScopes(plan.scopes, required))) {
      const lacking = required.filter((scope) => !hasScopes(key.scopes, [scope]) || (plan.scopes && !hasScopes(plan.scopes, [scope])));
      return refuse(deny('insufficient_scope', { fill: { scopes: lacking.join(SCOPE_LIST_SEPARATOR) } }), identity);
    }
    // An account with its own windows has its own entry (its limits and names), counted as the plan's windows of the same length and scope;
    // a key with its own has one more, its windows after the account's (counted apart from them: limits/key-windows.ts).
    const planKey = keyWindowsPlanKey(rateLimitPlanKey(account.planId, account.limits), key.rateLimits);
    const rateLimits = limits.plan(planKey, plan, route.name, route.kind === 'proxy' ? route.route : undefined, key.rateLimits);
    const block = plan.block ? { id: plan.block.scope === 'account' ? accountBlockId(account.id) : keyBlockId(key.id), policy: plan.block } : undefined;
    const judged = new Judged(route, plan, Boolean(readsAccountState), rateLimits, windowsFor(rateLimits, key.id, account.id), block);
    judgedKeys.set(found, judged);
    return judged;
  }

  /** The counters' answer as a decision; 8–9 (forward, settle) belong to the gateway. */
  function admitted(identity: Identity, route: RouteMatch, rateLimits: RateLimitPlan, admission: Admission, charge: ChargeSpec | undefined, now: number): Decision {
    // While blocked nothing is admitted, whatever room the windows have: the RateLimit
    // field says so, r=0 until Retry-After (the block's end, or when the window used up
    // longest has room, if later: every window has room by then).
    const windows =
      !admission.ok && admission.reason === 'blocked'
        ? admission.windows.map((w) => ({ ...w, remaining: 0, resetMs: admission.retryAfterMs }))
        : admission.windows;
    const headers = rateLimits.policyHeader === undefined ? NO_HEADERS : rateLimitHeaders(rateLimits, windows);
    if (!admission.ok) {
      if (admission.reason === 'insufficient_funds') {
        const meterNotInPlan = charge !== undefined && identity.plan.meters[charge.meter] === undefined;
        return refuse(deny('insufficient_funds', { headers, ...(charge ? { fill: fundsFill(identity, charge, now) } : {}), ...(meterNotInPlan ? { meterNotInPlan } : {}) }), identity);
      }
      if (admission.reason === 'blocked' && admission.started) deps.onBlockStarted?.(admission.started, identity);
      if (admission.reason === 'blocked' && identity.plan.block?.scope === 'account') return refuse(deny('blocked', { headers, retryAfterSeconds: admission.retryAfterMs / 1000, accountBlocked: true }), identity);
      return refuse(deny(admission.reason, { headers, retryAfterSeconds: admission.retryAfterMs / 1000 }), identity);
    }
    return { allowed: true, identity, route, headers, reservation: admission.reservation, at: now };
  }

  /** What an insufficient_funds message may say: the meter, its limit, and the day its period starts afresh. */
  function fundsFill(identity: Identity, charge: ChargeSpec, now: number): Record<string, string> {
    const period = identity.plan.meters[charge.meter]?.period ?? 'month';
    return { meter: charge.meter, limit: String(charge.limit), resets: isoDay(currentPeriod(period, now).endsAt) };
  }

  /**
   * What the request is charged. A flat (per-request) cost's charge depends on nothing of
   * the request but the meter's period: it is kept with `judged` until the period ends.
   */
  function chargeFor(judged: Judged, identity: Identity, method: string, url: string, now: number): ChargeSpec | UnreadableRecords | undefined {
    const route = judged.route;
    if (route.kind !== 'proxy' || !route.route.cost) return undefined;
    const cost = route.route.cost;
    const amount = reserveAmount(cost, method, url);
    if (amount === undefined) return new UnreadableRecords(cost.reserveFromQuery);
    if (amount <= 0) return undefined;
    const meter = identity.plan.meters[cost.meter];
    // A plan without the route's meter has nothing to spend on it.
    const limit = meter?.limit ?? 0;
    const overage = meter ? overageAllowed(identity.plan, cost.meter, identity.account) : false;
    const untilZero = !overage && meter?.admit === 'untilZero';
    const period = currentPeriod(meter?.period ?? 'month', now);
    const spec: ChargeSpec = {
      accountId: identity.account.id,
      meter: cost.meter,
      periodStart: period.start,
      amount,
      limit,
      overage,
      untilZero,
      // A per-request cost is what a 2xx is charged: committed now, given back otherwise
      // (but for the request that reaches zero, which the counters reserve, capped).
      final: cost.perRequest !== undefined,
    };
    // Shared by the key's requests on this route in this period: the counters only read it.
    if (cost.perRequest !== undefined) judged.charge = { spec, startsAt: period.startsAt, endsAt: period.endsAt };
    return spec;
  }

  /**
   * What `check` worked out for each cached key (its last route): held by this pipeline,
   * not by the cache the pipelines of successive reloads share, and dropped with the key's
   * entry (a key found again in the store has a new one).
   */
  const judgedKeys = new WeakMap<CachedKey, Judged>();

  /** The current period of each meter period in use, recomputed only once `now` leaves it. */
  const currentPeriods = new Map<MeterPeriod, PeriodBounds>();
  function currentPeriod(period: MeterPeriod, now: number): PeriodBounds {
    let bounds = currentPeriods.get(period);
    if (!bounds || now < bounds.startsAt || now >= bounds.endsAt) {
      bounds = periodBounds(period, now);
      currentPeriods.set(period, bounds);
    }
    return bounds;
  }

  return { authorize, identify };
}

/**
 * What a pipeline worked out for a key (its cache entry) and a route, all of which passed:
 * the plan, whether the route reads the account's state (a disabled API or an expired plan
 * does not stop it), and the rate-limit windows and block the counters are asked about.
 */
class Judged {
  constructor(
    readonly route: RouteMatch,
    readonly plan: Plan,
    readonly readsAccountState: boolean,
    readonly rateLimits: RateLimitPlan,
    readonly windows: readonly WindowSpec[],
    readonly block: AdmitRequest['block'],
  ) {}

  /** The route's flat charge for the meter's current period (see chargeFor), once made. */
  charge: { spec: ChargeSpec; startsAt: number; endsAt: number } | undefined = undefined;
}
