/**
 * A running keygate: the profile, its store and counters, the key cache, the dialect,
 * the route table and the pipeline, plus the background flusher that writes balances,
 * daily usage and "last used" back to the store. The CLI, the gateway, the admin API
 * and the dashboard all work through one of these.
 */
import { existsSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { sameAsJudged } from './config/profile-digest.js';
import { createKeyFormat, describeWeakImportedKeys, weakImportedKeys, type KeyFormat } from './keys/format.js';
import { createKeyHasher, digestOfHex, type KeyHasher } from './keys/hash.js';
import { KeyCache } from './keys/key-cache.js';
import { createDialect, type Dialect } from './dialect/dialect.js';
import { describeScopeGap, describeWildcardRootGap, profileRouteTable, scopeGaps, wildcardRootGaps, type RouteTable } from './routes/route-table.js';
import { createRateLimitPlanner } from './limits/rate-limits.js';
import { createBlockStarts, type BlockStarts } from './limits/block-starts.js';
import { createPipeline, type Pipeline, type StoreLookups } from './pipeline/pipeline.js';
import { openStore, reachStore, redactUrl, sqliteFile } from './store/open.js';
import type { LimitStateRow, MeterUsageRow, Store } from './store/store.js';
import { WRITE_PROBE_INTERVAL_MS } from './store/write-refusal.js';
import type { CacheEvent, Counters } from './counters/counters.js';
import { openCounters } from './counters/open.js';
import { countersOnDemand } from './counters/on-demand.js';
import { lockDatabase } from './store/sqlite/process-lock.js';
import { periodBounds } from './meters/period.js';
import { UsageRecorder } from './usage/usage-recorder.js';
import { createLog, oncePer, releaseStandardOutput, type Log } from './log.js';
import { markChange, watchChanges, type ChangeWatch } from './keys/change-marks.js';
import { UnknownKeyLimit, type AddressBlock, type UnknownKeyCount } from './auth/unknown-key-limit.js';
import { SharedUnknownKeyLimit } from './auth/shared-unknown-key-limit.js';

export interface RuntimeOptions {
  clock?: () => number;
  log?: Log;
  store?: Store;
  counters?: Counters;
  env?: NodeJS.ProcessEnv;
  /** How often balances and usage are written back (default 1 s). */
  flushIntervalMs?: number;
  /** Apply SQLite migrations automatically (default true; PostgreSQL never). */
  autoMigrate?: boolean;
  /** `command` for one CLI command: Redis is not waited for, and warnings speak of the command (default `requests`). */
  use?: 'requests' | 'command';
}

export interface Runtime {
  /**
   * The profile. `config`, `dialect`, `routes` and `pipeline` are replaced by `reload`:
   * read them from the runtime where they are used rather than keeping a copy.
   */
  config: Config;
  readonly configDir: string;
  readonly store: Store;
  readonly counters: Counters;
  readonly keyFormat: KeyFormat;
  readonly hashKey: KeyHasher;
  readonly keyCache: KeyCache;
  dialect: Dialect;
  routes: RouteTable;
  pipeline: Pipeline;
  readonly usage: UsageRecorder;
  readonly clock: () => number;
  readonly log: Log;
  readonly env: NodeJS.ProcessEnv;
  /** Addresses the listeners actually bound (ports may be 0 in the profile), set by serve. */
  readonly listening: { gateway?: string; admin?: string; dashboard?: string };
  /**
   * The admin and read-only tokens, set by serve: no log line shows one a client put in a
   * request's address by mistake, on any listener (redactedTarget).
   */
  adminTokens: readonly string[];
  /** Set by serve once keygate begins to stop: /health/ready answers 503 from then on. */
  stopping: boolean;
  /**
   * Set by serve with `upstream.spawn`: why the upstream it started is not running, while
   * it is not (it exited and is being started again): /health/ready answers 503 meanwhile.
   */
  upstreamDown?: () => string | undefined;
  /**
   * Set by serve with `upstream.spawn`: while the upstream it started is down and will be
   * started again, milliseconds until the next try (0 while one is under way), which its
   * answers to requests it could not take (service_unavailable) give as Retry-After.
   */
  upstreamNextStartInMs?: () => number | undefined;
  /** Keys the pipeline looked up in the store (not held by the key cache), by answer. */
  readonly storeLookups: Readonly<StoreLookups>;
  /** Blocks this process's admissions started (each logged as it began), by window, for /metrics. */
  readonly blockStarts: Pick<BlockStarts, 'byWindow'>;
  /** Client addresses this process blocked for their unknown keys (`auth.unknownKeys`), each logged as it began, for /metrics. */
  readonly addressBlocks: Readonly<{ started: number }>;
  /**
   * The blocks of client addresses for their unknown keys (`auth.unknownKeys`), listed and
   * lifted by the admin API: shared by every process with Redis counters, this process's
   * own with memory counters (or while Redis is away).
   */
  readonly unknownKeyLimit: Pick<UnknownKeyCount, 'blocksInForce' | 'lift'>;
  /**
   * Looks once for keys in use that the key format refuses, and warns of them (see
   * warnOfKeysOutsideFormat); a later call answers the same look. Not part of the start:
   * it reads every key in use (0.3 to 1.8 s per million keys, bench/start-keys.js), so
   * serve calls it once its listeners are up, and a library's keygate once it is made;
   * `close` ends it between two slices of keys (10,000 each), saying nothing.
   * Never rejects (a store that cannot answer is logged); a CLI command's runtime does not look.
   */
  warnOfKeysOutsideFormat(): Promise<void>;
  /** Drop cached keys here and in every other process. */
  invalidate(event: CacheEvent): Promise<void>;
  /**
   * How many changes (a revocation, a rotation, an account's plan...) this process has
   * saved since it started whose message Redis did not carry (unreachable): `viaStore`,
   * the other processes learn of them from the store instead, within about a second;
   * `lost`, not even that (the store's change mark could not be written either): they
   * keep a cached key for up to keyCacheTtl. An answer can say so when a count rose while
   * it was made.
   */
  readonly untoldChanges: Readonly<{ viaStore: number; lost: number }>;
  /** Write balances, usage and "last used" to the store now. */
  flush(): Promise<void>;
  /**
   * Puts a changed profile into effect without a restart (counters, blocks and cached
   * balances are kept). Only the parts in RELOADABLE can change this way; if anything
   * else differs, nothing is applied and ConfigReloadError names it. Answers the
   * profile's fields that changed (none: the same profile).
   */
  reload(loaded: LoadedConfig): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * What a reload can change: what requests are judged by (plans, routes, built-ins,
 * scopes, whether paths are matched ignoring case, how many unknown keys an address may
 * present), how refusals read (errors), which rate-limit headers answers carry, whether
 * requests are logged and which query parameters their lines hide, the names, and how the
 * next stop goes (shutdown). The rest is what processes, listeners, connections and
 * stored keys were built from.
 */
export const RELOADABLE = ['name', 'title', 'plans', 'defaultPlan', 'routes', 'builtins', 'scopes', 'upstream.caseSensitivePaths', 'auth.unknownKeys', 'errors', 'rateLimitHeaders', 'log.requests', 'log.adminRequests', 'log.redactQuery', 'shutdown'] as const;

export class ConfigReloadError extends Error {
  constructor(readonly fields: string[]) {
    super(
      `${fields.join(', ')} changed, and ${fields.length === 1 ? 'it takes' : 'they take'} effect only when keygate restarts: nothing was reloaded. Restart keygate, or put ${fields.length === 1 ? 'it' : 'them'} back to reload the rest.`,
    );
    this.name = 'ConfigReloadError';
  }
}

/**
 * The dotted paths at which two profiles differ (objects compared field by field, lists
 * whole). The same fields in another order are a change of the object: the first plan is
 * the default one. A list that is a set (routes, scopes, trustedProxies: see
 * profile-digest.ts) in another order is no change: requests are judged as before, and the
 * profile's digest stays the same. `path`: `at` as its names (a plan's id may hold a dot).
 */
export function changedFields(before: unknown, after: unknown, at = '', path: readonly string[] = []): string[] {
  if (isRecord(before) && isRecord(after)) {
    const names = new Set([...Object.keys(before), ...Object.keys(after)]);
    const inside = [...names].flatMap((name) => changedFields(before[name], after[name], at === '' ? name : `${at}.${name}`, [...path, name]));
    if (inside.length === 0 && at !== '' && !isDeepStrictEqual(Object.keys(before), Object.keys(after))) return [at];
    return inside;
  }
  return isDeepStrictEqual(before, after) || (Array.isArray(before) && Array.isArray(after) && sameAsJudged(path, before, after)) ? [] : [at];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The top-level field (or the `log` field) a changed path belongs to, if a reload can change it. */
function reloadableField(path: string): string | undefined {
  return RELOADABLE.find((field) => path === field || path.startsWith(`${field}.`));
}

/**
 * Refuses to start with a pepper other than the one the database's keys were hashed
 * with (or none where there was one): every key would be refused as unknown, silently.
 * The database keeps the hash of a fixed text, written once a presented key has been
 * found by its hash (proof that this hashing is the keys' own), or by a serving process
 * that finds no key at all; until then nothing is known and nothing is refused. Answers how to record it, or undefined once recorded.
 */
async function checkKeyHashing(store: Store, hashKey: KeyHasher, pepperEnv: string, pepper: string | undefined, log: Log, serving: boolean): Promise<(() => void) | undefined> {
  const state = await keyHashingState(store, hashKey);
  if (state === 'differs') throw await keyHashingMismatch(store, pepperEnv, pepper);
  if (state === 'matches') return undefined;
  const check = hashKey(KEY_HASH_CHECK_TEXT);
  // A serving process on a database without a key yet has nothing to contradict it: its
  // hashing is recorded now, so a CLI run without the pepper (or with another) is refused
  // before it prints a key this process would never accept.
  if (serving && (await store.listKeys({ limit: 1 })).length === 0) {
    if ((await store.settleSetting(KEY_HASH_SETTING, check)) !== check) throw await keyHashingMismatch(store, pepperEnv, pepper);
    return undefined;
  }
  let pending = true;
  return () => {
    if (!pending) return;
    pending = false;
    store.settleSetting(KEY_HASH_SETTING, check).then(
      (value) => {
        if (value !== check) log.error(`another process recorded a different ${pepperEnv}: processes disagree on the pepper, and each refuses the other's keys`);
      },
      () => {
        pending = true; // the store is unreachable: try again with the next key found
      },
    );
  };
}

/** How often, at most, a failing key lookup is logged while the store does not answer. */
const LOOKUP_FAILURE_LOG_INTERVAL_MS = 10_000;
const KEY_HASH_SETTING = 'key_hash_check';
const KEY_HASH_CHECK_TEXT = 'keygate key hashing check';

/**
 * Whether keys hashed this way (this pepper, or none) are the database's: `unrecorded`
 * until a running keygate has found a key by its hash.
 */
export async function keyHashingState(store: Pick<Store, 'getSetting'>, hashKey: KeyHasher): Promise<'matches' | 'differs' | 'unrecorded'> {
  const recorded = await store.getSetting(KEY_HASH_SETTING);
  if (recorded === undefined) return 'unrecorded';
  return recorded === hashKey(KEY_HASH_CHECK_TEXT) ? 'matches' : 'differs';
}

/**
 * Forgets which hashing the keys were found with (`keygate pepper forget`): the next key
 * a running keygate finds by its hash records that process's. Answers whether there was a record.
 */
export function forgetKeyHashing(store: Pick<Store, 'deleteSetting'>): Promise<boolean> {
  return store.deleteSetting(KEY_HASH_SETTING);
}

/** How the recorded hashing and this process's differ: which one has a pepper. */
export type PepperMismatch = 'set where there was none' | 'unset where there was one' | 'another';

export class KeyHashingMismatchError extends Error {
  constructor(pepperEnv: string, mismatch: PepperMismatch = 'another') {
    const refused = 'every existing key would be refused';
    const forget = 'forget it: keygate pepper forget --config <file>';
    // Said as it is, where the record tells it: "set where it was not" left the operator to
    // work out which of three cases theirs was.
    super(
      mismatch === 'set where there was none'
        ? `${pepperEnv} is set, but this database's keys were made without a pepper: ${refused}. Start every process without ${pepperEnv}. If keys are to be made with a pepper from now on (which invalidates every existing key), ${forget}.`
        : mismatch === 'unset where there was one'
          ? `${pepperEnv} is not set, but this database's keys were made with a pepper: ${refused}. Start every process with the same ${pepperEnv}. If the recorded one is the wrong one, ${forget}.`
          : `${pepperEnv} is not the pepper this database's keys were made with: ${refused}. Start every process with the same ${pepperEnv}. If the recorded one is the wrong one (or you changed the pepper on purpose, which invalidates every key), ${forget}.`,
    );
    this.name = 'KeyHashingMismatchError';
  }
}

/** The refusal for a process whose hashing (`pepper`: its pepper, if any) is not the recorded one. */
export async function keyHashingMismatch(store: Pick<Store, 'getSetting'>, pepperEnv: string, pepper: string | undefined): Promise<KeyHashingMismatchError> {
  const recordedWithout = (await store.getSetting(KEY_HASH_SETTING)) === createKeyHasher(undefined)(KEY_HASH_CHECK_TEXT);
  return new KeyHashingMismatchError(pepperEnv, pepper && recordedWithout ? 'set where there was none' : !pepper && !recordedWithout ? 'unset where there was one' : 'another');
}

export class NotMigratedError extends Error {
  /** `configFile`: the profile the refused process was started with, named in the command to run. */
  constructor(pending: string[], configFile = '<file>') {
    super(
      `the database is not migrated (pending: ${pending.join(', ')}). Run "keygate migrate --config ${configFile}" first.`,
    );
    this.name = 'NotMigratedError';
  }
}

/**
 * What a cache event drops from this process's key cache. `heard`: it came as a message
 * (counted by cause in /metrics); a process's own change is dropped before it is sent, and
 * counted when it comes back.
 */
function dropFromCache(keyCache: KeyCache, event: CacheEvent, heard = false): void {
  if (event.type === 'key') keyCache.delete(digestOfHex(event.hash), heard ? 'message' : undefined);
  else if (event.type === 'account') keyCache.deleteAccount(event.accountId, heard ? 'message' : undefined);
  // Only the subscription's return drops everything by message (redis-counters.ts).
  else keyCache.clear(heard ? 'resubscribed' : undefined);
}

/**
 * Brings a SQLite store up to date (unless `autoMigrate` is off) and answers the
 * migrations it applied; a PostgreSQL one that is not is refused with NotMigratedError,
 * which names `keygate migrate` (with `configFile`, the profile to give it).
 */
export async function migrateOrRefuse(store: Store, autoMigrate = true, configFile?: string): Promise<string[]> {
  const pending = await store.pendingMigrations();
  if (pending.length === 0) return [];
  if (store.kind === 'sqlite' && autoMigrate) return store.migrate();
  throw new NotMigratedError(pending, configFile);
}

export async function createRuntime(loaded: LoadedConfig, options: RuntimeOptions = {}): Promise<Runtime> {
  const { config } = loaded;
  const env = options.env ?? process.env;
  const clock = options.clock ?? Date.now;
  const log = options.log ?? createLog({ level: config.log.level, bufferSize: config.log.bufferSize });
  /** Whether the log is the runtime's own (on standard output): closing the runtime ends it; a caller's is left alone. */
  const ownLog = options.log === undefined;
  // Every serving process on a SQLite file holds its lock (see lockDatabase): alone with
  // in-memory counters, shared with Redis ones; `keygate store copy` sees either.
  const lockedFile = options.use !== 'command' && !options.store && !options.counters ? sqliteFile(config.store) : undefined;
  const lock = lockedFile === undefined ? undefined : lockDatabase(lockedFile, config.counters === 'memory' ? 'alone' : 'shared');
  let store: Store | undefined;
  let counters: Counters | undefined;
  const keyFormat = createKeyFormat(config.keys);
  // Once per start of a serving process (the key format takes no reload), as route gaps are told.
  const weakKeys = options.use === 'command' ? undefined : weakImportedKeys(config.keys);
  if (weakKeys) log.warn({ field: weakKeys.field, bits: weakKeys.bits }, describeWeakImportedKeys(weakKeys, config.auth.unknownKeys !== undefined));
  const hashKey = createKeyHasher(env[config.pepperEnv]);
  const keyCache = new KeyCache(config.keyCacheTtl);
  let recordKeyHashing: (() => void) | undefined;
  /** A PostgreSQL store's change marks, read by a serving process (change-marks.ts). */
  let changeWatch: ChangeWatch | undefined;
  try {
    if (options.store) store = options.store;
    else await reachStore((store = openStore(config.store)), config.store);
    if (options.use !== 'command') logWriteRefusals(store, sqliteFile(config.store) ?? redactUrl(config.store), log);
    const applied = await migrateOrRefuse(store, options.autoMigrate !== false, existsSync(loaded.file) ? loaded.file : undefined);
    // An upgrade of a SQLite store says what it changed (PostgreSQL's is `keygate migrate`'s).
    if (applied.length > 0) log.info({ store: redactUrl(config.store), applied }, `applied database migrations ${applied.join(', ')}`);
    const opening = store;
    const openNow = () => openCounters(config, { store: opening, log, clock, use: options.use ?? 'requests' });
    // A command opens Redis only if it asks the counters something (see countersOnDemand);
    // a serving process connects as it starts.
    counters = options.counters ?? (options.use === 'command' && /^rediss?:\/\//.test(config.counters) ? countersOnDemand('redis', openNow) : await openNow());
    recordKeyHashing = await checkKeyHashing(store, hashKey, config.pepperEnv, env[config.pepperEnv], log, options.use !== 'command');
    counters.onBroadcast((event) => dropFromCache(keyCache, event, true));
    if (store.kind === 'postgres' && options.use !== 'command') {
      const heard = counters;
      changeWatch = await watchChanges({
        store,
        hearsOthers: () => heard.hearsOthers(),
        onMissed: (why) => {
          keyCache.clear('store_mark');
          log.info(
            { why },
            why === 'untold'
              ? 'a key or account changed where Redis could not carry the message: the key cache is dropped (keys are looked up again)'
              : 'a key or account changed while this process heard no messages from Redis: the key cache is dropped (keys are looked up again)',
          );
        },
      });
    }
    await counters.restoreMeters(await store.loadMeterUsage({ periodStarts: currentPeriodStarts(config, clock()) }));
    if (counters.restoreLimits) {
      // A command takes the serving process's blocks, as of its last write, to show them
      // (keys list). Redis counters take blocks only (windows stay in Redis alone).
      const kind = options.use === 'command' || counters.kind === 'redis' ? 'block' : undefined;
      const restored = await counters.restoreLimits(await store.loadLimitState(clock(), kind));
      if (restored > 0 && options.use !== 'command') {
        log.info({ restored }, counters.kind === 'redis' ? 'rate-limit blocks put back into Redis from the store' : 'rate-limit windows and blocks restored from the store');
      }
    }
    if (options.use !== 'command') {
      await warnOfUnknownPlans(store, config, log);
    }
  } catch (error) {
    // Nothing stays open, or locked, after a failed start.
    changeWatch?.stop();
    await counters?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    lock?.release();
    // Not waited for: the caller hears of the failure at once; the lines kept go out meanwhile.
    if (ownLog) void releaseStandardOutput(log);
    throw error;
  }
  /** Kept across reloads (each pipeline counts into them), for /metrics. */
  const storeLookups: StoreLookups = { found: 0, unknown: 0, failed: 0 };
  const blockStarts = createBlockStarts(log);
  /** Unknown keys by client address, kept across reloads (a changed limit judges the counts so far). */
  const ownUnknownKeys = new UnknownKeyLimit();
  // With Redis counters, shared by every process (this one keeps a copy of the blocks).
  const unknownKeyLimit: UnknownKeyCount = counters.addressBlocks ? new SharedUnknownKeyLimit(ownUnknownKeys, counters.addressBlocks, log, clock) : ownUnknownKeys;
  const addressBlocks = { started: 0 };
  const onAddressBlocked = (block: AddressBlock) => {
    addressBlocks.started += 1;
    // A warning, once per block (each lasts `block`), never the key: an address is shut out
    // for a while, and whoever is behind it may ask why.
    log.warn(
      { client: block.address, unknownKeys: block.unknownKeys, windowMs: block.windowMs, blockMs: block.blockMs, blockedUntil: new Date(block.endsAt).toISOString() },
      'client address blocked: too many unknown keys (auth.unknownKeys)',
    );
  };
  // A store that does not answer a lookup refuses every key not cached: said at once, then
  // at most once in 10 s while it lasts (with how many more), never the key.
  const lookupFailureLine = oncePer(LOOKUP_FAILURE_LOG_INTERVAL_MS);
  const onLookupFailed = (error: unknown) =>
    lookupFailureLine((more) =>
      log.error(
        { err: error instanceof Error ? error.message : String(error), ...more },
        'the store did not answer a key lookup: keys not in this process\'s key cache are refused (service_unavailable, 503) until it answers; keys already cached keep working',
      ),
    );
  /** Changes saved here whose message Redis did not carry (see Runtime.untoldChanges). */
  const untoldChanges = { viaStore: 0, lost: 0 };
  /** What a request is judged and answered by, built from a profile (again on reload). */
  const judging = (profile: Config) => {
    const routes = profileRouteTable(profile);
    // Once per start and reload of a serving process (a CLI command's log stays quiet).
    if (options.use !== 'command') {
      for (const gap of scopeGaps(routes, profile.routes)) log.warn({ route: gap.route.id, methods: gap.methods, via: gap.via.id }, describeScopeGap(gap));
      for (const gap of wildcardRootGaps(routes, profile.routes)) log.warn({ route: gap.route.id, root: gap.root, methods: gap.methods, via: gap.via.id }, describeWildcardRootGap(gap));
    }
    blockStarts.expect(profile);
    // Turned off: nothing counted so far holds if it is turned on again.
    if (!profile.auth.unknownKeys) unknownKeyLimit.clear();
    return {
      config: profile,
      dialect: createDialect(profile.errors, profile.auth.credentials),
      routes,
      pipeline: createPipeline({
        config: profile,
        keyFormat,
        hashKey,
        keyCache,
        store,
        counters,
        routes,
        limits: createRateLimitPlanner(),
        clock,
        ...(recordKeyHashing ? { onKeyFound: recordKeyHashing } : {}),
        storeLookups,
        onBlockStarted: blockStarts.record,
        unknownKeyLimit,
        onAddressBlocked,
        onLookupFailed,
      }),
    };
  };
  const usage = new UsageRecorder();

  // Balance rows that failed to save are kept (newest value wins) and retried.
  const unsaved = new Map<string, MeterUsageRow>();
  // Window and block rows likewise. A command's memory counters hold only what it read;
  // on Redis a command's lift (keys unblock) is written like a serving process's.
  const unsavedLimits = new Map<string, LimitStateRow>();
  const drainLimits = options.use === 'command' && counters.kind === 'memory' ? undefined : counters.drainLimitChanges?.bind(counters);
  let flushing: Promise<void> | undefined;
  /** `windows`: rate-limit windows too (at stop: rewriting busy windows every second would cost more than it saves). */
  const flushOnce = async (windows: boolean) => {
    for (const row of await counters.drainMeterChanges()) unsaved.set(`${row.accountId}\u0000${row.meter}\u0000${row.periodStart}`, row);
    if (unsaved.size > 0) {
      await store.saveMeterUsage([...unsaved.values()]);
      unsaved.clear();
    }
    await usage.flush(store, clock());
    // Last: usage and balances are what is billed.
    if (drainLimits) {
      for (const row of await drainLimits(windows)) unsavedLimits.set(`${row.kind}\u0000${row.id}`, row);
      if (unsavedLimits.size > 0) {
        await store.saveLimitState([...unsavedLimits.values()], clock());
        unsavedLimits.clear();
      }
    }
  };
  const flush = async (windows = false) => {
    // One flush at a time; a caller arriving mid-flush waits and then flushes again.
    while (flushing) await flushing.catch(() => undefined);
    flushing = flushOnce(windows).finally(() => {
      flushing = undefined;
    });
    return flushing;
  };
  /**
   * The last write-back failed (the store unreachable as keygate stops): said in numbers,
   * and where each part is. The usage history gathered here is lost; the balances are in
   * Redis, which is told to keep them for the next process to write.
   */
  const finalFlushFailed = async (error: unknown) => {
    const balances = [...unsaved.values()];
    const handedOver = balances.length > 0 && (await counters.handOverBalances?.(balances).catch(() => false)) === true;
    const history = "the usage history counted since the last write is lost (daily requests, denials and units, keys' last use, gauge levels, as counted in lost)";
    const meters = `${balances.length} meter${balances.length === 1 ? '' : 's'}`;
    const where =
      balances.length === 0
        ? ''
        : handedOver
          ? `; the balances of ${meters} changed since are held in Redis and written to the store by the next keygate process that reaches both (as it starts, or a running one at its next write-back, within a second or so)`
          : counters.kind === 'redis'
            ? `; the balances of ${meters} changed since are in Redis only, written to the store when a process charges these meters again (lost if Redis loses its data first)`
            : `; the balances of ${meters} changed since are lost`;
    // Blocks live in Redis, the store keeps a copy (put back if Redis loses its data): the
    // changes it would not take are listed there for the next process to write, as balances.
    const blocks = counters.handOverBlocks ? await counters.handOverBlocks([...unsavedLimits.values()]).catch(() => undefined) : undefined;
    const changedBlocks = `${blocks?.blocks ?? 0} rate-limit block${blocks?.blocks === 1 ? '' : 's'}`;
    const blocksWhere =
      blocks === undefined || blocks.blocks === 0
        ? ''
        : blocks.held
          ? `; the changes to ${changedBlocks} since are held in Redis and written to the store by the next keygate process that reaches both`
          : `; the changes to ${changedBlocks} since are in Redis only, written to the store when a process changes these blocks again (lost if Redis loses its data first)`;
    // Memory counters: the blocks and windows the store would not take (or that the flush,
    // failing before them, never drained) are lost with this process: counted per kind.
    if (counters.kind !== 'redis' && drainLimits) {
      try {
        for (const row of await drainLimits(true)) unsavedLimits.set(`${row.kind}\u0000${row.id}`, row);
      } catch {
        // Nothing more to count.
      }
    }
    const limitRows = counters.kind === 'redis' ? [] : [...unsavedLimits.values()];
    const lostBlocks = limitRows.filter((row) => row.kind === 'block').length;
    const lostWindows = limitRows.filter((row) => row.kind === 'window').length;
    const limitsWhere =
      lostBlocks + lostWindows === 0
        ? ''
        : `; the changes to ${lostBlocks} rate-limit block${lostBlocks === 1 ? '' : 's'} and ${lostWindows} rate-limit window${lostWindows === 1 ? '' : 's'} since are lost (after a restart each is as the store last held it, or absent)`;
    const lost =
      counters.kind === 'redis' ? usage.pending() : { ...usage.pending(), meterBalancesNotWritten: balances.length, rateLimitBlocksNotWritten: lostBlocks, rateLimitWindowsNotWritten: lostWindows };
    const held = counters.kind === 'redis' ? { meterBalancesNotWritten: balances.length, meterBalancesHeldInRedis: handedOver, blocksNotWritten: blocks?.blocks ?? 0, blocksHeldInRedis: blocks?.held ?? false } : {};
    log.error({ err: error, lost, ...held }, `final usage flush failed: ${history}${where}${blocksWhere}${limitsWhere}`);
  };
  let lastFlushError = 0;
  /** When writes began to fail (undefined while they succeed): the recovery is logged once. */
  let failingSince: number | undefined;
  const timer = setInterval(() => {
    // Still writing (waiting for a busy store, say): the next tick tries again, with all
    // counted meanwhile; ticks queued behind a long wait would only lengthen it.
    if (flushing) return;
    flush().then(
      () => {
        if (failingSince === undefined) return;
        log.info({ failedForMs: clock() - failingSince }, 'usage written to the store again: nothing counted while it failed was lost');
        failingSince = undefined;
      },
      (error: unknown) => {
        failingSince ??= clock();
        if (clock() - lastFlushError > 10_000) log.error({ err: error }, 'could not write usage to the store; will retry');
        lastFlushError = clock();
      },
    );
  }, options.flushIntervalMs ?? 1_000);
  timer.unref();

  let reloading: Promise<unknown> = Promise.resolve();
  const reloadOnce = async (next: LoadedConfig): Promise<string[]> => {
    if (closed) throw new Error('keygate is stopping');
    const changed = changedFields(runtime.config, next.config);
    const fixed = changed.filter((path) => reloadableField(path) === undefined);
    if (fixed.length > 0) throw new ConfigReloadError(fixed);
    if (changed.length === 0) return [];
    // Balances of meters no plan had until now (their period's usage was not loaded at start).
    const loadedStarts = new Set(currentPeriodStarts(runtime.config, clock()));
    const newStarts = currentPeriodStarts(next.config, clock()).filter((start) => !loadedStarts.has(start));
    if (newStarts.length > 0) await counters.restoreMeters(await store.loadMeterUsage({ periodStarts: newStarts }));
    // The key cache stays: it holds keys and accounts as stored (plans are looked up per
    // request), and it is what serves keys while the store is unreachable.
    Object.assign(runtime, judging(next.config));
    await warnOfUnknownPlans(store, next.config, log).catch((error: unknown) => log.warn({ err: error }, 'could not look for accounts on plans the profile no longer defines'));
    return [...new Set(changed.map((path) => reloadableField(path) as string))];
  };

  let closed = false;
  let lookingForKeys: Promise<void> | undefined;
  const runtime: Runtime = {
    ...judging(config),
    configDir: loaded.dir,
    store,
    counters,
    keyFormat,
    hashKey,
    keyCache,
    usage,
    clock,
    log,
    env,
    listening: {},
    adminTokens: [],
    stopping: false,
    storeLookups,
    blockStarts,
    addressBlocks,
    unknownKeyLimit,
    get untoldChanges() {
      return { ...untoldChanges };
    },
    async invalidate(event) {
      dropFromCache(keyCache, event);
      const unsent = await counters.broadcast(event).then(
        () => undefined,
        (error: unknown) => error,
      );
      const context = { ...(unsent === undefined ? {} : { cause: unsent instanceof Error ? unsent.message : String(unsent) }), change: event.type };
      const others = options.use === 'command' ? 'running keygate processes' : 'the other keygate processes';
      // A SQLite file shows every process the change itself (Store.changedElsewhere); a
      // PostgreSQL store is marked, for the processes that missed the message (change-marks.ts).
      const marked = store.kind === 'sqlite' || (await markChange(store, unsent === undefined).then(() => true, (error: unknown) => error));
      if (marked !== true) {
        const cause = marked instanceof Error ? marked.message : String(marked);
        if (unsent !== undefined) untoldChanges.lost += 1;
        log.warn(
          { ...context, markCause: cause },
          unsent === undefined
            ? `the change is saved and sent on Redis, but it could not be marked in the store: ${others} whose Redis subscription is down keep a cached key for up to keyCacheTtl (${config.keyCacheTtl} ms)`
            : `the change is saved, but ${others} were not told (neither on Redis nor in the store): they keep a cached key for up to keyCacheTtl (${config.keyCacheTtl} ms)`,
        );
        return;
      }
      if (unsent === undefined) return;
      untoldChanges.viaStore += 1;
      log.warn(context, `the change is saved, but Redis did not carry its message: ${others} learn of it from the store instead, within about a second`);
    },
    flush,
    warnOfKeysOutsideFormat() {
      if (options.use === 'command') return Promise.resolve();
      // Once per start (keys.* takes no reload). Only a warning: a store that cannot answer it
      // stops nothing, and one closed while it looked (keygate stopping) has nothing to say.
      // Stopping ends the look between two slices (KeyScanStoppedError, not logged): a stop does not wait for every key.
      lookingForKeys ??= warnOfKeysOutsideFormat(store, keyFormat, clock(), log, () => closed).catch((error: unknown) => {
        if (!closed) log.warn({ err: error }, 'could not look for keys in use that the profile\'s key format no longer takes');
      });
      return lookingForKeys;
    },
    reload(next) {
      // One at a time, in the order asked: a later profile is never overtaken by an earlier one.
      const done = reloading.then(() => reloadOnce(next));
      reloading = done.catch(() => undefined);
      return done;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      changeWatch?.stop();
      try {
        await flush(true);
      } catch (error) {
        await finalFlushFailed(error);
      }
      try {
        await counters?.close();
        await store.close();
      } finally {
        lock?.release();
        // Last: its lines written out (for as long as the reader takes some), so that nothing
        // of keygate's holds the process of an application that used it as a library.
        if (ownLog) await releaseStandardOutput(log);
      }
    },
  };
  return runtime;
}

/**
 * A store that refuses writes (a full disk) is said once, at error level, with the store
 * and what to do, and once more when writes go through again; each change refused
 * meanwhile is said by the admin API or the dashboard that refused it. A CLI command says
 * it as its error instead.
 */
function logWriteRefusals(store: Store, where: string, log: Log): void {
  store.onWriteRefusal?.((refusal) => {
    if (!refusal) return log.info({ store: where }, 'the store takes writes again: changes are saved, and /health/ready answers 200');
    const { message, code, fix } = refusal.error;
    log.error({ store: where, code }, `${message}: changes are refused with 503 and /health/ready answers 503 until a write goes through (tried every ${WRITE_PROBE_INTERVAL_MS / 1000} s); ${fix}`);
  });
}

/** Accounts named per unknown plan in the warning (all are counted). */
const STRANDED_NAMED = 10;

/**
 * A plan renamed or removed from the profile leaves its accounts on a plan keygate does
 * not know: their keys are refused (api_disabled). Said once at start-up, by plan.
 */
async function warnOfUnknownPlans(store: Store, config: Config, log: Log): Promise<void> {
  const stranded: Record<string, number> = {};
  /** The first few accounts of each such plan, by id, so the operator can find them. */
  const accounts: Record<string, string[]> = {};
  for (const account of await store.listAccounts()) {
    if (account.planId in config.plans) continue;
    stranded[account.planId] = (stranded[account.planId] ?? 0) + 1;
    const named = (accounts[account.planId] ??= []);
    if (named.length < STRANDED_NAMED) named.push(account.id);
  }
  if (Object.keys(stranded).length === 0) return;
  log.warn(
    { accountsByPlan: stranded, accounts },
    `accounts are on plans this profile does not define (renamed or removed?): their keys are refused with api_disabled until the plan is back in the profile or they are moved (keygate accounts update <id> --plan <plan>)`,
  );
}

/** How many hints of keys the key format refuses a start's warning shows: enough to recognise the old prefix. */
const OUTSIDE_FORMAT_SHOWN = 3;

/**
 * Keys still in use that the profile's key format refuses before any lookup (`keys.prefix`,
 * `format` changed since they were issued): every request with one is answered
 * `malformed_key` while `keys list` shows it active. Told once, with a few of their hints
 * (the prefix and the last four characters: no secret) and the way back.
 */
async function warnOfKeysOutsideFormat(store: Store, keyFormat: KeyFormat, now: number, log: Log, stopped: () => boolean): Promise<void> {
  const { count, hints } = await store.keysOfOtherHints(keyFormat.hintStarts, now, OUTSIDE_FORMAT_SHOWN, stopped);
  if (count === 0) return;
  log.warn(
    { keys: count, hints },
    `${count === 1 ? '1 key in use was' : `${count} keys in use were`} issued under another key format (e.g. ${hints.join(', ')}): the profile's keys.prefix, keys.format and keys.imported take none of them, so each request with one is refused as malformed_key. ` +
      "To keep them working, add their prefix to keys.imported (for keygate's prefixed keys: the old prefixes, alphabet: base62, length: 30), or put keys.prefix back; see docs/authentication.md#key-formats",
  );
}

/** The first day of the current period of every meter any plan defines. */
export function currentPeriodStarts(config: Config, now: number): string[] {
  const starts = new Set<string>();
  for (const plan of Object.values(config.plans)) for (const meter of Object.values(plan.meters)) starts.add(periodBounds(meter.period, now).start);
  return [...starts];
}
