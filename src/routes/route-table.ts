/**
 * Matching a request to the profile's routes (and built-in endpoints) with find-my-way,
 * Fastify's router: static segments beat `:params`, which beat `*` wildcards, whatever
 * order the file lists them in. A route with `method: "*"` answers every method no more
 * specific route claims. HEAD is GET without the body (RFC 9110 §9.3.2): a GET route
 * answers HEAD too, with its scopes and limits, unless a route declares HEAD itself.
 */
import FindMyWay from 'find-my-way';
import type { Builtin, Config, Cost, RateLimit, Route } from '../config/schema.js';
import { escapedByte } from '../gateway/percent.js';
import { andList, orList } from '../list-words.js';

/** The methods a route can name, and the gateway forwards (any other is no route's). */
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type Method = (typeof ROUTE_METHODS)[number];
const KNOWN_METHODS: ReadonlySet<string> = new Set(ROUTE_METHODS);

/**
 * `id` is the route's place in the profile (`routes[2]`); `name` is the route as declared
 * (`GET /v1/items/:id`), which its rate-limit windows are counted under, so that they
 * keep counting when a reload moves the route in the list.
 */
export type RouteMatch = { kind: 'proxy'; id: string; name: string; route: Route } | { kind: 'builtin'; id: string; name: string; builtin: Builtin };

export interface RouteTable {
  match(method: string, path: string): RouteMatch | undefined;
  /** The methods some route accepts at `path` (empty if none does): asked only once `match` has failed. */
  methodsAt(path: string): string[];
  /**
   * Whether every route and built-in requires a scope: a key given none could call
   * nothing (every request `insufficient_scope`), so keys are not made without one.
   */
  readonly scopedOnly: boolean;
}

/** A route the table cannot take (declared twice, or a pattern the router refuses); `at` is its place in the profile. */
export class RouteTableError extends Error {
  constructor(
    message: string,
    readonly at: ['routes' | 'builtins', number],
  ) {
    super(message);
    this.name = 'RouteTableError';
  }
}

/**
 * No limit on a `:param`'s length (find-my-way's default is 100): past it a segment no
 * longer matches its route, and a broader one (`/v1/*`) would judge the request, with its
 * scopes and cost, while the upstream serves it as the specific one. The request head's
 * size (listen.maxHeaderSize) bounds it instead.
 */
const ANY_PARAM_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * `caseSensitive: false` (upstream.caseSensitivePaths) for an API that does not tell paths
 * apart by case: a request is judged by the route the API serves it as, whatever the case
 * of its letters (else `/v1/ADMIN` would pass under `/v1/*`'s scopes and cost, and be
 * served as `/v1/admin`). Two routes that differ only in case are then one route declared twice.
 */
export function createRouteTable(routes: readonly Route[], builtins: readonly Builtin[], options: { caseSensitive?: boolean } = {}): RouteTable {
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: options.caseSensitive ?? true, maxParamLength: ANY_PARAM_LENGTH });
  const noop = () => undefined;
  const caseOf = options.caseSensitive === false ? (path: string) => path.toLowerCase() : (path: string) => path;
  /** The paths (parameter names left out: `/v1/:a` is `/v1/:b`) that a route for every method has taken. */
  const takenByAnyMethod = new Set<string>();
  /** Whether `path` is taken for `m`; a pattern the router cannot read is named (asking throws as adding does). */
  const taken = (m: Method, path: string, target: RouteMatch): boolean => {
    try {
      return router.hasRoute(m, path) || router.hasRoute(m, path.replace(/(.)\/$/, '$1'));
    } catch (error) {
      throw new RouteTableError(`not a path pattern the router takes: ${(error as Error).message}`, placeOf(target));
    }
  };
  const add = (method: string, path: string, target: RouteMatch) => {
    const methods: Method[] = method === '*' ? [...ROUTE_METHODS] : [method as Method];
    // `::` is a colon itself (find-my-way's escape), not a parameter.
    const shape = caseOf(path.replace(/(.)\/$/, '$1').replace(/::/g, '\0').replace(/:[A-Za-z0-9_]+/g, ':'));
    if (method === '*' && takenByAnyMethod.has(shape)) throw new RouteTableError(`${path} is declared twice for every method (the first would win; the second's scopes and cost would never apply)`, placeOf(target));
    if (method === '*') takenByAnyMethod.add(shape);
    for (const m of methods) {
      // A trailing slash makes no difference (ignoreTrailingSlash).
      if (taken(m, path, target)) {
        if (method === '*') continue; // a specific route or a builtin already owns it
        throw new RouteTableError(`${m} ${path} is declared twice`, placeOf(target));
      }
      try {
        router.on(m, path, noop, target);
      } catch (error) {
        throw new RouteTableError(`not a path pattern the router takes: ${(error as Error).message}`, placeOf(target));
      }
    }
  };
  const targets: { method: string; path: string; target: RouteMatch }[] = [
    ...builtins.map((builtin, i) => ({ method: builtin.method, path: builtin.path, target: { kind: 'builtin' as const, id: `builtin[${i}]`, name: `builtin ${builtin.method} ${builtin.path}`, builtin } })),
    ...routes.map((route, i) => ({ method: route.method, path: route.path, target: { kind: 'proxy' as const, id: `routes[${i}]`, name: `${route.method} ${route.path}`, route } })),
  ];
  const specific = targets.filter((t) => t.method !== '*');
  // Specific methods first, then HEAD for the GET routes that have none (before a `*`
  // route could claim it with other scopes), and `*` fills the methods left over.
  for (const { method, path, target } of specific) add(method, path, target);
  for (const { method, path, target } of specific) if (method === 'GET' && !taken('HEAD', path, target)) router.on('HEAD', path, noop, target);
  for (const { method, path, target } of targets) if (method === '*') add(method, path, target);
  router.compile?.();

  // The last request's method and path and what they matched: a client calls the same
  // endpoint again and again, and the router's lookup costs more than comparing a path.
  let lastMethod: string | undefined;
  let lastPath: string | undefined;
  let lastMatch: RouteMatch | undefined;
  return {
    // A table without routes answers no request, with scopes or without: not a reason to ask for one.
    scopedOnly: targets.length > 0 && targets.every(({ target }) => (target.kind === 'proxy' ? target.route.scopes : target.builtin.scopes).length > 0),
    match(method, path) {
      if (path === lastPath && method === lastMethod) return lastMatch;
      if (!KNOWN_METHODS.has(method)) return undefined;
      // The route itself, not a copy: matching runs on every request.
      const found = (router.find(method as Method, matchedPath(path))?.store as RouteMatch | undefined) ?? undefined;
      lastMethod = method;
      lastPath = path;
      lastMatch = found;
      return found;
    },
    methodsAt(path) {
      const matched = matchedPath(path);
      return ROUTE_METHODS.filter((method) => router.find(method, matched) !== null);
    },
  };
}

/** A profile's route table: its routes and built-ins, matched as its upstream tells paths apart. */
export function profileRouteTable(profile: Pick<Config, 'routes' | 'builtins' | 'upstream'>): RouteTable {
  return createRouteTable(profile.routes, profile.builtins, { caseSensitive: profile.upstream.caseSensitivePaths });
}

function placeOf(target: RouteMatch): ['routes' | 'builtins', number] {
  return [target.kind === 'proxy' ? 'routes' : 'builtins', Number(/\[(\d+)\]/.exec(target.id)?.[1])];
}

/**
 * A route that requires scopes for one method, whose paths other methods reach through a
 * broader route that does not require them: `GET /v1/admin/*` with `admin:read` beside
 * `/v1/*` lets a DELETE to /v1/admin/users through with any key. Legitimate (routes match
 * by method, as documented), but rarely meant: start-up and `keygate check` say so.
 */
export interface ScopeGap {
  /** The scoped route: `routes[3]`, and as declared, `GET /v1/admin/*`. */
  route: { id: string; name: string; scopes: readonly string[] };
  /** The methods that change data (POST, PUT, PATCH, DELETE) that reach its paths through `via`. */
  methods: string[];
  via: { id: string; name: string };
}

/**
 * The methods a scope gap is looked for with: those that change data. Reads left open
 * beside a scoped write (`GET` open, `POST` needing `reports:write`) are the usual design.
 */
const GAP_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * The scope gaps of a profile's routes (see ScopeGap), found with the table itself: each
 * scoped route's pattern is matched as a path (parameters and wildcards as one segment) with
 * every other method, so that what is reported is what requests would meet.
 */
export function scopeGaps(table: RouteTable, routes: readonly Route[]): ScopeGap[] {
  const gaps: ScopeGap[] = [];
  /** Paths already reported with the route they fall to: `POST` and `PUT /v1/reports/:id` share one gap. */
  const reported = new Set<string>();
  routes.forEach((route, i) => {
    if (route.method === '*' || route.scopes.length === 0) return;
    const id = `routes[${i}]`;
    const sample = samplePath(route.path);
    if (table.match(route.method, sample)?.id !== id) return;
    const byVia = new Map<string, ScopeGap>();
    for (const method of GAP_METHODS) {
      if (method === route.method) continue;
      const other = table.match(method, sample);
      if (other?.kind !== 'proxy' || route.scopes.every((scope) => other.route.scopes.includes(scope))) continue;
      // That method declared by a route of its own on the same path (GET /v1/projects with
      // projects:read beside POST /v1/projects with projects:write; parameters may be named
      // otherwise): its scopes were chosen for it, nothing falls through to a broader route.
      if (other.route.method === method && samplePath(other.route.path) === sample) continue;
      if (reported.has(`${method} ${sample} ${other.id}`)) continue;
      reported.add(`${method} ${sample} ${other.id}`);
      let gap = byVia.get(other.id);
      if (!gap) byVia.set(other.id, (gap = { route: { id, name: `${route.method} ${route.path}`, scopes: route.scopes }, methods: [], via: { id: other.id, name: other.route.method === '*' ? other.route.path : other.name } }));
      gap.methods.push(method);
    }
    gaps.push(...byVia.values());
  });
  return gaps;
}

/**
 * A route's pattern as a path it matches: `::` is a colon of the path; `:name` (with any
 * pattern after it) and `*` stand for one segment. Two patterns that match the same paths
 * but for the names of their parameters give the same sample.
 */
function samplePath(pattern: string): string {
  return pattern.replace(/::/g, '\0').replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, 'x').replace(/\*/g, 'x').replace(/\0/g, ':');
}

/** A scope gap in words, for the log and `keygate check`. */
export function describeScopeGap({ route, methods, via }: ScopeGap): string {
  const scopes = `the scope${route.scopes.length === 1 ? '' : 's'} ${andList(route.scopes)}`;
  const them = route.scopes.length === 1 ? 'it' : 'them';
  return `${route.id} (${route.name}) requires ${scopes}, but ${andList(methods)} on its paths ${methods.length === 1 ? 'is' : 'are'} judged by ${via.id} (${via.name}), which does not: a key without ${them} can ${andList(methods)} there. Declare ${methods.length === 1 ? 'that method' : 'those methods'} with ${them}, or give ${route.id} no method (every method then needs ${them}).`;
}

/**
 * A route `P/*` that requires something (scopes, a cost, rate limits) which the route that
 * takes `P` itself does not: `/v1/admin/*` with `admin` beside `/v1/*` leaves `/v1/admin`
 * and `/v1/admin/` (one trailing slash is ignored) to `/v1/*`, since a wildcard needs a
 * segment after its slash. Most frameworks serve `/v1/admin/` as the admin index, so a
 * profile meant to guard "everything under /v1/admin" leaves its root open. Legitimate
 * (the matching rule is documented, and profiles rely on it), rarely meant: start-up and
 * `keygate check` say so.
 */
export interface WildcardRootGap {
  /** The wildcard route: `routes[0]`, its method, and as declared, `/v1/admin/*`. */
  route: { id: string; method: string; name: string };
  /** `P`, the path the wildcard does not take (`/v1/admin`; `/` for `/*`). */
  root: string;
  /** The methods of `route` whose requests at `root` go to `via`. */
  methods: string[];
  /** Whether `methods` are every method (then they go unnamed). */
  everyMethod: boolean;
  via: { id: string; name: string };
  /** What `route` requires that `via` does not. */
  missing: { scopes: string[]; cost: boolean; rateLimits: boolean };
}

/**
 * The wildcard root gaps of a profile's routes (see WildcardRootGap), found with the table
 * itself: the methods a `P/*` route takes are matched at `P` and compared with the route
 * found there.
 */
export function wildcardRootGaps(table: RouteTable, routes: readonly Route[]): WildcardRootGap[] {
  const gaps: WildcardRootGap[] = [];
  routes.forEach((route, i) => {
    if (!route.path.endsWith('/*')) return;
    if (route.scopes.length === 0 && route.cost === undefined && route.rateLimits.length === 0) return;
    const id = `routes[${i}]`;
    const root = route.path.slice(0, -2) || '/';
    const sample = samplePath(route.path);
    const rootSample = samplePath(root);
    // A route declared for P itself (any method, parameters named otherwise, letters in
    // another case where paths are matched ignoring it) was chosen for it; methods that fall
    // from it to a broader route are scopeGaps' to tell.
    const forRoot = (other: Route, j: number) => pathShape(other.path) === pathShape(root) && ROUTE_METHODS.some((method) => table.match(method, rootSample)?.id === `routes[${j}]`);
    if (routes.some(forRoot)) return;
    const taken = ROUTE_METHODS.filter((method) => table.match(method, sample)?.id === id);
    const byVia = new Map<string, WildcardRootGap>();
    for (const method of taken) {
      const other = table.match(method, rootSample);
      if (other?.kind !== 'proxy' || other.id === id) continue;
      const missing = {
        scopes: route.scopes.filter((scope) => !other.route.scopes.includes(scope)),
        cost: !costCovered(route.cost, other.route.cost),
        rateLimits: !route.rateLimits.every((window) => other.route.rateLimits.some((its) => rateLimitCovered(window, its))),
      };
      if (missing.scopes.length === 0 && !missing.cost && !missing.rateLimits) continue;
      let gap = byVia.get(other.id);
      if (!gap) {
        gap = { route: { id, method: route.method, name: routeName(route) }, root, methods: [], everyMethod: false, via: { id: other.id, name: routeName(other.route) }, missing };
        byVia.set(other.id, gap);
      }
      gap.methods.push(method);
    }
    for (const gap of byVia.values()) gap.everyMethod = gap.methods.length === ROUTE_METHODS.length;
    gaps.push(...byVia.values());
  });
  return gaps;
}

/** A route as its profile declares it: `GET /v1/admin/*`, or its path alone for every method. */
function routeName(route: Route): string {
  return route.method === '*' ? route.path : `${route.method} ${route.path}`;
}

/** A path pattern with its parameters unnamed, one trailing slash dropped and in small letters: `/v1/:a/` is `/V1/:b`. */
function pathShape(pattern: string): string {
  return pattern.replace(/(.)\/$/, '$1').replace(/::/g, '\0').replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, ':').toLowerCase();
}

/** Whether `other` charges at least what `cost` does (same meter, same way of counting, no less). */
function costCovered(cost: Cost | undefined, other: Cost | undefined): boolean {
  if (cost === undefined) return true;
  if (other === undefined || other.meter !== cost.meter) return false;
  if (cost.perRequest !== undefined) return other.perRequest !== undefined && other.perRequest >= cost.perRequest;
  return other.perRecord !== undefined && other.perRecord >= (cost.perRecord ?? 0) && JSON.stringify(other.records) === JSON.stringify(cost.records);
}

/** Whether `other` is a window at least as strict as `window` (same length and scope, no higher limit). */
function rateLimitCovered(window: RateLimit, other: RateLimit): boolean {
  return other.window === window.window && other.scope === window.scope && other.limit <= window.limit;
}

/** A wildcard root gap in words, for the log and `keygate check`. */
export function describeWildcardRootGap({ route, root, methods, everyMethod, via, missing }: WildcardRootGap): string {
  const paths = root === '/' ? '/' : `${root} and ${root}/`;
  const requests = everyMethod ? `requests to ${paths} are` : `${andList(methods)} on ${paths} ${methods.length === 1 ? 'is' : 'are'}`;
  const lacks = [
    ...(missing.scopes.length > 0 ? [`require the scope${missing.scopes.length === 1 ? '' : 's'} ${andList(missing.scopes)}`] : []),
    ...(missing.cost ? [`charge ${route.id}'s cost`] : []),
    ...(missing.rateLimits ? [`count ${route.id}'s rate limits`] : []),
  ];
  const fields = [...(missing.scopes.length > 0 ? ['scopes'] : []), ...(missing.cost ? ['cost'] : []), ...(missing.rateLimits ? ['rateLimits'] : [])];
  // A `*` route for the root takes the methods no route declared there claims; a GET route takes HEAD too.
  const method = route.method === '*' ? '' : `method: ${route.method}, `;
  return `${route.id} (${route.name}) does not take ${root === '/' ? '/' : `${root} or ${root}/`} (a wildcard needs a segment after its slash): ${requests} judged by ${via.id} (${via.name}), which does not ${orList(lacks)}. To guard ${paths} as well, declare a route for ${root} with ${route.id}'s ${andList(fields)} ({${method}path: ${root}, ...}); one trailing slash is ignored, so it takes ${root === '/' ? '/' : `${root}/`} too.`;
}

/** Whether the key's scopes satisfy every scope the route requires (`*` satisfies all). */
export function hasScopes(keyScopes: readonly string[], required: readonly string[]): boolean {
  if (required.length === 0 || keyScopes.includes('*')) return true;
  return required.every((scope) => keyScopes.includes(scope));
}

/**
 * Escapes of reserved characters that find-my-way leaves encoded when it matches (it
 * decodes the others): `$ & + , : = @`. An upstream that decodes the path before routing
 * it (Flask, Go's URL.Path) serves `/v1/reports%3Aexport` as `/v1/reports:export`, so the
 * route for `/v1/reports::export` must judge it, not a broader `/v1/*`. (`%2F` and `%3B`
 * are refused before matching, `src/gateway/request-path.ts`; `%3F` and `%23` stay
 * encoded: decoded after the query is split off, they are a path's own characters.)
 */
const KEPT_ENCODED = /%(?:2[46BbCc]|3[AaDd]|40)/g;

/** `path` as routes are matched against it: the escapes in KEPT_ENCODED decoded. */
function matchedPath(path: string): string {
  return path.includes('%') ? path.replace(KEPT_ENCODED, (escape) => String.fromCharCode(escapedByte(escape, 0))) : path;
}
