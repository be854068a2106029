import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, configJsonSchema, loadConfigFile, parseConfigObject, parseConfigText } from './load.js';

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'keygate.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the file to be refused');
}

describe('keygate.yaml validation', () => {
  it('gives every field but upstream.url a default', () => {
    const config = parseConfigText('upstream:\n  url: http://127.0.0.1:4000\n');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080, maxHeaderSize: 15 * 1024, keepAliveTimeout: 72_000 });
    expect(config.shutdown).toEqual({ readinessDelay: 0, drainTimeout: 10_000 });
    expect(config.store).toBe('sqlite:./data/keygate.db');
    expect(config.auth.credentials).toEqual([{ in: 'header', name: 'Authorization', scheme: 'Bearer' }]);
  });

  it('sends the IETF rate-limit headers unless rateLimitHeaders says otherwise, and refuses a style it does not know, naming the four', () => {
    expect(parseConfigText('upstream: {url: http://127.0.0.1:4000}\n').rateLimitHeaders).toBe('ietf');
    expect(parseConfigText('upstream: {url: http://127.0.0.1:4000}\nrateLimitHeaders: kong\n').rateLimitHeaders).toBe('kong');
    expect(problems('upstream: {url: http://127.0.0.1:4000}\nrateLimitHeaders: X-RateLimit\n')).toEqual(['rateLimitHeaders: expected one of "ietf", "kong", "both", "none", got "X-RateLimit"']);
  });

  it('gives each listener its own port when a listen block names only the host', () => {
    const config = parseConfigText('upstream: {url: http://127.0.0.1:4000}\nlisten: {host: 0.0.0.0}\nadmin: {listen: {host: 127.0.0.1}}\ndashboard: {listen: {requestTimeout: 10s}}\n');
    expect([config.listen, config.admin.listen, config.dashboard.listen]).toEqual([
      { host: '0.0.0.0', port: 8080, maxHeaderSize: 15 * 1024, keepAliveTimeout: 72_000 },
      { host: '127.0.0.1', port: 8081, maxHeaderSize: 16 * 1024, keepAliveTimeout: 72_000 },
      { host: '127.0.0.1', port: 8082, maxHeaderSize: 16 * 1024, requestTimeout: 10_000, keepAliveTimeout: 72_000 },
    ]);
  });

  it('takes a listener\'s head limit in bytes, and names one too small to hold a request', () => {
    expect(parseConfigText('upstream: {url: http://127.0.0.1:4000}\nlisten: {maxHeaderSize: 32768}\n').listen.maxHeaderSize).toBe(32768);
    expect(problems('upstream: {url: http://127.0.0.1:4000}\ndashboard: {listen: {maxHeaderSize: 100}}\n')).toEqual(['dashboard.listen.maxHeaderSize: a number of bytes, at least 1024']);
  });

  it('takes the API address the key page shows (dashboard.apiUrl) and names one that is no http(s) URL or has a query', () => {
    const dashboard = (yaml: string) => parseConfigText(`upstream: {url: http://127.0.0.1:4000}\ndashboard: ${yaml}\n`).dashboard;
    expect(dashboard('{apiUrl: "https://api.example.com/v1"}').apiUrl).toBe('https://api.example.com/v1');
    expect(dashboard('{}').apiUrl).toBeUndefined();
    expect(problems('upstream: {url: http://127.0.0.1:4000}\ndashboard: {apiUrl: api.example.com}\n')).toEqual(['dashboard.apiUrl: expected an http(s) URL such as https://api.example.com/v1, got "api.example.com"']);
    expect(problems('upstream: {url: http://127.0.0.1:4000}\ndashboard: {apiUrl: "https://api.example.com/v1?x=1"}\n')).toEqual(["dashboard.apiUrl: a URL without a query, a fragment or a quote ('), such as https://api.example.com/v1"]);
  });

  it("sets Secure dashboard cookies where publicUrl is https:// unless told otherwise, and names a publicUrl that is no http(s) URL", () => {
    const dashboard = (yaml: string) => parseConfigText(`upstream: {url: http://127.0.0.1:4000}\ndashboard: ${yaml}\n`).dashboard;
    expect(dashboard('{}').secureCookies).toBe(false);
    expect(dashboard('{publicUrl: "http://127.0.0.1:8082"}').secureCookies).toBe(false);
    expect(dashboard('{publicUrl: "HTTPS://keys.example.com/"}').secureCookies).toBe(true);
    expect(dashboard('{publicUrl: "https://keys.example.com", secureCookies: false}').secureCookies).toBe(false);
    expect(dashboard('{secureCookies: true}').secureCookies).toBe(true);
    expect(problems('upstream: {url: http://127.0.0.1:4000}\ndashboard: {publicUrl: keys.example.com}\n')).toEqual(['dashboard.publicUrl: expected an http(s) URL such as https://dashboard.example.com, got "keys.example.com"']);
    // Invitation links are publicUrl + /invite/…: a path, query or fragment would break them.
    for (const url of ['https://x.example/sub', 'https://x.example/?q=1', 'https://x.example/#f']) {
      expect(problems(`upstream: {url: http://127.0.0.1:4000}\ndashboard: {publicUrl: "${url}"}\n`), url).toEqual([
        'dashboard.publicUrl: an origin such as https://dashboard.example.com, without a path, query or fragment (the dashboard is served at the root of its host)',
      ]);
    }
  });

  it('says limits, whole numbers and mappings in words, not in the validation library\'s', () => {
    const base = 'upstream: {url: "http://127.0.0.1:4000"}\n';
    expect(problems(`${base}listen: {port: 99999}\n`)).toEqual(['listen.port: expected at most 65535, got 99999']);
    expect(problems(`${base}plans: {p: {rateLimits: [{limit: 0, window: 1m}]}}\n`)).toEqual(['plans.p.rateLimits[0].limit: expected more than 0, got 0']);
    expect(problems(`${base}plans: {p: {rateLimits: [{limit: 3.5, window: 1m}]}}\n`)).toEqual(['plans.p.rateLimits[0].limit: expected a whole number, got number 3.5']);
    expect(problems(`${base}plans: [p]\n`)).toEqual(['plans: expected a mapping, got a list']);
    // A denial reason mistyped gets the reason it most likely meant, as any field does.
    expect(problems(`${base}errors: {reasons: {mising_key: {message: x}}}\n`)).toEqual(['errors.reasons: unknown field "mising_key" (did you mean "missing_key"?)']);
    // A built-in without its answer: what to write, not the library's "expected nonoptional".
    expect(problems(`${base}builtins: [{path: /v1/account/usage}]\n`)).toEqual([
      'builtins[0].body: required: what the endpoint answers (a mapping, a list or a string), placeholders such as "{{meters.units.remaining}}" in its values',
    ]);
  });

  it('refuses two windows of one length and scope in a plan or a route, naming both (the larger limit would never refuse a request)', () => {
    const base = 'upstream: {url: "http://127.0.0.1:4000"}\n';
    const why = (earlier: string, scope: string, length: string) =>
      `${earlier} is already a ${scope} window of ${length}: of two windows of one length and scope, the one with the larger limit never refuses a request (was another length meant?); give each length one window per scope`;
    expect(problems(`${base}plans: {pro: {rateLimits: [{limit: 100, window: 1m}, {limit: 5000, window: 1m}]}}\n`)).toEqual([`plans.pro.rateLimits[1]: ${why('rateLimits[0]', 'per-key', '1m')}`]);
    // One length however it is written; per account too, after a window of another scope.
    expect(problems(`${base}plans: {pro: {rateLimits: [{limit: 5, window: 1s}, {limit: 9, window: 60s, scope: account}, {limit: 10, window: 1m, scope: account}]}}\n`)).toEqual([
      `plans.pro.rateLimits[2]: ${why('rateLimits[1]', 'per-account', '1m')}`,
    ]);
    expect(problems(`${base}routes: [{path: /export, rateLimits: [{limit: 1, window: 1h}, {name: hourly, limit: 1, window: 1h}]}]\n`)).toEqual([`routes[0].rateLimits[1]: ${why('rateLimits[0]', 'per-key', '1h')}`]);
    // One length per key and per account, and a route's window of the plan's length, each limit something.
    const config = parseConfigText(`${base}plans: {pro: {rateLimits: [{limit: 10, window: 1s}, {limit: 50, window: 1s, scope: account}]}}\nroutes: [{path: /export, rateLimits: [{limit: 1, window: 1s}]}]\n`);
    expect(config.plans.pro?.rateLimits.map((rl) => `${rl.limit}/${rl.window}/${rl.scope}`)).toEqual(['10/1000/key', '50/1000/account']);
  });

  it('takes a profile without upstream.url, for the library (serve refuses it: test/cli.test.ts), and the upstream fields keep their defaults', () => {
    const config = parseConfigText('name: x\n');
    expect(config.upstream).toEqual({ timeout: 30_000, caseSensitivePaths: true, connections: 128 });
    expect(parseConfigText('upstream: {connections: 8, caseSensitivePaths: false}\n').upstream).toMatchObject({ connections: 8, caseSensitivePaths: false });
    expect(problems('upstream: {connections: 2, maxInFlightPerAccount: 3}\n')).toEqual([
      'upstream.maxInFlightPerAccount: at most upstream.connections (one account cannot have more requests in flight than the pool has connections)',
    ]);
  });

  it('names upstream.url where upstream.spawn is given without it (the command listens there)', () => {
    expect(problems('upstream: {spawn: [node, upstream.js]}\n')).toEqual([
      'upstream.url: required with upstream.spawn: where the command keygate starts listens, and requests are forwarded (port 0: any free port, told to it in PORT)',
    ]);
    expect(parseConfigText('upstream: {url: "http://127.0.0.1:0", spawn: [node, upstream.js]}\n').upstream).toMatchObject({ url: 'http://127.0.0.1:0', spawn: ['node', 'upstream.js'] });
  });

  it('names the field and what was expected for a mistyped upstream, path or period (no bare "Invalid URL")', () => {
    expect(problems('upstream: {url: 127.0.0.1:4100}\n')).toEqual(['upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "127.0.0.1:4100"']);
    expect(problems('upstream: {url: "http://a/v1"}\n')).toEqual(['upstream.url: an origin such as http://127.0.0.1:4000, without a path, query or fragment (the request path and query are forwarded unchanged)']);
    expect(problems('upstream: {url: "http://a"}\nbasePath: v1\n')).toEqual(['basePath: expected a path starting with "/", such as /v1, got "v1"']);
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  - {path: v1/x}\n')).toEqual(['routes[0].path: expected a path starting with "/", such as /v1/domains/:id, got "v1/x"']);
    // Routes are matched on the path decoded: one written with an escape would never match.
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  - {path: /v1/users/%40me}\n')).toEqual([
      'routes[0].path: expected the characters themselves, not percent-escapes: "@" for %40, a colon as "::" (one ":" starts a parameter), got "/v1/users/%40me"',
    ]);
    expect(problems('upstream: {url: "http://a"}\nbuiltins:\n  - {method: GET, path: /v1/me%3Ausage}\n')[0]).toMatch(/^builtins\[0\]\.path: expected the characters themselves/);
    expect(problems('upstream: {url: "http://a"}\nplans: {p: {meters: {units: {limit: 5, period: monthly}}}}\n')).toEqual([
      'plans.p.meters.units.period: expected "month" or { billingDay: 1 to 28 } (got "monthly")',
    ]);
  });

  it('refuses a route declared twice and one outside basePath, naming it (keygate check passed them; serve then failed or never matched)', () => {
    const twice = 'upstream: {url: "http://a"}\nroutes:\n  - {method: GET, path: /v1/records}\n  - {method: GET, path: /v1/records/}\n  - {method: GET, path: /v1/records}\n';
    expect(problems(twice)).toEqual(['routes[1]: GET /v1/records/ is declared twice']);
    const outside = 'upstream: {url: "http://a"}\nbasePath: /v1\nroutes:\n  - {path: /v1/x}\n  - {path: /slow}\n  - {path: /v1*}\n  - {path: /:version/y}\n  - {path: /*}\n';
    expect(problems(outside)).toEqual(['routes[1].path: "/slow" is outside basePath "/v1": no request can reach it']);
    // In front of an API that ignores case, basePath is compared as routes are matched: ignoring case.
    const otherCase = 'basePath: /v1\nroutes:\n  - {path: /V1/x}\n';
    expect(parseConfigText(`upstream: {url: "http://a", caseSensitivePaths: false}\n${otherCase}`).routes.map((route) => route.path)).toEqual(['/V1/x']);
    expect(problems(`upstream: {url: "http://a"}\n${otherCase}`)).toEqual(['routes[0].path: "/V1/x" is outside basePath "/v1": no request can reach it']);
  });

  it('refuses a scope listed twice in the profile, naming where', () => {
    const twice = 'upstream: {url: "http://a"}\nscopes: [a, b, a]\nplans:\n  pro: {scopes: [b, b]}\nroutes:\n  - {path: /x, scopes: [a, a]}\n';
    expect(problems(twice)).toEqual([
      'scopes[2]: scope "a" is listed twice; list it once',
      'plans.pro.scopes[1]: scope "b" is listed twice; list it once',
      'routes[0].scopes[1]: scope "a" is listed twice; list it once',
    ]);
  });

  it('names a route pattern the router cannot read also when another route was declared before it', () => {
    const [problem] = problems('upstream: {url: "http://a"}\nroutes:\n  - {path: "/v1/*"}\n  - {path: "/v1/:id(^\\\\d+"}\n');
    expect(problem).toMatch(/^routes\[1\]: not a path pattern the router takes: /);
  });

  it('refuses path patterns written as another tool writes them, which would never match what they meant (keygate check passed them)', () => {
    const refusal = (path: string) => problems(`upstream: {url: "http://a"}\nroutes:\n  - {path: "${path}"}\n`);
    // OpenAPI's braces: the router took them as the characters themselves, so /v1/stations/3 was no_route.
    // Said with the path as keygate writes it, the parameters' names kept.
    expect(refusal('/v1/stations/{id}')).toEqual(['routes[0].path: a parameter is written ":id", not "{id}" (braces would be matched as the characters themselves): /v1/stations/:id']);
    expect(refusal('/v1/apps/{app_id}/metrics/{metric}')).toEqual(['routes[0].path: a parameter is written ":id", not "{id}" (braces would be matched as the characters themselves): /v1/apps/:app_id/metrics/:metric']);
    expect(refusal('/v1/stations/{}')).toEqual(['routes[0].path: a parameter is written ":id", not "{id}" (braces would be matched as the characters themselves): /v1/items/:id']);
    expect(refusal('/v1/reports?format=csv')).toEqual(['routes[0].path: a path only, without "?" or "#": a route is matched on the request\'s path, never its query']);
    expect(refusal('/v1/x#part')).toEqual(['routes[0].path: a path only, without "?" or "#": a route is matched on the request\'s path, never its query']);
    expect(refusal('/v1/items/:')).toEqual(['routes[0].path: a parameter needs a name after its ":" (/v1/items/:id); a colon itself is written "::"']);
    // Was the router's own words, at routes[0]: "Wildcard must be the last character in the route".
    expect(refusal('/v1/*/export')).toEqual(['routes[0].path: a "*" ends the path (/v1/items/*): it matches the rest of it, so nothing can follow it']);
    expect(problems('upstream: {url: "http://a"}\nbuiltins:\n  - {path: "/v1/usage/{meter}", body: {}}\n')).toEqual([
      'builtins[0].path: a parameter is written ":id", not "{id}" (braces would be matched as the characters themselves): /v1/usage/:meter',
    ]);
    // What the router reads as keygate documents it still loads: a colon itself, an optional parameter, two in a segment;
    // and a parameter's regular expression, which may hold braces, "?" and "*".
    for (const path of ['/v1/a::b', '/v1/time::', '/v1/items/:id?', '/v1/range/:from-:to', '/v1*', '/v1/:code(^[a-z]{2}$)', '/v1/:n(^[0-9]*x?$)/rows']) expect(parseConfigText(`upstream: {url: "http://a"}\nroutes:\n  - {path: "${path}"}\n`).routes[0]?.path).toBe(path);
  });

  it('refuses a basePath no request could be judged under (dot segments, //, escapes)', () => {
    for (const basePath of ['/v1/../admin', '/v1/./x', '/v1//x', '/v%31', '/a%2Fb', '/v1;x', '/v 1', '/café']) {
      expect(problems(`upstream: {url: "http://a"}\nbasePath: "${basePath}"\n`), basePath).toEqual([
        'basePath: a plain path such as /v1 or /api/v2: no "." or ".." segment, no "//", none of ; ? # \\ or spaces, and percent-escapes only for non-ASCII characters, as clients send them (/caf%C3%A9 for /café)',
      ]);
    }
    for (const basePath of ['/api/v2.1/', '/caf%C3%A9', '/v1/@me:x']) expect(parseConfigText(`upstream: {url: "http://a"}\nbasePath: "${basePath}"\n`).basePath).toBe(basePath);
  });

  it('names an alias that refers to a mapping it is inside of, instead of running out of stack', () => {
    expect(problems('upstream: {url: "http://a"}\nx: &a\n  y: *a\n')).toEqual([
      'x.y: refers to a mapping or list it is itself inside of (a YAML alias, *name, of an &name anchor above it): write the value out instead',
    ]);
    expect(problems('upstream: {url: "http://a"}\nplans: {free: &p {extra: [*p]}}\n')[0]).toMatch(/^plans\.free\.extra\[0\]: refers to /);
    // An alias of a mapping elsewhere is a copy, as YAML means it.
    expect(Object.keys(parseConfigText('upstream: {url: "http://a"}\nplans:\n  a: &base {maxKeys: 2}\n  b: *base\n').plans)).toEqual(['a', 'b']);
  });

  it('says aliases that expand one inside another (a "billion laughs") are refused, in its own words, not the yaml library\'s', () => {
    const levels = ['a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]'];
    for (const [at, name] of ['b', 'c', 'd', 'e'].entries()) levels.push(`${name}: &${name} [${Array(9).fill(`*${levels[at]?.[0]}`).join(', ')}]`);
    expect(problems(`upstream: {url: "http://a"}\n${levels.join('\n')}\n`)).toEqual(['not valid YAML: its aliases (*name) expand, one inside another, into far more than the file holds (a "billion laughs"): write the values out']);
  });

  it('refuses a content type that is not a media type (a line break would become a header of its own)', () => {
    expect(problems('upstream: {url: "http://a"}\nerrors: {contentType: "application/json\\r\\nX-Injected: 1"}\n')).toEqual([
      'errors.contentType: expected a media type such as application/json or application/json; charset=utf-8, got "application/json\\r\\nX-Injected: 1"',
    ]);
    expect(parseConfigText('upstream: {url: "http://a"}\nerrors: {contentType: "application/vnd.api+json; charset=utf-8"}\n').errors.contentType).toBe('application/vnd.api+json; charset=utf-8');
  });

  it('takes the shutdown timings and keep-alive timeouts, and names those no timer can wait for', () => {
    const config = parseConfigText('upstream: {url: http://127.0.0.1:4000}\nshutdown: {readinessDelay: 20s, drainTimeout: 1m}\nadmin: {listen: {keepAliveTimeout: 5s}}\n');
    expect(config.shutdown).toEqual({ readinessDelay: 20_000, drainTimeout: 60_000 });
    expect(config.admin.listen.keepAliveTimeout).toBe(5_000);
    expect(
      problems('upstream: {url: http://127.0.0.1:4000}\nshutdown: {readinessDelay: 30d, drainTimeout: 0s}\nlisten: {keepAliveTimeout: 0}\nadmin: {listen: {keepAliveTimeout: 999ms}}\ndashboard: {listen: {keepAliveTimeout: 25h}}\n'),
    ).toEqual([
      'listen.keepAliveTimeout: a duration of at least 1s',
      'admin.listen.keepAliveTimeout: a duration of at least 1s',
      'dashboard.listen.keepAliveTimeout: a duration of at most 24h',
      'shutdown.readinessDelay: a duration of at most 10m',
      'shutdown.drainTimeout: a duration longer than zero',
    ]);
    expect(problems('upstream: {url: http://127.0.0.1:4000}\nshutdown: {readinessDelay: -1}\n')).toEqual(['shutdown.readinessDelay: a duration, not a negative number']);
    // An ALB's idle timeout can be set to 4000 s: keygate's can be longer.
    expect(parseConfigText('upstream: {url: http://127.0.0.1:4000}\nlisten: {keepAliveTimeout: 4100s}\n').listen.keepAliveTimeout).toBe(4_100_000);
  });

  it('names a bad duration with its full path', () => {
    const text = 'upstream: {url: "http://a"}\nplans:\n  basic:\n    rateLimits:\n      - {limit: 5, window: "5 seconds"}\n';
    expect(problems(text)).toEqual(['plans.basic.rateLimits[0].window: expected a duration such as "500ms", "1s", "10m", "24h" or "7d", got "5 seconds"']);
  });

  it('names unknown fields (typos are not silently ignored)', () => {
    expect(problems('upstream: {url: "http://a"}\nlisten: {port: 80, hots: x}\n')).toEqual(['listen: unknown field "hots" (did you mean "host"?)']);
  });

  it('names a wrong enum value and lists the allowed ones', () => {
    expect(problems('upstream: {url: "http://a"}\nerrors: {envelope: xml}\n')[0]).toMatch(/^errors\.envelope: expected one of "jsonapi", .*got "xml"$/);
  });

  it('says a problem of one section and the checks between sections it does not touch in one round', () => {
    const text = [
      'upstream: {url: "http://a"}',
      'log: {level: loud}',
      'defaultPlan: pro',
      'plans:',
      '  free: {meters: {units: {limit: -5}}}',
      '  pro: {rateLimits: [{limit: 5, window: 5 seconds}]}',
      'routes: [{path: /v1/x, cost: {meter: unit, perRequest: 1}}]',
      'admin: {listen: {port: 8080}}',
    ].join('\n');
    // Each section's own problems in the schema's order, then those between sections.
    expect(problems(text)).toEqual([
      'plans.free.meters.units.limit: expected at least 0, got -5',
      'plans.pro.rateLimits[0].window: expected a duration such as "500ms", "1s", "10m", "24h" or "7d", got "5 seconds"',
      'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"',
      'routes[0].cost.meter: no plan defines meter "unit" (did you mean "units"?)',
      'admin.listen.port: port 8080 is the gateway\'s too (listen.port): each listener needs a port of its own',
    ]);
  });

  it('says nothing between sections that only follows from a problem already said', () => {
    const base = 'upstream: {url: "http://a"}\n';
    // A misspelt field: the plan has no meters but for it.
    expect(problems(`${base}plans: {free: {meterz: {units: {limit: 5}}}}\nroutes: [{path: /v1/x, cost: {meter: units, perRequest: 1}}]\n`)).toEqual([
      'plans.free: unknown field "meterz" (did you mean "meters"?)',
    ]);
    // A plan that is no plan: none is named "free" but for it.
    expect(problems(`${base}plans: {free: 5, pro: {}}\ndefaultPlan: free\n`)).toEqual(['plans.free: expected a mapping, got number 5']);
    // A meter's kind that is no kind: whether it is a gauge is not known.
    expect(problems(`${base}plans: {free: {meters: {rows: {kind: gaug, limit: 5}}}}\ngauges: {rows: {header: X-Rows}}\n`)).toEqual([
      'plans.free.meters.rows.kind: expected one of "consumed", "gauge", got "gaug"',
    ]);
    // A listener's port that is no port: the check of the listeners' ports waits for it.
    expect(problems(`${base}listen: {port: http}\nadmin: {listen: {port: 8082}}\n`)).toEqual(['listen.port: expected a number, got string "http"']);
    // The same misspelt field beside a field the check reads: it is something else, and the check runs.
    expect(problems(`${base}plans: {free: {apiAcess: true, meters: {units: {limit: 5}}}}\nroutes: [{path: /v1/x, cost: {meter: unit, perRequest: 1}}]\n`)).toEqual([
      'plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)',
      'routes[0].cost.meter: no plan defines meter "unit" (did you mean "units"?)',
    ]);
  });

  it('says a name given twice beside the profile\'s other problems, but none that either of its two values could make', () => {
    const twice = (field: string, lines: string) => `${field}: given twice, at lines ${lines} (a name appears once in a mapping): merge the two into one, or rename one`;
    const text = [
      'upstream: {url: "http://a"}',
      'log: {level: loud}',
      'errors:',
      '  reasons:',
      '    missing_key: {status: 401}',
      '    missing_key: {status: 4010}',
      'plans:',
      '  free: {meters: {units: {limit: 5}}}',
      '  free: {meters: {credits: {limit: 5}}}',
      'routes: [{path: /v1/x, cost: {meter: units, perRequest: 1}}]',
      'admin: {listen: {port: 8080}}',
    ].join('\n');
    // Not said: the status of the second missing_key, nor the meter only the first free defines.
    expect(problems(text)).toEqual([
      twice('errors.reasons.missing_key', '5 and 6'),
      twice('plans.free', '8 and 9'),
      'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"',
      'admin.listen.port: port 8080 is the gateway\'s too (listen.port): each listener needs a port of its own',
    ]);
  });

  it('says a mapping\'s checks of its fields together beside a problem of another of its fields (upstream, a cost, errors, keys)', () => {
    const text = [
      'upstream: {url: "localhost:4000", connections: 10, maxInFlightPerAccount: 20}',
      'errors: {envelope: problem, template: {error: "{{code}}"}, realm: "a\\"b"}',
      'plans: {p: {meters: {units: {limit: 5}}}}',
      'routes: [{path: /v1/x, cost: {meter: units, perRequest: 1, perRecord: 1, reserveRecords: 0}}]',
      'keys: {format: hex, hexLength: 7, imported: {prefix: {test: rk_test_}, alphabet: hex, length: 4}}',
    ].join('\n');
    expect(problems(text)).toEqual([
      'upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "localhost:4000"',
      'upstream.maxInFlightPerAccount: at most upstream.connections (one account cannot have more requests in flight than the pool has connections)',
      'keys.hexLength: expected at least 32, got 7',
      'keys.imported.length: at least 8 characters (got 4)',
      'keys.imported.prefix.test: this profile has no test keys (format: hex), so keys imported as test would never be accepted',
      'errors.realm: expected printable ASCII without " or \\ (it is sent in the WWW-Authenticate header), got "a\\"b"',
      'errors.template: a template shapes errors only with envelope: template (envelope is "problem")',
      'routes[0].cost.reserveRecords: expected more than 0, got 0',
      'routes[0].cost: give exactly one of perRequest or perRecord',
      // Not said: perRecord's missing records, asked only where there is an upstream to count them in (upstream.url waits to be mended).
    ]);
    // A misspelt field such a check reads: it waits (perRequst may be the perRequest it misses).
    expect(problems('upstream: {url: "http://a"}\nplans: {p: {meters: {units: {limit: 5}}}}\nroutes: [{path: /v1/x, cost: {meter: units, perRequst: 1}}]\n')).toEqual([
      'routes[0].cost: unknown field "perRequst" (did you mean "perRequest"?)',
    ]);
  });

  it('refuses a cost on a meter no plan defines', () => {
    const text = 'upstream: {url: "http://a"}\nroutes:\n  - {path: /v1/x, cost: {meter: credits, perRequest: 1}}\n';
    expect(problems(text)).toEqual(['routes[0].cost.meter: no plan defines meter "credits"']);
  });

  it('offers the meter a misspelled one most likely meant, in a route\'s cost, a gauge header and a template', () => {
    const text = [
      'upstream: {url: "http://a"}',
      'plans: {p: {meters: {units: {limit: 5}, keywords: {kind: gauge, limit: 9}}}}',
      'routes: [{path: /v1/x, cost: {meter: unit, perRequest: 1}}, {path: /v1/y, cost: {meter: Units, perRequest: 1}}]',
      'gauges: {keywrods: {header: X-Keywords}}',
      'builtins: [{path: /usage, body: {left: "{{meters.unts.remaining}}"}}]',
    ].join('\n');
    expect(problems(text)).toEqual([
      'routes[0].cost.meter: no plan defines meter "unit" (did you mean "units"?)',
      'routes[1].cost.meter: no plan defines meter "Units" (did you mean "units"?)',
      'gauges.keywrods: no plan defines meter "keywrods" (did you mean "keywords"?)',
      'builtins[0].body: "{{meters.unts.remaining}}": no plan defines meter "unts" (did you mean "units"?)',
    ]);
  });

  it('refuses text that is not YAML, showing the line and the place', () => {
    expect(problems('upstream: [unclosed\n')[0]).toMatch(/^not valid YAML/);
    // An unquoted Redis URL ending in ":" (a prefix) is a YAML mapping.
    const unquoted = problems('upstream: {url: "http://a"}\ncounters: redis://cache:6379/0?prefix=kg:\n')[0];
    expect(unquoted).toMatch(/^not valid YAML: .* at line 2, column 11:\n +counters: redis:\/\/cache:6379\/0\?prefix=kg:\n +\^/);
    // And the message says what to do, which YAML's does not.
    expect(unquoted).toMatch(/\n +\(a value that ends in ":", such as a URL with \?prefix=kg:, must be quoted: "redis:\/\/…\?prefix=kg:"\)$/);
    expect(problems('upstream: [unclosed\n')[0]).not.toContain('must be quoted');
    // A password on the line shown is masked.
    const withPassword = problems('upstream: {url: "http://a"}\ncounters: redis://:s3cret@cache:6379/0?prefix=kg:\n')[0];
    expect(withPassword).toContain('counters: redis://:***@cache:6379/0?prefix=kg:');
    expect(withPassword).not.toContain('s3cret');
    const tricky = problems('upstream: {url: "http://a"}\ncounters: redis://:pa@ss@cache:6379/0?password=s3cret&prefix=kg:\n')[0];
    expect(tricky).not.toMatch(/ss@cache|s3cret/);
  });

  it('quotes back at most 200 characters of a value, its password masked first, and says how long it was', () => {
    const [long] = problems(`upstream: {url: "http://a"}\nname: x\nbasePath: "${'a1'.repeat(60_000)}"\n`);
    expect(long).toBe(`basePath: expected a path starting with "/", such as /v1, got "${'a1'.repeat(99)}a… (120002 characters)`);
    const [masked] = problems(`upstream: {url: "htps://svc:${'p'.repeat(300)}@127.0.0.1:9311"}\n`);
    expect(masked).toBe('upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "htps://svc:***@127.0.0.1:9311"');
    // A scheme after digits, or after other scheme characters, is still one.
    const [afterDigits] = problems('upstream: {url: "1redis://svc:s3cret@h:1"}\n');
    expect(afterDigits).toContain('1redis://svc:***@h:1');
    // Two in one value, each masked; a later @ in the same run is masked with the password.
    const [two] = problems('upstream: {url: "http://a"}\nbasePath: "a://u:p1@h b://v:p2@x/c@d"\n');
    expect(two).toBe('basePath: expected a path starting with "/", such as /v1, got "a://u:***@h b://v:***@d"');
  });

  it('refuses a YAML tag it does not know (!!js/function), showing the line and the place', () => {
    expect(problems('upstream: {url: "http://a"}\nname: !!js/function "function(){}"\n')).toEqual([
      'not valid YAML: Unresolved tag: tag:yaml.org,2002:js/function at line 2, column 7:\n      name: !!js/function "function(){}"\n            ^^^^^^^^^^^^^',
    ]);
  });

  it('masks the password of a URL it quotes back in a field\'s problem', () => {
    const mistyped = problems('upstream: {url: "htps://svc:Sup3rS3cretPw@127.0.0.1:9311"}\n');
    expect(mistyped[0]).toBe('upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "htps://svc:***@127.0.0.1:9311"');
    expect(mistyped.join('\n')).not.toContain('Sup3r');
    for (const password of ['ab/cd', 'ab?cd', 'ab#cd', 'a@b/c', 'ab\\"cd', 'p@ss\\"w']) {
      const shown = problems(`upstream: {url: "htps://svc:${password}@127.0.0.1:9311"}\n`).join('\n');
      expect(shown, password).toContain('"htps://svc:***@127.0.0.1:9311"');
    }
    const notMapping = problems('upstream: "https://svc:Sup3rS3cretPw@127.0.0.1:9311"\n');
    expect(notMapping).toEqual(['upstream: expected a mapping, got string "https://svc:***@127.0.0.1:9311"']);
  });

  it('refuses store and counters URLs that serve would refuse, and a mistyped or doubled counters parameter', () => {
    expect(problems('upstream: {url: "http://a"}\nstore: postgress://k@db/k\n')).toEqual(['store: expected "sqlite:<file>" or "postgres://user:password@host:port/database"']);
    expect(problems('upstream: {url: "http://a"}\ncounters: rediss//cache:6379\n')).toEqual(['counters: expected "memory" or "redis://host:port[/db][?prefix=...]"']);
    expect(problems('upstream: {url: "http://a"}\ncounters: "redis://cache:6379/0?prefx=kg:"\n')).toEqual(['counters: unknown parameter "prefx"; a counters URL takes prefix, db, username, password, family']);
    expect(problems('upstream: {url: "http://a"}\ncounters: "redis://cache:6379/0?prefix=kg:&prefix=other:"\n')).toEqual(['counters: parameter "prefix" is given twice; give it once']);
    expect(problems('upstream: {url: "http://a"}\ncounters: "redis://cache:6379/0?prefix="\n')).toEqual(['counters: prefix is empty; give one that keeps this deployment apart, such as ?prefix=eu1: (or leave it out for keygate:)']);
    expect(problems('upstream: {url: "http://a"}\ncounters: "redis://cache:6379/0?family=7"\n')).toEqual(['counters: family must be 4 (IPv4) or 6 (IPv6), got "7"']);
    expect(parseConfigText('upstream: {url: "http://a"}\ncounters: "redis://cache:6379?family=6"\n').counters).toBe('redis://cache:6379?family=6');
    expect(parseConfigText('upstream: {url: "http://a"}\nstore: postgres://k@db:5432/k\ncounters: "redis://cache:6379/0?prefix=kg:"\n').counters).toBe('redis://cache:6379/0?prefix=kg:');
  });

  it('refuses a store or counters URL whose user, password or database name has a "%" the drivers cannot unescape, naming the part and never its text', () => {
    const bare = (part: string) => `the ${part} has a "%" not followed by two hex digits; write a "%" in it as %25`;
    const notUtf8 = (part: string) => `the ${part}'s %-escapes do not spell UTF-8 text; write a "%" in it as %25, and any other character as the %-escapes of its UTF-8 bytes`;
    const counters = (url: string) => problems(`upstream: {url: "http://a"}\ncounters: "${url}"\n`);
    const store = (url: string) => problems(`upstream: {url: "http://a"}\nstore: "${url}"\n`);
    expect(counters('redis://:100%@127.0.0.1:6379')).toEqual([`counters: ${bare('password')}`]);
    expect(counters('redis://:p%4@127.0.0.1:6379')).toEqual([`counters: ${bare('password')}`]);
    expect(counters('redis://kg%:pw@127.0.0.1:6379')).toEqual([`counters: ${bare('user')}`]);
    expect(counters('redis://:p%C3@127.0.0.1:6379')).toEqual([`counters: ${notUtf8('password')}`]);
    expect(store('postgres://u:p%FF@127.0.0.1/db')).toEqual([`store: ${notUtf8('password')}`]);
    expect(store('postgres://u:pw@127.0.0.1/d%FF')).toEqual([`store: ${notUtf8('database name')}`]);
    // Escapes that can be read, and a "%" outside the user and password (a query's value is read leniently), are taken.
    for (const fine of ['redis://:100%25@127.0.0.1:6379', 'redis://k%C3%A9:p%2F@127.0.0.1:6379', 'redis://127.0.0.1:6379?password=100%25']) {
      expect(parseConfigText(`upstream: {url: "http://a"}\ncounters: "${fine}"\n`).counters).toBe(fine);
    }
    expect(parseConfigText('upstream: {url: "http://a"}\nstore: "postgres://u:50%25@127.0.0.1/my%20db"\n').store).toBe('postgres://u:50%25@127.0.0.1/my%20db');
    // pg reads a "%" that begins no escape as itself (the password 50%), as profiles that worked before this check wrote it.
    expect(parseConfigText('upstream: {url: "http://a"}\nstore: "postgres://u:50%@127.0.0.1/db%zz"\n').store).toBe('postgres://u:50%@127.0.0.1/db%zz');
  });

  it("refuses a Redis database that is not one: Redis would count this process's windows in database 0, or the process would crash connecting", () => {
    const counters = (url: string) => problems(`upstream: {url: "http://a"}\ncounters: "${url}"\n`);
    const notOne = (db: string) => [`counters: the database must be a number from 0 to 15 (Redis has 16 unless configured otherwise), got "${db}"`];
    expect(counters('redis://cache:6379/16?prefix=kg:')).toEqual(notOne('16'));
    expect(counters('redis://cache:6379/1O')).toEqual(notOne('1O'));
    expect(counters('redis://cache:6379/abc')).toEqual(notOne('abc'));
    expect(counters('redis://cache:6379?db=x')).toEqual(notOne('x'));
    expect(counters('redis://cache:6379?db=')).toEqual(notOne(''));
    expect(counters('redis://cache:6379/10?db=11')).toEqual(['counters: the database is given twice (/10 and ?db=11); give it once, as /N']);
    for (const fine of ['redis://cache:6379', 'redis://cache:6379/', 'redis://cache:6379/15', 'redis://cache:6379?db=3']) {
      expect(parseConfigText(`upstream: {url: "http://a"}\ncounters: "${fine}"\n`).counters).toBe(fine);
    }
  });

  it('takes the API\'s name from title, else from the profile\'s id with each word capitalised', () => {
    const base = 'upstream: {url: http://127.0.0.1:4000}\n';
    expect(parseConfigText(`${base}name: seranking-data\ntitle: SE Ranking Data\n`)).toMatchObject({ name: 'seranking-data', title: 'SE Ranking Data' });
    expect(parseConfigText(`${base}name: seranking-data\n`).title).toBe('Seranking Data');
    expect(parseConfigText(`${base}name: ranksy\n`).title).toBe('Ranksy');
    expect(parseConfigText(base)).toMatchObject({ name: 'keygate', title: 'Keygate' });
    expect(problems(`${base}title: "  "\n`)).toEqual(['title: a name to show, e.g. "SE Ranking Data"']);
  });

  it('exports a JSON Schema for editors', () => {
    const schema = configJsonSchema() as { properties: Record<string, unknown>; required?: string[] };
    // title is optional, described for an editor to show, and its default is said there (it follows name).
    expect(schema.properties.title).toMatchObject({ type: 'string', description: expect.stringContaining('Default: name with each word capitalised') });
    expect(schema.required ?? []).not.toContain('title');
    expect(schema.properties).toHaveProperty('upstream');
    expect(schema.properties).toHaveProperty('plans');
    // Nothing is required: upstream.url, the last field without a default, only by keygate serve.
    expect(schema.required).toBeUndefined();
    expect(schema.properties.upstream).toMatchObject({ default: {} });
    expect(schema.properties.upstream).not.toHaveProperty('required');
    // Only standard JSON Schema (a strict validator refused zod's own "starts_with" format),
    // and the methods a route takes, for an editor to offer.
    const text = JSON.stringify(schema);
    expect(text).not.toContain('"format":"starts_with"');
    expect((schema.properties.basePath as { pattern?: string }).pattern).toBe('^\\/');
    const route = (schema.properties.routes as { items: { properties: { method: { enum?: string[] } } } }).items;
    expect(route.properties.method.enum).toEqual(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', '*']);
  });

  it("exports the template envelope in the JSON Schema, an editor taking a template profile and refusing a template that is no object or list", () => {
    const schema = configJsonSchema() as { properties: { errors: { properties: Record<string, { enum?: string[]; description?: string }> } } };
    const errors = schema.properties.errors.properties;
    expect(errors.envelope?.enum).toEqual(['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem', 'template']);
    expect(errors.template?.description).toContain('{{status}}, {{code}}, {{message}}, {{reason}}, {{type}}, {{title}}, {{retryAfter}}');
    const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(configJsonSchema());
    const withTemplate = (template: string) => `upstream: {url: "http://127.0.0.1:4000"}\nerrors:\n  envelope: template\n  template: ${template}\n`;
    const fault = '{fault: {kind: "{{code}}", text: "{{message}}", status: "{{status}}", tags: [a, 1, true, null]}}';
    expect(validate(parse(withTemplate(fault)))).toBe(true);
    expect(parseConfigText(withTemplate(fault)).errors.template).toEqual({ fault: { kind: '{{code}}', text: '{{message}}', status: '{{status}}', tags: ['a', 1, true, null] } });
    expect(validate(parse(withTemplate('"{{message}}"')))).toBe(false);
    for (const notJson of ['"{{message}}"', '{wait: .inf}']) expect(problems(withTemplate(notJson))[0]).toMatch(/^errors\.template: a JSON object or list, such as /);
  });

  it('names the field of an error template that can never render as meant, written in YAML', () => {
    const withTemplate = (template: string) => `upstream: {url: "http://127.0.0.1:4000"}\nerrors:\n  envelope: template\n  template:\n    ${template}\n`;
    expect(problems(withTemplate('fault: { kind: "{{kind}}", text: "{{message}}" }'))).toEqual([
      'errors.template.fault.kind: unknown placeholder "{{kind}}"; an error template may hold {{status}}, {{code}}, {{message}}, {{reason}}, {{type}}, {{title}}, {{retryAfter}}',
    ]);
    // Unquoted, YAML reads {{code}} as a mapping in a mapping: said so, not sent as {"{ code }":null}.
    expect(problems(withTemplate('fault: { kind: {{code}}, text: "{{message}}" }'))).toEqual(['errors.template.fault.kind: {{code}} unquoted is a YAML mapping, not a placeholder: write "{{code}}" in quotes']);
  });

  it('has its editors refuse an identityHeaders.names header name keygate refuses as no token, with the pattern of identityHeaders.drop, and take a name or false', () => {
    const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(configJsonSchema());
    const withNames = (names: string) => `upstream: {url: "http://127.0.0.1:4000"}\nidentityHeaders: {names: {${names}}}\n`;
    for (const names of ['account: "X Bad"', 'key: "X-Key:"', 'plan: ""']) {
      expect(problems(withNames(names))[0], names).toMatch(/^identityHeaders\.names\.\w+: expected a header name such as X-Consumer-ID/);
      expect(validate(parse(withNames(names))), names).toBe(false);
    }
    for (const names of ['account: X-Consumer-ID, plan: false', "key: X-Key_1!#$%&'*+.^`|~"]) {
      expect(() => parseConfigText(withNames(names)), names).not.toThrow();
      expect(validate(parse(withNames(names))), names).toBe(true);
    }
    const identity = (configJsonSchema() as { properties: { identityHeaders: { properties: { drop: { items: { pattern: string } }; names: { properties: Record<string, { anyOf: { pattern?: string }[] }> } } } } }).properties.identityHeaders.properties;
    expect(identity.names.properties.account?.anyOf.map((branch) => branch.pattern)).toEqual([undefined, identity.drop.items.pattern]);
  });

  it('has its editors refuse the bare numbers keygate refuses (window: 60 is 60 ms), and take what it takes', () => {
    const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(configJsonSchema());
    const withWindow = (window: string) => `upstream: {url: "http://127.0.0.1:4000"}\nplans:\n  a:\n    rateLimits: [{limit: 5, window: ${window}}]\n`;
    for (const window of ['60', '999', '1']) {
      expect(problems(withWindow(window))[0]).toMatch(/^plans\.a\.rateLimits\[0\]\.window: a bare number is milliseconds/);
      expect(validate(parse(withWindow(window))), window).toBe(false);
    }
    for (const window of ['1000', '1s', '1.5s', '500ms']) {
      expect(() => parseConfigText(withWindow(window))).not.toThrow();
      expect(validate(parse(withWindow(window))), window).toBe(true);
    }
  });

  it('names a profile written in code as such, not as a keygate.yaml it never came from', () => {
    const refusal = (raw: unknown, ...name: string[]) => {
      try {
        parseConfigObject(raw, ...name);
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      throw new Error('expected the profile to be refused');
    };
    const mistyped = { upstream: { url: 'http://127.0.0.1:1' }, plans: { a: { apiAcess: true } } };
    expect(refusal(mistyped)).toBe('the profile given to parseConfigObject: invalid configuration\n  - plans.a: unknown field "apiAcess" (did you mean "apiAccess"?)');
    expect(refusal(mistyped, 'profiles/acme.ts').split('\n')[0]).toBe('profiles/acme.ts: invalid configuration');
  });

  it('sums a refusal up in one line that names the first problem\'s field and counts the rest (what a log viewer showing only a message shows)', () => {
    const summary = (text: string, file?: string) => {
      try {
        parseConfigText(text, file);
      } catch (error) {
        if (error instanceof ConfigError) return error.summary;
        throw error;
      }
      throw new Error('expected the profile to be refused');
    };
    expect(summary('upstream: {url: "http://127.0.0.1:1"}\nplans: {free: {apiAcess: false}}\n')).toBe('keygate.yaml: invalid configuration: plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)');
    expect(summary('upstream: {url: "http://127.0.0.1:1"}\nlisten: {port: 99999}\nplans: {free: {apiAcess: false}}\n', 'acme.yaml')).toBe('acme.yaml: invalid configuration: listen.port: expected at most 65535, got 99999 (and 1 more)');
    expect(summary('upstream: [\n')).toMatch(/^keygate\.yaml: invalid configuration: not valid YAML: /);
    // A file that cannot be read says why, without saying twice that it cannot.
    const missing = path.join(os.tmpdir(), 'keygate-no-such-profile.yaml');
    expect(() => loadConfigFile(missing)).toThrow(expect.objectContaining({ summary: `${missing}: cannot read the profile: ENOENT (no file at ${missing})` }));
  });

  it('takes a method in any case, and names a mistyped one', () => {
    const config = parseConfigText('upstream: {url: "http://a"}\nroutes:\n  - {method: get, path: /x}\n  - {method: POST, path: /x}\n  - {method: Delete, path: /x}\n');
    expect(config.routes.map((r) => r.method)).toEqual(['GET', 'POST', 'DELETE']);
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  - {method: GETT, path: /x}\n')[0]).toMatch(/^routes\[0\]\.method: expected one of "GET", .*got "GETT"$/);
  });
});

describe('built-in endpoint templates', () => {
  it('refuses placeholders that can never resolve', () => {
    const text = [
      'upstream: {url: "http://a"}',
      'plans: {p: {meters: {units: {limit: 5}}}}',
      'builtins:',
      '  - path: /usage',
      '    body: {a: "{{meters.credits.remaining}}", b: "{{acount.id}}", c: "{{meters.units.limit}}"}',
    ].join('\n');
    expect(problems(text)).toEqual([
      'builtins[0].body: "{{meters.credits.remaining}}": no plan defines meter "credits"',
      'builtins[0].body: unknown placeholder "{{acount.id}}"; placeholders start with account, plan, key, meters, now',
    ]);
  });
});

describe('upstream and identity headers', () => {
  it('refuses an upstream URL with a path, which could not be forwarded to', () => {
    expect(problems('upstream: {url: "http://127.0.0.1:4000/api"}\n')).toEqual([
      'upstream.url: an origin such as http://127.0.0.1:4000, without a path, query or fragment (the request path and query are forwarded unchanged)',
    ]);
  });

  it('refuses an upstream URL with a query, naming the query among what an origin has not', () => {
    expect(problems('upstream: {url: "http://127.0.0.1:4000?x=1"}\n')).toEqual([
      'upstream.url: an origin such as http://127.0.0.1:4000, without a path, query or fragment (the request path and query are forwarded unchanged)',
    ]);
  });

  it('names a trusted proxy that is not an IP address or CIDR range', () => {
    expect(problems('upstream: {url: "http://a"}\ntrustedProxies: [10.0.0.0/8, 10.0.0.0/33, lb.internal]\n')).toEqual([
      'trustedProxies[1]: expected an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8, got "10.0.0.0/33"',
      'trustedProxies[2]: expected an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8, got "lb.internal"',
    ]);
    expect(parseConfigText('upstream: {url: "http://a"}\n').trustedProxies).toEqual([]);
  });

  it('refuses an empty identity header prefix, which would drop every client header', () => {
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {prefix: ""}\n')[0]).toMatch(/^identityHeaders\.prefix: /);
  });

  it('refuses an identity header prefix that begins a standard header, which would be dropped from every request', () => {
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {prefix: "Content-"}\n')).toEqual([
      'identityHeaders.prefix: "Content-" begins the standard header content-encoding, which keygate would then drop from every request as one posing as its own: choose a prefix of your own, such as "X-Keygate-"',
    ]);
    for (const [prefix, header] of [['X-', 'x-correlation-id'], ['Access-Control-', 'access-control-request-headers'], ['Idempotency-', 'idempotency-key']]) {
      expect(problems(`upstream: {url: "http://a"}\nidentityHeaders: {prefix: "${prefix}"}\n`)[0]).toMatch(new RegExp(`^identityHeaders\\.prefix: "${prefix}" begins the standard header ${header},`));
    }
    expect(parseConfigText('upstream: {url: "http://a"}\nidentityHeaders: {prefix: "X-Acme-"}\n').identityHeaders.prefix).toBe('X-Acme-');
    // Headers an earlier gateway set: any name but one the request cannot go without.
    expect(parseConfigText('upstream: {url: "http://a"}\nidentityHeaders: {drop: [X-Consumer-ID]}\n').identityHeaders.drop).toEqual(['X-Consumer-ID']);
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {drop: [X-Consumer-ID, Content-Type, "X Bad"]}\n')).toEqual([
      'identityHeaders.drop[1]: carries the request itself (its host or body): keygate cannot forward a request without it',
      'identityHeaders.drop[2]: expected a header name such as X-Consumer-ID, got "X Bad"',
    ]);
  });

  it('takes identityHeaders.names (a whole header name per field, or false) and refuses a name that is no identity header, naming the field', () => {
    const config = parseConfigText('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: X-Consumer-ID, accountName: X-Consumer-Username, plan: false}}\n');
    expect(config.identityHeaders.names).toEqual({ account: 'X-Consumer-ID', accountName: 'X-Consumer-Username', plan: false });
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: "X Bad", key: Content-Length, mode: Connection, scopes: X-Forwarded-User, plan: Authorization, accountName: 7}}\n')).toEqual([
      'identityHeaders.names.account: expected a header name such as X-Consumer-ID (letters, digits and !#$%&\'*+.^_`|~-), got "X Bad"',
      'identityHeaders.names.key: Content-Length carries the request itself (its host or body): keygate cannot forward a request without it',
      'identityHeaders.names.mode: Connection is a hop-by-hop header (it describes one connection, RFC 9110 §7.6.1): choose a name of your own, such as X-Consumer-ID',
      'identityHeaders.names.scopes: X-Forwarded-User is an X-Forwarded- header, which keygate writes itself: choose a name of your own, such as X-Consumer-ID',
      'identityHeaders.names.plan: Authorization is a standard request header, which keygate would then drop from every request as one posing as its own: choose a name of your own, such as X-Consumer-ID',
      'identityHeaders.names.accountName: expected a header name such as X-Consumer-ID, or false to leave the header out (got 7)',
    ]);
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: X-Original-URL, key: x-http-method-override}}\n')).toEqual([
      "identityHeaders.names.account: X-Original-URL is a header in which upstreams read another client, host, path or method than the request's (keygate drops a client's copy from every request): choose a name of your own, such as X-Consumer-ID",
      "identityHeaders.names.key: x-http-method-override is a header in which upstreams read another client, host, path or method than the request's (keygate drops a client's copy from every request): choose a name of your own, such as X-Consumer-ID",
    ]);
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {names: {nickname: X-Nick}}\n')[0]).toMatch(/^identityHeaders\.names: .*nickname/);
  });

  it('refuses two identity fields in one header, the prefix\'s names and underscores counted', () => {
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: X-Consumer-ID, accountName: x_consumer_id}}\n')).toEqual([
      'identityHeaders.names.accountName: x_consumer_id is the header of account too: give each field a header of its own (or false to leave one out)',
    ]);
    expect(problems('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: X-Keygate-Key}}\n')).toEqual([
      'identityHeaders.names.key: x-keygate-key is the header of account too: give each field a header of its own (or false to leave one out)',
    ]);
    expect(parseConfigText('upstream: {url: "http://a"}\nidentityHeaders: {names: {account: X-Keygate-Key, key: X-Keygate-Account}}\n').identityHeaders.names).toEqual({ account: 'X-Keygate-Key', key: 'X-Keygate-Account' });
  });

  it('refuses an identity header where clients send their key, by name or by the prefix', () => {
    const credentials = 'auth: {credentials: [{in: query, name: apikey}, {in: header, name: X-API-Key}]}\n';
    expect(problems(`upstream: {url: "http://a"}\n${credentials}identityHeaders: {names: {key: x_api_key}}\n`)).toEqual([
      "identityHeaders.names.key: X-API-Key is where clients send their key (auth.credentials[1]): keygate would write key in it for the upstream, and drop a client's key there as a forged identity: choose another header name",
    ]);
    expect(problems('upstream: {url: "http://a"}\nauth: {credentials: [{in: header, name: X-Keygate-Key}]}\n')).toEqual([
      "identityHeaders.prefix: X-Keygate-Key is where clients send their key (auth.credentials[0]): keygate would write key in it for the upstream, and drop a client's key there as a forged identity: choose another header name",
    ]);
  });

  it('refuses a realm, scopes, a credential header name and scheme that a header cannot carry, naming them', () => {
    expect(problems('upstream: {url: "http://a"}\nerrors: {realm: \'my "api"\'}\n')).toEqual([
      'errors.realm: expected printable ASCII without " or \\ (it is sent in the WWW-Authenticate header), got "my \\"api\\""',
    ]);
    expect(problems('upstream: {url: "http://a"}\nscopes: [read, "write✓", "two words"]\n')).toEqual([
      'scopes[1]: expected a scope of printable ASCII characters without spaces, " or \\ (sent to the upstream in a header), got "write✓"',
      'scopes[2]: expected a scope of printable ASCII characters without spaces, " or \\ (sent to the upstream in a header), got "two words"',
    ]);
    expect(parseConfigText('upstream: {url: "http://a"}\nscopes: ["*", "domains:read", "x.y/z"]\n').scopes).toEqual(['*', 'domains:read', 'x.y/z']);
    expect(problems('upstream: {url: "http://a"}\nauth: {credentials: [{in: header, name: "X API Key", scheme: "Bearer✓"}]}\n')).toEqual([
      'auth.credentials[0].name: expected a header name such as Authorization or X-API-Key, got "X API Key"',
      'auth.credentials[0].scheme: expected one word such as Bearer or Token (it is sent in the WWW-Authenticate header), or none, got "Bearer✓"',
    ]);
  });

  it('takes errors.challenge as one authentication scheme (an HTTP token), off unless given, and refuses another value naming the field, as an editor does', () => {
    const withChallenge = (challenge: string) => `upstream: {url: "http://a"}\nauth: {credentials: [{in: query, name: apikey}]}\nerrors: {challenge: ${challenge}}\n`;
    expect(parseConfigText('upstream: {url: "http://a"}\n').errors.challenge).toBeUndefined();
    expect(parseConfigText(withChallenge('Key')).errors.challenge).toBe('Key');
    const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(configJsonSchema());
    for (const challenge of ['Key', 'ApiKey', 'X-Key.v2']) expect(validate(parse(withChallenge(challenge))), challenge).toBe(true);
    const expected = "one word such as Key, other than none (the scheme WWW-Authenticate names: letters, digits and !#$%&'*+.^_`|~-; leave challenge out for no challenge)";
    // Two words, a quote, a letter outside ASCII, nothing, and "none" (a credential's word for no scheme) in any case.
    for (const [challenge, got] of [['"Key realm"', '"Key realm"'], ['\'Key"\'', '"Key\\""'], ['"Schlüssel"', '"Schlüssel"'], ['""', '""'], ['none', '"none"'], ['NONE', '"NONE"']]) {
      expect(problems(withChallenge(challenge as string)), challenge).toEqual([`errors.challenge: expected ${expected}, got ${got}`]);
      expect(validate(parse(withChallenge(challenge as string))), challenge).toBe(false);
    }
  });

  it('says a limit or cost too large for a number (.inf, 1e400, 400 nines) or past 15 digits is too large, and the most it may be; .nan is no number', () => {
    const nines = '9'.repeat(400);
    expect(problems(`upstream: {url: "http://a"}\nplans: {p: {meters: {units: {limit: .inf}, credits: {limit: 1e16}}, rateLimits: [{limit: .nan, window: 1s}, {limit: ${nines}, window: 1m}, {limit: 1e400, window: 1h}]}}\n`)).toEqual([
      'plans.p.rateLimits[0].limit: expected a finite number, got NaN',
      "plans.p.rateLimits[1].limit: too large: a window's limit is at most 999999999999999",
      "plans.p.rateLimits[2].limit: too large: a window's limit is at most 999999999999999",
      "plans.p.meters.units.limit: too large: a meter's limit is at most 999999999999999",
      "plans.p.meters.credits.limit: too large: a meter's limit is at most 999999999999999",
    ]);
    const route = (cost: string) => problems(`upstream: {url: "http://a"}\nplans: {p: {meters: {units: {limit: 5}}}}\nroutes: [{path: /x, cost: {meter: units, ${cost}}}]\n`);
    expect(route('perRequest: 1e400')).toEqual(['routes[0].cost.perRequest: too large: a cost is at most 999999999999999']);
    expect(route(`perRecord: ${nines}, records: {header: X-N}, reserveRecords: 1e400`)).toEqual([
      'routes[0].cost.perRecord: too large: a cost is at most 999999999999999',
      'routes[0].cost.reserveRecords: too large: reserveRecords is at most 999999999999999',
    ]);
    // The most is allowed.
    expect(parseConfigText('upstream: {url: "http://a"}\nplans: {p: {meters: {units: {limit: 999999999999999}}, rateLimits: [{limit: 999999999999999, window: 1s}]}}\n').plans.p?.meters.units?.limit).toBe(999_999_999_999_999);
  });

  it('has no plan or meter named after what every JavaScript object has', () => {
    const config = parseConfigText('upstream: {url: "http://a"}\nplans: {pro: {meters: {units: {limit: 5}}}}\n');
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(config.plans[name]).toBeUndefined();
      expect(config.plans.pro?.meters[name]).toBeUndefined();
    }
  });

  it('names a field called __proto__ (a plan of that name vanished, or left only "at least one plan")', () => {
    expect(problems('upstream: {url: "http://a"}\nplans:\n  __proto__: {api: true}\n')).toEqual(['plans.__proto__: "__proto__" cannot be a name here (JavaScript reserves it); choose another']);
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free: {}\n  __proto__: {api: true}\n')).toEqual(['plans.__proto__: "__proto__" cannot be a name here (JavaScript reserves it); choose another']);
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free: {meters: {__proto__: {limit: 5}}}\n')).toEqual(['plans.free.meters.__proto__: "__proto__" cannot be a name here (JavaScript reserves it); choose another']);
    expect(problems('{"__proto__": {}, "upstream": {"url": "http://a"}}')).toEqual(['__proto__: "__proto__" cannot be a name here (JavaScript reserves it); choose another']);
    // The profile's other problems are still named beside it. (With no other plan, "nope"
    // would go unsaid: a check of the plans' names waits for a profile that has some.)
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free: {}\n  __proto__: {api: true}\ndefaultPlan: nope\nlisten: {prot: 1}\n')).toEqual([
      'plans.__proto__: "__proto__" cannot be a name here (JavaScript reserves it); choose another',
      'listen: unknown field "prot" (did you mean "port"?)',
      'defaultPlan: no plan named "nope"',
    ]);
  });

  it('names a value nested thousands of levels deep (found by test/fuzz/config.test.ts), not a RangeError, and says so at once', () => {
    /** `depth` mappings, one inside the next. */
    const nested = (depth: number): unknown => {
      let value: unknown = 1;
      for (let i = 0; i < depth; i++) value = { x: value };
      return value;
    };
    const refused = (load: () => unknown): string[] => {
      try {
        load();
      } catch (error) {
        if (error instanceof ConfigError) return error.problems;
        throw error;
      }
      throw new Error('expected the profile to be refused');
    };
    const tooDeep = 'nested more than 64 mappings or lists deep (no field of a profile is): write it flatter';
    /** The first mapping past the 64th: the field 64 names down (`segments` of them in `at`). */
    const path = (at: string, segments: number) => `${at}${'.x'.repeat(64 - segments)}`;
    // In code (a library's profile object), and in a file, in a built-in's body (a template of any JSON) and elsewhere.
    expect(refused(() => parseConfigObject({ upstream: { url: 'http://a' }, builtins: [{ path: '/v1/me', body: nested(10_000) }] }))).toEqual([`${path('builtins[0].body', 3)}: ${tooDeep}`]);
    expect(refused(() => parseConfigObject({ upstream: { url: 'http://a' }, plans: { p: nested(3_000) } }))).toEqual([`${path('plans.p', 2)}: ${tooDeep}`]);
    expect(refused(() => parseConfigText(`upstream: {url: "http://a"}\nbuiltins:\n  - {path: /v1/me, body: ${'{x: '.repeat(500)}1${'}'.repeat(500)}}\n`))).toEqual([`${path('builtins[0].body', 3)}: ${tooDeep}`]);
    // As deep as a profile may go, it loads.
    expect(parseConfigObject({ upstream: { url: 'http://a' }, builtins: [{ path: '/v1/me', body: nested(60) }] }).builtins).toHaveLength(1);
  });

  it('says a file nested deeper than YAML is read (hundreds of [ or indented lists) is nested too deeply, naming the line, not "Maximum call stack size exceeded"', () => {
    const said = (line: number) => `nested too deeply at line ${line}: lists or mappings hundreds deep, one inside another (no field of a profile goes more than 64 deep): write it flatter`;
    const flow = (depth: number) => `upstream: {url: "http://a"}\nname: x\nbuiltins: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
    for (const depth of [5_000, 50_000]) expect(problems(flow(depth))).toEqual([said(3)]);
    // Indented: the line is where the parser's stack ran out, inside the nesting.
    const block = `upstream: {url: "http://a"}\nbuiltins:\n${Array.from({ length: 3_000 }, (_, i) => `${' '.repeat(i + 2)}- `).join('\n')}1\n`;
    const [problem, ...more] = problems(block);
    expect(more).toEqual([]);
    expect(problem).toMatch(/^nested too deeply at line \d+: lists or mappings hundreds deep/);
    expect(Number(/line (\d+)/.exec(problem ?? '')?.[1])).toBeGreaterThan(2);
  });

  it('keeps a __proto__ key in a built-in endpoint\'s body, a template copied key by key', () => {
    const config = parseConfigText('upstream: {url: "http://a"}\nbuiltins:\n  - {path: /v1/me, body: {__proto__: {a: 1}, id: "{{account.id}}"}}\n');
    expect(Object.keys(config.builtins[0]?.body as object)).toEqual(['__proto__', 'id']);
  });

  it('names a scope a route or built-in endpoint requires that is not listed (only * keys could pass), with or without a cost', () => {
    const profile = [
      'upstream: {url: "http://a"}',
      'scopes: [forecast:read]',
      'plans: {p: {meters: {units: {limit: 5}}}}',
      'routes:',
      '  - {method: GET, path: /v1/alerts, scopes: [forcast:read]}',
      '  - {method: GET, path: /v1/paid, scopes: [forecast:read, forecast:wirte], cost: {meter: units, perRequest: 1}}',
      'builtins:',
      '  - {path: /v1/me, scopes: [acount:read], body: {}}',
    ].join('\n');
    expect(problems(profile)).toEqual([
      // With the listed scope a typo most likely meant; none where none is near.
      'routes[0].scopes[0]: unknown scope "forcast:read" (did you mean "forecast:read"?); list it under scopes',
      'routes[1].scopes[1]: unknown scope "forecast:wirte"; list it under scopes',
      'builtins[0].scopes[0]: unknown scope "acount:read"; list it under scopes',
    ]);
    // A plan's own list, likewise.
    expect(problems('upstream: {url: "http://a"}\nscopes: [forecast:read]\nplans: {p: {scopes: [Forecast:Read]}}\n')).toEqual(['plans.p.scopes[0]: unknown scope "Forecast:Read" (did you mean "forecast:read"?)']);
  });

  it('refuses a scope a route requires when no scopes are listed and no plan names it: no key could be given it', () => {
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  - {path: /v1/*, scopes: [metrics:read]}\n')).toEqual([
      'routes[0].scopes[0]: unknown scope "metrics:read"; list it under scopes (none are listed, so no key could be given it, nor call this route)',
    ]);
    // A plan's own list gives it to keys on that plan.
    expect(parseConfigText('upstream: {url: "http://a"}\nplans: {p: {scopes: [metrics:read]}}\nroutes:\n  - {path: /v1/*, scopes: [metrics:read]}\n').routes[0]?.scopes).toEqual(['metrics:read']);
  });

  it('refuses a gauge header for a meter no plan has as a gauge (its value was dropped unread)', () => {
    const plans = 'plans: {p: {meters: {keywords: {kind: gauge, limit: 5}, units: {limit: 5}}}}';
    expect(problems(`upstream: {url: "http://a"}\n${plans}\ngauges: {keywrods: {header: X-Keywords}, units: {header: X-Units}}\n`)).toEqual([
      'gauges.keywrods: no plan defines meter "keywrods" (did you mean "keywords"?)',
      'gauges.units: "units" is a consumed meter on every plan that has it: a gauge header reports a meter of kind gauge',
    ]);
    expect(parseConfigText(`upstream: {url: "http://a"}\n${plans}\ngauges: {keywords: {header: X-Keywords}}\n`).gauges).toEqual({ keywords: { header: 'X-Keywords' } });
  });

  it('takes log.adminRequests as true, false or "exceptProbes" (the default), and names the field otherwise', () => {
    expect(parseConfigText('upstream: {url: "http://a"}\n').log.adminRequests).toBe('exceptProbes');
    expect(parseConfigText('upstream: {url: "http://a"}\nlog: {adminRequests: true}\n').log.adminRequests).toBe(true);
    expect(parseConfigText('upstream: {url: "http://a"}\nlog: {adminRequests: exceptProbes}\n').log.adminRequests).toBe('exceptProbes');
    expect(problems('upstream: {url: "http://a"}\nlog: {adminRequests: probes}\n')).toEqual(['log.adminRequests: expected true, false or "exceptProbes" (got "probes")']);
  });

  it('takes keys.rotation as true, false or "replace", and names the field otherwise', () => {
    expect(parseConfigText('upstream: {url: "http://a"}\nkeys: {rotation: replace}\n').keys.rotation).toBe('replace');
    expect(parseConfigText('upstream: {url: "http://a"}\n').keys.rotation).toBe(true);
    expect(problems('upstream: {url: "http://a"}\nkeys: {rotation: instant}\n')).toEqual(['keys.rotation: expected true, false or "replace" (got "instant")']);
  });

  it('takes keys.requireScopes (default false), and refuses it beside a plan whose keys may carry no scope: no key could be made there', () => {
    expect(parseConfigText('upstream: {url: "http://a"}\n').keys.requireScopes).toBe(false);
    expect(parseConfigText('upstream: {url: "http://a"}\nkeys: {requireScopes: true}\nscopes: [metrics:read]\n').keys.requireScopes).toBe(true);
    expect(problems('upstream: {url: "http://a"}\nkeys: {requireScopes: true}\nplans: {free: {}, paid: {scopes: []}}\n')).toEqual([
      'keys.requireScopes: every key needs a scope, but plan "free" allows none (neither it nor the profile lists any scopes), so no key could be created on it',
      'keys.requireScopes: every key needs a scope, but plan "paid" allows none (its scopes list is empty), so no key could be created on it',
    ]);
    // A plan's own list is enough where the profile lists none.
    expect(parseConfigText('upstream: {url: "http://a"}\nkeys: {requireScopes: true}\nplans: {p: {scopes: ["*"]}}\n').keys.requireScopes).toBe(true);
  });

  it('takes keys.imported as prefixes, an alphabet and a length, and names the field that is wrong', () => {
    const base = "upstream: {url: 'http://a'}\nkeys: {prefix: {live: rk_live_, test: rk_test_}, imported: ";
    expect(parseConfigText(`${base}{prefix: {live: rk_live_, test: rk_test_}, length: 24}}\n`).keys.imported).toEqual({ prefix: { live: 'rk_live_', test: 'rk_test_' }, alphabet: 'base62', length: 24 });
    expect(parseConfigText(`${base}{alphabet: hex, length: {min: 32, max: 40}}}\n`).keys.imported).toEqual({ prefix: {}, alphabet: 'hex', length: { min: 32, max: 40 } });
    expect(problems(`${base}{prefix: {live: rk_}, length: 6}}\n`)).toEqual(['keys.imported.length: at least 8 characters (got 6)']);
    expect(problems(`${base}{length: 12}}\n`)).toEqual(['keys.imported.length: at least 16 characters for keys without a prefix (got 12)']);
    expect(problems(`${base}{prefix: {live: rk_}, length: {min: 30, max: 20}}}\n`)).toEqual(['keys.imported.length: min (30) is above max (20)']);
    expect(problems(`${base}{prefix: {live: rk_}, length: 300}}\n`)).toEqual(['keys.imported.length: at most 256 characters (got 300)']);
    expect(problems(`${base}{prefix: {live: "rk live"}, length: 24}}\n`)).toEqual(['keys.imported.prefix.live: expected letters, digits, "_" and "-" only, such as "rk_live_", got "rk live"']);
    // keys.prefix.live takes "" for keys without a prefix; here a mode without one is left out, and the message says so.
    expect(problems(`${base}{prefix: {live: ""}, length: 32}}\n`)).toEqual([
      'keys.imported.prefix.live: an empty prefix: for keys without a prefix, leave the mode out (prefix: {} or no prefix at all)',
    ]);
    expect(problems(`${base}{prefix: {live: rk_}, alphabet: base36, length: 24}}\n`)[0]).toMatch(/^keys\.imported\.alphabet: /);
    expect(problems("upstream: {url: 'http://a'}\nkeys: {imported: {prefix: {test: rk_test_}, length: 24}}\n")).toEqual([
      'keys.imported.prefix.test: this profile has no test keys (no keys.prefix.test), so keys imported as test would never be accepted',
    ]);
  });

  it('says which characters a key prefix may hold', () => {
    expect(problems('upstream: {url: "http://a"}\nkeys: {prefix: {live: sk-live-, test: "sk test"}}\n')).toEqual([
      'keys.prefix.live: expected letters, digits and "_" only, such as "sk_live_", got "sk-live-"',
      'keys.prefix.test: expected letters, digits and "_" only, such as "sk_test_", got "sk test"',
    ]);
  });

  it('refuses two listeners on one port (serve failed on the second, blaming "another process")', () => {
    expect(problems('upstream: {url: "http://a"}\nlisten: {port: 9520}\nadmin: {listen: {port: 9520}}\ndashboard: {listen: {host: 0.0.0.0, port: 9520}}\n')).toEqual([
      "admin.listen.port: port 9520 is the gateway's too (listen.port): each listener needs a port of its own",
      "dashboard.listen.port: port 9520 is the gateway's too (listen.port), and dashboard.listen.host 0.0.0.0 (every IPv4 address) and listen.host 127.0.0.1 overlap: each listener needs a port of its own",
    ]);
    // `::` takes the port on IPv4 addresses too; `0.0.0.0` on every IPv4 one only.
    expect(problems('upstream: {url: "http://a"}\nlisten: {host: "::", port: 9522}\nadmin: {listen: {host: 127.0.0.1, port: 9522}}\n')).toEqual([
      "admin.listen.port: port 9522 is the gateway's too (listen.port), and admin.listen.host 127.0.0.1 and listen.host :: (every address) overlap: each listener needs a port of its own",
    ]);
    // localhost is 127.0.0.1 (and ::1): serve listened on it, then the admin API was refused, blaming "another process".
    expect(problems('upstream: {url: "http://a"}\nlisten: {host: localhost, port: 9524}\nadmin: {listen: {host: 127.0.0.1, port: 9524}}\ndashboard: {listen: {host: "::1", port: 9524}}\n')).toEqual([
      "admin.listen.port: port 9524 is the gateway's too (listen.port), and admin.listen.host 127.0.0.1 and listen.host localhost (127.0.0.1, and ::1 on most systems) overlap: each listener needs a port of its own",
      "dashboard.listen.port: port 9524 is the gateway's too (listen.port), and dashboard.listen.host ::1 and listen.host localhost (127.0.0.1, and ::1 on most systems) overlap: each listener needs a port of its own",
    ]);
    // One address written two ways is one; no host is every address, as `::` is.
    expect(problems('upstream: {url: "http://a"}\nlisten: {host: "::ffff:127.0.0.1", port: 9525}\nadmin: {listen: {host: 127.0.0.1, port: 9525}}\ndashboard: {listen: {host: "", port: 9526}}\n')).toEqual([
      "admin.listen.port: port 9525 is the gateway's too (listen.port), and admin.listen.host 127.0.0.1 and listen.host ::ffff:127.0.0.1 overlap: each listener needs a port of its own",
    ]);
    expect(problems('upstream: {url: "http://a"}\nlisten: {host: "0:0::0:1", port: 9527}\nadmin: {listen: {host: "::1", port: 9527}}\ndashboard: {listen: {host: "", port: 9527}}\n')).toEqual([
      "admin.listen.port: port 9527 is the gateway's too (listen.port), and admin.listen.host ::1 and listen.host 0:0::0:1 overlap: each listener needs a port of its own",
      "dashboard.listen.port: port 9527 is the gateway's too (listen.port), and dashboard.listen.host \"\" (every address) and listen.host 0:0::0:1 overlap: each listener needs a port of its own",
    ]);
    // Port 0 (any free port), other addresses, IPv4-any beside an IPv6 one, or a dashboard turned off: no clash.
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {port: 0}\nadmin: {listen: {port: 0}}\n').admin.listen.port).toBe(0);
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {host: 127.0.0.1, port: 9521}\nadmin: {listen: {host: 127.0.0.2, port: 9521}}\n').admin.listen.port).toBe(9521);
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {host: 0.0.0.0, port: 9523}\nadmin: {listen: {host: "::1", port: 9523}}\n').admin.listen.port).toBe(9523);
    // A link-local address with its zone (serve listens there) is compared, not taken for a bad URL:
    // `keygate check` and serve stopped on "Invalid URL".
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {host: "fe80::1%eth0", port: 9529}\nadmin: {listen: {host: 127.0.0.1, port: 9529}}\n').admin.listen.port).toBe(9529);
    expect(problems('upstream: {url: "http://a"}\nlisten: {host: "fe80::1%eth0", port: 9531}\nadmin: {listen: {host: "FE80:0::1%eth0", port: 9531}}\ndashboard: {listen: {host: "fe80::1%eth1", port: 9531}}\n')).toEqual([
      "admin.listen.port: port 9531 is the gateway's too (listen.port), and admin.listen.host FE80:0::1%eth0 and listen.host fe80::1%eth0 overlap: each listener needs a port of its own",
    ]);
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {host: localhost, port: 9528}\nadmin: {listen: {host: 127.0.0.2, port: 9528}}\ndashboard: {listen: {host: "::2", port: 9528}}\n').admin.listen.port).toBe(9528);
    expect(parseConfigText('upstream: {url: "http://a"}\nlisten: {port: 9530}\ndashboard: {enabled: false, listen: {port: 9530}}\n').dashboard.listen.port).toBe(9530);
    // Nor a gateway turned off: its listener is not opened.
    expect(parseConfigText('gateway: false\nadmin: {listen: {port: 8080}}\n').admin.listen.port).toBe(8080);
  });

  it('takes gateway: false without upstream.url, and refuses an upstream beside it (nothing is forwarded, nothing started)', () => {
    expect(parseConfigText('name: x\n').gateway).toBe(true);
    expect(parseConfigText('gateway: false\n')).toMatchObject({ gateway: false, upstream: { timeout: 30_000, caseSensitivePaths: true, connections: 128 } });
    expect(problems('gateway: false\nupstream: {url: "http://127.0.0.1:4000"}\n')).toEqual([
      'upstream.url: gateway: false forwards nothing: remove upstream.url, or remove gateway: false to run the gateway',
    ]);
    expect(problems('gateway: false\nupstream: {url: "http://127.0.0.1:0", spawn: [node, upstream.js]}\n')).toEqual([
      'upstream.spawn: gateway: false forwards nothing, so there is no upstream to start: remove upstream.spawn, or remove gateway: false to run the gateway',
    ]);
    expect(problems('gateway: no\n')).toEqual(['gateway: expected true or false, got string "no"']);
  });

  it('takes a per-record cost without records under gateway: false (each settle of POST /v1/check gives the count) and in a profile without an upstream (the library\'s), and still refuses it with an upstream to forward to', () => {
    const routes = 'plans: {p: {meters: {rows: {limit: 500}}}}\nroutes: [{path: /v1/rows, cost: {meter: rows, perRecord: 1, reserveFromQuery: limit}}]\n';
    expect(parseConfigText(`gateway: false\n${routes}`).routes[0]?.cost).toEqual({ meter: 'rows', perRecord: 1, reserveRecords: 1, reserveFromQuery: 'limit' });
    expect(problems(`upstream: {url: "http://127.0.0.1:4000"}\n${routes}`)).toEqual(['routes[0].cost.records: perRecord needs records: { header } or { json }']);
    // Nor a library's profile (no upstream, the gateway not turned off): its settle gives the count.
    expect(parseConfigText(routes).routes[0]?.cost).toMatchObject({ meter: 'rows', perRecord: 1 });
    expect(problems(`upstream: {spawn: [node, upstream.js], url: "http://127.0.0.1:0"}\n${routes}`)).toEqual(['routes[0].cost.records: perRecord needs records: { header } or { json }']);
  });

  it('refuses a second route for every method at the same path (the first would win; the second\'s scopes and cost would never apply)', () => {
    for (const [first, second] of [['/v1/x', '/v1/x'], ['/v1/:a', '/v1/:b'], ['/v1/x', '/v1/x/']]) {
      expect(problems(`upstream: {url: "http://a"}\nscopes: [admin]\nroutes:\n  - {path: "${first}", scopes: [admin]}\n  - {path: "${second}"}\n`), `${first} ${second}`).toEqual([
        `routes[1]: ${second} is declared twice for every method (the first would win; the second's scopes and cost would never apply)`,
      ]);
    }
    // `::` is a colon itself: these are two paths.
    expect(parseConfigText('upstream: {url: "http://a"}\nroutes:\n  - {path: "/v1/items::import"}\n  - {path: "/v1/items::export"}\n').routes).toHaveLength(2);
    // A specific method ahead of the route for every method is what that is for.
    expect(parseConfigText('upstream: {url: "http://a"}\nroutes:\n  - {method: GET, path: /v1/x}\n  - {path: /v1/x}\n  - {path: "/v1/:a-:b"}\n  - {path: "/v1/:c"}\n').routes).toHaveLength(4);
  });

  it('refuses a bare number under a second as a duration: it is milliseconds, and was surely meant as seconds', () => {
    expect(problems('upstream: {url: "http://a", timeout: 30}\nplans: {p: {rateLimits: [{limit: 5, window: 60}]}}\n')).toEqual([
      'upstream.timeout: a bare number is milliseconds: 30 would be 30 ms; write "30s" (or "30ms" if that is meant)',
      'plans.p.rateLimits[0].window: a bare number is milliseconds: 60 would be 60 ms; write "60s" (or "60ms" if that is meant)',
    ]);
    // Said with a unit, or a whole second and more in milliseconds, it stands.
    const config = parseConfigText('upstream: {url: "http://a", timeout: 30000}\nplans: {p: {rateLimits: [{limit: 5, window: 500ms}, {limit: 9, window: 2000}]}}\n');
    expect(config.upstream.timeout).toBe(30_000);
    expect(config.plans.p?.rateLimits.map((rl) => rl.window)).toEqual([500, 2000]);
  });

  it('refuses a duration over 100 years, which would put a block\'s end past any date', () => {
    const profile = 'upstream: {url: "http://a"}\nplans: {p: {rateLimits: [{limit: 5, window: 1s}], block: {after: 1, within: 1m, duration: 36501d, max: 99999999999999999999d}}}\n';
    expect(problems(profile)).toEqual(['plans.p.block.duration: a duration of at most 36500d (100 years)', 'plans.p.block.max: a duration of at most 36500d (100 years)']);
    expect(parseConfigText(profile.replace('36501d', '36500d').replace('99999999999999999999d', '1h')).plans.p?.block?.duration).toBe(36_500 * 86_400_000);
  });

  it('suggests the field a typo meant, and names the choices of a credential\'s "in"', () => {
    const profile = [
      'upstream: {url: "http://a", timout: 5s}',
      'auth: {credentials: [{in: headr, name: X}]}',
      'plans: {p: {apiAcess: true, rateLimits: [{limit: 1, windw: 1s}]}}',
      'zzz: 1',
    ].join('\n');
    expect(problems(profile)).toEqual([
      'upstream: unknown field "timout" (did you mean "timeout"?)',
      'auth.credentials[0].in: expected one of "header", "query", got "headr"',
      'plans.p.rateLimits[0].window: required',
      'plans.p.rateLimits[0]: unknown field "windw" (did you mean "window"?)',
      'plans.p: unknown field "apiAcess" (did you mean "apiAccess"?)',
      '(top level): unknown field "zzz"',
    ]);
  });

  it('says a negative duration once, and suggests no field for a name too short to be a typo of one', () => {
    expect(problems('upstream: {url: "http://a", timeout: -5}\n')).toEqual(['upstream.timeout: a duration, not a negative number']);
    expect(problems('upstream: {url: "http://a"}\nauth: {credentials: [{in: header, zz: 1}]}\n')).toEqual(['auth.credentials[0]: unknown field "zz" (the fields here: in, name, scheme)']);
  });

  it('says to indent a field written at the level of the empty section above it, which has such a field (was: only "unknown field")', () => {
    // `url:` at the start of the line under `upstream:`: YAML reads upstream as empty and url as a top-level field.
    expect(problems('upstream:\nurl: http://127.0.0.1:4000\n')).toEqual([
      'upstream: expected a mapping, got an empty value (an empty one is written "upstream: {}")',
      '(top level): unknown field "url" (upstream, above it, is empty and has a field "url": indent url under upstream)',
    ]);
    expect(problems('upstream:\nurl: http://127.0.0.1:4000\ntimeout: 5s\n')[1]).toBe(
      '(top level): unknown fields "url", "timeout" (upstream, above them, is empty and has fields "url", "timeout": indent them under upstream)',
    );
    // A plan's fields under an empty plan: read as plans of their own.
    expect(problems('upstream: {url: "http://a"}\nplans:\n  scale:\n  rateLimits: [{limit: 5, window: 10s}]\n')).toEqual([
      'plans.scale: expected a mapping, got an empty value (an empty one is written "scale: {}")',
      'plans.rateLimits: expected a mapping, got a list (plans.scale, above it, is empty and has a field "rateLimits": indent rateLimits under scale)',
    ]);
    expect(problems('upstream: {url: "http://a"}\nadmin:\n  listen:\n  port: 9001\n')[1]).toBe(
      'admin: unknown field "port" (the fields here: listen, tokenEnv, readTokenEnv) (admin.listen, above it, is empty and has a field "port": indent port under listen)',
    );
    // No hint where no empty section above takes the field, or the empty one is below it.
    expect(problems('upstream: {url: "http://a"}\nfoo: 1\n')).toEqual(['(top level): unknown field "foo"']);
    expect(problems('url: http://a\nupstream:\n')[1]).toBe('(top level): unknown field "url"');
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free:\n  pro: {}\n')).toEqual(['plans.free: expected a mapping, got an empty value (an empty one is written "free: {}")']);
  });

  it('says how an empty mapping or list is written where a field was left with nothing after its colon (YAML reads that as null)', () => {
    // A plan with every default, written as `free:`: was "expected a mapping, got null".
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free:\n  pro: {}\n')).toEqual(['plans.free: expected a mapping, got an empty value (an empty one is written "free: {}")']);
    expect(problems('upstream: {url: "http://a"}\nplans:\n  free:\n    rateLimits:\n')).toEqual(['plans.free.rateLimits: expected a list, got an empty value (an empty one is written "rateLimits: []")']);
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  -\n')).toEqual(['routes[0]: expected a mapping, got an empty value (an empty one is written "- {}")']);
    // A scalar left empty: was "expected a number, got null", a null the file does not show.
    expect(problems('upstream: {url: "http://a"}\nlisten: {port: }\n')).toEqual(['listen.port: expected a number, got an empty value (nothing after its colon)']);
    expect(problems('upstream: {url: "http://a"}\nscopes:\n  - read\n  -\n')).toEqual(['scopes[1]: expected a string, got an empty value (nothing after its "-")']);
  });

  it("says a credential's place written as a field ({ header: X-API-Key }, as other gateways write it) is a value of in", () => {
    // Was: 'auth.credentials[0].in: expected one of "header", "query", got nothing', the field "header" unexplained.
    expect(problems('upstream: {url: "http://a"}\nauth: {credentials: [{header: X-API-Key}]}\n')).toEqual([
      'auth.credentials[0].in: expected one of "header", "query", got nothing ("header" is a value of in, not a field; the fields here: in, name, scheme)',
    ]);
    expect(problems('upstream: {url: "http://a"}\nauth: {credentials: [{name: apikey}]}\n')).toEqual(['auth.credentials[0].in: expected one of "header", "query", got nothing']);
  });

  it('says how the profile writes a window given as the CLI writes it (5-per-1s)', () => {
    // Was: 'expected a mapping, got string "5-per-1s"', with the words plans list and --rate-limit use.
    expect(problems('upstream: {url: "http://a"}\nplans: {free: {rateLimits: [5-per-1s]}}\n')).toEqual([
      'plans.free.rateLimits[0]: expected a mapping, got string "5-per-1s" (a window in the profile is written { limit: 5, window: 1s })',
    ]);
    expect(problems('upstream: {url: "http://a"}\nroutes:\n  - {path: /x, rateLimits: [100-per-1h-per-account]}\n')).toEqual([
      'routes[0].rateLimits[0]: expected a mapping, got string "100-per-1h-per-account" (a window in the profile is written { limit: 100, window: 1h, scope: account })',
    ]);
    expect(problems('upstream: {url: "http://a"}\nplans: {free: {rateLimits: [fast]}}\n')).toEqual(['plans.free.rateLimits[0]: expected a mapping, got string "fast"']);
  });

  it('lists the few fields that belong where an unknown one is no typo of any, so the one meant is found without the docs', () => {
    // Where the admin token goes: it is never in the file, but the variable that holds it is.
    expect(problems('upstream: {url: "http://a"}\nadmin: {token: abc}\n')).toEqual(['admin: unknown field "token" (the fields here: listen, tokenEnv, readTokenEnv)']);
    expect(problems('upstream: {url: "http://a"}\nkeys: {prefix: {production: wx_}}\n')).toEqual(['keys.prefix: unknown field "production" (the fields here: live, test)']);
    expect(problems('upstream: {url: "http://a"}\nplans: {free: {rateLimits: [{limit: 5, window: 1s, per: key}]}}\n')).toEqual([
      'plans.free.rateLimits[0]: unknown field "per" (the fields here: name, limit, window, scope)',
    ]);
    // A typo is said with the field it meant, not the list; the top level has too many fields to list.
    expect(problems('upstream: {url: "http://a"}\nlisten: {prot: 1, adress: x}\n')).toEqual(['listen: unknown fields "prot" (did you mean "port"?), "adress"']);
    expect(problems('upstream: {url: "http://a"}\nzzz: 1\n')).toEqual(['(top level): unknown field "zzz"']);
  });

  it("says a duration given as a fraction of a millisecond, .inf, 1e400 or true is no duration, in keygate's words (was zod's \"Invalid input (got null)\")", () => {
    const windowOf = (value: string) => problems(`upstream: {url: "http://a"}\nplans: {free: {rateLimits: [{limit: 5, window: ${value}}]}}\n`);
    expect(windowOf('1.5')).toEqual(['plans.free.rateLimits[0].window: a duration such as "500ms", "1s", "10m", "24h" or "7d", or a whole number of milliseconds (got 1.5)']);
    expect(windowOf('1e400')).toEqual(['plans.free.rateLimits[0].window: a duration of at most 36500d (100 years) (got Infinity)']);
    expect(windowOf('.inf')).toEqual(['plans.free.rateLimits[0].window: a duration of at most 36500d (100 years) (got Infinity)']);
    expect(windowOf('true')).toEqual(['plans.free.rateLimits[0].window: a duration such as "500ms", "1s", "10m", "24h" or "7d" (got true)']);
    expect(problems('upstream: {url: "http://a", timeout: 2.5}\n')).toEqual(['upstream.timeout: a duration such as "500ms", "1s", "10m", "24h" or "7d", or a whole number of milliseconds (got 2.5)']);
  });
});

describe('a profile file as an editor saved it', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keygate-profile-bytes-'));
  const refusal = (bytes: Buffer): string[] => {
    const file = path.join(dir, 'keygate.yaml');
    writeFileSync(file, bytes);
    try {
      loadConfigFile(file);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error('expected the file to be refused');
  };
  const profile = 'upstream: {url: "http://127.0.0.1:4000"}\nerrors:\n  reasons:\n    missing_key: {message: "Clé manquante"}\n';

  it('refuses a file that is not UTF-8 (Latin-1 bytes), naming the line, rather than serving "Cl\\ufffd manquante"', () => {
    expect(refusal(Buffer.from(profile, 'latin1'))).toEqual(['the file is not UTF-8: line 4 has bytes that are not (a file saved as Latin-1 or Windows-1252?): save it as UTF-8']);
  });

  it('refuses a UTF-16 file (as Windows Notepad saves one) as such, not as a mapping that is a string of NULs', () => {
    const bom = Buffer.from([0xff, 0xfe]);
    expect(refusal(Buffer.concat([bom, Buffer.from(profile, 'utf16le')]))).toEqual(['the file is UTF-16: save it as UTF-8']);
    expect(refusal(Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(profile, 'utf16le').swap16()]))).toEqual(['the file is UTF-16: save it as UTF-8']);
  });

  it('reads a UTF-8 file with or without a byte-order mark', () => {
    const file = path.join(dir, 'keygate.yaml');
    for (const bytes of [Buffer.from(profile), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(profile)])]) {
      writeFileSync(file, bytes);
      expect(loadConfigFile(file).config.errors.reasons.missing_key?.message).toBe('Clé manquante');
    }
  });

  it('says a file of two YAML documents holds two, without the parser\'s advice to its own callers', () => {
    const [problem] = refusal(Buffer.from('upstream: {url: "http://127.0.0.1:4000"}\n---\nname: other\n'));
    expect(problem).toBe('not valid YAML: the file holds more than one YAML document (a "---" line at line 2 starts another): a profile is one document; remove the "---" line and merge the two');
  });
});

describe('a value YAML reads as something other than a string, number, list or mapping', () => {
  it('names a !!timestamp, !!binary or !!set for what it is, not "a mapping"', () => {
    const portOf = (value: string) => problems(`upstream: {url: "http://a"}\nlisten: {port: ${value}}\n`);
    expect(portOf('!!timestamp 2001-12-14')).toEqual(['listen.port: expected a number, got a date (2001-12-14T00:00:00.000Z, a YAML !!timestamp)']);
    expect(portOf('!!binary aGVsbG8=')).toEqual(['listen.port: expected a number, got binary data (a YAML !!binary)']);
    expect(portOf('!!set {a, b}')).toEqual(['listen.port: expected a number, got a set (a YAML !!set)']);
  });
});

const HINT =
  '(keygate does not replace ${NAME} or $NAME with an environment variable: write the value itself, or fill the variables in before keygate reads the file, as envsubst < keygate.template.yaml > keygate.yaml does; only admin.tokenEnv, admin.readTokenEnv and pepperEnv name variables, whose values keygate reads)';

describe('a ${VARIABLE} written in the profile', () => {
  it('refuses one in a value the schema takes, naming the field and the variable alone (never the rest of the value, which may be a password)', () => {
    const profile = [
      'upstream: {url: "http://127.0.0.1:4000"}',
      'name: ${PROFILE}',
      'store: "postgres://keygate:${PG_PASSWORD}@db:5432/keygate"',
      'auth: {credentials: [{in: query, name: $KEY_PARAM}]}',
      'identityHeaders: {prefix: "X-${COMPANY}-", drop: [$CONSUMER_HEADER]}',
      '',
    ].join('\n');
    expect(problems(profile)).toEqual([
      // Refused by the schema anyway: said once, by that refusal.
      `identityHeaders.prefix: expected a header name prefix such as "X-Keygate-", got "X-\${COMPANY}-" ${HINT}`,
      `name: holds \${PROFILE}, which keygate would use as written ${HINT}`,
      `store: holds \${PG_PASSWORD}, which keygate would use as written ${HINT}`,
      `auth.credentials[0].name: holds $KEY_PARAM, which keygate would use as written ${HINT}`,
      `identityHeaders.drop[0]: holds $CONSUMER_HEADER, which keygate would use as written ${HINT}`,
    ]);
    // In an unknown field, the field is said (once).
    expect(problems('upstream: {url: "http://127.0.0.1:4000"}\nnmae: ${PROFILE}\n')).toEqual(['(top level): unknown field "nmae" (did you mean "name"?)']);
  });

  it('refuses one with a default or a message (${NAME:-default}, as shells and Docker Compose write it), naming the variable and never the default, which may be the password', () => {
    const profile = ['upstream: {url: "http://127.0.0.1:4000"}', 'store: "postgres://keygate:${PG_PASSWORD:-hunter2}@db:5432/keygate"', 'name: "${PROFILE:?set PROFILE}"', ''].join('\n');
    const said = problems(profile);
    expect(said).toEqual([`store: holds \${PG_PASSWORD:-…}, which keygate would use as written ${HINT}`, `name: holds \${PROFILE:?…}, which keygate would use as written ${HINT}`]);
    expect(said.join('\n')).not.toContain('hunter2');
  });

  it("takes one in the text the API sends its clients (an error's message, the errors template, a built-in's body), which may be the API's own words, and in upstream.spawn, which a shell may read", () => {
    const config = parseConfigText(
      [
        'upstream: {url: "http://127.0.0.1:0", spawn: [sh, -c, "exec node up.js --port ${PORT}"]}',
        'errors:',
        '  envelope: template',
        '  template: {error: "{{message}}", hint: "Authorization: Bearer ${API_KEY}"}',
        '  reasons: {missing_key: {message: "Send your key as Authorization: Bearer ${API_KEY}"}}',
        'builtins: [{path: /v1/help, body: {usage: "curl -H \'Authorization: Bearer ${API_KEY}\' …", env: $API_KEY}}]',
        '',
      ].join('\n'),
    );
    expect(config.errors.reasons.missing_key?.message).toBe('Send your key as Authorization: Bearer ${API_KEY}');
    expect(config.builtins[0]?.body).toEqual({ usage: "curl -H 'Authorization: Bearer ${API_KEY}' …", env: '$API_KEY' });
    expect(config.upstream.spawn).toEqual(['sh', '-c', 'exec node up.js --port ${PORT}']);
  });

  it('says, where the value is refused, that keygate does not replace it with the variable, and which fields name variables', () => {
    expect(problems('upstream: {url: "${UPSTREAM_URL}"}\nstore: $DATABASE_URL\n')).toEqual([
      `upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "\${UPSTREAM_URL}" ${HINT}`,
      `store: expected "sqlite:<file>" or "postgres://user:password@host:port/database" ${HINT}`,
    ]);
    // A value refused for another reason than its variable says nothing of variables.
    expect(problems('upstream: {url: "ftp://a"}\n')[0]).not.toContain('environment variable');
  });
});
