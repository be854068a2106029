/**
 * Unknown keys per client address (`auth.unknownKeys`): a client may send well-formed
 * keys that were never issued (the prefix, length and CRC32 are public arithmetic) as
 * fast as it likes, and each one the key cache does not hold is a store lookup. Once an
 * address has presented `limit` unknown keys within `window`, it is blocked for `block`:
 * its requests are refused (too_many_failures) before any lookup, but for keys this
 * process holds in its key cache, which are judged as usual (many clients share an
 * address behind NAT or a load balancer: the keys in use still work from it). A block's end starts the count afresh.
 *
 * Only unknown keys count. A revoked or expired key is one that was issued, retried by a
 * client that was not told (a forgotten cron job): counting it would shut out every other
 * client at its address, and guessing never produces one. A malformed key costs no lookup.
 *
 * With memory counters, counted per process, in memory, by address group (an IPv4 address, an IPv6 /64: a host
 * can take a new address in its /64 for every try), and bounded: at most
 * MAX_ADDRESSES_COUNTED addresses with their times (MAX_TIMES_HELD times in all) and
 * MAX_ADDRESSES_BLOCKED blocks; past either, the address counted (or blocked) longest ago
 * is forgotten. A flood of distinct addresses cannot grow memory, and per-address counts
 * are no defence against so many addresses anyway. With Redis counters, the count and
 * the blocks are shared by every process (shared-unknown-key-limit.ts), and this class
 * holds the process's copy of the blocks in force, and counts alone while Redis is away.
 *
 * @example
 * const limit = new UnknownKeyLimit();
 * if (limit.blockedFor(address, now) > 0) refuse();
 * const started = limit.fail(address, now, { limit: 20, window: 60_000, block: 600_000 });
 */
import type { UnknownKeyPolicy } from '../config/schema.js';

/** Most addresses whose unknown keys are counted at once. */
export const MAX_ADDRESSES_COUNTED = 50_000;
/** Most times of unknown keys held over all addresses (each address holds fewer than its limit). */
export const MAX_TIMES_HELD = 500_000;
/** Most addresses blocked at once. */
export const MAX_ADDRESSES_BLOCKED = 50_000;

/** A block as it begins: for the log line and the metric. */
export interface AddressBlock {
  /** The address group blocked (an IPv4 address, or an IPv6 /64 as `2001:db8:0:7::/64`). */
  address: string;
  /** Unknown keys it presented within the window, this one included. */
  unknownKeys: number;
  windowMs: number;
  blockMs: number;
  endsAt: number;
}

/** A block in force, as the admin API lists it (GET /v1/address-blocks). */
export interface BlockInForce {
  /** The address group blocked (an IPv4 address, or an IPv6 /64 as `2001:db8:0:7::/64`). */
  address: string;
  /** Unknown keys it had presented within the window when the block began. */
  unknownKeys: number;
  startedAt: number;
  endsAt: number;
}

/**
 * Where a list of the blocks in force comes from, so that whoever shows it says how much
 * it holds:
 * - `shared`: Redis, which every keygate process shares: every process's blocks (one a
 *   process began alone while it could not reach Redis is handed to Redis once it can,
 *   and until then listed by that process alone);
 * - `this-process`: this process's own blocks, all of them (memory counters: each process
 *   counts and blocks by itself);
 * - `this-process-redis-away`: Redis did not answer, so this process's copies alone:
 *   blocks other processes began, and shared ones it never heard of, may be in force too;
 * - `this-process-redis-refused`: the same, but Redis answered, with an error (NOPERM from
 *   its ACL, READONLY...): it is reachable, and refuses these commands.
 */
export type BlocksFrom = 'shared' | 'this-process' | 'this-process-redis-away' | 'this-process-redis-refused';

/** The blocks in force, in no order, and where the list comes from. */
export interface BlocksListed {
  blocks: BlockInForce[];
  from: BlocksFrom;
}

/**
 * A block lifted, and where (`BlocksFrom`), so that whoever lifts it says how far the lift
 * reaches: `shared`, in Redis and so in every process; `this-process`, in this process,
 * which alone held it (memory counters); `this-process-redis-away` (or
 * `this-process-redis-refused`), in this process's copy alone: other processes may still
 * refuse the address, and a block Redis holds comes back here once it answers (takes
 * commands again).
 */
export interface BlockLifted {
  block: BlockInForce;
  from: BlocksFrom;
}

/**
 * What the pipeline and the admin API ask of the count: this class (per process), or
 * SharedUnknownKeyLimit (Redis), whose answers may take a round trip.
 */
export interface UnknownKeyCount {
  /** Milliseconds until `address` may present unknown keys again; 0 when it is not blocked. Never waits. */
  blockedFor(address: string, now: number): number;
  /** One more unknown key from `address`: the block it started, if it reached the limit. */
  fail(address: string, now: number, policy: UnknownKeyPolicy): AddressBlock | undefined | Promise<AddressBlock | undefined>;
  blocksInForce(now: number): BlocksListed | Promise<BlocksListed>;
  /** Ends the block of `address`: the block lifted and where, or undefined when none was in force. */
  lift(address: string, now: number): BlockLifted | undefined | Promise<BlockLifted | undefined>;
  clear(): void;
}

export class UnknownKeyLimit implements UnknownKeyCount {
  /** An address's unknown keys within its window (times, oldest first), the address counted longest ago first. */
  private readonly times = new Map<string, number[]>();
  private held = 0;
  /** Each block in force, the one started longest ago first. */
  private readonly blocks = new Map<string, { unknownKeys: number; startedAt: number; endsAt: number }>();

  constructor(
    private readonly maxAddresses = MAX_ADDRESSES_COUNTED,
    private readonly maxTimes = MAX_TIMES_HELD,
    private readonly maxBlocked = MAX_ADDRESSES_BLOCKED,
  ) {}

  /** Milliseconds until `address` may present unknown keys again; 0 when it is not blocked. */
  blockedFor(address: string, now: number): number {
    const endsAt = this.blocks.get(address)?.endsAt;
    if (endsAt === undefined) return 0;
    if (endsAt > now) return endsAt - now;
    this.blocks.delete(address);
    return 0;
  }

  /** One more unknown key from `address`: the block it started, if it reached the limit. */
  fail(address: string, now: number, policy: UnknownKeyPolicy): AddressBlock | undefined {
    const times = this.times.get(address) ?? [];
    // Taken out and set again at the end: the addresses counted longest ago are first.
    this.times.delete(address);
    let gone = 0;
    while (gone < times.length && (times[gone] as number) <= now - policy.window) gone++;
    if (gone > 0) times.splice(0, gone);
    times.push(now);
    this.held += 1 - gone;
    if (times.length >= policy.limit) {
      this.held -= times.length;
      this.blocks.delete(address);
      evictOldest(this.blocks, this.maxBlocked - 1, () => undefined);
      const endsAt = now + policy.block;
      this.blocks.set(address, { unknownKeys: times.length, startedAt: now, endsAt });
      return { address, unknownKeys: times.length, windowMs: policy.window, blockMs: policy.block, endsAt };
    }
    this.times.set(address, times);
    evictOldest(this.times, this.maxAddresses, (forgotten) => (this.held -= forgotten.length), () => this.held > this.maxTimes);
    return undefined;
  }

  /** The blocks in force at `now`, the one started longest ago first (those ended are forgotten on the way): this process's. */
  blocksInForce(now: number): BlocksListed {
    const inForce: BlockInForce[] = [];
    for (const [address, block] of this.blocks) {
      if (block.endsAt > now) inForce.push({ address, ...block });
      else this.blocks.delete(address);
    }
    return { blocks: inForce, from: 'this-process' };
  }

  /**
   * Ends the block of `address` (an address group, as blocks are kept) now, as its end
   * would: its next unknown key is counted afresh. Answers the block lifted (this
   * process's), or undefined when none was in force.
   */
  lift(address: string, now: number): BlockLifted | undefined {
    const block = this.blocks.get(address);
    if (block === undefined) return undefined;
    this.blocks.delete(address);
    return block.endsAt > now ? { block: { address, ...block }, from: 'this-process' } : undefined;
  }

  /** A block another process began (heard from Redis): held as if begun here, until its end or its lift. */
  learn(block: BlockInForce): void {
    const { address, unknownKeys, startedAt, endsAt } = block;
    const times = this.times.get(address);
    if (times !== undefined) {
      this.times.delete(address);
      this.held -= times.length;
    }
    this.blocks.delete(address);
    evictOldest(this.blocks, this.maxBlocked - 1, () => undefined);
    this.blocks.set(address, { unknownKeys, startedAt, endsAt });
  }

  /**
   * Holds the blocks Redis holds (`blocks`, read just now): a copy Redis no longer has is
   * dropped (its lift's message was missed), one it has is learned; the addresses `keep`
   * names are left as they are (changed here since the read, or blocked here alone).
   */
  match(blocks: readonly BlockInForce[], keep: (address: string) => boolean): void {
    const shared = new Map(blocks.map((block) => [block.address, block]));
    for (const address of [...this.blocks.keys()]) if (!shared.has(address) && !keep(address)) this.blocks.delete(address);
    for (const block of blocks) if (!keep(block.address) && this.blocks.get(block.address)?.endsAt !== block.endsAt) this.learn(block);
  }

  /** Addresses counted and blocked now (for tests and the bound's proof). */
  get size(): { counted: number; blocked: number; times: number } {
    return { counted: this.times.size, blocked: this.blocks.size, times: this.held };
  }

  /** Forgets every count and block (the setting was turned off). */
  clear(): void {
    this.times.clear();
    this.blocks.clear();
    this.held = 0;
  }
}

/** Removes the oldest entries while `map` holds more than `max` (or `over` says so); `forget` hears of each. */
function evictOldest<V>(map: Map<string, V>, max: number, forget: (value: V) => void, over: () => boolean = () => false): void {
  while (map.size > max || (map.size > 0 && over())) {
    const oldest = map.entries().next();
    if (oldest.done) return;
    map.delete(oldest.value[0]);
    forget(oldest.value[1]);
  }
}
