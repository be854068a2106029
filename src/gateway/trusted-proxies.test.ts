import { describe, expect, it } from 'vitest';
import { addressGroup, clientAddress, isAddressRange, trustedProxyCheck } from './trusted-proxies.js';

describe('trustedProxies', () => {
  it('reads addresses and CIDR ranges of both families, and nothing else', () => {
    for (const good of ['127.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '::/0', '192.168.1.0/24']) expect(isAddressRange(good), good).toBe(true);
    for (const bad of ['', 'localhost', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', '::1/129', '10.0.0.256', '10.0.0.0/ 8', '*']) expect(isAddressRange(bad), bad).toBe(false);
  });

  it('is not asked at all when there are none (the default)', () => {
    expect(trustedProxyCheck([])).toBeUndefined();
  });

  it('trusts a peer inside a range, also an IPv4 peer of a dual-stack listener, and no one else', () => {
    const trusted = trustedProxyCheck(['10.0.0.0/8', 'fd00::/8', '192.0.2.10']);
    expect(trusted).toBeDefined();
    const check = trusted as (peer: string | undefined) => boolean;
    expect(check('10.1.2.3')).toBe(true);
    expect(check('::ffff:10.1.2.3')).toBe(true);
    expect(check('fd12::1')).toBe(true);
    expect(check('192.0.2.10')).toBe(true);
    expect(check('192.0.2.11')).toBe(false);
    expect(check('11.0.0.1')).toBe(false);
    expect(check('::1')).toBe(false);
    expect(check(undefined)).toBe(false);
    expect(check('not an address')).toBe(false);
  });

  it("takes the client's address from X-Forwarded-For only through trusted proxies, and only as far as they vouch", () => {
    const trusted = trustedProxyCheck(['10.0.0.0/8']);
    // Not from a trusted proxy: its own address, whatever it claims.
    expect(clientAddress('203.0.113.9', '1.2.3.4', trusted)).toBe('203.0.113.9');
    expect(clientAddress('203.0.113.9', '1.2.3.4', undefined)).toBe('203.0.113.9');
    // From one: the last address it was not itself; made-up entries before it are ignored.
    expect(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.9', trusted)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.9, 10.0.0.7', trusted)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.2', ['6.6.6.6', '203.0.113.9'], trusted)).toBe('203.0.113.9');
    // Nothing usable: the proxy itself, or the last hop before the garbage.
    expect(clientAddress('10.0.0.2', undefined, trusted)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', 'not-an-address', trusted)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', 'junk, 10.0.0.9', trusted)).toBe('10.0.0.9');
    // Some load balancers add the client's port.
    expect(clientAddress('10.0.0.2', '203.0.113.9:5678', trusted)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.2', '[2001:db8::1]:443, 10.0.0.7:80', trusted)).toBe('2001:db8::1');
    expect(clientAddress('10.0.0.2', '2001:db8::1', trusted)).toBe('2001:db8::1');
  });
});

describe('addressGroup', () => {
  it('counts an IPv6 address by its /64 however it is written', () => {
    for (const address of ['2001:db8:0:7::1', '2001:0DB8:0000:0007:ffff:ffff:ffff:ffff', '2001:db8::7:1:2:3:4', '2001:db8:0:7:0:0:1.2.3.4', '2001:db8:0:7::%eth0']) expect(addressGroup(address), address).toBe('2001:db8:0:7::/64');
    expect(addressGroup('2001:db8:0:8::1')).toBe('2001:db8:0:8::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('counts an IPv4 address as itself, also written as IPv6 in any spelling or through NAT64', () => {
    for (const address of ['203.0.113.9', '::ffff:203.0.113.9', '::FFFF:203.0.113.9', '0:0:0:0:0:ffff:203.0.113.9', '0::ffff:203.0.113.9', '::ffff:cb00:7109', '::ffff:203.0.113.9%eth0', '64:ff9b::203.0.113.9', '64:ff9b::cb00:7109']) {
      expect(addressGroup(address), address).toBe('203.0.113.9');
    }
    // Other addresses with an IPv4 tail are IPv6 networks like any other.
    expect(addressGroup('::1.2.3.4')).toBe('0:0:0:0::/64');
    expect(addressGroup('')).toBe('');
  });
});
