/**
 * The proxies in front of keygate (`trustedProxies`): a load balancer that terminates
 * TLS tells keygate, in `X-Forwarded-Proto` and `X-Forwarded-Host`, how the client
 * reached it. From one of these addresses keygate passes those headers on as sent; from
 * anyone else it writes its own (a client could otherwise claim any scheme or host).
 */
import { BlockList, isIP } from 'node:net';

/** An IP address, or a CIDR range (`10.0.0.0/8`, `fd00::/8`); undefined for anything else. */
function parseRange(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  if (slash === -1) return { address, prefix: bits, family: version === 4 ? 'ipv4' : 'ipv6' };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return undefined;
  return { address, prefix: Number(prefixText), family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function isAddressRange(text: string): boolean {
  return parseRange(text) !== undefined;
}

/**
 * Whether a peer address is one of `ranges`; undefined when there are none (the default),
 * so the gateway skips the question altogether.
 */
export function trustedProxyCheck(ranges: readonly string[]): ((peer: string | undefined) => boolean) | undefined {
  if (ranges.length === 0) return undefined;
  const list = new BlockList();
  for (const text of ranges) {
    const range = parseRange(text);
    if (!range) throw new Error(`not an IP address or CIDR range: ${JSON.stringify(text)}`);
    list.addSubnet(range.address, range.prefix, range.family);
  }
  // BlockList matches an IPv4 client of a dual-stack listener (`::ffff:10.0.0.1`) against IPv4 ranges too.
  return (peer) => {
    const version = peer === undefined ? 0 : isIP(peer);
    return version !== 0 && list.check(peer as string, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * The address a request came from: the peer's, or, where the peer is a trusted proxy,
 * the last address in X-Forwarded-For that is not itself one (each proxy appends the
 * address it was reached from; what comes before the first untrusted one may be made up).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: ((peer: string | undefined) => boolean) | undefined): string {
  let address = peer ?? '';
  if (!trusted?.(peer) || forwardedFor === undefined) return address;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = withoutPort((hops[i] as string).trim());
    if (isIP(hop) === 0) break;
    address = hop;
    if (!trusted(hop)) break;
  }
  return address;
}

/** An X-Forwarded-For entry without the port some load balancers add (`1.2.3.4:5678`, `[2001:db8::1]:443`). */
function withoutPort(hop: string): string {
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']');
    return end === -1 ? hop : hop.slice(1, end);
  }
  const colon = hop.indexOf(':');
  // More than one `:` is an IPv6 address without brackets (and without a port).
  return colon !== -1 && colon === hop.lastIndexOf(':') ? hop.slice(0, colon) : hop;
}

/** An IPv4 address written IPv4-mapped (`::ffff:192.0.2.1`), as a dual-stack listener reports IPv4 clients. */
const IPV4_MAPPED = /^::ffff:([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)$/i;

/**
 * What counts as one client where guesses are counted per client: an IPv4 address as it
 * is (also written IPv4-mapped), an IPv6 address by its /64 (`2001:db8:0:7::/64`), the
 * network one host or one customer is given whole, in which it can pick a new address
 * for every try. Anything else (no address at all) as it is.
 */
export function addressGroup(address: string): string {
  if (isIP(address) !== 6) return address;
  const mapped = IPV4_MAPPED.exec(address);
  if (mapped) return mapped[1] as string;
  const bare = address.split('%')[0] as string; // without a zone (`fe80::1%eth0`)
  const gap = bare.indexOf('::');
  let groups: string[];
  if (gap === -1) groups = bare.split(':');
  else {
    const head = gap === 0 ? [] : bare.slice(0, gap).split(':');
    const tail = bare.slice(gap + 2) === '' ? [] : bare.slice(gap + 2).split(':');
    // An IPv4 address written at the end (`::1.2.3.4`) fills the last two groups.
    const tailGroups = tail.length + (tail.at(-1)?.includes('.') ? 1 : 0);
    groups = [...head, ...Array<string>(8 - head.length - tailGroups).fill('0'), ...tail];
  }
  return `${groups
    .slice(0, 4)
    .map((group) => parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
