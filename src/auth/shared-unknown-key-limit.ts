/**
 * Unknown keys per client address (`auth.unknownKeys`) shared by every keygate process
 * through Redis (`counters: redis://...`): behind a load balancer, an address gets
 * `limit` unknown keys in all, not `limit` per process, and a block begun by one process
 * is refused by all of them.
 *
 * - A valid key never waits on Redis for this: a cached key is judged before any of it,
 *   and a key the store finds is not counted.
 * - The count is one script per unknown key (UNKNOWN_KEY), after the store lookup that
 *   key costs anyway; its answer says whether the address is blocked already (another
 *   process began it: the key is refused too_many_failures, and not counted).
 * - Each process keeps a copy of the blocks in force (`UnknownKeyLimit.learn`), filled by
 *   the script's answers and by the message each block's start and lift send on the
 *   invalidation channel: a blocked address is refused before its lookup, in every
 *   process, once that message has arrived.
 * - Pub/sub delivers at most once: a process whose listener reconnected has missed what
 *   was sent meanwhile, and a lift it missed would refuse the address until the block
 *   ends. So the copy is checked against Redis (the blocks in force, read whole) when the
 *   listener is back, and at most every RECHECK_MS while it refuses an address: copies
 *   Redis no longer has are dropped, those it has are learned.
 * - Redis away (or slow past a second, or answering with an error such as OOM): each
 *   process counts alone, as with memory counters, until it answers (said once in the
 *   log, and once again when a count, a list, a lift or a recheck is answered; after an
 *   error reply, when a count is: past maxmemory Redis answers the others all along);
 *   valid keys are served as ever. The blocks a process began alone meanwhile are handed to
 *   Redis once it answers (a longer block Redis holds for the address stays; past the
 *   most blocks it holds, those ending first are dropped, here too), announced as a
 *   block begun there is: every process refuses and lists them from then on, not this
 *   one alone. Until then, a block of the address heard of replaces this process's own
 *   only if it ends later, as in Redis (`hear`).
 *
 * @example
 * const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), counters.addressBlocks, log, Date.now);
 * if (limit.blockedFor(address, now) > 0) refuse();
 * const started = await limit.fail(address, now, { limit: 20, window: 60_000, block: 600_000 });
 */
import type { UnknownKeyPolicy } from '../config/schema.js';
import { CountersRefusedError, type SharedAddressBlocks } from '../counters/counters.js';
import type { Log } from '../log.js';
import type { AddressBlock, BlockInForce, BlockLifted, BlocksFrom, BlocksListed, UnknownKeyCount, UnknownKeyLimit } from './unknown-key-limit.js';

/** A refusal from the copy checks it against Redis at most this often (a lift's message may have been lost without the listener noticing). */
export const RECHECK_MS = 60_000;

/** A read of the blocks in force, and the addresses whose block began or was lifted while it was on its way (the read may predate that). */
interface Recheck {
  done: Promise<void>;
  changed: Set<string>;
  /** Asked for again meanwhile (the listener came back): read once more after this one. */
  again: boolean;
}

/** Why a list or a lift answers for this process alone: Redis did not answer, or answered with an error (it is reachable). */
function thisProcessOnly(error: unknown): BlocksFrom {
  return error instanceof CountersRefusedError ? 'this-process-redis-refused' : 'this-process-redis-away';
}

/** A hand-over of `ownBlocks` on its way (see Recheck: its answer may predate a message heard meanwhile). */
interface HandOver {
  again: boolean;
  changed: Set<string>;
}

export class SharedUnknownKeyLimit implements UnknownKeyCount {
  /**
   * Redis did not answer (`unreachable`) or refused (`refused`: an error reply, OOM say)
   * the last count, and that was said: said again once it answers anything (unreachable),
   * or once it takes a count (refused: past maxmemory, reads and lifts are still answered,
   * and saying it back at each would say it away again at the next count).
   */
  private away: 'unreachable' | 'refused' | undefined;
  /** Addresses blocked here while Redis was away: Redis never held these, a recheck keeps them. */
  private readonly ownBlocks = new Set<string>();
  /** When a refusal from the copy next checks it against Redis. */
  private recheckDueAt: number;
  private recheck: Recheck | undefined;
  /** Handing `ownBlocks` to Redis, whether Redis came back again meanwhile (hand over once more after), and the addresses whose block began or was lifted while it was on its way. */
  private handOver: HandOver | undefined;
  /** Redis answered the last hand-over with an error, and that was said: handed over again at each recheck, said again once taken. */
  private handOverRefused = false;

  constructor(
    /** This process's copy of the blocks, and its own count while Redis is away. */
    private readonly local: UnknownKeyLimit,
    private readonly shared: SharedAddressBlocks,
    private readonly log: Log,
    private readonly clock: () => number,
  ) {
    this.recheckDueAt = clock() + RECHECK_MS;
    shared.onChange((event) => {
      if (event.type === 'blocked') {
        this.changed(event.block.address);
        this.hear(event.block);
      } else if (event.type === 'lifted') {
        this.changed(event.address);
        this.ownBlocks.delete(event.address);
        local.lift(event.address, clock());
      }
      // Lifts (and blocks) may have been missed while the listener was away (or Redis
      // answers again: `back`): Redis says which hold, and its answer hands over `ownBlocks`.
      else void this.recheckCopy(clock());
    });
  }

  blockedFor(address: string, now: number): number {
    const ms = this.local.blockedFor(address, now);
    // This refusal stands; the next ones follow what Redis holds, read in the background.
    if (ms > 0 && now >= this.recheckDueAt) void this.recheckCopy(now);
    return ms;
  }

  async fail(address: string, now: number, policy: UnknownKeyPolicy): Promise<AddressBlock | undefined> {
    let answer;
    try {
      answer = await this.shared.unknownKey(address, now, policy);
    } catch (error) {
      this.noteAway(error);
      const started = this.local.fail(address, now, policy);
      if (started) this.ownBlocks.add(address);
      return started;
    }
    this.noteBack(true);
    if (answer.kind === 'counted') return undefined;
    this.changed(address);
    this.hear(answer.block);
    // Begun by another process: this key is refused by the block (blockedFor says so now).
    if (answer.kind === 'blocked') return undefined;
    const { unknownKeys, endsAt } = answer.block;
    return { address, unknownKeys, windowMs: policy.window, blockMs: policy.block, endsAt };
  }

  /**
   * The shared blocks, and this process's own (begun while Redis was away, until handed
   * over); while Redis is away, this process's copies alone, and said so
   * (`this-process-redis-away`, or `this-process-redis-refused` when Redis answered with an
   * error). Unordered.
   */
  async blocksInForce(now: number): Promise<BlocksListed> {
    const local = this.local.blocksInForce(now).blocks;
    let shared: BlockInForce[];
    try {
      shared = await this.shared.inForce(now);
    } catch (error) {
      this.noteAway(error);
      return { blocks: local, from: thisProcessOnly(error) };
    }
    this.noteBack();
    const listed = new Set(shared.map((block) => block.address));
    // Redis's, and those not handed to it yet; not every copy: one Redis dropped (past its
    // most blocks held) until a recheck drops it here is no longer shared.
    const own = local.filter((block) => this.ownBlocks.has(block.address) && !listed.has(block.address));
    // In no order: the admin API's list orders (and pages) them (operations/address-blocks.ts).
    return { blocks: [...shared, ...own], from: 'shared' };
  }

  /**
   * Lifts the block in Redis (every process drops its copy on the message) and here
   * (`shared`). Redis away: this process's copy alone, and said so
   * (`this-process-redis-away`, or `this-process-redis-refused` for an error reply: the
   * others still refuse the address, and a block Redis holds comes back here at the
   * recheck once it answers); fails only if this process held none.
   */
  async lift(address: string, now: number): Promise<BlockLifted | undefined> {
    this.changed(address);
    this.ownBlocks.delete(address);
    const local = this.local.lift(address, now)?.block;
    let shared: BlockInForce | undefined;
    try {
      shared = await this.shared.lift(address, now);
    } catch (error) {
      this.noteAway(error);
      if (local !== undefined) return { block: local, from: thisProcessOnly(error) };
      throw error;
    }
    this.noteBack();
    // Redis held none: a block begun here alone while it was away is lifted all the same.
    const block = shared ?? local;
    return block === undefined ? undefined : { block, from: 'shared' };
  }

  clear(): void {
    this.local.clear();
    this.ownBlocks.clear();
  }

  /**
   * Reads the blocks in force from Redis and holds just those (UnknownKeyLimit.match),
   * but for the addresses changed meanwhile and those blocked here alone. One read at a
   * time. Redis away (the listener may be back before the command connection): the copy
   * stays as it is, and the next refusal from it reads again (refused at once while away).
   */
  private recheckCopy(now: number): Promise<void> {
    this.recheckDueAt = now + RECHECK_MS;
    if (this.recheck) {
      this.recheck.again = true;
      return this.recheck.done;
    }
    const recheck: Recheck = { done: Promise.resolve(), changed: new Set(), again: false };
    this.recheck = recheck;
    recheck.done = this.shared
      .inForce(now)
      .then(
        (blocks) => {
          this.noteBack();
          for (const address of this.ownBlocks) if (this.local.blockedFor(address, now) === 0) this.ownBlocks.delete(address);
          this.local.match(blocks, (address) => recheck.changed.has(address) || this.ownBlocks.has(address));
          // Refused last time (an error reply, not an outage): this answer is the next moment to try.
          if (this.handOverRefused && this.handOver === undefined) this.shareOwnBlocks();
        },
        () => {
          this.recheckDueAt = 0;
        },
      )
      .finally(() => {
        this.recheck = undefined;
        if (recheck.again) void this.recheckCopy(this.clock());
      });
    return recheck.done;
  }

  /**
   * A block Redis holds (its message, or a count's answer): this process's copy from now
   * on, as Redis's word is. But not over a block this process began alone that ends later
   * (not handed over yet, or its hand-over not answered): the later end wins, as the
   * hand-over makes it in Redis (SHARE_ADDRESS_BLOCKS never shortens a block), whose
   * answer is then held.
   */
  private hear(block: BlockInForce): void {
    if (this.ownBlocks.has(block.address)) {
      const now = this.clock();
      const ownFor = this.local.blockedFor(block.address, now);
      if (ownFor > 0 && now + ownFor > block.endsAt) return;
    }
    this.local.learn(block);
  }

  /** A block of `address` began or was lifted: a recheck on its way may have read Redis before that. */
  private changed(address: string): void {
    this.recheck?.changed.add(address);
    this.handOver?.changed.add(address);
  }

  /**
   * Redis away, or refusing these commands (an error reply, OOM past maxmemory say): this
   * process counts alone either way, and hands its blocks over once Redis takes a command
   * again; the log says which.
   */
  private noteAway(error: unknown): void {
    if (this.away !== undefined) return;
    this.away = error instanceof CountersRefusedError ? 'refused' : 'unreachable';
    if (error instanceof CountersRefusedError) {
      this.log.warn(
        { err: error.cause instanceof Error ? error.cause.message : error.message },
        'Redis answers with an error: unknown keys (auth.unknownKeys) are counted by each process on its own until Redis takes counts again',
      );
      return;
    }
    this.log.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'Redis is unreachable: unknown keys (auth.unknownKeys) are counted by each process on its own until it answers',
    );
  }

  private noteHandOverRefused(error: CountersRefusedError, blocks: number): void {
    if (this.handOverRefused) return;
    this.handOverRefused = true;
    this.log.warn(
      { err: error.cause instanceof Error ? error.cause.message : error.message, blocks },
      "Redis answered with an error the hand-over of the address blocks (auth.unknownKeys) this process began while it was away: they stay this process's own (refused here alone) and are handed over again at the next recheck",
    );
  }

  /** Redis answered a command: a count (`counted`), or a read, a lift or a hand-over. */
  private noteBack(counted = false): void {
    if (this.away === undefined) return;
    // Counts still refused, maybe (OOM refuses writes alone): this process keeps counting alone, but its blocks can go to Redis.
    if (this.away === 'refused' && !counted) return this.shareOwnBlocks();
    this.away = undefined;
    this.log.info('Redis answers again: unknown keys (auth.unknownKeys) are counted for all processes again');
    this.shareOwnBlocks();
  }

  /**
   * Hands the blocks begun here alone while Redis was away (`ownBlocks`) to Redis, which
   * tells every process of them; those ended are dropped. One hand-over at a time. Redis
   * away again: they stay this process's own until the next time it answers. Redis
   * answering with an error (NOPERM, READONLY...): it is not away, they stay this
   * process's own and are handed over again at the next recheck (said once until taken).
   */
  private shareOwnBlocks(): void {
    if (this.handOver) {
      this.handOver.again = true;
      return;
    }
    const handOver: HandOver = { again: false, changed: new Set() };
    this.handOver = handOver;
    void this.sendOwnBlocks(handOver).finally(() => {
      this.handOver = undefined;
      if (handOver.again) this.shareOwnBlocks();
    });
  }

  private async sendOwnBlocks(handOver: HandOver): Promise<void> {
    const now = this.clock();
    const own = this.local.blocksInForce(now).blocks.filter((block) => this.ownBlocks.has(block.address));
    const inForce = new Set(own.map((block) => block.address));
    for (const address of this.ownBlocks) if (!inForce.has(address)) this.ownBlocks.delete(address);
    if (own.length === 0) {
      this.handOverRefused = false;
      return;
    }
    let held: BlockInForce[];
    try {
      held = await this.shared.share(own, now);
    } catch (error) {
      if (error instanceof CountersRefusedError) this.noteHandOverRefused(error, own.length);
      else this.noteAway(error);
      return;
    }
    if (this.handOverRefused) {
      this.handOverRefused = false;
      this.log.info({ blocks: own.length }, "Redis took the address blocks (auth.unknownKeys) it refused before: every process refuses and lists them from now on");
    }
    const heldBy = new Map(held.map((block) => [block.address, block]));
    let unsure = false;
    for (const { address } of own) {
      // Lifted meanwhile (here or by another process's message): the lift was carried out after the hand-over.
      if (!this.ownBlocks.delete(address)) continue;
      const block = heldBy.get(address);
      // Not taken (past the most blocks Redis holds, those ending first go): no process holds it, this one neither;
      // but a block of it heard of meanwhile may have begun after (its message can come before this answer): Redis says.
      if (block === undefined && handOver.changed.has(address)) unsure = true;
      else if (block === undefined) this.local.lift(address, now);
      // Redis's from now on: a recheck follows it, and a lift anywhere reaches it.
      else this.local.learn(block);
      this.changed(address);
    }
    if (unsure) void this.recheckCopy(this.clock());
  }
}
