/**
 * Which methods a listener's routes take at a request path, so that a path asked with
 * another method is answered 405 with `Allow` (RFC 9110 §15.5.6), not 404, as the admin
 * API does. (The dashboard answers 404: a 405 would tell a member which operator pages
 * exist.)
 */
import type { FastifyInstance } from 'fastify';

/** A request's path as the router reads it: no query, and a trailing slash ignored (/health/ is /health). */
export function routerPath(url: string): string {
  const path = url.split('?')[0] as string;
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** `path` with its escapes decoded, as the router matches it (`/%6Beys` is `/keys`); one that does not decode is matched as it is. */
function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** A route path (`/v1/keys/:id/revoke`) as a pattern of request paths. */
function pathPattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

/**
 * Records every route `app` (and the contexts registered in it afterwards) declares from
 * now on; the answer lists, for a request's URL, the methods some route takes at its
 * path, sorted (none: no route has the path).
 */
export function recordRouteMethods(app: FastifyInstance): (url: string) => string[] {
  const byPath = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  app.addHook('onRoute', (route) => {
    const entry = byPath.get(route.url) ?? { pattern: pathPattern(route.url), methods: new Set<string>() };
    for (const method of [route.method].flat()) entry.methods.add(method);
    byPath.set(route.url, entry);
  });
  return (url) => {
    const path = decodedPath(routerPath(url));
    const methods = new Set<string>();
    for (const entry of byPath.values()) if (entry.pattern.test(path)) for (const method of entry.methods) methods.add(method);
    return [...methods].sort();
  };
}
