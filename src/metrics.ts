/** Prometheus metrics (prom-client), served on the admin listener at /metrics. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  requests: Counter<'outcome' | 'reason'>;
  duration: Histogram<'outcome'>;
  units: Counter<'meter'>;
}

export function createMetrics(options: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'keygate_' });
  return {
    registry,
    requests: new Counter({
      name: 'keygate_requests_total',
      help: 'Gateway requests by outcome (forwarded, builtin, denied) and denial reason.',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'keygate_request_duration_seconds',
      help: 'Time from request to response headers, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    units: new Counter({ name: 'keygate_units_charged_total', help: 'Units committed, by meter.', labelNames: ['meter'], registers: [registry] }),
  };
}
