/**
 * Whether the dashboard's cookies may cross a network in clear. Without Secure, a session
 * cookie (and the password typed into the sign-in form) goes over plain HTTP to whoever
 * listens on the way: fine on loopback (a proxy on the same host terminates TLS), not on
 * an address other machines reach.
 */
import { isIPv4 } from 'node:net';
import type { Config } from '../config/schema.js';

/** Host names that stay on this machine. */
const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '::1', '[::1]']);

/** Whether `host` is a loopback address or name (`0.0.0.0`, `::` and any other name are not: they may reach other machines). */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  return LOOPBACK_NAMES.has(lower) || lower.endsWith('.localhost') || (isIPv4(host) && host.startsWith('127.'));
}

/**
 * The warning for a dashboard that listens beyond loopback with cookies that are not
 * Secure, naming the fields that fix it; undefined when there is none to give.
 */
export function cookiesInClearWarning(dashboard: Pick<Config['dashboard'], 'enabled' | 'listen' | 'secureCookies'>): string | undefined {
  if (!dashboard.enabled || dashboard.secureCookies || isLoopbackHost(dashboard.listen.host)) return undefined;
  return `the dashboard listens on ${dashboard.listen.host || 'every address'}, beyond loopback, and its cookies are not Secure: sessions (and passwords typed into its forms) can travel in clear. Serve it behind HTTPS and set dashboard.publicUrl to its https:// address (its cookies are then Secure), or set dashboard.secureCookies: true, or set dashboard.listen.host to 127.0.0.1 behind a proxy on this host`;
}
