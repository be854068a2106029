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

/**
 * What counts as one network where guesses are counted per network: an IPv6 address's
 * /64 (`2001:db8:0:7::/64`), the network one host or one customer is given whole, in
 * which it can pick a new address for every try; an IPv4 address, also one written as
 * IPv6 (IPv4-mapped `::ffff:192.0.2.1` in any spelling, or NAT64's `64:ff9b::192.0.2.1`,
 * where every IPv4 client shares one /64), is itself. Anything else as it is.
 */
export function addressGroup(address: string): string {
  const groups = isIP(address) === 6 ? ipv6Groups(address) : undefined;
  if (!groups) return address;
  const [a, b, c, d, e, f, g, h] = groups as [number, number, number, number, number, number, number, number];
  const mapped = a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff;
  const nat64 = a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0;
  if (mapped || nat64) return `${g >> 8}.${g & 0xff}.${h >> 8}.${h & 0xff}`;
  return `${[a, b, c, d].map((n) => n.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (already known to be one), without its zone. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0] as string; // `fe80::1%eth0`
  const gap = bare.indexOf('::');
  const part = (text: string): number[] => {
    if (text === '') return [];
    const groups: number[] = [];
    for (const piece of text.split(':')) {
      if (piece.includes('.')) {
        // An IPv4 address written at the end fills the last two groups.
        const [p, q, r, t] = piece.split('.').map(Number) as [number, number, number, number];
        groups.push((p << 8) | q, (r << 8) | t);
      } else groups.push(parseInt(piece, 16));
    }
    return groups;
  };
  if (gap === -1) return part(bare);
  const head = part(bare.slice(0, gap));
  const tail = part(bare.slice(gap + 2));
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
