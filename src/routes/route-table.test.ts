import { describe, expect, it } from 'vitest';
import { configSchema, type ConfigInput } from '../config/schema.js';
import { createRouteTable, describeWildcardRootGap, scopeGaps, wildcardRootGaps } from './route-table.js';

function gaps(routes: ConfigInput['routes']) {
  const config = configSchema.parse({ upstream: { url: 'http://127.0.0.1:9' }, scopes: ['read', 'write', 'admin'], routes });
  return scopeGaps(createRouteTable(config.routes, config.builtins), config.routes).map((gap) => [gap.route.id, gap.methods.join(' '), gap.via.id]);
}

function rootGaps(routes: ConfigInput['routes'], extra: Partial<ConfigInput> = {}) {
  const config = configSchema.parse({ upstream: { url: 'http://127.0.0.1:9' }, scopes: ['read', 'write', 'admin'], plans: { free: { meters: { units: { limit: 100 } } } }, routes, ...extra });
  return wildcardRootGaps(createRouteTable(config.routes, config.builtins, { caseSensitive: config.upstream.caseSensitivePaths }), config.routes).map(describeWildcardRootGap);
}

function table(routes: ConfigInput['routes'], builtins: ConfigInput['builtins'] = [], caseSensitivePaths = true) {
  const config = configSchema.parse({ upstream: { url: 'http://127.0.0.1:9', caseSensitivePaths }, scopes: ['read', 'write'], routes, builtins });
  return createRouteTable(config.routes, config.builtins, { caseSensitive: config.upstream.caseSensitivePaths });
}

describe('route table', () => {
  it('says whether every route and built-in needs a scope (a key without one could call nothing)', () => {
    const read = { method: 'GET' as const, path: '/v1/items', scopes: ['read'] };
    expect(table([read, { method: 'POST', path: '/v1/items', scopes: ['write'] }]).scopedOnly).toBe(true);
    expect(table([read, { method: 'GET', path: '/v1/status' }]).scopedOnly).toBe(false);
    expect(table([read], [{ path: '/v1/me', body: {} }]).scopedOnly).toBe(false);
    expect(table([read], [{ path: '/v1/me', body: {}, scopes: ['read'] }]).scopedOnly).toBe(true);
    // The default route (/*, no scopes), and a table with none: nothing to ask a scope for.
    expect(table(undefined).scopedOnly).toBe(false);
    expect(table([]).scopedOnly).toBe(false);
  });

  it('finds the methods that change data on a scoped route\'s paths and fall to a broader route without its scopes', () => {
    expect(
      gaps([
        { method: 'GET', path: '/v1/admin/*', scopes: ['admin'] },
        { method: 'POST', path: '/v1/reports/:id', scopes: ['write'] },
        { method: 'PUT', path: '/v1/reports/:id', scopes: ['write'] },
        { path: '/v1/*' },
      ]),
    ).toEqual([
      ['routes[0]', 'POST PUT PATCH DELETE', 'routes[3]'],
      // POST and PUT share one path: its gap is said once.
      ['routes[1]', 'PATCH DELETE', 'routes[3]'],
    ]);
    // Reads left open beside a scoped write, a broader route with the same scopes,
    // a scoped route for every method, or every method declared: nothing to say.
    expect(gaps([{ method: 'POST', path: '/v1/items', scopes: ['write'] }, { method: 'GET', path: '/v1/items' }])).toEqual([]);
    expect(gaps([{ method: 'GET', path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*', scopes: ['admin', 'read'] }])).toEqual([]);
    expect(gaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*' }])).toEqual([]);
    // A write declared on the same path with a scope of its own (the demo's projects): no gap;
    // the same write declared on a broader path is still one.
    expect(gaps([{ method: 'GET', path: '/v1/items', scopes: ['read'] }, { method: 'POST', path: '/v1/items', scopes: ['write'] }])).toEqual([]);
    expect(gaps([{ method: 'GET', path: '/v1/items/:id', scopes: ['read'] }, { method: 'DELETE', path: '/v1/items/:itemId', scopes: ['write'] }, { method: 'POST', path: '/v1/items/:id', scopes: ['write'] }])).toEqual([]);
    expect(gaps([{ method: 'GET', path: '/v1/admin/*', scopes: ['admin'] }, { method: 'POST', path: '/v1/*', scopes: ['write'] }])).toEqual([['routes[0]', 'POST', 'routes[1]']]);
    expect(gaps([{ method: 'GET', path: '/v1/admin/:id', scopes: ['admin'] }, { method: 'DELETE', path: '/v1/admin/:id', scopes: ['admin'] }, { path: '/v1/*' }])).toEqual([
      ['routes[0]', 'POST PUT PATCH', 'routes[2]'],
    ]);
  });

  it('says when a route P/* requires what the route that takes P and P/ does not, naming both and the route to add', () => {
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*', scopes: ['read'] }])).toEqual([
      'routes[0] (/v1/admin/*) does not take /v1/admin or /v1/admin/ (a wildcard needs a segment after its slash): requests to /v1/admin and /v1/admin/ are judged by routes[1] (/v1/*), which does not require the scope admin. To guard /v1/admin and /v1/admin/ as well, declare a route for /v1/admin with routes[0]\'s scopes ({path: /v1/admin, ...}); one trailing slash is ignored, so it takes /v1/admin/ too.',
    ]);
    // A cost and rate limits left behind too; a GET route (which takes HEAD) suggests a GET route.
    expect(
      rootGaps([
        { method: 'GET', path: '/v1/reports/:id/*', scopes: ['read'], cost: { meter: 'units', perRequest: 10 }, rateLimits: [{ limit: 5, window: '1s' }] },
        { path: '/v1/*', scopes: ['read'] },
      ]),
    ).toEqual([
      'routes[0] (GET /v1/reports/:id/*) does not take /v1/reports/:id or /v1/reports/:id/ (a wildcard needs a segment after its slash): GET and HEAD on /v1/reports/:id and /v1/reports/:id/ are judged by routes[1] (/v1/*), which does not charge routes[0]\'s cost or count routes[0]\'s rate limits. To guard /v1/reports/:id and /v1/reports/:id/ as well, declare a route for /v1/reports/:id with routes[0]\'s cost and rateLimits ({method: GET, path: /v1/reports/:id, ...}); one trailing slash is ignored, so it takes /v1/reports/:id/ too.',
    ]);
    // Only some methods fall through (here those a `*` route takes beside a GET route): they are named.
    expect(rootGaps([{ method: 'GET', path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*' }])[0]).toContain('GET and HEAD on /v1/admin and /v1/admin/ are judged by routes[1] (/v1/*)');
    expect(rootGaps([{ method: 'GET', path: '/v1/admin/*', scopes: ['read'] }, { path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*' }])).toEqual([
      expect.stringContaining('GET and HEAD on /v1/admin and /v1/admin/ are judged by routes[2] (/v1/*), which does not require the scope read.'),
      expect.stringContaining('POST, PUT, PATCH, DELETE and OPTIONS on /v1/admin and /v1/admin/ are judged by routes[2] (/v1/*), which does not require the scope admin.'),
    ]);
    // Nothing to say: the root has a route of its own (with any scopes and method: it was
    // chosen for it, and methods falling from it are scopeGaps' to tell),
    // no route takes the root, the broader route requires as much, or the wildcard requires nothing.
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/admin/', scopes: ['read'] }, { path: '/v1/*' }])).toEqual([]);
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { method: 'GET', path: '/v1/admin', scopes: ['admin'] }, { path: '/v1/*' }])).toEqual([]);
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/reports' }])).toEqual([]);
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'], cost: { meter: 'units', perRequest: 1 } }, { path: '/v1/*', scopes: ['admin', 'read'], cost: { meter: 'units', perRequest: 2 } }])).toEqual([]);
    expect(rootGaps([{ path: '/v1/admin/*' }, { path: '/v1/*', scopes: ['read'] }])).toEqual([]);
    expect(rootGaps([{ path: '/*', scopes: ['read'] }])).toEqual([]);
    // A cheaper cost on the broader route is a gap; the same route in other letters, with paths matched ignoring case, is the root's own.
    expect(rootGaps([{ path: '/v1/data/*', cost: { meter: 'units', perRequest: 5 } }, { path: '/v1/*', cost: { meter: 'units', perRequest: 1 } }])).toHaveLength(1);
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/V1/Admin', scopes: ['admin'] }, { path: '/v1/*' }], { upstream: { url: 'http://127.0.0.1:9', caseSensitivePaths: false } })).toEqual([]);
    expect(rootGaps([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/V1/Admin', scopes: ['admin'] }, { path: '/v1/*' }])).toHaveLength(1);
  });

  it('answers HEAD with the GET route, ahead of a `*` route with other scopes', () => {
    const routes = table([{ method: 'GET', path: '/v1/items/:id', scopes: ['read'] }, { path: '/v1/*', scopes: ['write'] }]);
    expect(routes.match('HEAD', '/v1/items/7')).toMatchObject({ id: 'routes[0]' });
    expect(routes.match('POST', '/v1/items/7')).toMatchObject({ id: 'routes[1]' });
    expect(routes.methodsAt('/v1/items/7')).toContain('HEAD');
  });

  it('matches a path parameter of any length to its route, not to a broader one', () => {
    const routes = table([{ method: 'GET', path: '/v1/items/:id', scopes: ['read'] }, { path: '/v1/*' }]);
    for (const length of [100, 101, 5_000]) expect(routes.match('GET', `/v1/items/${'a'.repeat(length)}`)).toMatchObject({ id: 'routes[0]' });
  });

  it('matches an escaped reserved character to the route written with the character itself, as an upstream that decodes the path serves it', () => {
    const routes = table([
      { method: 'POST', path: '/v1/reports::export', scopes: ['write'] },
      { method: 'GET', path: '/v1/users/@me', scopes: ['write'] },
      { method: 'GET', path: '/v1/q/a+b=c,d$e&f', scopes: ['write'] },
      { path: '/v1/*', scopes: ['read'] },
    ]);
    expect(routes.match('POST', '/v1/reports%3Aexport')).toMatchObject({ id: 'routes[0]' });
    expect(routes.match('POST', '/v1/reports%3aexport')).toMatchObject({ id: 'routes[0]' });
    expect(routes.match('GET', '/v1/users/%40me')).toMatchObject({ id: 'routes[1]' });
    expect(routes.match('GET', '/v1/q/a%2Bb%3Dc%2Cd%24e%26f')).toMatchObject({ id: 'routes[2]' });
    expect(table([{ method: 'POST', path: '/v1/reports::export' }]).methodsAt('/v1/reports%3Aexport')).toEqual(['POST']);
    // `?` and `#` escaped are the path's own characters, to the upstream as to the router.
    expect(routes.match('GET', '/v1/users/%40me%3F')).toMatchObject({ id: 'routes[3]' });
  });

  it('matches paths case-sensitively, unless the upstream does not tell them apart by case (then by the route it serves them as)', () => {
    const routes: ConfigInput['routes'] = [{ method: 'POST', path: '/v1/reports', scopes: ['write'] }, { method: 'GET', path: '/v1/admin/users', scopes: ['write'] }, { path: '/v1/*', scopes: ['read'] }];
    const exact = table(routes);
    expect(exact.match('POST', '/v1/REPORTS')).toMatchObject({ id: 'routes[2]' });
    expect(exact.match('GET', '/v1/Admin/Users')).toMatchObject({ id: 'routes[2]' });
    const anyCase = table(routes, [], false);
    expect(anyCase.match('POST', '/v1/REPORTS')).toMatchObject({ id: 'routes[0]' });
    expect(anyCase.match('GET', '/v1/Admin/Users')).toMatchObject({ id: 'routes[1]' });
    expect(anyCase.match('GET', '/v1/%41dmin/users')).toMatchObject({ id: 'routes[1]' });
    expect(anyCase.methodsAt('/V1/REPORTS')).toContain('POST');
    expect(anyCase.match('GET', '/v1/other')).toMatchObject({ id: 'routes[2]' });
    // Two routes that differ only in case are then one declared twice.
    const twice = configSchema.safeParse({ upstream: { url: 'http://127.0.0.1:9', caseSensitivePaths: false }, routes: [{ method: 'GET', path: '/v1/Items' }, { method: 'GET', path: '/v1/items' }] });
    expect(twice.success).toBe(false);
    expect(twice.error?.issues[0]).toMatchObject({ path: ['routes', 1], message: 'GET /v1/items is declared twice' });
    const twiceAnyMethod = configSchema.safeParse({ upstream: { url: 'http://127.0.0.1:9', caseSensitivePaths: false }, routes: [{ path: '/v1/Items', scopes: [] }, { path: '/v1/items' }] });
    expect(twiceAnyMethod.error?.issues[0]?.message).toMatch(/declared twice for every method/);
    expect(configSchema.safeParse({ upstream: { url: 'http://127.0.0.1:9' }, routes: [{ method: 'GET', path: '/v1/Items' }, { method: 'GET', path: '/v1/items' }] }).success).toBe(true);
  });

  it('keeps a HEAD route the profile declares itself', () => {
    const routes = table([{ method: 'HEAD', path: '/v1/items', scopes: ['write'] }, { method: 'GET', path: '/v1/items', scopes: ['read'] }]);
    expect(routes.match('HEAD', '/v1/items')).toMatchObject({ id: 'routes[0]' });
    expect(routes.match('GET', '/v1/items')).toMatchObject({ id: 'routes[1]' });
  });

  it('matches the same method and path again alike, and another method or path anew (the last match is kept)', () => {
    const routes = table([{ method: 'GET', path: '/v1/items/:id', scopes: ['read'] }, { method: 'POST', path: '/v1/items/:id' }]);
    const first = routes.match('GET', '/v1/items/7');
    expect(routes.match('GET', '/v1/items/7')).toBe(first);
    expect(routes.match('POST', '/v1/items/7')).toMatchObject({ id: 'routes[1]' });
    expect(routes.match('DELETE', '/v1/items/7')).toBeUndefined();
    expect(routes.match('DELETE', '/v1/items/7')).toBeUndefined();
    expect(routes.match('TRACE', '/v1/items/7')).toBeUndefined();
    expect(routes.match('GET', '/v1/other')).toBeUndefined();
    expect(routes.match('GET', '/v1/items/8')).toMatchObject({ id: 'routes[0]' });
  });

  it('answers HEAD for a GET built-in endpoint, and not for a POST-only path', () => {
    const routes = table([{ method: 'POST', path: '/v1/export' }], [{ method: 'GET', path: '/v1/balance', body: { ok: true } }]);
    expect(routes.match('HEAD', '/v1/balance')).toMatchObject({ kind: 'builtin' });
    expect(routes.match('HEAD', '/v1/export')).toBeUndefined();
    expect(routes.methodsAt('/v1/export')).toEqual(['POST']);
  });
});
