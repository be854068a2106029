/**
 * Whether this process can serve: its store answers and takes writes, its counters
 * backend is reachable and takes admissions, and the upstream it started
 * (`upstream.spawn`), if any, runs. The admin API reports it at /health (always 200 while the process runs) and /health/ready
 * (503 while requests or changes are refused for want of a backend, while the upstream
 * keygate started is down, or once keygate is stopping: for a load balancer), and the
 * backends as `keygate_backend_up` in /metrics.
 */
import { oncePer } from '../log.js';
import type { Runtime } from '../runtime.js';
import type { WriteRefusal } from '../store/write-refusal.js';

/** The store gets this long to answer before it counts as unreachable. */
const STORE_DEADLINE_MS = 1_000;
/** When a client is told to ask again while a backend is away (Retry-After, in seconds). */
export const OUTAGE_RETRY_AFTER_S = 5;
/** When a request refused while keygate stops (the gateway, or the library once `close()` has begun) may try again (Retry-After, seconds): another process takes it. */
export const DRAINING_RETRY_AFTER_S = 1;

export type BackendState = 'ok' | 'unreachable';

export interface Health {
  /**
   * ok; degraded: serving, but on per-process limits (Redis unreachable, or refusing
   * admissions, with `counterFailure: open`); unavailable: requests (or, the store
   * refusing writes, changes) are refused with 503, or the upstream keygate started (`upstream.spawn`) is
   * down and requests are answered service_unavailable (503) until it is back; stopping:
   * it serves until its readiness delay is over, then closes (a load balancer should take
   * it out).
   */
  status: 'ok' | 'degraded' | 'unavailable' | 'stopping';
  /** unwritable: it answers, but refused a write for want of room or permission (store.writeRefusal). */
  store: BackendState | 'unwritable';
  /** refusing: it answers, but refuses admissions with an error (Redis: OOM, READONLY, NOPERM) until one is taken. */
  counters: BackendState | 'refusing';
  /** Why, when status is not ok. */
  reason?: string;
}

type Judged = Pick<Runtime, 'store' | 'counters' | 'config' | 'upstreamDown'> & { stopping?: boolean };

/**
 * `storeReached`: the store's state when the caller has just had it answer (start-up, which
 * read it to check the migrations), so that a ping slower than its deadline on a busy
 * host does not make a start that went through read as unready.
 */
export async function checkHealth(rt: Judged, storeReached?: BackendState): Promise<Health> {
  const [reached, countersReached] = await Promise.all([storeReached ?? storeState(rt), rt.counters.isReachable() ? ('ok' as const) : ('unreachable' as const)]);
  const refusal = reached === 'ok' ? rt.store.writeRefusal?.() : undefined;
  const store = refusal ? 'unwritable' : reached;
  const admissionRefusal = countersReached === 'ok' ? rt.counters.admissionRefusal?.() : undefined;
  const counters = admissionRefusal === undefined ? countersReached : 'refusing';
  const [status, reason] = verdict(rt, store, counters, refusal, admissionRefusal);
  return { status, store, counters, ...(reason === undefined ? {} : { reason }) };
}

/** The status, in the order the checks count, and why when it is not ok. */
function verdict(rt: Judged, store: Health['store'], counters: Health['counters'], refusal: WriteRefusal | undefined, admissionRefusal: string | undefined): [Health['status'], string?] {
  if (rt.stopping === true) return ['stopping', 'keygate is stopping'];
  if (store === 'unreachable') return ['unavailable', `the store (${rt.store.kind}) is not reachable`];
  if (refusal) return ['unavailable', `the store (${rt.store.kind}) refuses writes since ${new Date(refusal.since).toISOString()}: ${refusal.error.message}`];
  const upstreamDown = rt.upstreamDown?.();
  if (upstreamDown !== undefined) return ['unavailable', upstreamDown];
  if (counters === 'ok') return ['ok'];
  const { counterFailure } = rt.config;
  // Refused (a wrong password or user) rather than not there: the fix is in the URL, not the network.
  const answered = counters === 'unreachable' ? rt.counters.refusal?.() : undefined;
  // Reachable, yet every request with something to count is refused (closed) or judged by this process alone (open).
  const why = admissionRefusal !== undefined ? `answers admissions with an error: ${admissionRefusal}` : answered === undefined ? 'is not reachable' : `refuses the connection: ${answered}`;
  return [counterFailure === 'open' ? 'degraded' : 'unavailable', `the counters backend (${rt.counters.kind}) ${why} (counterFailure: ${counterFailure})`];
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

/** How often a request failed for the store's absence is logged, at most (admin API, dashboard). */
const STORE_AWAY_LOG_INTERVAL_MS = 10_000;

/** What a failed request is logged with: Fastify's request logger, or keygate's log. */
interface ErrorLog {
  error(fields: object, msg: string): void;
}

/**
 * Logs a request that failed (in the admin API or the dashboard: `surface`), and answers
 * whether the store was away. With the store away (PostgreSQL down) every request fails
 * alike: one line every STORE_AWAY_LOG_INTERVAL_MS says so, with the error's message and
 * code and how many failed since the last line, where a stack per request buried the
 * log. Any other failure is logged in full, each time: a fault of keygate's.
 */
export function requestFailureLog(rt: Pick<Runtime, 'store'>, surface: string): (log: ErrorLog, error: Error & { code?: unknown }, fields: object) => Promise<boolean> {
  const logStoreAway = oncePer(STORE_AWAY_LOG_INTERVAL_MS);
  return async (log, error, fields) => {
    if ((await storeState(rt)) !== 'unreachable') {
      log.error({ err: error, ...fields }, `${surface} error`);
      return false;
    }
    logStoreAway(({ moreSinceLast }) =>
      log.error(
        { ...fields, error: { message: error.message, code: error.code }, ...(moreSinceLast === undefined ? {} : { moreSinceLast }) },
        `${surface}: a request failed, the store (${rt.store.kind}) is not reachable${moreSinceLast === undefined ? '' : ` (and ${moreSinceLast} more since the last such line)`}`,
      ),
    );
    return true;
  };
}
