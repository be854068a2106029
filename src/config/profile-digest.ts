/**
 * A short digest of the parts of a profile a reload can change (plans, routes, messages…:
 * the runtime's RELOADABLE list). Processes that apply the same ones show the same digest
 * in /metrics, and one that reloaded a change, or missed a SIGHUP the others had, shows
 * another: the question "does every process judge by the same profile?" becomes one
 * query. Only those parts are digested: none holds a secret (the store's and Redis's URLs
 * are not among them), and processes started on other ports or stores still compare equal.
 *
 * What is digested is what requests are judged by, not how the file is written: the order
 * of a mapping's keys, and of a list that is a set (routes, scopes, the query parameters
 * logs hide), changes nothing, so it leaves the digest as it was; a list whose order
 * counts (a plan's windows, in that order in RateLimit-Policy; a template's lists) changes
 * it, and so does the default plan a new account is given, the first plan where
 * defaultPlan is not said.
 */
import { createHash } from 'node:crypto';
import type { Config } from './schema.js';

/** Hex characters kept: 64 bits, plenty to tell a few profiles apart. */
const DIGEST_LENGTH = 16;

/** In an UNORDERED path: any name of a mapping (a plan's id), or any place in a list. */
const ANY = Symbol('any');

/**
 * The lists that are sets, by their path in the profile. Routes and built-ins are matched
 * by how specific their paths are, whatever order the file lists them in (routes/route-table.ts;
 * two for the same requests are refused), and a route's windows are counted under its
 * method and path, not its place. Scopes are a set (RFC 6749 §3.3: their order does not
 * matter; a key needs all of a route's, whatever their order); log.redactQuery names
 * parameters to hide, each matched on its own; trustedProxies names addresses, any of
 * which is trusted.
 */
const UNORDERED: readonly (readonly (string | typeof ANY)[])[] = [
  ['routes'],
  ['builtins'],
  ['scopes'],
  ['plans', ANY, 'scopes'],
  ['routes', ANY, 'scopes'],
  ['builtins', ANY, 'scopes'],
  ['log', 'redactQuery'],
  // Not digested (a restart changes it), but a reload compares it (sameAsJudged): the load balancers' addresses are a set too.
  ['trustedProxies'],
];

/** The digest of `fields` (dotted paths) of `config`, the same whatever order the file wrote a mapping's keys, or a set's items, in. */
export function profileDigest(config: Config, fields: readonly string[]): string {
  const parts = fields.map((field) => {
    const path = field.split('.');
    return [field, canonicalJson(field === 'defaultPlan' ? defaultPlanOf(config) : valueAt(config, path), path)];
  });
  return createHash('sha256').update(`[${parts.map(([field, json]) => `[${JSON.stringify(field)},${json as string}]`).join(',')}]`).digest('hex').slice(0, DIGEST_LENGTH);
}

/**
 * Whether `before` and `after`, found at `path` (its names: `['plans', 'team', 'scopes']`) of two profiles, judge
 * requests alike: the same but for the order of a set's items (UNORDERED) or of a
 * mapping's keys. A reload compares profiles so: routes listed in another order are no change.
 *
 * @example
 *   sameAsJudged(['scopes'], ['rows:read', 'rows:write'], ['rows:write', 'rows:read']) // → true
 *   sameAsJudged(['plans', 'team', 'rateLimits'], [a, b], [b, a]) // → false: RateLimit-Policy lists them in order
 */
export function sameAsJudged(path: readonly string[], before: unknown, after: unknown): boolean {
  return canonicalJson(before, path) === canonicalJson(after, path);
}

/** The plan a new account is given: defaultPlan, else the first plan (its place in the file counts there). */
function defaultPlanOf(config: Config): string | undefined {
  return config.defaultPlan ?? Object.keys(config.plans)[0];
}

function valueAt(config: Config, path: readonly string[]): unknown {
  return path.reduce<unknown>((value, name) => (isObject(value) ? value[name] : undefined), config);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUnordered(path: readonly string[]): boolean {
  return UNORDERED.some((pattern) => pattern.length === path.length && pattern.every((segment, i) => segment === ANY || segment === path[i]));
}

/**
 * JSON with every object's keys sorted, and the items of a set (UNORDERED) too; other
 * lists keep their order. `path`: where `value` is in the profile, a list's places as `[]`.
 */
function canonicalJson(value: unknown, path: readonly string[]): string {
  if (Array.isArray(value)) {
    const items = value.map((item) => canonicalJson(item ?? null, [...path, '[]']));
    return `[${(isUnordered(path) ? items.sort() : items).join(',')}]`;
  }
  if (isObject(value)) {
    const entries = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key], [...path, key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
