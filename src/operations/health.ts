/**
 * Whether this process can serve: its store answers, and its counters backend is
 * reachable. The admin API reports it at /health (always 200 while the process runs)
 * and /health/ready (503 while requests are refused for want of a backend, or once
 * keygate is stopping: for a load balancer), and as `keygate_backend_up` in /metrics.
 */
import type { Runtime } from '../runtime.js';

/** The store gets this long to answer before it counts as unreachable. */
const STORE_DEADLINE_MS = 1_000;
/** When a client is told to ask again while a backend is away (Retry-After, in seconds). */
export const OUTAGE_RETRY_AFTER_S = 5;
/** When a request refused while keygate stops (the gateway, or the library once `close()` has begun) may try again (Retry-After, seconds): another process takes it. */
export const DRAINING_RETRY_AFTER_S = 1;

export type BackendState = 'ok' | 'unreachable';

export interface Health {
  /**
   * ok; degraded: serving, but on per-process limits (Redis unreachable with
   * `counterFailure: open`); unavailable: requests are refused with 503; stopping: it
   * serves until its readiness delay is over, then closes (a load balancer should take it out).
   */
  status: 'ok' | 'degraded' | 'unavailable' | 'stopping';
  store: BackendState;
  counters: BackendState;
}

export async function checkHealth(rt: Pick<Runtime, 'store' | 'counters' | 'config'> & { stopping?: boolean }): Promise<Health> {
  const [store, counters] = await Promise.all([storeState(rt), rt.counters.isReachable() ? ('ok' as const) : ('unreachable' as const)]);
  const status =
    rt.stopping === true ? 'stopping' : store === 'unreachable' ? 'unavailable' : counters === 'ok' ? 'ok' : rt.config.counterFailure === 'open' ? 'degraded' : 'unavailable';
  return { status, store, counters };
}

/** Whether the store answers a ping within a second. */
export async function storeState(rt: Pick<Runtime, 'store'>): Promise<BackendState> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<BackendState>((resolve) => (timer = setTimeout(() => resolve('unreachable'), STORE_DEADLINE_MS)));
  try {
    return await Promise.race([rt.store.ping().then(() => 'ok' as const, () => 'unreachable' as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
