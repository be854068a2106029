/**
 * What `keygate serve` makes of a profile, judged on the profile alone: the listeners it
 * opens, or why it cannot serve it. `keygate check` says it; serve refuses a profile it
 * cannot serve as it refuses a bad one. A profile the schema takes may still not be
 * servable: without `upstream.url` it is for keygate as a library, unless it says
 * `gateway: false` (a backend that checks its requests through the admin API). An
 * omitted upstream.url is never read as "no gateway": that is said, or refused. Nor is an
 * upstream.url that names one of keygate's own listeners servable.
 *
 * @example
 * servingPlan(config)
 * // → { servable: true, gateway: false, listeners: ['admin', 'dashboard'] }
 * // → { servable: false, reason: 'no upstream.url for the gateway …', problems: [{ field: 'upstream.url', … }], … }
 * servingPlan(config, { ports: { gateway: 8081 }, portFlags: { gateway: '--port', … } })
 * // → judged with the gateway on 8081, as `keygate serve --port 8081` opens it
 */
import { isIPv6 } from 'node:net';
import { isLoopbackHost } from '../dashboard/cookie-security.js';
import { redactUrl } from '../redact-url.js';
import type { ConfigProblem } from './config-error.js';
import type { Config } from './schema.js';
import { andList } from '../list-words.js';

export type ListenerKind = 'gateway' | 'admin' | 'dashboard';

export type ServingPlan =
  | { servable: true; gateway: boolean; listeners: ListenerKind[] }
  /**
   * `reason`: why, naming fields, never their values; `fields`: what would make it servable
   * (any one); `remedy`: what to do, in words; `problems` and `headline`: serve's refusal.
   */
  | { servable: false; reason: string; fields: string[]; remedy: string; problems: ConfigProblem[]; headline: string };

/**
 * How serve is started, where it is not as the profile says: ports given instead of the
 * profile's (0: any free port), and the flags that give them, as a message names them
 * (`--port` for serve's own; `keygate serve --port` for `keygate check`, which judges the
 * profile's ports).
 */
export interface ServeStart {
  ports?: Partial<Record<ListenerKind, number>>;
  portFlags?: Record<ListenerKind, string>;
}

/** The profile field that sets each listener's port. */
export const PORT_FIELD = { gateway: 'listen.port', admin: 'admin.listen.port', dashboard: 'dashboard.listen.port' } as const;
/** The profile field that sets each listener's address. */
export const HOST_FIELD = { gateway: 'listen.host', admin: 'admin.listen.host', dashboard: 'dashboard.listen.host' } as const;

/** Each listener's own settings in the profile (`listen`, `admin.listen`, `dashboard.listen`). */
export function listenSettings<L>(config: { listen: L; admin: { listen: L }; dashboard: { listen: L } }): Record<ListenerKind, L> {
  return { gateway: config.listen, admin: config.admin.listen, dashboard: config.dashboard.listen };
}

/** The headline of a serve refused for want of an upstream (after the profile's file name). */
const NO_UPSTREAM_HEADLINE = 'cannot be served without upstream.url, or gateway: false';

/** Why a profile without upstream.url or gateway: false is not served, said at upstream.url. */
const NO_UPSTREAM =
  'required to serve the gateway, which forwards the requests it admits there (e.g. http://127.0.0.1:4000); for the admin API alone, with no gateway (a backend that checks its requests over HTTP: POST /v1/check), say gateway: false instead. A profile with neither is for keygate as a library (createKeygate), which forwards nothing';

export function servingPlan(config: Pick<Config, 'gateway' | 'upstream' | 'listen' | 'admin' | 'dashboard'>, start: ServeStart = {}): ServingPlan {
  const others: ListenerKind[] = ['admin', ...(config.dashboard.enabled ? (['dashboard'] as const) : [])];
  if (!config.gateway) return { servable: true, gateway: false, listeners: others };
  if (config.upstream.url === undefined) {
    return {
      servable: false,
      reason: 'no upstream.url for the gateway to forward to, and no gateway: false (a profile for keygate as a library)',
      fields: ['upstream.url', 'gateway'],
      remedy: 'set upstream.url, or gateway: false to serve the admin API alone',
      problems: [{ field: 'upstream.url', message: NO_UPSTREAM }],
      headline: NO_UPSTREAM_HEADLINE,
    };
  }
  const listeners: ListenerKind[] = ['gateway', ...others];
  return upstreamOnOwnListener(config, config.upstream.url, listeners, start) ?? { servable: true, gateway: true, listeners };
}

/** Each listener as the refusal of an upstream.url on it names it. */
const LISTENER_NAME = { gateway: 'gateway', admin: 'admin API', dashboard: 'dashboard' } as const;

/**
 * An upstream.url that names one of keygate's own listeners (the API moved to another port,
 * keygate given the port it had): every request would be forwarded back to keygate, the key
 * removed on the way, and the client told its key is missing. Not servable, naming the field
 * and the listener. A listener on port 0 (any free port) never is the upstream; a spawned
 * upstream is started on its port before keygate listens, and says so itself.
 */
function upstreamOnOwnListener(config: Pick<Config, 'upstream' | 'listen' | 'admin' | 'dashboard'>, url: string, listeners: readonly ListenerKind[], start: ServeStart): ServingPlan | undefined {
  if (config.upstream.spawn !== undefined) return undefined;
  const { host, port } = upstreamAddress(new URL(url));
  const at = listenSettings(config);
  for (const kind of listeners) {
    const given = start.ports?.[kind];
    const listenPort = given ?? at[kind].port;
    if (listenPort === 0 || listenPort !== port || !reachesListener(host, at[kind].host)) continue;
    const flag = start.portFlags?.[kind];
    const name = LISTENER_NAME[kind];
    const named = given === undefined ? `${PORT_FIELD[kind]} ${port}` : `${flag ?? 'the port given'} ${port}`;
    const why = `is keygate's own ${name} (${named}): requests would be forwarded to keygate itself, not to your API`;
    const remedy = `give upstream.url the address your API listens on, or move the ${name} to another port (${PORT_FIELD[kind]}${flag === undefined ? '' : `, or ${flag}`})`;
    return {
      servable: false,
      reason: `upstream.url ${why}`,
      fields: ['upstream.url', PORT_FIELD[kind]],
      remedy,
      problems: [{ field: 'upstream.url', message: `${redactUrl(url)} ${why}; ${remedy}` }],
      headline: `cannot be served: upstream.url is keygate's own ${name}`,
    };
  }
  return undefined;
}

/** Whether a connection to `upstreamHost` reaches a listener on `listenHost` of this machine (same port). */
function reachesListener(upstreamHost: string, listenHost: string): boolean {
  if (upstreamHost === listenHost) return true;
  // `localhost` is 127.0.0.1 or ::1; a wildcard listener takes every loopback address of its family too.
  if (upstreamHost === 'localhost' || upstreamHost.endsWith('.localhost')) return listenHost === '127.0.0.1' || listenHost === '::1' || ['0.0.0.0', '::', ''].includes(listenHost);
  return isLoopbackHost(upstreamHost) && (listenHost === '::' || listenHost === '' || (listenHost === '0.0.0.0' && !isIPv6(upstreamHost)));
}

/** Where an upstream URL points, as `connect` takes it. */
export function upstreamAddress(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

/** `the admin API and the dashboard`: the listeners as a sentence says them. */
export function describeListeners(listeners: readonly ListenerKind[]): string {
  const names = listeners.map((kind) => `the ${LISTENER_NAME[kind]}`);
  return names.length === 0 ? 'nothing' : andList(names);
}
