/** Opens the counters backend named in keygate.yaml: `memory` or `redis://...`. */
import type { Config } from '../config/schema.js';
import type { Store } from '../store/store.js';
import type { Log } from '../log.js';
import type { Counters } from './counters.js';
import { MemoryCounters } from './memory/memory-counters.js';

export interface CountersDeps {
  store: Store;
  log: Log;
  clock: () => number;
}

export async function openCounters(config: Config, deps: CountersDeps): Promise<Counters> {
  if (config.counters === 'memory') return new MemoryCounters(deps.clock);
  if (config.counters.startsWith('redis://') || config.counters.startsWith('rediss://')) {
    throw new Error('counters: the Redis backend is not available in this build');
  }
  throw new Error(`counters: expected "memory" or "redis://...", got "${config.counters}"`);
}
