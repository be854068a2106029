/**
 * Matching a request to the profile's routes (and built-in endpoints) with find-my-way,
 * Fastify's router: static segments beat `:params`, which beat `*` wildcards, whatever
 * order the file lists them in. A route with `method: "*"` answers every method no more
 * specific route claims.
 */
import FindMyWay from 'find-my-way';
import type { Builtin, Route } from '../config/schema.js';

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type Method = (typeof ALL_METHODS)[number];
const KNOWN_METHODS: ReadonlySet<string> = new Set(ALL_METHODS);

export type RouteMatch = { kind: 'proxy'; id: string; route: Route } | { kind: 'builtin'; id: string; builtin: Builtin };

export interface RouteTable {
  match(method: string, path: string): RouteMatch | undefined;
  /** The methods some route accepts at `path` (empty if none does): asked only once `match` has failed. */
  methodsAt(path: string): string[];
}


export function createRouteTable(routes: readonly Route[], builtins: readonly Builtin[]): RouteTable {
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true });
  const noop = () => undefined;
  const add = (method: string, path: string, target: RouteMatch) => {
    const methods: Method[] = method === '*' ? [...ALL_METHODS] : [method as Method];
    for (const m of methods) {
      if (router.hasRoute(m, path)) {
        if (method === '*') continue; // a specific route or a builtin already owns it
        throw new Error(`route ${m} ${path} is declared twice (${target.id})`);
      }
      router.on(m, path, noop, target);
    }
  };
  builtins.forEach((builtin, i) => add(builtin.method, builtin.path, { kind: 'builtin', id: `builtin[${i}]`, builtin }));
  // Specific methods first so that `*` only fills the methods left over.
  const ordered = routes.map((route, i) => ({ route, i })).sort((a, b) => Number(a.route.method === '*') - Number(b.route.method === '*'));
  for (const { route, i } of ordered) add(route.method, route.path, { kind: 'proxy', id: `routes[${i}]`, route });
  router.compile?.();

  return {
    match(method, path) {
      if (!KNOWN_METHODS.has(method)) return undefined;
      // The route itself, not a copy: matching runs on every request.
      return (router.find(method as Method, path)?.store as RouteMatch | undefined) ?? undefined;
    },
    methodsAt(path) {
      return ALL_METHODS.filter((method) => router.find(method, path) !== null);
    },
  };
}

/** Whether the key's scopes satisfy every scope the route requires (`*` satisfies all). */
export function hasScopes(keyScopes: readonly string[], required: readonly string[]): boolean {
  if (required.length === 0 || keyScopes.includes('*')) return true;
  return required.every((scope) => keyScopes.includes(scope));
}
