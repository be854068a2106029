/**
 * The names the dashboard answers to, against DNS rebinding: a page on a name of its
 * owner's (`rebound.example`) whose DNS turns to the dashboard's address is, in the
 * visitor's browser, of the same origin as the dashboard reached by that name. Its
 * cookies, CSRF token, Sec-Fetch-Site and Origin then all look like the dashboard's own,
 * and only the name the request was addressed to tells it apart. So the dashboard answers
 * only to the names it is known by (as Vite's `server.allowedHosts` and Jupyter do): the
 * host of `dashboard.publicUrl`, those of `dashboard.allowedHosts` (`*.example.com` for the
 * names below one), and IP literals and `localhost` (and `*.localhost`), which no DNS
 * answer can point elsewhere.
 */
import { isIPv4 } from 'node:net';
import type { Config } from '../config/schema.js';
import { cookiesInClearWarning, isLoopbackHost } from './cookie-security.js';

/**
 * A host as a browser names it (`new URL` of it: lower case, IPv4 in dotted form, IDN in
 * punycode), without its port or a final dot (`keys.example.com.` is the same DNS name);
 * undefined when it names no host.
 */
export function hostName(host: string): string | undefined {
  try {
    const name = new URL(`http://${host}`).hostname;
    return name.endsWith('.') ? name.slice(0, -1) : name;
  } catch {
    return undefined;
  }
}

/** Whether a host name (as hostName gives it) cannot be rebound: an IP literal, or `localhost`, which browsers resolve themselves. */
function cannotBeRebound(name: string): boolean {
  return isIPv4(name) || name.startsWith('[') || name === 'localhost' || name.endsWith('.localhost');
}

/** How dashboard.allowedHosts writes every name below one (`*.example.com`). */
const WILDCARD = '*.';

/** Whether `name` is one or more labels (none empty) and then `suffix` (`.example.com`). */
function isBelow(name: string, suffix: string): boolean {
  return name.length > suffix.length && name.endsWith(suffix) && !name.slice(0, -suffix.length).split('.').includes('');
}

/** Whether a request addressed to `host` (a Host value, or a trusted proxy's X-Forwarded-Host) is one the dashboard answers. */
export type KnownHost = (host: string) => boolean;

/**
 * The dashboard's known names, from the profile: publicUrl's host, allowedHosts (a leading
 * wildcard, `*.example.com`, for every name below example.com, not example.com itself: a
 * proxy for many subdomains), and the name it listens on (`listen.host: keys.internal`,
 * which its invitation links name without a publicUrl), besides those that cannot be rebound.
 */
export function knownHostNames(dashboard: Pick<Config['dashboard'], 'publicUrl' | 'allowedHosts' | 'listen'>): KnownHost {
  const names = new Set<string>();
  /** The `.example.com` of each `*.example.com` in allowedHosts. */
  const below: string[] = [];
  if (dashboard.publicUrl !== undefined) names.add(new URL(dashboard.publicUrl).hostname);
  for (const allowed of [...dashboard.allowedHosts, dashboard.listen.host]) {
    if (allowed.startsWith(WILDCARD)) {
      below.push(allowed.slice(WILDCARD.length - 1));
      continue;
    }
    const name = hostName(allowed);
    if (name !== undefined) names.add(name);
  }
  return (host) => {
    const name = hostName(host);
    return name !== undefined && (names.has(name) || below.some((suffix) => isBelow(name, suffix)) || cannotBeRebound(name));
  };
}

/**
 * The warning for a dashboard that listens beyond loopback and knows no name of its own:
 * members who reach it by a name (or through a proxy that passes its own Host) are
 * refused, and only IP addresses and localhost open it. Undefined when there is none to give.
 */
export function noHostNameWarning(dashboard: Pick<Config['dashboard'], 'enabled' | 'listen' | 'publicUrl' | 'allowedHosts'>): string | undefined {
  if (!dashboard.enabled || dashboard.publicUrl !== undefined || dashboard.allowedHosts.length > 0 || isLoopbackHost(dashboard.listen.host)) return undefined;
  // A name it listens on is one it answers to (knownHostNames); an address, or every one, names none.
  const listenName = hostName(dashboard.listen.host);
  if (listenName !== undefined && listenName !== '' && !cannotBeRebound(listenName)) return undefined;
  return `the dashboard listens on ${dashboard.listen.host || 'every address'}, beyond loopback, and knows no host name of its own: it answers only requests addressed to an IP address or localhost, and refuses one addressed to any other name (421), against DNS rebinding. Set dashboard.publicUrl to the address members reach it at (https://keys.example.com), or list the names a proxy sends it as Host in dashboard.allowedHosts`;
}

/**
 * What `keygate serve` and `keygate check` both say of a dashboard that listens beyond
 * loopback: cookies in clear, and no host name of its own. One list, so neither says less.
 */
export function beyondLoopbackWarnings(dashboard: Pick<Config['dashboard'], 'enabled' | 'listen' | 'publicUrl' | 'allowedHosts' | 'secureCookies'>): string[] {
  return [cookiesInClearWarning(dashboard), noHostNameWarning(dashboard)].filter((warning) => warning !== undefined);
}
