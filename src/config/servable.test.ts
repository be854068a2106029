import { describe, expect, it } from 'vitest';
import { parseConfigObject } from './load.js';
import { servingPlan } from './servable.js';

const SERVE_FLAGS = { gateway: '--port', admin: '--admin-port', dashboard: '--dashboard-port' };

describe("servingPlan: an upstream.url on one of keygate's own listeners", () => {
  it('is not servable on the profile’s port, named by its field; serve and check word it alike', () => {
    const config = parseConfigObject({ upstream: { url: 'http://localhost:9000' }, listen: { port: 9000 } });
    expect(servingPlan(config, { portFlags: SERVE_FLAGS })).toEqual({
      servable: false,
      reason: "upstream.url is keygate's own gateway (listen.port 9000): requests would be forwarded to keygate itself, not to your API",
      fields: ['upstream.url', 'listen.port'],
      remedy: 'give upstream.url the address your API listens on, or move the gateway to another port (listen.port, or --port)',
      problems: [
        {
          field: 'upstream.url',
          message: "http://localhost:9000/ is keygate's own gateway (listen.port 9000): requests would be forwarded to keygate itself, not to your API; give upstream.url the address your API listens on, or move the gateway to another port (listen.port, or --port)",
        },
      ],
      headline: "cannot be served: upstream.url is keygate's own gateway",
    });
  });

  it('is judged on the ports serve is given instead of the profile’s: one moved away is servable, one moved onto the upstream is named by its flag', () => {
    const clashing = parseConfigObject({ upstream: { url: 'http://127.0.0.1:9000' }, listen: { port: 9000 } });
    expect(servingPlan(clashing, { ports: { gateway: 9001 }, portFlags: SERVE_FLAGS })).toEqual({ servable: true, gateway: true, listeners: ['gateway', 'admin', 'dashboard'] });
    const apart = parseConfigObject({ upstream: { url: 'http://127.0.0.1:9000' }, dashboard: { enabled: false } });
    expect(servingPlan(apart, { ports: { admin: 9000 }, portFlags: SERVE_FLAGS })).toMatchObject({
      servable: false,
      reason: "upstream.url is keygate's own admin API (--admin-port 9000): requests would be forwarded to keygate itself, not to your API",
      fields: ['upstream.url', 'admin.listen.port'],
    });
  });

  it('never clashes with a listener on port 0 (any free port), another host, or a spawned upstream (started on its port first)', () => {
    const plans = [
      parseConfigObject({ upstream: { url: 'http://127.0.0.1:9000' }, listen: { port: 0 } }),
      parseConfigObject({ upstream: { url: 'http://127.0.0.1:9000' }, listen: { port: 9000 } }),
      parseConfigObject({ upstream: { url: 'http://10.0.0.5:9000' }, listen: { host: '127.0.0.1', port: 9000 } }),
      parseConfigObject({ upstream: { url: 'http://127.0.0.1:9000', spawn: ['node', 'api.js'] }, listen: { port: 9000 } }),
    ].map((config, index) => servingPlan(config, index === 1 ? { ports: { gateway: 0 } } : {}));
    for (const plan of plans) expect(plan.servable).toBe(true);
  });
});
