import { describe, expect, it } from 'vitest';
import { parseConfigObject } from './load.js';
import type { ConfigInput } from './schema.js';
import { profileDigest } from './profile-digest.js';
import { RELOADABLE } from '../runtime.js';

const base = (): ConfigInput => ({
  upstream: { url: 'http://127.0.0.1:1' },
  store: 'postgres://keygate:first-password@db.internal/keygate',
  counters: 'redis://:first-password@redis.internal:6379',
  plans: { team: { rateLimits: [{ limit: 10, window: '1m' }], meters: { credits: { limit: 100 } } } },
  routes: [{ path: '/rows', cost: { meter: 'credits', perRequest: 1 } }],
  errors: { envelope: 'error', reasons: { missing_key: { message: 'Missing API key' } } },
});
const digestOf = (profile: ConfigInput) => profileDigest(parseConfigObject(profile), RELOADABLE);

describe('profileDigest', () => {
  it('changes with each part a reload can change: plans, routes, errors', () => {
    const first = digestOf(base());
    const plans = base();
    plans.plans = { team: { rateLimits: [{ limit: 10, window: '1m' }], meters: { credits: { limit: 150 } } } };
    const routes = base();
    routes.routes = [{ path: '/rows', cost: { meter: 'credits', perRequest: 2 } }];
    const errors = base();
    errors.errors = { envelope: 'error', reasons: { missing_key: { message: 'Send your key' } } };
    const digests = [first, digestOf(plans), digestOf(routes), digestOf(errors)];
    expect(new Set(digests).size).toBe(4);
    for (const digest of digests) expect(digest).toMatch(/^[0-9a-f]{16}$/);
  });

  it('is the same for processes on other ports, stores and passwords, and shows none of them', () => {
    const other = base();
    other.store = 'postgres://keygate:other-password@db2.internal/keygate';
    other.counters = 'redis://:other-password@redis2.internal:6379';
    other.listen = { port: 18550 };
    expect(digestOf(other)).toBe(digestOf(base()));
    expect(digestOf(base())).not.toContain('password');
  });

  /** A profile with a list of each kind, each in the order given. */
  const listed = (order: <T>(items: T[]) => T[], plans: ConfigInput['plans'] = { team: {} }, more: Partial<ConfigInput> = {}): ConfigInput => ({
    ...base(),
    scopes: order(['rows:read', 'rows:write', 'admin']),
    plans: Object.fromEntries(
      Object.entries(plans ?? {}).map(([id, plan]) => [id, { ...plan, scopes: order(['rows:read', 'rows:write']), rateLimits: order([{ limit: 10, window: '1s' }, { limit: 1000, window: '1h' }]) }]),
    ),
    routes: order([
      { path: '/rows', scopes: order(['rows:read', 'rows:write']) },
      { method: 'POST', path: '/admin/*', scopes: ['admin'] },
    ]),
    builtins: order([
      { path: '/usage', body: { plan: '{{plan.name}}' }, scopes: order(['rows:read', 'admin']) },
      { path: '/me', body: ['first', 'second'] },
    ]),
    log: { redactQuery: order(['sig', 'state']) },
    ...more,
  });
  const asWritten = <T,>(items: T[]) => items;
  const reversed = <T,>(items: T[]) => [...items].reverse();
  /** Reverses every list but the plan's windows, whose order counts. */
  const setsReversed = (plans?: ConfigInput['plans']) => {
    const profile = listed(reversed, plans);
    for (const plan of Object.values(profile.plans ?? {})) plan.rateLimits = [{ limit: 10, window: '1s' }, { limit: 1000, window: '1h' }];
    return profile;
  };

  it('is the same whatever order the sets are listed in: routes, built-ins, the profile\'s, a plan\'s, a route\'s and a built-in\'s scopes, log.redactQuery', () => {
    expect(digestOf(setsReversed())).toBe(digestOf(listed(asWritten)));
  });

  it('changes with the order of the lists whose order counts: a plan\'s windows (RateLimit-Policy lists them so), and the plans where the first is the default one', () => {
    expect(digestOf(listed(reversed))).not.toBe(digestOf(listed(asWritten)));
    // No defaultPlan: new accounts go on the first plan, so which plan comes first counts...
    const plans = { team: {}, scale: {} };
    const swapped = { scale: {}, team: {} };
    expect(digestOf(listed(asWritten, swapped))).not.toBe(digestOf(listed(asWritten, plans)));
    // ...and where defaultPlan names one, their order does not.
    expect(digestOf(listed(asWritten, swapped, { defaultPlan: 'team' }))).toBe(digestOf(listed(asWritten, plans, { defaultPlan: 'team' })));
    // A set's items themselves still count.
    expect(digestOf({ ...listed(asWritten), scopes: ['rows:read', 'rows:write', 'admin', 'rows:delete'] })).not.toBe(digestOf(listed(asWritten)));
  });
});
