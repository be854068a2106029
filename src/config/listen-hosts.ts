/**
 * Whether two of keygate's listeners, on one port, would take the same address: serve
 * could open only the first (the second would be refused, or `localhost` would open on
 * one of its addresses only), so the profile is refused, naming both fields. Judged on
 * the profile alone, without a lookup: a wildcard takes every address of its family (`::`,
 * or no host, IPv4 ones too), `localhost` is 127.0.0.1 and ::1, and one address written
 * two ways (`::0` and `::`, `::ffff:127.0.0.1` and `127.0.0.1`, `LOCALHOST`) is one; a zone
 * (`fe80::1%eth0`) is compared as written. Other
 * host names are compared as written.
 *
 * @example
 * hostsOverlap('localhost', '127.0.0.1') // → true
 * hostsOverlap('0.0.0.0', '::1') // → false
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The addresses `localhost` resolves to (serve listens on each). */
const LOCALHOST = ['127.0.0.1', '::1'];

/** A listen host as the system takes it: IPv6 in its shortest form, an IPv4-mapped one as IPv4, a name in lower case. */
function canonical(host: string): string {
  if (!isIPv6(host)) return host.toLowerCase();
  // A link-local address with its zone (`fe80::1%eth0`): the address in its shortest form, the
  // zone as written (an interface's name; a URL, below, takes no zone).
  const zone = host.indexOf('%');
  if (zone !== -1) return `${canonical(host.slice(0, zone))}${host.slice(zone)}`;
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)?.[1];
  if (dotted !== undefined && isIPv4(dotted)) return dotted;
  const short = new URL(`http://[${host}]`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(short);
  if (mapped === null) return short;
  const [high, low] = [parseInt(mapped[1] as string, 16), parseInt(mapped[2] as string, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/** Every address, IPv4 ones too (no host is Node's default, `::` where the machine has IPv6). */
const isEveryAddress = (host: string) => host === '' || host === '::';

/** Whether listeners on `a` and `b`, on one port, would take the same address. */
export function hostsOverlap(a: string, b: string): boolean {
  const [x, y] = [canonical(a), canonical(b)];
  if (x === y || isEveryAddress(x) || isEveryAddress(y)) return true;
  // `0.0.0.0`: every IPv4 address (a name may be one).
  if (x === '0.0.0.0' || y === '0.0.0.0') return !isIPv6(x === '0.0.0.0' ? y : x);
  if (x === 'localhost' || y === 'localhost') return LOCALHOST.includes(x === 'localhost' ? y : x);
  return false;
}

/** A listen host as a message shows it, with what it stands for where it is more than one address. */
export function describeListenHost(host: string): string {
  const at = canonical(host);
  if (at === '') return '"" (every address)';
  if (at === '::') return `${host} (every address)`;
  if (at === '0.0.0.0') return `${host} (every IPv4 address)`;
  if (at === 'localhost') return `${host} (127.0.0.1, and ::1 on most systems)`;
  return host;
}
