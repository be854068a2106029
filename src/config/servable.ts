/**
 * What `keygate serve` makes of a profile, judged on the profile alone: the listeners it
 * opens, or why it cannot serve it. `keygate check` says it; serve refuses a profile it
 * cannot serve as it refuses a bad one. A profile the schema takes may still not be
 * servable: without `upstream.url` it is for keygate as a library, unless it says
 * `gateway: false` (a backend that checks its requests through the admin API). An
 * omitted upstream.url is never read as "no gateway": that is said, or refused.
 *
 * @example
 * servingPlan(config)
 * // → { servable: true, gateway: false, listeners: ['admin', 'dashboard'] }
 * // → { servable: false, reason: 'no upstream.url for the gateway …', problems: [{ field: 'upstream.url', … }] }
 */
import type { ConfigProblem } from './config-error.js';
import type { Config } from './schema.js';

export type ListenerKind = 'gateway' | 'admin' | 'dashboard';

export type ServingPlan =
  | { servable: true; gateway: boolean; listeners: ListenerKind[] }
  /** `fields`: what would make it servable (either one). */
  | { servable: false; reason: string; fields: string[]; problems: ConfigProblem[] };

/** The headline of a serve refused for want of an upstream (after the profile's file name). */
export const NO_UPSTREAM_HEADLINE = 'cannot be served without upstream.url, or gateway: false';

/** Why a profile without upstream.url or gateway: false is not served, said at upstream.url. */
const NO_UPSTREAM =
  'required to serve the gateway, which forwards the requests it admits there (e.g. http://127.0.0.1:4000); for the admin API alone, with no gateway (a backend that checks its requests over HTTP: POST /v1/check), say gateway: false instead. A profile with neither is for keygate as a library (createKeygate), which forwards nothing';

export function servingPlan(config: Pick<Config, 'gateway' | 'upstream' | 'dashboard'>): ServingPlan {
  const others: ListenerKind[] = ['admin', ...(config.dashboard.enabled ? (['dashboard'] as const) : [])];
  if (!config.gateway) return { servable: true, gateway: false, listeners: others };
  if (config.upstream.url === undefined) {
    return {
      servable: false,
      reason: 'no upstream.url for the gateway to forward to, and no gateway: false (a profile for keygate as a library)',
      fields: ['upstream.url', 'gateway'],
      problems: [{ field: 'upstream.url', message: NO_UPSTREAM }],
    };
  }
  return { servable: true, gateway: true, listeners: ['gateway', ...others] };
}

const LISTENER_NAMES: Record<ListenerKind, string> = { gateway: 'the gateway', admin: 'the admin API', dashboard: 'the dashboard' };

/** `the admin API and the dashboard`: the listeners as a sentence says them. */
export function describeListeners(listeners: readonly ListenerKind[]): string {
  const names = listeners.map((kind) => LISTENER_NAMES[kind]);
  return names.length <= 1 ? (names[0] ?? 'nothing') : `${names.slice(0, -1).join(', ')} and ${names.at(-1) as string}`;
}
