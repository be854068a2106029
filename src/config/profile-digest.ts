/**
 * A short digest of the parts of a profile a reload can change (plans, routes, messages…:
 * the runtime's RELOADABLE list). Processes that apply the same ones show the same digest
 * in /metrics, and one that reloaded a change, or missed a SIGHUP the others had, shows
 * another: the question "does every process judge by the same profile?" becomes one
 * query. Only those parts are digested: none holds a secret (the store's and Redis's URLs
 * are not among them), and processes started on other ports or stores still compare equal.
 */
import { createHash } from 'node:crypto';
import type { Config } from './schema.js';

/** Hex characters kept: 64 bits, plenty to tell a few profiles apart. */
const DIGEST_LENGTH = 16;

/** The digest of `fields` (dotted paths) of `config`, the same whatever order the file wrote a mapping's keys in. */
export function profileDigest(config: Config, fields: readonly string[]): string {
  const parts = fields.map((field) => [field, field.split('.').reduce<unknown>((value, name) => (isObject(value) ? value[name] : undefined), config)]);
  return createHash('sha256').update(canonicalJson(parts)).digest('hex').slice(0, DIGEST_LENGTH);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON with every object's keys sorted (lists keep their order: a route's place in it counts). */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (isObject(value)) {
    const entries = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
