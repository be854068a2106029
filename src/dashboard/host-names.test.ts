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

  it('takes allowedHosts as names only, naming each that is not', () => {
    expect(dashboard('{allowedHosts: [keygate, Keys.Internal.]}').allowedHosts).toEqual(['keygate', 'keys.internal']);
    expect(dashboard('{}').allowedHosts).toEqual([]);
    expect(problems('{allowedHosts: ["https://keys.example.com", "keygate:8082", "a b", "keys.example.com/x"]}')).toEqual(
      [0, 1, 2, 3].map((i) => expect.stringMatching(new RegExp(`^dashboard\\.allowedHosts\\[${i}\\]: expected a host name such as keys\\.internal or keygate, without a scheme, port or path, got "`))),
    );
    expect(problems('{allowedHosts: keygate}')).toEqual([expect.stringMatching(/^dashboard\.allowedHosts: expected /)]);
  });
});
