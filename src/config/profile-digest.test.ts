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
});
