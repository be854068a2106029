import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

describe('metrics', () => {
  it('shows every request series at 0 before its first request, and counts answers by status class', async () => {
    const metrics = createMetrics({ defaults: false });
    const before = await metrics.text();
    for (const series of ['outcome="denied",reason="rate_limited"', 'outcome="denied",reason="missing_key"', 'outcome="upstream_error",reason="upstream_timeout"', 'outcome="forwarded",reason=""']) {
      expect(before).toContain(`keygate_requests_total{${series}} 0`);
    }
    // An upstream failure is no refusal.
    expect(before).not.toContain('outcome="denied",reason="upstream_timeout"');
    metrics.request('denied', 'rate_limited', 0.001, 429);
    metrics.request('forwarded', '', 0.002, 503);
    metrics.request('forwarded', '', 0.003, 499);
    const after = await metrics.text();
    expect(after).toContain('keygate_requests_total{outcome="denied",reason="rate_limited"} 1');
    expect(after).toContain('keygate_requests_total{outcome="forwarded",reason=""} 2');
    expect(after).toContain('keygate_responses_total{class="4xx"} 1');
    expect(after).toContain('keygate_responses_total{class="5xx"} 1');
    expect(after).toContain('keygate_responses_total{class="client_closed"} 1');
    expect(after).toContain('keygate_responses_total{class="2xx"} 0');
  });

  it('counts a duration past 10 s in a bucket of its own, not only in +Inf: a 504 at the default upstream.timeout (30 s) in le="60"', async () => {
    const metrics = createMetrics({ defaults: false });
    metrics.request('forwarded', '', 12, 200);
    metrics.request('upstream_error', 'upstream_timeout', 30.004, 504);
    metrics.request('forwarded', '', 400, 200);
    const text = await metrics.text();
    const bucket = (outcome: string, le: string) => Number(new RegExp(`keygate_request_duration_seconds_bucket\\{le="${le.replace('+', '\\+')}",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1]);
    expect(['10', '30', '60', '120', '300', '+Inf'].map((le) => bucket('forwarded', le))).toEqual([0, 1, 1, 1, 1, 2]);
    expect(['10', '30', '60', '+Inf'].map((le) => bucket('upstream_error', le))).toEqual([0, 0, 1, 1]);
  });

  it('shows the upstream keygate started as up or down, and its restarts, only where it started one (upstream.spawn)', async () => {
    expect(await createMetrics({ defaults: false }).text()).not.toContain('keygate_upstream_');
    let down: string | undefined;
    let restarts = 0;
    const metrics = createMetrics({ defaults: false, spawnedUpstream: { down: () => down, restarts: () => restarts } });
    expect(await metrics.text()).toContain('keygate_upstream_up 1\n');
    expect(await metrics.text()).toContain('keygate_upstream_restarts_total 0\n');
    down = 'it exited (SIGKILL)';
    restarts = 1;
    expect(await metrics.text()).toContain('keygate_upstream_up 0\n');
    expect(await metrics.text()).toContain('keygate_upstream_restarts_total 1\n');
  });

  it('shows the log lines dropped from standard output, at 0 before the first', async () => {
    let dropped = 0;
    const metrics = createMetrics({ defaults: false, logLinesDropped: () => dropped });
    expect(await metrics.text()).toContain('keygate_log_lines_dropped_total 0\n');
    dropped = 166;
    expect(await metrics.text()).toContain('keygate_log_lines_dropped_total 166\n');
  });
});
