import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../config/load.js';
import { knownHostNames } from './host-names.js';

/** The dashboard section of a profile, parsed as keygate reads it. */
function dashboard(yaml: string) {
  return parseConfigText(`upstream: {url: "http://127.0.0.1:4100"}\ndashboard: ${yaml}\n`).dashboard;
}

function problems(yaml: string): string[] {
  try {
    dashboard(yaml);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('the host names the dashboard answers to', () => {
  it('knows IP literals and localhost always, as a browser writes them, with or without a port or a final dot', () => {
    const known = knownHostNames(dashboard('{}'));
    for (const host of ['127.0.0.1', '127.0.0.1:8082', '10.1.2.3', '[::1]:8082', '[2001:db8::1]', 'localhost', 'LocalHost:80', 'localhost.', 'app.localhost:8082', '2130706433']) expect(known(host), host).toBe(true);
    for (const host of ['rebound.example', 'rebound.example:8082', 'localhost.rebound.example', '127.0.0.1.rebound.example', 'keygate', '']) expect(known(host), host).toBe(false);
  });

  it("knows publicUrl's host, allowedHosts and a name it listens on, in any case, at any port", () => {
    const known = knownHostNames(dashboard('{publicUrl: "https://Keys.Example.com", allowedHosts: [KeyGate, "proxy.internal."], listen: {host: dash.internal}}'));
    for (const host of ['keys.example.com', 'KEYS.example.com:443', 'keys.example.com.', 'keygate:8082', 'proxy.internal', 'dash.internal:8082']) expect(known(host), host).toBe(true);
    for (const host of ['example.com', 'evil.keys.example.com', 'keygate.example']) expect(known(host), host).toBe(false);
  });

  it('knows every name below a leading wildcard of allowedHosts, at any depth, and not the name itself', () => {
    const known = knownHostNames(dashboard('{allowedHosts: ["*.Tenants.Example.com", keygate]}'));
    for (const host of ['acme.tenants.example.com', 'ACME.tenants.example.com:8082', 'eu.acme.tenants.example.com', 'acme.tenants.example.com.', 'keygate']) expect(known(host), host).toBe(true);
    for (const host of ['tenants.example.com', 'tenants.example.com.', 'example.com', 'eviltenants.example.com', 'acme.tenants.example.com.rebound.example', '.tenants.example.com', 'a..tenants.example.com', 'x.keygate']) expect(known(host), host).toBe(false);
  });

  it('takes allowedHosts as names or leading wildcards only, naming each that is not', () => {
    expect(dashboard('{allowedHosts: [keygate, Keys.Internal., "*.Example.com", "*.a.b.example."]}').allowedHosts).toEqual(['keygate', 'keys.internal', '*.example.com', '*.a.b.example']);
    expect(dashboard('{}').allowedHosts).toEqual([]);
    expect(problems('{allowedHosts: ["https://keys.example.com", "keygate:8082", "a b", "keys.example.com/x"]}')).toEqual(
      [0, 1, 2, 3].map((i) => expect.stringMatching(new RegExp(`^dashboard\\.allowedHosts\\[${i}\\]: expected a host name such as keys\\.internal or keygate, or a wildcard such as \\*\\.example\\.com, without a scheme, port or path, got "`))),
    );
    // A wildcard over a name of one label (every page under .com could rebind), alone, not leading, or with a port: said as a wildcard.
    expect(problems('{allowedHosts: ["*.com", "*", "keys.*.example.com", "*example.com", "**.example.com", "*.example.com:8082"]}')).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => expect.stringMatching(new RegExp(`^dashboard\\.allowedHosts\\[${i}\\]: expected a wildcard such as \\*\\.example\\.com \\("\\*\\." and then a name of two labels or more: it matches the names below that one, not the name itself\\), without a scheme, port or path, got "`))),
    );
    expect(problems('{allowedHosts: keygate}')).toEqual([expect.stringMatching(/^dashboard\.allowedHosts: expected /)]);
  });
});
