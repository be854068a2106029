/**
 * Counters shared by any number of gateway processes through one Redis: the same rules
 * as `memory/` (exact sliding logs, escalating blocks, reservations), kept in Redis and
 * changed only by the Lua scripts in `scripts.ts`.
 *
 * - One round trip per request: `admit` is a single EVALSHA that checks the block,
 *   every window and the balance and records all of it, or nothing. Concurrent
 *   requests share it: the admissions (and the settles) asked for while the previous
 *   batch is on its way leave together as one EVALSHA, decided in order inside Redis
 *   (`ScriptBatcher`).
 * - The clock is the gateway's: scripts are given `now`. Hosts must keep their clocks
 *   in sync (NTP); a host that is off by s ms judges windows s ms early or late.
 * - PostgreSQL is the record of balances and blocks, Redis keeps nothing on disk. The
 *   runtime writes the balances this process changed to the store every second
 *   (`drainMeterChanges`); a meter Redis does not hold (first use, or Redis lost its
 *   data) is seeded from the store before it is used, so a Redis crash loses at most
 *   the units committed since the last flush.
 * - Blocks likewise (`drainLimitChanges`): those this process's admissions started or
 *   added a violation to, and those it lifted, are read back from Redis at the next
 *   write-back (one pipelined read a second, nothing on the hot path) and written to
 *   `limit_state`, the state as Redis holds it (the last writer wins). A key
 *   (`restored:blocks`) says Redis has the store's blocks: missing at start-up
 *   (`restoreLimits`) or at a write-back (Redis restarted empty, or was flushed, under a
 *   running process), the store's blocks are put back, so Redis losing its data lifts
 *   no block and starts no escalation over. Requests in the second or so before that
 *   are judged without them. A process that stops while the store is unreachable lists
 *   the blocks (and balances) it could not write in Redis (`unwritten:*`), for the next
 *   write-back of any process that reaches both; they leave the list only once written
 *   (a process killed before that leaves them to the next).
 * - Rate windows stay in Redis alone: every admission changes them, and writing them
 *   back each second would cost a read and a write per busy window for what a window
 *   holds (its length's admissions). After Redis loses its data they start empty.
 * - Cache invalidations travel on a pub/sub channel every process (the sender too)
 *   listens to; after the listener reconnects, the whole key cache is dropped, since
 *   messages sent meanwhile were missed.
 * - Unknown keys per client address (`auth.unknownKeys`) and the blocks they start are
 *   kept here too (`addressBlocks`, one script per unknown key: that path is a store
 *   lookup already); a block begun or lifted is announced on the same channel, so each
 *   process keeps a copy of the blocks in force and refuses before any lookup.
 * - Redis unreachable: `counterFailure: closed` refuses (CountersUnavailableError, a
 *   503), `open` admits on per-process counters (`fallback.ts`). Redis is used again as
 *   soon as it answers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
// Imported: the global `performance` is a getter, read on every admission (usable()).
import { performance } from 'node:perf_hooks';
import { ReplyError, type Redis } from 'ioredis';
import {
  CountersRefusedError,
  CountersUnavailableError,
  type Admission,
  type AdmitRequest,
  type AddressBlockEvent,
  type CacheEvent,
  type SharedAddressBlocks,
  type SharedUnknownKey,
  type Counters,
  type HeldUnitTotals,
  type MeterBalance,
  type Reservation,
  type WindowSpec,
  type WindowState,
} from '../counters.js';
import type { LimitStateRow, MeterUsageRow, SavedPendingUnits, Store } from '../../store/store.js';
import type { Log } from '../../log.js';
import { UNUSED_PASSWORD } from './unused-password.js';
import { redactUrl } from '../../redact-url.js';
import { REFUSAL_FIX, refusedConnection } from './refusal.js';
import { COMMAND_USE_WAIT_MS, commandClient, parseRedisUrl, subscriberClient, whenReady, type RedisTarget, type RedisUse } from './connection.js';
import { withDeadline } from '../../deadline.js';
import type { UnknownKeyPolicy } from '../../config/schema.js';
import { MAX_ADDRESSES_BLOCKED, type BlockInForce } from '../../auth/unknown-key-limit.js';
import { ADD_SAVED_UNITS, ADDRESS_BLOCKS, ADMIT, batchPlace, joinFields, LIFT_ADDRESS_BLOCK, RESTORE_BLOCK, SHARE_ADDRESS_BLOCKS, UNKNOWN_KEY, ScriptBatcher, SEED, SETTLE, type BatchedScript, type EntryReply } from './scripts.js';
import { readSavedBlock, type SavedBlock } from '../saved-block.js';
import { meterRefId, PerProcessFallback, type MeterRef } from './fallback.js';

/** A request waits at most this long for Redis before the failure mode applies. */
const ADMIT_DEADLINE_MS = 1_000;
/** Window and block keys outlive their last use by this much (clock differences between hosts). */
const EXPIRY_SLACK_MS = 60_000;
/** Address blocks handed to Redis per script (SHARE_ADDRESS_BLOCKS) when a process that began them alone reaches it again. */
const SHARE_BATCH = 200;
/** A reservation not settled by then (its process died) stops holding units. */
const RESERVATION_TTL_MS = 10 * 60_000;
/** Balances live in Redis this long after their last change: longer than any period. */
const METER_TTL_MS = 62 * 86_400_000;
/** Settles ride along with the next admissions, waiting this long at most. */
const SETTLE_WAIT_MS = 5;
/** How long Redis keeps a process's journal of settles carried out after its last settle. */
const JOURNAL_TTL_MS = 86_400_000;
/** How long start-up waits for Redis before serving in the failure mode. */
const STARTUP_WAIT_MS = 2_000;
/** What a command (the CLI) says when Redis cannot give it a balance. */
const BALANCE_FROM_STORE = 'balances are read from the store, up to a second or so behind';
/**
 * What a user's ACL without INFO costs (see info-refused.ts): ioredis's ready check takes a
 * Redis still loading its data after a restart as ready, and commands meet LOADING instead.
 */
const INFO_REFUSED = "Redis refuses INFO to keygate's user: keygate uses it all the same, but cannot tell a Redis still loading its data after a restart from a ready one (allow +info: docs/scale-out.md#a-redis-user-for-keygate)";
/**
 * How often a process that reaches Redis looks for units saved by processes that could not
 * (and at start, and on Redis's return).
 */
const SAVED_UNITS_CHECK_MS = 60_000;
/** Saved rows taken at a time. */
const SAVED_UNITS_BATCH = 500;
/**
 * How long Redis remembers that it added a saved row (ADD_SAVED_UNITS): longer than the
 * row can stay in the store after that, which is until the next take that reaches both.
 */
const SAVED_UNITS_MARK_TTL_MS = 7 * 86_400_000;
/**
 * After a take of the handed-over balances and blocks failed (Redis refused the read, an
 * ACL's NOPERM say, or the store the write), how long until it is tried again: not at every
 * write-back, each a round trip to Redis and a write to the store for nothing.
 */
const HAND_OVER_RETRY_MS = 10_000;
/** After a timeout, requests skip Redis this long instead of each waiting for it. */
const PAUSE_AFTER_FAILURE_MS = 1_000;
/** The key written to learn whether Redis answers again outlives the question by this much. */
const PROBE_TTL_MS = 10_000;
/**
 * The window a flush admits on while Redis refuses admissions, to learn when it takes them
 * again: the same script and kind of write as a request's (what OOM, READONLY or an ACL
 * refuses), on a counter of its own that never fills (its keys lapse with the window's slack).
 */
const ADMISSION_PROBE: readonly WindowSpec[] = [{ id: 'probe:admission', name: 'probe', limit: 1_000_000_000, windowMs: 1_000 }];
/** How long a fail-open admission waits for the store's balance of a meter (once an outage). */
const SEED_DEADLINE_MS = 500;
/** After a store read that failed, how long a meter is admitted on what the process saw before it is read again. */
const SEED_RETRY_MS = 5_000;
/** Balances seeded, or blocks put back, per batch. */
const RESTORE_BATCH = 500;
/** How long the store keeps a block whose Redis key has no expiry (none should: each write sets one). */
const UNEXPIRING_BLOCK_MS = 86_400_000;
/** The admit script's answer for a meter Redis does not hold yet: seed it, then ask again. */
const MISSING = Symbol('missing meter');
/** Accounts (and window lists) whose key names are kept at most (they are rebuilt when dropped). */
const MAX_NAMES = 10_000;

/** A list of windows as the admit script takes them, made once per list. */
interface WindowParts {
  /** Short and the same for lists with the same windows: part of a batch entry's signature. */
  id: number;
  keys: string[];
  args: number[];
  /** The admit entry last made with these windows. */
  lastEntry?: AdmitEntry;
}

/** One request's entry in an admit batch, and what it was made from. */
interface AdmitEntry {
  signature: string;
  keys: readonly string[];
  /** Its arguments, joined once (joinFields): a key's requests on one route send them as they are. */
  fields: string;
  blockId: string | undefined;
  policy: NonNullable<AdmitRequest['block']>['policy'] | undefined;
  meter: MeterNames | undefined;
  amount: number | undefined;
  limit: number | undefined;
  overage: boolean | undefined;
  untilZero: boolean | undefined;
  final: boolean | undefined;
}

/** A meter's keys in one period: balance, held reservations, their lapse times. */
interface MeterNames {
  /** Short, unique among the names this process made: part of a batch entry's signature. */
  id: number;
  keys: [string, string, string];
  /** The meter itself, and its id among the meters to write back (`dirty`). */
  ref: MeterRef;
  refId: string;
}

export interface RedisCountersOptions {
  /** `redis://host:port[/db][?prefix=...]`. */
  url: string;
  failure: 'closed' | 'open';
  store: Pick<Store, 'loadMeterUsage' | 'savePendingUnits' | 'readPendingUnits' | 'removePendingUnits' | 'loadLimitState' | 'saveMeterUsage' | 'saveLimitState'>;
  log: Log;
  clock: () => number;
  /**
   * What the process does: `requests` (the gateway, the library) waits up to two seconds
   * for Redis at start-up; a `command` (the CLI) runs at once where Redis refuses the
   * connection, waits a second at most where it takes it and does not answer, and says
   * what an outage means for it (its changes are not announced, balances come from the store).
   */
  use?: RedisUse;
  /** Most address blocks Redis holds at once: MAX_ADDRESSES_BLOCKED (a test's few). */
  maxAddressesBlocked?: number;
}

/** The store could not give a meter's balance, so Redis cannot be seeded with it. */
class BaselineUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`could not read the balance from the store: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BaselineUnavailableError';
  }
}

/**
 * Connects (waiting up to two seconds) and subscribes to invalidations. An unreachable
 * Redis does not stop start-up: the profile's failure mode applies until it answers.
 */
export async function openRedisCounters(options: RedisCountersOptions): Promise<RedisCounters> {
  const counters = new RedisCounters(parseRedisUrl(options.url), options);
  await counters.start();
  return counters;
}

/**
 * An admission batch sent to Redis, until its answer comes or, when none came, until the
 * journal has said what it charged (see RedisCounters.undoLostAdmissions).
 */
interface AdmissionBatch {
  connection: string;
  /** Sent, and no answer came (the connection closed, or the command timed out). */
  lost: boolean;
  /** Its entries with a charge whose requests got no answer, by their place in the batch. */
  charges: Map<number, LostCharge>;
}

/** The requests of one admission entry whose answer was lost, and what they asked to charge. */
interface LostCharge {
  ref: MeterRef;
  amount: number;
  requests: number;
  /** Any of them may have been reserved rather than charged (see ADMIT). */
  reserves: boolean;
}

/** What ADD_SAVED_UNITS did with a saved row, and the balance its meter reached (none if Redis holds none). */
interface SavedUnitsOutcome {
  state: 'added' | 'marked' | 'balance' | 'missing';
  used?: number;
  returned?: number;
}

/** A commit sent to Redis that got no answer (see RedisCounters.settleUnanswered). */
interface UnansweredCommit {
  /** The id of the batch that carried it. */
  sent: string;
  ref: MeterRef;
  units: number;
  cap: number | undefined;
  /** The reservation it releases: its admission batch ('' for none) and units. */
  batchId: string;
  reserved: number;
}

export class RedisCounters implements Counters {
  /** The admission and settle batches sent so far, and their time. */
  get roundTrips(): Readonly<{ count: number; seconds: number }> {
    return this.batcher.roundTrips;
  }

  readonly kind = 'redis' as const;
  readonly prefix: string;
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly fallback: PerProcessFallback;
  /** Admissions and settles of concurrent requests leave together: one write, one command per script. */
  private readonly batcher: ScriptBatcher;
  private readonly handlers: ((event: CacheEvent) => void)[] = [];
  private readonly addressHandlers: ((event: AddressBlockEvent) => void)[] = [];
  /** Reservation → the batch that holds it (needed to release it). */
  private readonly reservationIds = new WeakMap<Reservation, string>();
  /** Window lists (the pipeline reuses them) → their keys and arguments. */
  private readonly windowParts = new WeakMap<readonly WindowSpec[], WindowParts>();
  /** The same, by the windows' keys and limits: equal lists share one id. */
  private windowPartsByKeys = new Map<string, WindowParts>();
  /** Account → meter → its key names in the current period. */
  private meterNames = new Map<string, Map<string, MeterNames>>();
  /** The last id given to window parts or meter names. */
  private lastNameId = 0;
  /** Meters this process committed units to since the last drain. */
  private dirty = new Map<string, MeterRef>();
  private readonly seeding = new Map<string, Promise<void>>();
  /**
   * Meters whose balance the per-process fallback has taken from the store in this outage
   * (each is read once, before its first charge here), or, after a read that failed, the
   * time (performance.now()) before which it is not tried again.
   */
  private seededInOutage = new Map<string, Promise<void> | number>();
  /** Settles on their way to Redis; a flush waits for them, so shutdown writes them too. */
  private readonly settling = new Set<Promise<number>>();
  /** Numbers capped commits, which never share a batch entry. */
  private cappedCommits = 0;
  /** Settles with this process's journal (see SETTLE). */
  private readonly settles: BatchedScript;
  /**
   * Commits sent whose answer never came (the connection closed under them, or Redis
   * stalled past the command timeout): whether Redis carried them out is read from the
   * journal once it answers, and only those it did not are sent again.
   */
  private unanswered: UnansweredCommit[] = [];
  /** Admissions with this process's journal (see ADMIT). */
  private readonly admissions: BatchedScript;
  /** Admission batches sent whose answer has not come, or was lost and is not undone yet. */
  private readonly admissionBatches = new Map<string, AdmissionBatch>();
  private pausedUntil = 0;
  private reachable = true;
  /** What Redis answered while refusing the connection being opened (WRONGPASS ...), until it closes. */
  private refusedWith: string | undefined;
  /** What Redis answered when the last connection closed on a refusal, until one opens (or closes for another reason). */
  private lastRefusal: string | undefined;
  /**
   * Why the outage line said Redis is away: its refusal, or '' (unreachable); undefined while
   * it answers. A connection that closes for another reason than that is said again (each
   * reconnection refused alike is not).
   */
  private outageSaid: string | undefined;
  /**
   * What Redis answered admissions with while it refuses them (OOM past maxmemory, READONLY
   * after a failover, NOPERM): it is reachable, so nothing else logs it, yet every request
   * with something to count is refused (closed) or judged here alone (open). Said once.
   */
  private refusedAdmissionsWith: string | undefined;
  private listenerLost = false;
  /** A command has said that its balances come from the store. */
  private balanceWarned = false;
  /** When to look for units other processes saved in the store (0: at the next write-back). */
  private savedUnitsDueAt = 0;
  private closing = false;
  private readonly journalKey: string;
  /**
   * Blocks whose state this process changed since the last write-back (a violation, a
   * block started), by id → whether it lifted them: a lifted block Redis no longer holds
   * is written as lifted, any other not written (Redis may have lost it: the store's stays).
   */
  private changedBlocks = new Map<string, boolean>();
  /** Set while Redis holds the store's blocks (see RESTORE_BLOCK). */
  private readonly restoredKey: string;
  /** The meters whose balances processes that stopped while the store was unreachable left in Redis alone (handOverBalances). */
  private readonly handedOverKey: string;
  /** Likewise the blocks whose changes they could not write (handOverBlocks). */
  private readonly handedOverBlocksKey: string;
  /** Reading the handed-over balances and blocks failed, and that was said (said again once a read works). */
  private handOverReadFailed = false;
  /** When (performance.now()) to look for handed-over balances and blocks again after a failed take (0: at the next write-back). */
  private handOverDueAt = 0;
  /** Putting the store's blocks back failed, and that was said (said again once it works). */
  private putBackFailed = false;
  private readonly maxAddressesBlocked: number;

  constructor(
    target: RedisTarget,
    private readonly options: RedisCountersOptions,
  ) {
    this.prefix = target.prefix;
    this.maxAddressesBlocked = options.maxAddressesBlocked ?? MAX_ADDRESSES_BLOCKED;
    // Said once, in keygate check's words, though both connections hear it at each (re)connect.
    let unusedPasswordSaid = false;
    const unusedPassword = () => {
      if (unusedPasswordSaid) return;
      unusedPasswordSaid = true;
      const at = redactUrl(options.url);
      options.log.warn({ counters: at }, `counters: Redis at ${at} answers; ${UNUSED_PASSWORD}`);
    };
    // Likewise INFO refused by the user's ACL, heard by both connections at each ready check.
    let infoRefusedSaid = false;
    const infoRefused = (refusal: string) => {
      if (infoRefusedSaid || options.use === 'command') return;
      infoRefusedSaid = true;
      options.log.warn({ err: refusal }, INFO_REFUSED);
    };
    this.client = commandClient(target, options.use, { unusedPassword, infoRefused });
    this.subscriber = subscriberClient(target, options.use, { unusedPassword, infoRefused });
    this.channel = cacheChannel(target.prefix, Number(this.client.options.db ?? 0));
    this.fallback = new PerProcessFallback(options.clock);
    // The token makes batch ids unique across processes.
    const token = randomBytes(6).toString('base64url');
    this.batcher = new ScriptBatcher(this.client, token, ADMIT_DEADLINE_MS);
    this.journalKey = this.key('sj', token);
    this.restoredKey = this.key('restored', 'blocks');
    this.handedOverKey = this.key('unwritten', 'balances');
    this.handedOverBlocksKey = this.key('unwritten', 'blocks');
    this.settles = { script: SETTLE, keys: [this.journalKey], shared: joinFields([METER_TTL_MS, JOURNAL_TTL_MS]), maxWaitMs: SETTLE_WAIT_MS };
    this.admissions = {
      script: ADMIT,
      keys: [this.journalKey],
      shared: joinFields([RESERVATION_TTL_MS, EXPIRY_SLACK_MS, METER_TTL_MS, JOURNAL_TTL_MS]),
      deadlineMs: ADMIT_DEADLINE_MS,
      sending: (batchId) => this.admissionSent(batchId),
      answered: (batchId, error) => this.admissionAnswered(batchId, error),
    };
  }

  async start(): Promise<void> {
    this.client.on('error', (error: Error) => {
      // Refused while connecting (a wrong password, say): the connection then closes, and
      // that refusal is why.
      if (error.name === 'ReplyError' && this.client.status !== 'ready') this.refusedWith = error.message;
      this.noteFailure(error);
    });
    this.client.on('close', () => {
      const refused = this.refusedWith;
      this.refusedWith = undefined;
      this.lastRefusal = refused;
      this.noteFailure(new Error(refused === undefined ? 'connection closed' : `Redis refused the connection: ${refused}`), { refusal: refused });
    });
    this.client.on('ready', () => {
      this.refusedWith = undefined;
      this.lastRefusal = undefined;
      this.pausedUntil = 0;
      this.noteSuccess();
    });

    this.subscriber.on('error', () => undefined);
    this.subscriber.on('close', () => {
      this.listenerLost = true;
    });
    this.subscriber.on('ready', () => {
      // Invalidations published while we were not listening are lost: drop every key.
      if (this.listenerLost) {
        this.deliver({ type: 'all' });
        for (const handler of this.addressHandlers) handler({ type: 'missed' });
      }
      this.listenerLost = false;
    });
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.channel) return;
      const message = channelMessage(text);
      if (!message) return;
      const addressEvent = addressBlockEvent(message);
      if (addressEvent) {
        for (const handler of this.addressHandlers) handler(addressEvent);
        return;
      }
      const event = cacheEvent(message);
      if (event) this.deliver(event);
    });
    const subscribed = this.subscriber.subscribe(this.channel).then(
      () => true,
      () => false,
    );

    const ready =
      this.options.use === 'command'
        ? await whenReady(this.client, COMMAND_USE_WAIT_MS, true)
        : (await Promise.all([whenReady(this.client, STARTUP_WAIT_MS), Promise.race([subscribed, delay(STARTUP_WAIT_MS)])]))[0];
    if (!ready) this.noteFailure(new Error('not reachable at start-up'));
    // Units processes saved while Redis was unreachable reach it as a serving process
    // starts, not at its first write-back (a command leaves them to the serving processes).
    else if (this.options.use !== 'command') {
      await this.takeSavedUnits();
      await this.deliverHeldUnits();
    }
  }

  async admit(request: AdmitRequest): Promise<Admission> {
    // Nothing to count (no windows, block or cost): no need to ask Redis.
    if (request.windows.length === 0 && !request.block && !(request.charge && request.charge.amount > 0)) return { ok: true, windows: [] };
    if (!this.usable()) return this.withoutRedis(request, new Error('Redis is not reachable'));
    try {
      let admission = await this.admitInRedis(request);
      if (admission === MISSING) {
        // Seeding reads the store: outside the deadline, which is Redis's alone.
        await this.seed(request.charge as NonNullable<AdmitRequest['charge']>);
        admission = await this.admitInRedis(request);
        if (admission === MISSING) throw new Error('the meter balance disappeared from Redis while it was being seeded');
      }
      this.noteSuccess();
      if (this.refusedAdmissionsWith !== undefined) this.noteAdmissionsTaken();
      return admission;
    } catch (error) {
      this.noteFailure(error);
      this.noteAdmissionRefused(error);
      return this.withoutRedis(request, error);
    }
  }

  heldUnits(): HeldUnitTotals {
    const held = this.fallback.held();
    // Settles whose answer was lost are held too, until the journal says whether Redis carried them out.
    for (const commit of this.unanswered) {
      held.undelivered += Math.abs(commit.units);
      held.unreleased += commit.reserved;
    }
    return held;
  }

  isReachable(): boolean {
    // As admissions see it (they wait out the pause after a failure): /health/ready says
    // 200 only once requests are admitted again.
    return this.usable() && this.reachable;
  }

  refusal(): string | undefined {
    // A command asks as soon as the first refusal comes, before its connection has closed.
    return this.isReachable() ? undefined : (this.refusedWith ?? this.lastRefusal);
  }

  admissionRefusal(): string | undefined {
    return this.refusedAdmissionsWith;
  }

  settle(reservation: Reservation, actual: number): Promise<number> {
    if (this.fallback.owns(reservation)) return Promise.resolve(this.fallback.settle(reservation, actual));
    // Charged at admission: only a different amount (nothing for anything but a 2xx)
    // needs Redis, as a correction of the balance.
    if (reservation.final && actual === reservation.amount) return Promise.resolve(actual);
    const batchId = this.reservationIds.get(reservation) ?? '';
    this.reservationIds.delete(reservation);
    const reserved = reservation.final ? 0 : reservation.amount;
    const units = reservation.final ? actual - reservation.amount : actual;
    // Tried whenever connected, even while admissions pause after a slow reply: a settle
    // left undone would hold its units in Redis until the reservation lapses. Without
    // Redis the units are held, with their cap, and Redis applies it when they are delivered.
    if (this.client.status !== 'ready') {
      this.fallback.commitLater(reservation, units, reservation.cap);
      // Never sent: its reservation is released when Redis answers again.
      this.fallback.releaseLater(reservation, batchId, reserved);
      return Promise.resolve(actual);
    }
    const settling: Promise<number> = new Promise((resolve) => {
      const done = (committed: number) => {
        this.settling.delete(settling);
        resolve(reservation.final ? actual : committed);
      };
      this.commit(reservation, batchId, reserved, units, reservation.cap, done, (error, sent) => {
        this.noteFailure(error);
        const ref = { accountId: reservation.accountId, meter: reservation.meter, periodStart: reservation.periodStart };
        // Sent, and no answer (Redis stalled, or the connection closed under it): Redis may
        // have carried it out, or may yet (a stalled one runs it when it goes on). Once
        // Redis answers, its journal says which: only a settle it did not carry out is
        // sent again, with its release. Refused before it was written (the connection had
        // just gone), or answered with an error: delivered, and released, when Redis
        // answers, as one never sent.
        if (sent !== undefined && mayHaveRun(error)) {
          this.fallback.countHere(ref, units);
          this.unanswered.push({ sent, ref, units, cap: reservation.cap, batchId, reserved });
        } else {
          this.fallback.commitLater(ref, units, reservation.cap);
          this.fallback.releaseLater(ref, batchId, reserved);
        }
        done(units);
      });
    });
    this.settling.add(settling);
    return settling;
  }

  async meterBalance(accountId: string, meter: string, periodStart: string): Promise<MeterBalance> {
    const ref = { accountId, meter, periodStart };
    if (this.usable()) {
      try {
        return await withDeadline(this.balanceInRedis(ref), ADMIT_DEADLINE_MS);
      } catch (error) {
        this.noteFailure(error);
      }
    }
    // Without Redis: the store's record (at most a flush behind) or what this process saw.
    if (this.options.use === 'command' && !this.balanceWarned) {
      this.balanceWarned = true;
      const refusal = this.refusal();
      this.options.log.warn(refusal === undefined ? `Redis is unreachable: ${BALANCE_FROM_STORE}` : `${refusedConnection(refusal)}: ${BALANCE_FROM_STORE}; ${REFUSAL_FIX}`);
    }
    const own = await this.fallback.meterBalance(ref);
    try {
      const rows = await this.options.store.loadMeterUsage({ accountId, periodStarts: [periodStart] });
      const stored = rows.find((r) => r.meter === meter)?.used ?? 0;
      return { used: Math.max(stored, own.used), reserved: own.reserved };
    } catch {
      return own;
    }
  }

  async restoreMeters(rows: readonly MeterUsageRow[]): Promise<void> {
    await this.fallback.remember(rows);
    // Without Redis now, each meter is seeded from the store on its first use instead.
    if (!this.usable()) return;
    try {
      for (let i = 0; i < rows.length; i += RESTORE_BATCH) {
        await Promise.all(rows.slice(i, i + RESTORE_BATCH).map((row) => SEED.run(this.client, [this.meterKey(row)], [row.used, METER_TTL_MS, row.returned ?? 0])));
      }
    } catch (error) {
      this.noteFailure(error);
    }
  }

  async drainMeterChanges(): Promise<MeterUsageRow[]> {
    if (this.settling.size > 0) await Promise.allSettled([...this.settling]);
    // Marked unreachable by a command that timed out on a connection still open: nothing
    // else may ask Redis again (a process taken out of its load balancer gets no requests),
    // so it is asked here, once a flush (the pause after a failure does not skip it), until
    // it answers.
    if (!this.reachable && this.client.status === 'ready' && !(await this.answers())) return [];
    if (!this.usable()) return [];
    // Likewise while Redis answers admissions with an error: /health/ready says 503 until
    // one is taken, so the flush asks with one of its own.
    if (this.refusedAdmissionsWith !== undefined) await this.probeAdmission();
    await this.takeSavedUnits();
    await this.deliverHeldUnits();
    if (this.dirty.size === 0) return [];
    const refs = [...this.dirty.values()];
    this.dirty = new Map();

    let results: [Error | null, unknown][];
    try {
      const pipeline = this.client.pipeline();
      for (const ref of refs) pipeline.hmget(this.meterKey(ref), 'used', 'returned');
      results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
    } catch (error) {
      for (const ref of refs) this.dirty.set(meterRefId(ref), ref);
      this.noteFailure(error);
      return [];
    }

    const rows: MeterUsageRow[] = [];
    refs.forEach((ref, i) => {
      const [error, value] = results[i] ?? [new Error('no reply'), null];
      if (error) this.dirty.set(meterRefId(ref), ref);
      // A balance Redis no longer holds is not written: the store keeps the last one.
      else {
        const [used, returned] = value as [string | null, string | null];
        if (used !== null) rows.push({ ...ref, used: Number(used), returned: Number(returned ?? 0) });
      }
    });
    await this.fallback.remember(rows);
    return rows;
  }

  async handOverBalances(rows: readonly MeterUsageRow[]): Promise<boolean> {
    if (!this.usable() || rows.length === 0) return false;
    // One id per hand-over: a process that writes a listed meter removes its own entry
    // only, not one a later hand-over listed again meanwhile (the meter changed since).
    const handOver = randomUUID();
    const refs = rows.map(({ accountId, meter, periodStart }) => JSON.stringify({ accountId, meter, periodStart, handOver }));
    try {
      // Kept as long as the balances themselves.
      await withDeadline(this.client.multi().sadd(this.handedOverKey, ...refs).pexpire(this.handedOverKey, METER_TTL_MS).exec(), ADMIT_DEADLINE_MS);
      return true;
    } catch (error) {
      this.noteFailure(error);
      return false;
    }
  }

  async handOverBlocks(rows: readonly LimitStateRow[]): Promise<{ blocks: number; held: boolean }> {
    // Those drained whose rows the store would not take, and those changed since (the last
    // write-back failed before it read them): by id → whether this process lifted it. A
    // drained row of a lifted block Redis no longer holds is one of expiry 0.
    const changes = this.changedBlocks;
    this.changedBlocks = new Map();
    for (const row of rows) if (row.kind === 'block') changes.set(row.id, changes.get(row.id) === true || row.expiresAt === 0);
    if (changes.size === 0) return { blocks: 0, held: false };
    if (!this.usable()) return { blocks: changes.size, held: false };
    const handOver = randomUUID();
    const members = [...changes].map(([id, lifted]) => JSON.stringify({ id, lifted, handOver }));
    try {
      // Kept as long as the balances listed beside them.
      await withDeadline(this.client.multi().sadd(this.handedOverBlocksKey, ...members).pexpire(this.handedOverBlocksKey, METER_TTL_MS).exec(), ADMIT_DEADLINE_MS);
      return { blocks: changes.size, held: true };
    } catch (error) {
      this.noteFailure(error);
      return { blocks: changes.size, held: false };
    }
  }

  async blocksInForce(ids: readonly string[], now: number): Promise<Map<string, number>> {
    const found = this.fallback.blocksInForce(ids, now);
    const pipeline = this.client.pipeline();
    for (const id of ids) pipeline.hget(this.key('b', id), 'until');
    // A read for a page or a list: a Redis that takes connections but does not answer is
    // "unknown" after the admission's deadline, not the command timeout (5 s).
    const results = await this.operatorCall(() => withDeadline(pipeline.exec(), ADMIT_DEADLINE_MS));
    results.forEach(([, until], i) => {
      const id = ids[i] as string;
      const ends = Number(until);
      if (ends > now && ends > (found.get(id) ?? 0)) found.set(id, ends);
    });
    return found;
  }

  async liftBlocks(ids: readonly string[], now: number): Promise<number> {
    const local = this.fallback.liftBlocks(ids, now);
    const transaction = this.client.multi();
    for (const id of ids) transaction.hget(this.key('b', id), 'until').del(this.key('b', id));
    // Each id's HGET answer, then its DEL's.
    const results = await this.operatorCall(() => transaction.exec());
    // Written to the store as lifted with the next write-back, so that a Redis that loses
    // its data does not get them back from there.
    for (const id of ids) this.changedBlocks.set(id, true);
    const untils = results.filter((_, i) => i % 2 === 0).map(([, until]) => Number(until));
    return Math.max(local, untils.filter((until) => until > now).length);
  }

  /**
   * The blocks this process changed since the last write-back, as Redis holds them now,
   * for the store (one pipelined read); and, if Redis no longer has the store's blocks
   * (it lost its data under this running process), puts them back first. Windows are not
   * written (see the module comment), whatever `windows` says.
   */
  async drainLimitChanges(): Promise<LimitStateRow[]> {
    if (!this.usable()) return [];
    const changes = this.changedBlocks;
    this.changedBlocks = new Map();
    const ids = [...changes.keys()];
    let results: [Error | null, unknown][];
    try {
      const pipeline = this.client.pipeline();
      pipeline.exists(this.restoredKey);
      for (const id of ids) pipeline.hmget(this.key('b', id), 'violations', 'level', 'until', 'lastEnd').pttl(this.key('b', id));
      results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
      const failed = results.find(([error]) => error !== null);
      if (failed || results.length !== 1 + 2 * ids.length) throw failed?.[0] ?? new Error('no reply');
    } catch (error) {
      // Read again at the next write-back (a lift, or a change, made meanwhile stays).
      for (const [id, lifted] of changes) this.changedBlocks.set(id, lifted || this.changedBlocks.get(id) === true);
      this.noteFailure(error);
      return [];
    }
    const now = this.options.clock();
    const rows: LimitStateRow[] = [];
    ids.forEach((id, i) => {
      const block = savedBlockOf(results[1 + 2 * i]?.[1] as (string | null)[]);
      if (block) rows.push({ kind: 'block', id, state: JSON.stringify(block), expiresAt: blockExpiry(block, Number(results[2 + 2 * i]?.[1]), now) });
      else if (changes.get(id) === true) rows.push({ kind: 'block', id, state: '{}', expiresAt: 0 });
    });
    // A command writes its lifts; putting blocks back is for the serving processes.
    if (results[0]?.[1] === 0 && this.options.use !== 'command') {
      // Not the lifts about to be written: the store has them as they were before.
      await this.putBackLostBlocks(now, new Set(rows.filter((row) => row.expiresAt === 0).map((row) => row.id)));
    }
    return rows;
  }

  /** Redis lost the store's blocks under this running process: puts them back (tried again at every write-back until it works). */
  private async putBackLostBlocks(now: number, skip: ReadonlySet<string>): Promise<void> {
    let rows: LimitStateRow[];
    try {
      rows = await this.options.store.loadLimitState(now, 'block');
    } catch (error) {
      this.notePutBackFailed(error);
      return;
    }
    try {
      const restored = await this.putBackBlocks(rows, skip);
      this.putBackFailed = false;
      this.options.log.info({ restored }, 'Redis does not hold the blocks kept in the store (it lost its data, or never had them): rate-limit blocks put back into Redis from the store');
    } catch (error) {
      this.notePutBackFailed(error);
      this.noteFailure(error);
    }
  }

  private notePutBackFailed(error: unknown): void {
    if (!this.putBackFailed) {
      this.options.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'Redis does not hold the blocks kept in the store (it lost its data), and they could not be put back yet: tried again every second',
      );
    }
    this.putBackFailed = true;
  }

  /**
   * Start-up: puts the store's blocks back into Redis, unless Redis holds them already
   * (it kept its data: it is the truth). Windows rows are not Redis's to take.
   */
  async restoreLimits(rows: readonly LimitStateRow[]): Promise<number> {
    // Without Redis now: the first write-back that reaches it puts them back.
    if (!this.usable()) return 0;
    try {
      if ((await this.client.exists(this.restoredKey)) === 1) return 0;
      return await this.putBackBlocks(rows, new Set());
    } catch (error) {
      this.noteFailure(error);
      return 0;
    }
  }

  /** Puts blocks the store kept back into Redis (see RESTORE_BLOCK), but those in `skip`; answers how many it wrote. */
  private async putBackBlocks(rows: readonly LimitStateRow[], skip: ReadonlySet<string>): Promise<number> {
    const now = this.options.clock();
    const blocks: { id: string; block: SavedBlock; expiresAt: number }[] = [];
    for (const row of rows) {
      if (row.kind !== 'block' || skip.has(row.id) || row.expiresAt <= now) continue;
      const block = readSavedBlock(row.state);
      if (block) blocks.push({ id: row.id, block, expiresAt: row.expiresAt });
    }
    let written = 0;
    for (let i = 0; i < blocks.length; i += RESTORE_BATCH) {
      const replies = await Promise.all(
        blocks.slice(i, i + RESTORE_BATCH).map(({ id, block, expiresAt }) =>
          RESTORE_BLOCK.run(
            this.client,
            [this.key('b', id)],
            [block.violations.join(','), block.level, block.blockedUntil, block.lastBlockEnd ?? '', Math.ceil(expiresAt - now + EXPIRY_SLACK_MS)],
          ),
        ),
      );
      written += replies.filter((reply) => Number(reply) === 1).length;
    }
    // Last: a process that stops half-way leaves the next one to do it all again (each write is idempotent).
    await this.client.set(this.restoredKey, '1');
    return written;
  }

  /**
   * A batch an operator's request sends (reading or lifting blocks): refused at once while
   * Redis is away, and when any command of it failed (a batch answers each command's
   * error instead of failing: a timed-out HGET must not read as "no block").
   */
  private async operatorCall(send: () => Promise<[Error | null, unknown][] | null>): Promise<[Error | null, unknown][]> {
    // Known away (stalled, until a flush's probe finds it answering): not waited on again,
    // as admissions are not, so that each admin read or change made meanwhile is not a second slower.
    if (!this.isReachable()) throw new CountersUnavailableError(new Error('Redis is not reachable'));
    let results: [Error | null, unknown][];
    try {
      results = (await send()) ?? [];
    } catch (error) {
      this.noteFailure(error);
      throw operatorCallError(error);
    }
    const failed = results.find(([error]) => error !== null);
    if (failed) throw operatorCallError(failed[0]);
    return results;
  }

  async broadcast(event: CacheEvent): Promise<void> {
    try {
      // Known away: the change is not held a second for it (its mark tells the others).
      if (!this.isReachable()) throw new Error('Redis is not reachable');
      // Every subscriber, this process's included, hears it from Redis. A stalled Redis
      // does not hold the change's answer for the command timeout (5 s): past the
      // deadline it counts as not told (if Redis sends it later, the others just drop a
      // cached key once more).
      await withDeadline(this.client.publish(this.channel, JSON.stringify(event)), ADMIT_DEADLINE_MS).catch((error: unknown) => {
        this.noteFailure(error);
        throw error;
      });
    } catch (error) {
      this.deliver(event);
      throw new CountersUnavailableError(error);
    }
  }

  readonly addressBlocks: SharedAddressBlocks = {
    unknownKey: (address, now, policy) => this.unknownKey(address, now, policy),
    inForce: (now) => this.addressBlocksInForce(now),
    lift: (address, now) => this.liftAddressBlock(address, now),
    share: (blocks, now) => this.shareAddressBlocks(blocks, now),
    onChange: (handler) => {
      this.addressHandlers.push(handler);
    },
  };

  /** See UNKNOWN_KEY. A Redis known to be away is not waited on (the caller counts on its own meanwhile). */
  private async unknownKey(address: string, now: number, policy: UnknownKeyPolicy): Promise<SharedUnknownKey> {
    const keys = [this.key('uk', address), this.key('ukb', address), this.key('ukblocks', 'all')];
    const args = [now, policy.window, policy.limit, policy.block, EXPIRY_SLACK_MS, address, this.maxAddressesBlocked, this.channel, this.argvKeyPrefix('ukb')];
    const reply = (await this.addressCall(() => UNKNOWN_KEY.run(this.client, keys, args))) as number[];
    const [kind, count, startedAt, endsAt] = reply.map(Number) as [number, number, number, number];
    if (kind === 0) return { kind: 'counted', count };
    return { kind: kind === 2 ? 'started' : 'blocked', block: { address, unknownKeys: count, startedAt, endsAt } };
  }

  private async addressBlocksInForce(now: number): Promise<BlockInForce[]> {
    const reply = (await this.addressCall(() => ADDRESS_BLOCKS.run(this.client, [this.key('ukblocks', 'all')], [now, this.argvKeyPrefix('ukb')]))) as (string | number)[];
    const blocks: BlockInForce[] = [];
    for (let i = 0; i + 3 < reply.length; i += 4) blocks.push({ address: String(reply[i]), unknownKeys: Number(reply[i + 1]), startedAt: Number(reply[i + 2]), endsAt: Number(reply[i + 3]) });
    return blocks;
  }

  private async liftAddressBlock(address: string, now: number): Promise<BlockInForce | undefined> {
    const keys = [this.key('ukb', address), this.key('ukblocks', 'all')];
    const reply = (await this.addressCall(() => LIFT_ADDRESS_BLOCK.run(this.client, keys, [now, address, this.channel]))) as number[];
    if (reply.length < 3) return undefined;
    const [unknownKeys, startedAt, endsAt] = reply.map(Number) as [number, number, number];
    return { address, unknownKeys, startedAt, endsAt };
  }

  /**
   * See SHARE_ADDRESS_BLOCKS, SHARE_BATCH blocks a script. Every script is sent at once, in
   * order on the one connection, each as EVAL with its source: a lift asked for after this
   * is carried out after them (an EVALSHA Redis refused, as it does the first time after a
   * restart, would be sent again as EVAL after that lift, and put the lifted block back).
   * The blocks ending last go first: past the most blocks held, a later script drops
   * (those ending first) its own before an earlier one's, so each answer stays true.
   */
  private async shareAddressBlocks(blocks: readonly BlockInForce[], now: number): Promise<BlockInForce[]> {
    const keys = [this.key('ukblocks', 'all')];
    const shared = [now, EXPIRY_SLACK_MS, this.maxAddressesBlocked, this.channel, this.argvKeyPrefix('ukb'), this.argvKeyPrefix('uk')];
    const endingLast = [...blocks].sort((a, b) => b.endsAt - a.endsAt);
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < endingLast.length; i += SHARE_BATCH) {
      const args = endingLast.slice(i, i + SHARE_BATCH).flatMap((block) => [block.address, block.unknownKeys, block.startedAt, block.endsAt]);
      sent.push(this.addressCall(() => SHARE_ADDRESS_BLOCKS.runInOrder(this.client, keys, [...shared, ...args])));
    }
    const held: BlockInForce[] = [];
    for (const reply of (await Promise.all(sent)) as (string | number)[][]) {
      for (let i = 0; i + 3 < reply.length; i += 4) held.push({ address: String(reply[i]), unknownKeys: Number(reply[i + 1]), startedAt: Number(reply[i + 2]), endsAt: Number(reply[i + 3]) });
    }
    return held;
  }

  /** One address-block script: refused at once while Redis is away, given up after the admission's deadline. */
  private async addressCall(send: () => Promise<unknown>): Promise<unknown> {
    if (!this.usable()) throw new CountersUnavailableError(new Error('Redis is not reachable'));
    try {
      const reply = await withDeadline(send(), ADMIT_DEADLINE_MS);
      this.noteSuccess();
      return reply;
    } catch (error) {
      this.noteFailure(error);
      // Redis answered (NOPERM, READONLY, a script that failed): reachable, the caller may tell it apart.
      throw error instanceof ReplyError ? new CountersRefusedError(error) : new CountersUnavailableError(error);
    }
  }

  onBroadcast(handler: (event: CacheEvent) => void): void {
    this.handlers.push(handler);
  }

  hearsOthers(): boolean {
    return this.subscriber.status === 'ready' && !this.listenerLost;
  }

  async close(): Promise<void> {
    this.closing = true;
    // Whether Redis carried them out cannot be known now: saved, as committed during the
    // outage (counted twice if it had).
    for (const commit of this.unanswered.splice(0)) this.fallback.deliverLater(commit.ref, commit.units, commit.cap);
    if (this.fallback.hasPending) {
      // Redis could not take them (the last write-back tried): the store keeps them for
      // the next process that reaches Redis.
      const held = this.fallback.takePending().map(({ ref, units }) => ({ accountId: ref.accountId, meter: ref.meter, periodStart: ref.periodStart, units }));
      try {
        await this.options.store.savePendingUnits(held);
        this.options.log.warn({ meters: held.length }, 'Redis is unreachable: units committed during the outage by this process are saved in the store; the next keygate process that reaches Redis adds them');
      } catch (error) {
        this.options.log.error(
          { lost: held, err: error instanceof Error ? error.message : String(error) },
          'Redis and the store are unreachable: units committed during the outage by this process are not recorded (listed here)',
        );
      }
    }
    await this.handOverUnwritten();
    this.client.disconnect();
    this.subscriber.disconnect();
    await this.fallback.close();
  }

  /**
   * Balances this process changed in Redis that the last write-back could not read
   * (Redis went away, or stalled, within a second of their change): Redis holds them, the
   * store does not, and no other process writes a meter it did not change. Left in the
   * store as rows of 0 units (a row of pending_units, as above), so that the next
   * process that reaches Redis takes them and writes those balances; otherwise the store
   * stayed behind for the rest of the period, and a Redis that lost its data later
   * rebuilt them from there.
   */
  private async handOverUnwritten(): Promise<void> {
    if (this.dirty.size === 0) return;
    const meters = [...this.dirty.values()].map((ref) => ({ accountId: ref.accountId, meter: ref.meter, periodStart: ref.periodStart, units: 0 }));
    this.dirty = new Map();
    try {
      await this.options.store.savePendingUnits(meters);
      this.options.log.warn(
        { meters: meters.length },
        'Redis is unreachable: balances this process changed since its last write to the store are in Redis only; the next keygate process that reaches Redis writes them to the store',
      );
    } catch (error) {
      this.options.log.error(
        { meters, err: error instanceof Error ? error.message : String(error) },
        'Redis and the store are unreachable: balances this process changed since its last write to the store are in Redis only, until a process charges these meters again (listed here)',
      );
    }
  }

  // --- Redis side -----------------------------------------------------------------

  /**
   * One admission, in the next batch (see ScriptBatcher); a DeadlineError when Redis
   * has not answered within ADMIT_DEADLINE_MS of the batch's first call.
   */
  private admitInRedis(request: AdmitRequest): Promise<Admission | typeof MISSING> {
    const charge = request.charge && request.charge.amount > 0 ? request.charge : undefined;
    const { signature, keys, fields, meter } = this.admitEntry(request.windows, request.block, charge);
    // An answer that comes after the deadline (the request has been answered without
    // it) is undone: what it reserved is released.
    const late = (answer: EntryReply) => {
      const admission = this.decode(request, charge, meter, answer);
      if (admission !== MISSING && admission.ok && admission.reservation) void this.settle(admission.reservation, 0);
    };
    // Decoded as the batch's answer is handed out, not in a `then` of its own: one promise
    // and one microtask less per request.
    return new Promise<Admission | typeof MISSING>((resolve, reject) =>
      this.batcher.post(this.admissions, signature, keys, fields, request.now, {
        resolve: (answer) => {
          try {
            resolve(this.decode(request, charge, meter, answer));
          } catch (error) {
            reject(error);
          }
        },
        reject,
        late,
        lost: charge && meter ? (sent, entry) => this.noteLostCharge(sent, entry, meter.ref, charge) : undefined,
      }),
    );
  }

  /**
   * An admission batch is being sent: it keeps the journal records of those before it on
   * its connection while any of them may still need theirs (no answer yet, or lost and
   * not undone), and replaces them otherwise (see ADMIT).
   */
  private admissionSent(batchId: string): number {
    const connection = batchPlace(batchId)?.connection ?? '';
    let keep = false;
    for (const batch of this.admissionBatches.values()) {
      if (batch.connection !== connection) continue;
      keep = true;
      break;
    }
    this.admissionBatches.set(batchId, { connection, lost: false, charges: new Map() });
    return keep ? 1 : 0;
  }

  /** An admission request's batch got no answer: what it asked to charge may have to be given back. */
  private noteLostCharge(sent: string, entry: number, ref: MeterRef, charge: NonNullable<AdmitRequest['charge']>): void {
    const batch = this.admissionBatches.get(sent);
    if (!batch) return;
    const lost = batch.charges.get(entry);
    if (lost) lost.requests += 1;
    else batch.charges.set(entry, { ref, amount: charge.amount, requests: 1, reserves: charge.final !== true || charge.untilZero === true });
  }

  private admissionAnswered(batchId: string, error: unknown): void {
    const batch = this.admissionBatches.get(batchId);
    if (!batch) return;
    // Answered (a late answer is undone by its requests), or never written: nothing to undo.
    if (!error || !mayHaveRun(error) || batch.charges.size === 0) this.admissionBatches.delete(batchId);
    else batch.lost = true;
  }

  /**
   * Reads the journal for admission batches whose answer was lost: what one Redis carried
   * out charged at admission is given back, and what it reserved released, with the next
   * delivery of held units (their requests were refused, or admitted and charged without
   * Redis). A batch Redis did not carry out left no record. As for settles, the journal's
   * answer comes after any of them still on the same connection.
   */
  private async undoLostAdmissions(): Promise<void> {
    const lost = [...this.admissionBatches].filter(([, batch]) => batch.lost);
    if (lost.length === 0) return;
    const connections = [...new Set(lost.map(([, batch]) => batch.connection))];
    let records: (string | null)[];
    try {
      records = await withDeadline(this.client.hmget(this.journalKey, ...connections.map((connection) => `a:${connection}`)), ADMIT_DEADLINE_MS);
    } catch (error) {
      this.noteFailure(error);
      return;
    }
    // '<connection>.<place>' → entry → requests charged.
    const charged = new Map<string, Map<number, number>>();
    connections.forEach((connection, i) => {
      for (const record of (records[i] ?? '').split(';')) {
        const [place, entries] = record.split(':');
        if (!entries) continue;
        charged.set(`${connection}.${place}`, new Map(entries.split(',').map((pair) => pair.split('=').map(Number) as [number, number])));
      }
    });
    let carriedOut = 0;
    let givenBack = 0;
    for (const [batchId, batch] of lost) {
      this.admissionBatches.delete(batchId);
      const counts = charged.get(batchId.slice(batchId.lastIndexOf(':') + 1));
      if (counts) carriedOut += 1;
      for (const [entry, { ref, amount, requests, reserves }] of batch.charges) {
        const requestsCharged = Math.min(counts?.get(entry) ?? 0, requests);
        if (requestsCharged > 0) {
          this.fallback.deliverLater(ref, -requestsCharged * amount);
          givenBack += requestsCharged * amount;
        }
        // Released only if the batch still holds units there (see SETTLE).
        if (reserves) this.fallback.releaseLater(ref, batchId, requests * amount);
      }
    }
    this.options.log.info({ batches: lost.length, charged: carriedOut, unitsGivenBack: givenBack }, 'admissions whose answer Redis did not send: what they charged there is given back');
  }

  /**
   * What the admit script is sent for a request (see ADMIT). Requests that would send
   * the same keys and arguments share one entry, by its signature. The last one made for
   * a window list is kept with it: a key's requests on one route reuse it as it is.
   */
  private admitEntry(windowSpecs: readonly WindowSpec[], block: AdmitRequest['block'], charge: AdmitRequest['charge']): AdmitEntry {
    const windows = this.windowsAsArgs(windowSpecs);
    const meter = charge ? this.meterNamesOf(charge) : undefined;
    const last = windows.lastEntry;
    if (
      last &&
      last.blockId === block?.id &&
      last.policy === block?.policy &&
      last.meter === meter &&
      last.amount === charge?.amount &&
      last.limit === charge?.limit &&
      last.overage === charge?.overage &&
      last.untilZero === charge?.untilZero &&
      last.final === charge?.final
    ) {
      return last;
    }
    const keys: string[] = [];
    const args: (string | number)[] = [block ? 1 : 0, charge ? (charge.final ? 2 : 1) : 0, charge?.amount ?? 0, charge?.limit ?? 0, charge?.overage ? 1 : charge?.untilZero ? 2 : 0];
    if (block) {
      const { after, within, duration, factor, max, forgetAfter } = block.policy;
      keys.push(this.key('b', block.id));
      args.push(after, within, duration, factor, max, forgetAfter);
    }
    if (meter) keys.push(...meter.keys);
    keys.push(...windows.keys);
    args.push(...windows.args);
    const entry: AdmitEntry = {
      signature: `${windows.id}|${block?.id}|${meter?.id}|${charge?.amount}|${charge?.limit}|${charge?.overage}|${charge?.untilZero}|${charge?.final}`,
      keys,
      fields: joinFields(args),
      blockId: block?.id,
      policy: block?.policy,
      meter,
      amount: charge?.amount,
      limit: charge?.limit,
      overage: charge?.overage,
      untilZero: charge?.untilZero,
      final: charge?.final,
    };
    windows.lastEntry = entry;
    return entry;
  }

  /** One request's admission, out of its entry's reply (see ADMIT); `meter` names the charge's meter. */
  private decode(request: AdmitRequest, charge: AdmitRequest['charge'], meter: MeterNames | undefined, { reply, index }: EntryReply): Admission | typeof MISSING {
    const values = reply as (string | number | number[])[];
    const admitted = Number(values[0]);
    if (admitted === -1) return MISSING;
    const count = request.windows.length;
    if (index < admitted) {
      const windows = windowStates(request.windows, values, 2, index);
      if (!charge) return { ok: true, windows };
      // A final amount is charged at admission, but for the request of an `untilZero` meter
      // that reaches zero (the last admitted of its entry): reserved, to be capped at settle.
      const final = charge.final === true && !(index === admitted - 1 && values[1] !== '');
      const reservation: Reservation = { accountId: charge.accountId, meter: charge.meter, periodStart: charge.periodStart, amount: charge.amount, final };
      if (!final && !charge.overage) reservation.cap = charge.limit;
      if (!final) this.reservationIds.set(reservation, String(values[1]));
      // Charged already: the balance goes to the store with the next write-back.
      else if (meter) this.dirty.set(meter.refId, meter.ref);
      return { ok: true, windows, reservation };
    }
    const at = 2 + 2 * count + (index - admitted) * (2 + 2 * count);
    const status = values[at];
    const detail = values[at + 1];
    const windows = windowStates(request.windows, values, at + 2, 0);
    // A refusal by a window, with a block policy, recorded a violation or started a
    // block: its state goes to the store with the next write-back.
    if (request.block && (status === 'rate_limited' || status === 'block_started')) this.changedBlocks.set(request.block.id, this.changedBlocks.get(request.block.id) === true);
    switch (status) {
      case 'blocked':
      case 'rate_limited':
        return { ok: false, reason: status, retryAfterMs: Number(detail), windows };
      case 'block_started': {
        const [length, escalation, window, endsAt, retryAfterMs] = detail as [number, number, number, number, number];
        return { ok: false, reason: 'blocked', retryAfterMs, windows, started: { window: request.windows[window] as WindowSpec, escalation, lengthMs: length, endsAt } };
      }
      case 'funds':
        return { ok: false, reason: 'insufficient_funds', windows, used: Number(detail), limit: charge?.limit ?? 0 };
      default:
        throw new Error(`unexpected answer from the admit script: ${String(status)}`);
    }
  }

  private async balanceInRedis(ref: MeterRef): Promise<MeterBalance> {
    for (let attempt = 0; ; attempt += 1) {
      const [used, reserved] = await this.client.hmget(this.meterKey(ref), 'used', 'reserved');
      if (used !== null) return { used: Number(used), reserved: Number(reserved ?? 0) };
      if (attempt > 0) throw new Error('the meter balance disappeared from Redis while it was being seeded');
      await this.seed(ref);
    }
  }

  /**
   * Releases `reserved` units held by batch `batchId` (if still held; '' for none) and
   * commits `actual` (negative: gives units back), at most up to `cap` of usage, with
   * the next batch; then calls `done` with the units committed, or `failed` once.
   */
  private commit(
    ref: MeterRef,
    batchId: string,
    reserved: number,
    actual: number,
    cap: number | undefined,
    done: (committed: number) => void,
    failed: (error: unknown, sent?: string) => void,
    attempt = 0,
  ): void {
    const names = this.meterNamesOf(ref);
    const capped = cap !== undefined && actual > 0;
    // A capped commit depends on the balance it meets, so it never shares an entry.
    const signature = capped ? `${names.id}|${batchId}|${reserved}|${actual}|${cap}|${(this.cappedCommits += 1)}` : `${names.id}|${batchId}|${reserved}|${actual}`;
    this.batcher.post(this.settles, signature, names.keys, joinFields([batchId, reserved, actual, capped ? cap : -1]), 0, {
      resolve: ({ reply }) => {
        if (reply !== 'missing') {
          const committed = reply === 'ok' ? actual : Number(reply);
          if (committed !== 0) this.dirty.set(names.refId, names.ref);
          done(committed);
        } else if (attempt > 0) {
          failed(new Error('the meter balance disappeared from Redis while it was being seeded'));
        } else {
          this.seed(ref).then(() => this.commit(ref, batchId, reserved, actual, cap, done, failed, 1), failed);
        }
      },
      reject: failed,
      late: undefined,
    });
  }

  /** Gives Redis the store's balance for a meter it does not hold (once per meter at a time). */
  private seed(ref: MeterRef): Promise<void> {
    const id = meterRefId(ref);
    let seeding = this.seeding.get(id);
    if (!seeding) {
      seeding = (async () => {
        let rows: MeterUsageRow[];
        try {
          rows = await this.options.store.loadMeterUsage({ accountId: ref.accountId, periodStarts: [ref.periodStart] });
        } catch (error) {
          throw new BaselineUnavailableError(error);
        }
        const row = rows.find((r) => r.meter === ref.meter);
        await SEED.run(this.client, [this.meterKey(ref)], [row?.used ?? 0, METER_TTL_MS, row?.returned ?? 0]);
      })().finally(() => this.seeding.delete(id));
      this.seeding.set(id, seeding);
    }
    return seeding;
  }

  /**
   * Adds to Redis the units processes saved in the store when they stopped during an
   * outage (pending_units); once a minute, at start-up and when Redis returns. First
   * writes the balances and blocks processes that stopped while the store was unreachable
   * left in Redis (takeHandedOver), so that a running process writes those within a
   * second or so.
   *
   * Units are increments: a row lost is usage lost, a row added twice is charged twice,
   * and a process may be killed at any point, or two may take the same rows at once. So
   * a row is read, not taken; added to Redis by ADD_SAVED_UNITS, which marks it added in
   * the same script (a second add of it, by another process or after a kill, finds the
   * mark and adds nothing); and only then removed from the store, in one transaction with
   * the balance Redis reached (written as balances always are: never lowered). Killed
   * before Redis ran the script: the row is still in the store and the next take adds
   * it. Killed after: the row is still there, marked in Redis, and the next take removes
   * it without adding it again. (Before, the rows were deleted first and held in this
   * process's memory until its next write-back: a kill in between lost them.) The marks
   * outlive the row (SAVED_UNITS_MARK_TTL_MS) by far more than the store can be away
   * with Redis answering; only a Redis that loses its data between the add and the
   * removal (the marks with it) adds such a row again.
   */
  private async takeSavedUnits(): Promise<void> {
    await this.takeHandedOver();
    const now = performance.now();
    if (now < this.savedUnitsDueAt) return;
    this.savedUnitsDueAt = now + SAVED_UNITS_CHECK_MS;
    let rows: SavedPendingUnits[];
    try {
      rows = await this.options.store.readPendingUnits(SAVED_UNITS_BATCH);
    } catch {
      this.savedUnitsDueAt = 0; // the store did not answer: again at the next write-back
      return;
    }
    if (rows.length === 0) return;
    const outcomes = new Map<SavedPendingUnits, SavedUnitsOutcome>();
    try {
      let sending = rows;
      for (let attempt = 0; sending.length > 0 && attempt < 2; attempt++) {
        const replies = await this.addSavedUnits(sending);
        const missing: SavedPendingUnits[] = [];
        sending.forEach((row, i) => {
          const reply = replies[i];
          // A row of 0 units whose meter Redis does not hold has no balance to write: done with.
          if (reply?.state === 'missing' && row.units === 0) outcomes.set(row, { state: 'balance' });
          else if (reply?.state === 'missing') missing.push(row);
          else if (reply) outcomes.set(row, reply);
        });
        // Redis holds no balance for these meters: the store's first (nothing was added).
        const seeds = new Map(missing.map((row) => [meterRefId(row), { accountId: row.accountId, meter: row.meter, periodStart: row.periodStart }]));
        for (const ref of seeds.values()) await this.seed(ref);
        sending = missing;
      }
    } catch (error) {
      // Left in the store, marked in Redis where they were added: the next take finishes,
      // 10 s from now (a Redis that refuses the script is not asked at every write-back),
      // or as soon as Redis answers again after an outage (noteSuccess).
      this.noteFailure(error);
      this.savedUnitsDueAt = performance.now() + HAND_OVER_RETRY_MS;
      return;
    }
    const done = rows.filter((row) => outcomes.has(row));
    const balances = new Map<string, MeterUsageRow>();
    for (const row of done) {
      const reached = outcomes.get(row);
      if (reached?.used === undefined) continue;
      const ref = { accountId: row.accountId, meter: row.meter, periodStart: row.periodStart };
      const known = balances.get(meterRefId(ref));
      // Of two replies for one meter, the later one (more added): as far along in both counts.
      if (!known || (reached.used + (reached.returned ?? 0) >= known.used + (known.returned ?? 0) && (reached.returned ?? 0) >= (known.returned ?? 0))) {
        balances.set(meterRefId(ref), { ...ref, used: reached.used, returned: reached.returned ?? 0 });
      }
    }
    try {
      await this.options.store.removePendingUnits(done.map((row) => row.id), [...balances.values()]);
    } catch {
      // Marked in Redis: the next take (at the next write-back) removes them, adding nothing.
      this.savedUnitsDueAt = 0;
      return;
    }
    // More may be waiting (or some were left, their meters not seeded).
    if (rows.length === SAVED_UNITS_BATCH || done.length < rows.length) this.savedUnitsDueAt = 0;
    // Written above already; also this write-back's, as this process's own changes are
    // (what it remembers of balances for an outage comes from there): those it added, or
    // a balance a stopped process could not write (a row of 0 units). A row another
    // process added is that one's.
    for (const row of done) {
      const outcome = outcomes.get(row);
      if (outcome?.used !== undefined && outcome.state !== 'marked') this.dirty.set(meterRefId(row), { accountId: row.accountId, meter: row.meter, periodStart: row.periodStart });
    }
    const added = done.filter((row) => outcomes.get(row)?.state === 'added');
    if (added.length > 0) {
      // How much, and for how many accounts: which ones the store says (pending_units), not the log.
      const charged = added.reduce((sum, row) => sum + Math.max(row.units, 0), 0);
      const givenBack = added.reduce((sum, row) => sum + Math.max(-row.units, 0), 0);
      const accounts = new Set(added.map((row) => row.accountId)).size;
      this.options.log.info(
        { accounts, units: charged, unitsGivenBack: givenBack },
        `adding to Redis units saved in the store by processes that stopped while it was unreachable: ${charged} charged${givenBack > 0 ? `, ${givenBack} given back` : ''}, for ${accounts} account${accounts === 1 ? '' : 's'}`,
      );
    }
    const marked = done.filter((row) => outcomes.get(row)?.state === 'marked').length;
    if (marked > 0) {
      this.options.log.info({ rows: marked }, 'removing from the store units saved there that Redis had taken already (a process stopped before it removed them): not added again');
    }
    const written = done.filter((row) => row.units === 0 && outcomes.get(row)?.used !== undefined).length;
    if (written > 0) this.options.log.info({ meters: written }, 'writing to the store balances that processes which stopped while Redis was unreachable could not write');
  }

  /** One ADD_SAVED_UNITS for `rows`, within the admissions' deadline. */
  private async addSavedUnits(rows: readonly SavedPendingUnits[]): Promise<SavedUnitsOutcome[]> {
    const keys = rows.flatMap((row) => [this.meterKey(row), this.key('added', row.id)]);
    const args = [METER_TTL_MS, SAVED_UNITS_MARK_TTL_MS, ...rows.map((row) => row.units)];
    const replies = (await withDeadline(ADD_SAVED_UNITS.run(this.client, keys, args), ADMIT_DEADLINE_MS)) as [string, string, string][];
    this.noteSuccess();
    return replies.map(([state, used, returned]) => ({
      state: state as SavedUnitsOutcome['state'],
      ...(used === '' ? {} : { used: Number(used), returned: returned === '' ? 0 : Number(returned) }),
    }));
  }

  /**
   * The meters and blocks processes that stopped while the store was unreachable left in
   * Redis (handOverBalances, handOverBlocks), looked for at every write-back (one EXISTS):
   * read from Redis as they are now, written to the store here, and only then
   * removed from the lists. A process killed before that (or whose store write fails)
   * leaves them listed, and the next take, its own or another process's, writes them
   * again: the writes are absolute (a balance as Redis holds it, merged so that it never
   * goes back; a block's state), so writing one twice charges nothing twice. Two processes
   * may write the same ones at once, to the same effect. A failed take is tried again
   * HAND_OVER_RETRY_MS later, not at every write-back.
   */
  private async takeHandedOver(): Promise<void> {
    if (performance.now() < this.handOverDueAt) return;
    let replies: [Error | null, unknown][];
    try {
      // Mostly nothing is listed: one EXISTS, as cheap as a look gets.
      if ((await withDeadline(this.client.exists(this.handedOverKey, this.handedOverBlocksKey), ADMIT_DEADLINE_MS)) === 0) {
        // Nothing listed: nothing left that a failed read could not take.
        this.handOverReadFailed = false;
        return;
      }
      const pipeline = this.client.pipeline().srandmember(this.handedOverKey, SAVED_UNITS_BATCH).srandmember(this.handedOverBlocksKey, SAVED_UNITS_BATCH);
      replies = (await withDeadline(pipeline.exec(), ADMIT_DEADLINE_MS)) ?? [];
    } catch (error) {
      // Still listed: tried again later.
      this.handOverFailed(error, 'read');
      return;
    }
    const [balances, blocks] = [0, 1].map((i) => replies[i] ?? [new Error('no reply'), null]) as [[Error | null, unknown], [Error | null, unknown]];
    const failed = balances[0] ?? blocks[0];
    if (failed) {
      // What was refused is still listed: tried again later.
      this.handOverFailed(failed, 'read');
      return;
    }
    this.handOverReadFailed = false;
    const balanceEntries = balances[1] as string[];
    const blockEntries = blocks[1] as string[];
    if (balanceEntries.length === 0 && blockEntries.length === 0) return;

    const refs = new Map<string, MeterRef>();
    for (const text of balanceEntries) {
      const ref = handedOverRef(text);
      if (ref) refs.set(meterRefId(ref), ref);
    }
    const changes = new Map<string, boolean>();
    for (const text of blockEntries) {
      const block = handedOverBlock(text);
      if (block) changes.set(block.id, block.lifted || changes.get(block.id) === true);
    }
    const meterRefs = [...refs.values()];
    const blockIds = [...changes.keys()];
    let results: [Error | null, unknown][];
    try {
      const pipeline = this.client.pipeline();
      for (const ref of meterRefs) pipeline.hmget(this.meterKey(ref), 'used', 'returned');
      for (const id of blockIds) pipeline.hmget(this.key('b', id), 'violations', 'level', 'until', 'lastEnd').pttl(this.key('b', id));
      results = ((await withDeadline(pipeline.exec(), ADMIT_DEADLINE_MS)) ?? []) as [Error | null, unknown][];
      const refused = results.find(([error]) => error !== null);
      if (refused || results.length !== meterRefs.length + 2 * blockIds.length) throw refused?.[0] ?? new Error('no reply');
    } catch (error) {
      this.handOverFailed(error, 'redis');
      return;
    }
    const rows: MeterUsageRow[] = [];
    meterRefs.forEach((ref, i) => {
      const [used, returned] = results[i]?.[1] as [string | null, string | null];
      // A balance Redis no longer holds is not written: the store keeps the last one.
      if (used !== null) rows.push({ ...ref, used: Number(used), returned: Number(returned ?? 0) });
    });
    const now = this.options.clock();
    const blockRows: LimitStateRow[] = [];
    blockIds.forEach((id, i) => {
      const at = meterRefs.length + 2 * i;
      const block = savedBlockOf(results[at]?.[1] as (string | null)[]);
      if (block) blockRows.push({ kind: 'block', id, state: JSON.stringify(block), expiresAt: blockExpiry(block, Number(results[at + 1]?.[1]), now) });
      else if (changes.get(id) === true) blockRows.push({ kind: 'block', id, state: '{}', expiresAt: 0 });
    });
    if (meterRefs.length > 0) this.options.log.info({ meters: meterRefs.length }, 'writing to the store balances that processes which stopped while the store was unreachable left in Redis');
    if (blockIds.length > 0) this.options.log.info({ blocks: blockIds.length }, 'writing to the store rate-limit blocks that processes which stopped while the store was unreachable changed in Redis');
    try {
      if (rows.length > 0) await this.options.store.saveMeterUsage(rows);
      if (blockRows.length > 0) await this.options.store.saveLimitState(blockRows, now);
    } catch (error) {
      // Still listed: written by the next take (this process's, or another's).
      this.handOverFailed(error, 'store');
      return;
    }
    // Written: taken off the lists (those entries only; a hand-over since added its own).
    try {
      const pipeline = this.client.pipeline();
      if (balanceEntries.length > 0) pipeline.srem(this.handedOverKey, ...balanceEntries);
      if (blockEntries.length > 0) pipeline.srem(this.handedOverBlocksKey, ...blockEntries);
      await withDeadline(pipeline.exec(), ADMIT_DEADLINE_MS);
    } catch (error) {
      // Left listed: written once more by the next take, to the same effect.
      this.noteFailure(error);
    }
  }

  /**
   * A take of the handed-over lists failed, at reading them (`read`), the entries they
   * name (`redis`) or writing those (`store`): tried again HAND_OVER_RETRY_MS later. A
   * failed read of the lists is said once, until one works; the store's failure is the
   * write-back's own to say.
   */
  private handOverFailed(error: unknown, step: 'read' | 'redis' | 'store'): void {
    this.handOverDueAt = performance.now() + HAND_OVER_RETRY_MS;
    const read = step === 'read';
    if (read && !this.handOverReadFailed) {
      this.options.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        `could not read from Redis the balances and blocks that processes which stopped while the store was unreachable left there to write: tried again every ${HAND_OVER_RETRY_MS / 1_000} seconds`,
      );
    }
    if (read) this.handOverReadFailed = true;
    if (step !== 'store') this.noteFailure(error);
  }

  /**
   * Whether Redis takes a write within the admission deadline (a stalled Redis, or one
   * paused for writes, answers a PING but would still hold every admission).
   */
  private async answers(): Promise<boolean> {
    try {
      // A late answer is not taken for one: a Redis that answers in 1-5 s would hold every
      // admission past its deadline, and readiness would turn with each flush.
      await withDeadline(this.client.set(this.key('probe', ''), '1', 'PX', PROBE_TTL_MS), ADMIT_DEADLINE_MS);
    } catch (error) {
      this.noteFailure(error);
      return false;
    }
    this.noteSuccess();
    return true;
  }

  /** One admission on a counter of its own (ADMISSION_PROBE): taken, it ends the refusal. */
  private async probeAdmission(): Promise<void> {
    try {
      await this.admitInRedis({ now: this.options.clock(), windows: ADMISSION_PROBE });
    } catch (error) {
      this.noteFailure(error);
      return;
    }
    this.noteSuccess();
    if (this.refusedAdmissionsWith !== undefined) this.noteAdmissionsTaken();
  }

  /** Releases the reservations that settles made without Redis could not (see PerProcessFallback.releaseLater). */
  private async deliverReleases(): Promise<void> {
    if (!this.fallback.hasReleases) return;
    // One that fails is left to lapse: it may have been carried out this time.
    await Promise.all(
      this.fallback.takeReleases().map(
        ({ ref, batchId, reserved }) => new Promise<void>((resolve) => this.commit(ref, batchId, reserved, 0, undefined, () => resolve(), (error) => {
          this.noteFailure(error);
          resolve();
        })),
      ),
    );
  }

  /**
   * Reads the journal for commits whose answer was lost: those Redis carried out are
   * done; the others are delivered (and released) as if never sent. The journal's answer
   * comes after any of them still on the same connection, which Redis carries out in order.
   */
  private async settleUnanswered(): Promise<void> {
    if (this.unanswered.length === 0) return;
    const commits = this.unanswered;
    const connections = [...new Set(commits.map((commit) => batchPlace(commit.sent)?.connection ?? ''))];
    let places: (string | null)[];
    try {
      places = await withDeadline(this.client.hmget(this.journalKey, ...connections), ADMIT_DEADLINE_MS);
    } catch (error) {
      this.noteFailure(error);
      return;
    }
    this.unanswered = [];
    const carriedOut = new Map(connections.map((connection, i) => [connection, places[i] == null ? -1 : Number.parseInt(places[i] as string, 36)]));
    let done = 0;
    for (const commit of commits) {
      const place = batchPlace(commit.sent);
      if (place && place.sequence <= (carriedOut.get(place.connection) ?? -1)) {
        done += 1;
        continue;
      }
      this.fallback.deliverLater(commit.ref, commit.units, commit.cap);
      this.fallback.releaseLater(commit.ref, commit.batchId, commit.reserved);
    }
    this.options.log.info({ carriedOut: done, sentAgain: commits.length - done }, 'settles whose answer Redis did not send: those it carried out are not counted again');
  }

  /** Adds units held during an outage to Redis, now that it answers. */
  private async deliverHeldUnits(): Promise<void> {
    await this.undoLostAdmissions();
    await this.settleUnanswered();
    await this.deliverReleases();
    if (!this.fallback.hasPending) return;
    const held = this.fallback.takePending();
    const failed: typeof held = [];
    await Promise.all(
      held.map(async (entry) => {
        try {
          await new Promise<void>((resolve, reject) =>
            this.commit(entry.ref, '', 0, entry.units, entry.cap, () => resolve(), (error, sent) => {
              // Written, and no answer: the journal says whether to send it again (see settleUnanswered).
              if (sent !== undefined && mayHaveRun(error)) this.unanswered.push({ sent, ref: entry.ref, units: entry.units, cap: entry.cap, batchId: '', reserved: 0 });
              else failed.push(entry);
              reject(error);
            }),
          );
        } catch (error) {
          this.noteFailure(error);
        }
      }),
    );
    this.fallback.giveBack(failed);
    if (failed.length < held.length) {
      this.options.log.info({ meters: held.length - failed.length }, 'units committed while Redis was unreachable are now recorded');
    }
  }

  // --- failure handling -----------------------------------------------------------

  private usable(): boolean {
    return this.client.status === 'ready' && performance.now() >= this.pausedUntil;
  }

  private async withoutRedis(request: AdmitRequest, cause: unknown): Promise<Admission> {
    if (this.options.failure !== 'open') throw new CountersUnavailableError(cause);
    if (request.charge && request.charge.amount > 0) await this.seedFallback(request.charge);
    return this.fallback.admit(request);
  }

  /**
   * Brings the fallback's balance of a meter up to the store's (at most a flush behind
   * Redis when it went away) before the meter's first charge in an outage: this process
   * may never have charged it, or not for weeks, and would otherwise start from nothing or
   * from that old figure. If the store cannot say either, what this process saw stands.
   */
  private seedFallback(ref: MeterRef): Promise<void> | undefined {
    const id = meterRefId(ref);
    const known = this.seededInOutage.get(id);
    if (known instanceof Promise) return known;
    if (known !== undefined && performance.now() < known) return undefined;
    // A store that does not answer at once must not hold up what fail-open is for: the
    // read is given up (its late answer ignored), and tried again a little later.
    const read = this.options.store.loadMeterUsage({ accountId: ref.accountId, periodStarts: [ref.periodStart] });
    const seeding = withDeadline(read, SEED_DEADLINE_MS, { what: 'the store' }).then(
      (rows) => this.fallback.remember(rows.filter((row) => row.meter === ref.meter)),
      () => {
        this.seededInOutage.set(id, performance.now() + SEED_RETRY_MS);
      },
    );
    this.seededInOutage.set(id, seeding);
    return seeding;
  }

  /** An admission Redis answered with an error: said once, until it takes one again. */
  private noteAdmissionRefused(error: unknown): void {
    if (this.closing || this.refusedAdmissionsWith !== undefined || !(error instanceof Error && error.name === 'ReplyError')) return;
    this.refusedAdmissionsWith = error.message;
    this.options.log.warn(
      { err: error.message },
      this.options.failure === 'open'
        ? 'Redis answers admissions with an error: admitting on per-process limits until it takes them (/health/ready: degraded)'
        : 'Redis answers admissions with an error: requests with a rate limit, block policy or cost are refused (service_unavailable) until it takes them (counterFailure: closed); requests with none are served; /health/ready answers 503 until then (asked every second)',
    );
  }

  private noteAdmissionsTaken(): void {
    this.refusedAdmissionsWith = undefined;
    this.options.log.info('Redis takes admissions again: shared counters resume');
  }

  /** Redis answered: if it had been marked unreachable, say it is back. */
  private noteSuccess(): void {
    // Redis answered: the pause after a failure, there so as not to wait on a stuck Redis, is over.
    this.pausedUntil = 0;
    if (this.reachable) return;
    this.reachable = true;
    this.outageSaid = undefined;
    // The next outage starts from the store's balances again.
    this.seededInOutage = new Map();
    // Processes that stopped during the outage may have saved units for it.
    this.savedUnitsDueAt = 0;
    this.options.log.info('Redis answers again: shared counters resume');
    // Address blocks begun here alone meanwhile can go to Redis now (SharedUnknownKeyLimit).
    for (const handler of this.addressHandlers) handler({ type: 'back' });
  }

  /**
   * `closed`: the connection closed, refused as it opened (`refusal`: Redis's answer) or not.
   * The first failure says Redis is away; a close for another reason than the one said says it again.
   */
  private noteFailure(error: unknown, closed?: { refusal: string | undefined }): void {
    if (this.closing) return;
    // The store failing to seed a balance says nothing about Redis.
    if (error instanceof BaselineUnavailableError) return;
    // Redis answered with an error: it is up, only this command failed.
    if (error instanceof Error && error.name === 'ReplyError') return;
    // Connected, yet a command failed (a timeout): Redis may be stuck, so stop waiting on
    // it for a moment. A lost connection needs no pause: the client is not 'ready'.
    if (this.client.status === 'ready') this.pausedUntil = performance.now() + PAUSE_AFTER_FAILURE_MS;
    const refusal = closed?.refusal;
    if (this.reachable) {
      this.reachable = false;
      // This outage's balances come from the store as it is now, not as an earlier one found it.
      this.seededInOutage = new Map();
    } else if (closed === undefined || this.outageSaid === undefined || this.outageSaid === (refusal ?? '')) return;
    // A command admits nothing: it says what the outage means where it matters (a balance, an announcement).
    if (this.options.use === 'command') return;
    this.outageSaid = refusal ?? '';
    const err = error instanceof Error ? error.message : String(error);
    if (refusal === undefined) {
      this.options.log.warn(
        { err },
        this.options.failure === 'open'
          ? 'Redis is unreachable: admitting on per-process limits until it answers'
          : 'Redis is unreachable: requests with a rate limit, block policy or cost are refused (service_unavailable) until it answers (counterFailure: closed); requests with none are served',
      );
      return;
    }
    this.options.log.warn(
      { err },
      this.options.failure === 'open'
        ? `${refusedConnection(refusal)}: admitting on per-process limits until it takes it; ${REFUSAL_FIX}`
        : `${refusedConnection(refusal)}: requests with a rate limit, block policy or cost are refused (service_unavailable) until it takes it (counterFailure: closed); requests with none are served; ${REFUSAL_FIX}`,
    );
  }

  // --- names ----------------------------------------------------------------------

  private deliver(event: CacheEvent): void {
    for (const handler of this.handlers) handler(event);
  }

  private key(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  /**
   * The start of key names a script makes itself from an argument (`ukb:` + an address):
   * as `key` gives it, behind ioredis's `keyPrefix` when the Redis URL names one, which
   * ioredis puts before KEYS but never before ARGV.
   */
  private argvKeyPrefix(kind: string): string {
    return `${this.client.options.keyPrefix ?? ''}${this.key(kind, '')}`;
  }

  private meterKey(ref: MeterRef): string {
    return this.meterNamesOf(ref).keys[0];
  }

  /** A meter's balance, held reservations and lapse times, named once per period. */
  private meterNamesOf(ref: MeterRef): MeterNames {
    let byMeter = this.meterNames.get(ref.accountId);
    if (!byMeter) {
      if (this.meterNames.size >= MAX_NAMES) this.meterNames = new Map();
      byMeter = new Map();
      this.meterNames.set(ref.accountId, byMeter);
    }
    let names = byMeter.get(ref.meter);
    if (!names || names.ref.periodStart !== ref.periodStart) {
      const suffix = meterSuffix(ref);
      const meter = { accountId: ref.accountId, meter: ref.meter, periodStart: ref.periodStart };
      names = { id: ++this.lastNameId, keys: [this.key('m', suffix), this.key('rh', suffix), this.key('rl', suffix)], ref: meter, refId: meterRefId(meter) };
      byMeter.set(ref.meter, names);
    }
    return names;
  }

  /** The windows' keys (log and count of each) and arguments, made once per list. */
  private windowsAsArgs(windows: readonly WindowSpec[]): WindowParts {
    let parts = this.windowParts.get(windows);
    if (parts) return parts;
    const keys = windows.flatMap((w) => [this.key('wl', w.id), this.key('wn', w.id)]);
    const args = windows.flatMap((w) => [w.limit, w.windowMs]);
    // The limits too: a window keeps its keys when its limit changes (see counterIds).
    const byKeys = `${keys.join(' ')} ${args.join(',')}`;
    parts = this.windowPartsByKeys.get(byKeys);
    if (!parts) {
      if (this.windowPartsByKeys.size >= MAX_NAMES) this.windowPartsByKeys = new Map();
      parts = { id: ++this.lastNameId, keys, args };
      this.windowPartsByKeys.set(byKeys, parts);
    }
    this.windowParts.set(windows, parts);
    return parts;
  }
}

/**
 * The windows' states in an admit reply: each window's remaining and reset from `at` on
 * (`fewer` taken off the remaining, for the later requests of an entry). A loop, not a
 * `map` with a closure: this runs for every request.
 */
function windowStates(specs: readonly WindowSpec[], values: readonly (string | number | number[])[], at: number, fewer: number): WindowState[] {
  const states: WindowState[] = [];
  for (let i = 0; i < specs.length; i++) {
    const w = specs[i] as WindowSpec;
    states.push({ name: w.name, limit: w.limit, windowMs: w.windowMs, remaining: Math.max(0, Number(values[at + 2 * i]) - fewer), resetMs: Number(values[at + 1 + 2 * i]) });
  }
  return states;
}

/** A block as Redis holds it (HMGET violations, level, until, lastEnd), or undefined when Redis holds none. */
function savedBlockOf(fields: readonly (string | null)[] | undefined): SavedBlock | undefined {
  const [violations, level, until, lastEnd] = fields ?? [];
  if (violations == null && level == null && until == null && lastEnd == null) return undefined;
  return {
    violations: (violations ?? '').split(',').filter((t) => t !== '').map(Number),
    blockedUntil: Number(until ?? 0),
    level: Number(level ?? 0),
    lastBlockEnd: lastEnd == null ? null : Number(lastEnd),
  };
}

/**
 * When a block's state stops mattering, from its Redis key's time to live (which the
 * admit script sets to exactly that, plus the slack for clock differences): never
 * before the block ends.
 */
function blockExpiry(block: SavedBlock, ttlMs: number, now: number): number {
  // -1: no expiry; -2: expired since it was read (it no longer matters).
  const kept = ttlMs === -1 ? UNEXPIRING_BLOCK_MS : Math.max(0, ttlMs - EXPIRY_SLACK_MS);
  return Math.max(block.blockedUntil, now + kept);
}

function meterSuffix(ref: MeterRef): string {
  return `${encodeURIComponent(ref.accountId)}:${encodeURIComponent(ref.meter)}:${ref.periodStart}`;
}

/** A meter handOverBalances listed; undefined for anything else. */
function handedOverRef(text: string): MeterRef | undefined {
  const value = channelMessage(text);
  const { accountId, meter, periodStart } = value ?? {};
  return typeof accountId === 'string' && typeof meter === 'string' && typeof periodStart === 'string' ? { accountId, meter, periodStart } : undefined;
}

/** A block handOverBlocks listed; undefined for anything else. */
function handedOverBlock(text: string): { id: string; lifted: boolean } | undefined {
  const { id, lifted } = channelMessage(text) ?? {};
  return typeof id === 'string' && typeof lifted === 'boolean' ? { id, lifted } : undefined;
}

/** A message on the channel as its fields; undefined for anything but a JSON object. */
function channelMessage(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** A message UNKNOWN_KEY or LIFT_ADDRESS_BLOCK published; undefined for any other. */
function addressBlockEvent(event: Record<string, unknown>): AddressBlockEvent | undefined {
  if (typeof event.address !== 'string') return undefined;
  if (event.type === 'address_unblocked') return { type: 'lifted', address: event.address };
  if (event.type !== 'address_blocked') return undefined;
  const [unknownKeys, startedAt, endsAt] = [event.unknownKeys, event.startedAt, event.endsAt].map(Number) as [number, number, number];
  if (![unknownKeys, startedAt, endsAt].every(Number.isFinite)) return undefined;
  return { type: 'blocked', block: { address: event.address, unknownKeys, startedAt, endsAt } };
}

function cacheEvent(event: Record<string, unknown>): CacheEvent | undefined {
  if (event.type === 'key' && typeof event.hash === 'string') return { type: 'key', hash: event.hash };
  if (event.type === 'account' && typeof event.accountId === 'string') return { type: 'account', accountId: event.accountId };
  if (event.type === 'all') return { type: 'all' };
  return undefined;
}

/**
 * Whether ioredis refused a command before writing it: with no offline queue, a command
 * given while its connection is not writable fails at once with this error (ioredis's own
 * wording), and Redis never saw it.
 */
function neverWritten(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("Stream isn't writeable");
}

/**
 * Whether a command that failed may have been carried out by Redis all the same: it was
 * written and no answer came (the connection closed, or it timed out). Not one refused
 * before it was written, nor one Redis answered with an error (OOM, BUSY, a script that
 * failed: the journals are written last, so such a script is not taken as done).
 */
function mayHaveRun(error: unknown): boolean {
  return !neverWritten(error) && !(error instanceof ReplyError);
}

/**
 * The pub/sub channel of one deployment. Redis's channels span its databases, so one on
 * database N > 0 names N in it: deployments apart by database alone, with the same prefix,
 * would otherwise hear each other's messages (an address blocked in one refused by the
 * other). Database 0 keeps the name earlier releases used.
 */
export function cacheChannel(prefix: string, db: number): string {
  return db === 0 ? `${prefix}cache` : `${prefix}cache@${db}`;
}

/**
 * An operator's batch that failed: Redis's own refusal (OOM, NOPERM, READONLY) as one it
 * answered, not as Redis away, and under MULTI's EXECABORT the error that caused it.
 */
function operatorCallError(error: unknown): CountersUnavailableError {
  if (!(error instanceof ReplyError)) return new CountersUnavailableError(error);
  const previous = (error as Error & { previousErrors?: unknown[] }).previousErrors?.[0];
  return new CountersRefusedError(previous instanceof Error ? previous : error);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
