/**
 * Opens the counters backend named in keygate.yaml: `memory`, or `redis://...` (with
 * `counterFailure` deciding what happens while Redis is unreachable).
 */
import type { Config } from '../config/schema.js';
import type { Store } from '../store/store.js';
import type { Log } from '../log.js';
import type { Counters } from './counters.js';
import { MemoryCounters } from './memory/memory-counters.js';

export interface CountersDeps {
  store: Store;
  log: Log;
  clock: () => number;
  /** See RedisCountersOptions.use. */
  use?: 'requests' | 'command';
}

export async function openCounters(config: Config, deps: CountersDeps): Promise<Counters> {
  if (config.counters === 'memory') {
    if (deps.store.kind === 'postgres') {
      deps.log.warn(
        'counters: memory with a PostgreSQL store is for one process only: with several, each limits on its own and balances are not shared. Use counters: redis://...',
      );
    }
    return new MemoryCounters(deps.clock);
  }
  if (config.counters.startsWith('redis://') || config.counters.startsWith('rediss://')) {
    // Loaded only here: a process on memory counters (the library's default) never loads ioredis.
    const { openRedisCounters } = await import('./redis/redis-counters.js');
    return openRedisCounters({ url: config.counters, failure: config.counterFailure, store: deps.store, log: deps.log, clock: deps.clock, use: deps.use ?? 'requests' });
  }
  throw new Error(`counters: expected "memory" or "redis://...", got "${config.counters}"`);
}
