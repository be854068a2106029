/**
 * Blocks as they begin: one log line each, and a count by the window that tipped them
 * over (keygate_blocks_started_total). Told by the pipeline only when an admission started
 * a block, so refused requests while it lasts add nothing. With Redis, each block is
 * started by exactly one admission, in one process: that process logs and counts it.
 */
import type { Config, RateLimit } from '../config/schema.js';
import type { BlockStart } from '../counters/counters.js';
import type { Identity } from '../pipeline/identity.js';
import type { Log } from '../log.js';
import { policyName, windowNames } from './rate-limits.js';

export interface BlockStarts {
  /** Blocks started by this process, by window name (plain numbers, turned into a metric when scraped). */
  readonly byWindow: ReadonlyMap<string, number>;
  /** Shows at 0 the windows of a profile that can start a block (at start-up, and each reload). */
  expect(config: Config): void;
  record(started: BlockStart, identity: Identity): void;
}

export function createBlockStarts(log: Log): BlockStarts {
  const byWindow = new Map<string, number>();
  return {
    byWindow,
    expect(config) {
      for (const name of blockingWindowNames(config)) if (!byWindow.has(name)) byWindow.set(name, 0);
    },
    record(started, { key, account, planId, plan }) {
      const { window } = started;
      byWindow.set(window.name, (byWindow.get(window.name) ?? 0) + 1);
      // A warning: a client is shut out for a while, and may ask why. At most one line per
      // block (each lasts `duration` at least), so it cannot flood the log.
      log.warn(
        {
          key: key.id,
          account: account.id,
          plan: planId,
          scope: plan.block?.scope ?? 'key',
          window: window.name,
          limit: window.limit,
          windowMs: window.windowMs,
          escalation: started.escalation,
          blockMs: started.lengthMs,
          blockedUntil: new Date(started.endsAt).toISOString(),
        },
        'rate-limit block started',
      );
    },
  };
}

/** The names of the windows that can start a block: a blocking plan's own, and every route's if any plan blocks. */
function blockingWindowNames(config: Config): Set<string> {
  const names = new Set<string>();
  const blocking = Object.values(config.plans).filter((plan) => plan.block);
  // As the RateLimit fields name them (windowNames): a plan's windows, then a route's.
  const named = (windows: readonly RateLimit[]) => windowNames(windows.map((rl) => ({ name: policyName(rl), scope: rl.scope })));
  for (const plan of blocking) {
    for (const name of named(plan.rateLimits)) names.add(name);
    for (const route of config.routes) for (const name of named([...plan.rateLimits, ...(route.rateLimits ?? [])])) names.add(name);
  }
  return names;
}
