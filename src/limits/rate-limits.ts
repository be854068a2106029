/**
 * Which rate-limit windows apply to a request (the plan's, the route's, then the key's own), each
 * keyed per key or per account, and how they are advertised in the IETF RateLimit
 * fields (draft-ietf-httpapi-ratelimit-headers-10):
 *
 *   RateLimit-Policy: "5-per-1s";q=5;w=1, "1000-per-1h";q=1000;w=3600
 *   RateLimit: "5-per-1s";r=4;t=1, "1000-per-1h";r=999;t=3600
 *
 * or as the profile's `rateLimitHeaders` says instead (Kong's headers: kong-headers.ts).
 */
import type { Plan, RateLimit, RateLimitHeaderStyle, Route } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import type { WindowSpec, WindowState } from '../counters/counters.js';
import { flatString } from '../flat-string.js';
import { addKongHeaders, kongPairs } from './kong-headers.js';

interface WindowTemplate {
  name: string;
  limit: number;
  windowMs: number;
  scope: RateLimit['scope'];
  /** Distinguishes route windows from plan windows with the same shape. */
  tag: string;
  /** The window's counter identity after its subject (see `counterIds`). */
  counter: string;
}

export interface RateLimitPlan {
  templates: WindowTemplate[];
  /** The RateLimit-Policy header value, fixed for a plan and route. */
  policyHeader: string | undefined;
  /** Key id → its windows (and the account they were made for): one list per key, reused. */
  windowsByKey: Map<string, { accountId: string; windows: readonly WindowSpec[] }>;
  /** Kong's header pairs (kong-headers.ts), made the first time a profile asks for them. */
  kongPairs?: ReturnType<typeof kongPairs>;
  /** Each window's part of the RateLimit value before its `r`: `"5-per-1s";r=`, then `, "1000-per-1h";r=` (made once, see rateLimitHeaders). */
  stateParts?: string[];
}

/** Keys whose windows a plan/route pair keeps at most (they are rebuilt when dropped). */
const MAX_KEYS_PER_PLAN = 100_000;

/**
 * Sets of windows the planner keeps at most: one per plan, per account with limits of its
 * own, and per key with windows of its own (each a planner key: keyWindowsPlanKey). Past
 * it, all are dropped and rebuilt as they are asked for, so many keys with windows all
 * different cannot grow it without end.
 */
export const MAX_PLANS_KEPT = 10_000;

const NO_WINDOWS: readonly WindowSpec[] = Object.freeze([]);
const NO_KEY_WINDOWS: readonly RateLimit[] = Object.freeze([]);

/**
 * Where a key's own windows are declared, as a counter's tag: `k:<key>:w1000:key` is
 * apart from the plan's `k:<key>:w1000:plan` of the same length (a key's 2-per-1s does
 * not count the plan's 5-per-1s admissions twice, nor share them). A route's tag is its
 * method and path (`GET /x`, with a space): never this.
 */
const KEY_TAG = 'key';

/**
 * A key's own window's name in the RateLimit fields: `key-2-per-1s` (or `key-<its name>`),
 * the same whatever its plan's windows are called, and apart from them.
 */
export function keyWindowName(rl: Pick<RateLimit, 'name' | 'limit' | 'window'>): string {
  return `key-${policyName(rl)}`;
}

/** Builds (and caches) the windows of a plan/route pair. */
export function createRateLimitPlanner() {
  // Plan id → route id → windows; two lookups instead of a new joined key per request.
  const cache = new Map<string, Map<string, RateLimitPlan>>();
  return {
    /**
     * `keyWindows`: the key's own windows, after the plan's and the route's (all windows
     * or none); `planId` must then tell them apart (see keyWindowsPlanKey).
     */
    plan(planId: string, plan: Plan, routeName: string, route: Route | undefined, keyWindows: readonly RateLimit[] = NO_KEY_WINDOWS): RateLimitPlan {
      let byRoute = cache.get(planId);
      if (!byRoute) {
        if (cache.size >= MAX_PLANS_KEPT) cache.clear();
        byRoute = new Map();
        cache.set(planId, byRoute);
      }
      let found = byRoute.get(routeName);
      if (!found) {
        const templates = counterIds(
          namedOnce([
            ...plan.rateLimits.map((rl) => template(rl, 'plan')),
            ...(route?.rateLimits ?? []).map((rl) => template(rl, routeName)),
            ...keyWindows.map((rl) => ({ ...template(rl, KEY_TAG), name: keyWindowName(rl) })),
          ]),
        );
        found = { templates, policyHeader: policyHeader(templates), windowsByKey: new Map() };
        byRoute.set(routeName, found);
      }
      return found;
    },
  };
}

/**
 * The concrete windows for one key: ids are stable across processes (for Redis). The
 * same list comes back for the same key, so counters can keep what they derive from it.
 */
export function windowsFor(plan: RateLimitPlan, keyId: string, accountId: string): readonly WindowSpec[] {
  if (plan.templates.length === 0) return NO_WINDOWS;
  const cached = plan.windowsByKey.get(keyId);
  if (cached && cached.accountId === accountId) return cached.windows;
  const windows = Object.freeze(
    plan.templates.map((t) => ({
      // The tag last: a route's (its method and path) may hold any character. Kept for as
      // long as the key is in use (here and by the counters): in one piece.
      id: flatString(`${t.scope === 'account' ? `a:${accountId}` : `k:${keyId}`}:${t.counter}`),
      name: t.name,
      limit: t.limit,
      windowMs: t.windowMs,
    })),
  );
  if (plan.windowsByKey.size >= MAX_KEYS_PER_PLAN) plan.windowsByKey.clear();
  plan.windowsByKey.set(keyId, { accountId, windows });
  return windows;
}

export function policyName(rl: Pick<RateLimit, 'name' | 'limit' | 'window'>): string {
  return rl.name ?? `${rl.limit}-per-${formatDuration(rl.window)}`;
}

/** A window as declared, before its counter id (see counterIds). */
type DeclaredWindow = Omit<WindowTemplate, 'counter'>;

function template(rl: RateLimit, tag: string): DeclaredWindow {
  return { name: policyName(rl), limit: rl.limit, windowMs: rl.window, scope: rl.scope, tag };
}

/**
 * What counts a window's admissions, after its subject (`k:<key>:` or `a:<account>:`):
 * its length and where it is declared (the plan, a route, or the key itself: `key`), not its limit. A limit
 * changed by a reload, or by an account's own limits in place of its plan's, is a new
 * threshold on the same admissions: lowered below what the last hour held, the key
 * waits; raised, it gets only the difference. A changed length is another window, which
 * starts empty. Of several windows of one length, scope and place (refused since in a
 * profile and in an account's own list, but an account may have saved them before; see
 * limits/repeated-windows.ts), the second is `#2`, and so on in their order.
 *
 * `w` marks the length, so a window saved under the previous form
 * (`<length>:<limit>:<tag>`, see `upgradedWindowId`) is never read as one of these.
 *
 * @example counterIds([10-per-1s, 100-per-1m] on the plan) → counters `w1000:plan`, `w60000:plan`
 */
function counterIds(templates: DeclaredWindow[]): WindowTemplate[] {
  const seen = new Map<string, number>();
  return templates.map((t) => {
    const place = `${t.scope}:${t.windowMs}:${t.tag}`;
    const nth = (seen.get(place) ?? 0) + 1;
    seen.set(place, nth);
    return { ...t, counter: `w${t.windowMs}${nth === 1 ? '' : `#${nth}`}:${t.tag}` };
  });
}

/**
 * The windows with a name each of their own: a client reads the RateLimit fields by name,
 * and two windows of one name (a per-key and a per-account window of one shape both
 * default to "10-per-1s"; a profile may give two windows one name) could not be told
 * apart, nor their blocks in the metrics. A later window whose name is taken is
 * "<name>-account" where that tells it apart, else "<name>-2", "-3"... Names are only
 * shown: counters are keyed by each window's length, scope and place (see counterIds).
 */
function namedOnce(templates: DeclaredWindow[]): DeclaredWindow[] {
  const names = windowNames(templates);
  return templates.map((t, i) => (names[i] === t.name ? t : { ...t, name: names[i] as string }));
}

/** The names a plan's windows (then a route's) go by in the RateLimit fields, each once (see namedOnce). */
export function windowNames(windows: readonly { name: string; scope: RateLimit['scope'] }[]): string[] {
  const taken = new Set<string>();
  return windows.map(({ name: given, scope }) => {
    let name = given;
    if (taken.has(name) && scope === 'account' && !taken.has(`${name}-account`)) name = `${name}-account`;
    for (let n = 2; taken.has(name); n++) name = `${given}-${n}`;
    taken.add(name);
    return name;
  });
}

function policyHeader(templates: readonly WindowTemplate[]): string | undefined {
  if (templates.length === 0) return undefined;
  return templates.map((t) => `"${t.name}";q=${t.limit};w=${Math.max(1, Math.ceil(t.windowMs / 1000))}`).join(', ');
}

/** The RateLimit header value for the windows' current state. */
export function rateLimitHeader(windows: readonly WindowState[]): string | undefined {
  if (windows.length === 0) return undefined;
  // On every response of a limited route: one string built, no list or closure.
  let value = '';
  for (const w of windows) value += `${value === '' ? '' : ', '}"${w.name}";r=${w.remaining};t=${Math.ceil(w.resetMs / 1000)}`;
  return value;
}

export function rateLimitHeaders(plan: RateLimitPlan, windows: readonly WindowState[]): Record<string, string> {
  const value = planStateHeader(plan, windows) ?? rateLimitHeader(windows);
  if (!plan.policyHeader || value === undefined) return {};
  return { 'ratelimit-policy': plan.policyHeader, ratelimit: value };
}

/**
 * rateLimitHeader's value for the plan's own windows (each named as its template, in
 * order: what the counters answer), from parts made once per plan: a request's value is
 * then its numbers and the parts between them. Undefined for any other list.
 */
function planStateHeader(plan: RateLimitPlan, windows: readonly WindowState[]): string | undefined {
  const templates = plan.templates;
  if (windows.length === 0 || windows.length !== templates.length) return undefined;
  const parts = (plan.stateParts ??= templates.map((t, i) => `${i === 0 ? '' : ', '}"${t.name}";r=`));
  let value = '';
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i] as WindowState;
    if (w.name !== (templates[i] as WindowTemplate).name) return undefined;
    value += (parts[i] as string) + w.remaining + ';t=' + Math.ceil(w.resetMs / 1000);
  }
  return value;
}

/** The rate-limit fields of one answer: the windows' current state, as `rateLimitHeaders` says. */
export type RateLimitFields = (plan: RateLimitPlan, windows: readonly WindowState[]) => Record<string, string>;

const NO_FIELDS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function kongFields(plan: RateLimitPlan, windows: readonly WindowState[], out: Record<string, string> = {}): Record<string, string> {
  if (windows.length === 0) return out;
  plan.kongPairs ??= kongPairs(plan.templates);
  return addKongHeaders(out, plan.kongPairs, windows);
}

/**
 * How answers advertise their windows (the profile's `rateLimitHeaders`), chosen once per
 * profile: the default, the IETF fields, is `rateLimitHeaders` itself, at no cost per request.
 */
export function rateLimitFields(style: RateLimitHeaderStyle): RateLimitFields {
  switch (style) {
    case 'ietf':
      return rateLimitHeaders;
    case 'kong':
      return (plan, windows) => kongFields(plan, windows);
    case 'both':
      return (plan, windows) => kongFields(plan, windows, rateLimitHeaders(plan, windows));
    case 'none':
      return () => NO_FIELDS;
  }
}
