/**
 * Fields a profile sets that change nothing in it: valid (an operator may turn the
 * gateway off for a while and keep the rest), so not refused, but whoever set one expects
 * it to act, and is told. `keygate check` prints each group as a warning line (in
 * `warnings` with --json) and `keygate serve` logs it at start-up. A field counts only
 * where its value is not the default: a default, written out or not, sets nothing.
 *
 * @example
 * unusedFields(config)
 * // → [{ fields: ['listen.port', 'upstream.timeout'], warning: 'gateway: false runs no gateway, so listen.port and upstream.timeout have no effect …' }]
 */
import { isDeepStrictEqual } from 'node:util';
import { configSchema, hasScheme, meterSchema, RESERVE_RECORDS_DEFAULT, type Config } from './schema.js';
import { andList } from '../list-words.js';

export interface UnusedFields {
  /** The fields, as paths (`listen.port`, `routes[0].cost.reserveRecords`). */
  fields: string[];
  /** One line saying which, and why they change nothing. */
  warning: string;
}

/**
 * What serves only the gateway: its listener, its connections to the upstream, the
 * headers it adds to (or passes on in: `auth.forwardCredential`) what it forwards and reads from what comes back. `upstream.url` and
 * `upstream.spawn` are refused with gateway: false (schema.ts); `caseSensitivePaths` and
 * `basePath` judge POST /v1/check's targets too, and `trustedProxies` the admin API's and
 * the dashboard's clients.
 */
const GATEWAY_ONLY = ['listen', 'upstream.timeout', 'upstream.connections', 'upstream.maxInFlightPerAccount', 'auth.forwardCredential', 'identityHeaders', 'gauges'] as const;

/** A profile that sets nothing: every field's default. Made once, when first asked. */
let defaults: Config | undefined;

export function unusedFields(config: Config): UnusedFields[] {
  defaults ??= configSchema.parse({});
  const found: UnusedFields[] = [];
  if (!config.gateway) {
    const fields = GATEWAY_ONLY.flatMap((path) => changedLeaves(valueAt(defaults, path), valueAt(config, path), path));
    if (fields.length > 0) {
      found.push({
        fields,
        warning: `gateway: false runs no gateway, so ${andList(fields)} ${fields.length === 1 ? 'has' : 'have'} no effect (${fields.length === 1 ? 'it applies' : 'they apply'} once the gateway is on again: remove ${fields.length === 1 ? 'it' : 'them'}, or keep ${fields.length === 1 ? 'it' : 'them'} for then)`,
      });
    }
  }
  if (!config.gateway) {
    // Where the gateway counts a per-record route's records in its upstream's answers; without it, each settle gives the count.
    const counted = config.routes.flatMap(({ cost }, i) => (cost?.records === undefined ? [] : [i]));
    const records = counted.map((i) => `routes[${i}].cost.records`);
    if (records.length > 0) {
      const one = records.length === 1;
      found.push({
        fields: records,
        warning: `gateway: false runs no gateway, so ${recordsOf(counted)} ${one ? 'has' : 'have'} no effect: a per-record cost is charged the records each settle gives (POST /v1/check/{id}/settle with "records"), not counted in an answer (${one ? 'it applies' : 'they apply'} once the gateway is on again: remove ${one ? 'it' : 'them'}, or keep ${one ? 'it' : 'them'} for then)`,
      });
    }
  }
  const keys = keyFormatFields(config.keys, defaults.keys);
  if (keys.length > 0) {
    found.push({ fields: keys, warning: `keys.format is ${config.keys.format}, so ${andList(keys)} ${keys.length === 1 ? 'has' : 'have'} no effect (${config.keys.format === 'hex' ? 'hex keys have no prefix' : 'only hex keys have a hexLength'})` });
  }
  const reserve = config.routes.flatMap(({ cost }, i) =>
    cost?.perRequest === undefined ? [] : [
          ...(cost.reserveRecords !== RESERVE_RECORDS_DEFAULT ? [`routes[${i}].cost.reserveRecords`] : []),
          ...(cost.reserveFromQuery !== undefined ? [`routes[${i}].cost.reserveFromQuery`] : []),
        ],
  );
  if (reserve.length > 0) {
    found.push({ fields: reserve, warning: `${andList(reserve)} ${reserve.length === 1 ? 'has' : 'have'} no effect beside perRequest (a flat cost reserves and charges the same whatever the records: they serve perRecord)` });
  }
  const admit = Object.entries(config.plans).flatMap(([planId, plan]) =>
    Object.entries(plan.meters).flatMap(([meter, spec]) => (spec.overage && spec.admit !== defaultAdmit() ? [`plans.${planId}.meters.${meter}.admit`] : [])),
  );
  if (admit.length > 0) {
    found.push({ fields: admit, warning: `${andList(admit)} ${admit.length === 1 ? 'has' : 'have'} no effect beside overage: true (it says which requests are refused without overage; with it none is)` });
  }
  const { errors } = config;
  if (!errors.wwwAuthenticate) {
    const challengeFields = [...(errors.realm !== defaults.errors.realm ? ['errors.realm'] : []), ...(errors.challenge !== undefined ? ['errors.challenge'] : [])];
    if (challengeFields.length > 0) {
      const one = challengeFields.length === 1;
      const what = one ? `the ${(challengeFields[0] as string).slice('errors.'.length)} is` : 'they are';
      found.push({ fields: challengeFields, warning: `errors.wwwAuthenticate is false, so ${andList(challengeFields)} ${one ? 'has' : 'have'} no effect (${what} sent only in WWW-Authenticate)` });
    }
  } else if (errors.challenge !== undefined) {
    // 401s name the scheme a client sends its key with; errors.challenge stands in only where there is none.
    const schemed = config.auth.credentials.findIndex(hasScheme);
    const location = config.auth.credentials[schemed];
    if (location?.in === 'header') {
      found.push({
        fields: ['errors.challenge'],
        warning: `auth.credentials[${schemed}] has the scheme ${location.scheme}, so errors.challenge has no effect (401s name ${location.scheme} in WWW-Authenticate: errors.challenge serves profiles whose credentials have no scheme)`,
      });
    }
  }
  return found;
}

/**
 * The routes' `cost.records` fields as a warning says them: each by its path where they
 * are few; where many (a seed profile counts records on 24 routes), by runs of indexes,
 * so that the line stays one a reader takes in: `cost.records of routes 0–22 and 24 (24 routes)`.
 */
function recordsOf(indexes: readonly number[]): string {
  if (indexes.length <= 3) return andList(indexes.map((i) => `routes[${i}].cost.records`));
  const runs: string[] = [];
  for (let first = 0; first < indexes.length; ) {
    let last = first;
    while (last + 1 < indexes.length && indexes[last + 1] === (indexes[last] as number) + 1) last += 1;
    runs.push(last === first ? `${indexes[first]}` : `${indexes[first]}–${indexes[last]}`);
    first = last + 1;
  }
  return `cost.records of routes ${andList(runs)} (${indexes.length} routes)`;
}

/** A meter's `admit` when the profile does not say. */
function defaultAdmit(): string {
  return meterSchema.parse({ limit: 0 }).admit;
}

/** The fields of `keys` the other format reads: a prefixed key has no hexLength, a hex key no prefix. */
function keyFormatFields(keys: Config['keys'], unset: Config['keys']): string[] {
  if (keys.format === 'hex') return changedLeaves(unset.prefix, keys.prefix, 'keys.prefix');
  return keys.hexLength === unset.hexLength ? [] : ['keys.hexLength'];
}

function valueAt(config: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((value, name) => (isRecord(value) ? value[name] : undefined), config);
}

/** The dotted paths under `at` where `value` differs from `unset` (mappings field by field, anything else whole). */
function changedLeaves(unset: unknown, value: unknown, at: string): string[] {
  if (isRecord(unset) && isRecord(value)) {
    const names = new Set([...Object.keys(unset), ...Object.keys(value)]);
    return [...names].flatMap((name) => changedLeaves(unset[name], value[name], `${at}.${name}`));
  }
  return isDeepStrictEqual(unset, value) ? [] : [at];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
