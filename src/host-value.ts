/**
 * Whether a header holds a host, for Host and X-Forwarded-Host: here, apart from the
 * listeners' options (fastify-options.ts), so that the library's request path checks it
 * without loading Fastify.
 */

/**
 * What a Host header may hold (RFC 9110 §7.2): a name or IPv4 address (letters, digits,
 * `-._~`, sub-delims, escapes) or a bracketed IPv6 literal (with a zone, `%25eth0`), then an optional port
 * (0–65535). Not empty, and not `/`, `?`, `#`, `@` or spaces, which an upstream reading it
 * (as X-Forwarded-Host) would take for a path, a query or a user.
 */
const HOST_VALUE = /^(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?$/;
/** The longest Host: a DNS name (253) and a port. */
const HOST_MAX = 260;

/** The last value isHostValue found good (never the empty string). */
let lastHostValue: string | undefined;

/** A host with an optional port, as Host (or a load balancer's X-Forwarded-Host) may carry it. */
export function isHostValue(value: string): boolean {
  // A client sends the same Host on every request: the last value found good is not checked again.
  if (value === lastHostValue) return true;
  if (value.length > HOST_MAX || !HOST_VALUE.test(value)) return false;
  // A port of five digits may still be over 65535 (compared as text: five digits each).
  // Past the pattern, a `:` six from the end followed by five digits is such a port (in
  // `[::7]:80` that `:` is inside the brackets, and `]` is not a digit).
  const n = value.length;
  if (n > 6 && value.charCodeAt(n - 6) === COLON && FIVE_DIGITS.test(value.slice(n - 5)) && value.slice(n - 5) > '65535') return false;
  lastHostValue = value;
  return true;
}
const COLON = 0x3a;
const FIVE_DIGITS = /^[0-9]{5}$/;

/**
 * Whether a request's Host is one keygate refuses: one that names no host, or two (Node's
 * `headers` keeps the first; `rawHeaders`, or a list in `headers`, shows a second). Node's
 * parser passes both on. The listeners' `badHost` and the library's check both ask it. A
 * request without Host is taken here: the listeners refuse one by its HTTP version, which
 * the library is not given.
 */
export function isRefusedHost(host: string | readonly string[] | undefined, rawHeaders: readonly string[] | undefined): boolean {
  if (host === undefined) return false;
  if (typeof host !== 'string') return host.length !== 1 || !isHostValue(host[0] as string);
  if (!isHostValue(host)) return true;
  if (rawHeaders === undefined) return false;
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    // Compared as sent first, lowered only when it could be Host: the gateway runs this for every request.
    if (name.length !== 4 || !(name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}
