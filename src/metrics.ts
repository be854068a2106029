/**
 * Prometheus metrics, served on the admin listener at /metrics.
 *
 * The gateway counts each request in plain numbers (a map lookup by reason, an array
 * slot by bucket: no label objects, no hashing), and the numbers are turned into
 * metrics only when /metrics is scraped. The counters go through prom-client (filled in
 * its `collect()`); the duration histogram, which prom-client can only fill one
 * observation at a time, is written in the exposition format here.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { StoreLookups } from './pipeline/pipeline.js';
import type { SpawnedUpstream } from './spawned-upstream.js';
import type { HeldUnitTotals } from './counters/counters.js';
import { DENIAL_REASONS } from './denial/reasons.js';
import { KEY_CACHE_BOUND, KEY_CACHE_DROP_CAUSES, type KeyCacheDropCause } from './keys/key-cache.js';
import { KEYGATE_VERSION, NODE_VERSION } from './build-info.js';

/** What became of a request: forwarded and answered, answered by a built-in, refused, or admitted but the upstream failed (502/504). */
export type Outcome = 'forwarded' | 'builtin' | 'denied' | 'upstream_error';

/** What an admitted request's upstream failure is named: an outcome of its own, not a refusal. */
const UPSTREAM_REASONS: readonly string[] = ['upstream_unavailable', 'upstream_timeout'];
/** The outcome and reason pairs of keygate_requests_total shown at 0 before their first request. */
const KNOWN_SERIES: readonly (readonly [Outcome, string])[] = [
  ['forwarded', ''],
  ['builtin', ''],
  ...DENIAL_REASONS.filter((reason) => !UPSTREAM_REASONS.includes(reason)).map((reason) => ['denied', reason] as const),
  ...UPSTREAM_REASONS.map((reason) => ['upstream_error', reason] as const),
];

/** What became of a reload of the profile: put into effect (also one that changed nothing), or refused (the profile in use stays). */
export type ReloadResult = 'applied' | 'refused';
const RELOAD_RESULTS: readonly ReloadResult[] = ['applied', 'refused'];

/** What the access log records for a client that hung up before its answer (as nginx does). */
export const CLIENT_CLOSED = 499;

const DURATION_NAME = 'keygate_request_duration_seconds';
const DURATION_HELP = 'Time from request to the end of the answer, by outcome.';
/**
 * Upper bounds (seconds) of the duration buckets; +Inf is implied. Past 10 s, a few wide
 * ones: upstream.timeout is 30 s by default (a 504 at it lands in 60), and may be set
 * longer, and a streamed answer may take minutes. 17 bounds, each a series per outcome.
 */
const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export interface Metrics {
  readonly contentType: string;
  /**
   * One gateway request, once its answer is over: outcome, denial reason ('' if none),
   * seconds it took, and the status answered (499: the client left before its answer).
   */
  request(outcome: Outcome, reason: string, seconds: number, status: number): void;
  /** Units committed on a meter. */
  units(meter: string, units: number): void;
  /** A check of the admin API's (POST /v1/check) released without a settle, and why. */
  checkReleased(why: 'timeout' | 'evicted' | 'shutdown'): void;
  /** A reload of the profile (SIGHUP), applied or refused. */
  reload(result: ReloadResult): void;
  /** A client connection closed as it came in: its listener held its most (`maxConnections`). */
  connectionDropped(listener: string): void;
  /** Whether the store and the counters backend answer, as of now (set before each scrape). */
  backends(state: { store: 'ok' | 'unreachable' | 'unwritable'; counters: 'ok' | 'unreachable' | 'refusing' }): void;
  /** Everything in the Prometheus text format. */
  text(): Promise<string>;
}

/** Request counts and durations of one outcome. */
class OutcomeStats {
  /** Requests by denial reason; those without one (every forwarded request) are `count` less these. */
  readonly byReason = new Map<string, number>();
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;
}

export interface MetricsOptions {
  /** Node's own process metrics (default true). */
  defaults?: boolean;
  /** Keys looked up in the store so far, read at each scrape. */
  storeLookups?: Readonly<StoreLookups>;
  /** The counters backend's batches so far (Redis), read at each scrape. */
  roundTrips?: Readonly<{ count: number; seconds: number }>;
  /** Units held for the counters backend while it is away (Redis), read at each scrape. */
  heldUnits?: () => HeldUnitTotals;
  /** Blocks started by this process so far, by window (those that can start one at 0), read at each scrape. */
  blocksStarted?: ReadonlyMap<string, number>;
  /** Client addresses blocked so far for their unknown keys (auth.unknownKeys), read at each scrape. */
  addressBlocks?: Readonly<{ started: number }>;
  /** A digest of the profile in effect (what a reload can change), read at each scrape. */
  profileDigest?: () => string;
  /** The key cache, its known keys and its drops by cause read at each scrape. */
  keyCache?: Readonly<{ knownKeys: number; drops: Readonly<Record<KeyCacheDropCause, number>> }>;
  /** The upstream keygate started (upstream.spawn), if it did: whether it is down, and its restarts, read at each scrape. */
  spawnedUpstream?: Pick<SpawnedUpstream, 'down' | 'restarts'>;
  /** Log lines dropped from standard output so far (its reader did not read), read at each scrape. */
  logLinesDropped?: () => number;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'keygate_' });
  const stats: Record<Outcome, OutcomeStats> = { forwarded: new OutcomeStats(), builtin: new OutcomeStats(), denied: new OutcomeStats(), upstream_error: new OutcomeStats() };
  const unitsByMeter = new Map<string, number>();
  /** Answers by status class: slots 1 to 5 (1xx to 5xx), and 0 for clients that left before theirs. */
  const byClass = new Float64Array(6);
  /** A counter without labels whose value is a running total kept elsewhere, read at each scrape. */
  const totalOf = (name: string, help: string, total: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(total());
      },
    });

  new Counter({
    name: 'keygate_requests_total',
    help: 'Gateway requests by outcome (forwarded, builtin, denied, upstream_error) and reason.',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      // Every series a request can land in, from the start: an alert on increase() sees the
      // first rate-limited request, not only those after it.
      for (const [outcome, reason] of KNOWN_SERIES) this.inc({ outcome, reason }, 0);
      for (const [outcome, s] of Object.entries(stats)) {
        let withReason = 0;
        for (const [reason, count] of s.byReason) {
          this.inc({ outcome, reason }, count);
          withReason += count;
        }
        if (s.count > withReason) this.inc({ outcome, reason: '' }, s.count - withReason);
      }
    },
  });
  new Counter({
    name: 'keygate_responses_total',
    help: 'Gateway answers by status class (1xx to 5xx: an upstream\'s 5xx counts here, forwarded as it is), and client_closed for a client that left before its answer (logged as 499).',
    labelNames: ['class'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ class: 'client_closed' }, byClass[0] as number);
      for (let c = 1; c <= 5; c++) this.inc({ class: `${c}xx` }, byClass[c] as number);
    },
  });
  new Counter({
    name: 'keygate_units_charged_total',
    help: 'Units committed, by meter.',
    labelNames: ['meter'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [meter, units] of unitsByMeter) this.inc({ meter }, units);
    },
  });

  const { storeLookups } = options;
  if (storeLookups) {
    new Counter({
      name: 'keygate_key_store_lookups_total',
      help: 'Presented keys the key cache did not hold, looked up in the store, by result: found, unknown (no such key), failed (the store failed or did not answer within 2 s; a key seen before may still have been served). Against keygate_requests_total: how often requests wait on the store.',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        this.reset();
        for (const result of ['found', 'unknown', 'failed'] as const) this.inc({ result }, storeLookups[result]);
      },
    });
  }

  const { roundTrips } = options;
  if (roundTrips) {
    totalOf(
      'keygate_redis_round_trips_total',
      'Batches of admissions and settles sent to Redis (each one round trip, for every request that arrived while the one before was on its way).',
      () => roundTrips.count,
    );
    totalOf(
      'keygate_redis_round_trip_seconds_total',
      'Time those batches took, from sending to the answer, in all: divided by keygate_redis_round_trips_total, the mean round trip.',
      () => roundTrips.seconds,
    );
  }

  const { heldUnits } = options;
  if (heldUnits) {
    new Gauge({
      name: 'keygate_counters_held_units',
      help: "Units this process holds for Redis while it cannot reach it, summed over meters, by state: in_flight (charged or reserved by requests admitted on per-process counters, counterFailure: open, not settled yet), undelivered (committed, or given back, while Redis could not take them: added to Redis when it answers, saved in the store by a clean stop, lost if the process is killed), unreleased (reserved in Redis by requests whose settle could not reach it: released when it answers, else lapsing after 10 minutes, holding the account's balance meanwhile). Every state from 0; all 0 once Redis has taken them.",
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const held = heldUnits();
        this.set({ state: 'in_flight' }, held.inFlight);
        this.set({ state: 'undelivered' }, held.undelivered);
        this.set({ state: 'unreleased' }, held.unreleased);
      },
    });
  }

  const reloads = new Counter({
    name: 'keygate_config_reloads_total',
    help: 'Reloads of the profile (SIGHUP) by result: applied (one that changed nothing too), refused (unreadable, invalid, or a change only a restart applies: the profile in use stays). A SIGHUP while keygate stops is ignored, not counted.',
    labelNames: ['result'],
    registers: [registry],
  });
  // Both from the start: an alert on increase() sees the first refusal.
  for (const result of RELOAD_RESULTS) reloads.inc({ result }, 0);
  const checksReleased = new Counter({
    name: 'keygate_checks_released_total',
    help: 'Checks of the admin API (POST /v1/check) released without a settle, their reservations given back, by why: timeout (not settled in time), evicted (too many waiting), shutdown (keygate stopping).',
    labelNames: ['why'],
    registers: [registry],
  });
  // Each from the start: an alert on increase() sees the first one.
  for (const why of ['timeout', 'evicted', 'shutdown']) checksReleased.inc({ why }, 0);
  const droppedConnections = new Counter({
    name: 'keygate_connections_dropped_total',
    help: 'Client connections closed as they came in because their listener held its most (listen.maxConnections), by listener.',
    labelNames: ['listener'],
    registers: [registry],
  });
  // The gateway's from the start: an alert on increase() sees the first one.
  droppedConnections.inc({ listener: 'gateway' }, 0);
  const lastReloadSuccess = new Gauge({
    name: 'keygate_config_last_reload_success_timestamp_seconds',
    help: 'When the profile in use was put into effect: at start-up, then by the last reload applied (seconds since the epoch).',
    registers: [registry],
  });
  // Made once the profile is in effect (start-up), which counts as its first success, as Prometheus's own does.
  lastReloadSuccess.set(Date.now() / 1000);

  const { blocksStarted } = options;
  if (blocksStarted) {
    new Counter({
      name: 'keygate_blocks_started_total',
      help: 'Rate-limit blocks started by this process\'s admissions (each once, however many requests it then refuses), by the window whose refusal started it; every window that can start one from 0.',
      labelNames: ['window'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [window, count] of blocksStarted) this.inc({ window }, count);
      },
    });
  }

  const { addressBlocks } = options;
  if (addressBlocks) {
    // No address label: one series, however many addresses (the log line names each).
    totalOf(
      'keygate_address_blocks_started_total',
      'Client addresses (an IPv4 address, an IPv6 /64) this process blocked for presenting too many unknown keys (auth.unknownKeys), each block once however many requests it then refuses (too_many_failures). Shown at 0 from the start.',
      () => addressBlocks.started,
    );
  }

  new Gauge({
    name: 'keygate_build_info',
    help: 'The keygate release this process runs (version, as keygate --version prints it) and its Node.js version (node). Always 1: during a rolling upgrade, count by (version) tells old processes from new.',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: KEYGATE_VERSION, node: NODE_VERSION }, 1);

  const { profileDigest } = options;
  if (profileDigest) {
    new Gauge({
      name: 'keygate_config_info',
      help: 'The profile in effect, as a digest of the parts a reload can change (plans, routes, builtins, scopes, errors, ...): processes showing different digests judge requests by different profiles (one missed a SIGHUP, or refused it). Always 1.',
      labelNames: ['digest'],
      registers: [registry],
      collect() {
        this.reset();
        this.set({ digest: profileDigest() }, 1);
      },
    });
  }

  const { keyCache } = options;
  if (keyCache) {
    new Gauge({
      name: 'keygate_key_cache_entries',
      help: `Keys held in this process's key cache (expired ones kept for a store outage included; keys the store did not know are not counted). At most ${KEY_CACHE_BOUND.toLocaleString('en-US')}: beyond that the oldest is dropped, and looked up in the store again when next used.`,
      registers: [registry],
      collect() {
        this.set(keyCache.knownKeys);
      },
    });
    new Counter({
      name: 'keygate_key_cache_drops_total',
      help: "Drops from this process's key cache, by cause: message (a key or account changed, heard on the counters' channel: Redis pub/sub, this process's own changes included), resubscribed (the Redis subscription came back: the whole cache, messages may have been missed), store_mark (a PostgreSQL change mark this process had not heard of as a message: the whole cache), store_file (another process wrote the SQLite file: the whole cache). Every cause from 0: store_mark rising while message does not points at a pub/sub that stopped delivering.",
      labelNames: ['cause'],
      registers: [registry],
      collect() {
        this.reset();
        for (const cause of KEY_CACHE_DROP_CAUSES) this.inc({ cause }, keyCache.drops[cause]);
      },
    });
  }

  const { spawnedUpstream } = options;
  if (spawnedUpstream) {
    new Gauge({
      name: 'keygate_upstream_up',
      help: 'Whether the upstream keygate started (upstream.spawn) runs (1), or has exited and is not back yet (0: requests are answered 503, service_unavailable). Only with upstream.spawn.',
      registers: [registry],
      collect() {
        this.set(spawnedUpstream.down() === undefined ? 1 : 0);
      },
    });
    totalOf(
      'keygate_upstream_restarts_total',
      'Times the command of the upstream keygate started (upstream.spawn) was started again after it exited, whether it then came to listen or not. Only with upstream.spawn.',
      () => spawnedUpstream.restarts(),
    );
  }

  const { logLinesDropped } = options;
  if (logLinesDropped) {
    totalOf(
      'keygate_log_lines_dropped_total',
      'Log lines dropped, not written to standard output: its reader did not read while log.bufferSize bytes of lines waited for it (a warning says how many once it reads again). Shown at 0 from the start.',
      logLinesDropped,
    );
  }

  const backendUp = new Gauge({
    name: 'keygate_backend_up',
    help: 'Whether the backend answers (1) or not (0): store, counters.',
    labelNames: ['backend'],
    registers: [registry],
  });

  function durationText(): string {
    const lines = [`# HELP ${DURATION_NAME} ${DURATION_HELP}`, `# TYPE ${DURATION_NAME} histogram`];
    for (const [outcome, s] of Object.entries(stats)) {
      if (s.count === 0) continue;
      let cumulative = 0;
      DURATION_BUCKETS.forEach((bound, i) => {
        cumulative += s.buckets[i] as number;
        lines.push(`${DURATION_NAME}_bucket{le="${bound}",outcome="${outcome}"} ${cumulative}`);
      });
      lines.push(`${DURATION_NAME}_bucket{le="+Inf",outcome="${outcome}"} ${s.count}`);
      lines.push(`${DURATION_NAME}_sum{outcome="${outcome}"} ${s.sum}`);
      lines.push(`${DURATION_NAME}_count{outcome="${outcome}"} ${s.count}`);
    }
    return `${lines.join('\n')}\n`;
  }

  return {
    contentType: registry.contentType,
    request(outcome, reason, seconds, status) {
      const c = status === CLIENT_CLOSED ? 0 : Math.trunc(status / 100);
      if (c >= 0 && c <= 5) byClass[c] = (byClass[c] as number) + 1;
      const s = stats[outcome];
      if (reason !== '') s.byReason.set(reason, (s.byReason.get(reason) ?? 0) + 1);
      let i = 0;
      while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++;
      s.buckets[i] = (s.buckets[i] as number) + 1;
      s.sum += seconds;
      s.count += 1;
    },
    units(meter, units) {
      unitsByMeter.set(meter, (unitsByMeter.get(meter) ?? 0) + units);
    },
    checkReleased(why) {
      checksReleased.inc({ why });
    },
    reload(result) {
      reloads.inc({ result });
      if (result === 'applied') lastReloadSuccess.set(Date.now() / 1000);
    },
    connectionDropped(listener) {
      droppedConnections.inc({ listener });
    },
    backends({ store, counters }) {
      backendUp.set({ backend: 'store' }, store === 'ok' ? 1 : 0);
      backendUp.set({ backend: 'counters' }, counters === 'ok' ? 1 : 0);
    },
    text: async () => `${await registry.metrics()}\n${durationText()}`,
  };
}
